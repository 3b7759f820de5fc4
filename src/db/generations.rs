//! `user_generations`: the per-user write counter behind the never-stale cache.

use super::prepared::{Bind, Statement};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz, Uuid as SqlUuid};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Increases the generation of each user; call inside the writing transaction.
pub fn bump(conn: &mut PgConnection, users: &[Uuid]) -> QueryResult<()> {
    let spans: Vec<(Uuid, Option<Span>)> = users.iter().map(|&u| (u, None)).collect();
    bump_spanning(conn, &spans)
}

/// The times within which a user's points lie: every write widens it, deletions leave it
/// as it was, so it is a superset of the stored times. Reads bound their range by it so
/// that PostgreSQL plans and locks only the partitions that can hold the user's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl Span {
    /// `(first, last)`, both inclusive.
    pub fn bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.first, self.last)
    }

    /// The part of `[start, end]` (either end open) that lies within the span, or `None`
    /// when the two do not meet.
    pub fn clip(
        &self,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let from = start.map_or(self.first, |s| s.max(self.first));
        let to = end.map_or(self.last, |e| e.min(self.last));
        (from <= to).then_some((from, to))
    }
}

/// Increases the generation of each user and widens the user's [`Span`] to cover the
/// given times (none: the generation alone); call inside the transaction that writes
/// those points.
pub fn bump_spanning(conn: &mut PgConnection, spans: &[(Uuid, Option<Span>)]) -> QueryResult<()> {
    if spans.is_empty() {
        return Ok(());
    }
    // One row per user, in key order (concurrent writers lock rows in the same order).
    let mut merged: BTreeMap<Uuid, Option<Span>> = BTreeMap::new();
    for &(user, span) in spans {
        let entry = merged.entry(user).or_insert(span);
        *entry = match (*entry, span) {
            (Some(a), Some(b)) => Some(Span {
                first: a.first.min(b.first),
                last: a.last.max(b.last),
            }),
            (a, b) => a.or(b),
        };
    }
    // `least`/`greatest` ignore NULLs: a user's first span is the one given. A multi-row
    // `VALUES`, for Citus (see [`super::values_list`]).
    let rows: Vec<(Uuid, Option<Span>)> = merged.into_iter().collect();
    // (A new row's generation is bound too, as a list of plain values is what Citus splits.)
    for chunk in rows.chunks(super::values_chunk(4)) {
        let sql = format!(
            "INSERT INTO user_generations AS g (user_id, generation, first_time, last_time)
             VALUES {}
             ON CONFLICT (user_id) DO UPDATE SET generation = g.generation + 1,
                 first_time = least(g.first_time, excluded.first_time),
                 last_time = greatest(g.last_time, excluded.last_time)",
            super::values_list(chunk.len(), &["uuid", "int8", "timestamptz", "timestamptz"])
        );
        chunk
            .iter()
            .fold(
                diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>(),
                |q, &(user, span)| {
                    q.bind::<SqlUuid, _>(user)
                        .bind::<diesel::sql_types::BigInt, _>(1_i64)
                        .bind::<Nullable<Timestamptz>, _>(span.map(|s| s.first))
                        .bind::<Nullable<Timestamptz>, _>(span.map(|s| s.last))
                },
            )
            .execute(conn)?;
    }
    Ok(())
}

/// The user's [`Span`], `None` when the user never wrote a point.
pub fn span(conn: &mut PgConnection, user: Uuid) -> QueryResult<Option<Span>> {
    use super::schema::user_generations::dsl;
    type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let row: Option<Bounds> = dsl::user_generations
        .filter(dsl::user_id.eq(user))
        .select((dsl::first_time, dsl::last_time))
        .first(conn)
        .optional()?;
    Ok(match row {
        Some((Some(first), Some(last))) => Some(Span { first, last }),
        _ => None,
    })
}

/// Increases `user`'s generation and narrows the user's [`Span`] to the times of the
/// points the user still holds (none: no span), once deletions took some away; returns
/// the span as it was (`None`: the user has none). The times are read outside any lock
/// and written only if no write for the user committed meanwhile (the generation did not
/// move); after `attempts` tries that each met a write, the span is left as it is (still
/// a superset) and only the generation goes up.
pub fn bump_narrowing(
    conn: &mut PgConnection,
    user: Uuid,
    attempts: usize,
) -> QueryResult<Option<Span>> {
    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        first: Option<DateTime<Utc>>,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        last: Option<DateTime<Utc>>,
    }
    for _ in 0..attempts {
        let seen = current(conn, user)?;
        let Some(old) = span(conn, user)? else {
            return Ok(None);
        };
        let now: Stored = diesel::sql_query(
            "SELECT min(time) AS first, max(time) AS last FROM points
             WHERE user_id = $1 AND time >= $2 AND time <= $3",
        )
        .bind::<SqlUuid, _>(user)
        .bind::<Timestamptz, _>(old.first)
        .bind::<Timestamptz, _>(old.last)
        .get_result(conn)?;
        let updated = diesel::sql_query(
            "UPDATE user_generations
             SET generation = generation + 1, first_time = $3, last_time = $4
             WHERE user_id = $1 AND generation = $2",
        )
        .bind::<SqlUuid, _>(user)
        .bind::<diesel::sql_types::BigInt, _>(seen)
        .bind::<Nullable<Timestamptz>, _>(now.first)
        .bind::<Nullable<Timestamptz>, _>(now.last)
        .execute(conn)?;
        if updated == 1 {
            return Ok(Some(old));
        }
    }
    let old = span(conn, user)?;
    bump(conn, &[user])?;
    Ok(old)
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
/// `points` about to be dropped; call inside the dropping transaction. Returns the users.
pub fn bump_writers_in(conn: &mut PgConnection, table: &str) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Bumped {
        #[diesel(sql_type = SqlUuid)]
        user_id: Uuid,
    }
    let bumped: Vec<Bumped> = diesel::sql_query(format!(
        "INSERT INTO user_generations AS g (user_id, generation)
         SELECT DISTINCT user_id, 1 FROM {table}
         ON CONFLICT (user_id) DO UPDATE SET generation = g.generation + 1
         RETURNING g.user_id"
    ))
    .load(conn)?;
    Ok(bumped.into_iter().map(|b| b.user_id).collect())
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

/// An hour awaiting the rollup job, and whether its hourly rows are exact.
pub type PendingHour = (DateTime<Utc>, bool);

/// The user's current generation and the hours of `series` in `[from, to)` awaiting
/// the rollup job, each with whether its hourly rows are exact, in one round trip: a
/// query's first, before it looks in the cache (see
/// [`crate::services::query::cached`]).
/// `keep`: whether the statement may be kept prepared (never on Citus, where a
/// session's automatic plan mode could pick a generic plan it cannot distribute).
pub fn current_and_pending(
    conn: &mut PgConnection,
    user: Uuid,
    series: &[i32],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    keep: bool,
) -> QueryResult<(i64, Vec<PendingHour>)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        generation: Option<i64>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
        hour: Option<DateTime<Utc>>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
        exact: Option<bool>,
    }
    let statement = if keep {
        Statement::new
    } else {
        Statement::unprepared
    };
    let rows: Vec<Row> = statement(
        "SELECT generation, NULL::timestamptz AS hour, NULL::bool AS exact
         FROM user_generations WHERE user_id = $1
         UNION ALL
         SELECT DISTINCT NULL::int8, hour, hourly_exact FROM rollup_invalidations
         WHERE user_id = $1 AND series_id = ANY($2) AND hour >= $3 AND hour < $4",
    )
    .bind(Bind::Uuid(user))
    .bind(Bind::Ints(series.to_vec()))
    .bind(Bind::Time(from))
    .bind(Bind::Time(to))
    .load(conn)?;
    let generation = rows.iter().find_map(|r| r.generation).unwrap_or(0);
    let pending = rows
        .iter()
        .filter_map(|r| Some((r.hour?, r.exact?)))
        .collect();
    Ok((generation, pending))
}
