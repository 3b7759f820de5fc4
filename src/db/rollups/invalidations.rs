//! The invalidation log: the (user, series, hour) keys that writes, deletions and
//! retention touch, recorded in the same transaction as the write; the rollups forgotten
//! with deleted data; the hours awaiting refresh as queries and `/metrics` see them.

use super::*;
use crate::db::prepared::{Bind, Statement};
use crate::domain::interval::ORIGIN_RFC3339;
use crate::domain::rollup_plan::{month_of, next_month};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;
/// The statement recording as awaiting refresh the hours of the points that `source`
/// (`FROM` and `WHERE` text) selects.
pub(super) fn invalidate_sql(source: &str) -> String {
    format!(
        "INSERT INTO rollup_invalidations (user_id, series_id, hour)
         SELECT DISTINCT user_id, series_id, date_bin('1 hour', time, '{ORIGIN_RFC3339}')
         FROM {source}"
    )
}

/// Records the hours a staged batch touches as awaiting refresh. Call inside the
/// writing transaction, after the points were written from `points_staging`.
pub fn invalidate_staged(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query(invalidate_sql("points_staging")).execute(conn)
}

/// Records the hours of every point before `cutoff` (a retention cut that keeps some of
/// them). Call inside the cutting transaction.
pub fn invalidate_before(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    diesel::sql_query(invalidate_sql("points WHERE time < $1"))
        .bind::<Timestamptz, _>(cutoff)
        .execute(conn)
}

/// Records the hours holding a session's points (before they are deleted).
pub fn invalidate_session(
    conn: &mut PgConnection,
    user: Uuid,
    session: Uuid,
    within: (DateTime<Utc>, DateTime<Utc>),
) -> QueryResult<usize> {
    diesel::sql_query(invalidate_sql(
        "points WHERE user_id = $1 AND session_id = $2 AND time >= $3 AND time <= $4",
    ))
    .bind::<SqlUuid, _>(user)
    .bind::<SqlUuid, _>(session)
    .bind::<Timestamptz, _>(within.0)
    .bind::<Timestamptz, _>(within.1)
    .execute(conn)
}

/// Records `hours` of `user`'s `series` as awaiting refresh (their points were deleted).
/// Call inside the deleting transaction.
pub fn invalidate_hours(
    conn: &mut PgConnection,
    user: Uuid,
    series: i32,
    hours: &[DateTime<Utc>],
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO rollup_invalidations (user_id, series_id, hour)
         SELECT $1, $2, h FROM unnest($3::timestamptz[]) AS h",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<Integer, _>(series)
    .bind::<diesel::sql_types::Array<Timestamptz>, _>(hours)
    .execute(conn)
}

/// Every table of rollup data that holds rows of users: the rollups of each level, the
/// invalidation log and the hours set aside after a failure.
pub fn user_rollup_tables() -> impl Iterator<Item = &'static str> {
    rollup_tables()
        .map(|(table, _)| table)
        .chain(["rollup_invalidations", "rollup_failures"])
}

/// Deletes `user`'s rows of `table` (one of [`user_rollup_tables`]) once no refresh
/// runs, keeping the job out until the caller's transaction ends (a refresh that read the
/// user's points before they were deleted could otherwise write rows from them after
/// this). Returns how many rows went.
pub fn forget_user_rows(conn: &mut PgConnection, table: &str, user: Uuid) -> QueryResult<usize> {
    exclude_refresh(conn)?;
    diesel::sql_query(format!("DELETE FROM {table} WHERE user_id = $1"))
        .bind::<SqlUuid, _>(user)
        .execute(conn)
}

/// Records the hours of `user`'s points with times in `within` as awaiting refresh (the
/// points a deletion kept, whose rollup rows went with the others).
pub fn invalidate_user(
    conn: &mut PgConnection,
    user: Uuid,
    within: (DateTime<Utc>, DateTime<Utc>),
) -> QueryResult<usize> {
    diesel::sql_query(invalidate_sql(
        "points WHERE user_id = $1 AND time >= $2 AND time <= $3",
    ))
    .bind::<SqlUuid, _>(user)
    .bind::<Timestamptz, _>(within.0)
    .bind::<Timestamptz, _>(within.1)
    .execute(conn)
}

/// Forgets every rollup of a series (its points were deleted). Call inside the deleting
/// transaction.
pub fn forget_series(conn: &mut PgConnection, series_id: i32) -> QueryResult<()> {
    exclude_refresh(conn)?;
    for table in user_rollup_tables() {
        diesel::sql_query(format!("DELETE FROM {table} WHERE series_id = $1"))
            .bind::<Integer, _>(series_id)
            .execute(conn)?;
    }
    Ok(())
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
    for (table, column, from) in [
        ("rollup_invalidations", "hour", from),
        ("rollup_failures", "hour", from),
    ]
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

/// An invalidation row.
#[derive(QueryableByName)]
pub(super) struct Pending {
    #[diesel(sql_type = SqlUuid)]
    pub(super) user_id: Uuid,
    #[diesel(sql_type = Integer)]
    pub(super) series_id: i32,
    #[diesel(sql_type = Timestamptz)]
    pub(super) hour: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub(super) hourly_exact: bool,
}

impl Pending {
    pub(super) fn key(&self) -> Key {
        (self.user_id, self.series_id, self.hour)
    }
}

/// Where the rollup job's sweep over the pending hours stands: the last (user, series,
/// hour) it refreshed. The job takes pending hours in key order from here, wrapping
/// around, so a batch holds neighbouring hours of one series (a day and a month are
/// recomputed once for many of their hours, not once per hour as in arrival order after
/// a bulk load), and every pending hour is reached within one sweep.
#[derive(Debug, Default, Clone)]
pub struct Cursor(pub(super) Option<Key>);

/// Up to `limit` pending hours after `cursor` in key order (all of them from the
/// lowest key when there is no cursor), locked for this transaction unless the database
/// is a Citus coordinator (`citus`). Hours set aside after a failed refresh
/// ([`set_aside`]) are left to [`due_failures`].
pub(super) fn pending_after(
    conn: &mut PgConnection,
    cursor: &Cursor,
    limit: i64,
    citus: bool,
) -> QueryResult<Vec<Key>> {
    const SELECT: &str = "SELECT user_id, series_id, hour, hourly_exact FROM rollup_invalidations r
         WHERE NOT EXISTS (SELECT 1 FROM rollup_failures f
                           WHERE f.user_id = r.user_id AND f.series_id = r.series_id
                             AND f.hour = r.hour)";
    // Citus refuses row locks in a statement over every shard; there the job's advisory
    // lock alone keeps a second refresh out (every connection goes through the
    // coordinator, which holds it).
    let lock = if citus {
        ""
    } else {
        " FOR UPDATE OF r SKIP LOCKED"
    };
    let order = format!("ORDER BY user_id, series_id, hour LIMIT $1{lock}");
    let rows: Vec<Pending> = match cursor.0 {
        None => diesel::sql_query(format!("{SELECT} {order}"))
            .bind::<BigInt, _>(limit)
            .load(conn),
        Some((user, series, hour)) => diesel::sql_query(format!(
            "{SELECT} AND (user_id, series_id, hour) > ($2, $3, $4) {order}"
        ))
        .bind::<BigInt, _>(limit)
        .bind::<SqlUuid, _>(user)
        .bind::<Integer, _>(series)
        .bind::<Timestamptz, _>(hour)
        .load(conn),
    }?;
    Ok(rows.iter().map(Pending::key).collect())
}

/// How far the rollup job is behind, and what it set aside.
#[derive(Debug, Clone, Copy, PartialEq, QueryableByName)]
pub struct RollupBacklog {
    /// Seconds since the oldest hour still awaiting refresh was invalidated (0 when
    /// none), hours set aside after a failure excluded.
    #[diesel(sql_type = Double)]
    pub lag_seconds: f64,
    /// Hours set aside after a failed refresh, awaiting their retry.
    #[diesel(sql_type = BigInt)]
    pub failed_hours: i64,
}

/// The rollup job's [`RollupBacklog`].
pub fn backlog(conn: &mut PgConnection) -> QueryResult<RollupBacklog> {
    diesel::sql_query(
        // Two subqueries of their own: Citus cannot push one down beside an aggregate.
        "SELECT (SELECT greatest(coalesce(extract(epoch FROM now() - min(r.created_at)), 0), 0)::float8
                 FROM rollup_invalidations r
                 WHERE NOT EXISTS (SELECT 1 FROM rollup_failures f
                                   WHERE f.user_id = r.user_id AND f.series_id = r.series_id
                                     AND f.hour = r.hour)) AS lag_seconds,
                (SELECT count(*) FROM rollup_failures) AS failed_hours",
    )
    .get_result(conn)
}

/// Sets `key` aside after its refresh failed with `error`: the job skips it until a retry
/// after 2^attempts seconds (at most an hour). Its invalidations stay, so queries go on
/// reading the hour from raw points.
pub(super) fn set_aside(conn: &mut PgConnection, key: Key, error: &str) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Attempts {
        #[diesel(sql_type = Integer)]
        attempts: i32,
    }
    let (user, series, hour) = key;
    // Read, then update or insert (Citus refuses `now()` beside a column in an update,
    // and in `ON CONFLICT DO UPDATE`): only the job, under its lock, writes these rows.
    conn.transaction(|conn| {
        let before: Option<Attempts> = diesel::sql_query(
            "SELECT attempts FROM rollup_failures
             WHERE user_id = $1 AND series_id = $2 AND hour = $3",
        )
        .bind::<SqlUuid, _>(user)
        .bind::<Integer, _>(series)
        .bind::<Timestamptz, _>(hour)
        .get_result(conn)
        .optional()?;
        let attempts = before.as_ref().map_or(1, |b| b.attempts.saturating_add(1));
        let sql = if before.is_some() {
            "UPDATE rollup_failures
             SET attempts = $5, error = $4, failed_at = now(), retry_at = now() + $6 * interval '1 second'
             WHERE user_id = $1 AND series_id = $2 AND hour = $3"
        } else {
            "INSERT INTO rollup_failures (user_id, series_id, hour, error, attempts, retry_at)
             VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 second')"
        };
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(user)
            .bind::<Integer, _>(series)
            .bind::<Timestamptz, _>(hour)
            .bind::<diesel::sql_types::Text, _>(error)
            .bind::<Integer, _>(attempts)
            .bind::<Double, _>(retry_after_secs(attempts))
            .execute(conn)?;
        Ok(())
    })
}

/// Seconds before a failed hour's retry after `attempts` failures: 2^attempts, at most
/// an hour (the first retry comes after 2 s, as 2^1).
fn retry_after_secs(attempts: i32) -> f64 {
    2f64.powi(attempts.clamp(0, 12)).min(3600.0)
}

/// Forgets that `key` failed (its refresh went through).
pub(super) fn clear_failure(conn: &mut PgConnection, key: Key) -> QueryResult<()> {
    let (user, series, hour) = key;
    diesel::sql_query(
        "DELETE FROM rollup_failures WHERE user_id = $1 AND series_id = $2 AND hour = $3",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<Integer, _>(series)
    .bind::<Timestamptz, _>(hour)
    .execute(conn)?;
    Ok(())
}

/// Up to `limit` hours set aside whose retry is due, oldest retry first.
pub(super) fn due_failures(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<Key>> {
    let rows: Vec<Pending> = diesel::sql_query(
        "SELECT user_id, series_id, hour, false AS hourly_exact FROM rollup_failures
         WHERE retry_at <= now() ORDER BY retry_at LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    Ok(rows.iter().map(Pending::key).collect())
}

/// The hours of `user`'s `series` in `[from, to)` that await refresh, each with whether
/// its hourly rows are exact (see [`crate::db::partials`]); an hour may come twice, once
/// each way. Built with the query DSL, so that each connection prepares it once.
pub fn pending_hours(
    conn: &mut PgConnection,
    user: Uuid,
    series: &[i32],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<(DateTime<Utc>, bool)>> {
    use crate::db::schema::rollup_invalidations::dsl;
    dsl::rollup_invalidations
        .filter(dsl::user_id.eq(user))
        .filter(dsl::series_id.eq_any(series))
        .filter(dsl::hour.ge(from))
        .filter(dsl::hour.lt(to))
        .select((dsl::hour, dsl::hourly_exact))
        .distinct()
        .load(conn)
}

/// The statement reading what [`pending_hours`] reads, as rows `(bucket, n)`: the hour,
/// and 1 where its hourly rows are exact (see [`crate::db::aggregates::Columns::Pending`]).
pub fn pending_part(
    user: Uuid,
    series: &[i32],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Statement {
    Statement::new(
        "SELECT DISTINCT hour, hourly_exact::int FROM rollup_invalidations
         WHERE user_id = $1 AND series_id = ANY($2) AND hour >= $3 AND hour < $4",
    )
    .bind(Bind::Uuid(user))
    .bind(Bind::Ints(series.to_vec()))
    .bind(Bind::Time(from))
    .bind(Bind::Time(to))
}
