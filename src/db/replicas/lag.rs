//! How far a replica is behind, in time, from WAL positions alone.
//!
//! `now() - pg_last_xact_replay_timestamp()` on the replica grows while the primary is
//! idle though nothing is missing, so the lag is measured against the primary's WAL
//! instead: each check first reads the primary's flushed position and remembers when it
//! first saw each position ([`History`]); the replica's replay position is then behind
//! by the age of the oldest sample it has not reached. That age is a lower bound of the
//! true lag, at most one check interval short of it; a replica at or past the newest
//! sample is not behind at all.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A replica's lag, as far as the samples tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Replayed at least what the primary had flushed at the newest sample, or behind
    /// by this much.
    Behind(Duration),
    /// Behind the oldest sample kept: at least this much, maybe far more.
    AtLeast(Duration),
}

/// The primary's flushed WAL positions, each with when it was first seen, for a window
/// of time (the newest is always kept).
#[derive(Debug)]
pub struct History {
    samples: VecDeque<(Instant, u64)>,
    window: Duration,
}

impl History {
    /// Keeps samples for `window`: longer than the largest lag that matters, so that a
    /// replica further behind is known to be so.
    pub fn new(window: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            window,
        }
    }

    /// Records the primary's position `lsn` as seen at `at`.
    pub fn record(&mut self, at: Instant, lsn: u64) {
        if self.samples.back().is_none_or(|&(_, last)| lsn > last) {
            self.samples.push_back((at, lsn));
        }
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|&(t, _)| at.saturating_duration_since(t) > self.window)
        {
            self.samples.pop_front();
        }
    }

    /// The lag of a replica that has replayed up to `replay`, at `now`; `None` before
    /// the first sample.
    pub fn lag(&self, replay: u64, now: Instant) -> Option<Lag> {
        let first_unreached = self.samples.iter().position(|&(_, lsn)| lsn > replay);
        match first_unreached {
            None if self.samples.is_empty() => None,
            None => Some(Lag::Behind(Duration::ZERO)),
            Some(0) => Some(Lag::AtLeast(
                now.saturating_duration_since(self.samples[0].0),
            )),
            Some(i) => Some(Lag::Behind(
                now.saturating_duration_since(self.samples[i].0),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_idle_primary_makes_no_lag() {
        let t0 = Instant::now();
        let mut h = History::new(1000 * MS);
        assert_eq!(h.lag(10, t0), None);
        h.record(t0, 100);
        // The same position for an hour: one sample, the oldest, kept.
        for s in 1..3600 {
            h.record(t0 + Duration::from_secs(s), 100);
        }
        let now = t0 + Duration::from_secs(3600);
        assert_eq!(h.lag(100, now), Some(Lag::Behind(Duration::ZERO)));
        // A replica that never reached that position is at least an hour behind.
        assert_eq!(
            h.lag(99, now),
            Some(Lag::AtLeast(Duration::from_secs(3600)))
        );
    }

    #[test]
    fn the_lag_is_the_age_of_the_oldest_position_not_replayed() {
        let t0 = Instant::now();
        let mut h = History::new(1000 * MS);
        for (i, lsn) in [100, 200, 300, 400].into_iter().enumerate() {
            h.record(t0 + 250 * MS * i as u32, lsn);
        }
        let now = t0 + 800 * MS;
        assert_eq!(h.lag(400, now), Some(Lag::Behind(Duration::ZERO)));
        assert_eq!(h.lag(350, now), Some(Lag::Behind(50 * MS)));
        assert_eq!(h.lag(300, now), Some(Lag::Behind(50 * MS)));
        assert_eq!(h.lag(250, now), Some(Lag::Behind(300 * MS)));
        assert_eq!(h.lag(150, now), Some(Lag::Behind(550 * MS)));
        // Before the first sample: how far before is unknown.
        assert_eq!(h.lag(50, now), Some(Lag::AtLeast(800 * MS)));
    }

    #[test]
    fn samples_older_than_the_window_go_but_the_newest_stays() {
        let t0 = Instant::now();
        let mut h = History::new(500 * MS);
        for i in 0..10u32 {
            h.record(t0 + 100 * MS * i, u64::from(i) * 10);
        }
        // Kept: 400 ms .. 900 ms.
        assert_eq!(h.samples.len(), 6);
        let now = t0 + 900 * MS;
        // Stuck at 10 (reached at 100 ms): no sample reaches back that far.
        assert_eq!(h.lag(10, now), Some(Lag::AtLeast(500 * MS)));
        assert_eq!(h.lag(45, now), Some(Lag::Behind(400 * MS)));
        h.record(t0 + Duration::from_secs(60), 90);
        assert_eq!(h.samples.len(), 1);
    }
}
