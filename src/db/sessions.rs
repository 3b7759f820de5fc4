//! The `sessions` table: ownership checks and upserts done by ingest; listing, detail
//! and deletion (with the session's points).

use super::locks::SESSION_CLASS;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Timestamptz, Uuid as SqlUuid};
use std::collections::HashMap;
use uuid::Uuid;

/// Takes a transaction-scoped advisory lock per session id, in a fixed order so that
/// concurrent batches never deadlock. Held until commit, it makes "is this session id
/// free, then claim it" atomic across processes.
pub fn lock_session_ids(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<()> {
    diesel::sql_query(format!(
        "SELECT count(pg_advisory_xact_lock({SESSION_CLASS}, k)) AS n FROM (
            SELECT DISTINCT hashtext(s::text) AS k FROM unnest($1::uuid[]) s ORDER BY 1
         ) keys"
    ))
    .bind::<Array<SqlUuid>, _>(ids)
    .execute(conn)
    .map(|_| ())
}

/// The owner of each of `ids` that exists.
pub fn owners(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<HashMap<Uuid, Uuid>> {
    use super::schema::session_owners::dsl as o;
    let rows: Vec<(Uuid, Uuid)> = o::session_owners
        .filter(o::session_id.eq_any(ids))
        .select((o::session_id, o::user_id))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Records the owners of new sessions, `(session, user)` each, as a multi-row `VALUES`
/// (which Citus splits by shard on the coordinator; an `INSERT ... SELECT` would gather
/// the rows there first). Call inside the transaction that holds their
/// [`lock_session_ids`] and found them free.
pub fn claim(conn: &mut PgConnection, new: &[(Uuid, Uuid)]) -> QueryResult<()> {
    use super::schema::session_owners::dsl as o;
    // Two bound values a row, well within PostgreSQL's 65,535.
    for chunk in new.chunks(10_000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|&(session, user)| (o::session_id.eq(session), o::user_id.eq(user)))
            .collect();
        diesel::insert_into(o::session_owners)
            .values(&rows)
            .execute(conn)?;
    }
    Ok(())
}

/// Creates sessions that do not exist and records a new `start_ts` when one is given.
/// Each `(user_id, session_id)` must appear once. A multi-row `VALUES`, for Citus (see
/// [`super::values_list`]).
pub fn upsert(
    conn: &mut PgConnection,
    sessions: &[(Uuid, Uuid, Option<DateTime<Utc>>)],
) -> QueryResult<()> {
    for chunk in sessions.chunks(super::values_chunk(3)) {
        let sql = format!(
            "INSERT INTO sessions AS s (user_id, session_id, start_ts) VALUES {}
             ON CONFLICT (user_id, session_id) DO UPDATE SET start_ts = EXCLUDED.start_ts
             WHERE EXCLUDED.start_ts IS NOT NULL
               AND s.start_ts IS DISTINCT FROM EXCLUDED.start_ts",
            super::values_list(chunk.len(), &["uuid", "uuid", "timestamptz"])
        );
        chunk
            .iter()
            .fold(
                diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>(),
                |q, &(user, session, start)| {
                    q.bind::<SqlUuid, _>(user)
                        .bind::<SqlUuid, _>(session)
                        .bind::<Nullable<Timestamptz>, _>(start)
                },
            )
            .execute(conn)?;
    }
    Ok(())
}

/// A stored session.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::sessions)]
pub struct SessionRow {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub start_ts: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The number of sessions of `user`.
pub fn count_for_user(conn: &mut PgConnection, user: Uuid) -> QueryResult<i64> {
    use super::schema::sessions::dsl as s;
    s::sessions
        .filter(s::user_id.eq(user))
        .count()
        .get_result(conn)
}

/// One page of `user`'s sessions, newest first (walks `sessions_user_created_idx`).
pub fn page_for_user(
    conn: &mut PgConnection,
    user: Uuid,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<SessionRow>> {
    use super::schema::sessions::dsl as s;
    s::sessions
        .filter(s::user_id.eq(user))
        .order((s::created_at.desc(), s::session_id.asc()))
        .limit(limit)
        .offset(offset)
        .select(SessionRow::as_select())
        .load(conn)
}

/// The session with this id, whoever owns it: its owner first (by id), then the session
/// under its owner, each a look-up Citus routes to one shard.
pub fn get(conn: &mut PgConnection, session: Uuid) -> QueryResult<Option<SessionRow>> {
    use super::schema::sessions::dsl as s;
    let Some(&user) = owners(conn, &[session])?.get(&session) else {
        return Ok(None);
    };
    s::sessions
        .filter(s::user_id.eq(user).and(s::session_id.eq(session)))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// What a session holds of one series.
#[derive(Debug, Clone, QueryableByName)]
pub struct SeriesStats {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub series: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub count: i64,
    #[diesel(sql_type = Timestamptz)]
    pub first_time: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub last_time: DateTime<Utc>,
}

/// Per series: how many points the session holds and their time span, by series name.
/// `points` has no index on `session_id`: this walks the owner's points through the
/// primary key's `user_id` prefix, within the owner's span (`within`, both ends
/// inclusive) so that only partitions that can hold them are planned.
pub fn series_stats(
    conn: &mut PgConnection,
    user: Uuid,
    session: Uuid,
    within: (DateTime<Utc>, DateTime<Utc>),
) -> QueryResult<Vec<SeriesStats>> {
    diesel::sql_query(
        "SELECT m.series::text AS series, s.count, s.first_time, s.last_time
         FROM (SELECT series_id, count(*) AS count, min(time) AS first_time, max(time) AS last_time
               FROM points WHERE user_id = $1 AND session_id = $2 AND time >= $3 AND time <= $4
               GROUP BY series_id) s
         JOIN metric_types m ON m.id = s.series_id
         ORDER BY m.series",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<SqlUuid, _>(session)
    .bind::<Timestamptz, _>(within.0)
    .bind::<Timestamptz, _>(within.1)
    .load(conn)
}

/// Deletes the points of `user`'s `sessions` (all within `within`, the owner's span;
/// `None`: the owner has none) and the sessions; call inside a transaction that holds
/// [`lock_session_ids`] for them. Returns the number of sessions and of points deleted.
pub fn delete(
    conn: &mut PgConnection,
    user: Uuid,
    sessions: &[Uuid],
    within: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> QueryResult<(usize, usize)> {
    use super::schema::sessions::dsl as s;
    let points = match within {
        Some((from, to)) => diesel::sql_query(
            "DELETE FROM points
             WHERE user_id = $1 AND session_id = ANY($2) AND time >= $3 AND time <= $4",
        )
        .bind::<SqlUuid, _>(user)
        .bind::<Array<SqlUuid>, _>(sessions)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .execute(conn)?,
        None => 0,
    };
    let deleted =
        diesel::delete(s::sessions.filter(s::user_id.eq(user).and(s::session_id.eq_any(sessions))))
            .execute(conn)?;
    {
        use super::schema::session_owners::dsl as o;
        diesel::delete(
            o::session_owners.filter(o::session_id.eq_any(sessions).and(o::user_id.eq(user))),
        )
        .execute(conn)?;
    }
    Ok((deleted, points))
}
