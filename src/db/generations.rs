//! `user_generations`: the per-user write counter behind the never-stale cache.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// Increases the generation of each user; call inside the writing transaction.
pub fn bump(conn: &mut PgConnection, users: &[Uuid]) -> QueryResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut users = users.to_vec();
    users.sort();
    users.dedup();
    diesel::sql_query(
        "INSERT INTO user_generations AS g (user_id, generation)
         SELECT u, 1 FROM unnest($1::uuid[]) u ORDER BY u
         ON CONFLICT (user_id) DO UPDATE SET generation = g.generation + 1",
    )
    .bind::<Array<SqlUuid>, _>(users)
    .execute(conn)
    .map(|_| ())
}

/// Increases the generation of every user with points before `cutoff` (they are about
/// to be dropped); call inside the dropping transaction.
pub fn bump_writers_before(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO user_generations AS g (user_id, generation)
         SELECT DISTINCT user_id, 1 FROM points WHERE time < $1
         ON CONFLICT (user_id) DO UPDATE SET generation = g.generation + 1",
    )
    .bind::<Timestamptz, _>(cutoff)
    .execute(conn)
    .map(|_| ())
}

/// Increases the generation of every user with points in `table`, a partition of
/// `points` about to be dropped; call inside the dropping transaction.
pub fn bump_writers_in(conn: &mut PgConnection, table: &str) -> QueryResult<()> {
    diesel::sql_query(format!(
        "INSERT INTO user_generations AS g (user_id, generation)
         SELECT DISTINCT user_id, 1 FROM {table}
         ON CONFLICT (user_id) DO UPDATE SET generation = g.generation + 1"
    ))
    .execute(conn)
    .map(|_| ())
}

/// The user's current generation (0 before the first write). Built with the query DSL,
/// so that each connection prepares it once: every query request asks it first.
pub fn current(conn: &mut PgConnection, user: Uuid) -> QueryResult<i64> {
    use super::schema::user_generations::dsl;
    let g: Option<i64> = dsl::user_generations
        .filter(dsl::user_id.eq(user))
        .select(dsl::generation)
        .first(conn)
        .optional()?;
    Ok(g.unwrap_or(0))
}
