//! [`AppState`]: what every request handler shares. A module of its own, below the
//! routes and the middleware and above the services it holds, so that neither the
//! handlers nor the middleware import the start-up code.

use crate::auth::Authenticator;
use crate::cache::Cache;
use crate::config::Settings;
use crate::db::DbPool;
use crate::db::heavy::HeavyWork;
use crate::db::partitions::PartitionManager;
use crate::db::replicas::Reads;
use crate::jobs::JobStats;
use crate::metrics::Metrics;
use crate::services::catalogue::Catalogue;
use crate::services::ingest::{IngestBudget, Ingestor};
use crate::services::query::cached::Queries;
use crate::services::token_slots::TokenSlots;
use std::sync::Arc;

/// Shared by every request handler.
pub struct AppState {
    pub settings: Settings,
    /// The primary's request pool: writes, token checks, `/health/`.
    pub pool: DbPool,
    /// Reads that replicas may answer (the primary when none can).
    pub reads: Reads,
    pub partitions: PartitionManager,
    pub catalogue: Catalogue,
    pub ingestor: Ingestor,
    /// Memory ingest bodies may hold at once (`INGEST_MEMORY_MIB`).
    pub ingest_budget: IngestBudget,
    pub cache: Cache,
    pub metrics: Arc<Metrics>,
    /// Each background job's statistics, by name.
    pub jobs: Vec<(&'static str, Arc<JobStats>)>,
    /// Token lookups and rate limits (also app data of its own, for the middleware).
    pub auth: Arc<Authenticator>,
    /// Cached, queued aggregate queries.
    pub queries: Queries,
    /// Work that holds a pooled connection for long, within `HEAVY_CONNECTIONS`.
    pub heavy: HeavyWork,
    /// Exports each token runs now (`MAX_EXPORTS_PER_TOKEN`).
    pub exports: TokenSlots,
    /// Bulk loads each token runs now (`MAX_BULK_LOADS_PER_TOKEN`).
    pub bulk_loads: TokenSlots,
}
