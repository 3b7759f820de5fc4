//! `user_generations`: the per-user write counter behind the never-stale cache.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Uuid as SqlUuid};
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

#[derive(QueryableByName)]
struct Generation {
    #[diesel(sql_type = BigInt)]
    generation: i64,
}

/// The user's current generation (0 before the first write).
pub fn current(conn: &mut PgConnection, user: Uuid) -> QueryResult<i64> {
    let rows: Vec<Generation> =
        diesel::sql_query("SELECT generation FROM user_generations WHERE user_id = $1")
            .bind::<SqlUuid, _>(user)
            .load(conn)?;
    Ok(rows.first().map_or(0, |g| g.generation))
}
