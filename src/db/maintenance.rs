//! Database life cycle: creating the database, running the embedded migrations, and
//! telling which storage mode the points table uses.

use crate::config::DatabaseUrl;
use crate::error::BoxError;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use serde::Serialize;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How points are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageMode {
    /// A TimescaleDB hypertable with 1-week chunks.
    Timescaledb,
    /// A natively range-partitioned table with weekly partitions.
    NativePartitions,
}

impl StorageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timescaledb => "timescaledb",
            Self::NativePartitions => "native-partitions",
        }
    }
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

/// Creates the database named in `url` unless it exists. Returns whether it created it.
pub fn create_database_if_missing(url: &DatabaseUrl) -> Result<bool, BoxError> {
    let name = url.database_name().to_string();
    let mut admin = super::connect(&url.maintenance_url())?;
    let exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS flag")
            .bind::<Text, _>(&name)
            .get_result::<Flag>(&mut admin)?
            .flag;
    if exists {
        return Ok(false);
    }
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match admin.batch_execute(&format!("CREATE DATABASE {quoted}")) {
        Ok(()) => Ok(true),
        // Another process created it between our check and our CREATE.
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("already exists") =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies pending migrations; returns how many ran. Two processes migrating at once
/// are serialised by an advisory lock.
pub fn run_migrations(conn: &mut PgConnection) -> Result<usize, BoxError> {
    conn.batch_execute(&format!(
        "SELECT pg_advisory_lock({})",
        super::locks::MIGRATIONS
    ))?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|applied| applied.len());
    conn.batch_execute(&format!(
        "SELECT pg_advisory_unlock({})",
        super::locks::MIGRATIONS
    ))?;
    result
}

/// `migrate`: create the database if needed, then migrate it.
pub fn migrate(url: &DatabaseUrl) -> Result<usize, BoxError> {
    create_database_if_missing(url)?;
    let mut conn = super::connect(url.as_str())?;
    // Migrations that cut times into hours and days do it in UTC, like the service.
    diesel::connection::SimpleConnection::batch_execute(&mut conn, "SET TimeZone = 'UTC'")?;
    let applied = run_migrations(&mut conn)?;
    if unloaded_timescaledb(&mut conn)? && storage_mode(&mut conn)? == StorageMode::NativePartitions
    {
        tracing::warn!(
            "the timescaledb extension is installed but not in shared_preload_libraries: \
             points use native weekly partitions (preload it and migrate a new database for \
             a hypertable)"
        );
    }
    Ok(applied)
}

/// Whether the server has TimescaleDB installed but not loaded in this database.
fn unloaded_timescaledb(conn: &mut PgConnection) -> QueryResult<bool> {
    diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
                AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS flag",
    )
    .get_result::<Flag>(conn)
    .map(|f| f.flag)
}

/// Which storage mode the migrated `points` table uses.
pub fn storage_mode(conn: &mut PgConnection) -> QueryResult<StorageMode> {
    let partitioned = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table pt
                        WHERE pt.partrelid = to_regclass('points')) AS flag",
    )
    .get_result::<Flag>(conn)?
    .flag;
    Ok(if partitioned {
        StorageMode::NativePartitions
    } else {
        StorageMode::Timescaledb
    })
}

/// Whether the database answers a trivial query.
pub fn ping(conn: &mut PgConnection) -> QueryResult<()> {
    conn.batch_execute("SELECT 1")
}

/// Keeps a week of `job_runs`.
pub fn prune_job_runs(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM job_runs WHERE started_at < now() - interval '7 days'")
        .execute(conn)
}
