//! Raw points back out: the latest point per series as of a time
//! (`GET /api/timeseries/latest/`), and every point of a range in `(time, series,
//! session)` order, as keyset-paginated JSON pages or a streamed CSV / NDJSON export
//! (`GET /api/timeseries/points/`).
//!
//! Ranges never sort in the database: each matched series is read through its own range
//! of the primary key `(user_id, series_id, time, session_id)`, in `(time, session)`
//! order and in bounded batches, and [`PointMerger`] merges the series in memory. Each
//! point is read once, and what is held at a time is a batch per series, whatever the
//! size of the range. With `max_points` each series is first counted, then cut down to
//! that many points on its way into the merger ([`downsample`]), still a batch at a time.
//!
//! The parts: [`cursor`] (a point's position, and the cursor carrying it), [`merger`],
//! [`downsample`], [`page`] (JSON pages), [`export`] (CSV and NDJSON).

pub mod cursor;
pub mod downsample;
pub mod export;
pub mod merger;
pub mod page;

pub use cursor::PointKey;
pub use downsample::Downsampling;
pub use export::{CSV_HEADER, EXPORT_CHUNK_ROWS, Export, Format};
pub use merger::{OutPoint, PointMerger};
pub use page::{Page, PageRow, page};

use crate::db::generations;
use crate::db::retrieval;
use crate::domain::downsample::MaxPoints;
use crate::domain::query::SeriesPatterns;
use crate::domain::timestamp::format_utc;
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use crate::services::query::match_series;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

/// A validated `latest` query.
#[derive(Debug, Clone)]
pub struct LatestQuery {
    pub user_id: Uuid,
    pub patterns: SeriesPatterns,
    pub as_of: DateTime<Utc>,
    pub session_id: Option<Uuid>,
}

/// One series' latest point.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestRow {
    pub series: String,
    #[schema(format = DateTime)]
    pub time: String,
    /// The stored JSON, as it was sent.
    #[schema(value_type = Value)]
    pub value: Box<RawValue>,
    pub session_id: Uuid,
}

/// The last point of each matched series at or before `as_of`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"as_of": "2025-01-01T00:05:00Z", "results": [
    {"series": "lab.ph", "time": "2025-01-01T00:02:00Z", "value": 6.5, "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11"},
    {"series": "session.urine.color", "time": "2025-01-01T00:01:00Z", "value": {"r": 255, "g": 255, "b": 255}, "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11"}
]}))]
pub struct LatestResponse {
    #[schema(format = DateTime)]
    pub as_of: String,
    /// By series name; a series without a point at or before `as_of` is left out.
    pub results: Vec<LatestRow>,
}

fn raw_json(text: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(text)
        .map_err(|e| ApiError::internal(format!("stored value is not JSON: {e}")))
}

/// For each matched series (by name), its last point at or before `as_of`: one
/// backwards index probe per series. Series without such a point are left out.
pub fn latest(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    q: &LatestQuery,
) -> Result<LatestResponse, ApiError> {
    let mut results = Vec::new();
    // Within the user's span, so each plan touches only partitions that can hold the
    // user's points; a user who never wrote (or not by then) has no latest point.
    let within = generations::span(conn, q.user_id)?.and_then(|s| s.clip(None, Some(q.as_of)));
    let Some(within) = within else {
        return Ok(LatestResponse {
            as_of: format_utc(q.as_of),
            results,
        });
    };
    for t in match_series(snapshot, &q.patterns) {
        if let Some(p) = retrieval::latest(conn, q.user_id, t.id(), within, q.session_id)? {
            results.push(LatestRow {
                series: t.row.series.clone(),
                time: format_utc(p.time),
                value: raw_json(p.value)?,
                session_id: p.session_id,
            });
        }
    }
    Ok(LatestResponse {
        as_of: format_utc(q.as_of),
        results,
    })
}

/// A validated raw-points query.
#[derive(Debug, Clone)]
pub struct PointsQuery {
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub patterns: SeriesPatterns,
    /// Inclusive; `None`: from the first point.
    pub start: Option<DateTime<Utc>>,
    /// Inclusive; `None`: to the last point.
    pub end: Option<DateTime<Utc>>,
    /// Continue strictly after this point.
    pub after: Option<PointKey>,
    /// Keep at most this many points of each series ([`downsample`]).
    pub max_points: Option<MaxPoints>,
}
