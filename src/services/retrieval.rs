//! Raw points back out: the latest point per series as of a time
//! (`GET /api/timeseries/latest/`), and every point of a range in `(time, series,
//! session)` order, as keyset-paginated JSON pages or a streamed CSV / NDJSON export
//! (`GET /api/timeseries/points/`).
//!
//! Ranges never sort in the database: each matched series is read through its own range
//! of the primary key `(user_id, series_id, time, session_id)`, in `(time, session)`
//! order and in bounded batches, and [`PointMerger`] merges the series in memory. Each
//! point is read once, and what is held at a time is a batch per series, whatever the
//! size of the range.

use crate::db::generations;
use crate::db::retrieval::{self, RangeStart, SeriesRange, StoredPoint};
use crate::domain::query::SeriesPatterns;
use crate::domain::timestamp::{self, format_utc};
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use crate::services::query::match_series;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use diesel::pg::PgConnection;
use serde::Serialize;
use serde_json::value::RawValue;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
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

/// The position of a point in `(time, series_id, session_id)` order: what a cursor
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PointKey {
    pub time: DateTime<Utc>,
    pub series_id: i32,
    pub session_id: Uuid,
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_BYTES: usize = 1 + 8 + 4 + 16;

impl PointKey {
    /// The opaque cursor: base64url (no padding) of a version byte, the time in
    /// microseconds, the series id and the session id.
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(CURSOR_BYTES);
        b.push(CURSOR_VERSION);
        b.extend_from_slice(&self.time.timestamp_micros().to_be_bytes());
        b.extend_from_slice(&self.series_id.to_be_bytes());
        b.extend_from_slice(self.session_id.as_bytes());
        URL_SAFE_NO_PAD.encode(b)
    }

    pub fn decode(s: &str) -> Result<Self, String> {
        let invalid = || "Invalid cursor.".to_string();
        let b = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| invalid())?;
        if b.len() != CURSOR_BYTES || b[0] != CURSOR_VERSION {
            return Err(invalid());
        }
        let micros = i64::from_be_bytes(b[1..9].try_into().map_err(|_| invalid())?);
        let series_id = i32::from_be_bytes(b[9..13].try_into().map_err(|_| invalid())?);
        let session_id = Uuid::from_slice(&b[13..29]).map_err(|_| invalid())?;
        let time = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(invalid)?;
        // Every stored point lies within the accepted years; a cursor outside them was
        // not made by us (and PostgreSQL could not even compare such a time).
        if !(timestamp::MIN_YEAR..=timestamp::MAX_YEAR).contains(&time.year()) {
            return Err(invalid());
        }
        Ok(Self {
            time,
            series_id,
            session_id,
        })
    }
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
}

/// A point on its way out.
#[derive(Debug, Clone)]
pub struct OutPoint {
    pub key: PointKey,
    /// Index of the series in the merger (for its name).
    series: usize,
    pub value: String,
}

/// One series being read in batches.
#[derive(Debug)]
struct SeriesReader {
    name: String,
    range: SeriesRange,
    from: RangeStart,
    buffer: VecDeque<StoredPoint>,
    exhausted: bool,
}

impl SeriesReader {
    /// Reads the next batch; marks the series exhausted when the batch comes back short.
    fn refill(&mut self, conn: &mut PgConnection, batch: i64) -> Result<(), ApiError> {
        let rows = retrieval::range_page(conn, &self.range, self.from, batch)?;
        if (rows.len() as i64) < batch {
            self.exhausted = true;
        }
        if let Some(last) = rows.last() {
            self.from = RangeStart::After(last.time, last.session_id);
        }
        self.buffer.extend(rows);
        Ok(())
    }
}

/// Merges the matched series' key-ordered reads into one stream in
/// `(time, series_id, session_id)` order.
#[derive(Debug)]
pub struct PointMerger {
    readers: Vec<SeriesReader>,
    /// The head key of every reader with buffered points.
    heads: BinaryHeap<Reverse<(PointKey, usize)>>,
    batch: i64,
    started: bool,
}

impl PointMerger {
    /// `batch_rows` bounds what is buffered: each series reads about
    /// `batch_rows / series` points at a time (at least 64).
    pub fn new(snapshot: &Snapshot, q: &PointsQuery, batch_rows: usize) -> Self {
        let matched = match_series(snapshot, &q.patterns);
        let batch = (batch_rows / matched.len().max(1)).clamp(64, batch_rows.max(64)) as i64;
        let readers = matched
            .into_iter()
            .map(|t| {
                let id = t.id();
                let from = match q.after {
                    None => RangeStart::Start,
                    // Strictly after (t, s, sess) in (time, series, session) order: for a
                    // later series that is from t on, for an earlier one after t.
                    Some(k) if id > k.series_id => RangeStart::AtOrAfter(k.time),
                    Some(k) if id < k.series_id => RangeStart::After(k.time, Uuid::max()),
                    Some(k) => RangeStart::After(k.time, k.session_id),
                };
                SeriesReader {
                    name: t.row.series.clone(),
                    range: SeriesRange {
                        user_id: q.user_id,
                        series_id: id,
                        session_id: q.session_id,
                        start: q.start,
                        end: q.end,
                    },
                    from,
                    buffer: VecDeque::new(),
                    exhausted: false,
                }
            })
            .collect();
        Self {
            readers,
            heads: BinaryHeap::new(),
            batch,
            started: false,
        }
    }

    /// The name of the point's series.
    pub fn series_name(&self, p: &OutPoint) -> &str {
        &self.readers[p.series].name
    }

    fn push_head(&mut self, i: usize) {
        if let Some(p) = self.readers[i].buffer.front() {
            let key = PointKey {
                time: p.time,
                series_id: self.readers[i].range.series_id,
                session_id: p.session_id,
            };
            self.heads.push(Reverse((key, i)));
        }
    }

    /// The next point in order, reading from the database as buffers run dry.
    pub fn next(&mut self, conn: &mut PgConnection) -> Result<Option<OutPoint>, ApiError> {
        if !self.started {
            self.started = true;
            // Within the user's span, so each plan touches only partitions that can hold
            // the user's points.
            let span = match self.readers.first() {
                Some(r) => generations::span(conn, r.range.user_id)?,
                None => None,
            };
            for r in &mut self.readers {
                match span.and_then(|s| s.clip(r.range.start, r.range.end)) {
                    Some((start, end)) => (r.range.start, r.range.end) = (Some(start), Some(end)),
                    None => r.exhausted = true,
                }
            }
            for i in 0..self.readers.len() {
                if self.readers[i].exhausted {
                    continue;
                }
                self.readers[i].refill(conn, self.batch)?;
                self.push_head(i);
            }
        }
        let Some(Reverse((key, i))) = self.heads.pop() else {
            return Ok(None);
        };
        let reader = &mut self.readers[i];
        let Some(p) = reader.buffer.pop_front() else {
            return Ok(None);
        };
        if reader.buffer.is_empty() && !reader.exhausted {
            reader.refill(conn, self.batch)?;
        }
        self.push_head(i);
        Ok(Some(OutPoint {
            key,
            series: i,
            value: p.value,
        }))
    }

    /// Whether every point has been returned (meaningful once `next` was called).
    pub fn is_done(&self) -> bool {
        self.started && self.heads.is_empty()
    }
}

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
    pub results: Vec<PageRow>,
    /// An opaque token for the next page (`cursor`); `null` on the last page.
    pub next_cursor: Option<String>,
    /// The same request's absolute URL with `cursor` set; `null` on the last page.
    pub next: Option<String>,
}

/// The first `limit` points after `q.after`.
pub fn page(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    q: &PointsQuery,
    limit: usize,
) -> Result<Page, ApiError> {
    let mut merger = PointMerger::new(snapshot, q, limit + 1);
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
    // The merger refills as it goes, so anything left means there is a next page.
    let more = merger.started && !merger.heads.is_empty();
    Ok(Page {
        results,
        next_cursor: last.filter(|_| more).map(|k| k.encode()),
        next: None,
    })
}

/// The formats of `GET /api/timeseries/points/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Ndjson,
}

impl Format {
    pub const ALL: [Format; 3] = [Self::Json, Self::Csv, Self::Ndjson];

    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "ndjson" => Ok(Self::Ndjson),
            _ => Err("Use one of json, csv, ndjson.".into()),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }
}

/// The first line of a CSV export.
pub const CSV_HEADER: &str = "time,series,session_id,value\n";

/// Appends `s` as one CSV field, quoted when it has to be (RFC 4180).
fn csv_field(out: &mut Vec<u8>, s: &str, always_quote: bool) {
    if always_quote || s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// A stored value on one line: line breaks in JSON can only be whitespace between
/// tokens, so they become spaces.
fn one_line(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\n', '\r']) {
        value.replace(['\n', '\r'], " ").into()
    } else {
        value.into()
    }
}

#[derive(Serialize)]
struct NdjsonLine<'a> {
    time: String,
    series: &'a str,
    session_id: Uuid,
    value: &'a RawValue,
}

/// Appends one point in `format` (CSV or NDJSON), one line.
fn write_line(
    out: &mut Vec<u8>,
    format: Format,
    time: DateTime<Utc>,
    series: &str,
    session: Uuid,
    value: &str,
) -> Result<(), ApiError> {
    let value = one_line(value);
    match format {
        Format::Csv => {
            out.extend_from_slice(format_utc(time).as_bytes());
            out.push(b',');
            csv_field(out, series, false);
            out.push(b',');
            out.extend_from_slice(session.to_string().as_bytes());
            out.push(b',');
            csv_field(out, &value, true);
        }
        Format::Ndjson | Format::Json => {
            let raw: &RawValue = serde_json::from_str(&value)
                .map_err(|e| ApiError::internal(format!("stored value is not JSON: {e}")))?;
            let line = NdjsonLine {
                time: format_utc(time),
                series,
                session_id: session,
                value: raw,
            };
            serde_json::to_writer(&mut *out, &line).map_err(ApiError::internal)?;
        }
    }
    out.push(b'\n');
    Ok(())
}

/// Points per chunk of an export: one chunk is produced per database visit.
pub const EXPORT_CHUNK_ROWS: usize = 5000;

/// A streamed export: produces the whole range chunk by chunk.
#[derive(Debug)]
pub struct Export {
    merger: PointMerger,
    format: Format,
    header_sent: bool,
}

impl Export {
    pub fn new(snapshot: &Snapshot, q: &PointsQuery, format: Format) -> Self {
        Self {
            merger: PointMerger::new(snapshot, q, EXPORT_CHUNK_ROWS),
            format,
            header_sent: false,
        }
    }

    /// The next chunk of at most `rows` points (the CSV header first); `None` at the end.
    pub fn next_chunk(
        &mut self,
        conn: &mut PgConnection,
        rows: usize,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let mut out = Vec::with_capacity(rows * 96);
        if !self.header_sent {
            self.header_sent = true;
            if self.format == Format::Csv {
                out.extend_from_slice(CSV_HEADER.as_bytes());
            }
        }
        for _ in 0..rows {
            let Some(p) = self.merger.next(conn)? else {
                break;
            };
            let name = self.merger.series_name(&p);
            write_line(
                &mut out,
                self.format,
                p.key.time,
                name,
                p.key.session_id,
                &p.value,
            )?;
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let k = PointKey {
            time: DateTime::<Utc>::from_timestamp_micros(-1_234_567).unwrap(),
            series_id: 42,
            session_id: Uuid::new_v4(),
        };
        let s = k.encode();
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{s}"
        );
        assert_eq!(PointKey::decode(&s).unwrap(), k);
        for bad in ["", "abc", "!!!!", &s[..s.len() - 2]] {
            assert!(PointKey::decode(bad).is_err(), "{bad}");
        }
        // Well-formed, but at a time no point can have (PostgreSQL cannot even hold
        // the first one): invalid, not a database error.
        for micros in [-8_000_000_000_000_000_000, 8_000_000_000_000_000_000] {
            let far = PointKey {
                time: DateTime::<Utc>::from_timestamp_micros(micros).unwrap(),
                ..k
            };
            assert!(PointKey::decode(&far.encode()).is_err(), "{micros}");
        }
    }

    #[test]
    fn csv_lines_quote_the_value_and_ndjson_lines_stay_single() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let s = Uuid::nil();
        let mut out = Vec::new();
        write_line(
            &mut out,
            Format::Csv,
            t,
            "a.b",
            s,
            "{\"r\": 1,\n \"g\": \"x,y\"}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("2023-11-14T22:13:20Z,a.b,{s},\"{{\"\"r\"\": 1,  \"\"g\"\": \"\"x,y\"\"}}\"\n")
        );
        let mut out = Vec::new();
        write_line(&mut out, Format::Ndjson, t, "a,b", s, "[1,\r\n2]").unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["series"], "a,b");
        assert_eq!(v["value"], serde_json::json!([1, 2]));
    }
}
