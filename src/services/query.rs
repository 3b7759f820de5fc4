//! `GET /api/timeseries/`: which series a query matches, how each is aggregated, and the
//! gap filling and smoothing done after the database answered.
//!
//! Series shapes, decided from each metric type's schema:
//! - *number*: a bare number or `{value: number}`: aggregated to a number;
//! - *fields*: an object with other numeric fields (`{r, g, b}`): each field aggregated,
//!   the value is an object;
//! - *other* (strings, anything else): the first value of the bucket, the last with
//!   `agg_func=last`, the number of points with `count` (the seed's behaviour).

use crate::db::aggregates::{self, Selection};
use crate::db::{prepared, rollups};
use crate::domain::interval::Interval;
use crate::domain::query::{AggFunc, Fill, SeriesPatterns};
use crate::domain::rollup_plan::{Pending, Plan, hour_of};
use crate::domain::timestamp::format_utc;
use crate::error::ApiError;
use crate::services::catalogue::{MetricType, Snapshot};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel::pg::PgConnection;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

/// A validated time-series query.
#[derive(Debug, Clone)]
pub struct TimeseriesQuery {
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub patterns: SeriesPatterns,
    pub interval: Interval,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `None`: each series' kind decides (avg without a kind).
    pub agg: Option<AggFunc>,
    pub tz: Tz,
    pub fill: Fill,
    pub smooth: Option<usize>,
    /// Whether whole buckets may be read from the hourly rollups.
    pub rollups: bool,
}

/// How a series' values aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    Number,
    Fields,
    Other,
}

fn is_numeric_schema(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "number" || t == "integer",
        Some(Value::Array(ts)) => {
            !ts.is_empty()
                && ts
                    .iter()
                    .all(|t| t == "number" || t == "integer" || t == "null")
                && ts.iter().any(|t| t == "number" || t == "integer")
        }
        _ => false,
    }
}

/// The shape of a series, from its schema.
pub fn shape_of(schema: &Value) -> Shape {
    if is_numeric_schema(schema) {
        return Shape::Number;
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Shape::Other;
    };
    let numeric: Vec<&String> = props
        .iter()
        .filter(|(_, s)| is_numeric_schema(s))
        .map(|(k, _)| k)
        .collect();
    match numeric.as_slice() {
        [] => Shape::Other,
        [only] if only.as_str() == "value" => Shape::Number,
        _ => Shape::Fields,
    }
}

/// The aggregate a series gets when the query names none: by its kind.
pub fn default_agg(t: &MetricType) -> AggFunc {
    match t.row.kind.as_deref() {
        Some("count") => AggFunc::Sum,
        Some("sample") => AggFunc::Last,
        _ => AggFunc::Avg,
    }
}

/// A bucket's value while filling and smoothing.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Num(Option<f64>),
    Fields(BTreeMap<String, Option<f64>>),
    Json(Option<Value>),
}

/// One bucket of one series.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultRow {
    /// The bucket's start, RFC 3339 with the offset of `tz`.
    #[schema(format = DateTime, example = "2025-01-01T00:00:00Z")]
    pub bucket: String,
    pub series: String,
    /// A number (numeric series), an object of numbers by field (`{r, g, b}`), the stored
    /// value (other series; their `count` is a number), or `null` for a filled gap.
    #[schema(value_type = Value, example = 6.0)]
    pub value: Value,
}

/// What a query was answered for.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryMetadata {
    /// Rows in `results`.
    pub count: usize,
    /// The bucket width, canonical (`week`, `5m`, `2h`, ...).
    pub interval: String,
    /// The aggregate applied; `by-kind` when none was asked for and the matched series
    /// default to different ones.
    #[schema(example = "avg")]
    pub agg_func: String,
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    /// The series the patterns matched, by name.
    pub series: Vec<String>,
    #[schema(format = DateTime)]
    pub start_time: String,
    #[schema(format = DateTime)]
    pub end_time: String,
    /// The IANA zone of calendar buckets.
    pub tz: String,
    #[schema(value_type = Fill)]
    pub fill: &'static str,
    /// The moving-average window, in buckets; `null` for none.
    pub smooth: Option<usize>,
    /// Where the answer came from: `raw` points, `rollup` (monthly, daily and hourly
    /// rollups only) or `rollup+raw` (rollups for whole refreshed months, days and hours,
    /// raw points for the partial hours at the edges and the hours awaiting refresh).
    #[schema(example = "raw")]
    pub source: &'static str,
}

/// Bucketed aggregates and what they were computed for.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "metadata": {"count": 2, "interval": "month", "agg_func": "avg",
                 "user_id": "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11", "session_id": null,
                 "series": ["session.gut_health_score", "session.urine.color"],
                 "start_time": "2025-01-01T00:00:00Z", "end_time": "2025-12-31T00:00:00Z", "tz": "UTC",
                 "fill": "none", "smooth": null, "source": "raw"},
    "results": [{"bucket": "2025-01-01T00:00:00Z", "series": "session.gut_health_score", "value": 6.0},
                {"bucket": "2025-01-01T00:00:00Z", "series": "session.urine.color", "value": {"r": 150.0, "g": 75.0, "b": 5.0}}]
}))]
pub struct QueryResponse {
    pub metadata: QueryMetadata,
    /// By series, then bucket.
    pub results: Vec<ResultRow>,
}

/// The matched series, ordered by name.
pub fn match_series(snapshot: &Snapshot, patterns: &SeriesPatterns) -> Vec<Arc<MetricType>> {
    snapshot
        .all()
        .into_iter()
        .filter(|t| patterns.matches(&t.row.series))
        .collect()
}

/// Runs the query against the database and shapes the answer. Its statements (the hours
/// awaiting refresh, then one per series group, numeric groups read from rollups sharing
/// one per aggregate) share one snapshot, so an answer never holds part of a write that
/// committed meanwhile.
pub fn run(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    q: &TimeseriesQuery,
) -> Result<QueryResponse, ApiError> {
    // Rollups on: the combining statements, kept prepared, come first.
    prepared::read_snapshot(conn, q.rollups, |conn| run_in_snapshot(conn, snapshot, q))
}

fn run_in_snapshot(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    q: &TimeseriesQuery,
) -> Result<QueryResponse, ApiError> {
    let matched = match_series(snapshot, &q.patterns);
    let shapes: BTreeMap<i32, Shape> = matched
        .iter()
        .map(|t| (t.id(), shape_of(&t.row.schema)))
        .collect();
    let shape_of_id = |id: i32| shapes.get(&id).copied().unwrap_or(Shape::Other);
    // Group the series by (shape, aggregate): one SQL statement per group, but for the
    // numeric groups read from rollups (see `numeric` below).
    let mut groups: BTreeMap<(Shape, &'static str), (AggFunc, Vec<i32>)> = BTreeMap::new();
    for t in &matched {
        let agg = q.agg.unwrap_or_else(|| default_agg(t));
        groups
            .entry((shape_of_id(t.id()), agg.name()))
            .or_insert_with(|| (agg, Vec::new()))
            .1
            .push(t.id());
    }
    let mut cells: Cells = BTreeMap::new();
    let mut source = Source::default();
    let all_ids: Vec<i32> = matched.iter().map(|t| t.id()).collect();
    // The rollup plan: the same for every group that may use one (it depends on the query
    // and the hours awaiting refresh only), made when the first such group comes; `None`
    // inside when the plan is too fragmented and raw points answer instead.
    let mut query_plan: Option<Option<Plan>> = None;
    // Numbers and objects of numbers read from rollups, by aggregate: one statement reads
    // both shapes (a number is its field ''), so `series=session.*` makes one statement
    // less. The aggregate, the ids, and whether any of them is an object.
    let mut numeric: BTreeMap<&'static str, (AggFunc, Vec<i32>, bool)> = BTreeMap::new();
    let selection = |series_ids: Vec<i32>| Selection {
        user_id: q.user_id,
        session_id: q.session_id,
        series_ids,
        start: q.start,
        end: q.end,
        interval: q.interval,
        tz: q.tz.name().to_string(),
    };
    for ((shape, _), (agg, ids)) in groups {
        let sel = selection(ids);
        let plan = if rollup_eligible(q, shape, agg) {
            if query_plan.is_none() {
                let pending = pending_hours(conn, q, &all_ids)?;
                let end = q.end + TimeDelta::microseconds(1);
                let plan = Plan::new(q.interval, q.tz, q.start, end, &pending);
                query_plan = Some((plan.len() <= MAX_PLAN_SPANS).then_some(plan));
            }
            query_plan.as_ref().and_then(Option::as_ref)
        } else {
            None
        };
        match &plan {
            Some(p) => {
                source.rollup |= p.uses_rollups();
                source.raw |= !p.raw.is_empty();
            }
            None => source.raw = true,
        }
        match (shape, agg, plan) {
            (Shape::Number | Shape::Fields, _, Some(_)) => {
                let entry = numeric
                    .entry(agg.name())
                    .or_insert_with(|| (agg, Vec::new(), false));
                entry.1.extend(sel.series_ids);
                entry.2 |= shape == Shape::Fields;
            }
            (Shape::Number, _, None) => {
                for r in aggregates::scalar(conn, &sel, agg)? {
                    put(&mut cells, shape, r.series_id, r.bucket, "", r.v);
                }
            }
            (Shape::Fields, _, None) => {
                for r in aggregates::fields(conn, &sel, agg)? {
                    let field = if r.field == "value" {
                        ""
                    } else {
                        r.field.as_str()
                    };
                    put(&mut cells, shape, r.series_id, r.bucket, field, r.v);
                }
            }
            (Shape::Other, AggFunc::Count, plan) => {
                let rows = match plan {
                    Some(plan) => rollups::count_values(conn, &sel, plan)?,
                    None => aggregates::count(conn, &sel)?,
                };
                for r in rows {
                    cells
                        .entry(r.series_id)
                        .or_default()
                        .insert(r.bucket, Cell::Num(r.v));
                }
            }
            (Shape::Other, _, plan) => {
                let last = agg == AggFunc::Last;
                let rows = match plan {
                    Some(plan) => rollups::first_or_last_values(conn, &sel, plan, last)?,
                    None => aggregates::first_or_last(conn, &sel, last)?,
                };
                for r in rows {
                    let v = serde_json::from_str(&r.value).ok();
                    cells
                        .entry(r.series_id)
                        .or_default()
                        .insert(r.bucket, Cell::Json(v));
                }
            }
        }
    }

    if let Some(Some(plan)) = &query_plan {
        for (agg, series_ids, fields) in numeric.into_values() {
            let sel = selection(series_ids);
            for r in rollups::aggregate_numbers(conn, &sel, agg, plan, fields)? {
                put(
                    &mut cells,
                    shape_of_id(r.series_id),
                    r.series_id,
                    r.bucket,
                    &r.field,
                    r.v,
                );
            }
        }
    }

    let all_buckets = if q.fill == Fill::None {
        Vec::new()
    } else {
        bucket_range(q.interval, q.tz, q.start, q.end)
    };
    let mut results = Vec::new();
    for t in &matched {
        let series_cells = cells.remove(&t.id()).unwrap_or_default();
        let agg = q.agg.unwrap_or_else(|| default_agg(t));
        let shape = shape_of_id(t.id());
        let (buckets, mut values): (Vec<DateTime<Utc>>, Vec<Option<Cell>>) = if q.fill == Fill::None
        {
            series_cells.into_iter().map(|(b, c)| (b, Some(c))).unzip()
        } else {
            let mut series_cells = series_cells;
            all_buckets
                .iter()
                .map(|b| (*b, series_cells.remove(b)))
                .unzip()
        };
        fill(&buckets, &mut values, q.fill, shape, agg);
        if let Some(n) = q.smooth {
            smooth(&mut values, n);
        }
        for (b, v) in buckets.into_iter().zip(values) {
            results.push(ResultRow {
                bucket: format_bucket(b, q.tz),
                series: t.row.series.clone(),
                value: cell_json(v, agg),
            });
        }
    }

    let agg_name = match q.agg {
        Some(a) => a.name().to_string(),
        None => {
            let mut names: Vec<&str> = matched.iter().map(|t| default_agg(t).name()).collect();
            names.sort();
            names.dedup();
            match names.as_slice() {
                [one] => (*one).to_string(),
                [] => AggFunc::Avg.name().to_string(),
                _ => "by-kind".to_string(),
            }
        }
    };
    let metadata = QueryMetadata {
        count: results.len(),
        interval: q.interval.canonical(),
        agg_func: agg_name,
        user_id: q.user_id,
        session_id: q.session_id,
        series: matched.iter().map(|t| t.row.series.clone()).collect(),
        start_time: format_utc(q.start),
        end_time: format_utc(q.end),
        tz: q.tz.name().to_string(),
        fill: q.fill.name(),
        smooth: q.smooth,
        source: source.name(),
    };
    Ok(QueryResponse { metadata, results })
}

/// Which storage answered a query.
#[derive(Debug, Default, Clone, Copy)]
struct Source {
    rollup: bool,
    raw: bool,
}

impl Source {
    fn name(self) -> &'static str {
        match (self.rollup, self.raw) {
            (true, true) => "rollup+raw",
            (true, false) => "rollup",
            _ => "raw",
        }
    }
}

type Cells = BTreeMap<i32, BTreeMap<DateTime<Utc>, Cell>>;

/// Adds aggregated numbers (field "" = the main number) to the cells.
fn put(
    cells: &mut Cells,
    shape: Shape,
    series_id: i32,
    bucket: DateTime<Utc>,
    field: &str,
    v: Option<f64>,
) {
    let slot = cells.entry(series_id).or_default();
    match shape {
        Shape::Number => {
            if field.is_empty() {
                slot.insert(bucket, Cell::Num(v));
            }
        }
        _ => {
            let name = if field.is_empty() { "value" } else { field };
            if let Cell::Fields(f) = slot
                .entry(bucket)
                .or_insert_with(|| Cell::Fields(BTreeMap::new()))
            {
                f.insert(name.to_string(), v);
            }
        }
    }
}

/// Whether every offset `tz` takes in `[start, end]` is a whole number of hours.
fn whole_hour_zone(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    use chrono::Offset;
    let mut t = start;
    loop {
        let offset = t.with_timezone(&tz).offset().fix().local_minus_utc();
        if offset % 3600 != 0 {
            return false;
        }
        if t >= end {
            return true;
        }
        t = (t + chrono::TimeDelta::days(15)).min(end);
    }
}

/// Most spans a rollup plan may have before the query reads raw points instead (many
/// hours awaiting refresh, e.g. right after a bulk load, fragment a plan).
const MAX_PLAN_SPANS: usize = 256;

/// Whether a group of series may be read along a rollup plan: rollups on, no session
/// filter, an aggregate the rollups keep (series without numbers keep count, first and
/// last, which is all they answer), and bucket boundaries on whole UTC hours.
fn rollup_eligible(q: &TimeseriesQuery, shape: Shape, agg: AggFunc) -> bool {
    let interval_ok = match q.interval {
        Interval::Fixed(w) => w % 3600 == 0,
        Interval::Calendar(_) => whole_hour_zone(q.tz, q.start, q.end),
    };
    let agg_ok = shape == Shape::Other || rollups::supports(agg);
    q.rollups && q.session_id.is_none() && agg_ok && interval_ok
}

/// The hours awaiting the rollup job of the query's user and series, over its range.
fn pending_hours(
    conn: &mut PgConnection,
    q: &TimeseriesQuery,
    series_ids: &[i32],
) -> Result<Pending, ApiError> {
    let end = q.end + TimeDelta::microseconds(1);
    let rows = rollups::pending_hours(conn, q.user_id, series_ids, hour_of(q.start), end)?;
    let mut pending = Pending::default();
    for (hour, hourly_exact) in rows {
        pending.stale.insert(hour);
        if !hourly_exact {
            pending.raw.insert(hour);
        }
    }
    Ok(pending)
}

/// Every bucket from the one holding `start` to the one holding `end`.
pub fn bucket_range(
    interval: Interval,
    tz: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut b = interval.floor(start, tz);
    while b <= end {
        out.push(b);
        let next = interval.next(b, tz);
        if next <= b {
            break;
        }
        b = next;
    }
    out
}

/// RFC 3339 bucket start: UTC `Z`, or the zone's offset when a zone was asked for.
fn format_bucket(b: DateTime<Utc>, tz: Tz) -> String {
    if tz == Tz::UTC {
        format_utc(b)
    } else {
        b.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
    }
}

fn number_json(v: f64, agg: AggFunc) -> Value {
    if agg == AggFunc::Count && v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

fn cell_json(cell: Option<Cell>, agg: AggFunc) -> Value {
    match cell {
        None | Some(Cell::Num(None)) | Some(Cell::Json(None)) => Value::Null,
        Some(Cell::Num(Some(v))) => number_json(v, agg),
        Some(Cell::Json(Some(v))) => v,
        Some(Cell::Fields(f)) => {
            if f.values().all(Option::is_none) {
                return Value::Null;
            }
            Value::Object(
                f.into_iter()
                    .map(|(k, v)| (k, v.map_or(Value::Null, |v| number_json(v, agg))))
                    .collect::<Map<String, Value>>(),
            )
        }
    }
}

/// The numbers of one field across the buckets (`Num` cells use the field "").
fn field_series(values: &[Option<Cell>], field: &str) -> Vec<Option<f64>> {
    values
        .iter()
        .map(|c| match c {
            Some(Cell::Num(v)) if field.is_empty() => *v,
            Some(Cell::Fields(f)) => f.get(field).copied().flatten(),
            _ => None,
        })
        .collect()
}

fn field_names(values: &[Option<Cell>]) -> Vec<String> {
    let mut names: Vec<String> = values
        .iter()
        .filter_map(|c| match c {
            Some(Cell::Fields(f)) => Some(f.keys().cloned()),
            _ => None,
        })
        .flatten()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Rebuilds cells from per-field numbers.
fn set_fields(values: &mut [Option<Cell>], shape: Shape, columns: &[(String, Vec<Option<f64>>)]) {
    for (i, cell) in values.iter_mut().enumerate() {
        match shape {
            Shape::Number => {
                let v = columns.first().and_then(|(_, c)| c[i]);
                *cell = Some(Cell::Num(v));
            }
            Shape::Fields => {
                let f: BTreeMap<String, Option<f64>> = columns
                    .iter()
                    .map(|(name, c)| (name.clone(), c[i]))
                    .collect();
                *cell = Some(Cell::Fields(f));
            }
            Shape::Other => {}
        }
    }
}

/// Applies `fill` to the cells of one series (empty buckets are `None`).
fn fill(
    buckets: &[DateTime<Utc>],
    values: &mut [Option<Cell>],
    mode: Fill,
    shape: Shape,
    agg: AggFunc,
) {
    let numeric = shape != Shape::Other || agg == AggFunc::Count;
    match mode {
        Fill::None | Fill::Null => {}
        Fill::Previous => {
            let mut last: Option<Cell> = None;
            for v in values.iter_mut() {
                match v {
                    Some(c) => last = Some(c.clone()),
                    None => *v = last.clone(),
                }
            }
        }
        Fill::Zero if numeric => {
            let names = field_names(values);
            for v in values.iter_mut() {
                if v.is_none() {
                    *v = Some(if names.is_empty() {
                        Cell::Num(Some(0.0))
                    } else {
                        Cell::Fields(names.iter().map(|n| (n.clone(), Some(0.0))).collect())
                    });
                }
            }
        }
        Fill::Linear if numeric => {
            let names = if shape == Shape::Fields {
                field_names(values)
            } else {
                vec![String::new()]
            };
            let columns: Vec<(String, Vec<Option<f64>>)> = names
                .iter()
                .map(|n| (n.clone(), interpolate(buckets, &field_series(values, n))))
                .collect();
            let shape = if shape == Shape::Other {
                Shape::Number
            } else {
                shape
            };
            set_fields(values, shape, &columns);
        }
        // Zero and linear do not apply to non-numeric values: their gaps stay null.
        Fill::Zero | Fill::Linear => {}
    }
}

/// Linear interpolation by bucket time between neighbouring known values; leading and
/// trailing gaps stay empty.
pub fn interpolate(buckets: &[DateTime<Utc>], v: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut out = v.to_vec();
    let mut prev: Option<usize> = None;
    for i in 0..v.len() {
        if v[i].is_none() {
            continue;
        }
        if let Some(p) = prev
            && i > p + 1
            && let (Some(a), Some(b)) = (v[p], v[i])
        {
            let t0 = buckets[p].timestamp_micros() as f64;
            let t1 = buckets[i].timestamp_micros() as f64;
            for (j, slot) in out.iter_mut().enumerate().take(i).skip(p + 1) {
                let t = buckets[j].timestamp_micros() as f64;
                *slot = Some(a + (b - a) * (t - t0) / (t1 - t0));
            }
        }
        prev = Some(i);
    }
    out
}

/// Trailing moving average over `n` buckets (`ROWS BETWEEN n-1 PRECEDING AND CURRENT
/// ROW`): empty buckets in the window are skipped, like SQL's `AVG` skips nulls.
pub fn moving_average(v: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    (0..v.len())
        .map(|i| {
            let from = (i + 1).saturating_sub(n);
            let window: Vec<f64> = v[from..=i].iter().flatten().copied().collect();
            if window.is_empty() {
                None
            } else {
                Some(window.iter().sum::<f64>() / window.len() as f64)
            }
        })
        .collect()
}

fn smooth(values: &mut [Option<Cell>], n: usize) {
    let is_fields = values.iter().any(|c| matches!(c, Some(Cell::Fields(_))));
    let is_num = values.iter().any(|c| matches!(c, Some(Cell::Num(_))));
    if is_fields {
        let columns: Vec<(String, Vec<Option<f64>>)> = field_names(values)
            .into_iter()
            .map(|name| {
                let col = moving_average(&field_series(values, &name), n);
                (name, col)
            })
            .collect();
        set_fields(values, Shape::Fields, &columns);
    } else if is_num {
        let col = moving_average(&field_series(values, ""), n);
        set_fields(values, Shape::Number, &[(String::new(), col)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn shapes_come_from_schemas() {
        assert_eq!(shape_of(&json!({"type": "number"})), Shape::Number);
        assert_eq!(
            shape_of(&json!({"type": "object", "properties": {"value": {"type": "number"}}})),
            Shape::Number
        );
        assert_eq!(
            shape_of(
                &json!({"type": "object", "properties": {"r": {"type": "number"}, "g": {"type": "integer"}}})
            ),
            Shape::Fields
        );
        assert_eq!(
            shape_of(&json!({"type": "object", "properties": {"value": {"type": "string"}}})),
            Shape::Other
        );
    }

    #[test]
    fn seed_001_interpolation() {
        // Ticks at :36, :37, :40, :42 bucketed by second.
        let t = |s: u32| Utc.with_ymd_and_hms(2019, 2, 18, 10, 55, s).unwrap();
        let buckets: Vec<_> = (36..=42).map(t).collect();
        let v = [
            Some(100.0),
            Some(102.0),
            None,
            None,
            Some(103.0),
            None,
            Some(104.0),
        ];
        let out = interpolate(&buckets, &v);
        let rounded: Vec<f64> = out
            .iter()
            .map(|x| (x.unwrap() * 10_000.0).round() / 10_000.0)
            .collect();
        assert_eq!(
            rounded,
            vec![100.0, 102.0, 102.3333, 102.6667, 103.0, 103.5, 104.0]
        );
        assert_eq!(
            interpolate(&buckets[..3], &[None, Some(1.0), None]),
            vec![None, Some(1.0), None]
        );
    }

    #[test]
    fn seed_001_moving_average() {
        let v = [
            Some(1_000_000.0),
            Some(1_000_000.0),
            Some(1_050_000.0),
            Some(1_000_000.0),
        ];
        assert_eq!(
            moving_average(&v, 2),
            vec![
                Some(1_000_000.0),
                Some(1_000_000.0),
                Some(1_025_000.0),
                Some(1_025_000.0)
            ]
        );
        assert_eq!(
            moving_average(&[None, Some(2.0), None], 2),
            vec![None, Some(2.0), Some(2.0)]
        );
    }
}
