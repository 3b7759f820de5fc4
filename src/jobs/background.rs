//! The service's background jobs: what each one does and how often, wired onto the
//! runner in [`super`]. `startup` calls [`spawn_all`] once.

use super::{Job, JobStats, spawn};
use crate::config::Settings;
use crate::db::{self, DbPool, locks, partitions::PartitionManager};
use crate::services::catalogue::Catalogue;
use std::sync::Arc;
use std::time::Duration;

/// Hours the rollup job refreshes per transaction.
const ROLLUP_BATCH: i64 = 500;

/// Background jobs (on `pool`, the jobs' own): the catalogue version poll, the partition
/// pre-maker, the rollup refresh and vacuum, and retention.
pub fn spawn_all(
    settings: &Settings,
    pool: &DbPool,
    partitions: &PartitionManager,
    catalogue: &Catalogue,
) -> Vec<(&'static str, Arc<JobStats>)> {
    let (p, c) = (pool.clone(), catalogue.clone());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let c = c.clone();
            let r = db::run(&p, move |conn| Ok(c.refresh(conn)?)).await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "catalogue refresh failed");
            }
        }
    });
    let parts = partitions.clone();
    let ahead = i64::from(settings.partition_premake_weeks);
    let premake = Arc::new(JobStats::default());
    spawn(
        pool.clone(),
        Job {
            name: "partition-premake",
            quiet: false,
            lock_key: locks::PARTITION_PREMAKE_JOB,
            period: settings.maintenance_period,
            run: Arc::new(move |conn| {
                let first = db::partitions::week_of(chrono::Utc::now());
                let weeks = (first..=first + ahead).collect();
                let created = parts.ensure_weeks(conn, &weeks)?;
                db::maintenance::prune_job_runs(conn)?;
                Ok(if created > 0 {
                    format!("{created} weekly partitions made ahead")
                } else {
                    String::new()
                })
            }),
        },
        premake.clone(),
    );
    let mut stats = vec![("partition-premake", premake)];
    let rollups = Arc::new(JobStats::default());
    let budget = settings.rollup_budget;
    spawn(
        pool.clone(),
        Job {
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
                    let refreshed =
                        db::rollups::refresh_run(conn, ROLLUP_BATCH, &mut cursor, budget)?;
                    Ok(if refreshed > 0 {
                        format!("{refreshed} hours refreshed")
                    } else {
                        String::new()
                    })
                }
            }),
        },
        rollups.clone(),
    );
    stats.push(("rollup-refresh", rollups));
    // A job of its own, so that the refresh goes on while a vacuum runs (seconds on
    // tables of millions of rows).
    if let Some(period) = settings.rollup_vacuum_period {
        let vacuum = Arc::new(JobStats::default());
        spawn(
            pool.clone(),
            Job {
                name: "rollup-vacuum",
                quiet: true,
                lock_key: locks::ROLLUP_VACUUM_JOB,
                period,
                run: Arc::new(|conn| {
                    let vacuumed = db::rollups::vacuum(conn)?;
                    Ok(if vacuumed.is_empty() {
                        String::new()
                    } else {
                        format!("vacuumed {}", vacuumed.join(", "))
                    })
                }),
            },
            vacuum.clone(),
        );
        stats.push(("rollup-vacuum", vacuum));
    }
    if let Some(weeks) = settings.retention_weeks {
        let parts = partitions.clone();
        let retention = Arc::new(JobStats::default());
        spawn(
            pool.clone(),
            Job {
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
                    Ok(if dropped.is_empty() {
                        String::new()
                    } else {
                        format!("dropped {}", dropped.join(", "))
                    })
                }),
            },
            retention.clone(),
        );
        stats.push(("retention", retention));
    }
    stats
}
