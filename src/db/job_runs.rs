//! Job locks (session-level advisory locks) and the `job_runs` log.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Takes the advisory lock `key` if it is free; returns whether it did.
pub fn try_lock(conn: &mut PgConnection, key: i64) -> QueryResult<bool> {
    diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(key)
        .get_result::<Locked>(conn)
        .map(|l| l.locked)
}

/// Releases the advisory lock `key` taken by [`try_lock`].
pub fn unlock(conn: &mut PgConnection, key: i64) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1) AS locked")
        .bind::<BigInt, _>(key)
        .get_result::<Locked>(conn)
        .map(|_| ())
}

/// Records one run of `job` by `instance`, finished now.
pub fn record(
    conn: &mut PgConnection,
    job: &str,
    instance: &str,
    started: DateTime<Utc>,
    ok: bool,
    summary: &str,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO job_runs (job, instance, started_at, finished_at, ok, summary)
         VALUES ($1, $2, $3, now(), $4, $5)",
    )
    .bind::<Text, _>(job)
    .bind::<Text, _>(instance)
    .bind::<Timestamptz, _>(started)
    .bind::<Bool, _>(ok)
    .bind::<Text, _>(summary)
    .execute(conn)
    .map(|_| ())
}
