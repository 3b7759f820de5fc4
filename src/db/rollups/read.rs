//! The read side: the one statement per query and aggregate that combines monthly, daily
//! and hourly rollups with raw points along a [`Plan`].

use super::*;
use crate::db::aggregates::Selection;
use crate::db::prepared::{Bind, Statement};
use crate::domain::query::AggFunc;
use crate::domain::rollup_plan::{Plan, Span};
use crate::domain::sketch::{key_sql, pack_sql};
use chrono::{DateTime, Utc};

/// The SQL combining partial aggregates (rollup rows, or raw points as one-point rows)
/// into one aggregate.
pub(super) fn combine(agg: AggFunc) -> Option<&'static str> {
    Some(match agg {
        AggFunc::Avg => "sum(sum) / sum(n)",
        AggFunc::Sum => "sum(sum)",
        AggFunc::Count => "sum(n)::float8",
        AggFunc::Min => "min(min)",
        AggFunc::Max => "max(max)",
        AggFunc::First => "(array_agg(first ORDER BY first_time, first))[1]",
        AggFunc::Last => "(array_agg(last ORDER BY last_time DESC, last DESC))[1]",
        _ => return None,
    })
}

/// Whether a numeric aggregate can be answered from rollups.
pub fn supports(agg: AggFunc) -> bool {
    combine(agg).is_some()
}

/// Spans read by their own `SELECT` each; the rest of a long list share one.
pub(super) const SEPARATE_SPANS: usize = 6;

/// The fewest `SELECT`s a level the plan reads gets (by its time column), empty ranges
/// making up the difference, so that one text serves a query shape whatever its range and whichever
/// hours await the job: enough for a two-year month-level range ending in the next month
/// while today is read by the hour (months: before and after a month read by the day;
/// days: the first month's, this month's before and after today, the last month's;
/// hours: the first day's, today's, the last day's; raw: the two edges). Without it, the
/// texts of one shape varied with the range's end and the job's progress and soon took
/// every kept slot (see [`crate::db::prepared`]): the rest were planned on every request, three
/// times the work. An empty range costs one index descent (on `points`, its partitions
/// are all pruned at execution).
pub(super) fn fewest_selects(column: &str) -> usize {
    match column {
        "month" => 2,
        "day" => 4,
        "hour" => 3,
        _ => 2,
    }
}

/// The statement reading one plan: `SELECT`s over daily rows, hourly rows and raw points
/// joined by `UNION ALL`, and their binds: `$1` user, `$2` series, `$3` the zone or the
/// width, then the spans' bounds. Each span gets its own `SELECT` with its bounds as the
/// index condition (and, on `points`, as the partition pruning bounds); past
/// [`SEPARATE_SPANS`], the remaining spans share one `SELECT` bounded by their first
/// start and last end.
pub(super) struct PlanQuery<'a> {
    sel: &'a Selection,
    branches: Vec<String>,
    times: Vec<DateTime<Utc>>,
    /// Whether the statement may be kept prepared (see [`crate::db::prepared`]).
    keep: bool,
}

impl<'a> PlanQuery<'a> {
    fn new(sel: &'a Selection) -> Self {
        PlanQuery {
            sel,
            branches: Vec::new(),
            times: Vec::new(),
            keep: true,
        }
    }

    /// The placeholder of a new bound time.
    fn param(&mut self, t: DateTime<Utc>) -> String {
        self.times.push(t);
        format!("${}", 3 + self.times.len())
    }

    /// Adds the branches over `table` (time column `column`) for `spans`; `select` names
    /// the columns, `{bucket}` standing for the bucket expression.
    fn branch(&mut self, spans: &[Span], table: &str, column: &str, select: &str, extra: &str) {
        let select = select.replace("{bucket}", &self.sel.bucket_sql_param(column, "$3"));
        let (separate, shared) = if spans.len() > SEPARATE_SPANS {
            spans.split_at(SEPARATE_SPANS - 1)
        } else {
            (spans, &[][..])
        };
        // A level the plan does not read at all stays out (a day-level shape never
        // reads a month: its text stays the same without them).
        let empty = (self.sel.start, self.sel.start);
        let padding = if separate.is_empty() {
            0
        } else {
            fewest_selects(column).saturating_sub(separate.len())
        };
        let separate: Vec<Span> = separate
            .iter()
            .copied()
            .chain(std::iter::repeat_n(empty, padding))
            .collect();
        for (a, b) in &separate {
            let (a, b) = (self.param(*a), self.param(*b));
            self.branches.push(format!(
                "SELECT {select} FROM {table} WHERE user_id = $1 AND series_id = ANY($2) \
                 AND {column} >= {a} AND {column} < {b}{extra}"
            ));
        }
        if let (Some(first), Some(last)) = (shared.first(), shared.last()) {
            // Its text varies with the number of spans (a backlog of hours awaiting
            // refresh): not worth one of the few kept statements.
            self.keep = false;
            let (lo, hi) = (self.param(first.0), self.param(last.1));
            let any: Vec<String> = shared
                .iter()
                .map(|(a, b)| {
                    let (a, b) = (self.param(*a), self.param(*b));
                    format!("({column} >= {a} AND {column} < {b})")
                })
                .collect();
            self.branches.push(format!(
                "SELECT {select} FROM {table} WHERE user_id = $1 AND series_id = ANY($2) \
                 AND {column} >= {lo} AND {column} < {hi} AND ({}){extra}",
                any.join(" OR ")
            ));
        }
    }

    /// Adds the branches over the rollup rows of `plan`: months, days and hours from the
    /// table `table` picks of each level.
    fn rollups(
        &mut self,
        plan: &Plan,
        table: fn(&Level) -> &'static str,
        select: &str,
        extra: &str,
    ) {
        for (spans, level) in [
            (&plan.months, &MONTHLY),
            (&plan.days, &DAILY),
            (&plan.hours, &HOURLY),
        ] {
            self.branch(spans, table(level), level.column, select, extra);
        }
    }

    fn union(&self) -> String {
        self.branches.join("\n UNION ALL\n ")
    }

    fn bind(&self, sql: String) -> Statement {
        let q = if self.keep {
            Statement::new(&sql)
        } else {
            Statement::unprepared(&sql)
        };
        let mut q = q
            .bind(Bind::Uuid(self.sel.user_id))
            .bind(Bind::Ints(self.sel.series_ids.clone()))
            .bind(self.sel.bucket_param());
        for t in &self.times {
            q = q.bind(Bind::Time(*t));
        }
        q
    }
}

/// The columns of a raw-points branch aggregated per series, bucket and field like a
/// rollup row (the branch groups by them): a bucket's raw points reach the outer
/// aggregate as one row, not one row each (a dirty current hour can hold thousands).
/// First and last values are computed only for `first` and `last` (they sort).
pub(super) fn raw_partials(agg: AggFunc, v: &str, field: &str) -> String {
    let (first, last) = if matches!(agg, AggFunc::First | AggFunc::Last) {
        (
            format!("min(time), (array_agg({v} ORDER BY time, {v}))[1]"),
            format!("max(time), (array_agg({v} ORDER BY time DESC, {v} DESC))[1]"),
        )
    } else {
        let none = "NULL::timestamptz, NULL::float8".to_string();
        (none.clone(), none)
    };
    format!(
        "series_id, {{bucket}} AS bucket, {field}, count(*), sum({v}), min({v}), max({v}), {first}, {last}"
    )
}

/// Numeric aggregates per series, bucket and field ('' for the main number) along
/// `plan`; `fields`: object fields too, not only the main number.
/// Rows `(series_id, bucket, field, v)`; `None` when there is nothing to read.
pub fn aggregate_numbers(
    sel: &Selection,
    agg: AggFunc,
    plan: &Plan,
    fields: bool,
) -> Option<Statement> {
    let combine = combine(agg)?;
    if plan.is_empty() {
        return None;
    }
    let rollup_cols = "series_id, {bucket} AS bucket, field, n, sum, min, max, first_time, first, last_time, last";
    let only_main = if fields { "" } else { " AND field = ''" };
    let mut q = PlanQuery::new(sel);
    q.rollups(plan, |l| l.numbers, rollup_cols, only_main);
    if fields {
        q.branch(
            &plan.raw,
            &format!("points p {NUMBERS_OF_POINT}"),
            "time",
            &raw_partials(agg, "f.v", "f.field"),
            " GROUP BY 1, 2, 3",
        );
    } else {
        q.branch(
            &plan.raw,
            "points",
            "time",
            &raw_partials(agg, "num", "''::text"),
            " AND num IS NOT NULL GROUP BY 1, 2, 3",
        );
    }
    let sql = format!(
        "SELECT series_id, bucket, field, {combine} AS v FROM (\n {}\n) x(series_id, bucket, field, n, sum, min, max, first_time, first, last_time, last)
         GROUP BY 1, 2, 3",
        q.union()
    );
    Some(q.bind(sql))
}

/// The pieces of each series', bucket's and field's quantile sketch along `plan` (field
/// '' for the main number; `fields`: object fields too): its rollup rows as they are, its
/// raw points one row per sketch key. The caller merges them: fetching a two-year
/// month-level range's few dozen rows costs less than merging them in SQL.
/// Rows `(series_id, bucket, field, n, min, max, sketch)`: the numbers of one field in
/// one bucket that one rollup row holds, or that the bucket's raw points of one sketch
/// key hold: how many, their minimum and maximum, and their packed sketch
/// ([`crate::domain::sketch`]; none for a row of at most two). `None` when there is
/// nothing to read.
pub fn sketch_rows(sel: &Selection, plan: &Plan, fields: bool) -> Option<Statement> {
    if plan.is_empty() {
        return None;
    }
    let only_main = if fields { "" } else { " AND field = ''" };
    let mut q = PlanQuery::new(sel);
    let cols = "series_id, {bucket} AS bucket, field, n, min, max, sketch";
    q.rollups(plan, |l| l.numbers, cols, only_main);
    let raw = |v: &str, field: &str| {
        let key = key_sql(v);
        (
            format!(
                "series_id, {{bucket}} AS bucket, {field}, count(*), min({v}), max({v}), ARRAY[{}]",
                pack_sql(&key, "count(*)")
            ),
            key,
        )
    };
    if fields {
        let (cols, key) = raw("f.v", "f.field");
        q.branch(
            &plan.raw,
            &format!("points p {NUMBERS_OF_POINT}"),
            "time",
            &cols,
            &format!(" GROUP BY 1, 2, 3, {key}"),
        );
    } else {
        let (cols, key) = raw("num", "''::text");
        q.branch(
            &plan.raw,
            "points",
            "time",
            &cols,
            &format!(" AND num IS NOT NULL GROUP BY 1, 2, 3, {key}"),
        );
    }
    let sql = q.union();
    Some(q.bind(sql))
}

/// Points per series and bucket (any value) along `plan`.
/// Rows `(series_id, bucket, v)`; `None` when there is nothing to read.
pub fn count_values(sel: &Selection, plan: &Plan) -> Option<Statement> {
    if plan.is_empty() {
        return None;
    }
    let mut q = PlanQuery::new(sel);
    let cols = "series_id, {bucket} AS bucket, n";
    q.rollups(plan, |l| l.values, cols, "");
    q.branch(
        &plan.raw,
        "points",
        "time",
        "series_id, {bucket} AS bucket, count(*)",
        " GROUP BY 1, 2",
    );
    let sql = format!(
        "SELECT series_id, bucket, sum(n)::float8 AS v FROM (\n {}\n) x(series_id, bucket, n)
         GROUP BY 1, 2",
        q.union()
    );
    Some(q.bind(sql))
}

/// The first (or last) stored value per series and bucket along `plan`, by time, then
/// session id.
/// Rows `(series_id, bucket, value)`; `None` when there is nothing to read.
pub fn first_or_last_values(sel: &Selection, plan: &Plan, last: bool) -> Option<Statement> {
    if plan.is_empty() {
        return None;
    }
    let (which, dir) = if last {
        ("last", "DESC")
    } else {
        ("first", "ASC")
    };
    let cols =
        format!("series_id, {{bucket}} AS bucket, {which}_time, {which}_session, {which}::text");
    let mut q = PlanQuery::new(sel);
    q.rollups(plan, |l| l.values, &cols, "");
    q.branch(
        &plan.raw,
        "points",
        "time",
        "series_id, {bucket} AS bucket, time, session_id, value::text",
        "",
    );
    let sql = format!(
        "SELECT series_id, bucket, (array_agg(v ORDER BY t {dir}, s {dir}))[1] AS value FROM (\n {}\n) x(series_id, bucket, t, s, v)
         GROUP BY 1, 2",
        q.union()
    );
    Some(q.bind(sql))
}
