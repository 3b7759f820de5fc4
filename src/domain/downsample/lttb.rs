//! Largest-Triangle-Three-Buckets (Sveinn Steinarsson, *Downsampling Time Series for
//! Visual Representation*, 2013), in a streaming form that chooses exactly the points the
//! textbook algorithm chooses over a slice.
//!
//! The textbook algorithm keeps `threshold` of `n` points (when `n > threshold`): the
//! first point; one point in each of `threshold - 2` buckets, bucket `i` starting at index
//! `⌊i·every⌋ + 1` with `every = (n - 2) / (threshold - 2)`; and the last point. In each
//! bucket it keeps the point that makes the largest triangle with the point kept before it
//! and the mean of the next bucket (past the last bucket, the "bucket" `threshold - 2`,
//! which holds the last point). The arithmetic here is the textbook's, operation for
//! operation (`f64`, the same bucket bounds, sums in index order, the first of equal
//! areas), so the same points come out.
//!
//! A bucket's choice needs the point kept before it, known by then, and the mean of the
//! bucket after it, not read yet. So a series is read twice, side by side: [`BucketMeans`]
//! takes the points one bucket ahead and gives each bucket's mean as soon as its last
//! point went by; [`Lttb`] takes them again and asks for the mean of the next bucket when
//! a bucket starts. Each keeps O(1) state (a running sum, the best point so far), so
//! memory does not depend on the length of the series or the size of a bucket; the
//! price is reading the points twice, and knowing their number before the first.

use super::MaxPoints;

/// A point as LTTB sees it: `x` its time, `y` its number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// Where the buckets of a series of `len` points lie for a `threshold`.
#[derive(Debug, Clone, Copy)]
pub struct Buckets {
    len: u64,
    threshold: u64,
    every: f64,
}

impl Buckets {
    pub fn new(len: u64, max: MaxPoints) -> Self {
        let threshold = u64::from(max.get());
        let every = if len > threshold {
            (len - 2) as f64 / (threshold - 2) as f64
        } else {
            1.0
        };
        Self {
            len,
            threshold,
            every,
        }
    }

    /// The number of points of the series.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the series is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every point is kept: the series has no more than `threshold` points.
    pub fn keeps_all(&self) -> bool {
        self.len <= self.threshold
    }

    /// How many points are kept.
    pub fn kept(&self) -> u64 {
        self.len.min(self.threshold)
    }

    /// The index of the last bucket: the one past the last choice, holding the last point.
    fn last(&self) -> u64 {
        self.threshold - 2
    }

    /// The first index of bucket `j` (bucket `j` ends where bucket `j + 1` starts); past
    /// the series, its length.
    fn start(&self, j: u64) -> u64 {
        ((j as f64 * self.every).floor() as u64)
            .saturating_add(1)
            .min(self.len)
    }
}

/// The mean of bucket `bucket`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketMean {
    pub bucket: u64,
    pub mean: Point,
}

/// The means of buckets `1..=threshold - 2` (those a choice looks ahead to), from the
/// points given in index order.
#[derive(Debug, Clone)]
pub struct BucketMeans {
    buckets: Buckets,
    /// The index of the next point.
    index: u64,
    /// The bucket being summed.
    bucket: u64,
    /// Where it ends.
    end: u64,
    sum_x: f64,
    sum_y: f64,
}

impl BucketMeans {
    pub fn new(buckets: Buckets) -> Self {
        Self {
            buckets,
            index: 0,
            bucket: 1,
            end: buckets.start(2),
            sum_x: 0.0,
            sum_y: 0.0,
        }
    }

    /// Whether a mean is still to come (false once the last bucket's went, and when
    /// every point is kept, which needs none).
    pub fn wants_more(&self) -> bool {
        !self.buckets.keeps_all() && self.bucket <= self.buckets.last()
    }

    /// Takes the next point; returns the mean of the bucket it ends, if it ends one.
    pub fn push(&mut self, p: Point) -> Option<BucketMean> {
        let k = self.index;
        self.index += 1;
        if !self.wants_more() || k < self.buckets.start(self.bucket) {
            return None;
        }
        // A bucket can only be empty if floating-point bounds ever touched; its mean is
        // then never given, and the choice looking ahead to it uses its own anchor.
        while k >= self.end && self.wants_more() {
            self.advance();
        }
        if !self.wants_more() {
            return None;
        }
        self.sum_x += p.x;
        self.sum_y += p.y;
        if k + 1 < self.end {
            return None;
        }
        let count = (self.end - self.buckets.start(self.bucket)) as f64;
        let mean = BucketMean {
            bucket: self.bucket,
            mean: Point {
                x: self.sum_x / count,
                y: self.sum_y / count,
            },
        };
        self.advance();
        Some(mean)
    }

    fn advance(&mut self) {
        self.bucket += 1;
        self.end = self.buckets.start(self.bucket + 1);
        self.sum_x = 0.0;
        self.sum_y = 0.0;
    }
}

/// The best point of the current bucket so far.
#[derive(Debug)]
struct Best<T> {
    area: f64,
    point: Point,
    item: T,
}

/// LTTB over points given in index order, each with the `item` to keep (a point to send).
#[derive(Debug)]
pub struct Lttb<T> {
    buckets: Buckets,
    /// The index of the next point.
    index: u64,
    /// The bucket choosing now, and where it ends.
    bucket: u64,
    end: u64,
    /// The point kept last.
    anchor: Point,
    /// The mean of the next bucket, once asked for.
    target: Option<Point>,
    /// A mean read past the one asked for (only after an empty bucket).
    pending: Option<BucketMean>,
    best: Option<Best<T>>,
}

impl<T> Lttb<T> {
    pub fn new(buckets: Buckets) -> Self {
        Self {
            buckets,
            index: 0,
            bucket: 0,
            end: buckets.start(1),
            anchor: Point { x: 0.0, y: 0.0 },
            target: None,
            pending: None,
            best: None,
        }
    }

    /// Takes the next point and its item; pushes to `out`, in order, the items kept so
    /// far. `means` gives the next [`BucketMean`] of a [`BucketMeans`] reading the same
    /// points ahead (`None` once it ran out of points); it is asked only when a bucket
    /// starts. Points past the length the buckets were made for are ignored.
    pub fn offer<E>(
        &mut self,
        p: Point,
        item: T,
        means: &mut impl FnMut() -> Result<Option<BucketMean>, E>,
        out: &mut Vec<T>,
    ) -> Result<(), E> {
        let k = self.index;
        self.index += 1;
        let len = self.buckets.len;
        if self.buckets.keeps_all() {
            if k < len {
                out.push(item);
            }
            return Ok(());
        }
        if k == 0 {
            self.anchor = p;
            out.push(item);
            return Ok(());
        }
        if k >= len {
            return Ok(());
        }
        while k >= self.end && self.bucket < self.buckets.last() {
            self.close(out);
        }
        if k == len - 1 {
            out.push(item);
            return Ok(());
        }
        if self.bucket == self.buckets.last() {
            // Between the last choice and the last point: only averaged (as the textbook
            // does, when floating-point bounds put a point there).
            return Ok(());
        }
        let target = match self.target {
            Some(t) => t,
            None => {
                let t = self.mean_of(self.bucket + 1, means)?;
                self.target = Some(t);
                t
            }
        };
        let a = self.anchor;
        let area = ((a.x - target.x) * (p.y - a.y) - (a.x - p.x) * (target.y - a.y)).abs() * 0.5;
        if self.best.as_ref().is_none_or(|b| area > b.area) {
            self.best = Some(Best {
                area,
                point: p,
                item,
            });
        }
        Ok(())
    }

    /// After the last point was offered: the choice of a bucket left open, which happens
    /// only when fewer points came than the buckets were made for.
    pub fn finish(&mut self) -> Option<T> {
        self.best.take().map(|b| b.item)
    }

    /// Ends the current bucket: its best point is kept and becomes the anchor.
    fn close(&mut self, out: &mut Vec<T>) {
        if let Some(b) = self.best.take() {
            self.anchor = b.point;
            out.push(b.item);
        }
        self.bucket += 1;
        self.end = self.buckets.start(self.bucket + 1);
        self.target = None;
    }

    /// The mean of bucket `j`, reading `means` up to it; the anchor when it never comes.
    fn mean_of<E>(
        &mut self,
        j: u64,
        means: &mut impl FnMut() -> Result<Option<BucketMean>, E>,
    ) -> Result<Point, E> {
        loop {
            match self.pending {
                Some(m) if m.bucket == j => return Ok(m.mean),
                Some(m) if m.bucket > j => return Ok(self.anchor),
                _ => {}
            }
            match means()? {
                Some(m) => self.pending = Some(m),
                None => return Ok(self.anchor),
            }
        }
    }
}

/// The indices LTTB keeps of `points` (times ascending), at most `max`: the slice form of
/// [`BucketMeans`] and [`Lttb`] together.
pub fn select(points: &[Point], max: MaxPoints) -> Vec<usize> {
    let buckets = Buckets::new(points.len() as u64, max);
    let mut ahead = BucketMeans::new(buckets);
    let mut next = 0;
    let mut means = || -> Result<Option<BucketMean>, std::convert::Infallible> {
        while next < points.len() {
            let p = points[next];
            next += 1;
            if let Some(m) = ahead.push(p) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    };
    let mut lttb = Lttb::new(buckets);
    let mut kept = Vec::with_capacity(buckets.kept() as usize);
    for (i, p) in points.iter().enumerate() {
        match lttb.offer(*p, i, &mut means, &mut kept) {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }
    kept.extend(lttb.finish());
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook algorithm over a slice, after Steinarsson's reference JavaScript
    /// (`largestTriangleThreeBuckets(data, threshold)`), returning indices.
    fn reference(data: &[(f64, f64)], threshold: usize) -> Vec<usize> {
        let n = data.len();
        if threshold >= n || threshold == 0 {
            return (0..n).collect();
        }
        let mut sampled = Vec::with_capacity(threshold);
        let every = (n - 2) as f64 / (threshold - 2) as f64;
        let mut a = 0;
        sampled.push(a);
        for i in 0..threshold - 2 {
            let mut avg_x = 0.0;
            let mut avg_y = 0.0;
            let mut avg_range_start = ((i + 1) as f64 * every).floor() as usize + 1;
            let avg_range_end = (((i + 2) as f64 * every).floor() as usize + 1).min(n);
            let avg_range_length = (avg_range_end - avg_range_start) as f64;
            while avg_range_start < avg_range_end {
                avg_x += data[avg_range_start].0;
                avg_y += data[avg_range_start].1;
                avg_range_start += 1;
            }
            avg_x /= avg_range_length;
            avg_y /= avg_range_length;
            let mut range_offs = (i as f64 * every).floor() as usize + 1;
            let range_to = ((i + 1) as f64 * every).floor() as usize + 1;
            let (point_a_x, point_a_y) = data[a];
            let mut max_area = -1.0;
            let mut next_a = a;
            while range_offs < range_to {
                let area = ((point_a_x - avg_x) * (data[range_offs].1 - point_a_y)
                    - (point_a_x - data[range_offs].0) * (avg_y - point_a_y))
                    .abs()
                    * 0.5;
                if area > max_area {
                    max_area = area;
                    next_a = range_offs;
                }
                range_offs += 1;
            }
            sampled.push(next_a);
            a = next_a;
        }
        sampled.push(n - 1);
        sampled
    }

    fn max(n: u32) -> MaxPoints {
        MaxPoints::try_from(n).unwrap()
    }

    fn points(data: &[(f64, f64)]) -> Vec<Point> {
        data.iter().map(|&(x, y)| Point { x, y }).collect()
    }

    /// Times ascending (with repeats, as points of two sessions can share an instant),
    /// and values from flat runs, small integers, and wide floats.
    fn series() -> impl Strategy<Value = Vec<(f64, f64)>> {
        let value = prop_oneof![
            Just(0.0),
            (-5i32..=5).prop_map(f64::from),
            -1e6f64..1e6,
            -1e150f64..1e150,
        ];
        prop::collection::vec((0u32..5_000_000, value), 0..1500).prop_map(|steps| {
            let mut t = 1.7e15;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (dt, y))| {
                    // Every few steps a repeated time.
                    if i % 7 != 3 {
                        t += f64::from(dt);
                    }
                    (t, y)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn lttb_chooses_the_reference_points(data in series(), threshold in 3u32..200) {
            let got = select(&points(&data), max(threshold));
            prop_assert_eq!(got, reference(&data, threshold as usize));
        }

        #[test]
        fn lttb_keeps_at_most_max_with_first_and_last_in_time_order(
            data in series(),
            threshold in 3u32..400,
        ) {
            let got = select(&points(&data), max(threshold));
            let n = data.len();
            prop_assert_eq!(got.len(), n.min(threshold as usize));
            if n > 0 {
                prop_assert_eq!(got.first(), Some(&0));
                prop_assert_eq!(got.last(), Some(&(n - 1)));
            }
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "{:?}", got);
            prop_assert!(got.windows(2).all(|w| data[w[0]].0 <= data[w[1]].0));
            if threshold as usize >= n {
                prop_assert_eq!(got, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_spike_and_a_dip_survive_and_short_series_come_back_whole() {
        let mut data: Vec<(f64, f64)> = (0..1000).map(|i| (f64::from(i), 1.0)).collect();
        data[300].1 = 50.0;
        data[700].1 = -50.0;
        let got = select(&points(&data), max(10));
        assert_eq!(got.len(), 10);
        assert!(got.contains(&300) && got.contains(&700), "{got:?}");
        assert_eq!(got, reference(&data, 10));
        for n in 0..=5 {
            let short: Vec<(f64, f64)> = (0..n).map(|i| (f64::from(i), 0.0)).collect();
            assert_eq!(
                select(&points(&short), max(5)),
                (0..n as usize).collect::<Vec<_>>()
            );
        }
        let six: Vec<(f64, f64)> = (0..6).map(|i| (f64::from(i), f64::from(i % 2))).collect();
        assert_eq!(select(&points(&six), max(5)), reference(&six, 5));
    }

    #[test]
    fn fewer_points_than_counted_keep_at_most_max_and_more_are_ignored() {
        let data: Vec<Point> = (0..100)
            .map(|i| Point {
                x: f64::from(i),
                y: f64::from(i * i % 17),
            })
            .collect();
        let buckets = Buckets::new(200, max(10));
        // The look-ahead and the choosing pass both see only 100 of the 200 points.
        let mut ahead = BucketMeans::new(buckets);
        let mut feed = data.iter();
        let mut means = || -> Result<_, ()> {
            for p in feed.by_ref() {
                if let Some(m) = ahead.push(*p) {
                    return Ok(Some(m));
                }
            }
            Ok(None)
        };
        let mut lttb = Lttb::new(buckets);
        let mut kept = Vec::new();
        for (i, p) in data.iter().enumerate() {
            lttb.offer(*p, i, &mut means, &mut kept).unwrap();
        }
        kept.extend(lttb.finish());
        assert!(kept.len() <= 10 && kept[0] == 0, "{kept:?}");
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "{kept:?}");

        let buckets = Buckets::new(50, max(10));
        let mut means = || -> Result<_, ()> { Ok(None) };
        let mut lttb = Lttb::new(buckets);
        let mut kept = Vec::new();
        for (i, p) in data.iter().enumerate() {
            lttb.offer(*p, i, &mut means, &mut kept).unwrap();
        }
        kept.extend(lttb.finish());
        assert_eq!(
            (kept.len(), kept.first(), kept.last()),
            (10, Some(&0), Some(&49))
        );
    }
}
