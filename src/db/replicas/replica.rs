//! One replica: its pool, its state as the last check (or a failed read) left it, and a
//! read tried on it.

use super::Attempt;
use crate::db::{Conn, DbPool, generations, maintenance};
use crate::error::ApiError;
use diesel::pg::PgConnection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// What a replica is good for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not checked yet.
    Starting,
    /// Serves reads.
    Ok,
    /// Answers, but further behind than `REPLICA_MAX_LAG_MS` (or by an unknown amount).
    Lagging,
    /// Does not answer, or a read on it lost its connection; checked again with backoff.
    Down,
    /// Answers, but is no hot standby of the primary (promoted, a copy of another
    /// cluster, a Citus coordinator).
    Unusable,
}

impl State {
    /// As `/health/` and `/metrics` name it.
    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ok => "ok",
            State::Lagging => "lagging",
            State::Down => "down",
            State::Unusable => "unusable",
        }
    }
}

/// The state with what goes with it.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    /// How far behind the primary, when the replica answered its last check.
    pub lag: Option<Duration>,
    /// Why the replica serves no reads.
    pub detail: Option<String>,
}

/// A replica, its pool and its counters.
pub struct Replica {
    /// `host:port/database` (no credentials).
    pub name: String,
    /// Connection URL (with the connect timeout).
    pub(super) url: String,
    pool: RwLock<DbPool>,
    /// Set when the replica went down or unusable: its pooled connections may all be
    /// dead, so the pool is replaced when it serves again.
    stale_pool: AtomicBool,
    make_pool: Box<dyn Fn() -> DbPool + Send + Sync>,
    status: Mutex<Status>,
    /// `status.state == Ok`, read without the lock by every read.
    usable: AtomicBool,
    /// Reads it served.
    pub reads: AtomicU64,
    /// Reads sent elsewhere: it had not replayed the user's latest write yet.
    pub behind: AtomicU64,
    /// Reads that failed on it and were answered elsewhere.
    pub failures: AtomicU64,
}

impl Replica {
    pub(super) fn new(
        name: String,
        url: String,
        make_pool: Box<dyn Fn() -> DbPool + Send + Sync>,
    ) -> Self {
        Self {
            name,
            url,
            pool: RwLock::new(make_pool()),
            stale_pool: AtomicBool::new(false),
            make_pool,
            status: Mutex::new(Status {
                state: State::Starting,
                lag: None,
                detail: None,
            }),
            usable: AtomicBool::new(false),
            reads: AtomicU64::new(0),
            behind: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether reads may go here now.
    pub fn usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the state; the first time a replica that was down or unusable serves again,
    /// it gets a new pool. Logs changes of state.
    pub(super) fn set(&self, state: State, lag: Option<Duration>, detail: Option<String>) {
        if state == State::Ok && self.stale_pool.swap(false, Ordering::Relaxed) {
            *self.pool.write().unwrap_or_else(|e| e.into_inner()) = (self.make_pool)();
        }
        // Down, or no standby any more (promoted, replaced): its connections may be dead
        // or lead elsewhere by the time it serves again.
        if matches!(state, State::Down | State::Unusable) {
            self.stale_pool.store(true, Ordering::Relaxed);
        }
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.state != state {
            match state {
                State::Ok => tracing::info!(replica = %self.name, "replica serves reads"),
                _ => tracing::warn!(replica = %self.name, state = state.name(),
                    detail = detail.as_deref().unwrap_or(""), "replica serves no reads"),
            }
        }
        self.usable.store(state == State::Ok, Ordering::Relaxed);
        *status = Status { state, lag, detail };
    }

    /// Marks the replica down after a failed read, keeping the last lag known.
    fn set_down(&self, why: String) {
        let lag = self.status().lag;
        self.set(State::Down, lag, Some(why));
    }

    fn pool(&self) -> DbPool {
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tries the read `f` for `user` here: on a connection that has replayed the
    /// user's write `generation` (its own read of the generation, in a snapshot no
    /// older than `f`'s, shows it), else [`Attempt::Behind`]. A failure that the
    /// primary may not share (a lost connection, a query cancelled by a conflict with
    /// recovery, no pooled connection within `REPLICA_TIMEOUT_MS`) is
    /// [`Attempt::Failed`]; any other answer, an error included, is the read's.
    pub(super) fn attempt<T>(
        &self,
        user: Uuid,
        generation: i64,
        f: &mut impl FnMut(&mut PgConnection) -> Result<T, ApiError>,
    ) -> Attempt<T> {
        let pool = self.pool();
        let mut conn = match pool.get() {
            Ok(c) => c,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let state = pool.state();
                // Every connection busy is a busy replica, not a dead one.
                if state.connections < pool.max_size() {
                    self.set_down(format!("no connection: {e}"));
                }
                return Attempt::Failed;
            }
        };
        match generations::current(&mut conn, user) {
            Ok(have) if have >= generation => {}
            Ok(_) => {
                self.behind.fetch_add(1, Ordering::Relaxed);
                return Attempt::Behind;
            }
            Err(e) => {
                self.failed(&mut conn, &e.to_string());
                return Attempt::Failed;
            }
        }
        match f(&mut conn) {
            Ok(value) => {
                self.reads.fetch_add(1, Ordering::Relaxed);
                Attempt::Served(Ok(value))
            }
            // A statement timeout on a live connection: the primary would take as long.
            Err(e @ ApiError::Unavailable(_)) if maintenance::ping(&mut conn).is_ok() => {
                Attempt::Served(Err(e))
            }
            // A lost connection, or a query cancelled by a conflict with recovery.
            Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => {
                self.failed(&mut conn, &e.to_string());
                Attempt::Failed
            }
            Err(e) => Attempt::Served(Err(e)),
        }
    }

    /// Counts a failed read; when the connection no longer answers, closes it and marks
    /// the replica down.
    fn failed(&self, conn: &mut Conn, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(replica = %self.name, error = %why, "read failed on the replica; answering elsewhere");
        if maintenance::ping(conn).is_err() {
            conn.mark_broken();
            self.set_down(format!("a read lost its connection: {why}"));
        }
    }
}
