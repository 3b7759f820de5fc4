//! Runs a query: every read it needs (one per series group; the numeric groups read
//! from rollups share one per aggregate) joined into one statement, which also reads the
//! hours awaiting the rollup job that its plan took into account, so that the answer
//! comes from one snapshot in one round trip; the cells are then shaped by
//! [`super::response`].

use super::response::{self, QueryResponse};
use super::{TimeseriesQuery, default_agg, match_series};
use crate::db::aggregates::{self, AnswerRow, Columns, Selection, as_part};
use crate::db::maintenance::StorageMode;
use crate::db::prepared::{self, Plans, Statement};
use crate::db::rollups;
use crate::domain::gap_fill::Cell;
use crate::domain::interval::Interval;
use crate::domain::query::AggFunc;
use crate::domain::rollup_plan::{Pending, Plan, hour_of};
use crate::domain::series_shape::{Shape, shape_of};
use crate::domain::sketch::Sketch;
use crate::error::ApiError;
use crate::services::catalogue::{MetricType, Snapshot};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel::pg::PgConnection;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many times a query is planned again on the hours awaiting refresh that its
/// statement saw, before it reads them in a transaction of its own.
const TRIES: usize = 3;

/// Runs the query against the database and shapes the answer, assuming no hour of its
/// range awaits the rollup job (the statement checks it: see [`run_assuming`]).
pub fn run(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    q: &TimeseriesQuery,
) -> Result<QueryResponse, ApiError> {
    run_assuming(conn, snapshot, q, Pending::default()).map(|(response, _)| response)
}

/// Runs the query, planned on `assumed`, the hours awaiting the rollup job as read
/// shortly before (with the user's generation). The statement reads those hours again
/// in its own snapshot: when it finds one the plan read from a rollup row, the query is
/// planned again on what it found (a write or a refresh came between), at most
/// [`TRIES`] times, then in one transaction that reads the hours first. An answer never
/// holds part of a write that committed meanwhile: it comes from one statement. Also
/// returns how many times the query was planned again.
pub fn run_assuming(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    q: &TimeseriesQuery,
    assumed: Pending,
) -> Result<(QueryResponse, u32), ApiError> {
    run_planned(conn, q, Planned::new(snapshot, q, assumed))
}

/// A query planned on an assumption about the hours awaiting refresh, ready to run
/// ([`run_planned`]).
#[derive(Clone)]
pub struct Planned {
    matched: Vec<Arc<MetricType>>,
    reads: Reads,
    assumed: Pending,
}

impl Planned {
    pub fn new(snapshot: &Snapshot, q: &TimeseriesQuery, assumed: Pending) -> Planned {
        let matched = match_series(snapshot, &q.patterns);
        let reads = Reads::plan(q, &matched, &assumed);
        Planned {
            matched,
            reads,
            assumed,
        }
    }

    /// Whether its statement is a kept one: it then runs alone on a connection of the
    /// query pool (see [`prepared::load_alone`]).
    pub fn runs_generic(&self, engine: StorageMode) -> bool {
        self.reads.statement(engine).is_some_and(|s| s.was_kept())
    }
}

/// As [`run_assuming`], the first plan made already.
pub fn run_planned(
    conn: &mut PgConnection,
    q: &TimeseriesQuery,
    planned: Planned,
) -> Result<(QueryResponse, u32), ApiError> {
    let Planned {
        matched,
        reads: first,
        mut assumed,
    } = planned;
    let mut first = Some(first);
    for tries in 0..TRIES as u32 {
        let reads = match first.take() {
            Some(reads) => reads,
            None => Reads::plan(q, &matched, &assumed),
        };
        let rows = match reads.statement(q.engine) {
            Some(statement) => prepared::load_alone(conn, statement)?,
            None => Vec::new(),
        };
        let (seen, rows) = split_pending(rows);
        if !covers(&assumed, &seen) {
            assumed.stale.extend(seen.stale);
            assumed.raw.extend(seen.raw);
            continue;
        }
        return Ok((reads.answer(q, &matched, rows), tries));
    }
    // The hours kept moving (a user writing without pause): read them first, in the
    // statement's own snapshot.
    let ids: Vec<i32> = matched.iter().map(|t| t.id()).collect();
    let plans = Plans::on(q.engine, false);
    prepared::read_snapshot(conn, plans, |conn| {
        let pending = pending_hours(conn, q, &ids)?;
        let reads = Reads::plan(q, &matched, &pending);
        let rows = match reads.statement(q.engine) {
            Some(statement) => statement.load(conn)?,
            None => Vec::new(),
        };
        Ok((
            reads.answer(q, &matched, split_pending(rows).1),
            TRIES as u32,
        ))
    })
}

/// What the hours awaiting refresh are read for before the query runs (with the user's
/// generation, see [`super::cached`]): the matched series and the range, when the query
/// may read rollups.
pub fn pending_probe(
    snapshot: &Snapshot,
    q: &TimeseriesQuery,
) -> Option<(Vec<i32>, DateTime<Utc>, DateTime<Utc>)> {
    if !q.rollups || q.session_id.is_some() {
        return None;
    }
    let ids = match_series(snapshot, &q.patterns)
        .iter()
        .map(|t| t.id())
        .collect();
    Some((ids, hour_of(q.start), q.end + TimeDelta::microseconds(1)))
}

/// The hours awaiting refresh from rows of (hour, whether its hourly rows are exact).
pub fn pending_of(rows: Vec<(DateTime<Utc>, bool)>) -> Pending {
    let mut pending = Pending::default();
    for (hour, hourly_exact) in rows {
        pending.stale.insert(hour);
        if !hourly_exact {
            pending.raw.insert(hour);
        }
    }
    pending
}

/// Whether a plan made on `assumed` is right for a snapshot in which `seen` await the
/// job: every hour it reads from a rollup row is up to date there.
fn covers(assumed: &Pending, seen: &Pending) -> bool {
    seen.stale.is_subset(&assumed.stale) && seen.raw.is_subset(&assumed.raw)
}

/// The part whose rows are the hours awaiting refresh, not cells.
const PENDING_PART: i32 = -1;

/// The hours awaiting refresh that the statement saw, and the other rows.
fn split_pending(rows: Vec<AnswerRow>) -> (Pending, Vec<AnswerRow>) {
    let mut pending = Pending::default();
    let mut cells = Vec::with_capacity(rows.len());
    for r in rows {
        if r.part != PENDING_PART {
            cells.push(r);
            continue;
        }
        pending.stale.insert(r.bucket);
        if r.n != Some(1) {
            pending.raw.insert(r.bucket);
        }
    }
    (pending, cells)
}

/// How one read's rows become cells.
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// Numbers of a field ('' the main number).
    Numbers,
    /// Numbers of a field, the main number named `value`.
    RawFields,
    /// Counts of values of any kind.
    Count,
    /// JSON values.
    Values,
    /// Pieces of quantile sketches, merged, then asked for `quantile`.
    Sketches { quantile: f64 },
}

/// The reads of one query along one assumption about the hours awaiting refresh.
#[derive(Clone)]
struct Reads {
    parts: Vec<(Statement, Fold)>,
    /// The hours awaiting refresh, read where the plan reads rollups.
    pending: Option<Statement>,
    shapes: BTreeMap<i32, Shape>,
    source: Source,
    approximate: bool,
}

impl Reads {
    fn plan(q: &TimeseriesQuery, matched: &[Arc<MetricType>], pending: &Pending) -> Reads {
        let shapes: BTreeMap<i32, Shape> = matched
            .iter()
            .map(|t| (t.id(), shape_of(&t.row.schema)))
            .collect();
        let shape_of_id = |id: i32| shapes.get(&id).copied().unwrap_or(Shape::Other);
        // Group the series by (shape, aggregate): one read per group, but for the numeric
        // groups read from rollups (see `numeric` below).
        let mut groups: BTreeMap<(Shape, &'static str), (AggFunc, Vec<i32>)> = BTreeMap::new();
        for t in matched {
            let agg = q.agg.unwrap_or_else(|| default_agg(t));
            groups
                .entry((shape_of_id(t.id()), agg.name()))
                .or_insert_with(|| (agg, Vec::new()))
                .1
                .push(t.id());
        }
        let all_ids: Vec<i32> = matched.iter().map(|t| t.id()).collect();
        // The rollup plan: the same for every group that may use one; `None` inside when
        // the plan is too fragmented and raw points answer instead.
        let mut query_plan: Option<Option<Plan>> = None;
        // Numbers and objects of numbers read from rollups, by aggregate: one read covers
        // both shapes (a number is its field ''), so `series=session.*` makes one read
        // less. The aggregate, the ids, and whether any of them is an object.
        let mut numeric: BTreeMap<&'static str, (AggFunc, Vec<i32>, bool)> = BTreeMap::new();
        // Percentiles read from the rollups' quantile sketches (`approx=true`), likewise.
        let mut sketched: BTreeMap<&'static str, (AggFunc, Vec<i32>, bool)> = BTreeMap::new();
        let selection = |series_ids: Vec<i32>| Selection {
            user_id: q.user_id,
            session_id: q.session_id,
            series_ids,
            start: q.start,
            end: q.end,
            interval: q.interval,
            tz: q.tz.name().to_string(),
        };
        let mut parts: Vec<(Option<Statement>, Columns, Fold)> = Vec::new();
        let mut source = Source::default();
        for ((shape, _), (agg, ids)) in groups {
            let sel = selection(ids);
            let plan = if rollup_eligible(q, shape, agg) {
                query_plan
                    .get_or_insert_with(|| {
                        let end = q.end + TimeDelta::microseconds(1);
                        let plan = Plan::new(q.interval, q.tz, q.start, end, pending);
                        (plan.len() <= MAX_PLAN_SPANS).then_some(plan)
                    })
                    .as_ref()
            } else {
                None
            };
            // A sketch only where rollups are read: raw points alone answer exactly as
            // cheaply.
            let from_sketches = approximate(q, shape, agg);
            let plan = plan.filter(|p| !from_sketches || p.uses_rollups());
            match &plan {
                Some(p) => {
                    source.rollup |= p.uses_rollups();
                    source.raw |= !p.raw.is_empty();
                }
                None => source.raw = true,
            }
            match (shape, agg, plan) {
                (Shape::Number | Shape::Fields, _, Some(_)) => {
                    let groups = if from_sketches {
                        &mut sketched
                    } else {
                        &mut numeric
                    };
                    let entry = groups
                        .entry(agg.name())
                        .or_insert_with(|| (agg, Vec::new(), false));
                    entry.1.extend(sel.series_ids);
                    entry.2 |= shape == Shape::Fields;
                }
                (Shape::Number, _, None) => parts.push((
                    Some(aggregates::scalar(&sel, agg)),
                    Columns::Numbers,
                    Fold::Numbers,
                )),
                (Shape::Fields, _, None) => parts.push((
                    Some(aggregates::fields(&sel, agg)),
                    Columns::Fields,
                    Fold::RawFields,
                )),
                (Shape::Other, AggFunc::Count, plan) => parts.push((
                    match plan {
                        Some(plan) => rollups::count_values(&sel, plan),
                        None => Some(aggregates::count(&sel)),
                    },
                    Columns::Numbers,
                    Fold::Count,
                )),
                (Shape::Other, _, plan) => {
                    let last = agg == AggFunc::Last;
                    parts.push((
                        match plan {
                            Some(plan) => rollups::first_or_last_values(&sel, plan, last),
                            None => Some(aggregates::first_or_last(&sel, last)),
                        },
                        Columns::Values,
                        Fold::Values,
                    ));
                }
            }
        }
        let mut approximate = false;
        let mut pending_read = None;
        if let Some(Some(plan)) = &query_plan {
            for (agg, series_ids, fields) in numeric.into_values() {
                let sel = selection(series_ids);
                parts.push((
                    rollups::aggregate_numbers(&sel, agg, plan, fields),
                    Columns::Fields,
                    Fold::Numbers,
                ));
            }
            for (agg, series_ids, fields) in sketched.into_values() {
                let quantile = agg.quantile().unwrap_or(0.5);
                let sel = selection(series_ids);
                parts.push((
                    rollups::sketch_rows(&sel, plan, fields),
                    Columns::Sketches,
                    Fold::Sketches { quantile },
                ));
                approximate = true;
            }
            if plan.uses_rollups() {
                let end = q.end + TimeDelta::microseconds(1);
                let read = rollups::pending_part(q.user_id, &all_ids, hour_of(q.start), end);
                pending_read = Some(as_part(read, PENDING_PART, Columns::Pending));
            }
        }
        // Numbered after the reads with nothing to read are left out: a row's part is its
        // read's index.
        let parts = parts
            .into_iter()
            .filter_map(|(statement, columns, fold)| Some((statement?, columns, fold)))
            .enumerate()
            .filter_map(|(i, (statement, columns, fold))| {
                let part = i32::try_from(i).ok()?;
                Some((as_part(statement, part, columns), fold))
            })
            .collect();
        Reads {
            parts,
            pending: pending_read,
            shapes,
            source,
            approximate,
        }
    }

    /// Every read as one statement; `None` when there is nothing to read.
    fn statement(&self, engine: StorageMode) -> Option<Statement> {
        let parts: Vec<Statement> = self
            .pending
            .iter()
            .chain(self.parts.iter().map(|(s, _)| s))
            .cloned()
            .collect();
        let statement = Statement::union_all(parts)?;
        // Citus cannot make a distributed plan of a generic `UNION ALL` over its shards.
        Some(if engine == StorageMode::Citus {
            statement.unkept()
        } else {
            statement
        })
    }

    /// The answer from the statement's rows (without the hours awaiting refresh).
    fn answer(
        &self,
        q: &TimeseriesQuery,
        matched: &[Arc<MetricType>],
        rows: Vec<AnswerRow>,
    ) -> QueryResponse {
        let shape_of_id = |id: i32| self.shapes.get(&id).copied().unwrap_or(Shape::Other);
        let mut cells: Cells = BTreeMap::new();
        let mut sketches: BTreeMap<(usize, i32, DateTime<Utc>, String), Sketch> = BTreeMap::new();
        for r in rows {
            let Some((_, fold)) = usize::try_from(r.part).ok().and_then(|i| self.parts.get(i))
            else {
                continue;
            };
            let shape = shape_of_id(r.series_id);
            match *fold {
                Fold::Numbers => put(&mut cells, shape, r.series_id, r.bucket, &r.field, r.v),
                Fold::RawFields => {
                    let field = if r.field == "value" { "" } else { &r.field };
                    put(&mut cells, shape, r.series_id, r.bucket, field, r.v);
                }
                Fold::Count => {
                    cells
                        .entry(r.series_id)
                        .or_default()
                        .insert(r.bucket, Cell::Num(r.v));
                }
                Fold::Values => {
                    let v = r
                        .value
                        .as_deref()
                        .and_then(|v| serde_json::from_str(v).ok());
                    cells
                        .entry(r.series_id)
                        .or_default()
                        .insert(r.bucket, Cell::Json(v));
                }
                Fold::Sketches { .. } => {
                    let part = usize::try_from(r.part).unwrap_or_default();
                    sketches
                        .entry((part, r.series_id, r.bucket, r.field))
                        .or_default()
                        .add_row(
                            r.n.unwrap_or(0),
                            r.min.unwrap_or(0.0),
                            r.max.unwrap_or(0.0),
                            r.sketch.as_deref(),
                        );
                }
            }
        }
        for ((part, series_id, bucket, field), sketch) in sketches {
            if let Some((_, Fold::Sketches { quantile })) = self.parts.get(part) {
                let shape = shape_of_id(series_id);
                put(
                    &mut cells,
                    shape,
                    series_id,
                    bucket,
                    &field,
                    sketch.quantile(*quantile),
                );
            }
        }
        response::build(
            q,
            matched,
            &shape_of_id,
            cells,
            self.source.name(),
            self.approximate,
        )
    }
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

/// Whether a group's percentile may come from quantile sketches: asked for
/// (`approx=true`), a percentile, of numbers.
fn approximate(q: &TimeseriesQuery, shape: Shape, agg: AggFunc) -> bool {
    q.approx && agg.quantile().is_some() && shape != Shape::Other
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
/// last, which is all they answer; percentiles with `approx=true` come from sketches), and
/// bucket boundaries on whole UTC hours.
fn rollup_eligible(q: &TimeseriesQuery, shape: Shape, agg: AggFunc) -> bool {
    let interval_ok = match q.interval {
        Interval::Fixed(w) => w % 3600 == 0,
        Interval::Calendar(_) => whole_hour_zone(q.tz, q.start, q.end),
    };
    let agg_ok = shape == Shape::Other || rollups::supports(agg) || approximate(q, shape, agg);
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
    Ok(pending_of(rows))
}
