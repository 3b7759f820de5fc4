//! Deleting data of one user in bounded steps: a range of points
//! (`DELETE /api/timeseries/`) and everything of a user (`DELETE /api/users/{id}/`).
//!
//! Each step is a short transaction of its own that deletes at most about
//! `DELETE_BATCH_POINTS` points or `ERASE_BATCH_SESSIONS` sessions and bumps the user's
//! generation, so the user's cached answers are unreachable after every step and no step
//! holds locks long enough to stall anyone's ingest. A deletion that stops part-way (the
//! server stopped, a statement failed) leaves what it did committed: calling it again
//! finishes the job, so both are resumable rather than bounded per request.
//!
//! Erasing a user goes in four passes:
//! 1. the points, series by series, in key order ([`crate::db::erasure`]), their hours
//!    marked pending as they go, so that no query reads them from a rollup row;
//! 2. the sessions, in id order, each batch under the sessions' ingest locks with the
//!    points written to them since pass 1, so a session is never left half-erased;
//! 3. the user's rows of every rollup table, then of the invalidation log and the
//!    set-aside failures (each table once no rollup refresh runs), each step marking the
//!    hours of the points that remain pending in the same transaction;
//! 4. the hours of whatever points remain (sessions first posted while the erase ran,
//!    after pass 2 passed their id) are invalidated, and the user's time span is narrowed
//!    to them (cleared when there are none).
//!
//! A write for the user while an erase runs never fails for it: it commits before the
//! erase reaches its session (and is erased with it) or after (it recreates the session
//! and is kept, whole). The user's generation row is never deleted, only bumped, so an
//! answer cached before the erase can never be served again.

use crate::db::erasure::{self, Position, Stretch};
use crate::db::{self, generations, rollups, sessions};
use crate::domain::query::SeriesPatterns;
use crate::domain::rollup_plan::hour_of;
use crate::error::ApiError;
use crate::services::catalogue::Catalogue;
use crate::services::query::match_series;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::{Connection, QueryResult};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// How much one step of a deletion may delete.
#[derive(Debug, Clone, Copy)]
pub struct DeleteLimits {
    /// Points per transaction (`DELETE_BATCH_POINTS`).
    pub points: i64,
    /// Sessions per transaction of an erase (`ERASE_BATCH_SESSIONS`).
    pub sessions: i64,
}

/// Tries of a step that met a deadlock or a serialization failure (with a concurrent
/// write of the same points).
const STEP_ATTEMPTS: usize = 4;
/// Tries at narrowing the user's span while writes for the user keep committing.
const NARROWING_ATTEMPTS: usize = 3;

/// Runs `step` in a transaction of its own, again when it failed for a conflict with a
/// concurrent transaction.
fn step<T>(
    conn: &mut PgConnection,
    mut step: impl FnMut(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match conn.transaction(&mut step) {
            Err(e) if db::is_retryable(&e) && attempt < STEP_ATTEMPTS => continue,
            other => return other,
        }
    }
}

/// Deletes the points of `stretch` step by step; with `invalidate`, records the hours
/// they held as awaiting refresh in each step. Returns how many points went.
fn delete_stretch(
    conn: &mut PgConnection,
    stretch: &Stretch,
    limit: i64,
    invalidate: bool,
) -> QueryResult<u64> {
    let mut after: Option<Position> = None;
    let mut total = 0u64;
    loop {
        let (deleted, next) = step(conn, |conn| {
            let (times, next) = erasure::delete_step(conn, stretch, after, limit)?;
            if !times.is_empty() {
                if invalidate {
                    let mut hours: Vec<DateTime<Utc>> = times.iter().map(|&t| hour_of(t)).collect();
                    hours.sort();
                    hours.dedup();
                    rollups::invalidate_hours(conn, stretch.user, stretch.series, &hours)?;
                }
                generations::bump(conn, &[stretch.user])?;
            }
            Ok((times.len() as u64, next))
        })?;
        total += deleted;
        match next {
            Some(position) => after = Some(position),
            None => return Ok(total),
        }
    }
}

/// A validated `DELETE /api/timeseries/`: `user`'s points of the series `patterns`
/// match, with times in `[start, end]`.
#[derive(Debug, Clone)]
pub struct RangeDeletion {
    pub user: Uuid,
    pub patterns: SeriesPatterns,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What `DELETE /api/timeseries/` deleted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RangeDeleted {
    /// Points deleted.
    pub deleted: u64,
}

/// Deletes the points of `q`, series by series, and records their hours as awaiting
/// refresh.
pub fn delete_range(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
    q: &RangeDeletion,
    limits: DeleteLimits,
) -> Result<RangeDeleted, ApiError> {
    // The catalogue as it stands: a series another replica added is matched too.
    let snapshot = catalogue.refresh(conn)?;
    let within = generations::span(conn, q.user)?.and_then(|s| s.clip(Some(q.start), Some(q.end)));
    let Some((from, to)) = within else {
        return Ok(RangeDeleted { deleted: 0 });
    };
    let mut deleted = 0;
    for t in match_series(&snapshot, &q.patterns) {
        let stretch = Stretch {
            user: q.user,
            series: t.row.id,
            from,
            to,
        };
        deleted += delete_stretch(conn, &stretch, limits.points, true)?;
    }
    Ok(RangeDeleted { deleted })
}

/// What `DELETE /api/users/{user_id}/` erased.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Erased {
    /// Sessions deleted.
    pub sessions: u64,
    /// Points deleted.
    pub points: u64,
    /// Tokens of the user deleted; present with `tokens=true` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

/// Erases everything stored of `user` (see the module's doc), and the user's tokens when
/// `tokens`.
pub fn erase_user(
    conn: &mut PgConnection,
    user: Uuid,
    tokens: bool,
    limits: DeleteLimits,
) -> Result<Erased, ApiError> {
    let mut erased = Erased::default();
    // First, so that the user's own clients stop writing (within AUTH_CACHE_TTL_MS).
    if tokens {
        erased.tokens = Some(erasure::delete_tokens(conn, user)? as u64);
    }
    erased.points = erase_points(conn, user, limits.points)?;
    let (sessions, points) = erase_sessions(conn, user, limits.sessions)?;
    erased.sessions = sessions;
    erased.points += points;
    // The invalidation log goes last: until then, the hours passes 1 and 2 emptied stay
    // pending, so no query reads a rollup row of erased points. Each step marks the hours
    // of the points kept (written during the erase) as pending in the transaction that
    // deletes their rollup rows, so that no query misses them in between.
    for table in rollups::user_rollup_tables() {
        step(conn, |conn| {
            if rollups::forget_user_rows(conn, table, user)? > 0 {
                if let Some(span) = generations::span(conn, user)? {
                    rollups::invalidate_user(conn, user, span.bounds())?;
                }
                generations::bump(conn, &[user])?;
            }
            Ok(())
        })?;
    }
    if let Some(span) = generations::span(conn, user)? {
        rollups::invalidate_user(conn, user, span.bounds())?;
        generations::bump_narrowing(conn, user, NARROWING_ATTEMPTS)?;
    }
    Ok(erased)
}

/// Pass 1: every point of `user`, series by series.
fn erase_points(conn: &mut PgConnection, user: Uuid, limit: i64) -> QueryResult<u64> {
    let Some(span) = generations::span(conn, user)? else {
        return Ok(0);
    };
    let (from, to) = span.bounds();
    let mut points = 0;
    let mut series = None;
    while let Some(s) = erasure::next_series(conn, user, series, (from, to))? {
        series = Some(s);
        let stretch = Stretch {
            user,
            series: s,
            from,
            to,
        };
        // Invalidating as it goes: the deleted points' hours are read raw (and found
        // empty) until pass 3 removes their rollup rows.
        points += delete_stretch(conn, &stretch, limit, true)?;
    }
    Ok(points)
}

/// Pass 2: every session of `user` with the points written to it since pass 1, `limit`
/// sessions a transaction, under their ingest locks. Returns the sessions and the points
/// deleted.
fn erase_sessions(conn: &mut PgConnection, user: Uuid, limit: i64) -> QueryResult<(u64, u64)> {
    let (mut sessions_deleted, mut points_deleted) = (0u64, 0u64);
    let mut after = None;
    loop {
        let ids = erasure::session_ids_after(conn, user, after, limit)?;
        let Some(&last) = ids.last() else {
            break;
        };
        after = Some(last);
        let (s, p) = step(conn, |conn| {
            sessions::lock_session_ids(conn, &ids)?;
            // Deleted meanwhile, and maybe posted again by someone else: not ours now.
            let owners = sessions::owners(conn, &ids)?;
            let mine: Vec<Uuid> = ids
                .iter()
                .copied()
                .filter(|id| owners.get(id) == Some(&user))
                .collect();
            if mine.is_empty() {
                return Ok((0, 0));
            }
            let within = generations::span(conn, user)?.map(|s| s.bounds());
            let deleted = sessions::delete(conn, user, &mine, within)?;
            generations::bump(conn, &[user])?;
            Ok(deleted)
        })?;
        sessions_deleted += s as u64;
        points_deleted += p as u64;
        if (ids.len() as i64) < limit {
            break;
        }
    }
    Ok((sessions_deleted, points_deleted))
}
