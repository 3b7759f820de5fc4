//! All SQL lives under this module: the connection pool, migrations, the partition
//! manager and one file per table.
//!
//! Diesel is synchronous. Handlers and services reach the database only through
//! [`run`], which moves the work onto actix's blocking pool, keeps the tracing span and
//! turns a pool timeout into a 503.

pub mod aggregates;
pub mod api_tokens;
pub mod compression;
pub mod erasure;
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
pub mod replicas;
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
    /// Whether the connection writes: it gets ingest's staging table (a temporary table,
    /// which a hot standby refuses).
    writes: bool,
    /// Whether the session plans kept statements generically (a query pool's
    /// connections: see [`prepared::generic_session`]).
    generic_plans: bool,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        let sql = format!(
            "SET statement_timeout = {};
             SET jit = {};
             SET TimeZone = 'UTC';
             SET application_name = 'seriesd';
             {}{}",
            self.statement_timeout.as_millis(),
            if self.jit { "on" } else { "off" },
            if self.writes {
                points::STAGING_TABLE_DDL
            } else {
                ""
            },
            if self.generic_plans {
                prepared::GENERIC_SESSION
            } else {
                ""
            },
        );
        conn.batch_execute(&sql)
            .map_err(diesel::r2d2::Error::QueryError)?;
        if self.generic_plans {
            prepared::mark_generic_session(conn);
        }
        Ok(())
    }
}

/// Connections of the background jobs' own pool (see [`build_pool`]).
pub const JOB_CONNECTIONS: u32 = 3;

/// Builds a pool of at most `size` connections to the primary without connecting, so
/// that the service starts (and `/health/` answers 503) while the database is down.
/// Requests use one of `DB_POOL_SIZE`; the background jobs one of [`JOB_CONNECTIONS`],
/// so that a saturating load never queues the rollup job behind requests (its lag grew
/// from ~2.5 s to ~5 s when it waited for a connection among 32 clients' requests).
pub fn build_pool(settings: &Settings, size: u32) -> DbPool {
    pool_of(
        settings.database_url.as_str(),
        setup(settings, true),
        size,
        settings.db_pool_timeout,
    )
}

/// Builds a pool of `DB_POOL_SIZE` read-only connections to the replica at `url`
/// (no staging table), whose checkouts wait at most `checkout`; it connects on first
/// use, like [`build_pool`].
pub fn build_read_pool(settings: &Settings, url: &str, checkout: Duration) -> DbPool {
    pool_of(url, setup(settings, false), settings.db_pool_size, checkout)
}

/// Builds the pool of `QUERY_CONCURRENCY` connections to the primary on which aggregate
/// queries run their statement: their sessions plan kept statements generically, so that
/// such a statement runs alone, without a transaction to set the plan mode around it
/// (see [`prepared::generic_session`]). No staging table: they never write.
pub fn build_query_pool(settings: &Settings) -> DbPool {
    let setup = SessionSetup {
        generic_plans: true,
        ..setup(settings, false)
    };
    let size = u32::try_from(settings.query_concurrency).unwrap_or(u32::MAX);
    pool_of(
        settings.database_url.as_str(),
        setup,
        size.max(1),
        settings.db_pool_timeout,
    )
}

fn setup(settings: &Settings, writes: bool) -> SessionSetup {
    SessionSetup {
        statement_timeout: settings.statement_timeout,
        jit: settings.db_jit,
        writes,
        generic_plans: false,
    }
}

fn pool_of(url: &str, setup: SessionSetup, size: u32, checkout: Duration) -> DbPool {
    let manager = Manager {
        url: url.to_string(),
        setup,
    };
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(size.min(2)))
        .connection_timeout(checkout)
        // A connection that failed is marked broken by `run` and closed on return, so
        // checkouts need no round trip.
        .test_on_check_out(false)
        .build_unchecked(manager)
}

/// Whether a transaction that failed with `e` may simply be run again: a serialization
/// failure (SQLSTATE `40001`, which diesel reports as its own kind) or a deadlock
/// (`40P01`, on one server or across Citus nodes). Diesel keeps the SQLSTATE of the codes it has no kind for to itself, so a
/// deadlock is known by PostgreSQL's primary message, which it writes in English unless
/// the server's `lc_messages` says otherwise; this is the one place that matches text.
/// The text of a multi-row `VALUES` list of `rows` rows, each of `types.len()` bound
/// values cast to those types: `($1::uuid, $2::timestamptz), ($3::uuid, ...)`. Citus
/// splits such a list by shard on the coordinator and sends each shard its rows, where an
/// `INSERT ... SELECT FROM unnest(...)` would first gather the rows as an intermediate
/// result; on one server the two cost the same.
pub fn values_list(rows: usize, types: &[&str]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(rows * types.len() * 16);
    let mut n = 0;
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for (i, ty) in types.iter().enumerate() {
            n += 1;
            let _ = write!(text, "{}${n}::{ty}", if i == 0 { "" } else { ", " });
        }
        text.push(')');
    }
    text
}

/// Rows per statement for a multi-row `VALUES` of `columns` bound values a row, within
/// PostgreSQL's 65,535 bound values per statement.
pub fn values_chunk(columns: usize) -> usize {
    (60_000 / columns.max(1)).max(1)
}

pub fn is_retryable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::SerializationFailure, _) => true,
        // PostgreSQL's own deadlock, and Citus's across nodes (its detector cancels one
        // of the transactions with this message).
        E::DatabaseError(K::Unknown, info) => {
            info.message().starts_with("deadlock detected")
                || info
                    .message()
                    .contains("involved in a distributed deadlock")
        }
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
        run_on(&pool, f)
    })
    .await
    .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
}

/// Runs `f` with a connection of `pool` on this thread (a blocking one); a connection
/// that failed is closed when it goes back.
fn run_on<F, T>(pool: &DbPool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError>,
{
    let mut conn = pool.get()?;
    let result = f(&mut conn);
    if matches!(result, Err(ApiError::Unavailable(_))) {
        conn.mark_broken();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_number_their_placeholders_row_by_row() {
        assert_eq!(
            values_list(2, &["uuid", "int8"]),
            "($1::uuid, $2::int8), ($3::uuid, $4::int8)"
        );
        assert_eq!(values_list(0, &["uuid"]), "");
        assert!(values_chunk(4) * 4 <= 65_535);
    }
}
