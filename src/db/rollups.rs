//! Hourly rollups: the invalidation log ingest writes, the refresh the rollup job runs,
//! and the reads the query path merges with raw points.

use super::aggregates::{FieldRow, Selection};
use crate::domain::query::AggFunc;
use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// Records the hours a staged batch touches as awaiting refresh. Call inside the
/// writing transaction, after the points were written from `points_staging`.
pub fn invalidate_staged(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO rollup_invalidations (user_id, series_id, hour)
         SELECT DISTINCT user_id, series_id, date_trunc('hour', time) FROM points_staging
         ON CONFLICT DO NOTHING",
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
         SELECT DISTINCT user_id, series_id, date_trunc('hour', time) FROM points
         WHERE user_id = $1 AND session_id = $2
         ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<SqlUuid, _>(session)
    .execute(conn)
}

/// Forgets every rollup of a series (its points were deleted).
pub fn forget_series(conn: &mut PgConnection, series_id: i32) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM rollup_hourly WHERE series_id = $1")
        .bind::<Integer, _>(series_id)
        .execute(conn)?;
    diesel::sql_query("DELETE FROM rollup_invalidations WHERE series_id = $1")
        .bind::<Integer, _>(series_id)
        .execute(conn)?;
    Ok(())
}

/// Forgets rollups of hours before `cutoff` (retention dropped their points).
pub fn forget_before(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM rollup_hourly WHERE hour < $1")
        .bind::<Timestamptz, _>(cutoff)
        .execute(conn)?;
    diesel::sql_query("DELETE FROM rollup_invalidations WHERE hour < $1")
        .bind::<Timestamptz, _>(cutoff)
        .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Pending {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Integer)]
    series_id: i32,
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
}

/// Recomputes up to `limit` invalidated hours from raw points, in one transaction;
/// returns how many hours it refreshed. Idempotent. An ingest that touches one of these
/// hours meanwhile waits on the invalidation row we delete and re-inserts it after our
/// commit, so its points are rolled up on the next run.
pub fn refresh(conn: &mut PgConnection, limit: i64) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let todo: Vec<Pending> = diesel::sql_query(
            "SELECT user_id, series_id, hour FROM rollup_invalidations
             ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind::<BigInt, _>(limit)
        .load(conn)?;
        if todo.is_empty() {
            return Ok(0);
        }
        let users: Vec<Uuid> = todo.iter().map(|p| p.user_id).collect();
        let series: Vec<i32> = todo.iter().map(|p| p.series_id).collect();
        let hours: Vec<DateTime<Utc>> = todo.iter().map(|p| p.hour).collect();
        let bind = |sql: &str| {
            diesel::sql_query(sql.to_string())
                .into_boxed::<Pg>()
                .bind::<Array<SqlUuid>, _>(users.clone())
                .bind::<Array<Integer>, _>(series.clone())
                .bind::<Array<Timestamptz>, _>(hours.clone())
        };
        bind(
            "DELETE FROM rollup_invalidations i USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, h)
             WHERE i.user_id = t.u AND i.series_id = t.s AND i.hour = t.h",
        )
        .execute(conn)?;
        bind(
            "DELETE FROM rollup_hourly r USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, h)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.hour = t.h",
        )
        .execute(conn)?;
        bind(
            "INSERT INTO rollup_hourly
                (user_id, series_id, field, hour, n, sum, min, max, first_time, first, last_time, last)
             SELECT p.user_id, p.series_id, f.field, t.h, count(*), sum(f.v), min(f.v), max(f.v),
                    min(p.time), (array_agg(f.v ORDER BY p.time, f.v))[1],
                    max(p.time), (array_agg(f.v ORDER BY p.time DESC, f.v DESC))[1]
             FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, h)
             -- One index range scan per hour (OFFSET 0 keeps the planner from turning
             -- this into a merge join over the whole table).
             CROSS JOIN LATERAL (
                 SELECT p.user_id, p.series_id, p.time, p.num, p.fields, p.field_values
                 FROM points p
                 WHERE p.user_id = t.u AND p.series_id = t.s
                   AND p.time >= t.h AND p.time < t.h + interval '1 hour'
                 OFFSET 0
             ) AS p
             CROSS JOIN LATERAL (
                 SELECT ''::text, p.num WHERE p.num IS NOT NULL
                 UNION ALL
                 SELECT * FROM unnest(p.fields, p.field_values)
             ) AS f(field, v)
             GROUP BY p.user_id, p.series_id, f.field, t.h",
        )
        .execute(conn)?;
        Ok(todo.len())
    })
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

#[derive(QueryableByName)]
struct HourRow {
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
}

/// The hours of `sel`'s user and series in `[from, to)` that await refresh.
pub fn pending_hours(
    conn: &mut PgConnection,
    sel: &Selection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<DateTime<Utc>>> {
    let rows: Vec<HourRow> = diesel::sql_query(
        "SELECT DISTINCT hour FROM rollup_invalidations
         WHERE user_id = $1 AND series_id = ANY($2) AND hour >= $3 AND hour < $4",
    )
    .bind::<SqlUuid, _>(sel.user_id)
    .bind::<Array<Integer>, _>(sel.series_ids.clone())
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.hour).collect())
}

/// The SQL combining hourly rollups into one aggregate.
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

/// Whether an aggregate can be answered from rollups.
pub fn supports(agg: AggFunc) -> bool {
    combine(agg).is_some()
}

/// Aggregates from rollups over whole hours in `[from, to)`, per series, bucket and
/// field ('' for the main number).
pub fn aggregate(
    conn: &mut PgConnection,
    sel: &Selection,
    agg: AggFunc,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<FieldRow>> {
    let Some(combine) = combine(agg) else {
        return Ok(Vec::new());
    };
    let bucket = sel.bucket_sql_over("hour");
    diesel::sql_query(format!(
        "SELECT series_id, {bucket} AS bucket, field, {combine} AS v
         FROM rollup_hourly
         WHERE user_id = $1 AND series_id = ANY($2) AND hour >= $3 AND hour < $4
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ))
    .bind::<SqlUuid, _>(sel.user_id)
    .bind::<Array<Integer>, _>(sel.series_ids.clone())
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<diesel::sql_types::Text, _>(sel.tz.clone())
    .load(conn)
}
