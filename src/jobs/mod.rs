//! Background jobs. Each job runs on a period under a PostgreSQL advisory lock, so that
//! of several replicas on one database only one runs it at a time (seed 000's named
//! lock). A failing job logs, backs off (doubling, up to its period) and runs again; it
//! never takes the server down.

mod background;

pub use background::spawn_all;

use crate::db::{self, DbPool, job_runs};
use crate::error::ApiError;
pub use crate::metrics::JobStats;
use diesel::pg::PgConnection;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a job does in one run; returns a short summary for the log (empty: nothing done).
pub type JobFn = Arc<dyn Fn(&mut PgConnection) -> Result<String, ApiError> + Send + Sync>;

/// A periodic job.
#[derive(Clone)]
pub struct Job {
    pub name: &'static str,
    /// The advisory-lock key naming this job across replicas.
    pub lock_key: i64,
    pub period: Duration,
    pub run: JobFn,
    /// Log only the runs that did something (or failed): for jobs that run every second.
    pub quiet: bool,
}

/// This process, as `job_runs` names it: host, pid and a random suffix.
pub fn instance() -> &'static str {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &id[..8])
    })
}

/// Runs `job` once if its lock is free: `Ok(None)` when another process holds it.
pub fn run_once(conn: &mut PgConnection, job: &Job) -> Result<Option<String>, ApiError> {
    if !job_runs::try_lock(conn, job.lock_key)? {
        return Ok(None);
    }
    let started = chrono::Utc::now();
    let result = (job.run)(conn);
    let (ok, summary) = match &result {
        Ok(s) => (true, s.as_str()),
        Err(_) => (false, ""),
    };
    let error = result.as_ref().err().map(ToString::to_string);
    if !(job.quiet && ok && summary.is_empty()) {
        let summary = error.as_deref().unwrap_or(summary);
        if let Err(e) = job_runs::record(conn, job.name, instance(), started, ok, summary) {
            tracing::warn!(job = job.name, error = %e, "could not log the job run");
        }
    }
    if let Err(e) = job_runs::unlock(conn, job.lock_key) {
        tracing::warn!(job = job.name, error = %e, "could not release the job lock");
    }
    result.map(Some)
}

/// Spawns the job's loop on the current runtime.
pub fn spawn(pool: DbPool, job: Job, stats: Arc<JobStats>) {
    actix_web::rt::spawn(async move {
        let mut delay = Duration::ZERO;
        loop {
            tokio::time::sleep(delay).await;
            let j = job.clone();
            match db::run(&pool, move |conn| run_once(conn, &j)).await {
                Ok(Some(summary)) => {
                    stats.runs.fetch_add(1, Ordering::Relaxed);
                    if !summary.is_empty() {
                        tracing::info!(job = job.name, %summary, "job ran");
                    }
                    delay = job.period;
                }
                Ok(None) => {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    delay = job.period;
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    delay = (delay * 2).clamp(Duration::from_secs(1), job.period);
                    tracing::warn!(job = job.name, error = %e, retry_in = ?delay, "job failed; will retry");
                }
            }
        }
    });
}
