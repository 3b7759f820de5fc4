//! The times a write may carry: a window around now (`WRITE_WINDOW_PAST_DAYS`,
//! `WRITE_WINDOW_FUTURE_DAYS`). Every week a point lands in is a partition of `points`
//! for as long as the data is kept, and reads that span many partitions cost every
//! user (planning, and locks in PostgreSQL's shared lock table), so the window bounds
//! the storage layout that writes can make. History imports widen it deliberately.

use super::timestamp::format_utc;
use chrono::{DateTime, TimeDelta, Utc};

/// How far from now a written point's time may lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteWindow {
    pub past_days: u32,
    pub future_days: u32,
}

impl WriteWindow {
    /// The earliest and latest accepted times at `now` (a window wider than chrono's
    /// range reaches its end).
    pub fn bounds(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let days = |d: u32| TimeDelta::try_days(i64::from(d)).unwrap_or(TimeDelta::MAX);
        (
            now.checked_sub_signed(days(self.past_days))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            now.checked_add_signed(days(self.future_days))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// `Err` with the message for the first time outside the window at `now`.
    pub fn check<I>(&self, times: I, now: DateTime<Utc>) -> Result<(), String>
    where
        I: IntoIterator<Item = DateTime<Utc>>,
    {
        let (earliest, latest) = self.bounds(now);
        for t in times {
            if t < earliest {
                return Err(format!(
                    "Point time {} is more than {} days in the past (WRITE_WINDOW_PAST_DAYS).",
                    format_utc(t),
                    self.past_days
                ));
            }
            if t > latest {
                return Err(format!(
                    "Point time {} is more than {} days in the future (WRITE_WINDOW_FUTURE_DAYS).",
                    format_utc(t),
                    self.future_days
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_outside_the_window_are_named_with_their_setting() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
        let w = WriteWindow {
            past_days: 10,
            future_days: 1,
        };
        let day = TimeDelta::days(1);
        assert!(w.check([now - day * 10, now, now + day], now).is_ok());
        let past = w.check([now, now - day * 10 - TimeDelta::seconds(1)], now);
        assert!(past.unwrap_err().contains("WRITE_WINDOW_PAST_DAYS"));
        let future = w.check([now + day + TimeDelta::microseconds(1)], now);
        assert!(future.unwrap_err().contains("WRITE_WINDOW_FUTURE_DAYS"));
        // Windows wider than any date: everything passes, nothing overflows.
        let wide = WriteWindow {
            past_days: u32::MAX,
            future_days: u32::MAX,
        };
        assert!(
            wide.check([now - day * 100_000, now + day * 100_000], now)
                .is_ok()
        );
    }
}
