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
    /// Weekly partitions, as natively, of a table distributed by user over a Citus
    /// cluster (this database is its coordinator).
    Citus,
}

impl StorageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timescaledb => "timescaledb",
            Self::NativePartitions => "native-partitions",
            Self::Citus => "citus",
        }
    }

    /// Whether the service makes and drops `points`' weekly partitions itself.
    pub fn has_weekly_partitions(self) -> bool {
        matches!(self, Self::NativePartitions | Self::Citus)
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
    if has_extension(&mut conn, "citus")? {
        distribute(&mut conn)?;
    }
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

/// Tables whose rows belong to one user: distributed by `user_id` under Citus, and
/// co-located, so that every statement about one user runs on one node.
const USER_TABLES: [&str; 11] = [
    "sessions",
    "points",
    "user_generations",
    "rollup_hourly",
    "rollup_daily",
    "rollup_monthly",
    "rollup_values_hourly",
    "rollup_values_daily",
    "rollup_values_monthly",
    "rollup_invalidations",
    "rollup_failures",
];

/// Tables every node reads whole: Citus reference tables. (Tokens and job runs stay on
/// the coordinator, which every service connection goes through.)
const CATALOGUE_TABLES: [&str; 2] = ["metric_types", "catalogue_version"];

/// Distributes the tables over the Citus cluster this database coordinates (nodes,
/// databases and the extension on each are the operator's). Idempotent: tables already
/// distributed are left as they are.
fn distribute(conn: &mut PgConnection) -> QueryResult<()> {
    // Citus refuses triggers on reference tables; the application bumps the catalogue
    // version itself (see `db::metric_types`).
    // (Citus refuses even `DROP TRIGGER IF EXISTS` on a reference table: ask first.)
    let trigger = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'metric_types_changed') AS flag",
    )
    .get_result::<Flag>(conn)?
    .flag;
    if trigger {
        conn.batch_execute("DROP TRIGGER metric_types_changed ON metric_types")?;
    }
    let distributed = |conn: &mut PgConnection, table: &str| {
        diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1::regclass) AS flag",
        )
        .bind::<diesel::sql_types::Text, _>(table)
        .get_result::<Flag>(conn)
        .map(|f| f.flag)
    };
    for table in CATALOGUE_TABLES {
        if !distributed(conn, table)? {
            diesel::sql_query("SELECT create_reference_table($1::regclass)")
                .bind::<diesel::sql_types::Text, _>(table)
                .execute(conn)?;
        }
    }
    let mut colocate_with = "none";
    for table in USER_TABLES {
        if !distributed(conn, table)? {
            diesel::sql_query(
                "SELECT create_distributed_table($1::regclass, 'user_id', colocate_with => $2)",
            )
            .bind::<diesel::sql_types::Text, _>(table)
            .bind::<diesel::sql_types::Text, _>(colocate_with)
            .execute(conn)?;
        }
        colocate_with = USER_TABLES[0];
    }
    // Owners by session id: a look-up by id reaches the shard of that id.
    if !distributed(conn, "session_owners")? {
        conn.batch_execute(
            "SELECT create_distributed_table('session_owners', 'session_id', colocate_with => 'none')",
        )?;
    }
    tracing::info!("tables distributed by user over the Citus cluster");
    Ok(())
}

/// Whether this database is a Citus coordinator (the extension is created in it): its
/// per-user statements must then name their user for Citus to route them to one shard.
pub fn is_citus(conn: &mut PgConnection) -> QueryResult<bool> {
    has_extension(conn, "citus")
}

/// Whether `name` is installed in this database.
fn has_extension(conn: &mut PgConnection, name: &str) -> QueryResult<bool> {
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1) AS flag")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Flag>(conn)
        .map(|f| f.flag)
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
    Ok(if !partitioned {
        StorageMode::Timescaledb
    } else if has_extension(conn, "citus")? {
        StorageMode::Citus
    } else {
        StorageMode::NativePartitions
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
