//! Logging: the tracing subscriber and the request log.

use crate::metrics::Metrics;
use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use std::time::Instant;
use tracing::Instrument;

/// Installs the global subscriber (`RUST_LOG`, default `info`). Idempotent.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Logs one line per request: method, path (never the query string or headers, which
/// may carry user ids or tokens), status and latency.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let span = tracing::info_span!("request", %method, %path);
    let result = next.call(req).instrument(span.clone()).await;
    let _entered = span.enter();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(res) => {
            let status = res.status().as_u16();
            if let Some(metrics) = res.request().app_data::<actix_web::web::Data<Metrics>>() {
                let route = res
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".into());
                metrics.observe(&route, method.as_str(), status, elapsed_ms / 1000.0);
            }
            if status >= 500 {
                tracing::warn!(status, elapsed_ms, "request failed");
            } else {
                tracing::info!(status, elapsed_ms, "request");
            }
        }
        Err(e) => tracing::warn!(error = %e, elapsed_ms, "request error"),
    }
    result
}
