//! [`PointMerger`]: the matched series of a raw-points query, each read through its own
//! range of the primary key in `(time, session)` order and in bounded batches, merged
//! into one stream in `(time, series_id, session_id)` order. With `max_points` each
//! series passes through a [`Downsampler`] on its way in.

use super::PointsQuery;
use super::cursor::PointKey;
use super::downsample::{Downsampler, Downsampling};
use crate::db::generations;
use crate::db::retrieval::{self, RangeStart, SeriesRange, StoredPoint};
use crate::domain::downsample::MaxPoints;
use crate::domain::series_shape::measure_of;
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use crate::services::query::match_series;
use diesel::pg::PgConnection;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use uuid::Uuid;

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
    /// With `max_points`: what picks the points kept (it reads the series itself).
    downsampler: Option<Box<Downsampler>>,
}

impl SeriesReader {
    /// Reads the next batch; marks the series exhausted when the batch comes back short.
    /// A downsampled series reads until it has a point to give or none is left.
    fn refill(&mut self, conn: &mut PgConnection, batch: i64) -> Result<(), ApiError> {
        if let Some(d) = &mut self.downsampler {
            while self.buffer.is_empty() && !self.exhausted {
                self.exhausted = d.fill(conn, &self.range, batch, &mut self.buffer)?;
            }
            return Ok(());
        }
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
    max_points: Option<MaxPoints>,
}

impl PointMerger {
    /// `batch_rows` bounds what is buffered: each series reads about
    /// `batch_rows / series` points at a time (at least 64). With `q.max_points`, each
    /// series keeps at most that many points ([`Downsampler`]), and points at or before
    /// `q.after` are read (the choice depends on them) but not given.
    pub fn new(snapshot: &Snapshot, q: &PointsQuery, batch_rows: usize) -> Self {
        let max_points = q.max_points;
        let matched = match_series(snapshot, &q.patterns);
        let batch = (batch_rows / matched.len().max(1)).clamp(64, batch_rows.max(64)) as i64;
        let readers = matched
            .into_iter()
            .map(|t| {
                let id = t.id();
                let from = match q.after {
                    None => RangeStart::Start,
                    Some(_) if max_points.is_some() => RangeStart::Start,
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
                    downsampler: max_points.map(|max| {
                        Box::new(Downsampler::new(
                            max,
                            measure_of(&t.row.schema),
                            id,
                            q.after,
                        ))
                    }),
                }
            })
            .collect();
        Self {
            readers,
            heads: BinaryHeap::new(),
            batch,
            started: false,
            max_points,
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

    /// Clips each series to the user's span (so each plan touches only partitions that
    /// can hold the user's points), counts the downsampled ones, and reads the first
    /// batches. Done by the first [`Self::next`]; callable before it, to learn
    /// [`Self::downsampling`] before any point.
    pub fn start(&mut self, conn: &mut PgConnection) -> Result<(), ApiError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let span = match self.readers.first() {
            Some(r) => generations::span(conn, r.range.user_id)?,
            None => None,
        };
        for r in &mut self.readers {
            match span.and_then(|s| s.clip(r.range.start, r.range.end)) {
                Some((start, end)) => (r.range.start, r.range.end) = (Some(start), Some(end)),
                None => r.exhausted = true,
            }
            if let Some(d) = &mut r.downsampler {
                if r.exhausted {
                    d.start_empty();
                } else {
                    d.start(conn, &r.range)?;
                }
            }
        }
        for i in 0..self.readers.len() {
            if self.readers[i].exhausted {
                continue;
            }
            self.readers[i].refill(conn, self.batch)?;
            self.push_head(i);
        }
        Ok(())
    }

    /// The next point in order, reading from the database as buffers run dry.
    pub fn next(&mut self, conn: &mut PgConnection) -> Result<Option<OutPoint>, ApiError> {
        self.start(conn)?;
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

    /// Whether points remain (meaningful once started: the merger refills as it goes,
    /// so anything left means there is more).
    pub fn has_more(&self) -> bool {
        self.started && !self.heads.is_empty()
    }

    /// With `max_points`, once started: how many points each series has and keeps.
    pub fn downsampling(&self) -> Option<Downsampling> {
        let max = self.max_points?;
        let series = self
            .readers
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.downsampler.as_ref()?.counts()?)));
        Some(Downsampling::new(max, series))
    }
}
