//! The engines `seriesd migrate` recognises, on clusters of the tests' own made from a
//! private copy of PostgreSQL with the extension added (skipped, with a line saying so,
//! where `../shared/pg-extensions` is absent).

use crate::helpers::{
    CitusCluster, Cluster, client, count, extension_bin, send, session_body, settings_for,
    start_server,
};
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

#[actix_web::test]
async fn a_citus_coordinator_gets_its_tables_distributed_by_user_and_serves_the_api() {
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
    // Migrating again changes nothing.
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
            {"series": "session.gut_health_score", "time": "2025-01-01T00:10:00Z", "value": {"value": 5}}
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
    assert_eq!(body["results"][0]["value"], json!({"value": 5}), "{body}");
    let (status, body) = send(
        client().get(format!("{address}/api/sessions/{session}/")),
        None,
    )
    .await;
    assert_eq!((status, &body["points"]), (200, &json!(2)), "{body}");
}
