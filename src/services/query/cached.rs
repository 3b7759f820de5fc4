//! Cached, queued answers to `GET /api/timeseries/`.
//!
//! An answer is cached under a key made of the user's write generation, the catalogue's
//! version and the query's normalised parameters, so a write for the user (or a change
//! of the catalogue) makes every cached answer for that user unreachable: answers are
//! never stale. Uncached queries wait in line (`QUERY_CONCURRENCY` at a time, first come
//! first served) for at most `QUERY_QUEUE_TIMEOUT_MS`.

use super::{TimeseriesQuery, run};
use crate::cache::Cache;
use crate::db::{self, DbPool, generations};
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
            "u={}|s={}|p={}|i={}|st={}|en={}|a={}|tz={}|f={}|sm={}",
            q.user_id,
            q.session_id.map(|s| s.to_string()).unwrap_or_default(),
            q.patterns.source.join(","),
            q.interval.canonical(),
            self.start_given
                .map_or("now-7d".to_string(), |t| t.timestamp_micros().to_string()),
            self.end_given
                .map_or("now".to_string(), |t| t.timestamp_micros().to_string()),
            q.agg.map_or("default", |a| a.name()),
            q.tz.name(),
            q.fill.name(),
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
    pub pool: DbPool,
    pub cache: Cache,
    pub catalogue: Catalogue,
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

impl Queries {
    /// The answer to `q`, from the cache or computed (in line) and then cached. The
    /// caller has already checked that its token may read `q`'s user.
    pub async fn answer(&self, q: CachedQuery) -> Result<Answer, ApiError> {
        let user = q.query.user_id;
        let generation = db::run(&self.pool, move |conn| {
            Ok(generations::current(conn, user)?)
        })
        .await?;
        let snapshot = self.catalogue.snapshot();
        let key = format!(
            "{}:ts:v1:{user}:{generation}:{}:{}",
            self.settings.prefix,
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
        let mut query = q.query;
        query.rollups = self.settings.rollups;
        // The slot goes with the work: a client that leaves does not free it early.
        let body = db::run(&self.pool, move |conn| {
            let _slot = slot;
            let response = run(conn, &snapshot, &query)?;
            serde_json::to_vec(&response).map_err(ApiError::internal)
        })
        .await?;
        self.cache.set(&key, body.clone(), ttl).await;
        Ok(Answer { body, hit: false })
    }
}
