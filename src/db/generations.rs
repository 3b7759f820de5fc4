//! `user_generations`: the per-user write counter behind the never-stale cache.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Timestamptz, Uuid as SqlUuid};
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
    let users: Vec<Uuid> = merged.keys().copied().collect();
    let firsts: Vec<Option<DateTime<Utc>>> = merged.values().map(|s| s.map(|s| s.first)).collect();
    let lasts: Vec<Option<DateTime<Utc>>> = merged.values().map(|s| s.map(|s| s.last)).collect();
    // `least`/`greatest` ignore NULLs: a user's first span is the one given.
    diesel::sql_query(
        "INSERT INTO user_generations AS g (user_id, generation, first_time, last_time)
         SELECT u, 1, f, l FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS s(u, f, l)
         ORDER BY u
         ON CONFLICT (user_id) DO UPDATE SET generation = g.generation + 1,
             first_time = least(g.first_time, excluded.first_time),
             last_time = greatest(g.last_time, excluded.last_time)",
    )
    .bind::<Array<SqlUuid>, _>(users)
    .bind::<Array<Nullable<Timestamptz>>, _>(firsts)
    .bind::<Array<Nullable<Timestamptz>>, _>(lasts)
    .execute(conn)
    .map(|_| ())
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
