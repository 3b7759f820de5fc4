//! `GET /metrics`: Prometheus text about the service itself.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};

/// `GET /metrics/`: Prometheus text about the service itself.
#[utoipa::path(
    get,
    path = "/metrics/",
    operation_id = "metrics",
    tag = "service",
    summary = "Prometheus metrics",
    description = "The service's own metrics in Prometheus' text format: requests and latency \
                   by route, points ingested, cache hits and misses, pool use, background \
                   job runs, rollup lag, reads by server and each read replica's state and \
                   lag. Also at `/metrics`.",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String,
            content_type = "text/plain; version=0.0.4",
            example = json!("# TYPE seriesd_points_ingested_total counter\nseriesd_points_ingested_total 10\n")),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Read from the database; left out while it is unreachable.
    let backlog = crate::services::health::rollup_backlog(&state.pool)
        .await
        .ok();
    let pool = state.pool.state();
    let jobs: Vec<(&str, &crate::jobs::JobStats)> =
        state.jobs.iter().map(|(n, s)| (*n, s.as_ref())).collect();
    let body = state
        .metrics
        .render(
            (
                pool.connections,
                pool.idle_connections,
                state.pool.max_size(),
            ),
            &jobs,
            backlog,
            (state.reads.primary_reads(), &state.reads.reports()),
        )
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(body))
}
