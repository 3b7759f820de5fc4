//! Reading raw points back: the latest point of a series as of a time, and ranges of one
//! series in key order. Every statement here names one user and one series, so it is a
//! range of the primary key `(user_id, series_id, time, session_id)`: an index scan
//! (backwards for "latest") that reads only the rows it returns.

use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz, Uuid as SqlUuid};
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

/// The next at most `limit` points of `range` after `from`.
pub fn range_page(
    conn: &mut PgConnection,
    range: &SeriesRange,
    from: RangeStart,
    limit: i64,
) -> QueryResult<Vec<StoredPoint>> {
    // Parameters are numbered as they are bound; `$1`, `$2` are the user and series.
    let mut conds = vec!["user_id = $1".to_string(), "series_id = $2".to_string()];
    let mut n = 2;
    let mut next = || {
        n += 1;
        n
    };
    let start_p = range.start.map(|_| next());
    let end_p = range.end.map(|_| next());
    let session_p = range.session_id.map(|_| next());
    let from_p = match from {
        RangeStart::Start => None,
        RangeStart::AtOrAfter(_) => Some((next(), None)),
        RangeStart::After(..) => Some((next(), Some(next()))),
    };
    let limit_p = next();
    if let Some(p) = start_p {
        conds.push(format!("time >= ${p}"));
    }
    if let Some(p) = end_p {
        conds.push(format!("time <= ${p}"));
    }
    if let Some(p) = session_p {
        conds.push(format!("session_id = ${p}"));
    }
    match from_p {
        None => {}
        Some((t, None)) => conds.push(format!("time >= ${t}")),
        // The plain `time >=` lets the planner prune partitions; the row comparison is
        // an index condition on (time, session_id).
        Some((t, Some(s))) => {
            conds.push(format!("time >= ${t}"));
            conds.push(format!("(time, session_id) > (${t}, ${s})"));
        }
    }
    let sql = format!(
        "SELECT time, session_id, value::text AS value FROM points WHERE {}
         ORDER BY time, session_id LIMIT ${limit_p}",
        conds.join(" AND ")
    );
    let mut q = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<SqlUuid, _>(range.user_id)
        .bind::<Integer, _>(range.series_id);
    if let Some(t) = range.start {
        q = q.bind::<Timestamptz, _>(t);
    }
    if let Some(t) = range.end {
        q = q.bind::<Timestamptz, _>(t);
    }
    if let Some(s) = range.session_id {
        q = q.bind::<SqlUuid, _>(s);
    }
    match from {
        RangeStart::Start => {}
        RangeStart::AtOrAfter(t) => q = q.bind::<Timestamptz, _>(t),
        RangeStart::After(t, s) => q = q.bind::<Timestamptz, _>(t).bind::<SqlUuid, _>(s),
    }
    q.bind::<BigInt, _>(limit).load(conn)
}
