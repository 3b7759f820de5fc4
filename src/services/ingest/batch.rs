//! Writing one batch of sessions in one transaction, retried on deadlock or
//! serialization failure, each request alone when the batch fails otherwise.

use super::*;
use crate::db::maintenance::StorageMode;
use crate::db::partials::Partials;
use crate::db::points::{self, PointKey, PointRow};
use crate::db::{self, generations, partitions::PartitionManager, rollups, sessions};
use crate::domain::rollup_plan::hour_of;
use crate::error::ApiError;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::Connection;
use diesel::pg::PgConnection;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Writes a batch in one transaction, retrying on deadlock or serialization failure. If
/// the batch fails otherwise, each request is tried alone so one bad request cannot fail
/// the others. A batch of new sessions appends the hourly aggregates of its points in
/// the last `append_hours` hours (from the current UTC hour back; `ROLLUP_APPEND_HOURS`)
/// to the rollups (see [`crate::db::partials`]).
pub fn write_batch(
    conn: &mut PgConnection,
    partitions: &PartitionManager,
    writes: &[SessionWrite],
    append_hours: u32,
) -> Vec<Result<IngestOutcome, ApiError>> {
    let times = writes.iter().flat_map(|w| w.rows.iter().map(|r| r.time));
    let ready = partitions
        .mode(conn)
        .and_then(|mode| partitions.ensure_for_times(conn, times).map(|_| mode));
    let routing = match ready {
        Ok(StorageMode::Citus) => points::Routing::PerUser,
        Ok(_) => points::Routing::Together,
        Err(e) => {
            let shared = shared_error(&ApiError::from(e));
            return writes.iter().map(|_| Err(shared.clone_error())).collect();
        }
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match conn.transaction(|conn| batch_transaction(conn, writes, append_hours, routing)) {
            Ok(results) => return results,
            Err(e) if db::is_retryable(&e) && attempt < 4 => continue,
            // Another replica's retention dropped a week we thought existed.
            Err(e) if db::is_missing_partition(&e) && attempt < 4 => {
                let times = writes.iter().flat_map(|w| w.rows.iter().map(|r| r.time));
                if let Err(e) = partitions
                    .reload(conn)
                    .and_then(|()| partitions.ensure_for_times(conn, times))
                {
                    let shared = shared_error(&ApiError::from(e));
                    return writes.iter().map(|_| Err(shared.clone_error())).collect();
                }
                continue;
            }
            Err(e) => {
                let error = ApiError::from(e);
                if writes.len() > 1 && !matches!(error, ApiError::Unavailable(_)) {
                    tracing::warn!(%error, jobs = writes.len(), "batch failed; writing its requests one by one");
                    return writes
                        .iter()
                        .flat_map(|w| {
                            write_batch(conn, partitions, std::slice::from_ref(w), append_hours)
                        })
                        .collect();
                }
                let shared = shared_error(&error);
                return writes.iter().map(|_| Err(shared.clone_error())).collect();
            }
        }
    }
}

pub(super) fn batch_transaction(
    conn: &mut PgConnection,
    writes: &[SessionWrite],
    append_hours: u32,
    routing: points::Routing,
) -> diesel::QueryResult<Vec<Result<IngestOutcome, ApiError>>> {
    let mut ids: Vec<Uuid> = writes.iter().map(|w| w.session_id).collect();
    ids.sort();
    ids.dedup();
    sessions::lock_session_ids(conn, &ids)?;
    let mut owner = sessions::owners(conn, &ids)?;
    // Every session of the batch is new: its points cannot exist yet.
    let all_new = owner.is_empty();
    let mut claimed: Vec<(Uuid, Uuid)> = Vec::new();

    let mut results: Vec<Option<Result<IngestOutcome, ApiError>>> =
        (0..writes.len()).map(|_| None).collect();
    let mut accepted: Vec<usize> = Vec::with_capacity(writes.len());
    let mut session_rows: BTreeMap<(Uuid, Uuid), Option<DateTime<Utc>>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        let user = *owner.entry(w.session_id).or_insert_with(|| {
            claimed.push((w.session_id, w.user_id));
            w.user_id
        });
        if user != w.user_id {
            results[i] = Some(Err(ApiError::Conflict(format!(
                "Session {} belongs to another user.",
                w.session_id
            ))));
            continue;
        }
        accepted.push(i);
        let start = session_rows
            .entry((w.user_id, w.session_id))
            .or_insert(None);
        if w.start_ts.is_some() {
            *start = w.start_ts;
        }
    }
    if !claimed.is_empty() {
        sessions::claim(conn, &claimed)?;
    }
    if !session_rows.is_empty() {
        let rows: Vec<(Uuid, Uuid, Option<DateTime<Utc>>)> = session_rows
            .into_iter()
            .map(|((u, s), t)| (u, s, t))
            .collect();
        sessions::upsert(conn, &rows)?;
    }
    // Across requests of one batch, the later request's point wins.
    let mut latest: HashMap<PointKey, (i32, &PointRow)> = HashMap::new();
    for &i in &accepted {
        for row in &writes[i].rows {
            latest.insert(row.key(), (i as i32, row));
        }
    }
    let counts = if all_new {
        // Only new points: the hourly rollups of their recent hours get them at once.
        let live_from = match append_hours {
            0 => DateTime::<Utc>::MAX_UTC,
            n => hour_of(Utc::now()) - TimeDelta::hours(i64::from(n) - 1),
        };
        let partials = Partials::of(latest.values().map(|(_, r)| *r), live_from);
        let counts = points::insert_new(conn, latest.values().copied())?;
        partials.append(conn)?;
        counts
    } else {
        let counts = points::upsert(conn, latest.into_values(), routing)?;
        rollups::invalidate_staged(conn)?;
        counts
    };
    // Every writing user's generation goes up; the span grows by the points' times (a
    // session of no points changes only what the user's session list answers).
    let spans: Vec<(Uuid, Option<generations::Span>)> = accepted
        .iter()
        .map(|&i| {
            let w = &writes[i];
            let first = w.rows.iter().map(|r| r.time).min();
            let last = w.rows.iter().map(|r| r.time).max();
            let span = first
                .zip(last)
                .map(|(first, last)| generations::Span { first, last });
            (w.user_id, span)
        })
        .collect();
    generations::bump_spanning(conn, &spans)?;
    for &i in &accepted {
        let w = &writes[i];
        let job = i as i32;
        let inserted = counts.inserted.get(&job).copied().unwrap_or(0);
        let updated = counts.updated.get(&job).copied().unwrap_or(0);
        let stored = w.rows.len();
        results[i] = Some(Ok(IngestOutcome {
            message: "Data ingested successfully",
            user_id: w.user_id,
            session_id: w.session_id,
            received: w.received,
            stored,
            duplicates_in_request: w.received - stored,
            inserted,
            updated,
            unchanged: stored.saturating_sub(inserted + updated),
        }));
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::internal("ingest result missing"))))
        .collect())
}
