//! Which parts of a query's range are read from monthly, daily and hourly rollups and
//! raw points.
//!
//! Every aggregate the rollups keep (count, sum, min, max, first, last) is decomposable:
//! a bucket's answer can be combined from disjoint pieces. So each bucket of the query is
//! cut into the largest pieces that are whole and fresh: whole UTC months inside the
//! bucket whose hours are all refreshed, then such whole UTC days, then whole refreshed
//! hours, then raw points for the rest
//! (the partial hours at the range's edges and the hours whose hourly rows are out of
//! date). A rollup row is only ever used for a bucket that contains it entirely.
//!
//! An hour awaits the rollup job in one of two ways (see [`Pending`]): a write that only
//! added points (new sessions) appended their partial aggregates to the hourly rollups
//! itself, so the hour is read from its hourly rows and only its day and month are read
//! by the hour; any other write (a rewrite, a deletion) leaves the hour to raw points.

use super::interval::Interval;
use chrono::{DateTime, Datelike, Months, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// The hours of a query's range awaiting the rollup job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Every hour awaiting the job: the daily and monthly rows holding it are out of
    /// date (its day and month are read by the hour).
    pub stale: BTreeSet<DateTime<Utc>>,
    /// The stale hours whose hourly rows do not add up to their points either (a write
    /// changed or removed points): read from raw points.
    pub raw: BTreeSet<DateTime<Utc>>,
}

impl Pending {
    /// Hours whose hourly rows are all out of date.
    pub fn raw(hours: BTreeSet<DateTime<Utc>>) -> Pending {
        Pending {
            stale: hours.clone(),
            raw: hours,
        }
    }
}

/// A half-open time range `[from, to)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// Half-open spans, ascending and disjoint, by where they are read from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Whole UTC months read from monthly rollups.
    pub months: Vec<Span>,
    /// Whole UTC days read from daily rollups.
    pub days: Vec<Span>,
    /// Whole hours read from hourly rollups.
    pub hours: Vec<Span>,
    /// Everything else, read from raw points.
    pub raw: Vec<Span>,
}

const HOUR_MICROS: i64 = 3_600_000_000;
const DAY_MICROS: i64 = 24 * HOUR_MICROS;

fn floor_to(t: DateTime<Utc>, unit: i64) -> DateTime<Utc> {
    t - TimeDelta::microseconds(t.timestamp_micros().rem_euclid(unit))
}

fn ceil_to(t: DateTime<Utc>, unit: i64) -> DateTime<Utc> {
    let f = floor_to(t, unit);
    if f == t {
        t
    } else {
        f + TimeDelta::microseconds(unit)
    }
}

/// The UTC hour holding `t`.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    floor_to(t, HOUR_MICROS)
}

/// The UTC day holding `t`.
pub fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
    floor_to(t, DAY_MICROS)
}

/// The UTC month holding `t`.
pub fn month_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let first = t.date_naive().with_day(1).unwrap_or(t.date_naive());
    first.and_time(NaiveTime::MIN).and_utc()
}

/// The UTC month after the one holding `t` (`DateTime::MAX_UTC` past the last one).
pub fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    month_of(t)
        .checked_add_months(Months::new(1))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Appends a span, merging it with the previous one when they touch.
fn push(spans: &mut Vec<Span>, from: DateTime<Utc>, to: DateTime<Utc>) {
    if from >= to {
        return;
    }
    match spans.last_mut() {
        Some(last) if last.1 == from => last.1 = to,
        _ => spans.push((from, to)),
    }
}

impl Plan {
    /// The plan for the range `[start, end)` bucketed by `interval` in `tz`, given the
    /// hours awaiting the rollup job. Every bucket boundary must fall on a whole UTC hour (fixed
    /// widths that are whole hours, calendar units in zones whose offsets are whole
    /// hours): the caller checks that.
    pub fn new(
        interval: Interval,
        tz: Tz,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        pending: &Pending,
    ) -> Plan {
        let mut plan = Plan::default();
        let mut b = interval.floor(start, tz);
        while b < end {
            let next = interval.next(b, tz);
            if next <= b {
                break;
            }
            plan.bucket(b.max(start), next.min(end), pending);
            b = next;
        }
        plan
    }

    /// Cuts the part `[s, e)` of one bucket into pieces.
    fn bucket(&mut self, s: DateTime<Utc>, e: DateTime<Utc>, pending: &Pending) {
        let (h0, h1) = (ceil_to(s, HOUR_MICROS), floor_to(e, HOUR_MICROS));
        if h0 >= h1 {
            push(&mut self.raw, s, e);
            return;
        }
        push(&mut self.raw, s, h0);
        let (d0, d1) = (ceil_to(h0, DAY_MICROS), floor_to(h1, DAY_MICROS));
        if d0 < d1 {
            self.hours(h0, d0, pending);
            let m0 = if month_of(d0) == d0 {
                d0
            } else {
                next_month(d0)
            };
            let m1 = month_of(d1);
            if m0 < m1 {
                self.days(d0, m0, pending);
                self.months(m0, m1, pending);
                self.days(m1, d1, pending);
            } else {
                self.days(d0, d1, pending);
            }
            self.hours(d1, h1, pending);
        } else {
            self.hours(h0, h1, pending);
        }
        push(&mut self.raw, h1, e);
    }

    /// Whole months `[a, b)`: a month with a stale hour is read by the day.
    fn months(&mut self, a: DateTime<Utc>, b: DateTime<Utc>, pending: &Pending) {
        let stale: BTreeSet<DateTime<Utc>> =
            pending.stale.range(a..b).map(|h| month_of(*h)).collect();
        let mut cursor = a;
        for month in stale {
            push(&mut self.months, cursor, month);
            let after = next_month(month);
            self.days(month, after, pending);
            cursor = after;
        }
        push(&mut self.months, cursor, b);
    }

    /// Whole days `[a, b)`: a day with a stale hour is read by the hour.
    fn days(&mut self, a: DateTime<Utc>, b: DateTime<Utc>, pending: &Pending) {
        let stale: BTreeSet<DateTime<Utc>> = pending
            .stale
            .range(a..b)
            .map(|h| floor_to(*h, DAY_MICROS))
            .collect();
        let mut cursor = a;
        for day in stale {
            push(&mut self.days, cursor, day);
            let after = day + TimeDelta::microseconds(DAY_MICROS);
            self.hours(day, after, pending);
            cursor = after;
        }
        push(&mut self.days, cursor, b);
    }

    /// Whole hours `[a, b)`: an hour whose hourly rows are out of date is read from raw
    /// points.
    fn hours(&mut self, a: DateTime<Utc>, b: DateTime<Utc>, pending: &Pending) {
        let mut cursor = a;
        for h in pending.raw.range(a..b) {
            push(&mut self.hours, cursor, *h);
            let after = *h + TimeDelta::microseconds(HOUR_MICROS);
            push(&mut self.raw, *h, after);
            cursor = after;
        }
        push(&mut self.hours, cursor, b);
    }

    /// How many spans the plan holds.
    pub fn len(&self) -> usize {
        self.months.len() + self.days.len() + self.hours.len() + self.raw.len()
    }

    /// Whether the plan reads nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any part is read from rollups.
    pub fn uses_rollups(&self) -> bool {
        !self.months.is_empty() || !self.days.is_empty() || !self.hours.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::interval::Interval;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, d, h, m, 0).unwrap()
    }

    /// The one range the plan's spans cover, checking they neither overlap nor leave gaps.
    fn covered(plan: &Plan) -> Span {
        let mut all: Vec<Span> = plan
            .months
            .iter()
            .chain(&plan.days)
            .chain(&plan.hours)
            .chain(&plan.raw)
            .copied()
            .collect();
        all.sort();
        for w in all.windows(2) {
            assert_eq!(w[0].1, w[1].0, "gap or overlap");
        }
        (all[0].0, all[all.len() - 1].1)
    }

    #[test]
    fn a_month_range_is_days_with_hour_and_raw_edges() {
        let month = Interval::parse("month").unwrap();
        let (s, e) = (t(1, 10, 30), t(20, 5, 15));
        let plan = Plan::new(month, Tz::UTC, s, e, &Pending::default());
        assert_eq!(plan.raw, vec![(s, t(1, 11, 0)), (t(20, 5, 0), e)]);
        assert_eq!(
            plan.hours,
            vec![(t(1, 11, 0), t(2, 0, 0)), (t(20, 0, 0), t(20, 5, 0))]
        );
        assert_eq!(plan.days, vec![(t(2, 0, 0), t(20, 0, 0))]);
        assert_eq!(covered(&plan), (s, e));
    }

    #[test]
    fn stale_hours_are_raw_and_their_day_is_read_by_the_hour() {
        let day = Interval::parse("day").unwrap();
        let dirty: BTreeSet<_> = [t(5, 7, 0), t(5, 8, 0)].into();
        let plan = Plan::new(day, Tz::UTC, t(1, 0, 0), t(10, 0, 0), &Pending::raw(dirty));
        assert_eq!(
            plan.days,
            vec![(t(1, 0, 0), t(5, 0, 0)), (t(6, 0, 0), t(10, 0, 0))]
        );
        assert_eq!(
            plan.hours,
            vec![(t(5, 0, 0), t(5, 7, 0)), (t(5, 9, 0), t(6, 0, 0))]
        );
        assert_eq!(plan.raw, vec![(t(5, 7, 0), t(5, 9, 0))]);
        assert_eq!(covered(&plan), (t(1, 0, 0), t(10, 0, 0)));
    }

    #[test]
    fn hours_of_appended_sessions_are_read_from_hourly_rows_and_their_month_by_the_day() {
        let month = Interval::parse("month").unwrap();
        let (s, e) = (ymdh(2024, 1, 1, 0), ymdh(2024, 4, 1, 0));
        // Feb 10 07:00 holds only appended sessions; Feb 10 09:00 a rewrite.
        let pending = Pending {
            stale: [ymdh(2024, 2, 10, 7), ymdh(2024, 2, 10, 9)].into(),
            raw: [ymdh(2024, 2, 10, 9)].into(),
        };
        let plan = Plan::new(month, Tz::UTC, s, e, &pending);
        assert_eq!(
            plan.months,
            vec![
                (ymdh(2024, 1, 1, 0), ymdh(2024, 2, 1, 0)),
                (ymdh(2024, 3, 1, 0), ymdh(2024, 4, 1, 0))
            ]
        );
        assert_eq!(
            plan.days,
            vec![
                (ymdh(2024, 2, 1, 0), ymdh(2024, 2, 10, 0)),
                (ymdh(2024, 2, 11, 0), ymdh(2024, 3, 1, 0))
            ]
        );
        assert_eq!(
            plan.hours,
            vec![
                (ymdh(2024, 2, 10, 0), ymdh(2024, 2, 10, 9)),
                (ymdh(2024, 2, 10, 10), ymdh(2024, 2, 11, 0))
            ]
        );
        assert_eq!(
            plan.raw,
            vec![(ymdh(2024, 2, 10, 9), ymdh(2024, 2, 10, 10))]
        );
        assert_eq!(covered(&plan), (s, e));
    }

    #[test]
    fn days_are_never_split_across_buckets() {
        // New York days start at 05:00Z (04:00Z in summer): no UTC day lies in one.
        let ny: Tz = "America/New_York".parse().unwrap();
        let day = Interval::parse("day").unwrap();
        let plan = Plan::new(day, ny, t(1, 5, 0), t(8, 5, 0), &Pending::default());
        assert!(plan.days.is_empty());
        assert_eq!(plan.hours, vec![(t(1, 5, 0), t(8, 5, 0))]);
        // 6-hour buckets: hours only.
        let six = Interval::parse("6h").unwrap();
        let plan = Plan::new(six, Tz::UTC, t(1, 0, 0), t(3, 0, 0), &Pending::default());
        assert!(plan.days.is_empty() && plan.raw.is_empty());
        // 2-day buckets from 2000-01-03: whole days.
        let two = Interval::parse("2d").unwrap();
        let plan = Plan::new(two, Tz::UTC, t(1, 0, 0), t(9, 0, 0), &Pending::default());
        assert_eq!(plan.days, vec![(t(1, 0, 0), t(9, 0, 0))]);
    }

    fn ymdh(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    #[test]
    fn whole_months_are_read_by_the_month() {
        let month = Interval::parse("month").unwrap();
        let s = ymdh(2024, 1, 15, 10) + TimeDelta::minutes(30);
        let e = ymdh(2024, 6, 10, 5) + TimeDelta::minutes(15);
        let plan = Plan::new(month, Tz::UTC, s, e, &Pending::default());
        assert_eq!(
            plan.months,
            vec![(ymdh(2024, 2, 1, 0), ymdh(2024, 6, 1, 0))]
        );
        assert_eq!(
            plan.days,
            vec![
                (ymdh(2024, 1, 16, 0), ymdh(2024, 2, 1, 0)),
                (ymdh(2024, 6, 1, 0), ymdh(2024, 6, 10, 0))
            ]
        );
        assert_eq!(covered(&plan), (s, e));
        // An hour awaiting refresh in April: April is read by the day, that day by the
        // hour, that hour raw.
        let dirty: BTreeSet<_> = [ymdh(2024, 4, 7, 3)].into();
        let plan = Plan::new(month, Tz::UTC, s, e, &Pending::raw(dirty));
        assert_eq!(
            plan.months,
            vec![
                (ymdh(2024, 2, 1, 0), ymdh(2024, 4, 1, 0)),
                (ymdh(2024, 5, 1, 0), ymdh(2024, 6, 1, 0))
            ]
        );
        assert!(
            plan.days
                .contains(&(ymdh(2024, 4, 1, 0), ymdh(2024, 4, 7, 0)))
        );
        assert!(
            plan.days
                .contains(&(ymdh(2024, 4, 8, 0), ymdh(2024, 5, 1, 0)))
        );
        assert!(
            plan.raw
                .contains(&(ymdh(2024, 4, 7, 3), ymdh(2024, 4, 7, 4)))
        );
        assert_eq!(covered(&plan), (s, e));
    }

    #[test]
    fn months_inside_zoned_or_short_buckets() {
        // A New York year starts at 05:00Z: February to December (UTC) lie inside it.
        let ny: Tz = "America/New_York".parse().unwrap();
        let year = Interval::parse("year").unwrap();
        let (s, e) = (ymdh(2024, 1, 1, 5), ymdh(2025, 1, 1, 5));
        let plan = Plan::new(year, ny, s, e, &Pending::default());
        assert_eq!(
            plan.months,
            vec![(ymdh(2024, 2, 1, 0), ymdh(2025, 1, 1, 0))]
        );
        assert_eq!(plan.days, vec![(ymdh(2024, 1, 2, 0), ymdh(2024, 2, 1, 0))]);
        assert_eq!(covered(&plan), (s, e));
        // Weeks never hold a whole month.
        let week = Interval::parse("week").unwrap();
        let plan = Plan::new(week, Tz::UTC, s, e, &Pending::default());
        assert!(plan.months.is_empty());
        assert_eq!(covered(&plan), (s, e));
    }

    #[test]
    fn month_arithmetic() {
        assert_eq!(month_of(ymdh(2024, 2, 29, 23)), ymdh(2024, 2, 1, 0));
        assert_eq!(next_month(ymdh(2024, 12, 31, 23)), ymdh(2025, 1, 1, 0));
        assert_eq!(next_month(ymdh(2024, 1, 1, 0)), ymdh(2024, 2, 1, 0));
    }

    #[test]
    fn a_range_inside_one_hour_is_raw() {
        let hour = Interval::parse("hour").unwrap();
        let plan = Plan::new(
            hour,
            Tz::UTC,
            t(1, 10, 5),
            t(1, 10, 50),
            &Pending::default(),
        );
        assert_eq!(plan.raw, vec![(t(1, 10, 5), t(1, 10, 50))]);
        assert!(!plan.uses_rollups());
    }
}
