//! `max_points`: one series of a raw-points read cut down to at most that many points
//! ([`Downsampler`]), and what the answer says was left out ([`Downsampling`]).
//!
//! A series with a number ([`Measure`]) goes through LTTB ([`lttb`]); any other through
//! evenly spaced points ([`Even`]). Both need the series' length first, so a downsampled
//! series is counted before it is read (`count(*)` over its range).
//! LTTB then reads it twice, side by side, in the same bounded batches as any read: a
//! look-ahead pass reads `(time, number)` only (for a plain number, the primary key
//! alone, which includes `num`) and gives each bucket's mean as its last point goes by;
//! the choosing pass reads the points with their values and keeps the best of each
//! bucket. What a series holds at a time is a batch of each pass and one candidate, so
//! memory does not depend on the range or on `max_points`; the cost is two reads of the
//! range (one for even spacing) and a count.
//!
//! A point's `x` is its time (microseconds since the series' first point in the range),
//! its `y` its number; a point without one (a `null` in a nullable series, a missing
//! field) counts as the number before it (0 before the first), so it is never a spike.
//! Points written while a downsampled read runs may or may not be seen; each pass reads
//! at most the counted number of points, so a series never gives more than `max_points`.

use super::cursor::PointKey;
use crate::db::retrieval::{self, MeasuredPoint, RangeStart, SeriesRange, StoredPoint};
use crate::domain::downsample::MaxPoints;
use crate::domain::downsample::even::Even;
use crate::domain::downsample::lttb::{self, BucketMean, BucketMeans, Buckets, Lttb};
use crate::domain::series_shape::Measure;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use utoipa::ToSchema;

/// How a series was cut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DownsamplingMethod {
    /// Largest-Triangle-Three-Buckets over the series' number.
    Lttb,
    /// Evenly spaced points (series without a number).
    Even,
}

/// One series of a downsampled answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeriesDownsampling {
    /// Points of the series in the range.
    pub points: u64,
    /// Points kept: all of them when no more than `max_points`, else `max_points`.
    pub kept: u64,
    pub method: DownsamplingMethod,
}

/// What `max_points` left out: in a JSON page's `metadata` and, as totals, in the
/// headers of every format. Counts are over the whole range, whatever the page.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"max_points": 100, "downsampled": true, "points": 10050, "kept": 150,
    "series": {"lab.ph": {"points": 10000, "kept": 100, "method": "lttb"},
               "session.example.series": {"points": 50, "kept": 50, "method": "even"}}}))]
pub struct Downsampling {
    /// The `max_points` asked for.
    #[schema(minimum = 3, maximum = 100000)]
    pub max_points: u32,
    /// Whether any series lost points.
    pub downsampled: bool,
    /// Points in the range, every series together.
    pub points: u64,
    /// Points kept, every series together (over all pages).
    pub kept: u64,
    /// By name, each matched series with points in the range.
    pub series: BTreeMap<String, SeriesDownsampling>,
}

impl Downsampling {
    pub fn new(
        max: MaxPoints,
        series: impl IntoIterator<Item = (String, SeriesDownsampling)>,
    ) -> Self {
        let series: BTreeMap<_, _> = series.into_iter().filter(|(_, s)| s.points > 0).collect();
        let points = series.values().map(|s| s.points).sum();
        let kept = series.values().map(|s| s.kept).sum();
        Self {
            max_points: max.get(),
            downsampled: kept < points,
            points,
            kept,
            series,
        }
    }
}

/// One pass over a series: where it is, and how its points become LTTB's.
#[derive(Debug, Default)]
struct Pass {
    from: Option<(DateTime<Utc>, uuid::Uuid)>,
    read: u64,
    origin: Option<DateTime<Utc>>,
    last_number: f64,
}

impl Pass {
    fn start(&self) -> RangeStart {
        match self.from {
            None => RangeStart::Start,
            Some((t, s)) => RangeStart::After(t, s),
        }
    }

    /// At most `batch` of the points left of `total`; 0 when none are.
    fn limit(&self, batch: i64, total: u64) -> i64 {
        i64::try_from(total.saturating_sub(self.read))
            .unwrap_or(i64::MAX)
            .min(batch)
    }

    /// Notes a point read, and gives it as LTTB sees it.
    fn point(&mut self, p: &MeasuredPoint) -> lttb::Point {
        self.read += 1;
        self.from = Some((p.time, p.session_id));
        let origin = *self.origin.get_or_insert(p.time);
        let micros = p
            .time
            .timestamp_micros()
            .saturating_sub(origin.timestamp_micros());
        let y = p.number.unwrap_or(self.last_number);
        self.last_number = y;
        lttb::Point {
            x: micros as f64,
            y,
        }
    }
}

/// LTTB's look-ahead: the bucket means, from a pass one bucket or so ahead.
#[derive(Debug)]
struct Lookahead {
    pass: Pass,
    means: BucketMeans,
    points: VecDeque<lttb::Point>,
    exhausted: bool,
}

impl Lookahead {
    fn next_mean(
        &mut self,
        conn: &mut PgConnection,
        range: &SeriesRange,
        measure: &Measure,
        (batch, total): (i64, u64),
    ) -> Result<Option<BucketMean>, ApiError> {
        loop {
            while let Some(p) = self.points.pop_front() {
                if let Some(m) = self.means.push(p) {
                    return Ok(Some(m));
                }
            }
            let limit = self.pass.limit(batch, total);
            if self.exhausted || !self.means.wants_more() || limit == 0 {
                return Ok(None);
            }
            let rows =
                retrieval::measured_page(conn, range, self.pass.start(), limit, measure, false)?;
            self.exhausted = (rows.len() as i64) < limit;
            for r in &rows {
                let p = self.pass.point(r);
                self.points.push_back(p);
            }
        }
    }
}

/// What picks the points kept, once the series is counted.
#[derive(Debug)]
enum Picker {
    /// No more points than `max_points`: all of them.
    All,
    Even(Even),
    Lttb {
        lttb: Box<Lttb<StoredPoint>>,
        ahead: Box<Lookahead>,
        measure: Measure,
    },
}

/// One series of a raw-points read with `max_points`: counts it, then reads it in
/// batches and gives the points kept, in order.
#[derive(Debug)]
pub struct Downsampler {
    max: MaxPoints,
    measure: Option<Measure>,
    series_id: i32,
    /// Points at or before this key are chosen from but not given (a page's cursor).
    after: Option<PointKey>,
    total: u64,
    picker: Option<Picker>,
    main: Pass,
}

impl Downsampler {
    /// For a series weighed by `measure` (`None`: evenly spaced points).
    pub fn new(
        max: MaxPoints,
        measure: Option<Measure>,
        series_id: i32,
        after: Option<PointKey>,
    ) -> Self {
        Self {
            max,
            measure,
            series_id,
            after,
            total: 0,
            picker: None,
            main: Pass::default(),
        }
    }

    /// Counts the series' points in `range` and picks the method.
    pub fn start(&mut self, conn: &mut PgConnection, range: &SeriesRange) -> Result<(), ApiError> {
        self.total = u64::try_from(retrieval::range_count(conn, range)?).unwrap_or(0);
        let buckets = Buckets::new(self.total, self.max);
        self.picker = Some(match &self.measure {
            _ if buckets.keeps_all() => Picker::All,
            None => Picker::Even(Even::new(self.total, self.max)),
            Some(measure) => Picker::Lttb {
                lttb: Box::new(Lttb::new(buckets)),
                ahead: Box::new(Lookahead {
                    pass: Pass::default(),
                    means: BucketMeans::new(buckets),
                    points: VecDeque::new(),
                    exhausted: false,
                }),
                measure: measure.clone(),
            },
        });
        Ok(())
    }

    /// For a series with no point in the range (outside the user's span).
    pub fn start_empty(&mut self) {
        self.total = 0;
        self.picker = Some(Picker::All);
    }

    /// The series' counts, once started.
    pub fn counts(&self) -> Option<SeriesDownsampling> {
        self.picker.as_ref()?;
        Some(SeriesDownsampling {
            points: self.total,
            kept: self.total.min(u64::from(self.max.get())),
            method: match self.measure {
                Some(_) => DownsamplingMethod::Lttb,
                None => DownsamplingMethod::Even,
            },
        })
    }

    /// Reads the next batch of at most `batch` points of `range` and appends the points
    /// kept to `out`; returns whether the series is done.
    pub fn fill(
        &mut self,
        conn: &mut PgConnection,
        range: &SeriesRange,
        batch: i64,
        out: &mut VecDeque<StoredPoint>,
    ) -> Result<bool, ApiError> {
        let total = self.total;
        let limit = self.main.limit(batch, total);
        let Some(picker) = &mut self.picker else {
            return Ok(true);
        };
        let mut kept = Vec::new();
        let got = match picker {
            _ if limit == 0 => 0,
            Picker::All | Picker::Even(_) => {
                let rows = retrieval::range_page(conn, range, self.main.start(), limit)?;
                for r in &rows {
                    self.main.read += 1;
                    self.main.from = Some((r.time, r.session_id));
                }
                let got = rows.len();
                match picker {
                    Picker::Even(even) => {
                        kept.extend(rows.into_iter().filter(|_| even.keep_next()))
                    }
                    _ => kept.extend(rows),
                }
                got
            }
            Picker::Lttb {
                lttb,
                ahead,
                measure,
            } => {
                let rows =
                    retrieval::measured_page(conn, range, self.main.start(), limit, measure, true)?;
                let got = rows.len();
                let mut means = || ahead.next_mean(conn, range, measure, (batch, total));
                for r in rows {
                    let p = self.main.point(&r);
                    let value = r.value.ok_or_else(|| {
                        ApiError::internal("a point's value was not read for downsampling")
                    })?;
                    let item = StoredPoint {
                        time: r.time,
                        session_id: r.session_id,
                        value,
                    };
                    lttb.offer(p, item, &mut means, &mut kept)?;
                }
                got
            }
        };
        let done = (got as i64) < limit || self.main.read >= total;
        if done && let Picker::Lttb { lttb, .. } = picker {
            kept.extend(lttb.finish());
        }
        let series_id = self.series_id;
        let after = self.after;
        out.extend(kept.into_iter().filter(|p| {
            after.is_none_or(|a| {
                PointKey {
                    time: p.time,
                    series_id,
                    session_id: p.session_id,
                } > a
            })
        }));
        Ok(done)
    }
}
