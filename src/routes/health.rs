//! `GET /health/`: database reachability, storage mode, cache backend and the read
//! replicas' states.

use crate::db::replicas::ReplicaReport;
use crate::services::health;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// The service's health: 200 when the database answers, 503 otherwise.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "database": "ok", "storage": "native-partitions",
    "cache": {"backend": "redis", "reachable": true},
    "replicas": [{"name": "10.0.0.12:5432/seriesd", "state": "ok", "lag_ms": 0, "reads": 1520}]}))]
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
    /// The read replicas of `DATABASE_REPLICA_URLS`, in its order (empty without any).
    /// Their state never makes the service unavailable: reads go to the primary when
    /// none can serve.
    pub replicas: Vec<ReplicaHealth>,
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

/// A read replica.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaHealth {
    /// `host:port/database`.
    pub name: String,
    #[schema(value_type = ReplicaState)]
    pub state: &'static str,
    /// How far behind the primary it was at its last check, in ms (while `lagging`, at
    /// least this much); `null` when not known.
    pub lag_ms: Option<u64>,
    /// Why it serves no reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    /// Reads it answered since the service started.
    pub reads: u64,
}

impl From<ReplicaReport> for ReplicaHealth {
    fn from(r: ReplicaReport) -> Self {
        Self {
            name: r.name,
            state: r.status.state.name(),
            lag_ms: r.status.lag.map(|l| l.as_millis() as u64),
            detail: r.status.detail,
            reads: r.reads,
        }
    }
}

/// `ok`: serves reads; `starting`: not checked yet; `lagging`: further behind than
/// `REPLICA_MAX_LAG_MS`; `down`: no answer (checked again with backoff); `unusable`:
/// answers but is no hot standby of the primary (promoted, another cluster's, Citus).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ReplicaState {
    Starting,
    Ok,
    Lagging,
    Down,
    Unusable,
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
    description = "Whether the database answers, the storage mode, the cache backend and \
                   each read replica's state and lag. A load balancer can take a 503 as \
                   \"not ready\"; replicas never make it one.",
    responses(
        (status = 200, description = "The database answers.", body = Health),
        (status = 503, description = "The database does not answer.", body = Health,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")),
            example = json!({"status": "unavailable", "database": "unreachable", "storage": "native-partitions",
                "cache": {"backend": "redis", "reachable": true}, "replicas": [], "detail": "Database unavailable."})),
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let probe = health::probe_database(&state.pool, &state.partitions).await;
    let cache = CacheHealth {
        backend: state.cache.backend(),
        reachable: state.cache.reachable().await,
    };
    let replicas: Vec<ReplicaHealth> = state.reads.reports().into_iter().map(Into::into).collect();
    match probe {
        Ok(storage) => HttpResponse::Ok().json(Health {
            status: "ok",
            database: "ok",
            storage: Some(storage),
            cache,
            replicas,
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
                    replicas,
                    detail: Some("Database unavailable."),
                })
        }
    }
}
