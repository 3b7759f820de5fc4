//! Downsampling a series to at most `max_points` points, for charts of long ranges:
//! [`MaxPoints`], the validated parameter; [`lttb`], Largest-Triangle-Three-Buckets for
//! series with a number; [`even`], evenly spaced points for the others.
//!
//! Both pickers are streaming: told the series' length up front, they take its points
//! once, in order, and keep O(1) state, so a caller reading the points from storage in
//! batches holds a batch at a time however long the series.

pub mod even;
pub mod lttb;

use std::fmt;

/// `max_points`: the most points kept per series, from [`MaxPoints::MIN`] (LTTB keeps
/// the first and the last point and one per bucket, so fewer than three cannot be
/// chosen that way) to [`MaxPoints::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaxPoints(u32);

impl MaxPoints {
    /// The least `max_points`: the first point, the last point and one bucket.
    pub const MIN: u32 = 3;
    /// The most `max_points`: a chart needs no more, and it bounds the answer.
    pub const MAX: u32 = 100_000;

    /// Parses the parameter's text: a whole number from [`Self::MIN`] to [`Self::MAX`].
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().parse::<u32>() {
            Ok(n) if (Self::MIN..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(format!(
                "Must be a whole number from {} to {}.",
                Self::MIN,
                Self::MAX
            )),
        }
    }

    /// The value, at least [`Self::MIN`].
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MaxPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<u32> for MaxPoints {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        Self::parse(&n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_points_is_a_whole_number_from_3_to_100000() {
        assert_eq!(MaxPoints::parse("3").map(MaxPoints::get), Ok(3));
        assert_eq!(
            MaxPoints::parse(" 100000 ").map(MaxPoints::get),
            Ok(100_000)
        );
        for bad in [
            "",
            "0",
            "1",
            "2",
            "-5",
            "100001",
            "1e3",
            "3.0",
            "x",
            "99999999999",
        ] {
            let e = MaxPoints::parse(bad).unwrap_err();
            assert!(e.contains("3 to 100000"), "{bad}: {e}");
        }
        assert!(MaxPoints::try_from(2).is_err());
        assert_eq!(MaxPoints::try_from(10).unwrap().to_string(), "10");
    }
}
