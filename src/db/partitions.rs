//! Weekly partitions of `points` on the native path.
//!
//! Weeks start on Mondays and are counted from 2000-01-03T00:00:00Z, TimescaleDB's
//! `time_bucket` origin, so a week partition and a `1w` bucket are the same range.
//! Partitions are created on demand for any week a write touches and a few weeks ahead by
//! a background job. Creation is serialised across processes by an advisory lock per week
//! and is idempotent, so racing writers both succeed.
//!
//! On TimescaleDB the hypertable makes its own chunks and every call here is a no-op.

use super::maintenance::StorageMode;
use crate::domain::interval::ORIGIN_SECS;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, RwLock};

/// Seconds in a week.
pub const WEEK_SECS: i64 = 7 * 24 * 3600;

/// The index of the week holding `t` (may be negative).
pub fn week_of(t: DateTime<Utc>) -> i64 {
    (t.timestamp() - ORIGIN_SECS).div_euclid(WEEK_SECS)
}

/// The first instant of week `week`.
pub fn week_start(week: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(ORIGIN_SECS + week * WEEK_SECS)
}

/// The table name of week `week`'s partition, e.g. `points_w20250106`.
pub fn partition_name(week: i64) -> String {
    format!("points_w{}", week_start(week).format("%Y%m%d"))
}

/// Knows which week partitions exist and creates missing ones.
#[derive(Clone)]
pub struct PartitionManager {
    mode: Arc<RwLock<Option<StorageMode>>>,
    known: Arc<RwLock<HashSet<i64>>>,
}

impl Default for PartitionManager {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(QueryableByName)]
struct WeekRow {
    #[diesel(sql_type = BigInt)]
    week: i64,
}

impl PartitionManager {
    pub fn new() -> Self {
        Self {
            mode: Arc::new(RwLock::new(None)),
            known: Arc::new(RwLock::new(HashSet::new())),
        }
    }

    /// The storage mode, read from the database the first time it is needed.
    pub fn mode(&self, conn: &mut PgConnection) -> QueryResult<StorageMode> {
        if let Some(mode) = *self.mode.read().unwrap_or_else(|e| e.into_inner()) {
            return Ok(mode);
        }
        let mode = super::maintenance::storage_mode(conn)?;
        *self.mode.write().unwrap_or_else(|e| e.into_inner()) = Some(mode);
        if mode.has_weekly_partitions() {
            self.reload(conn)?;
        }
        Ok(mode)
    }

    /// The mode if it is known already (no database access).
    pub fn known_mode(&self) -> Option<StorageMode> {
        *self.mode.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the list of existing partitions (after retention dropped some).
    pub fn reload(&self, conn: &mut PgConnection) -> QueryResult<()> {
        let rows: Vec<WeekRow> = diesel::sql_query(
            "SELECT ((extract(epoch FROM to_timestamp(substr(c.relname, 9), 'YYYYMMDD')
                       AT TIME ZONE 'UTC')::bigint - 946857600) / 604800)::bigint AS week
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = to_regclass('points') AND c.relname ~ '^points_w[0-9]{8}$'",
        )
        .load(conn)?;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.clear();
        known.extend(rows.into_iter().map(|r| r.week));
        Ok(())
    }

    /// Forgets a week (it was dropped).
    pub fn forget(&self, week: i64) {
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&week);
    }

    /// Makes sure a partition exists for every week in `weeks`. Must be called outside
    /// of a transaction: each creation commits on its own, so that the brief lock it
    /// takes on `points` is not held for the length of an ingest.
    pub fn ensure_weeks(
        &self,
        conn: &mut PgConnection,
        weeks: &BTreeSet<i64>,
    ) -> QueryResult<usize> {
        if !self.mode(conn)?.has_weekly_partitions() {
            return Ok(0);
        }
        let missing: Vec<i64> = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            weeks
                .iter()
                .copied()
                .filter(|w| !known.contains(w))
                .collect()
        };
        let mut created = 0;
        for week in missing {
            if create_week(conn, week)? {
                created += 1;
            }
            self.known
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(week);
        }
        Ok(created)
    }

    /// Makes sure the weeks holding `times` exist.
    pub fn ensure_for_times<I>(&self, conn: &mut PgConnection, times: I) -> QueryResult<usize>
    where
        I: IntoIterator<Item = DateTime<Utc>>,
    {
        let weeks: BTreeSet<i64> = times.into_iter().map(week_of).collect();
        self.ensure_weeks(conn, &weeks)
    }
}

/// Creates one week's partition unless it exists; returns whether it created it.
fn create_week(conn: &mut PgConnection, week: i64) -> QueryResult<bool> {
    let name = partition_name(week);
    let from = week_start(week).format("%Y-%m-%dT%H:%M:%SZ");
    let to = week_start(week + 1).format("%Y-%m-%dT%H:%M:%SZ");
    let lock_key = i32::try_from(week).unwrap_or(i32::MAX);
    conn.transaction(|conn| {
        conn.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({}, {lock_key})",
            super::locks::PARTITION_CLASS
        ))?;
        #[derive(QueryableByName)]
        struct Exists {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            exists: bool,
        }
        let exists = diesel::sql_query(format!(
            "SELECT to_regclass('{name}') IS NOT NULL AS exists"
        ))
        .get_result::<Exists>(conn)?
        .exists;
        if exists {
            return Ok(false);
        }
        conn.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF points
             FOR VALUES FROM ('{from}') TO ('{to}')"
        ))?;
        tracing::info!(partition = %name, "created weekly partition");
        Ok(true)
    })
}

/// Drops every point before the start of the week holding `cutoff` (weeks start on
/// Mondays from the bucket origin), bumping the write generation of the users whose
/// points go (their cached answers must not survive). Returns the dropped partitions'
/// names. Native partitions go whole; on TimescaleDB, whose chunks start on Thursdays,
/// `drop_chunks` drops the chunks before that Monday and the points of the chunk that
/// straddles it are deleted, so both modes keep exactly the same points.
pub fn drop_older_than(
    conn: &mut PgConnection,
    manager: &PartitionManager,
    cutoff: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    let boundary = week_start(week_of(cutoff));
    if manager.mode(conn)? == StorageMode::Timescaledb {
        #[derive(QueryableByName)]
        struct Chunk {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        return conn.transaction(|conn| {
            // Writes kept out until the old chunks are gone (a write still in flight
            // commits first): every user whose point the drop or the delete takes has
            // committed it before the users are read, so each one's generation moves.
            conn.batch_execute("LOCK TABLE points IN SHARE MODE")?;
            super::generations::bump_writers_before(conn, boundary)?;
            // Every stored time lies in the years the API accepts.
            let earliest =
                chrono::NaiveDate::from_ymd_opt(crate::domain::timestamp::MIN_YEAR, 1, 1)
                    .unwrap_or(chrono::NaiveDate::MIN)
                    .and_time(chrono::NaiveTime::MIN)
                    .and_utc();
            super::rollups::forget_range(conn, earliest, boundary)?;
            let chunks: Vec<Chunk> = diesel::sql_query(
                "SELECT c::text AS name FROM drop_chunks('points', older_than => $1) c",
            )
            .bind::<diesel::sql_types::Timestamptz, _>(boundary)
            .load(conn)?;
            let deleted = diesel::sql_query("DELETE FROM points WHERE time < $1")
                .bind::<diesel::sql_types::Timestamptz, _>(boundary)
                .execute(conn)?;
            let mut names: Vec<String> = chunks.into_iter().map(|c| c.name).collect();
            if deleted > 0 {
                names.push(format!(
                    "{deleted} points before {}",
                    boundary.format("%Y-%m-%d")
                ));
            }
            Ok(names)
        });
    }
    manager.reload(conn)?;
    let mut weeks: Vec<i64> = {
        let known = manager.known.read().unwrap_or_else(|e| e.into_inner());
        known
            .iter()
            .copied()
            .filter(|w| week_start(w + 1) <= boundary)
            .collect()
    };
    weeks.sort();
    let citus = manager.mode(conn)? == StorageMode::Citus;
    let mut dropped = Vec::new();
    for week in weeks {
        let name = partition_name(week);
        let users = conn.transaction(|conn| {
            // The week locked first, as the drop will lock it (the parent, then the
            // partition): a write into it still in flight commits before the users are
            // read (or waits for the drop and makes the week again), so a user whose
            // point the drop takes is always bumped.
            #[derive(QueryableByName)]
            struct Exists {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                exists: bool,
            }
            let exists = diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS exists")
                .bind::<diesel::sql_types::Text, _>(&name)
                .get_result::<Exists>(conn)?
                .exists;
            if exists {
                conn.batch_execute(&format!(
                    "LOCK TABLE points, {name} IN ACCESS EXCLUSIVE MODE"
                ))?;
            }
            let users = super::generations::bump_writers_in(conn, &name)?;
            super::rollups::forget_range(conn, week_start(week), week_start(week + 1))?;
            conn.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))?;
            Ok::<_, diesel::result::Error>(users)
        })?;
        // Citus commits on each worker in turn, and a read in between can see the new
        // generation with the week still there and cache that answer under it: bump once
        // more after the commit, so that no such answer is ever reached.
        if citus {
            for users in users.chunks(10_000) {
                super::generations::bump(conn, users)?;
            }
        }
        manager.forget(week);
        dropped.push(name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn weeks_start_on_mondays_from_the_origin() {
        let origin = Utc.with_ymd_and_hms(2000, 1, 3, 0, 0, 0).unwrap();
        assert_eq!(week_of(origin), 0);
        assert_eq!(week_of(origin - TimeDelta::seconds(1)), -1);
        assert_eq!(week_start(-1), origin - TimeDelta::days(7));
        let t = Utc.with_ymd_and_hms(1999, 6, 1, 12, 0, 0).unwrap();
        let w = week_of(t);
        assert!(week_start(w) <= t && t < week_start(w + 1));
        assert_eq!(partition_name(w), "points_w19990531");
        let t = Utc.with_ymd_and_hms(2090, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(partition_name(week_of(t)), "points_w20891226");
    }
}
