//! The export formats of `GET /api/timeseries/points/` ([`Format`]): a CSV or NDJSON
//! line per point, and [`Export`], which streams a whole range chunk by chunk.

use super::downsample::Downsampling;
use super::merger::PointMerger;
use super::{PointKey, PointsQuery};
use crate::domain::timestamp::format_utc;
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use uuid::Uuid;

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

/// A streamed export: produces the whole range chunk by chunk. A chunk that fails may be
/// asked for again (on another server): the export then resumes after the last point
/// of the last chunk it made.
#[derive(Debug)]
pub struct Export {
    merger: PointMerger,
    format: Format,
    header_sent: bool,
    snapshot: Arc<Snapshot>,
    query: PointsQuery,
    /// The last point of the chunks made so far.
    done_through: Option<PointKey>,
    /// A chunk was begun and did not end: the merger's state is not to be trusted.
    interrupted: bool,
}

impl Export {
    pub fn new(snapshot: Arc<Snapshot>, query: PointsQuery, format: Format) -> Self {
        Self {
            merger: PointMerger::new(&snapshot, &query, EXPORT_CHUNK_ROWS),
            format,
            header_sent: false,
            snapshot,
            query,
            done_through: None,
            interrupted: false,
        }
    }

    /// The next chunk of at most `rows` points (the CSV header first); `None` at the end.
    pub fn next_chunk(
        &mut self,
        conn: &mut PgConnection,
        rows: usize,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        if self.interrupted {
            let resumed = PointsQuery {
                after: self.done_through.or(self.query.after),
                ..self.query.clone()
            };
            self.merger = PointMerger::new(&self.snapshot, &resumed, EXPORT_CHUNK_ROWS);
        }
        self.interrupted = true;
        let mut out = Vec::with_capacity(rows * 96);
        if !self.header_sent && self.format == Format::Csv {
            out.extend_from_slice(CSV_HEADER.as_bytes());
        }
        let mut last = None;
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
            last = Some(p.key);
        }
        self.header_sent = true;
        self.interrupted = false;
        self.done_through = last.or(self.done_through);
        Ok((!out.is_empty()).then_some(out))
    }

    /// Whether the last chunk made was the last of the export.
    pub fn done(&self) -> bool {
        !self.interrupted && !self.merger.has_more()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// With `max_points`, once the first chunk was made: what was left out.
    pub fn downsampling(&self) -> Option<Downsampling> {
        self.merger.downsampling()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
