//! The answer of a query: its rows and metadata, built from the cells [`super::run`]
//! read, after gap filling and smoothing.

use super::{TimeseriesQuery, default_agg};
use crate::domain::gap_fill::{Cell, bucket_range, complete_fields, empty_as_fields, fill, smooth};
use crate::domain::query::{AggFunc, Fill};
use crate::domain::series_shape::{Shape, numeric_fields};
use crate::domain::sketch::RELATIVE_ACCURACY;
use crate::domain::timestamp::format_utc;
use crate::services::catalogue::MetricType;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

/// One bucket of one series.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultRow {
    /// The bucket's start, RFC 3339 with the offset of `tz`.
    #[schema(format = DateTime, example = "2025-01-01T00:00:00Z")]
    pub bucket: String,
    pub series: String,
    /// A number (numeric series; `null` for an empty bucket `fill` lists or a bucket
    /// the aggregate has no answer for), an object with every numeric field of a
    /// multi-field series (`{r, g, b}`), each a number or `null`, in every bucket,
    /// empty ones included, or the stored value (other series; their `count` is a
    /// number; `null` for an empty bucket).
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
    /// The longest gap `fill=previous|linear` fills (`90m`, `3d`); `null` for any.
    #[schema(example = "90m")]
    pub max_gap: Option<String>,
    /// The moving-average window, in buckets; `null` for none.
    pub smooth: Option<usize>,
    /// Where the answer came from: `raw` points, `rollup` (monthly, daily and hourly
    /// rollups only) or `rollup+raw` (rollups for whole refreshed months, days and hours,
    /// raw points for the partial hours at the edges and the hours awaiting refresh).
    #[schema(example = "raw")]
    pub source: &'static str,
    /// Whether percentiles came from quantile sketches (`approx=true` with rollups
    /// read): each within `relative_accuracy` of a value between the two points that
    /// bracket the exact percentile's rank. `false`: every value is exact.
    pub approximate: bool,
    /// The relative accuracy of approximate percentiles (0.01: 1%); `null` when exact.
    #[schema(example = json!(null))]
    pub relative_accuracy: Option<f64>,
}

/// Bucketed aggregates and what they were computed for.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "metadata": {"count": 2, "interval": "month", "agg_func": "avg",
                 "user_id": "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11", "session_id": null,
                 "series": ["session.gut_health_score", "session.urine.color"],
                 "start_time": "2025-01-01T00:00:00Z", "end_time": "2025-12-31T00:00:00Z", "tz": "UTC",
                 "fill": "none", "max_gap": null, "smooth": null, "source": "raw",
                 "approximate": false, "relative_accuracy": null},
    "results": [{"bucket": "2025-01-01T00:00:00Z", "series": "session.gut_health_score", "value": 6.0},
                {"bucket": "2025-01-01T00:00:00Z", "series": "session.urine.color", "value": {"r": 150.0, "g": 75.0, "b": 5.0}}]
}))]
pub struct QueryResponse {
    pub metadata: QueryMetadata,
    /// By series, then bucket.
    pub results: Vec<ResultRow>,
}

/// The answer: every matched series' buckets, filled and smoothed as asked, and the
/// metadata. `cells` holds what the database answered, by series id and bucket;
/// `source` names the storage that answered.
pub(super) fn build(
    q: &TimeseriesQuery,
    matched: &[Arc<MetricType>],
    shape_of_id: &dyn Fn(i32) -> Shape,
    mut cells: BTreeMap<i32, BTreeMap<DateTime<Utc>, Cell>>,
    source: &'static str,
    approximate: bool,
) -> QueryResponse {
    let all_buckets = if q.fill == Fill::None {
        Vec::new()
    } else {
        bucket_range(q.interval, q.tz, q.start, q.end)
    };
    let mut results = Vec::new();
    for t in matched {
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
        let fields = (shape == Shape::Fields).then(|| {
            let missing = (agg == AggFunc::Count).then_some(0.0);
            complete_fields(&mut values, &numeric_fields(&t.row.schema), missing)
        });
        let max_gap = q.max_gap.map(|g| g.seconds());
        fill(&buckets, &mut values, q.fill, shape, agg, max_gap);
        if let Some(n) = q.smooth {
            smooth(&mut values, n);
        }
        if let Some(names) = &fields {
            empty_as_fields(&mut values, names);
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
        max_gap: q.max_gap.map(|g| g.canonical()),
        smooth: q.smooth,
        source,
        approximate,
        relative_accuracy: approximate.then_some(RELATIVE_ACCURACY),
    };
    QueryResponse { metadata, results }
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
        // Always an object, null fields and all: clients rely on the shape.
        Some(Cell::Fields(f)) => Value::Object(
            f.into_iter()
                .map(|(k, v)| (k, v.map_or(Value::Null, |v| number_json(v, agg))))
                .collect::<Map<String, Value>>(),
        ),
    }
}
