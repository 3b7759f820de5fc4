//! Evenly spaced points, for series LTTB cannot weigh (strings, other JSON): of `n`
//! points kept to `max`, the points at indices `⌊i·(n - 1)/(max - 1)⌋` for `i` in
//! `0..max`, so the first and the last are kept and the others spread by position.

use super::MaxPoints;

/// Decides, point by point in index order, which points of a series of `len` to keep.
#[derive(Debug, Clone)]
pub struct Even {
    len: u64,
    threshold: u64,
    /// The index of the next point.
    index: u64,
    /// How many were kept so far, and the index of the next to keep.
    kept: u64,
    next: u64,
}

impl Even {
    pub fn new(len: u64, max: MaxPoints) -> Self {
        Self {
            len,
            threshold: u64::from(max.get()),
            index: 0,
            kept: 0,
            next: 0,
        }
    }

    /// How many points are kept.
    pub fn kept(&self) -> u64 {
        self.len.min(self.threshold)
    }

    /// The index of the `i`th point kept.
    fn pick(&self, i: u64) -> u64 {
        if self.len <= self.threshold {
            return i;
        }
        let step = u128::from(i) * u128::from(self.len - 1) / u128::from(self.threshold - 1);
        u64::try_from(step).unwrap_or(u64::MAX)
    }

    /// Whether the next point is kept; points past `len` never are.
    pub fn keep_next(&mut self) -> bool {
        let k = self.index;
        self.index += 1;
        if k >= self.len || self.kept >= self.kept() || k != self.next {
            return false;
        }
        self.kept += 1;
        self.next = self.pick(self.kept);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kept(len: u64, max: u32, offered: u64) -> Vec<u64> {
        let mut even = Even::new(len, MaxPoints::try_from(max).unwrap());
        (0..offered).filter(|_| even.keep_next()).collect()
    }

    #[test]
    fn spreads_by_position_keeping_both_ends() {
        assert_eq!(kept(10, 4, 10), [0, 3, 6, 9]);
        assert_eq!(kept(3, 5, 3), [0, 1, 2]);
        assert_eq!(kept(0, 5, 0), Vec::<u64>::new());
        // More points than counted are left out; fewer end early.
        assert_eq!(kept(10, 4, 20), [0, 3, 6, 9]);
        assert_eq!(kept(10, 4, 5), [0, 3]);
    }

    proptest! {
        #[test]
        fn even_keeps_min_of_len_and_max_with_both_ends(len in 0u64..5000, max in 3u32..500) {
            let got = kept(len, max, len);
            prop_assert_eq!(got.len() as u64, len.min(u64::from(max)));
            if len > 0 {
                prop_assert_eq!(got.first(), Some(&0));
                prop_assert_eq!(got.last(), Some(&(len - 1)));
            }
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
