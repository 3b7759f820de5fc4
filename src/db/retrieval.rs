//! Reading raw points back: the latest point of a series as of a time, and ranges of one
//! series in key order (with the number downsampling weighs each point by, and the count
//! downsampling starts from). Every statement here names one user and one series, so it
//! is a range of the primary key `(user_id, series_id, time, session_id)`: an index scan
//! (backwards for "latest") that reads only the rows it returns, or counts.

use crate::domain::series_shape::Measure;
use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// One stored point of a known series.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct StoredPoint {
    #[diesel(sql_type = Timestamptz)]
    pub time: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    pub session_id: Uuid,
    /// The JSON exactly as it was sent.
    #[diesel(sql_type = Text)]
    pub value: String,
}

/// The "latest as of" statement: `$1` user, `$2` series, `$3` from, `$4` as of, `$5`
/// session. The lower bound (the user's first time) keeps the plan to the partitions
/// that can hold the user's points.
pub fn latest_sql(with_session: bool) -> String {
    format!(
        "SELECT time, session_id, value::text AS value FROM points
         WHERE user_id = $1 AND series_id = $2 AND time >= $3 AND time <= $4{}
         ORDER BY time DESC, session_id DESC LIMIT 1",
        if with_session {
            " AND session_id = $5"
        } else {
            ""
        }
    )
}

fn bind_latest(
    sql: String,
    user: Uuid,
    series_id: i32,
    (from, as_of): (DateTime<Utc>, DateTime<Utc>),
    session: Option<Uuid>,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let q = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<SqlUuid, _>(user)
        .bind::<Integer, _>(series_id)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(as_of);
    match session {
        Some(s) => q.bind::<SqlUuid, _>(s),
        None => q,
    }
}

/// The last point of one series within `(from, as_of)`, both inclusive (of one session
/// if given).
pub fn latest(
    conn: &mut PgConnection,
    user: Uuid,
    series_id: i32,
    within: (DateTime<Utc>, DateTime<Utc>),
    session: Option<Uuid>,
) -> QueryResult<Option<StoredPoint>> {
    bind_latest(
        latest_sql(session.is_some()),
        user,
        series_id,
        within,
        session,
    )
    .get_result(conn)
    .optional()
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// `EXPLAIN` of [`latest`]'s statement with these parameters (for tests and `docs/storage-and-rollups.md`).
pub fn explain_latest(
    conn: &mut PgConnection,
    user: Uuid,
    series_id: i32,
    within: (DateTime<Utc>, DateTime<Utc>),
    session: Option<Uuid>,
) -> QueryResult<String> {
    let sql = format!("EXPLAIN (COSTS OFF) {}", latest_sql(session.is_some()));
    let lines: Vec<PlanLine> = bind_latest(sql, user, series_id, within, session).load(conn)?;
    Ok(lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Where a range of one series starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeStart {
    /// From the first point.
    Start,
    /// Points at or after this time.
    AtOrAfter(DateTime<Utc>),
    /// Points strictly after this `(time, session_id)`.
    After(DateTime<Utc>, Uuid),
}

/// One user's points of one series, in `(time, session_id)` order.
#[derive(Debug, Clone)]
pub struct SeriesRange {
    pub user_id: Uuid,
    pub series_id: i32,
    pub session_id: Option<Uuid>,
    /// Inclusive lower bound on time, if any.
    pub start: Option<DateTime<Utc>>,
    /// Inclusive upper bound on time, if any.
    pub end: Option<DateTime<Utc>>,
}

/// A value bound to a statement built at run time.
enum Param {
    Uuid(Uuid),
    Int(i32),
    Time(DateTime<Utc>),
    Text(String),
    BigInt(i64),
}

/// The parameters of a statement built at run time, numbered as they are added.
#[derive(Default)]
struct Params(Vec<Param>);

impl Params {
    /// Adds a parameter; returns its placeholder (`$n`).
    fn add(&mut self, p: Param) -> String {
        self.0.push(p);
        format!("${}", self.0.len())
    }

    fn bind(self, sql: String) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        self.0
            .into_iter()
            .fold(diesel::sql_query(sql).into_boxed::<Pg>(), |q, p| match p {
                Param::Uuid(v) => q.bind::<SqlUuid, _>(v),
                Param::Int(v) => q.bind::<Integer, _>(v),
                Param::Time(v) => q.bind::<Timestamptz, _>(v),
                Param::Text(v) => q.bind::<Text, _>(v),
                Param::BigInt(v) => q.bind::<BigInt, _>(v),
            })
    }
}

/// The `WHERE` conditions of `range` from `from`, with their parameters added.
fn range_conditions(range: &SeriesRange, from: RangeStart, params: &mut Params) -> String {
    let mut conds = vec![
        format!("user_id = {}", params.add(Param::Uuid(range.user_id))),
        format!("series_id = {}", params.add(Param::Int(range.series_id))),
    ];
    if let Some(t) = range.start {
        conds.push(format!("time >= {}", params.add(Param::Time(t))));
    }
    if let Some(t) = range.end {
        conds.push(format!("time <= {}", params.add(Param::Time(t))));
    }
    if let Some(s) = range.session_id {
        conds.push(format!("session_id = {}", params.add(Param::Uuid(s))));
    }
    match from {
        RangeStart::Start => {}
        RangeStart::AtOrAfter(t) => conds.push(format!("time >= {}", params.add(Param::Time(t)))),
        // The plain `time >=` lets the planner prune partitions; the row comparison is
        // an index condition on (time, session_id).
        RangeStart::After(t, s) => {
            let t = params.add(Param::Time(t));
            let s = params.add(Param::Uuid(s));
            conds.push(format!("time >= {t}"));
            conds.push(format!("(time, session_id) > ({t}, {s})"));
        }
    }
    conds.join(" AND ")
}

/// The next at most `limit` points of `range` after `from`.
pub fn range_page(
    conn: &mut PgConnection,
    range: &SeriesRange,
    from: RangeStart,
    limit: i64,
) -> QueryResult<Vec<StoredPoint>> {
    let mut params = Params::default();
    let conds = range_conditions(range, from, &mut params);
    let limit = params.add(Param::BigInt(limit));
    let sql = format!(
        "SELECT time, session_id, value::text AS value FROM points WHERE {conds}
         ORDER BY time, session_id LIMIT {limit}"
    );
    params.bind(sql).load(conn)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// How many points `range` holds.
pub fn range_count(conn: &mut PgConnection, range: &SeriesRange) -> QueryResult<i64> {
    let mut params = Params::default();
    let conds = range_conditions(range, RangeStart::Start, &mut params);
    let sql = format!("SELECT count(*) AS count FROM points WHERE {conds}");
    params.bind(sql).get_result::<Count>(conn).map(|c| c.count)
}

/// One stored point with the number downsampling weighs it by.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct MeasuredPoint {
    #[diesel(sql_type = Timestamptz)]
    pub time: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    pub session_id: Uuid,
    /// The point's [`Measure`]; `None` when it has none (a `null`, a missing field).
    #[diesel(sql_type = Nullable<Double>)]
    pub number: Option<f64>,
    /// The JSON exactly as it was sent; `None` when not asked for.
    #[diesel(sql_type = Nullable<Text>)]
    pub value: Option<String>,
}

/// Like [`range_page`], with each point's `measure` (read from the columns ingest
/// extracted: `num`, or the field's place in `fields` / `field_values`), and its value
/// only `with_values`. Without values and with [`Measure::Main`] this reads the primary
/// key alone (it includes `num`).
pub fn measured_page(
    conn: &mut PgConnection,
    range: &SeriesRange,
    from: RangeStart,
    limit: i64,
    measure: &Measure,
    with_values: bool,
) -> QueryResult<Vec<MeasuredPoint>> {
    let mut params = Params::default();
    let conds = range_conditions(range, from, &mut params);
    let number = match measure {
        Measure::Main => "num".to_string(),
        Measure::Field(name) => {
            let name = params.add(Param::Text(name.clone()));
            format!("field_values[array_position(fields, {name}::text)]")
        }
    };
    let value = if with_values {
        "value::text"
    } else {
        "NULL::text"
    };
    let limit = params.add(Param::BigInt(limit));
    let sql = format!(
        "SELECT time, session_id, {number} AS number, {value} AS value FROM points
         WHERE {conds} ORDER BY time, session_id LIMIT {limit}"
    );
    params.bind(sql).load(conn)
}
