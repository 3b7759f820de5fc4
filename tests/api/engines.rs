//! The engines `seriesd migrate` recognises, on clusters of the tests' own made from a
//! private copy of PostgreSQL with the extension added (skipped, with a line saying so,
//! where `../shared/pg-extensions` is absent).

use crate::helpers::{
    CitusCluster, Cluster, client, count, extension_bin, send, session_body, settings_for,
    start_server,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::json;
use std::process::Command;
use uuid::Uuid;

fn migrate(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seriesd"))
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run seriesd migrate")
}

fn storage(conn: &mut PgConnection) -> &'static str {
    seriesd::db::maintenance::storage_mode(conn)
        .unwrap()
        .as_str()
}

#[test]
fn timescaledb_installed_but_not_preloaded_falls_back_to_native_partitions_with_a_warning() {
    let Some(bin) = extension_bin("timescaledb") else {
        return;
    };
    let cluster = Cluster::create_with(&bin, &[]);
    let url = cluster.url("seriesd");
    let out = migrate(&url);
    let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("shared_preload_libraries"), "{log}");
    let mut conn = PgConnection::establish(&url).unwrap();
    assert_eq!(storage(&mut conn), "native-partitions");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM pg_extension WHERE extname = 'timescaledb'"
        ),
        0
    );
}

#[test]
fn preloaded_timescaledb_makes_points_a_hypertable_with_the_primary_key_as_its_one_index() {
    let Some(bin) = extension_bin("timescaledb") else {
        return;
    };
    let cluster = Cluster::create_with(&bin, &["shared_preload_libraries=timescaledb"]);
    let url = cluster.url("seriesd");
    let out = migrate(&url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = PgConnection::establish(&url).unwrap();
    assert_eq!(storage(&mut conn), "timescaledb");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM timescaledb_information.hypertables
             WHERE hypertable_name = 'points'"
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM pg_indexes WHERE tablename = 'points'"
        ),
        1,
        "only the primary key"
    );
}

/// The statements Citus ran on several shards, from the coordinator's log (with
/// `citus.multi_task_query_log_level = log`, it logs each with its text).
fn multi_shard_statements(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let starts_entry = |l: &str| l.starts_with(|c: char| c.is_ascii_digit());
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("multi-task query about to be executed") {
            continue;
        }
        let Some(at) = lines[i + 1..]
            .iter()
            .position(|l| l.contains("STATEMENT:"))
            .map(|p| i + 1 + p)
        else {
            continue;
        };
        let mut statement = lines[at].to_string();
        for l in &lines[at + 1..] {
            if starts_entry(l) {
                break;
            }
            statement.push('\n');
            statement.push_str(l);
        }
        found.push(statement);
    }
    found
}

/// The statements that read every user's rows by design: the rollup job's sweep over the
/// hours awaiting refresh and its retries, and the backlog `/metrics` reports.
fn sweeps_every_user(statement: &str) -> bool {
    (statement.contains("FROM rollup_invalidations r") && statement.contains("NOT EXISTS"))
        || (statement.contains("FROM rollup_failures") && statement.contains("retry_at <= now()"))
}

#[actix_web::test]
async fn a_citus_coordinator_gets_its_tables_distributed_and_each_users_statements_reach_one_shard()
{
    let Some(bin) = extension_bin("citus") else {
        return;
    };
    let cluster = CitusCluster::create(&bin, 2, "seriesd");
    let url = cluster.coordinator.url("seriesd");
    let out = migrate(&url);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The latest migration, undone and redone on tables already distributed (as when an
    // existing Citus database is upgraded), then migrating again changes nothing.
    {
        use diesel_migrations::MigrationHarness;
        let mut conn = PgConnection::establish(&url).unwrap();
        conn.revert_last_migration(seriesd::db::maintenance::MIGRATIONS)
            .unwrap();
    }
    let redone = migrate(&url);
    assert!(
        redone.status.success(),
        "{}{}",
        String::from_utf8_lossy(&redone.stdout),
        String::from_utf8_lossy(&redone.stderr)
    );
    let again = migrate(&url);
    assert!(
        again.status.success(),
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    let mut conn = PgConnection::establish(&url).unwrap();
    assert_eq!(storage(&mut conn), "citus");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM pg_dist_partition
             WHERE partmethod = 'h' AND logicalrelid::text IN ('sessions', 'points', 'user_generations')"
        ),
        3
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM pg_dist_partition
             WHERE partmethod = 'n' AND logicalrelid::text IN ('metric_types', 'catalogue_version')"
        ),
        2
    );
    // The points' shards live on the workers.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT p.nodeport) AS n FROM pg_dist_shard_placement p
             JOIN pg_dist_shard s USING (shardid) WHERE s.logicalrelid = 'points'::regclass"
        ),
        cluster.workers.len() as i64
    );
    seriesd::services::seed::seed_metric_types(&mut conn).unwrap();
    // Every statement Citus runs on several shards is logged from here on (the test's
    // own statements below excepted).
    conn.batch_execute(
        "ALTER DATABASE seriesd SET citus.multi_task_query_log_level = 'log';
         SET citus.multi_task_query_log_level = 'off'",
    )
    .unwrap();

    // The API on it: a session in, its latest point and its session back.
    let db_url = seriesd::config::DatabaseUrl::parse(&url).unwrap();
    let settings = settings_for(&db_url, &[("AUTH", "disabled"), ("REDIS_URL", "")]);
    let address = start_server(settings).await;
    let (status, body) = send(client().get(format!("{address}/health/")), None).await;
    assert_eq!((status, &body["storage"]), (200, &json!("citus")), "{body}");
    let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
    let post = session_body(
        user,
        session,
        json!([
            {"series": "session.gut_health_score", "time": "2025-01-01T00:00:00Z", "value": {"value": 4}},
            {"series": "session.gut_health_score", "time": "2025-01-01T00:10:00Z", "value": {"value": 5}},
            {"series": "session.gut_health_score", "time": "2025-01-01T00:20:00Z", "value": {"value": 3}}
        ]),
    );
    let (status, body) = send(
        client().post(format!("{address}/api/sessions/")),
        Some(post.to_string().into_bytes()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        client().get(format!("{address}/api/timeseries/latest/?user_id={user}")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["value"], json!({"value": 3}), "{body}");
    let (status, body) = send(
        client().get(format!("{address}/api/sessions/{session}/")),
        None,
    )
    .await;
    assert_eq!((status, &body["points"]), (200, &json!(3)), "{body}");
    // The same session again, one value changed: the path of sessions that exist.
    let again = session_body(
        user,
        session,
        json!([
            {"series": "session.gut_health_score", "time": "2025-01-01T00:10:00Z", "value": {"value": 6}}
        ]),
    );
    let (status, body) = send(
        client().post(format!("{address}/api/sessions/")),
        Some(again.to_string().into_bytes()),
    )
    .await;
    assert_eq!((status, &body["updated"]), (201, &json!(1)), "{body}");
    let day = format!(
        "{address}/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=hour\
         &start_time=2025-01-01T00:00:00Z&end_time=2025-01-01T23:59:59Z&agg_func=sum"
    );
    let (status, body) = send(client().get(&day), None).await;
    assert_eq!(status, 200, "{body}");
    // The rollup job refreshes the hour (its per-user statements go to the user's shard);
    // then a month by day reads the rollups.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&mut conn, "SELECT count(*) AS n FROM rollup_invalidations") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rollup job did not run"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let month = format!(
        "{address}/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=day\
         &start_time=2025-01-01&end_time=2025-01-31&agg_func=sum"
    );
    let (status, body) = send(client().get(&month), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["metadata"]["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("rollup")),
        "{body}"
    );
    assert_eq!(body["results"][0]["value"], json!(13.0), "{body}");
    // A percentile from the rollups' sketches: 4, 6 and 3, p99 between 4 and 6.
    let (status, body) = send(
        client().get(month.replace("agg_func=sum", "agg_func=p99&approx=true")),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["metadata"]["approximate"]),
        (200, &json!(true)),
        "{body}"
    );
    let p99 = body["results"][0]["value"].as_f64().unwrap();
    assert!((3.96..=6.06).contains(&p99), "{body}");
    for read in [
        format!("{address}/api/timeseries/points/?user_id={user}&series=session.gut_health_score"),
        format!("{address}/api/sessions/?user_id={user}"),
    ] {
        let (status, body) = send(client().get(&read), None).await;
        assert_eq!(status, 200, "{read}: {body}");
    }
    let (status, body) = send(
        client().delete(format!("{address}/api/sessions/{session}/")),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // Apart from the job's sweeps, no statement of this user's reached another shard.
    let fanned_out: Vec<String> = multi_shard_statements(&cluster.coordinator.dir.join("log"))
        .into_iter()
        .filter(|s| !sweeps_every_user(s))
        .collect();
    assert!(fanned_out.is_empty(), "{fanned_out:#?}");
}
