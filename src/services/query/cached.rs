//! Cached, queued answers to `GET /api/timeseries/`.
//!
//! An answer is cached under a key made of the user's write generation, the catalogue's
//! version and the query's normalised parameters, so a write for the user (or a change
//! of the catalogue) makes every cached answer for that user unreachable: answers are
//! never stale. Uncached queries wait in line (`QUERY_CONCURRENCY` at a time, first come
//! first served) for at most `QUERY_QUEUE_TIMEOUT_MS`, and are computed by a read replica
//! that has replayed the generation the key names, or by the primary
//! ([`crate::db::replicas`]).

use super::{TimeseriesQuery, run};
use crate::cache::Cache;
use crate::db::partitions::PartitionManager;
use crate::db::replicas::{Need, Reads};
use crate::db::{self, generations};
use crate::domain::rollup_plan::Pending;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::services::catalogue::Catalogue;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A parsed query and the times as the caller gave them (for the cache key, where a
/// defaulted time is written as `now`, so that it stays the same across requests).
#[derive(Debug, Clone)]
pub struct CachedQuery {
    pub query: TimeseriesQuery,
    pub start_given: Option<DateTime<Utc>>,
    pub end_given: Option<DateTime<Utc>>,
    /// When the query was parsed: its range reaching this or later is cached briefly.
    pub now: DateTime<Utc>,
}

impl CachedQuery {
    /// The normalised parameters.
    fn key(&self) -> String {
        let q = &self.query;
        format!(
            "u={}|s={}|p={}|i={}|st={}|en={}|a={}|ap={}|tz={}|f={}|mg={}|sm={}",
            q.user_id,
            q.session_id.map(|s| s.to_string()).unwrap_or_default(),
            q.patterns.source.join(","),
            q.interval.canonical(),
            self.start_given
                .map_or("now-7d".to_string(), |t| t.timestamp_micros().to_string()),
            self.end_given
                .map_or("now".to_string(), |t| t.timestamp_micros().to_string()),
            q.agg.map_or("default", |a| a.name()),
            u8::from(q.approx),
            q.tz.name(),
            q.fill.name(),
            q.max_gap.map(|g| g.seconds()).unwrap_or(0),
            q.smooth.unwrap_or(0),
        )
    }

    /// The range reaches the present or the future: its answer may change as time
    /// passes, so it is cached for `CACHE_TTL_RECENT_SECS` only.
    fn recent(&self) -> bool {
        self.end_given.is_none_or(|e| e >= self.now)
    }
}

/// What the service needs to answer queries; built once at start.
pub struct Queries {
    /// The primary (for the user's generation) and the replicas that may answer.
    pub reads: Reads,
    pub cache: Cache,
    pub catalogue: Catalogue,
    /// Knows the engine storing the points.
    pub partitions: PartitionManager,
    pub metrics: Arc<Metrics>,
    /// Uncached queries being computed, at most `QUERY_CONCURRENCY`.
    pub gate: Arc<Semaphore>,
    pub settings: QuerySettings,
}

/// The settings of the query path.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// `REDIS_PREFIX`.
    pub prefix: String,
    /// `CACHE_TTL_SECS`.
    pub ttl: Duration,
    /// `CACHE_TTL_RECENT_SECS`.
    pub ttl_recent: Duration,
    /// `QUERY_QUEUE_TIMEOUT_MS`.
    pub queue_timeout: Duration,
    /// `ROLLUPS`: whether whole buckets may be read from rollups.
    pub rollups: bool,
}

/// A query's answer: the JSON body and whether the cache had it.
pub struct Answer {
    pub body: Vec<u8>,
    pub hit: bool,
}

/// The longest [`Queries::forget_user`] spends removing a user's answers from the cache.
const FORGET_BUDGET: Duration = Duration::from_secs(5);

impl Queries {
    /// What every cache key of `user`'s answers starts with.
    fn user_prefix(&self, user: uuid::Uuid) -> String {
        format!("{}:ts:v2:{user}:", self.settings.prefix)
    }

    /// Removes `user`'s cached answers (all unreachable already once the user's
    /// generation moved: this frees them, and takes them out of Redis, at once); returns
    /// how many went. The in-process caches of other replicas keep theirs until their TTL.
    pub async fn forget_user(&self, user: uuid::Uuid) -> usize {
        self.cache
            .remove_prefixed(&self.user_prefix(user), FORGET_BUDGET)
            .await
    }

    /// The answer to `q`, from the cache or computed (in line) and then cached. The
    /// caller has already checked that its token may read `q`'s user.
    pub async fn answer(&self, q: CachedQuery) -> Result<Answer, ApiError> {
        let user = q.query.user_id;
        let snapshot = self.catalogue.snapshot();
        let mut query = q.query.clone();
        query.rollups = self.settings.rollups;
        query.engine = self.partitions.known_mode().unwrap_or(query.engine);
        // With the generation, in the same round trip, the hours awaiting the rollup job
        // that the plan must not read from rollup rows (the statement checks them: see
        // `run_assuming`).
        let probe = run::pending_probe(&snapshot, &query);
        let keep = query.engine != crate::db::maintenance::StorageMode::Citus;
        let (generation, assumed) = db::run(self.reads.primary(), move |conn| {
            Ok(match probe {
                Some((ids, from, to)) => {
                    let (g, rows) =
                        generations::current_and_pending(conn, user, &ids, (from, to), keep)?;
                    (g, run::pending_of(rows))
                }
                None => (generations::current(conn, user)?, Pending::default()),
            })
        })
        .await?;
        // `v2`: the version of the answer's shape, so that answers cached by an older
        // release (bare `null` for a multi-field bucket) are never served by this one.
        let key = format!(
            "{}{generation}:{}:{}",
            self.user_prefix(user),
            snapshot.version,
            q.key()
        );
        if let Some(body) = self.cache.get(&key).await {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Answer { body, hit: true });
        }
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        let slot = tokio::time::timeout(
            self.settings.queue_timeout,
            self.gate.clone().acquire_owned(),
        )
        .await
        .map_err(|_| {
            ApiError::Unavailable(format!(
                "Too many queries at once: this one did not start within {} ms (QUERY_QUEUE_TIMEOUT_MS; QUERY_CONCURRENCY queries are computed at a time).",
                self.settings.queue_timeout.as_millis()
            ))
        })?
        .map_err(ApiError::internal)?;
        let ttl = if q.recent() {
            self.settings.ttl_recent
        } else {
            self.settings.ttl
        };
        // The slot goes with the work: a client that leaves does not free it early. Any
        // server that has replayed the generation the key names answers.
        let partitions = self.partitions.clone();
        let need = Need::Replayed { user, generation };
        let planned = run::Planned::new(&snapshot, &query, assumed);
        let generic = planned.runs_generic(query.engine);
        let metrics = self.metrics.clone();
        let body = self
            .reads
            .run_query(need, generic, slot, move |conn| {
                query.engine = partitions.mode(conn)?;
                let (response, replans) = run::run_planned(conn, &query, planned.clone())?;
                metrics
                    .query_replans
                    .fetch_add(u64::from(replans), Ordering::Relaxed);
                serde_json::to_vec(&response).map_err(ApiError::internal)
            })
            .await?;
        self.cache.set(&key, body.clone(), ttl).await;
        Ok(Answer { body, hit: false })
    }
}
