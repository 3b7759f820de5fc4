//! The service's background jobs: what each one does and how often, wired onto the
//! runner in [`super`]. `startup` calls [`spawn_all`] once.

use super::{Job, JobStats, spawn};
use crate::config::Settings;
use crate::db::maintenance::StorageMode;
use crate::db::{self, DbPool, locks, partitions::PartitionManager};
use crate::services::catalogue::Catalogue;
use std::sync::Arc;
use std::time::Duration;

/// Hours the rollup job refreshes per transaction.
const ROLLUP_BATCH: i64 = 500;

/// The jobs started so far, with their statistics.
struct Started {
    pool: DbPool,
    stats: Vec<(&'static str, Arc<JobStats>)>,
}

impl Started {
    fn start(&mut self, job: Job) {
        let stats = Arc::new(JobStats::default());
        self.stats.push((job.name, stats.clone()));
        spawn(self.pool.clone(), job, stats);
    }
}

/// A run's summary for the log: `what` when it did something, else nothing.
fn summary(did: bool, what: impl FnOnce() -> String) -> String {
    if did { what() } else { String::new() }
}

/// Background jobs (on `pool`, the jobs' own): the catalogue version poll, the partition
/// pre-maker, the rollup refresh and vacuum, and retention. Returns each periodic job's
/// statistics by name.
pub fn spawn_all(
    settings: &Settings,
    pool: &DbPool,
    partitions: &PartitionManager,
    catalogue: &Catalogue,
) -> Vec<(&'static str, Arc<JobStats>)> {
    spawn_catalogue_poll(pool, catalogue);
    let mut jobs = Started {
        pool: pool.clone(),
        stats: Vec::new(),
    };
    let parts = partitions.clone();
    let ahead = i64::from(settings.partition_premake_weeks);
    jobs.start(Job {
        name: "partition-premake",
        quiet: false,
        lock_key: locks::PARTITION_PREMAKE_JOB,
        period: settings.maintenance_period,
        run: Arc::new(move |conn| {
            let first = db::partitions::week_of(chrono::Utc::now());
            let weeks = (first..=first + ahead).collect();
            let created = parts.ensure_weeks(conn, &weeks)?;
            db::maintenance::prune_job_runs(conn)?;
            Ok(summary(created > 0, || {
                format!("{created} weekly partitions made ahead")
            }))
        }),
    });
    let budget = settings.rollup_budget;
    jobs.start(Job {
        name: "rollup-refresh",
        lock_key: locks::ROLLUP_REFRESH_JOB,
        period: settings.rollup_period,
        quiet: true,
        // Batches until nothing is pending or the run has used its budget (see
        // rollups::refresh_run): under a write burst the job takes a bounded share of
        // the CPU (answers stay exact meanwhile: hours awaiting refresh are read raw).
        // The sweep's cursor lives across runs (see rollups::Cursor).
        run: Arc::new({
            let cursor = std::sync::Mutex::new(db::rollups::Cursor::default());
            move |conn| {
                let mut cursor = cursor.lock().unwrap_or_else(|e| e.into_inner());
                let refreshed = db::rollups::refresh_run(conn, ROLLUP_BATCH, &mut cursor, budget)?;
                Ok(summary(refreshed > 0, || {
                    format!("{refreshed} hours refreshed")
                }))
            }
        }),
    });
    // A job of its own, so that the refresh goes on while a vacuum runs (seconds on
    // tables of millions of rows).
    if let Some(period) = settings.rollup_vacuum_period {
        jobs.start(Job {
            name: "rollup-vacuum",
            quiet: true,
            lock_key: locks::ROLLUP_VACUUM_JOB,
            period,
            run: Arc::new(|conn| {
                let vacuumed = db::rollups::vacuum(conn)?;
                Ok(summary(!vacuumed.is_empty(), || {
                    format!("vacuumed {}", vacuumed.join(", "))
                }))
            }),
        });
    }
    if let Some(weeks) = settings.compress_after_weeks {
        let parts = partitions.clone();
        jobs.start(Job {
            name: "compression",
            quiet: true,
            lock_key: locks::COMPRESSION_JOB,
            period: settings.maintenance_period,
            run: Arc::new(move |conn| {
                // Only TimescaleDB compresses (the service said so at start).
                if parts.mode(conn)? != StorageMode::Timescaledb {
                    return Ok(String::new());
                }
                let cutoff = chrono::Utc::now() - chrono::TimeDelta::weeks(i64::from(weeks));
                let compressed = db::compression::compress_before(conn, cutoff)?;
                Ok(summary(!compressed.is_empty(), || {
                    format!("compressed {}", compressed.join(", "))
                }))
            }),
        });
    }
    if let Some(weeks) = settings.retention_weeks {
        let parts = partitions.clone();
        jobs.start(Job {
            name: "retention",
            quiet: false,
            lock_key: locks::RETENTION_JOB,
            period: settings.maintenance_period,
            run: Arc::new(move |conn| {
                let cutoff = chrono::Utc::now() - chrono::TimeDelta::weeks(i64::from(weeks));
                let dropped = db::partitions::drop_older_than(conn, &parts, cutoff)?;
                if !dropped.is_empty() {
                    tracing::info!(count = dropped.len(), partitions = ?dropped, "retention dropped old weeks");
                }
                Ok(summary(!dropped.is_empty(), || {
                    format!("dropped {}", dropped.join(", "))
                }))
            }),
        });
    }
    jobs.stats
}

/// Polls the catalogue's version every second, so that a metric type changed through
/// another replica is seen here within a second. Not a locked job: every process keeps
/// its own copy.
fn spawn_catalogue_poll(pool: &DbPool, catalogue: &Catalogue) {
    let (pool, catalogue) = (pool.clone(), catalogue.clone());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let c = catalogue.clone();
            let r = db::run(&pool, move |conn| Ok(c.refresh(conn)?)).await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "catalogue refresh failed");
            }
        }
    });
}
