//! The engines `seriesd migrate` recognises, on clusters of the tests' own made from a
//! private copy of PostgreSQL with the extension added (skipped, with a line saying so,
//! where `../shared/pg-extensions` is absent).

use crate::helpers::{Cluster, count, extension_bin};
use diesel::prelude::*;
use std::process::Command;

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
