//! All SQL lives under this module: the connection pool, migrations, the partition
//! manager and one file per table.
//!
//! Diesel is synchronous. Handlers and services reach the database only through
//! [`run`], which moves the work onto actix's blocking pool, keeps the tracing span and
//! turns a pool timeout into a 503.

pub mod aggregates;
pub mod generations;
pub mod maintenance;
pub mod metric_types;
pub mod partitions;
pub mod points;
pub mod retrieval;
pub mod schema;
pub mod sessions;

use crate::config::Settings;
use crate::error::ApiError;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection};
use std::time::Duration;

pub type DbPool = r2d2::Pool<ConnectionManager<PgConnection>>;
pub type PooledConn = r2d2::PooledConnection<ConnectionManager<PgConnection>>;

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

/// Builds the pool without connecting, so that the service starts (and `/health/`
/// answers 503) while the database is down.
pub fn build_pool(settings: &Settings) -> DbPool {
    let manager = ConnectionManager::<PgConnection>::new(settings.database_url.as_str());
    r2d2::Pool::builder()
        .max_size(settings.db_pool_size)
        .min_idle(Some(settings.db_pool_size.min(2)))
        .connection_timeout(settings.db_pool_timeout)
        .test_on_check_out(true)
        .connection_customizer(Box::new(SessionSetup {
            statement_timeout: settings.statement_timeout,
            jit: settings.db_jit,
        }))
        .build_unchecked(manager)
}

/// Runs `f` with a pooled connection on the blocking thread pool.
pub async fn run<F, T>(pool: &DbPool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    actix_web::web::block(move || {
        let _entered = span.enter();
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
}
