//! `GET /api/timeseries/`: which series a query matches, how each is aggregated (the
//! series' [`Shape`]), where the buckets are read from ([`run`]), how the answer is
//! shaped ([`response`]) and how answers are cached and queued ([`cached`]).

pub mod cached;
pub mod response;
mod run;

pub use response::{QueryMetadata, QueryResponse, ResultRow};
pub use run::{run, run_assuming};

use crate::db::maintenance::StorageMode;
use crate::domain::interval::Interval;
use crate::domain::query::{AggFunc, Fill, MaxGap, SeriesPatterns};
pub use crate::domain::series_shape::{Shape, shape_of};
use crate::services::catalogue::{MetricType, Snapshot};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::sync::Arc;
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
    /// The longest gap `fill=previous|linear` fills; `None`: any.
    pub max_gap: Option<MaxGap>,
    pub smooth: Option<usize>,
    /// `approx=true`: percentiles may come from the quantile sketches kept in the
    /// rollups, within [`crate::domain::sketch::RELATIVE_ACCURACY`].
    pub approx: bool,
    /// Whether whole buckets may be read from the hourly rollups.
    pub rollups: bool,
    /// The engine storing the points, which decides how statements are planned
    /// ([`crate::db::prepared::Plans::on`]).
    pub engine: StorageMode,
}

/// The aggregate a series gets when the query names none: by its kind.
pub fn default_agg(t: &MetricType) -> AggFunc {
    match t.row.kind.as_deref() {
        Some("count") => AggFunc::Sum,
        Some("sample") => AggFunc::Last,
        _ => AggFunc::Avg,
    }
}

/// The matched series, ordered by name.
pub fn match_series(snapshot: &Snapshot, patterns: &SeriesPatterns) -> Vec<Arc<MetricType>> {
    snapshot
        .all()
        .into_iter()
        .filter(|t| patterns.matches(&t.row.series))
        .collect()
}
