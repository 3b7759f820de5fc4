//! `GET /health/`: database reachability, storage mode and cache backend.

use crate::db::maintenance;
use crate::startup::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::time::Duration;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let partitions = state.partitions.clone();
    let probe = web::block(move || -> Result<&'static str, String> {
        let mut conn = pool
            .get_timeout(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        maintenance::ping(&mut conn).map_err(|e| e.to_string())?;
        partitions
            .mode(&mut conn)
            .map(|m| m.as_str())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let cache = json!({
        "backend": state.cache.backend(),
        "reachable": state.cache.reachable().await,
    });
    match probe {
        Ok(storage) => HttpResponse::Ok().json(json!({
            "status": "ok",
            "database": "ok",
            "storage": storage,
            "cache": cache,
        })),
        Err(reason) => {
            tracing::warn!(%reason, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", crate::error::RETRY_AFTER_SECS.to_string()))
                .json(json!({
                    "status": "unavailable",
                    "database": "unreachable",
                    "storage": state.partitions.known_mode().map(|m| m.as_str()),
                    "cache": cache,
                    "detail": "Database unavailable.",
                }))
        }
    }
}
