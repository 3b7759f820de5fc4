//! Bucketed aggregates over `points`, using only what ingest extracted (`num`, `fields`,
//! `field_values`): no JSON is parsed at query time.

use super::prepared::{Bind, Statement};
use crate::domain::interval::{Interval, ORIGIN_RFC3339};
use crate::domain::query::AggFunc;
use chrono::{DateTime, Utc};
use diesel::pg::data_types::PgInterval;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz};
use uuid::Uuid;

/// The SQL aggregate over the numeric column `v` (ordered by `time` where needed).
pub fn agg_sql(agg: AggFunc, v: &str) -> String {
    match agg {
        AggFunc::Avg => format!("avg({v})"),
        AggFunc::Min => format!("min({v})"),
        AggFunc::Max => format!("max({v})"),
        AggFunc::Count => format!("count({v})::float8"),
        AggFunc::Sum => format!("sum({v})"),
        // Ties on time: the smallest value first, the largest last (as rollups do).
        AggFunc::First => format!("(array_agg({v} ORDER BY time, {v}))[1]"),
        AggFunc::Last => format!("(array_agg({v} ORDER BY time DESC, {v} DESC))[1]"),
        AggFunc::Median => format!("percentile_cont(0.5) WITHIN GROUP (ORDER BY {v})"),
        AggFunc::P90 => format!("percentile_cont(0.9) WITHIN GROUP (ORDER BY {v})"),
        AggFunc::P95 => format!("percentile_cont(0.95) WITHIN GROUP (ORDER BY {v})"),
        AggFunc::P99 => format!("percentile_cont(0.99) WITHIN GROUP (ORDER BY {v})"),
        AggFunc::Stddev => format!("stddev_samp({v})"),
    }
}

/// What to aggregate: one user's points of some series in a time range.
#[derive(Debug, Clone)]
pub struct Selection {
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub series_ids: Vec<i32>,
    /// Inclusive.
    pub start: DateTime<Utc>,
    /// Inclusive.
    pub end: DateTime<Utc>,
    pub interval: Interval,
    /// An IANA zone name (already validated).
    pub tz: String,
}

impl Selection {
    /// The bucket expression over `{p}time`, with the zone or width bound as `$5`.
    fn bucket_sql(&self, p: &str) -> String {
        self.bucket_sql_param(&format!("{p}time"), "$5")
    }

    /// The bucket expression over a timestamp column, with what varies bound as
    /// `param` ([`Selection::bucket_param`]): the zone of calendar buckets, the width of
    /// fixed ones (one statement text serves every width). In UTC, calendar buckets use
    /// the session's zone, which every service connection sets to UTC
    /// (`db::SessionSetup`): it saves looking the zone up by name for every row (~30% of
    /// a month-level scan).
    pub fn bucket_sql_param(&self, column: &str, param: &str) -> String {
        match self.interval {
            Interval::Fixed(_) => {
                format!("date_bin({param}, {column}, '{ORIGIN_RFC3339}'::timestamptz)")
            }
            Interval::Calendar(unit) if self.tz == "UTC" => {
                format!("date_trunc('{}', {column})", unit.sql_field())
            }
            Interval::Calendar(unit) => {
                format!("date_trunc('{}', {column}, {param})", unit.sql_field())
            }
        }
    }

    /// The value [`Selection::bucket_sql_param`] binds: the zone name, or the width (as
    /// an interval: a text cast to one in the statement would be parsed for every row).
    pub fn bucket_param(&self) -> Bind {
        match self.interval {
            Interval::Fixed(w) => {
                Bind::Interval(PgInterval::from_microseconds(w.saturating_mul(1_000_000)))
            }
            Interval::Calendar(_) => Bind::Text(self.tz.clone()),
        }
    }

    /// The filter on `points` (columns prefixed by `p`), with `$1`..`$6` bound by
    /// [`Selection::bind`].
    fn where_sql(&self, p: &str) -> String {
        let mut sql =
            format!("{p}user_id = $1 AND {p}series_id = ANY($2) AND {p}time BETWEEN $3 AND $4");
        if self.session_id.is_some() {
            sql.push_str(&format!(" AND {p}session_id = $6"));
        }
        sql
    }

    /// The statement over raw points: never kept prepared, as the best plan for years of
    /// points is not the best for an hour (see [`super::prepared`]).
    fn bind(&self, sql: String) -> Statement {
        let q = Statement::unprepared(&sql)
            .bind(Bind::Uuid(self.user_id))
            .bind(Bind::Ints(self.series_ids.clone()))
            .bind(Bind::Time(self.start))
            .bind(Bind::Time(self.end))
            .bind(self.bucket_param());
        match self.session_id {
            Some(s) => q.bind(Bind::Uuid(s)),
            None => q,
        }
    }
}

/// One row of a query's statement, whichever read made it: every read of a query is
/// one `SELECT` of these columns ([`as_part`]), so that all of them go as one statement.
/// `part` names the read; each fills the columns it has.
#[derive(Debug, Clone, QueryableByName)]
pub struct AnswerRow {
    #[diesel(sql_type = Integer)]
    pub part: i32,
    #[diesel(sql_type = Integer)]
    pub series_id: i32,
    #[diesel(sql_type = Timestamptz)]
    pub bucket: DateTime<Utc>,
    /// The object field ('' for the main number).
    #[diesel(sql_type = Text)]
    pub field: String,
    /// An aggregated number.
    #[diesel(sql_type = Nullable<Double>)]
    pub v: Option<f64>,
    /// A stored value as JSON text (first or last).
    #[diesel(sql_type = Nullable<Text>)]
    pub value: Option<String>,
    /// How many numbers a sketch row holds (see [`crate::db::rollups::sketch_rows`]).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub n: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub min: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub max: Option<f64>,
    #[diesel(sql_type = Nullable<Array<BigInt>>)]
    pub sketch: Option<Vec<i64>>,
}

/// The columns of a read's own rows, which [`as_part`] maps onto [`AnswerRow`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// `(series_id, bucket, v)`.
    Numbers,
    /// `(series_id, bucket, field, v)`.
    Fields,
    /// `(series_id, bucket, value)`.
    Values,
    /// `(series_id, bucket, field, n, min, max, sketch)`.
    Sketches,
    /// `(bucket, n)`: hours awaiting the rollup job, `n` 1 where their hourly rows are
    /// exact (see [`crate::db::rollups::pending_part`]).
    Pending,
}

impl Columns {
    /// The names of the read's columns, and [`AnswerRow`]'s columns over them in order.
    fn names_and_values(self) -> (&'static str, [&'static str; 9]) {
        let none = |kept: [&'static str; 3]| -> [&'static str; 9] {
            [
                kept[0],
                kept[1],
                kept[2],
                "NULL::float8",
                "NULL::text",
                "NULL::int8",
                "NULL::float8",
                "NULL::float8",
                "NULL::int8[]",
            ]
        };
        match self {
            Columns::Numbers => ("series_id, bucket, v", {
                let mut c = none(["series_id", "bucket", "''::text"]);
                c[3] = "v";
                c
            }),
            Columns::Fields => ("series_id, bucket, field, v", {
                let mut c = none(["series_id", "bucket", "field"]);
                c[3] = "v";
                c
            }),
            Columns::Values => ("series_id, bucket, value", {
                let mut c = none(["series_id", "bucket", "''::text"]);
                c[4] = "value";
                c
            }),
            Columns::Sketches => ("series_id, bucket, field, n, min, max, sketch", {
                let mut c = none(["series_id", "bucket", "field"]);
                c[5] = "n::int8";
                c[6] = "min";
                c[7] = "max";
                c[8] = "sketch";
                c
            }),
            Columns::Pending => ("bucket, n", {
                let mut c = none(["0", "bucket", "''::text"]);
                c[5] = "n::int8";
                c
            }),
        }
    }
}

/// [`AnswerRow`]'s column names, in order after `part`.
const ANSWER_COLUMNS: [&str; 9] = [
    "series_id",
    "bucket",
    "field",
    "v",
    "value",
    "n",
    "min",
    "max",
    "sketch",
];

/// `statement` (whose rows have `columns`) as a `SELECT` of [`AnswerRow`]s of `part`.
pub fn as_part(statement: Statement, part: i32, columns: Columns) -> Statement {
    let (names, values) = columns.names_and_values();
    // Named, as the first `SELECT` of a `UNION ALL` names the statement's columns.
    let select: Vec<String> = values
        .iter()
        .zip(ANSWER_COLUMNS)
        .map(|(v, name)| format!("{v} AS {name}"))
        .collect();
    let select = select.join(", ");
    statement.wrapped(
        &format!("SELECT {part}::int4 AS part, {select} FROM (\n"),
        &format!("\n) r({names})"),
    )
}

/// Aggregates the main number (`num`) of each point.
pub fn scalar(sel: &Selection, agg: AggFunc) -> Statement {
    let sql = format!(
        "SELECT series_id, {bucket} AS bucket, {agg} AS v
         FROM points WHERE {filter} AND num IS NOT NULL
         GROUP BY 1, 2 ORDER BY 1, 2",
        bucket = sel.bucket_sql(""),
        agg = agg_sql(agg, "num"),
        filter = sel.where_sql(""),
    );
    sel.bind(sql)
}

/// Aggregates every numeric field of object values (the main number as field `value`).
pub fn fields(sel: &Selection, agg: AggFunc) -> Statement {
    let sql = format!(
        "SELECT series_id, bucket, field, {agg} AS v FROM (
            SELECT p.series_id, {bucket} AS bucket, p.time, f.field, f.fv
            FROM points p
            CROSS JOIN LATERAL unnest(
                CASE WHEN p.num IS NULL THEN p.fields
                     ELSE array_prepend('value'::text, coalesce(p.fields, '{{}}')) END,
                CASE WHEN p.num IS NULL THEN p.field_values
                     ELSE array_prepend(p.num, coalesce(p.field_values, '{{}}')) END
            ) AS f(field, fv)
            WHERE {filter}
         ) x
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        bucket = sel.bucket_sql("p."),
        agg = agg_sql(agg, "fv"),
        filter = sel.where_sql("p."),
    );
    sel.bind(sql)
}

/// Counts points per bucket (any value).
pub fn count(sel: &Selection) -> Statement {
    let sql = format!(
        "SELECT series_id, {bucket} AS bucket, count(*)::float8 AS v
         FROM points WHERE {filter} GROUP BY 1, 2 ORDER BY 1, 2",
        bucket = sel.bucket_sql(""),
        filter = sel.where_sql(""),
    );
    sel.bind(sql)
}

/// The first (or last) value of each bucket, as the JSON text stored; ties on time are
/// broken by session id (as the value rollups do).
pub fn first_or_last(sel: &Selection, last: bool) -> Statement {
    let sql = format!(
        "SELECT DISTINCT ON (series_id, bucket) series_id, bucket, value::text AS value
         FROM (SELECT series_id, {bucket} AS bucket, time, session_id, value FROM points WHERE {filter}) x
         ORDER BY series_id, bucket, time {dir}, session_id {dir}",
        bucket = sel.bucket_sql(""),
        filter = sel.where_sql(""),
        dir = if last { "DESC" } else { "ASC" },
    );
    sel.bind(sql)
}
