//! Mergeable quantile sketches with a relative-error guarantee (DDSketch, Masson, Rim and
//! Lee, VLDB 2019), for `approx=true` percentiles read from rollups.
//!
//! A number `x ≠ 0` falls in the bucket of key `k = ⌈ln|x| / ln γ⌉`, γ = (1 + α) / (1 − α):
//! every number of that bucket lies in `(γ^(k−1), γ^k]`, and the bucket's value
//! `2γ^k / (γ + 1)` is within α (relative) of each of them. A sketch is a count per key;
//! two sketches merge by adding counts, so an hour's, a day's and a month's sketches are
//! made from the finer ones like the other rollup aggregates. Every finite number has a
//! key (no range is cut off: subnormals and 1.8e308 included); zero has a bucket of its
//! own, negative numbers mirror positive ones.
//!
//! A key and its sign are stored as one *encoded key*: `0` for zero, `±(OFFSET + k)` for
//! `±x`, so that encoded keys sort as the numbers do. A stored sketch is an array of
//! `encoded key << COUNT_BITS | count` (`bigint[]`), ascending, one element per key: 8
//! bytes a bucket. The same arithmetic is written in SQL ([`key_sql`]) for the rollup
//! job and the raw points a query reads.

use std::collections::BTreeMap;

/// α: every quantile answered from sketches is within this fraction of a value between
/// the two data points that bracket its rank.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Added to a key so that the encoded keys of non-zero numbers keep their sign: keys run
/// from about −37,600 (5e-324) to 35,900 (1.8e308).
const OFFSET: i64 = 40_000;

/// Bits of a packed element holding the count (up to 1.1e12 points per key).
pub const COUNT_BITS: u32 = 40;
const COUNT_MASK: i64 = (1 << COUNT_BITS) - 1;

/// γ.
fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// ln γ, as SQL and Rust both divide by it.
fn ln_gamma() -> f64 {
    gamma().ln()
}

/// The encoded key of `x` (finite).
pub fn key(x: f64) -> i64 {
    if x == 0.0 {
        return 0;
    }
    let k = OFFSET + (x.abs().ln() / ln_gamma()).ceil() as i64;
    if x < 0.0 { -k } else { k }
}

/// The encoded key of the SQL `float8` expression `v`, computed as [`key`] does.
pub fn key_sql(v: &str) -> String {
    format!(
        "(CASE WHEN {v} = 0 THEN 0 ELSE sign({v}) * ({OFFSET} + ceil(ln(abs({v})) / '{}'::float8)) END)::int8",
        ln_gamma()
    )
}

/// The SQL packing an encoded key and a count (both `int8` expressions) into one element.
pub fn pack_sql(key: &str, count: &str) -> String {
    format!("(({key}) << {COUNT_BITS} | ({count}))")
}

/// The encoded key of a packed SQL element `e`.
pub fn key_of_sql(e: &str) -> String {
    format!("({e} >> {COUNT_BITS})")
}

/// The count of a packed SQL element `e`.
pub fn count_of_sql(e: &str) -> String {
    format!("({e} & {COUNT_MASK})")
}

/// The value a bucket stands for: within α of every number whose key it is.
pub fn value_of(key: i64) -> f64 {
    if key == 0 {
        return 0.0;
    }
    let k = (key.abs() - OFFSET) as f64;
    // 2γ^k / (γ + 1), without overflowing at the top bucket.
    let v = (k * ln_gamma() + (2.0 / (gamma() + 1.0)).ln()).exp();
    if key < 0 { -v } else { v }
}

/// Counts by encoded key of some numbers, with their exact count, minimum and maximum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    counts: BTreeMap<i64, i64>,
    n: i64,
    min: f64,
    max: f64,
}

impl Sketch {
    /// Adds one number.
    pub fn add(&mut self, x: f64) {
        self.note_range(x, x);
        *self.counts.entry(key(x)).or_default() += 1;
        self.n += 1;
    }

    fn note_range(&mut self, min: f64, max: f64) {
        if self.n == 0 || min < self.min {
            self.min = min;
        }
        if self.n == 0 || max > self.max {
            self.max = max;
        }
    }

    /// Adds the numbers of a rollup row: `n` of them between `min` and `max`, with the
    /// row's packed sketch, or none when it holds at most two numbers (its minimum, and
    /// its maximum if there are two: all there is to know).
    pub fn add_row(&mut self, n: i64, min: f64, max: f64, packed: Option<&[i64]>) {
        if n <= 0 {
            return;
        }
        self.note_range(min, max);
        match packed {
            Some(elements) => {
                for e in elements {
                    *self.counts.entry(e >> COUNT_BITS).or_default() += e & COUNT_MASK;
                }
            }
            None => {
                *self.counts.entry(key(min)).or_default() += 1;
                if n >= 2 {
                    *self.counts.entry(key(max)).or_default() += 1;
                }
            }
        }
        self.n += n;
    }

    /// How many numbers.
    pub fn len(&self) -> i64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The sketch as stored: `None` for at most two numbers (a row's minimum and maximum
    /// say as much), else the packed elements in key order.
    pub fn packed(&self) -> Option<Vec<i64>> {
        (self.n > 2).then(|| {
            self.counts
                .iter()
                .map(|(k, c)| (k << COUNT_BITS) | c)
                .collect()
        })
    }

    /// The value of the number of rank `r` (from 0, in ascending order): exact for the
    /// first and the last, else its bucket's value.
    fn at_rank(&self, r: i64) -> f64 {
        if r <= 0 {
            return self.min;
        }
        if r >= self.n - 1 {
            return self.max;
        }
        let mut seen = 0;
        for (k, c) in &self.counts {
            seen += c;
            if seen > r {
                return value_of(*k);
            }
        }
        self.max
    }

    /// The `q` quantile (0 ≤ q ≤ 1) as `percentile_cont` ranks it: between the numbers of
    /// ranks ⌊q(n−1)⌋ and ⌈q(n−1)⌉, each estimated from its bucket, and kept within the
    /// exact minimum and maximum. Within α of a value between those two numbers.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let pos = q.clamp(0.0, 1.0) * (self.n - 1) as f64;
        let (lo, hi) = (pos.floor(), pos.ceil());
        let a = self.at_rank(lo as i64);
        let v = if hi > lo {
            let b = self.at_rank(hi as i64);
            a + (b - a) * (pos - lo)
        } else {
            a
        };
        Some(v.clamp(self.min, self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_sort_as_numbers_and_buckets_are_within_alpha() {
        let xs = [
            -f64::MAX,
            -1e300,
            -2.5,
            -1.0,
            -1e-300,
            -5e-324,
            0.0,
            5e-324,
            1e-300,
            0.1,
            1.0,
            1.0202,
            2.5,
            1e300,
            f64::MAX,
        ];
        for w in xs.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{w:?}");
        }
        for x in xs {
            let v = value_of(key(x));
            assert!(
                (v - x).abs() <= RELATIVE_ACCURACY * x.abs() * (1.0 + 1e-12),
                "{x}: {v}"
            );
        }
        assert_eq!(key(-0.0), 0);
        assert!(key(f64::MAX) < OFFSET * 2 && key(5e-324) > 0);
    }

    #[test]
    fn small_rows_are_not_stored_and_merge_from_min_and_max() {
        let mut a = Sketch::default();
        a.add(3.0);
        a.add(-2.0);
        assert_eq!(a.packed(), None);
        let mut b = Sketch::default();
        b.add_row(2, -2.0, 3.0, None);
        assert_eq!(a, b);
        a.add(0.0);
        let packed = a.packed().unwrap();
        assert_eq!(packed.len(), 3);
        let mut c = Sketch::default();
        c.add_row(3, -2.0, 3.0, Some(&packed));
        assert_eq!(a, c);
        assert_eq!(c.quantile(0.5), Some(0.0));
        assert_eq!(c.quantile(0.0), Some(-2.0));
        assert_eq!(c.quantile(1.0), Some(3.0));
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    /// percentile_cont's bracketing numbers of rank q(n−1).
    fn bracket(sorted: &[f64], q: f64) -> (f64, f64) {
        let pos = q * (sorted.len() - 1) as f64;
        (sorted[pos.floor() as usize], sorted[pos.ceil() as usize])
    }

    fn within(v: f64, lo: f64, hi: f64) -> bool {
        let nearest = v.clamp(lo, hi);
        (v - nearest).abs() <= RELATIVE_ACCURACY * nearest.abs() * (1.0 + 1e-12)
    }

    proptest! {
        /// Split into parts sketched apart and merged (as rollup rows are), any quantile
        /// is within α of a value between the numbers that bracket its rank.
        #[test]
        fn merged_quantiles_keep_the_guarantee(
            xs in prop::collection::vec(
                prop_oneof![
                    -1e6f64..1e6,
                    Just(0.0),
                    (-300i32..300).prop_map(|e| 10f64.powi(e)),
                    (-300i32..300).prop_map(|e| -(10f64.powi(e))),
                    (0u32..20).prop_map(f64::from),
                ],
                1..300,
            ),
            cuts in prop::collection::vec(0usize..300, 0..6),
            q in 0.0f64..=1.0,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % xs.len()).collect();
            cuts.push(0);
            cuts.push(xs.len());
            cuts.sort();
            let mut merged = Sketch::default();
            for w in cuts.windows(2) {
                let part = &xs[w[0]..w[1]];
                let mut s = Sketch::default();
                part.iter().for_each(|x| s.add(*x));
                if !s.is_empty() {
                    merged.add_row(s.n, s.min, s.max, s.packed().as_deref());
                }
            }
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            let (lo, hi) = bracket(&sorted, q);
            let v = merged.quantile(q).unwrap();
            prop_assert!(within(v, lo, hi), "q {q}: {v} not within 1% of [{lo}, {hi}]");
        }
    }
}
