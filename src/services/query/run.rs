//! Runs a query: the hours awaiting refresh, the rollup plan, one statement per series
//! group, all in one snapshot; the cells are then shaped by [`super::response`].

use super::response::{self, QueryResponse};
use super::{TimeseriesQuery, default_agg, match_series};
use crate::db::aggregates::{self, Selection};
use crate::db::{prepared, rollups};
use crate::domain::gap_fill::Cell;
use crate::domain::interval::Interval;
use crate::domain::query::AggFunc;
use crate::domain::rollup_plan::{Pending, Plan, hour_of};
use crate::domain::series_shape::{Shape, shape_of};
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel::pg::PgConnection;
use std::collections::BTreeMap;

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

    Ok(response::build(
        q,
        &matched,
        &shape_of_id,
        cells,
        source.name(),
    ))
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
