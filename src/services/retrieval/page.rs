//! A JSON page of `GET /api/timeseries/points/`: the next `limit` points after a
//! cursor, keyset-paginated.

use super::downsample::Downsampling;
use super::merger::PointMerger;
use super::{PointsQuery, raw_json};
use crate::domain::timestamp::format_utc;
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use diesel::pg::PgConnection;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

/// A page of a downsampled read reads this many points per batch (over all series),
/// whatever its `limit`: it reads the whole range.
const DOWNSAMPLED_BATCH_ROWS: usize = super::EXPORT_CHUNK_ROWS;

/// One point of a JSON page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageRow {
    #[schema(format = DateTime)]
    pub time: String,
    pub series: String,
    pub session_id: Uuid,
    /// The stored JSON, byte for byte as it was sent.
    #[schema(value_type = Value)]
    pub value: Box<RawValue>,
}

// The HTTP layer sets `next`.
/// A keyset page of points in `(time, series, session)` order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"results": [
    {"time": "2025-01-01T00:01:00Z", "series": "session.urine.color", "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11", "value": {"r": 255, "g": 255, "b": 255}}
], "next_cursor": "AQAGKpm9n-cAAAAABB8cPDaKbkpSnR4_G3wOmhE",
   "next": "http://127.0.0.1:8000/api/timeseries/points/?user_id=6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11&limit=1&cursor=AQAGKpm9n-cAAAAABB8cPDaKbkpSnR4_G3wOmhE"}))]
pub struct Page {
    /// With `max_points` only: how many points each series has in the range and keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub metadata: Option<Downsampling>,
    pub results: Vec<PageRow>,
    /// An opaque token for the next page (`cursor`); `null` on the last page.
    pub next_cursor: Option<String>,
    /// The same request's absolute URL with `cursor` set; `null` on the last page.
    pub next: Option<String>,
}

/// The first `limit` points after `q.after`; with `q.max_points`, of the points each
/// series keeps.
pub fn page(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    q: &PointsQuery,
    limit: usize,
) -> Result<Page, ApiError> {
    let batch = match q.max_points {
        None => limit + 1,
        Some(_) => DOWNSAMPLED_BATCH_ROWS,
    };
    let mut merger = PointMerger::new(snapshot, q, batch);
    merger.start(conn)?;
    let mut results = Vec::with_capacity(limit.min(1024));
    let mut last = None;
    while results.len() < limit {
        let Some(p) = merger.next(conn)? else { break };
        results.push(PageRow {
            time: format_utc(p.key.time),
            series: merger.series_name(&p).to_string(),
            session_id: p.key.session_id,
            value: raw_json(p.value)?,
        });
        last = Some(p.key);
    }
    let more = merger.has_more();
    Ok(Page {
        metadata: merger.downsampling(),
        results,
        next_cursor: last.filter(|_| more).map(|k| k.encode()),
        next: None,
    })
}
