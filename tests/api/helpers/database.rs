//! Databases of the tests' own: one per test, created migrated and seeded from the server
//! the tests run against, dropped with the test (leftovers of dead runs swept); and
//! looking up what a test stored.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use seriesd::config::DatabaseUrl;
use seriesd::db::maintenance;
use seriesd::domain::api_token::Scope;
use seriesd::services::{seed, tokens};
use std::time::{SystemTime, UNIX_EPOCH};

/// The server the tests create their databases on.
pub fn server_url() -> String {
    // Every test connects through here first: set OpenSSL up before libpq does, so that
    // the process does not crash at exit (see `seriesd::db::tls`).
    seriesd::db::tls::keep_openssl_until_exit();
    // No GSSAPI: libpq asks Kerberos for credentials on every connect (`gssencmode`
    // defaults to `prefer`), and Kerberos's exit-time destructors abort a process whose
    // pool thread is connecting while it exits. No test uses Kerberos.
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        "postgres://postgres@127.0.0.1:5432/postgres?gssencmode=disable".to_string()
    })
}

/// The storage the test server's databases get, from the server's own settings: Citus
/// where the tests were given its workers, a hypertable where the server preloads
/// TimescaleDB, else native weekly partitions (what `/health/` must report). The suite
/// runs on any (`TEST_DATABASE_URL`).
pub fn expected_storage() -> &'static str {
    if !citus_workers().is_empty() {
        return "citus";
    }
    #[derive(QueryableByName)]
    struct Preloaded {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        timescaledb: bool,
    }
    let mut conn = PgConnection::establish(&server_url()).expect("connect to the test server");
    let preloaded: Preloaded = diesel::sql_query(
        "SELECT current_setting('shared_preload_libraries') ~ 'timescaledb' AS timescaledb",
    )
    .get_result(&mut conn)
    .expect("read shared_preload_libraries");
    if preloaded.timescaledb {
        "timescaledb"
    } else {
        "native-partitions"
    }
}

/// The plan one node runs for a statement whose `EXPLAIN` is `plan`: on Citus, the plan
/// of its one task (failing unless Citus routed the statement to a single shard);
/// elsewhere `plan` itself.
pub fn node_plan(plan: &str) -> String {
    if !plan.starts_with("Custom Scan (Citus") {
        return plan.to_string();
    }
    assert!(
        plan.contains("Task Count: 1"),
        "not routed to one shard:\n{plan}"
    );
    let task: Vec<&str> = plan
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Node:"))
        .skip(1)
        .collect();
    let indent = task.first().map_or(0, |l| l.len() - l.trim_start().len());
    task.iter()
        .map(|l| {
            let l = l.get(indent..).unwrap_or(l);
            l.strip_prefix("->  ").unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The engine the tests' databases run on ([`expected_storage`], asked once).
pub fn engine() -> seriesd::db::maintenance::StorageMode {
    use seriesd::db::maintenance::StorageMode;
    static ENGINE: std::sync::OnceLock<StorageMode> = std::sync::OnceLock::new();
    *ENGINE.get_or_init(|| match expected_storage() {
        "citus" => StorageMode::Citus,
        "timescaledb" => StorageMode::Timescaledb,
        _ => StorageMode::NativePartitions,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
    pub name: String,
    pub url: DatabaseUrl,
}

impl TestDb {
    /// A fresh, empty database name (not created yet).
    pub fn unique_url() -> DatabaseUrl {
        let server = DatabaseUrl::parse(&server_url()).expect("TEST_DATABASE_URL");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("seriesd_test_{}_{}", now_secs(), &id[..12]);
        DatabaseUrl::parse(&server.with_database(&name)).expect("url")
    }

    /// Creates, migrates and seeds a database of its own.
    pub fn create() -> Self {
        sweep_leftovers();
        let url = Self::unique_url();
        if !citus_workers().is_empty() {
            make_citus_database(&url);
        }
        maintenance::migrate(&url).expect("migrate test database");
        let mut conn = PgConnection::establish(url.as_str()).expect("connect");
        seed::seed_metric_types(&mut conn).expect("seed");
        Self {
            name: url.database_name().to_string(),
            url,
        }
    }

    /// A connection set up like the service's (UTC session zone: the query SQL relies on it).
    pub fn conn(&self) -> PgConnection {
        let mut conn =
            PgConnection::establish(self.url.as_str()).expect("connect to test database");
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "SET TimeZone = 'UTC'")
            .expect("set the session zone");
        conn
    }

    /// Creates a token in this database; returns its id and secret.
    pub fn token(&self, scope: Scope) -> (i64, String) {
        let (row, secret) = tokens::create(&mut self.conn(), scope, "test").expect("create token");
        (row.id, secret.expose().to_string())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

pub fn drop_database(name: &str) {
    if let Ok(mut admin) = PgConnection::establish(&server_url()) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
    }
    for port in citus_workers() {
        if let Ok(mut admin) = PgConnection::establish(&worker_url(port, "postgres")) {
            let _ =
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

/// The worker ports of the Citus cluster whose coordinator is the test server
/// (`TEST_CITUS_WORKERS`, comma-separated ports on 127.0.0.1, set by
/// `scripts/on-engine.sh citus`); empty for other engines.
fn citus_workers() -> Vec<u16> {
    std::env::var("TEST_CITUS_WORKERS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

fn worker_url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}?gssencmode=disable")
}

/// Makes `url`'s database a Citus cluster's, as an operator would: the database and the
/// extension on the coordinator and every worker, and the workers added to it (each
/// database of a Citus cluster has its own node list). `seriesd migrate` distributes.
fn make_citus_database(url: &DatabaseUrl) {
    let name = url.database_name();
    let mut admin = PgConnection::establish(&url.maintenance_url()).expect("coordinator");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("create the database on the coordinator");
    let workers = citus_workers();
    for &port in &workers {
        let mut admin = PgConnection::establish(&worker_url(port, "postgres")).expect("worker");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create the database on a worker");
        let mut conn = PgConnection::establish(&worker_url(port, name)).expect("worker db");
        conn.batch_execute("CREATE EXTENSION citus")
            .expect("citus on a worker");
    }
    let coordinator_port = url
        .as_str()
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit(':').next())
        .and_then(|port| port.parse::<u16>().ok())
        .expect("the coordinator's port in TEST_DATABASE_URL");
    let mut conn = PgConnection::establish(url.as_str()).expect("coordinator db");
    conn.batch_execute(&format!(
        "CREATE EXTENSION citus; SELECT citus_set_coordinator_host('127.0.0.1', {coordinator_port});"
    ))
    .expect("citus on the coordinator");
    // Adding a node also creates or alters the cluster-wide roles on it, which two test
    // databases doing so at once fail at ("tuple concurrently updated"): one at a time,
    // under a lock on the coordinator's maintenance database that every test process sees.
    admin
        .batch_execute("SELECT pg_advisory_lock(7236190)")
        .expect("the node-adding lock");
    for port in workers {
        conn.batch_execute(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
            .expect("add a worker");
    }
    admin
        .batch_execute("SELECT pg_advisory_unlock(7236190)")
        .expect("release the node-adding lock");
}

/// Drops test databases left behind by runs that died (older than two hours).
fn sweep_leftovers() {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let Ok(mut admin) = PgConnection::establish(&server_url()) else {
        return;
    };
    let names: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'seriesd\\_test\\_%'",
    )
    .load(&mut admin)
    .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(7200);
    for n in names {
        let stamp = n
            .datname
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok());
        if stamp.is_some_and(|s| s < cutoff) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                n.datname
            ));
        }
    }
}

/// Counts rows with a SQL query returning one bigint column named `n`.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .expect("count query")
        .n
}

/// The id of `series` in the catalogue.
pub fn series_id(conn: &mut PgConnection, series: &str) -> i32 {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        id: i32,
    }
    diesel::sql_query("SELECT id FROM metric_types WHERE series = $1")
        .bind::<diesel::sql_types::Text, _>(series)
        .get_result::<Id>(conn)
        .unwrap()
        .id
}
