//! The rollup job's refresh: takes pending hours from the invalidation log in key order,
//! merges hours only appended to, recomputes the others from raw points, then rolls the
//! touched days and months up from the finer level, all in one snapshot per batch.

use super::sketches::{FIRST_ELEMENT, elements_of_row, sketch_of_numbers, sketch_of_rows};
use super::*;
use crate::domain::rollup_plan::{day_of, month_of};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use std::collections::BTreeSet;

/// Recomputes up to `limit` invalidated hours from raw points, from the lowest key, in
/// one transaction; returns how many hours it refreshed. See [`refresh_from`].
pub fn refresh(conn: &mut PgConnection, limit: i64) -> QueryResult<usize> {
    Ok(refresh_from(conn, limit, &mut Cursor::default())?.hours)
}

/// One run of the rollup job: batches of up to `batch` invalidation rows from `cursor`
/// until a batch comes back short of rows (nothing else pending) or the run has spent
/// `budget`. Counting rows, not keys, matters: a hot hour has one row per write, so a full
/// batch can hold few keys while much more is pending. Returns the hours refreshed.
pub fn refresh_run(
    conn: &mut PgConnection,
    batch: i64,
    cursor: &mut Cursor,
    budget: std::time::Duration,
) -> QueryResult<usize> {
    let started = std::time::Instant::now();
    let mut hours = retry_failed(conn, FAILED_RETRIES_PER_RUN)?;
    loop {
        let r = refresh_from(conn, batch, cursor)?;
        hours += r.hours;
        if r.rows < usize::try_from(batch).unwrap_or(0) || started.elapsed() >= budget {
            return Ok(hours);
        }
    }
}

/// Hours set aside after a failure that one run retries (each alone), at most.
const FAILED_RETRIES_PER_RUN: i64 = 16;

/// What one refresh did.
#[derive(Debug, Clone, Copy)]
pub struct Refreshed {
    /// Distinct (user, series, hour) keys recomputed.
    pub hours: usize,
    /// Invalidation rows taken (a key has one per write): fewer than the limit means
    /// nothing else was pending (or free).
    pub rows: usize,
}

/// Recomputes up to `limit` invalidated hours from raw points, the next ones after
/// `cursor` in key order (wrapping around), in one transaction, and moves the cursor past
/// them. Idempotent.
///
/// The transaction is repeatable read: every statement sees the same snapshot, so the
/// invalidations and hourly rows it deletes (partial rows appended by new sessions
/// included, see [`crate::db::partials`]) and the points it recomputes the hours from are
/// those of the same writes. A write committed meanwhile keeps its invalidation and its
/// appended rows (ingest only appends; it never waits for us), and its points are not in
/// the recomputation: counted once either way. (Only this job, under its advisory lock,
/// and the deletions that first wait for it change these rows, so the snapshot never
/// meets a concurrent update.)
pub fn refresh_from(
    conn: &mut PgConnection,
    limit: i64,
    cursor: &mut Cursor,
) -> QueryResult<Refreshed> {
    let before = cursor.clone();
    // Asked once per batch: the statements below take their form from it.
    let citus = crate::db::maintenance::is_citus(conn)?;
    let batch = conn.build_transaction().repeatable_read().run(|conn| {
        let todo = next_batch(conn, cursor, limit, citus)?;
        let rows = todo.len();
        refresh_keys(conn, todo, rows, citus)
    });
    match batch {
        Err(e) if fails_on_its_data(&e) => {
            // Something in one user's data (a sum that overflows float8, say) fails the
            // whole batch: refresh its hours one by one and set aside the ones that fail,
            // so every other key goes on being refreshed.
            *cursor = before;
            let todo = conn.transaction(|conn| next_batch(conn, cursor, limit, citus))?;
            let rows = todo.len();
            let mut hours = 0;
            for key in dedup(todo) {
                hours += refresh_alone(conn, key, citus)?;
            }
            Ok(Refreshed { hours, rows })
        }
        other => other,
    }
}

/// Refreshes the hours set aside after a failure whose retry is due (at most `limit`),
/// each on its own; returns how many went through.
pub fn retry_failed(conn: &mut PgConnection, limit: i64) -> QueryResult<usize> {
    let due = due_failures(conn, limit)?;
    let citus = !due.is_empty() && crate::db::maintenance::is_citus(conn)?;
    let mut hours = 0;
    for key in due {
        hours += refresh_alone(conn, key, citus)?;
    }
    Ok(hours)
}

/// Refreshes one hour in a transaction of its own; when its data fails the refresh, sets
/// it aside (with a log line naming it) instead. Returns 1 when it was refreshed.
fn refresh_alone(conn: &mut PgConnection, key: Key, citus: bool) -> QueryResult<usize> {
    let done = conn.build_transaction().repeatable_read().run(|conn| {
        refresh_keys(conn, vec![key], 1, citus)?;
        clear_failure(conn, key)
    });
    match done {
        Ok(()) => Ok(1),
        Err(e) if fails_on_its_data(&e) => {
            let (user, series, hour) = key;
            tracing::warn!(user = %user, series_id = series, hour = %hour, error = %e,
                "rollup refresh of this hour failed; set aside and retried with backoff");
            set_aside(conn, key, &e.to_string())?;
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// Whether a refresh failed because of the data it read (an overflow, a value out of
/// range), not because of the connection or a conflict with another transaction, which
/// the job's own retry handles.
fn fails_on_its_data(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::SerializationFailure | K::ClosedConnection, _) => false,
        E::DatabaseError(K::UnableToSendCommand, _) => false,
        E::DatabaseError(_, info) => {
            !crate::db::is_retryable(e) && !info.message().contains("statement timeout")
        }
        _ => false,
    }
}

fn dedup(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort();
    keys.dedup();
    keys
}

/// The next up to `limit` invalidation rows' keys after `cursor` (wrapping around), and
/// moves the cursor past them.
fn next_batch(
    conn: &mut PgConnection,
    cursor: &mut Cursor,
    limit: i64,
    citus: bool,
) -> QueryResult<Vec<Key>> {
    let mut todo = pending_after(conn, cursor, limit, citus)?;
    if cursor.0.is_some() && (todo.len() as i64) < limit {
        // Wrap around: the hours up to the cursor (those after it are all taken).
        let mut wrapped =
            pending_after(conn, &Cursor::default(), limit - todo.len() as i64, citus)?;
        if let Some(&first) = todo.first() {
            wrapped.retain(|k| *k < first);
        }
        todo.append(&mut wrapped);
    }
    if let Some(&last) = todo.last() {
        cursor.0 = Some(last);
    }
    Ok(todo)
}

/// Refreshes the hours `todo` (a key may come more than once: one invalidation row per
/// write) inside the caller's repeatable-read transaction; `rows` is what the batch took.
fn refresh_keys(
    conn: &mut PgConnection,
    todo: Vec<Key>,
    rows: usize,
    citus: bool,
) -> QueryResult<Refreshed> {
    let todo = dedup(todo);
    if todo.is_empty() {
        return Ok(Refreshed { hours: 0, rows });
    }
    let hours = todo.len();
    for (route, keys) in Route::split(conn, todo, citus)? {
        refresh_routed(conn, &keys, &route)?;
    }
    Ok(Refreshed { hours, rows })
}

/// Refreshes the distinct hours `todo` with statements routed as `route` says.
fn refresh_routed(conn: &mut PgConnection, todo: &[Key], route: &Route) -> QueryResult<()> {
    // Every invalidation of these hours, and whether each left exact hourly rows.
    let taken: Vec<Pending> = keyed(
        &format!(
            "DELETE FROM rollup_invalidations r
             USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.hour = t.k{route}
             RETURNING r.user_id, r.series_id, r.hour, r.hourly_exact",
            route = route.on("r"),
        ),
        todo,
        route,
    )
    .load(conn)?;
    let inexact: BTreeSet<Key> = taken
        .iter()
        .filter(|t| !t.hourly_exact)
        .map(Pending::key)
        .collect();
    // Hours only written by appending writes already add up to their points: their
    // rows are merged into one, without reading a point (under a steady write load
    // the current hours hold most of the new points, and reading them again every
    // second grew with the hour: a second of CPU per run after a minute of 2,000
    // points/s). The others are recomputed from their points.
    let (recompute, compact): (Vec<Key>, Vec<Key>) = todo.iter().partition(|k| inexact.contains(k));
    if !compact.is_empty() {
        compact_hours(conn, &compact, route)?;
    }
    if !recompute.is_empty() {
        recompute_hours(conn, &recompute, route)?;
    }
    let keys = |of: fn(DateTime<Utc>) -> DateTime<Utc>| {
        dedup(todo.iter().map(|&(u, s, h)| (u, s, of(h))).collect())
    };
    roll_up(conn, &HOURLY, &DAILY, &keys(day_of), route)?;
    roll_up(conn, &DAILY, &MONTHLY, &keys(month_of), route)
}

/// Merges the hourly rows of each of `keys` (the row the job last computed and those
/// writes appended since) into one, in one statement.
pub(super) fn compact_hours(
    conn: &mut PgConnection,
    keys: &[Key],
    route: &Route,
) -> QueryResult<()> {
    let of = |table: &str| {
        format!(
            "DELETE FROM {table} r
             USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.hour = t.k{route}
             RETURNING r.*",
            route = route.on("r"),
        )
    };
    // Each row's numbers and sketch once: its sketch's elements are joined to it.
    let numbers = format!(
        "SELECT r.user_id, r.series_id, r.field, r.hour, {}, {}
         FROM n r {} GROUP BY 1, 2, 3, 4",
        numbers_combined(FIRST_ELEMENT),
        sketch_of_rows(&format!("sum(r.n){FIRST_ELEMENT}")),
        elements_of_row("r"),
    );
    keyed(
        &format!(
            "WITH n AS ({deleted}), numbers AS (
                 INSERT INTO rollup_hourly (user_id, series_id, field, hour, {NUMBER_COLUMNS}, sketch)
                 {numbers}
             ), v AS ({values})
             INSERT INTO rollup_values_hourly (user_id, series_id, hour, {VALUE_COLUMNS})
             SELECT user_id, series_id, hour, {VALUES_COMBINED}
             FROM v GROUP BY user_id, series_id, hour",
            deleted = of(HOURLY.numbers),
            values = of(HOURLY.values),
        ),
        keys,
        route,
    )
    .execute(conn)?;
    Ok(())
}

/// Recomputes the hourly rows of each of `keys` from its points.
pub(super) fn recompute_hours(
    conn: &mut PgConnection,
    keys: &[Key],
    route: &Route,
) -> QueryResult<()> {
    for table in [HOURLY.numbers, HOURLY.values] {
        delete_keys(conn, table, "hour", keys, route)?;
    }
    // The points of the hours, one index range scan per hour (OFFSET 0 keeps the
    // planner from turning this into a merge join over the whole table). The user
    // comes from `points` itself, so that on Citus an insert of these rows stays on
    // the users' shard.
    let points = format!(
        "SELECT p.user_id AS u, t.s, t.h, p.time, p.session_id, p.num, p.fields,
                p.field_values, p.value
         FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, h)
         CROSS JOIN LATERAL (
             SELECT p.user_id, p.time, p.session_id, p.num, p.fields, p.field_values, p.value
             FROM points p
             WHERE p.user_id = t.u AND p.series_id = t.s
               AND p.time >= t.h AND p.time < t.h + interval '1 hour'{route}
             OFFSET 0
         ) AS p",
        route = route.on("p"),
    );
    let numbers_of =
        |p: &str| format!("SELECT p.u, p.s, p.h, p.time, f.field, f.v FROM {p} {NUMBERS_OF_POINT}");
    // `f`: a `FROM` item of those numbers, named `f`.
    let numbers = |f: &str| {
        format!(
            "INSERT INTO rollup_hourly (user_id, series_id, field, hour, {NUMBER_COLUMNS}, sketch)
             SELECT f.u, f.s, f.field, f.h, count(*), sum(f.v), min(f.v), max(f.v),
                    min(f.time), (array_agg(f.v ORDER BY f.time, f.v))[1],
                    max(f.time), (array_agg(f.v ORDER BY f.time DESC, f.v DESC))[1],
                    {sketch}
             FROM {f} GROUP BY 1, 2, 3, 4",
            sketch = sketch_of_numbers("f.v", "count(*)"),
        )
    };
    let values = |p: &str| {
        format!(
            "INSERT INTO rollup_values_hourly (user_id, series_id, hour, {VALUE_COLUMNS})
             SELECT u, s, h, count(*),
                    min(time), (array_agg(session_id ORDER BY time, session_id))[1],
                    (array_agg(value ORDER BY time, session_id))[1],
                    max(time), (array_agg(session_id ORDER BY time DESC, session_id DESC))[1],
                    (array_agg(value ORDER BY time DESC, session_id DESC))[1]
             FROM {p} GROUP BY u, s, h"
        )
    };
    let statements = match route {
        // One scan of each hour's points feeds both the numeric and the whole-value rows.
        Route::Together => vec![format!(
            "WITH p AS MATERIALIZED ({points}), numbers AS ({numbers}) {values}",
            numbers = numbers(&format!("({}) AS f", numbers_of("p"))),
            values = values("p"),
        )],
        // Citus would carry such a shared scan's points to the coordinator: two
        // statements instead, each run whole on the users' shard.
        Route::Shard(_) => {
            let p = format!("({points}) AS p");
            let f = format!("({}) AS f", numbers_of(&p));
            vec![numbers(&f), values(&p)]
        }
    };
    for sql in statements {
        keyed(&sql, keys, route).execute(conn)?;
    }
    Ok(())
}

/// Recomputes the `coarse` rows of the given keys (user, series, start of a coarse row)
/// from the `fine` rows inside them: the daily rows of the days holding refreshed hours,
/// then the monthly rows of their months. A row whose other hours still await refresh is
/// recomputed again when they are; meanwhile queries read it by the finer level.
pub(super) fn roll_up(
    conn: &mut PgConnection,
    fine: &Level,
    coarse: &Level,
    keys: &[Key],
    route: &Route,
) -> QueryResult<()> {
    for table in [coarse.numbers, coarse.values] {
        delete_keys(conn, table, coarse.column, keys, route)?;
    }
    // One index range scan per key (OFFSET 0: without it the planner hashes the keys and
    // scans the whole finer table on every run). The user comes from the finer rows, as
    // in `recompute_hours`.
    let fine_rows = |table: &str| {
        format!(
            "FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             CROSS JOIN LATERAL (
                 SELECT * FROM {table} r
                 WHERE r.user_id = t.u AND r.series_id = t.s
                   AND r.{col} >= t.k AND r.{col} < t.k + interval '{width}'{route}
                 OFFSET 0
             ) AS r",
            col = fine.column,
            width = coarse.width,
            route = route.on("r"),
        )
    };
    // Each finer row's numbers and sketch once: its sketch's elements are joined to it.
    let numbers = format!(
        "INSERT INTO {table} (user_id, series_id, field, {col}, {NUMBER_COLUMNS}, sketch)
         SELECT r.user_id, t.s, r.field, t.k, {combined}, {sketch}
         {rows} {elements}
         GROUP BY r.user_id, t.s, r.field, t.k",
        table = coarse.numbers,
        col = coarse.column,
        combined = numbers_combined(FIRST_ELEMENT),
        sketch = sketch_of_rows(&format!("sum(r.n){FIRST_ELEMENT}")),
        rows = fine_rows(fine.numbers),
        elements = elements_of_row("r"),
    );
    let values = format!(
        "INSERT INTO {table} (user_id, series_id, {col}, {VALUE_COLUMNS})
         SELECT r.user_id, t.s, t.k, {VALUES_COMBINED}
         {rows}
         GROUP BY r.user_id, t.s, t.k",
        table = coarse.values,
        col = coarse.column,
        rows = fine_rows(fine.values),
    );
    for sql in [numbers, values] {
        keyed(&sql, keys, route).execute(conn)?;
    }
    Ok(())
}
