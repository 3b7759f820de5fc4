//! Rollups of `points` per user, series and numeric field at three levels (hour, UTC day,
//! UTC month): the levels and what the parts share here; the invalidation log ingest
//! writes ([`invalidations`]), the refresh the rollup job runs ([`refresh`]), the
//! vacuum of the churned tables ([`vacuum`]) and the one statement per query that
//! combines monthly, daily and hourly rollups and raw points along a [`Plan`] ([`read`]).

mod invalidations;
mod read;
mod refresh;
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

/// A statement over `unnest($1::uuid[], $2::int[], $3::timestamptz[])`: one key per row.
fn keyed(sql: &str, keys: &[Key]) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let users: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let series: Vec<i32> = keys.iter().map(|k| k.1).collect();
    let times: Vec<DateTime<Utc>> = keys.iter().map(|k| k.2).collect();
    diesel::sql_query(sql.to_string())
        .into_boxed::<Pg>()
        .bind::<Array<SqlUuid>, _>(users)
        .bind::<Array<Integer>, _>(series)
        .bind::<Array<Timestamptz>, _>(times)
}

/// Deletes the rows of `table` whose (user, series, `column`) is one of the keys.
fn delete_keys(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    keys: &[Key],
) -> QueryResult<usize> {
    keyed(
        &format!(
            "DELETE FROM {table} r USING unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(u, s, k)
             WHERE r.user_id = t.u AND r.series_id = t.s AND r.{column} = t.k"
        ),
        keys,
    )
    .execute(conn)
}

/// The aggregate columns of numeric rollup rows, in insert order.
const NUMBER_COLUMNS: &str = "n, sum, min, max, first_time, first, last_time, last";
/// Those columns of one key combined from several rows (an hour's appended rows, a
/// day's hours, a month's days): every aggregate kept is decomposable.
const NUMBERS_COMBINED: &str = "sum(n), sum(sum), min(min), max(max),
    min(first_time), (array_agg(first ORDER BY first_time, first))[1],
    max(last_time), (array_agg(last ORDER BY last_time DESC, last DESC))[1]";
/// The aggregate columns of whole-value rollup rows, in insert order.
const VALUE_COLUMNS: &str = "n, first_time, first_session, first, last_time, last_session, last";
/// Those columns combined, as [`NUMBERS_COMBINED`].
const VALUES_COMBINED: &str = "sum(n),
    min(first_time), (array_agg(first_session ORDER BY first_time, first_session))[1],
    (array_agg(first ORDER BY first_time, first_session))[1],
    max(last_time), (array_agg(last_session ORDER BY last_time DESC, last_session DESC))[1],
    (array_agg(last ORDER BY last_time DESC, last_session DESC))[1]";
