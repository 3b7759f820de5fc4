//! Rollups of `points` per user, series and numeric field at three levels (hour, UTC day,
//! UTC month): the levels and what the parts share here; the invalidation log ingest
//! writes ([`invalidations`]), the refresh the rollup job runs ([`refresh`]), the
//! vacuum of the churned tables ([`vacuum`]) and the one statement per query that
//! combines monthly, daily and hourly rollups and raw points along a [`Plan`] ([`read`]).

mod invalidations;
mod read;
mod refresh;
mod sketches;
mod vacuum;

pub use invalidations::*;
pub use read::*;
pub use refresh::*;
pub use vacuum::*;

use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Integer, Timestamptz, Uuid as SqlUuid};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Waits for a running refresh to end and keeps the job out until the caller's
/// transaction ends. Deleting invalidations while a refresh deletes some of the same keys
/// could deadlock (a key may have several rows, locked in any order).
fn exclude_refresh(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(super::locks::ROLLUP_REFRESH_JOB)
        .execute(conn)?;
    Ok(())
}

/// One level of rollups: its tables (numbers, whole values), their time column and the
/// width of a row.
struct Level {
    numbers: &'static str,
    values: &'static str,
    column: &'static str,
    width: &'static str,
}

const HOURLY: Level = Level {
    numbers: "rollup_hourly",
    values: "rollup_values_hourly",
    column: "hour",
    width: "1 hour",
};
const DAILY: Level = Level {
    numbers: "rollup_daily",
    values: "rollup_values_daily",
    column: "day",
    width: "1 day",
};
const MONTHLY: Level = Level {
    numbers: "rollup_monthly",
    values: "rollup_values_monthly",
    column: "month",
    width: "1 month",
};
const LEVELS: [Level; 3] = [HOURLY, DAILY, MONTHLY];

/// Every rollup table with its time column.
fn rollup_tables() -> impl Iterator<Item = (&'static str, &'static str)> {
    LEVELS
        .iter()
        .flat_map(|l| [(l.numbers, l.column), (l.values, l.column)])
}

/// A rollup key: user, series and the start of an hour, day or month.
pub type Key = (Uuid, i32, DateTime<Utc>);

/// Which users' keys one statement of the rollup job holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    /// Any users' (one PostgreSQL server holds them all).
    Together,
    /// Those of users whose rows share one Citus shard, named as `user_id = ANY($4)` for
    /// every distributed table the statement reads or writes, so that Citus sends the
    /// whole statement to that shard (joined with the keys' `unnest` alone, it would plan
    /// for every shard, and refuses some of the statements outright).
    Shard(Vec<Uuid>),
}

impl Route {
    /// How `keys` (sorted) are split into statements: one set for all on one server, one
    /// per shard on a Citus coordinator (`citus`).
    pub(super) fn split(
        conn: &mut PgConnection,
        keys: Vec<Key>,
        citus: bool,
    ) -> QueryResult<Vec<(Route, Vec<Key>)>> {
        #[derive(QueryableByName)]
        struct Placed {
            #[diesel(sql_type = SqlUuid)]
            user_id: Uuid,
            #[diesel(sql_type = BigInt)]
            shard: i64,
        }
        if !citus {
            return Ok(vec![(Route::Together, keys)]);
        }
        let mut users: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        users.dedup();
        // The coordinator's own metadata: no worker is asked.
        let shard_of: HashMap<Uuid, i64> = diesel::sql_query(
            "SELECT u AS user_id,
                    get_shard_id_for_distribution_column('rollup_invalidations', u) AS shard
             FROM unnest($1::uuid[]) AS u",
        )
        .bind::<Array<SqlUuid>, _>(&users)
        .load::<Placed>(conn)?
        .into_iter()
        .map(|p| (p.user_id, p.shard))
        .collect();
        let mut groups: BTreeMap<i64, (Vec<Uuid>, Vec<Key>)> = BTreeMap::new();
        for key in keys {
            let shard = shard_of.get(&key.0).copied().unwrap_or_default();
            let (users, keys) = groups.entry(shard).or_default();
            if users.last() != Some(&key.0) {
                users.push(key.0);
            }
            keys.push(key);
        }
        Ok(groups
            .into_values()
            .map(|(users, keys)| (Route::Shard(users), keys))
            .collect())
    }

    /// The condition naming the users of the rows of `alias`, appended to its `WHERE`.
    fn on(&self, alias: &str) -> String {
        match self {
            Route::Together => String::new(),
            Route::Shard(_) => format!(" AND {alias}.user_id = ANY($4)"),
        }
    }
}

/// A statement over `unnest($1::uuid[], $2::int[], $3::timestamptz[])`: one key per row,
/// and the users as `$4` when `route` names them.
fn keyed(sql: &str, keys: &[Key], route: &Route) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let users: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let series: Vec<i32> = keys.iter().map(|k| k.1).collect();
    let times: Vec<DateTime<Utc>> = keys.iter().map(|k| k.2).collect();
    let q = diesel::sql_query(sql.to_string())
        .into_boxed::<Pg>()
        .bind::<Array<SqlUuid>, _>(users)
        .bind::<Array<Integer>, _>(series)
        .bind::<Array<Timestamptz>, _>(times);
    match route {
        Route::Together => q,
        Route::Shard(users) => q.bind::<Array<SqlUuid>, _>(users.clone()),
    }
}

/// Deletes the rows of `table` whose (user, series, `column`) is one of the keys.
fn delete_keys(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    keys: &[Key],
    route: &Route,
) -> QueryResult<usize> {
    keyed(
        &format!(
            "DELETE FROM {table} r USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.{column} = t.k{route}",
            route = route.on("r"),
        ),
        keys,
        route,
    )
    .execute(conn)
}

/// Joined to a point `p`, one row per number it holds, `f(field, v)`: its main number
/// (field '') and each numeric field of its object.
const NUMBERS_OF_POINT: &str = "CROSS JOIN LATERAL (
        SELECT ''::text, p.num WHERE p.num IS NOT NULL
        UNION ALL
        SELECT * FROM unnest(p.fields, p.field_values)
    ) AS f(field, v)";

/// The aggregate columns of numeric rollup rows, in insert order (then `sketch`, see
/// [`sketches`]).
const NUMBER_COLUMNS: &str = "n, sum, min, max, first_time, first, last_time, last";
/// Those columns of one key combined from several rows (an hour's appended rows, a
/// day's hours, a month's days): every aggregate kept is decomposable. `filter` (a
/// `FILTER` clause, or empty) picks the rows each aggregate combines.
fn numbers_combined(filter: &str) -> String {
    format!(
        "sum(n){filter}, sum(sum){filter}, min(min){filter}, max(max){filter},
         min(first_time){filter}, (array_agg(first ORDER BY first_time, first){filter})[1],
         max(last_time){filter}, (array_agg(last ORDER BY last_time DESC, last DESC){filter})[1]"
    )
}
/// The aggregate columns of whole-value rollup rows, in insert order.
const VALUE_COLUMNS: &str = "n, first_time, first_session, first, last_time, last_session, last";
/// Those columns combined, as [`numbers_combined`].
const VALUES_COMBINED: &str = "sum(n),
    min(first_time), (array_agg(first_session ORDER BY first_time, first_session))[1],
    (array_agg(first ORDER BY first_time, first_session))[1],
    max(last_time), (array_agg(last_session ORDER BY last_time DESC, last_session DESC))[1],
    (array_agg(last ORDER BY last_time DESC, last_session DESC))[1]";
