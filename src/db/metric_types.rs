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
    conn.transaction(|conn| {
        let inserted = diesel::insert_into(metric_types::table)
            .values(types)
            .on_conflict(metric_types::series)
            .do_nothing()
            .execute(conn)?;
        bump_version(conn)?;
        Ok(inserted)
    })
}

/// Moves the catalogue version on; every change to `metric_types` does, in its own
/// transaction. (A trigger does it too where the engine allows one: Citus refuses
/// triggers on reference tables, so the application bumps it itself everywhere.)
fn bump_version(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("UPDATE catalogue_version SET version = version + 1 WHERE id")
        .execute(conn)
        .map(|_| ())
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

/// The number of metric types.
pub fn count(conn: &mut PgConnection) -> QueryResult<i64> {
    metric_types::table.count().get_result(conn)
}

/// One page of metric types, ordered by series name.
pub fn page(conn: &mut PgConnection, limit: i64, offset: i64) -> QueryResult<Vec<MetricTypeRow>> {
    metric_types::table
        .select(MetricTypeRow::as_select())
        .order(metric_types::series.asc())
        .limit(limit)
        .offset(offset)
        .load(conn)
}

/// The metric type named `series`, if any.
pub fn get(conn: &mut PgConnection, series: &str) -> QueryResult<Option<MetricTypeRow>> {
    metric_types::table
        .filter(metric_types::series.eq(series))
        .select(MetricTypeRow::as_select())
        .first(conn)
        .optional()
}

/// Locks the row of `series` until the end of the transaction; `None` if it does not exist.
pub fn lock(conn: &mut PgConnection, series: &str) -> QueryResult<Option<MetricTypeRow>> {
    metric_types::table
        .filter(metric_types::series.eq(series))
        .select(MetricTypeRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Inserts a new type; `None` when the series name is taken.
pub fn insert(
    conn: &mut PgConnection,
    new: &NewMetricType<'_>,
) -> QueryResult<Option<MetricTypeRow>> {
    conn.transaction(|conn| {
        let row = diesel::insert_into(metric_types::table)
            .values(new)
            .on_conflict(metric_types::series)
            .do_nothing()
            .returning(MetricTypeRow::as_returning())
            .get_result(conn)
            .optional()?;
        bump_version(conn)?;
        Ok(row)
    })
}

/// Creates the type or replaces its schema, description and kind (keeping its id, so
/// its points stay attached). Returns the row and whether it was created.
pub fn upsert(
    conn: &mut PgConnection,
    new: &NewMetricType<'_>,
) -> QueryResult<(MetricTypeRow, bool)> {
    use diesel::upsert::excluded;
    conn.transaction(|conn| {
        bump_version(conn)?;
        diesel::insert_into(metric_types::table)
            .values(new)
            .on_conflict(metric_types::series)
            .do_update()
            .set((
                metric_types::schema.eq(excluded(metric_types::schema)),
                metric_types::description.eq(excluded(metric_types::description)),
                metric_types::kind.eq(excluded(metric_types::kind)),
                // A value, not `now()`: Citus refuses any but immutable functions in the
                // `DO UPDATE SET` of an upsert into a reference table.
                metric_types::updated_at.eq(chrono::Utc::now()),
            ))
            // `xmax = 0` holds for a row this statement inserted, not for one it updated.
            .returning((
                MetricTypeRow::as_returning(),
                diesel::dsl::sql::<diesel::sql_types::Bool>("(xmax = 0)"),
            ))
            .get_result(conn)
    })
}

/// Deletes the type's row (not its points).
pub fn delete(conn: &mut PgConnection, id: i32) -> QueryResult<usize> {
    bump_version(conn)?;
    diesel::delete(metric_types::table.filter(metric_types::id.eq(id))).execute(conn)
}

#[derive(QueryableByName)]
struct ExistsRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    found: bool,
}

/// Whether any point of the series is stored. No index leads with `series_id`, so when
/// there is none this reads the whole table: fine for a rare admin operation.
pub fn has_points(conn: &mut PgConnection, id: i32) -> QueryResult<bool> {
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM points WHERE series_id = $1) AS found")
        .bind::<diesel::sql_types::Integer, _>(id)
        .get_result::<ExistsRow>(conn)
        .map(|r| r.found)
}

#[derive(QueryableByName)]
struct UserRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: uuid::Uuid,
}

/// Deletes every point of the series; returns the users who had any.
pub fn delete_points(conn: &mut PgConnection, id: i32) -> QueryResult<Vec<uuid::Uuid>> {
    let rows: Vec<UserRow> = diesel::sql_query(
        "WITH gone AS (DELETE FROM points WHERE series_id = $1 RETURNING user_id)
         SELECT DISTINCT user_id FROM gone",
    )
    .bind::<diesel::sql_types::Integer, _>(id)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}
