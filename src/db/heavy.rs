//! The pool budget of heavy work: exports, bulk-load batches and deletions (of a session,
//! a range, a user, a series) hold a pooled connection for long, so at most `HEAVY_CONNECTIONS`
//! of them hold one at once. The others wait in arrival order for at most
//! `HEAVY_QUEUE_TIMEOUT_MS`, then answer 503. With the ingest writers and the reserve
//! this fits the pool (`config::pool_budget`), so `/health/`, token lookups and small
//! requests always find a connection, whatever one token runs.

use super::{DbPool, run_holding};
use crate::error::ApiError;
use diesel::pg::PgConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Runs heavy work on the pool, within its budget; cheap to clone.
#[derive(Clone)]
pub struct HeavyWork {
    pool: DbPool,
    gate: Arc<Semaphore>,
    queue_timeout: Duration,
}

impl HeavyWork {
    /// `connections` at once (`HEAVY_CONNECTIONS`), a wait of at most `queue_timeout`
    /// (`HEAVY_QUEUE_TIMEOUT_MS`) for one.
    pub fn new(pool: DbPool, connections: u32, queue_timeout: Duration) -> Self {
        Self {
            pool,
            gate: Arc::new(Semaphore::new(connections as usize)),
            queue_timeout,
        }
    }

    /// Runs `f` like [`super::run`] once one of the heavy connections is free. The turn
    /// goes with the work: it is given back when the connection is back in the pool,
    /// not when a client leaves.
    pub async fn run<F, T>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let turn = self.turn().await?;
        run_holding(&self.pool, turn, f).await
    }

    /// A turn of heavy work, for work that runs elsewhere (a read on a replica): to be
    /// held until its connection is back in its pool. Waits as [`Self::run`] does.
    pub async fn turn(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        tokio::time::timeout(self.queue_timeout, self.gate.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::Unavailable(format!(
                    "Too much heavy work at once: this did not start within {} ms \
                     (HEAVY_QUEUE_TIMEOUT_MS; exports, bulk loads and deletions hold at most \
                     HEAVY_CONNECTIONS connections at a time).",
                    self.queue_timeout.as_millis()
                ))
            })?
            .map_err(ApiError::internal)
    }

    /// Heavy connections free now.
    pub fn available(&self) -> usize {
        self.gate.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvSource, Settings};

    #[actix_web::test]
    async fn work_past_the_budget_waits_then_gets_a_503_naming_the_settings() {
        // A pool that never connects: the work below never reaches it.
        let settings = Settings::from_source(&EnvSource::from_pairs([(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )]))
        .unwrap();
        let heavy = HeavyWork::new(
            crate::db::build_pool(&settings, 1),
            1,
            Duration::from_millis(50),
        );
        let held = heavy.gate.clone().acquire_owned().await.unwrap();
        assert_eq!(heavy.available(), 0);
        let started = std::time::Instant::now();
        match heavy.run(|_| Ok(())).await {
            Err(ApiError::Unavailable(m)) => {
                assert!(m.contains("HEAVY_CONNECTIONS"), "{m}");
                assert!(m.contains("HEAVY_QUEUE_TIMEOUT_MS"), "{m}");
            }
            other => panic!("{:?}", other.err()),
        }
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(held);
        assert_eq!(heavy.available(), 1);
    }
}
