//! Deleting a user's points in bounded steps: each step deletes one contiguous stretch of
//! the primary key (one user, one series, consecutive `(time, session)`), found by its
//! last key first, so that a step's statement walks an index range and locks no more
//! rows than the step holds, whatever the user stored. Every statement names its user:
//! Citus routes it to that user's shard.

use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Integer, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// Where a walk over one series' points stands: the `(time, session)` of the last point
/// it deleted.
pub type Position = (DateTime<Utc>, Uuid);

/// The part of a user's points a walk deletes: one series, times in `[from, to]`.
#[derive(Debug, Clone, Copy)]
pub struct Stretch {
    pub user: Uuid,
    pub series: i32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The series after `after` (all of them from the lowest when `None`) that `user` holds
/// points of with times in `[from, to]`: one index probe per partition, so that a walk
/// over a user's series costs what the user stored, not the size of the catalogue.
pub fn next_series(
    conn: &mut PgConnection,
    user: Uuid,
    after: Option<i32>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> QueryResult<Option<i32>> {
    #[derive(QueryableByName)]
    struct Series {
        #[diesel(sql_type = Integer)]
        series_id: i32,
    }
    let row: Option<Series> = diesel::sql_query(
        "SELECT series_id FROM points
         WHERE user_id = $1 AND series_id > $2 AND time >= $3 AND time <= $4
         ORDER BY series_id LIMIT 1",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<Integer, _>(after.unwrap_or(i32::MIN))
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .get_result(conn)
    .optional()?;
    Ok(row.map(|r| r.series_id))
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Timestamptz)]
    time: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    session_id: Uuid,
}

#[derive(QueryableByName)]
struct Deleted {
    #[diesel(sql_type = Timestamptz)]
    time: DateTime<Utc>,
}

/// A statement over the points of `stretch` after `after`: `sql` is given the condition
/// (the stretch as `$1`–`$4`, then `after` as `$5`, `$6` when there is one) and the number
/// of the next parameter, which the caller binds.
fn over_stretch(
    stretch: &Stretch,
    after: Option<Position>,
    sql: impl FnOnce(&str, usize) -> String,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let mut condition =
        String::from("user_id = $1 AND series_id = $2 AND time >= $3 AND time <= $4");
    if after.is_some() {
        condition.push_str(" AND (time, session_id) > ($5, $6)");
    }
    let next = if after.is_some() { 7 } else { 5 };
    let q = diesel::sql_query(sql(&condition, next))
        .into_boxed::<Pg>()
        .bind::<SqlUuid, _>(stretch.user)
        .bind::<Integer, _>(stretch.series)
        .bind::<Timestamptz, _>(stretch.from)
        .bind::<Timestamptz, _>(stretch.to);
    match after {
        Some((time, session)) => q.bind::<Timestamptz, _>(time).bind::<SqlUuid, _>(session),
        None => q,
    }
}

/// Deletes the next (at most about) `limit` points of `stretch` after `after`, in key
/// order, inside the caller's transaction. Returns the times of the deleted points and
/// where the next step starts (`None`: the stretch is done). Points written meanwhile
/// within the step's key range go with it.
pub fn delete_step(
    conn: &mut PgConnection,
    stretch: &Stretch,
    after: Option<Position>,
    limit: i64,
) -> QueryResult<(Vec<DateTime<Utc>>, Option<Position>)> {
    // The step's last key: the `limit`-th point from `after`; none when fewer remain.
    let last: Option<Key> = over_stretch(stretch, after, |condition, n| {
        format!(
            "SELECT time, session_id FROM points WHERE {condition}
             ORDER BY time, session_id OFFSET ${n} LIMIT 1"
        )
    })
    .bind::<BigInt, _>(limit.max(1) - 1)
    .get_result(conn)
    .optional()?;
    let next = last.map(|k| (k.time, k.session_id));
    let delete = over_stretch(stretch, after, |condition, n| match next {
        Some(_) => format!(
            "DELETE FROM points WHERE {condition} AND (time, session_id) <= (${n}, ${})
             RETURNING time",
            n + 1
        ),
        None => format!("DELETE FROM points WHERE {condition} RETURNING time"),
    });
    let delete = match next {
        Some((time, session)) => delete
            .bind::<Timestamptz, _>(time)
            .bind::<SqlUuid, _>(session),
        None => delete,
    };
    let deleted: Vec<Deleted> = delete.load(conn)?;
    Ok((deleted.into_iter().map(|d| d.time).collect(), next))
}

/// Up to `limit` of `user`'s session ids after `after` (from the lowest when `None`), in
/// id order.
pub fn session_ids_after(
    conn: &mut PgConnection,
    user: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    use super::schema::sessions::dsl as s;
    let mut q = s::sessions
        .filter(s::user_id.eq(user))
        .select(s::session_id)
        .order(s::session_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(s::session_id.gt(after));
    }
    q.load(conn)
}

/// Deletes every `api_tokens` row of `user`'s tokens; returns how many.
pub fn delete_tokens(conn: &mut PgConnection, user: Uuid) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind::<SqlUuid, _>(user)
        .execute(conn)
}
