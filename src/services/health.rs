//! What `/health/` and `/metrics/` read from the database: whether it answers (and the
//! storage mode), and the rollup job's lag.

use crate::db::{self, DbPool, maintenance, partitions::PartitionManager, rollups};
use crate::error::ApiError;
use std::time::Duration;

/// How long the health probe waits for a pooled connection: a load balancer's check
/// must answer quickly, busy pool or not.
const PROBE_CHECKOUT: Duration = Duration::from_secs(2);

/// Checks that the database answers; returns the storage mode's name, or why not.
pub async fn probe_database(
    pool: &DbPool,
    partitions: &PartitionManager,
) -> Result<&'static str, String> {
    let (pool, partitions) = (pool.clone(), partitions.clone());
    actix_web::web::block(move || -> Result<&'static str, String> {
        let mut conn = pool
            .get_timeout(PROBE_CHECKOUT)
            .map_err(|e| e.to_string())?;
        if let Err(e) = maintenance::ping(&mut conn) {
            conn.mark_broken();
            return Err(e.to_string());
        }
        partitions
            .mode(&mut conn)
            .map(|m| m.as_str())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
}

/// How far the rollup job is behind, and the hours it set aside after failures.
pub async fn rollup_backlog(pool: &DbPool) -> Result<rollups::RollupBacklog, ApiError> {
    db::run(pool, |conn| Ok(rollups::backlog(conn)?)).await
}
