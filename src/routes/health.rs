//! `GET /health/`: database reachability, storage mode and cache backend.

use crate::services::health;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// The service's health: 200 when the database answers, 503 otherwise.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "database": "ok", "storage": "native-partitions",
    "cache": {"backend": "redis", "reachable": true}}))]
pub struct Health {
    /// `unavailable` when the database does not answer.
    #[schema(value_type = HealthStatus)]
    pub status: &'static str,
    #[schema(value_type = DatabaseStatus)]
    pub database: &'static str,
    /// Where points live; `null` when the database was never reached.
    #[schema(value_type = Option<StorageMode>)]
    pub storage: Option<&'static str>,
    pub cache: CacheHealth,
    /// Why the service is unavailable (503 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub detail: Option<&'static str>,
}

/// The query cache.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheHealth {
    #[schema(value_type = CacheBackend)]
    pub backend: &'static str,
    /// Whether the backend answers now (the service works without it).
    pub reachable: bool,
}

/// The values of [`Health::status`] (for the document).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// The values of [`Health::database`] (for the document).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DatabaseStatus {
    Ok,
    Unreachable,
}

/// `timescaledb`: a hypertable with weekly chunks; `native-partitions`: a table
/// range-partitioned by week.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
pub enum StorageMode {
    Timescaledb,
    NativePartitions,
}

/// `redis`, or `in-process` when `REDIS_URL` is not set.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
pub enum CacheBackend {
    Redis,
    InProcess,
}

#[utoipa::path(
    get,
    path = "/health/",
    operation_id = "health",
    tag = "service",
    summary = "Health of the service",
    description = "Whether the database answers, the storage mode and the cache backend. \
                   A load balancer can take a 503 as \"not ready\".",
    responses(
        (status = 200, description = "The database answers.", body = Health),
        (status = 503, description = "The database does not answer.", body = Health,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")),
            example = json!({"status": "unavailable", "database": "unreachable", "storage": "native-partitions",
                "cache": {"backend": "redis", "reachable": true}, "detail": "Database unavailable."})),
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let probe = health::probe_database(&state.pool, &state.partitions).await;
    let cache = CacheHealth {
        backend: state.cache.backend(),
        reachable: state.cache.reachable().await,
    };
    match probe {
        Ok(storage) => HttpResponse::Ok().json(Health {
            status: "ok",
            database: "ok",
            storage: Some(storage),
            cache,
            detail: None,
        }),
        Err(reason) => {
            tracing::warn!(%reason, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", crate::error::RETRY_AFTER_SECS.to_string()))
                .json(Health {
                    status: "unavailable",
                    database: "unreachable",
                    storage: state.partitions.known_mode().map(|m| m.as_str()),
                    cache,
                    detail: Some("Database unavailable."),
                })
        }
    }
}
