//! All SQL lives under this module: the connection pool, migrations, the partition
//! manager and one file per table.
//!
//! Diesel is synchronous. Handlers and services reach the database only through
//! [`run`], which moves the work onto actix's blocking pool, keeps the tracing span and
//! turns a pool timeout into a 503.

pub mod aggregates;
pub mod api_tokens;
pub mod generations;
pub mod heavy;
pub mod job_runs;
pub mod locks;
pub mod maintenance;
pub mod metric_types;
pub mod partials;
pub mod partitions;
pub mod points;
pub mod prepared;
pub mod retrieval;
pub mod rollups;
pub mod schema;
pub mod sessions;
pub mod tls;

use crate::config::Settings;
use crate::error::ApiError;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::CustomizeConnection;
use std::time::Duration;

pub type DbPool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// A pooled connection that remembers when it failed at the connection level, so the
/// pool drops it instead of handing it out again (no `SELECT 1` on every checkout).
pub struct Conn {
    inner: PgConnection,
    broken: bool,
}

impl std::ops::Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner
    }
}

impl Conn {
    /// Marks the connection unusable: the pool closes it when it comes back.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

/// Opens one connection. Every connection of the service is opened here, so that OpenSSL
/// is set up before libpq uses it (see [`tls`]).
pub fn connect(url: &str) -> diesel::ConnectionResult<PgConnection> {
    tls::keep_openssl_until_exit();
    PgConnection::establish(url)
}

/// Opens connections with the service's session settings.
pub struct Manager {
    url: String,
    setup: SessionSetup,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        let mut inner = connect(&self.url).map_err(diesel::r2d2::Error::ConnectionError)?;
        self.setup.on_acquire(&mut inner)?;
        Ok(Conn {
            inner,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.inner
            .batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || diesel::r2d2::R2D2Connection::is_broken(&mut conn.inner)
    }
}

/// Per-connection settings, applied when the pool opens a connection.
#[derive(Debug, Clone)]
struct SessionSetup {
    statement_timeout: Duration,
    jit: bool,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        let sql = format!(
            "SET statement_timeout = {};
             SET jit = {};
             SET TimeZone = 'UTC';
             SET application_name = 'seriesd';
             {}",
            self.statement_timeout.as_millis(),
            if self.jit { "on" } else { "off" },
            points::STAGING_TABLE_DDL,
        );
        conn.batch_execute(&sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Connections of the background jobs' own pool (see [`build_pool`]).
pub const JOB_CONNECTIONS: u32 = 3;

/// Builds a pool of at most `size` connections without connecting, so that the service
/// starts (and `/health/` answers 503) while the database is down. Requests use one of
/// `DB_POOL_SIZE`; the background jobs one of [`JOB_CONNECTIONS`], so that a saturating
/// load never queues the rollup job behind requests (its lag grew from ~2.5 s to ~5 s
/// when it waited for a connection among 32 clients' requests).
pub fn build_pool(settings: &Settings, size: u32) -> DbPool {
    let manager = Manager {
        url: settings.database_url.as_str().to_string(),
        setup: SessionSetup {
            statement_timeout: settings.statement_timeout,
            jit: settings.db_jit,
        },
    };
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(size.min(2)))
        .connection_timeout(settings.db_pool_timeout)
        // A connection that failed is marked broken by `run` and closed on return, so
        // checkouts need no round trip.
        .test_on_check_out(false)
        .build_unchecked(manager)
}

/// Whether a transaction that failed with `e` may simply be run again: a serialization
/// failure (SQLSTATE `40001`, which diesel reports as its own kind) or a deadlock
/// (`40P01`). Diesel keeps the SQLSTATE of the codes it has no kind for to itself, so a
/// deadlock is known by PostgreSQL's primary message, which it writes in English unless
/// the server's `lc_messages` says otherwise; this is the one place that matches text.
pub fn is_retryable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::SerializationFailure, _) => true,
        E::DatabaseError(K::Unknown, info) => info.message().starts_with("deadlock detected"),
        _ => false,
    }
}

/// Whether a write failed because no partition of `points` holds a row's time: SQLSTATE
/// `23514` (a check violation; the tables ingest writes have no `CHECK` constraints of
/// their own), e.g. after another process's retention dropped a week this one had
/// seen.
pub fn is_missing_partition(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    matches!(e, E::DatabaseError(K::CheckViolation, _))
}

/// Runs `f` with a pooled connection on the blocking thread pool.
pub async fn run<F, T>(pool: &DbPool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    run_holding(pool, (), f).await
}

/// Like [`run`], keeping `held` (a turn in a queue) until the connection is back in the
/// pool, so that whoever waits for the turn finds a connection free.
pub async fn run_holding<H, F, T>(pool: &DbPool, held: H, f: F) -> Result<T, ApiError>
where
    H: Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    actix_web::web::block(move || {
        // Declared first, so dropped last: after the connection went back.
        let _held = held;
        let _entered = span.enter();
        let mut conn = pool.get()?;
        let result = f(&mut conn);
        if matches!(result, Err(ApiError::Unavailable(_))) {
            conn.mark_broken();
        }
        result
    })
    .await
    .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
}
