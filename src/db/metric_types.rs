//! The `metric_types` table and the catalogue version that replicas poll.

use super::schema::metric_types;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::Value;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = metric_types)]
pub struct MetricTypeRow {
    pub id: i32,
    pub series: String,
    pub schema: Value,
    pub description: String,
    pub kind: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = metric_types)]
pub struct NewMetricType<'a> {
    pub series: &'a str,
    pub schema: &'a Value,
    pub description: &'a str,
    pub kind: Option<&'a str>,
}

/// Every metric type, ordered by series name.
pub fn all(conn: &mut PgConnection) -> QueryResult<Vec<MetricTypeRow>> {
    metric_types::table
        .select(MetricTypeRow::as_select())
        .order(metric_types::series.asc())
        .load(conn)
}

/// Inserts the types that do not exist yet; returns how many it inserted.
pub fn insert_missing(conn: &mut PgConnection, types: &[NewMetricType<'_>]) -> QueryResult<usize> {
    diesel::insert_into(metric_types::table)
        .values(types)
        .on_conflict(metric_types::series)
        .do_nothing()
        .execute(conn)
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// The catalogue version: it moves on every change to `metric_types`.
pub fn version(conn: &mut PgConnection) -> QueryResult<i64> {
    diesel::sql_query("SELECT version FROM catalogue_version")
        .get_result::<VersionRow>(conn)
        .map(|r| r.version)
}
