//! The `sessions` table: ownership checks and upserts done by ingest.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Timestamptz, Uuid as SqlUuid};
use std::collections::HashMap;
use uuid::Uuid;

/// Advisory-lock class for session ownership (first key of the two-key form).
const LOCK_CLASS: i32 = 7_236_003;

/// Takes a transaction-scoped advisory lock per session id, in a fixed order so that
/// concurrent batches never deadlock. Held until commit, it makes "is this session id
/// free, then claim it" atomic across processes.
pub fn lock_session_ids(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<()> {
    diesel::sql_query(format!(
        "SELECT count(pg_advisory_xact_lock({LOCK_CLASS}, k)) AS n FROM (
            SELECT DISTINCT hashtext(s::text) AS k FROM unnest($1::uuid[]) s ORDER BY 1
         ) keys"
    ))
    .bind::<Array<SqlUuid>, _>(ids)
    .execute(conn)
    .map(|_| ())
}

#[derive(QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = SqlUuid)]
    session_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
}

/// The owner of each of `ids` that exists.
pub fn owners(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<HashMap<Uuid, Uuid>> {
    let rows: Vec<OwnerRow> = diesel::sql_query(
        "SELECT session_id, user_id FROM sessions WHERE session_id = ANY($1::uuid[])",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.session_id, r.user_id))
        .collect())
}

/// Creates sessions that do not exist and records a new `start_ts` when one is given.
/// Each `(user_id, session_id)` must appear once.
pub fn upsert(
    conn: &mut PgConnection,
    sessions: &[(Uuid, Uuid, Option<DateTime<Utc>>)],
) -> QueryResult<()> {
    let users: Vec<Uuid> = sessions.iter().map(|s| s.0).collect();
    let ids: Vec<Uuid> = sessions.iter().map(|s| s.1).collect();
    let starts: Vec<Option<DateTime<Utc>>> = sessions.iter().map(|s| s.2).collect();
    diesel::sql_query(
        "INSERT INTO sessions AS s (user_id, session_id, start_ts)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
         ON CONFLICT (user_id, session_id) DO UPDATE SET start_ts = EXCLUDED.start_ts
         WHERE EXCLUDED.start_ts IS NOT NULL
           AND s.start_ts IS DISTINCT FROM EXCLUDED.start_ts",
    )
    .bind::<Array<SqlUuid>, _>(users)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Nullable<Timestamptz>>, _>(starts)
    .execute(conn)
    .map(|_| ())
}
