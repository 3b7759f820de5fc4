//! PostgreSQL clusters of a test's own, run as the `postgres` system user on a free port:
//! from the system's PostgreSQL 15, or from a private copy of it with TimescaleDB or Citus
//! added by `../shared/pg-extensions/install` (never installed into the system server).

use super::server_process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use uuid::Uuid;

/// The system's PostgreSQL 15 server binaries.
pub const SYSTEM_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway cluster; stopped and deleted when dropped.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    settings: Vec<String>,
}

fn as_postgres(args: &[&str]) -> std::process::ExitStatus {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

/// A new folder for a cluster, owned by `postgres`.
fn cluster_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seriesd-pg-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("chown")
        .args(["postgres:postgres", dir.to_str().unwrap()])
        .status()
        .unwrap();
    dir
}

impl Cluster {
    /// A cluster of the system's PostgreSQL.
    pub fn create() -> Self {
        Self::create_with(Path::new(SYSTEM_PG_BIN), &[])
    }

    /// A streaming hot standby of `primary` on a port of its own, as an operator makes
    /// one: a base backup with `pg_basebackup -R` (which writes the connection to the
    /// primary into its configuration), started. It has the primary's settings and
    /// these `-c name=value` ones.
    pub fn standby_of(primary: &Cluster, settings: &[&str]) -> Self {
        let cluster = Self {
            dir: cluster_dir(),
            port: free_port(),
            bin: primary.bin.clone(),
            settings: primary
                .settings
                .iter()
                .cloned()
                .chain(settings.iter().map(|s| s.to_string()))
                .collect(),
        };
        cluster.base_backup(primary);
        cluster.start();
        cluster
    }

    fn base_backup(&self, primary: &Cluster) {
        let ok = as_postgres(&[
            self.bin.join("pg_basebackup").to_str().unwrap(),
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
            "-D",
            self.dir.join("data").to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]);
        assert!(ok.success(), "pg_basebackup failed");
    }

    /// Makes this standby anew from `primary` on the same port: stopped, its data
    /// removed, a fresh base backup, started.
    pub fn rebuild_from(&self, primary: &Cluster) {
        self.stop_immediately();
        std::fs::remove_dir_all(self.dir.join("data")).unwrap();
        self.base_backup(primary);
        self.start();
    }

    /// Promotes this standby: it leaves recovery and takes writes of its own.
    pub fn promote(&self) {
        let ok = as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            self.dir.join("data").to_str().unwrap(),
            "-w",
            "promote",
        ]);
        assert!(ok.success(), "pg_ctl promote failed");
    }

    /// A cluster of the server in `bin`, started with these `-c name=value` settings.
    pub fn create_with(bin: &Path, settings: &[&str]) -> Self {
        let dir = cluster_dir();
        let data = dir.join("data");
        let ok = as_postgres(&[
            bin.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        assert!(ok.success(), "initdb failed");
        let cluster = Self {
            dir,
            port: free_port(),
            bin: bin.to_path_buf(),
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        cluster.start();
        cluster
    }

    pub fn start(&self) {
        let mut opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on -c max_connections=50",
            self.port,
            self.dir.to_str().unwrap()
        );
        for s in &self.settings {
            opts.push_str(&format!(" -c {s}"));
        }
        let ok = as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            self.dir.join("data").to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            self.dir.join("log").to_str().unwrap(),
            "-w",
            "start",
        ]);
        assert!(ok.success(), "pg_ctl start failed");
    }

    pub fn stop_immediately(&self) {
        let ok = as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            self.dir.join("data").to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
        assert!(ok.success(), "pg_ctl stop failed");
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?gssencmode=disable",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            self.dir.join("data").to_str().unwrap(),
            "-m",
            "immediate",
            "stop",
        ]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `bin/` of a private PostgreSQL 15 with `extension` (`timescaledb` or `citus`)
/// added, made once per machine from `../shared/pg-extensions`; `None`, with one line on
/// stderr saying so, where that bundle is absent (a machine without `../shared`).
pub fn extension_bin(extension: &str) -> Option<PathBuf> {
    let install = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pg-extensions/install");
    if !install.exists() {
        eprintln!(
            "skipped: {} is absent, so no {extension} cluster can be made here",
            install.display()
        );
        return None;
    }
    let dest = std::env::temp_dir().join(format!("seriesd-pg-{extension}"));
    // One install per machine: tests run as processes of their own, so a file lock
    // keeps two from filling the folder at once.
    let out = Command::new("flock")
        .arg(dest.with_extension("lock"))
        .arg(&install)
        .arg(&dest)
        .arg(extension)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg-extensions/install {extension} failed"
    );
    let bin = String::from_utf8(out.stdout).unwrap();
    Some(PathBuf::from(bin.trim()))
}

/// A Citus cluster of a test's own: a coordinator and `workers` worker nodes, each a
/// [`Cluster`] of the private Citus copy, with database `database` and the extension made
/// on every node and the workers added to the coordinator (as an operator sets one up).
pub struct CitusCluster {
    pub coordinator: Cluster,
    pub workers: Vec<Cluster>,
}

impl CitusCluster {
    pub fn create(bin: &Path, workers: usize, database: &str) -> Self {
        use diesel::prelude::*;
        let node = || Cluster::create_with(bin, &["shared_preload_libraries=citus"]);
        let coordinator = node();
        let workers: Vec<Cluster> = (0..workers).map(|_| node()).collect();
        for cluster in std::iter::once(&coordinator).chain(&workers) {
            let mut admin = PgConnection::establish(&cluster.url("postgres")).unwrap();
            diesel::sql_query(format!("CREATE DATABASE {database}"))
                .execute(&mut admin)
                .unwrap();
            let mut conn = PgConnection::establish(&cluster.url(database)).unwrap();
            diesel::sql_query("CREATE EXTENSION citus")
                .execute(&mut conn)
                .unwrap();
        }
        let mut conn = PgConnection::establish(&coordinator.url(database)).unwrap();
        diesel::sql_query(format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {})",
            coordinator.port
        ))
        .execute(&mut conn)
        .unwrap();
        for worker in &workers {
            diesel::sql_query(format!(
                "SELECT citus_add_node('127.0.0.1', {})",
                worker.port
            ))
            .execute(&mut conn)
            .unwrap();
        }
        Self {
            coordinator,
            workers,
        }
    }
}
