//! Bucket widths (`interval`) and the bucket arithmetic the query path needs in Rust
//! (gap filling); SQL does the same arithmetic with `date_bin` / `date_trunc`.
//!
//! Fixed widths align like TimescaleDB's `time_bucket`: on 2000-01-03T00:00:00Z, a Monday.
//! `day`, `week`, `month`, `quarter` and `year` are calendar buckets, in UTC or in the
//! query's `tz`.

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// 2000-01-03T00:00:00Z, a Monday (TimescaleDB's `time_bucket` origin): the origin of
/// fixed-width buckets and of the weekly partitions.
pub const ORIGIN_SECS: i64 = 946_857_600;

/// [`ORIGIN_SECS`] as SQL's `date_bin` takes it.
pub const ORIGIN_RFC3339: &str = "2000-01-03T00:00:00Z";

/// A calendar unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalendarUnit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl CalendarUnit {
    /// PostgreSQL's `date_trunc` field.
    pub fn sql_field(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }
}

/// The widest fixed width: 36,525 days (100 years). Accepted times span 1900–2200, so a
/// wider bucket says nothing more, and bucket arithmetic (here and in PostgreSQL, whose
/// intervals stop near 290,000 years) stays far from overflowing.
pub const MAX_FIXED_SECS: i64 = 36_525 * 86_400;

/// Why a text is not a width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WidthError {
    /// Not `<n><unit>`.
    NotAWidth,
    Zero,
    /// Longer than [`MAX_FIXED_SECS`].
    TooLong,
}

/// A width `<n>s`, `<n>m`, `<n>h`, `<n>d` or `<n>w` (`30s`, `90m`, `3d`) in seconds: a
/// whole number of at most 9 digits, more than zero, at most [`MAX_FIXED_SECS`].
pub fn parse_width(s: &str) -> Result<i64, WidthError> {
    let s = s.trim();
    let unit = s.chars().last().ok_or(WidthError::NotAWidth)?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 9 {
        return Err(WidthError::NotAWidth);
    }
    let n: i64 = digits.parse().map_err(|_| WidthError::NotAWidth)?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(WidthError::NotAWidth),
    };
    match n * secs {
        0 => Err(WidthError::Zero),
        w if w > MAX_FIXED_SECS => Err(WidthError::TooLong),
        w => Ok(w),
    }
}

/// The bucket width of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// A fixed number of seconds, aligned on the origin.
    Fixed(i64),
    /// A calendar unit, following a zone's calendar.
    Calendar(CalendarUnit),
}

impl Interval {
    /// Parses the seed's names (`min`, `week`, ...) and fixed widths (`30s`, `5m`, `3h`,
    /// `5d`, `2w`).
    pub fn parse(s: &str) -> Result<Self, String> {
        use CalendarUnit::*;
        let s = s.trim();
        let named = match s.to_ascii_lowercase().as_str() {
            "sec" | "second" => Some(Self::Fixed(1)),
            "min" | "minute" => Some(Self::Fixed(60)),
            "hour" => Some(Self::Fixed(3600)),
            "day" => Some(Self::Calendar(Day)),
            "week" => Some(Self::Calendar(Week)),
            "month" => Some(Self::Calendar(Month)),
            "quarter" => Some(Self::Calendar(Quarter)),
            "year" => Some(Self::Calendar(Year)),
            _ => None,
        };
        if let Some(i) = named {
            return Ok(i);
        }
        let err = || {
            format!(
                "'{s}' is not an interval: use sec, min, hour, day, week, month, quarter, year, \
                 or a width like 30s, 5m, 3h, 5d, 2w."
            )
        };
        match parse_width(s) {
            Ok(secs) => Ok(Self::Fixed(secs)),
            Err(WidthError::NotAWidth) => Err(err()),
            Err(WidthError::Zero) => Err(format!("Interval '{s}' must be longer than zero.")),
            Err(WidthError::TooLong) => Err(format!(
                "Interval '{s}' is longer than the maximum of {}d (100 years).",
                MAX_FIXED_SECS / 86_400
            )),
        }
    }

    /// How many buckets a query over `start..=end` answers per series: from the bucket
    /// holding `start` to the bucket holding `end`, both included (queries bound time
    /// inclusively at both ends), as [`crate::domain::gap_fill::bucket_range`] lists
    /// them. Counted, not listed, so a huge range costs nothing; 0 when `end < start`.
    pub fn bucket_count(self, start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> i64 {
        if end < start {
            return 0;
        }
        let index = |t: DateTime<Utc>| -> i64 {
            match self {
                Self::Fixed(w) => (t.timestamp() - ORIGIN_SECS).div_euclid(w),
                Self::Calendar(unit) => {
                    let day = t.with_timezone(&tz).date_naive();
                    let months = i64::from(day.year()) * 12 + i64::from(day.month0());
                    match unit {
                        CalendarUnit::Day => i64::from(day.num_days_from_ce()),
                        // Weeks start on Monday; day 1 of the common era was a Monday.
                        CalendarUnit::Week => i64::from(day.num_days_from_ce() - 1).div_euclid(7),
                        CalendarUnit::Month => months,
                        CalendarUnit::Quarter => months.div_euclid(3),
                        CalendarUnit::Year => i64::from(day.year()),
                    }
                }
            }
        };
        index(end) - index(start) + 1
    }

    /// The canonical name, as metadata and cache keys show it.
    pub fn canonical(self) -> String {
        match self {
            Self::Fixed(s) if s % 604_800 == 0 => format!("{}w", s / 604_800),
            Self::Fixed(s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
            Self::Fixed(s) if s % 3600 == 0 => format!("{}h", s / 3600),
            Self::Fixed(s) if s % 60 == 0 => format!("{}m", s / 60),
            Self::Fixed(s) => format!("{s}s"),
            Self::Calendar(u) => u.sql_field().to_string(),
        }
    }

    /// The start of the bucket holding `t`.
    pub fn floor(self, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        match self {
            Self::Fixed(w) => {
                let k = (t.timestamp() - ORIGIN_SECS).div_euclid(w);
                DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(ORIGIN_SECS + k * w)
            }
            Self::Calendar(unit) => {
                let local = t.with_timezone(&tz).date_naive();
                let day = match unit {
                    CalendarUnit::Day => local,
                    CalendarUnit::Week => {
                        local - TimeDelta::days(i64::from(local.weekday().num_days_from_monday()))
                    }
                    CalendarUnit::Month => local.with_day(1).unwrap_or(local),
                    CalendarUnit::Quarter => {
                        let m = (local.month0() / 3) * 3 + 1;
                        NaiveDate::from_ymd_opt(local.year(), m, 1).unwrap_or(local)
                    }
                    CalendarUnit::Year => {
                        NaiveDate::from_ymd_opt(local.year(), 1, 1).unwrap_or(local)
                    }
                };
                local_midnight(day, tz)
            }
        }
    }

    /// The start of the bucket after the one starting at `bucket`.
    pub fn next(self, bucket: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        match self {
            Self::Fixed(w) => bucket + TimeDelta::seconds(w),
            Self::Calendar(unit) => {
                let local = bucket.with_timezone(&tz).date_naive();
                let day = match unit {
                    CalendarUnit::Day => local + TimeDelta::days(1),
                    CalendarUnit::Week => local + TimeDelta::days(7),
                    CalendarUnit::Month => local + Months::new(1),
                    CalendarUnit::Quarter => local + Months::new(3),
                    CalendarUnit::Year => local + Months::new(12),
                };
                local_midnight(day, tz)
            }
        }
    }
}

/// The first instant of `day` in `tz` (midnight, or the first valid time after a gap).
fn local_midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let mut candidate = midnight;
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&candidate).earliest() {
            return t.with_timezone(&Utc);
        }
        candidate += TimeDelta::hours(1);
    }
    midnight.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_one_instant_in_both_spellings() {
        let origin = DateTime::parse_from_rfc3339(ORIGIN_RFC3339).unwrap();
        assert_eq!(origin.timestamp(), ORIGIN_SECS);
        assert_eq!(origin.weekday(), chrono::Weekday::Mon);
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_names_and_widths() {
        assert_eq!(Interval::parse("min"), Ok(Interval::Fixed(60)));
        assert_eq!(Interval::parse("second"), Ok(Interval::Fixed(1)));
        assert_eq!(Interval::parse("30s"), Ok(Interval::Fixed(30)));
        assert_eq!(Interval::parse("5d"), Ok(Interval::Fixed(432_000)));
        assert_eq!(Interval::parse("2w"), Ok(Interval::Fixed(1_209_600)));
        assert_eq!(
            Interval::parse("month"),
            Ok(Interval::Calendar(CalendarUnit::Month))
        );
        for bad in [
            "",
            "0s",
            "5x",
            "fortnight",
            "-5m",
            "5",
            "1.5h",
            "99999999999s",
            "999999999w",
            "36526d",
            "5218w",
        ] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Interval::parse("36525d"),
            Ok(Interval::Fixed(MAX_FIXED_SECS))
        );
    }

    #[test]
    fn fixed_buckets_align_on_the_origin_even_before_1970() {
        let five_days = Interval::Fixed(432_000);
        // Seed 001: TIME_BUCKET("5d") puts 2020-03-14 and 2020-03-15 in the bucket of 2020-03-13.
        assert_eq!(
            five_days.floor(utc("2020-03-14T13:00:33Z"), Tz::UTC),
            utc("2020-03-13T00:00:00Z")
        );
        assert_eq!(
            five_days.floor(utc("2020-03-15T13:00:36Z"), Tz::UTC),
            utc("2020-03-13T00:00:00Z")
        );
        // Same as PostgreSQL: date_bin('5 days', '1960-01-01', '2000-01-03').
        assert_eq!(
            five_days.floor(utc("1960-01-01T00:00:00Z"), Tz::UTC),
            utc("1959-12-29T00:00:00Z")
        );
        let three = Interval::Fixed(3);
        assert_eq!(
            three.floor(utc("2020-03-14T13:00:35Z"), Tz::UTC),
            utc("2020-03-14T13:00:33Z")
        );
    }

    #[test]
    fn calendar_buckets_follow_the_zone_across_dst() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let day = Interval::Calendar(CalendarUnit::Day);
        // 2024-03-10 is 23 hours long in New York.
        let b = day.floor(utc("2024-03-10T12:00:00Z"), ny);
        assert_eq!(b, utc("2024-03-10T05:00:00Z"));
        assert_eq!(day.next(b, ny), utc("2024-03-11T04:00:00Z"));
        let month = Interval::Calendar(CalendarUnit::Month);
        assert_eq!(
            month.floor(utc("2024-02-29T23:00:00Z"), Tz::UTC),
            utc("2024-02-01T00:00:00Z")
        );
        assert_eq!(
            month.next(utc("2024-02-01T00:00:00Z"), Tz::UTC),
            utc("2024-03-01T00:00:00Z")
        );
        let week = Interval::Calendar(CalendarUnit::Week);
        assert_eq!(
            week.floor(utc("2024-03-10T12:00:00Z"), ny),
            utc("2024-03-04T05:00:00Z")
        );
        let quarter = Interval::Calendar(CalendarUnit::Quarter);
        assert_eq!(
            quarter.floor(utc("2024-08-15T00:00:00Z"), Tz::UTC),
            utc("2024-07-01T00:00:00Z")
        );
    }

    #[test]
    fn bucket_counts_are_the_buckets_a_query_lists() {
        use crate::domain::gap_fill::bucket_range;
        let zones: [Tz; 3] = [
            Tz::UTC,
            "America/New_York".parse().unwrap(),
            "Australia/Lord_Howe".parse().unwrap(),
        ];
        let intervals = [
            Interval::Fixed(1),
            Interval::Fixed(7),
            Interval::Fixed(3600),
            Interval::Fixed(432_000),
            Interval::Calendar(CalendarUnit::Day),
            Interval::Calendar(CalendarUnit::Week),
            Interval::Calendar(CalendarUnit::Month),
            Interval::Calendar(CalendarUnit::Quarter),
            Interval::Calendar(CalendarUnit::Year),
        ];
        let starts = [
            utc("1969-12-31T23:59:59.5Z"),
            utc("2024-03-09T22:30:00Z"),
            utc("2024-10-31T12:00:00.000001Z"),
            utc("2000-01-03T00:00:00Z"),
        ];
        let lengths = [
            0, 1, 59, 3600, 86_399, 86_400, 400_000, 8_000_000, 40_000_000,
        ];
        for tz in zones {
            for i in intervals {
                for start in starts {
                    for secs in lengths {
                        for end in [
                            start + TimeDelta::seconds(secs),
                            start + TimeDelta::seconds(secs) - TimeDelta::microseconds(1),
                        ] {
                            if end < start || (matches!(i, Interval::Fixed(1 | 7)) && secs > 86_400)
                            {
                                continue;
                            }
                            assert_eq!(
                                i.bucket_count(start, end, tz),
                                bucket_range(i, tz, start, end).len() as i64,
                                "{i:?} {tz} {start} {end}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(
            Interval::Fixed(60).bucket_count(starts[1], starts[0], Tz::UTC),
            0
        );
    }

    #[test]
    fn ten_thousand_seconds_hold_ten_thousand_and_one_one_second_buckets() {
        // Both ends are inclusive: T..=T+9,999 s is 10,000 buckets, T..=T+10,000 s one more.
        let sec = Interval::parse("1s").unwrap();
        let t = utc("2025-01-01T00:00:00Z");
        assert_eq!(
            sec.bucket_count(t, t + TimeDelta::seconds(9_999), Tz::UTC),
            10_000
        );
        let just_under = t + TimeDelta::seconds(10_000) - TimeDelta::microseconds(1);
        assert_eq!(sec.bucket_count(t, just_under, Tz::UTC), 10_000);
        assert_eq!(
            sec.bucket_count(t, t + TimeDelta::seconds(10_000), Tz::UTC),
            10_001
        );
        // A start inside a bucket counts that whole bucket.
        let mid = t + TimeDelta::milliseconds(500);
        assert_eq!(
            sec.bucket_count(mid, t + TimeDelta::seconds(9_999), Tz::UTC),
            10_000
        );
        assert_eq!(
            sec.bucket_count(mid, mid + TimeDelta::seconds(9_999), Tz::UTC),
            10_000
        );
        assert_eq!(
            sec.bucket_count(mid, mid + TimeDelta::seconds(10_000), Tz::UTC),
            10_001
        );
    }
}
