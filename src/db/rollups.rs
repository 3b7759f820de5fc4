//! Rollups: the invalidation log ingest writes, the refresh the rollup job runs (hourly
//! rows from raw points, daily rows from hourly ones, monthly rows from daily ones, for
//! numbers and for whole values), and the one statement per query that combines monthly,
//! daily and hourly rollups and raw points along a [`Plan`].

use super::aggregates::{FieldRow, JsonRow, NumRow, Selection};
use super::prepared::{Bind, Statement};
use crate::domain::query::AggFunc;
use crate::domain::rollup_plan::{Plan, Span, day_of, month_of, next_month};
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Timestamptz, Uuid as SqlUuid};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Records the hours a staged batch touches as awaiting refresh. Call inside the
/// writing transaction, after the points were written from `points_staging`.
pub fn invalidate_staged(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO rollup_invalidations (user_id, series_id, hour)
         SELECT DISTINCT user_id, series_id, date_bin('1 hour', time, '2000-01-03T00:00:00Z')
         FROM points_staging",
    )
    .execute(conn)
}

/// Records the hours holding a session's points (before they are deleted).
pub fn invalidate_session(
    conn: &mut PgConnection,
    user: Uuid,
    session: Uuid,
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO rollup_invalidations (user_id, series_id, hour)
         SELECT DISTINCT user_id, series_id, date_bin('1 hour', time, '2000-01-03T00:00:00Z')
         FROM points WHERE user_id = $1 AND session_id = $2",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<SqlUuid, _>(session)
    .execute(conn)
}

/// The advisory lock the rollup job holds while it runs (see `jobs::run_once`).
pub const REFRESH_LOCK: i64 = 7_236_103;

/// Waits for a running refresh to end and keeps the job out until the caller's
/// transaction ends. Deleting invalidations while a refresh deletes some of the same keys
/// could deadlock (a key may have several rows, locked in any order).
fn exclude_refresh(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(REFRESH_LOCK)
        .execute(conn)?;
    Ok(())
}

/// Forgets every rollup of a series (its points were deleted). Call inside the deleting
/// transaction.
pub fn forget_series(conn: &mut PgConnection, series_id: i32) -> QueryResult<()> {
    exclude_refresh(conn)?;
    let tables = rollup_tables().map(|(t, _)| t);
    for table in tables.chain(["rollup_invalidations"]) {
        diesel::sql_query(format!("DELETE FROM {table} WHERE series_id = $1"))
            .bind::<Integer, _>(series_id)
            .execute(conn)?;
    }
    Ok(())
}

/// One level of rollups: its tables (numbers, whole values), their time column and the
/// width of a row.
struct Level {
    numbers: &'static str,
    values: &'static str,
    column: &'static str,
    width: &'static str,
}

const HOURLY: Level = Level {
    numbers: "rollup_hourly",
    values: "rollup_values_hourly",
    column: "hour",
    width: "1 hour",
};
const DAILY: Level = Level {
    numbers: "rollup_daily",
    values: "rollup_values_daily",
    column: "day",
    width: "1 day",
};
const MONTHLY: Level = Level {
    numbers: "rollup_monthly",
    values: "rollup_values_monthly",
    column: "month",
    width: "1 month",
};
const LEVELS: [Level; 3] = [HOURLY, DAILY, MONTHLY];

/// Every rollup table with its time column.
fn rollup_tables() -> impl Iterator<Item = (&'static str, &'static str)> {
    LEVELS
        .iter()
        .flat_map(|l| [(l.numbers, l.column), (l.values, l.column)])
}

/// Forgets rollups of the hours in `[from, to)` (retention drops their points; call it in
/// the dropping transaction, before the drop). It first waits for a running refresh to
/// end (and keeps the job out until the transaction ends), so no rollup a refresh writes
/// survives. `from` and `to` are UTC midnights, so no daily rollup straddles them; a
/// month that straddles one loses its row and gets an invalidation (its first hour), so
/// the rollup job recomputes it from the days that remain and queries read it by the day
/// meanwhile.
pub fn forget_range(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<()> {
    exclude_refresh(conn)?;
    let tables = rollup_tables().map(|(table, column)| {
        // A month is forgotten when any part of it is.
        let from = if column == "month" {
            month_of(from)
        } else {
            from
        };
        (table, column, from)
    });
    for (table, column, from) in [("rollup_invalidations", "hour", from)]
        .into_iter()
        .chain(tables)
    {
        diesel::sql_query(format!(
            "DELETE FROM {table} WHERE {column} >= $1 AND {column} < $2"
        ))
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .execute(conn)?;
    }
    for edge in [from, to] {
        let month = month_of(edge);
        if month == edge {
            continue;
        }
        for table in [DAILY.numbers, DAILY.values] {
            diesel::sql_query(format!(
                "INSERT INTO rollup_invalidations (user_id, series_id, hour)
                 SELECT DISTINCT user_id, series_id, $1::timestamptz FROM {table}
                 WHERE day >= $1 AND day < $2"
            ))
            .bind::<Timestamptz, _>(month)
            .bind::<Timestamptz, _>(next_month(month))
            .execute(conn)?;
        }
    }
    Ok(())
}

/// A rollup key: user, series and the start of an hour, day or month.
pub type Key = (Uuid, i32, DateTime<Utc>);

/// A statement over `unnest($1::uuid[], $2::int[], $3::timestamptz[])`: one key per row.
fn keyed(sql: &str, keys: &[Key]) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let users: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let series: Vec<i32> = keys.iter().map(|k| k.1).collect();
    let times: Vec<DateTime<Utc>> = keys.iter().map(|k| k.2).collect();
    diesel::sql_query(sql.to_string())
        .into_boxed::<Pg>()
        .bind::<Array<SqlUuid>, _>(users)
        .bind::<Array<Integer>, _>(series)
        .bind::<Array<Timestamptz>, _>(times)
}

/// Deletes the rows of `table` whose (user, series, `column`) is one of the keys.
fn delete_keys(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    keys: &[Key],
) -> QueryResult<usize> {
    keyed(
        &format!(
            "DELETE FROM {table} r USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.{column} = t.k"
        ),
        keys,
    )
    .execute(conn)
}

/// An invalidation row.
#[derive(QueryableByName)]
struct Pending {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Integer)]
    series_id: i32,
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    hourly_exact: bool,
}

impl Pending {
    fn key(&self) -> Key {
        (self.user_id, self.series_id, self.hour)
    }
}

/// Where the rollup job's sweep over the pending hours stands: the last (user, series,
/// hour) it refreshed. The job takes pending hours in key order from here, wrapping
/// around, so a batch holds neighbouring hours of one series (a day and a month are
/// recomputed once for many of their hours, not once per hour as in arrival order after
/// a bulk load), and every pending hour is reached within one sweep.
#[derive(Debug, Default, Clone)]
pub struct Cursor(Option<Key>);

/// Up to `limit` pending hours after `cursor` in key order (all of them from the
/// lowest key when there is no cursor), locked for this transaction.
fn pending_after(conn: &mut PgConnection, cursor: &Cursor, limit: i64) -> QueryResult<Vec<Key>> {
    const SELECT: &str = "SELECT user_id, series_id, hour, hourly_exact FROM rollup_invalidations";
    const ORDER: &str = "ORDER BY user_id, series_id, hour LIMIT $1 FOR UPDATE SKIP LOCKED";
    let rows: Vec<Pending> = match cursor.0 {
        None => diesel::sql_query(format!("{SELECT} {ORDER}"))
            .bind::<BigInt, _>(limit)
            .load(conn),
        Some((user, series, hour)) => diesel::sql_query(format!(
            "{SELECT} WHERE (user_id, series_id, hour) > ($2, $3, $4) {ORDER}"
        ))
        .bind::<BigInt, _>(limit)
        .bind::<SqlUuid, _>(user)
        .bind::<Integer, _>(series)
        .bind::<Timestamptz, _>(hour)
        .load(conn),
    }?;
    Ok(rows.iter().map(Pending::key).collect())
}

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
    let mut hours = 0;
    loop {
        let r = refresh_from(conn, batch, cursor)?;
        hours += r.hours;
        if r.rows < usize::try_from(batch).unwrap_or(0) || started.elapsed() >= budget {
            return Ok(hours);
        }
    }
}

/// The tables the rollup job deletes from on every run, vacuumed by [`vacuum`].
const CHURNED: [&str; 7] = [
    "rollup_invalidations",
    "rollup_hourly",
    "rollup_values_hourly",
    "rollup_daily",
    "rollup_values_daily",
    "rollup_monthly",
    "rollup_values_monthly",
];

/// A churned table is vacuumed once its dead rows reach this many plus a tenth of its
/// live ones (autovacuum's rule, with 50 and a fifth by default).
pub const VACUUM_DEAD_ROWS: i64 = 1000;

/// Vacuums those of the invalidation log and the rollup tables that hold enough dead
/// rows (see [`VACUUM_DEAD_ROWS`]; the `rollup-vacuum` job) and returns their names. The
/// rollup job deletes their rows at every run (the invalidations it took; the current
/// hours, days and months it recomputed), and their dead versions stay in the way of
/// every query's index scans until a vacuum: after a bulk load's catch-up, millions of
/// dead invalidations made the check for hours awaiting refresh read hundreds of index
/// pages per query. Autovacuum would see to it where it is on, after a while; the service
/// does not depend on it. Tables with few dead rows are left alone: vacuuming all seven
/// every minute under a mixed load (millions of hourly rows, a few thousand dead) took a
/// core for about a second, and the queries of that second made the load's slowest
/// percent. Lazy vacuum blocks neither reads nor writes. It runs without the statement
/// timeout (a vacuum cut short would start over, and be cut short again); call outside
/// a transaction.
pub fn vacuum(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = diesel::sql_types::Text)]
        relname: String,
    }
    let due: Vec<String> = diesel::sql_query(
        "SELECT relname::text FROM pg_stat_user_tables
         WHERE relid = ANY($1::text[]::regclass[]) AND n_dead_tup >= $2 + n_live_tup / 10
         ORDER BY relname",
    )
    .bind::<Array<diesel::sql_types::Text>, _>(&CHURNED[..])
    .bind::<BigInt, _>(VACUUM_DEAD_ROWS)
    .load::<Due>(conn)?
    .into_iter()
    .map(|d| d.relname)
    .collect();
    if due.is_empty() {
        return Ok(due);
    }
    let before: Timeout = diesel::sql_query("SHOW statement_timeout").get_result(conn)?;
    conn.batch_execute("SET statement_timeout = 0")?;
    let vacuumed = conn.batch_execute(&format!("VACUUM {}", due.join(", ")));
    diesel::sql_query("SELECT set_config('statement_timeout', $1, false)")
        .bind::<diesel::sql_types::Text, _>(&before.statement_timeout)
        .execute(conn)?;
    vacuumed.map(|()| due)
}

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
/// included, see [`super::partials`]) and the points it recomputes the hours from are
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
    conn.build_transaction().repeatable_read().run(|conn| {
        let mut todo = pending_after(conn, cursor, limit)?;
        if cursor.0.is_some() && (todo.len() as i64) < limit {
            // Wrap around: the hours up to the cursor (those after it are all taken).
            let mut wrapped = pending_after(conn, &Cursor::default(), limit - todo.len() as i64)?;
            if let Some(&first) = todo.first() {
                wrapped.retain(|k| *k < first);
            }
            todo.append(&mut wrapped);
        }
        if let Some(&last) = todo.last() {
            cursor.0 = Some(last);
        }
        let rows = todo.len();
        // One row per write: a key may come more than once.
        todo.sort();
        todo.dedup();
        if todo.is_empty() {
            return Ok(Refreshed { hours: 0, rows });
        }
        // Every invalidation of these hours, and whether each left exact hourly rows.
        let taken: Vec<Pending> = keyed(
            "DELETE FROM rollup_invalidations r
             USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.hour = t.k
             RETURNING r.user_id, r.series_id, r.hour, r.hourly_exact",
            &todo,
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
        let (recompute, compact): (Vec<Key>, Vec<Key>) =
            todo.iter().partition(|k| inexact.contains(k));
        if !compact.is_empty() {
            compact_hours(conn, &compact)?;
        }
        if !recompute.is_empty() {
            recompute_hours(conn, &recompute)?;
        }
        let keys = |of: fn(DateTime<Utc>) -> DateTime<Utc>| {
            let mut keys: Vec<Key> = todo.iter().map(|&(u, s, h)| (u, s, of(h))).collect();
            keys.sort();
            keys.dedup();
            keys
        };
        roll_up(conn, &HOURLY, &DAILY, &keys(day_of))?;
        roll_up(conn, &DAILY, &MONTHLY, &keys(month_of))?;
        Ok(Refreshed {
            hours: todo.len(),
            rows,
        })
    })
}

/// The aggregate columns of numeric rollup rows, in insert order.
const NUMBER_COLUMNS: &str = "n, sum, min, max, first_time, first, last_time, last";
/// Those columns of one key combined from several rows (an hour's appended rows, a
/// day's hours, a month's days): every aggregate kept is decomposable.
const NUMBERS_COMBINED: &str = "sum(n), sum(sum), min(min), max(max),
    min(first_time), (array_agg(first ORDER BY first_time, first))[1],
    max(last_time), (array_agg(last ORDER BY last_time DESC, last DESC))[1]";
/// The aggregate columns of whole-value rollup rows, in insert order.
const VALUE_COLUMNS: &str = "n, first_time, first_session, first, last_time, last_session, last";
/// Those columns combined, as [`NUMBERS_COMBINED`].
const VALUES_COMBINED: &str = "sum(n),
    min(first_time), (array_agg(first_session ORDER BY first_time, first_session))[1],
    (array_agg(first ORDER BY first_time, first_session))[1],
    max(last_time), (array_agg(last_session ORDER BY last_time DESC, last_session DESC))[1],
    (array_agg(last ORDER BY last_time DESC, last_session DESC))[1]";

/// Merges the hourly rows of each of `keys` (the row the job last computed and those
/// writes appended since) into one, in one statement.
fn compact_hours(conn: &mut PgConnection, keys: &[Key]) -> QueryResult<()> {
    let of = |table: &str| {
        format!(
            "DELETE FROM {table} r
             USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.hour = t.k
             RETURNING r.*"
        )
    };
    keyed(
        &format!(
            "WITH n AS ({numbers}), numbers AS (
                 INSERT INTO rollup_hourly (user_id, series_id, field, hour, {NUMBER_COLUMNS})
                 SELECT user_id, series_id, field, hour, {NUMBERS_COMBINED}
                 FROM n GROUP BY user_id, series_id, field, hour
             ), v AS ({values})
             INSERT INTO rollup_values_hourly (user_id, series_id, hour, {VALUE_COLUMNS})
             SELECT user_id, series_id, hour, {VALUES_COMBINED}
             FROM v GROUP BY user_id, series_id, hour",
            numbers = of(HOURLY.numbers),
            values = of(HOURLY.values),
        ),
        keys,
    )
    .execute(conn)?;
    Ok(())
}

/// Recomputes the hourly rows of each of `keys` from its points.
fn recompute_hours(conn: &mut PgConnection, keys: &[Key]) -> QueryResult<()> {
    for table in [HOURLY.numbers, HOURLY.values] {
        delete_keys(conn, table, "hour", keys)?;
    }
    // One scan of each hour's points feeds both the numeric and the whole-value rows.
    keyed(
        &format!(
            "WITH p AS MATERIALIZED (
             SELECT t.u, t.s, t.h, p.time, p.session_id, p.num, p.fields, p.field_values, p.value
             FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, h)
             -- One index range scan per hour (OFFSET 0 keeps the planner from
             -- turning this into a merge join over the whole table).
             CROSS JOIN LATERAL (
                 SELECT p.time, p.session_id, p.num, p.fields, p.field_values, p.value
                 FROM points p
                 WHERE p.user_id = t.u AND p.series_id = t.s
                   AND p.time >= t.h AND p.time < t.h + interval '1 hour'
                 OFFSET 0
             ) AS p
         ), numbers AS (
             INSERT INTO rollup_hourly (user_id, series_id, field, hour, {NUMBER_COLUMNS})
             SELECT p.u, p.s, f.field, p.h, count(*), sum(f.v), min(f.v), max(f.v),
                    min(p.time), (array_agg(f.v ORDER BY p.time, f.v))[1],
                    max(p.time), (array_agg(f.v ORDER BY p.time DESC, f.v DESC))[1]
             FROM p CROSS JOIN LATERAL (
                 SELECT ''::text, p.num WHERE p.num IS NOT NULL
                 UNION ALL
                 SELECT * FROM unnest(p.fields, p.field_values)
             ) AS f(field, v)
             GROUP BY p.u, p.s, f.field, p.h
         )
         INSERT INTO rollup_values_hourly (user_id, series_id, hour, {VALUE_COLUMNS})
         SELECT u, s, h, count(*),
                min(time), (array_agg(session_id ORDER BY time, session_id))[1],
                (array_agg(value ORDER BY time, session_id))[1],
                max(time), (array_agg(session_id ORDER BY time DESC, session_id DESC))[1],
                (array_agg(value ORDER BY time DESC, session_id DESC))[1]
         FROM p GROUP BY u, s, h"
        ),
        keys,
    )
    .execute(conn)?;
    Ok(())
}

/// Recomputes the `coarse` rows of the given keys (user, series, start of a coarse row)
/// from the `fine` rows inside them: the daily rows of the days holding refreshed hours,
/// then the monthly rows of their months. A row whose other hours still await refresh is
/// recomputed again when they are; meanwhile queries read it by the finer level.
fn roll_up(conn: &mut PgConnection, fine: &Level, coarse: &Level, keys: &[Key]) -> QueryResult<()> {
    for table in [coarse.numbers, coarse.values] {
        delete_keys(conn, table, coarse.column, keys)?;
    }
    // One index range scan per key (OFFSET 0: without it the planner hashes the keys and
    // scans the whole finer table on every run).
    let fine_rows = |table: &str| {
        format!(
            "FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             CROSS JOIN LATERAL (
                 SELECT * FROM {table} r
                 WHERE r.user_id = t.u AND r.series_id = t.s
                   AND r.{col} >= t.k AND r.{col} < t.k + interval '{width}'
                 OFFSET 0
             ) AS r",
            col = fine.column,
            width = coarse.width,
        )
    };
    let numbers = format!(
        "INSERT INTO {table} (user_id, series_id, field, {col}, {NUMBER_COLUMNS})
         SELECT t.u, t.s, r.field, t.k, {NUMBERS_COMBINED}
         {rows}
         GROUP BY t.u, t.s, r.field, t.k",
        table = coarse.numbers,
        col = coarse.column,
        rows = fine_rows(fine.numbers),
    );
    let values = format!(
        "INSERT INTO {table} (user_id, series_id, {col}, {VALUE_COLUMNS})
         SELECT t.u, t.s, t.k, {VALUES_COMBINED}
         {rows}
         GROUP BY t.u, t.s, t.k",
        table = coarse.values,
        col = coarse.column,
        rows = fine_rows(fine.values),
    );
    for sql in [numbers, values] {
        keyed(&sql, keys).execute(conn)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Lag {
    #[diesel(sql_type = Nullable<Double>)]
    seconds: Option<f64>,
}

/// Seconds since the oldest hour still awaiting refresh was invalidated (0 when none).
pub fn lag_seconds(conn: &mut PgConnection) -> QueryResult<f64> {
    let lag: Lag = diesel::sql_query(
        "SELECT extract(epoch FROM now() - min(created_at))::float8 AS seconds FROM rollup_invalidations",
    )
    .get_result(conn)?;
    Ok(lag.seconds.unwrap_or(0.0).max(0.0))
}

/// The hours of `user`'s `series` in `[from, to)` that await refresh, each with whether
/// its hourly rows are exact (see [`super::partials`]); an hour may come twice, once
/// each way. Built with the query DSL, so that each connection prepares it once.
pub fn pending_hours(
    conn: &mut PgConnection,
    user: Uuid,
    series: &[i32],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<(DateTime<Utc>, bool)>> {
    use super::schema::rollup_invalidations::dsl;
    dsl::rollup_invalidations
        .filter(dsl::user_id.eq(user))
        .filter(dsl::series_id.eq_any(series))
        .filter(dsl::hour.ge(from))
        .filter(dsl::hour.lt(to))
        .select((dsl::hour, dsl::hourly_exact))
        .distinct()
        .load(conn)
}

/// The SQL combining partial aggregates (rollup rows, or raw points as one-point rows)
/// into one aggregate.
fn combine(agg: AggFunc) -> Option<&'static str> {
    Some(match agg {
        AggFunc::Avg => "sum(sum) / sum(n)",
        AggFunc::Sum => "sum(sum)",
        AggFunc::Count => "sum(n)::float8",
        AggFunc::Min => "min(min)",
        AggFunc::Max => "max(max)",
        AggFunc::First => "(array_agg(first ORDER BY first_time, first))[1]",
        AggFunc::Last => "(array_agg(last ORDER BY last_time DESC, last DESC))[1]",
        _ => return None,
    })
}

/// Whether a numeric aggregate can be answered from rollups.
pub fn supports(agg: AggFunc) -> bool {
    combine(agg).is_some()
}

/// Spans read by their own `SELECT` each; the rest of a long list share one.
const SEPARATE_SPANS: usize = 6;

/// The fewest `SELECT`s a level the plan reads gets (by its time column), empty ranges
/// making up the difference, so that one text serves a query shape whatever its range and whichever
/// hours await the job: enough for a two-year month-level range ending in the next month
/// while today is read by the hour (months: before and after a month read by the day;
/// days: the first month's, this month's before and after today, the last month's;
/// hours: the first day's, today's, the last day's; raw: the two edges). Without it, the
/// texts of one shape varied with the range's end and the job's progress and soon took
/// every kept slot (see [`super::prepared`]): the rest were planned on every request, three
/// times the work. An empty range costs one index descent (on `points`, its partitions
/// are all pruned at execution).
fn fewest_selects(column: &str) -> usize {
    match column {
        "month" => 2,
        "day" => 4,
        "hour" => 3,
        _ => 2,
    }
}

/// The statement reading one plan: `SELECT`s over daily rows, hourly rows and raw points
/// joined by `UNION ALL`, and their binds: `$1` user, `$2` series, `$3` the zone or the
/// width, then the spans' bounds. Each span gets its own `SELECT` with its bounds as the
/// index condition (and, on `points`, as the partition pruning bounds); past
/// [`SEPARATE_SPANS`], the remaining spans share one `SELECT` bounded by their first
/// start and last end.
struct PlanQuery<'a> {
    sel: &'a Selection,
    branches: Vec<String>,
    times: Vec<DateTime<Utc>>,
    /// Whether the statement may be kept prepared (see [`super::prepared`]).
    keep: bool,
}

impl<'a> PlanQuery<'a> {
    fn new(sel: &'a Selection) -> Self {
        PlanQuery {
            sel,
            branches: Vec::new(),
            times: Vec::new(),
            keep: true,
        }
    }

    /// The placeholder of a new bound time.
    fn param(&mut self, t: DateTime<Utc>) -> String {
        self.times.push(t);
        format!("${}", 3 + self.times.len())
    }

    /// Adds the branches over `table` (time column `column`) for `spans`; `select` names
    /// the columns, `{bucket}` standing for the bucket expression.
    fn branch(&mut self, spans: &[Span], table: &str, column: &str, select: &str, extra: &str) {
        let select = select.replace("{bucket}", &self.sel.bucket_sql_param(column, "$3"));
        let (separate, shared) = if spans.len() > SEPARATE_SPANS {
            spans.split_at(SEPARATE_SPANS - 1)
        } else {
            (spans, &[][..])
        };
        // A level the plan does not read at all stays out (a day-level shape never
        // reads a month: its text stays the same without them).
        let empty = (self.sel.start, self.sel.start);
        let padding = if separate.is_empty() {
            0
        } else {
            fewest_selects(column).saturating_sub(separate.len())
        };
        let separate: Vec<Span> = separate
            .iter()
            .copied()
            .chain(std::iter::repeat_n(empty, padding))
            .collect();
        for (a, b) in &separate {
            let (a, b) = (self.param(*a), self.param(*b));
            self.branches.push(format!(
                "SELECT {select} FROM {table} WHERE user_id = $1 AND series_id = ANY($2) \
                 AND {column} >= {a} AND {column} < {b}{extra}"
            ));
        }
        if let (Some(first), Some(last)) = (shared.first(), shared.last()) {
            // Its text varies with the number of spans (a backlog of hours awaiting
            // refresh): not worth one of the few kept statements.
            self.keep = false;
            let (lo, hi) = (self.param(first.0), self.param(last.1));
            let any: Vec<String> = shared
                .iter()
                .map(|(a, b)| {
                    let (a, b) = (self.param(*a), self.param(*b));
                    format!("({column} >= {a} AND {column} < {b})")
                })
                .collect();
            self.branches.push(format!(
                "SELECT {select} FROM {table} WHERE user_id = $1 AND series_id = ANY($2) \
                 AND {column} >= {lo} AND {column} < {hi} AND ({}){extra}",
                any.join(" OR ")
            ));
        }
    }

    /// Adds the branches over the rollup rows of `plan`: months, days and hours from the
    /// table `table` picks of each level.
    fn rollups(
        &mut self,
        plan: &Plan,
        table: fn(&Level) -> &'static str,
        select: &str,
        extra: &str,
    ) {
        for (spans, level) in [
            (&plan.months, &MONTHLY),
            (&plan.days, &DAILY),
            (&plan.hours, &HOURLY),
        ] {
            self.branch(spans, table(level), level.column, select, extra);
        }
    }

    fn union(&self) -> String {
        self.branches.join("\n UNION ALL\n ")
    }

    fn bind(&self, sql: String) -> Statement {
        let q = if self.keep {
            Statement::new(&sql)
        } else {
            Statement::unprepared(&sql)
        };
        let mut q = q
            .bind(Bind::Uuid(self.sel.user_id))
            .bind(Bind::Ints(self.sel.series_ids.clone()))
            .bind(self.sel.bucket_param());
        for t in &self.times {
            q = q.bind(Bind::Time(*t));
        }
        q
    }
}

/// The columns of a raw-points branch aggregated per series, bucket and field like a
/// rollup row (the branch groups by them): a bucket's raw points reach the outer
/// aggregate as one row, not one row each (a dirty current hour can hold thousands).
/// First and last values are computed only for `first` and `last` (they sort).
fn raw_partials(agg: AggFunc, v: &str, field: &str) -> String {
    let (first, last) = if matches!(agg, AggFunc::First | AggFunc::Last) {
        (
            format!("min(time), (array_agg({v} ORDER BY time, {v}))[1]"),
            format!("max(time), (array_agg({v} ORDER BY time DESC, {v} DESC))[1]"),
        )
    } else {
        let none = "NULL::timestamptz, NULL::float8".to_string();
        (none.clone(), none)
    };
    format!(
        "series_id, {{bucket}} AS bucket, {field}, count(*), sum({v}), min({v}), max({v}), {first}, {last}"
    )
}

/// Numeric aggregates per series, bucket and field ('' for the main number) along
/// `plan`; `fields`: object fields too, not only the main number.
pub fn aggregate_numbers(
    conn: &mut PgConnection,
    sel: &Selection,
    agg: AggFunc,
    plan: &Plan,
    fields: bool,
) -> QueryResult<Vec<FieldRow>> {
    let Some(combine) = combine(agg) else {
        return Ok(Vec::new());
    };
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let rollup_cols = "series_id, {bucket} AS bucket, field, n, sum, min, max, first_time, first, last_time, last";
    let only_main = if fields { "" } else { " AND field = ''" };
    let mut q = PlanQuery::new(sel);
    q.rollups(plan, |l| l.numbers, rollup_cols, only_main);
    if fields {
        q.branch(
            &plan.raw,
            "points p CROSS JOIN LATERAL (
                 SELECT ''::text, p.num WHERE p.num IS NOT NULL
                 UNION ALL
                 SELECT * FROM unnest(p.fields, p.field_values)
             ) AS f(field, v)",
            "time",
            &raw_partials(agg, "f.v", "f.field"),
            " GROUP BY 1, 2, 3",
        );
    } else {
        q.branch(
            &plan.raw,
            "points",
            "time",
            &raw_partials(agg, "num", "''::text"),
            " AND num IS NOT NULL GROUP BY 1, 2, 3",
        );
    }
    let sql = format!(
        "SELECT series_id, bucket, field, {combine} AS v FROM (\n {}\n) x(series_id, bucket, field, n, sum, min, max, first_time, first, last_time, last)
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        q.union()
    );
    q.bind(sql).load(conn)
}

/// Points per series and bucket (any value) along `plan`.
pub fn count_values(
    conn: &mut PgConnection,
    sel: &Selection,
    plan: &Plan,
) -> QueryResult<Vec<NumRow>> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = PlanQuery::new(sel);
    let cols = "series_id, {bucket} AS bucket, n";
    q.rollups(plan, |l| l.values, cols, "");
    q.branch(
        &plan.raw,
        "points",
        "time",
        "series_id, {bucket} AS bucket, count(*)",
        " GROUP BY 1, 2",
    );
    let sql = format!(
        "SELECT series_id, bucket, sum(n)::float8 AS v FROM (\n {}\n) x(series_id, bucket, n)
         GROUP BY 1, 2 ORDER BY 1, 2",
        q.union()
    );
    q.bind(sql).load(conn)
}

/// The first (or last) stored value per series and bucket along `plan`, by time, then
/// session id.
pub fn first_or_last_values(
    conn: &mut PgConnection,
    sel: &Selection,
    plan: &Plan,
    last: bool,
) -> QueryResult<Vec<JsonRow>> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let (which, dir) = if last {
        ("last", "DESC")
    } else {
        ("first", "ASC")
    };
    let cols =
        format!("series_id, {{bucket}} AS bucket, {which}_time, {which}_session, {which}::text");
    let mut q = PlanQuery::new(sel);
    q.rollups(plan, |l| l.values, &cols, "");
    q.branch(
        &plan.raw,
        "points",
        "time",
        "series_id, {bucket} AS bucket, time, session_id, value::text",
        "",
    );
    let sql = format!(
        "SELECT series_id, bucket, (array_agg(v ORDER BY t {dir}, s {dir}))[1] AS value FROM (\n {}\n) x(series_id, bucket, t, s, v)
         GROUP BY 1, 2 ORDER BY 1, 2",
        q.union()
    );
    q.bind(sql).load(conn)
}
