//! Reads on hot standbys of the primary (`DATABASE_REPLICA_URLS`), never missing a
//! write acknowledged before the read began.
//!
//! A read names the user whose data it answers and that user's write generation as the
//! primary has it when the read starts ([`Need`]): every write that changes what a read
//! of the user answers (ingest, deleting a session, each step of deleting a range or
//! erasing a user, deleting a series' points, retention) increases the generation in the
//! writing transaction, so a write
//! acknowledged before the read began has a generation no greater than the one read.
//! A replica replays the primary's transactions in commit order, each whole, so once its
//! own `user_generations` row shows that generation it holds every such write. The read
//! is therefore tried on a usable replica ([`replica::State::Ok`]) only after that
//! replica's own read of the generation, on the same connection and so in a snapshot no
//! older than the read's, shows it; a replica that has not replayed that far passes the
//! read on to the next, and the primary answers when none can. No write pays for this:
//! the position a replica must have replayed is the generation row itself, wherever in
//! the WAL its commit landed.
//!
//! Health: each replica is checked by a task of its own ([`checks`]); its lag is measured
//! against the primary's WAL positions ([`lag`]). A replica that is down, unreachable,
//! further behind than `REPLICA_MAX_LAG_MS`, or no standby of the primary serves no reads
//! until a check finds it fit again; a read that loses its connection on a replica marks
//! it down at once and is answered by the next replica or the primary, so a replica's
//! failure fails no request.

mod checks;
mod lag;
mod replica;

pub use replica::{State, Status};

use super::{DbPool, generations, run_holding, run_on};
use crate::config::{DatabaseUrl, Settings};
use crate::error::ApiError;
use diesel::pg::PgConnection;
use replica::Replica;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// `url` with libpq options, unless it sets them, that bound how long a connection to a
/// server that vanished (no refusal, no answer) waits: to connect (libpq waits at least
/// 2 s whatever it is told; the checks and reads give up after `timeout` anyway), and,
/// through TCP keepalives, for an answer (a few seconds past `timeout`).
fn bounded(url: &DatabaseUrl, timeout: Duration) -> String {
    let secs = timeout.as_secs().max(1);
    url.with_default_option("connect_timeout", &secs.max(2).to_string())
        .with_default_option("keepalives_idle", &secs.to_string())
        .with_default_option("keepalives_interval", "1")
        .with_default_option("keepalives_count", "3")
        .as_str()
        .to_string()
}

/// Where a read may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// On the primary only.
    Primary,
    /// On any server whose `user_generations` row for `user` shows at least
    /// `generation`.
    Replayed { user: Uuid, generation: i64 },
}

/// A read tried on one replica.
enum Attempt<T> {
    /// The read's answer (an error too).
    Served(Result<T, ApiError>),
    /// The replica has not replayed the user's latest write yet.
    Behind,
    /// The replica failed in a way the primary may not.
    Failed,
}

/// The primary's request pool and the replicas; cheap to clone.
#[derive(Clone)]
pub struct Reads {
    inner: Arc<Inner>,
}

struct Inner {
    primary: DbPool,
    /// The primary's pool for aggregate queries' kept statements
    /// ([`super::build_query_pool`]).
    queries: Option<DbPool>,
    primary_url: String,
    replicas: Vec<Arc<Replica>>,
    settings: crate::config::ReplicaSettings,
    /// Turns: reads spread over the usable replicas in rotation.
    next: AtomicUsize,
    /// Reads answered by the primary.
    primary_reads: AtomicU64,
}

/// One replica, for `/health/` and `/metrics`.
#[derive(Debug, Clone)]
pub struct ReplicaReport {
    pub name: String,
    pub status: Status,
    pub reads: u64,
    pub behind: u64,
    pub failures: u64,
}

impl Reads {
    /// `primary` is the requests' pool; each replica of `settings` gets a pool of its
    /// own, connected on first use. No check runs before [`Self::start_checks`].
    pub fn new(settings: &Settings, primary: DbPool, queries: Option<DbPool>) -> Self {
        let r = &settings.replicas;
        let replicas = r
            .urls
            .iter()
            .map(|url| {
                let conn_url = bounded(url, r.timeout);
                let (pool_settings, pool_url, timeout) =
                    (settings.clone(), conn_url.clone(), r.timeout);
                Arc::new(Replica::new(
                    url.display_name(),
                    conn_url,
                    Box::new(move || super::build_read_pool(&pool_settings, &pool_url, timeout)),
                ))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                primary,
                queries,
                primary_url: bounded(&settings.database_url, r.timeout),
                replicas,
                settings: r.clone(),
                next: AtomicUsize::new(0),
                primary_reads: AtomicU64::new(0),
            }),
        }
    }

    /// The primary's request pool.
    pub fn primary(&self) -> &DbPool {
        &self.inner.primary
    }

    /// Starts each replica's health check on the current runtime.
    pub fn start_checks(&self) {
        for r in &self.inner.replicas {
            checks::spawn(
                r.clone(),
                self.inner.primary_url.clone(),
                self.inner.settings.clone(),
            );
        }
    }

    /// The usable replicas, starting with the next in turn.
    fn usable(&self) -> Vec<Arc<Replica>> {
        let all = &self.inner.replicas;
        if all.is_empty() {
            return Vec::new();
        }
        let first = self.inner.next.fetch_add(1, Ordering::Relaxed) % all.len();
        all.iter()
            .cycle()
            .skip(first)
            .take(all.len())
            .filter(|r| r.usable())
            .cloned()
            .collect()
    }

    /// What a read of `user`'s data needs: the user's generation, read on the primary
    /// (one round trip) only when some replica could serve the read.
    pub async fn need(&self, user: Uuid) -> Result<Need, ApiError> {
        if self.inner.replicas.iter().all(|r| !r.usable()) {
            return Ok(Need::Primary);
        }
        let generation = super::run(&self.inner.primary, move |conn| {
            Ok(generations::current(conn, user)?)
        })
        .await?;
        Ok(Need::Replayed { user, generation })
    }

    /// Runs the read `f` as `need` allows: on a usable replica that has replayed what it
    /// needs, else on the primary, keeping `held` until the connection is back (see
    /// [`run_holding`]). `f` may be called again, on the next server, after it failed on
    /// a replica: it must not keep what a failed call did.
    pub async fn run<H, F, T>(&self, need: Need, held: H, f: F) -> Result<T, ApiError>
    where
        H: Send + 'static,
        F: FnMut(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.run_query(need, false, held, f).await
    }

    /// As [`Self::run`], but on the primary on a connection of the query pool when
    /// `generic` (the read runs a kept statement: see [`super::prepared::load_alone`]).
    pub async fn run_query<H, F, T>(
        &self,
        need: Need,
        generic: bool,
        held: H,
        f: F,
    ) -> Result<T, ApiError>
    where
        H: Send + 'static,
        F: FnMut(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let primary = match &self.inner.queries {
            Some(queries) if generic => queries.clone(),
            _ => self.inner.primary.clone(),
        };
        let (user, generation, candidates) = match need {
            Need::Replayed { user, generation } => (user, generation, self.usable()),
            Need::Primary => (Uuid::nil(), 0, Vec::new()),
        };
        if candidates.is_empty() {
            self.inner.primary_reads.fetch_add(1, Ordering::Relaxed);
            return run_holding(&primary, held, f).await;
        }
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        actix_web::web::block(move || {
            let _held = held;
            let _entered = span.enter();
            let mut f = f;
            for replica in &candidates {
                if let Attempt::Served(result) = replica.attempt(user, generation, &mut f) {
                    return result;
                }
            }
            inner.primary_reads.fetch_add(1, Ordering::Relaxed);
            run_on(&primary, f)
        })
        .await
        .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
    }

    /// Reads the primary answered (those no replica could serve included).
    pub fn primary_reads(&self) -> u64 {
        self.inner.primary_reads.load(Ordering::Relaxed)
    }

    /// Each replica's state and counts, in the order of `DATABASE_REPLICA_URLS`.
    pub fn reports(&self) -> Vec<ReplicaReport> {
        self.inner
            .replicas
            .iter()
            .map(|r| ReplicaReport {
                name: r.name.clone(),
                status: r.status(),
                reads: r.reads.load(Ordering::Relaxed),
                behind: r.behind.load(Ordering::Relaxed),
                failures: r.failures.load(Ordering::Relaxed),
            })
            .collect()
    }
}
