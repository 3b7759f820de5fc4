//! Timestamps as the API accepts them: RFC 3339 with a zone, within years 1900–2200,
//! kept to microseconds (PostgreSQL's precision), never a leap second.

use chrono::{DateTime, Datelike, DurationRound, NaiveDate, TimeDelta, Timelike, Utc};

/// The first accepted year.
pub const MIN_YEAR: i32 = 1900;
/// The last accepted year.
pub const MAX_YEAR: i32 = 2200;

/// The message for a time whose second is 60.
pub const LEAP_SECOND: &str = "Leap seconds (second 60) are not accepted.";

/// Why a time was refused.
enum TimeError {
    /// Not RFC 3339 with a zone.
    Format,
    /// Well-formed, but refused for the reason given.
    Refused(String),
}

/// Parses an RFC 3339 timestamp with an explicit zone (`Z` or `±hh:mm`).
pub fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    rfc3339(s).map_err(|e| match e {
        TimeError::Format => format!(
            "'{}' is not an RFC 3339 timestamp with a time zone, e.g. 2025-01-01T00:01:00Z.",
            shorten(s)
        ),
        TimeError::Refused(m) => m,
    })
}

fn rfc3339(s: &str) -> Result<DateTime<Utc>, TimeError> {
    let t = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| TimeError::Format)?;
    // chrono keeps a leap second as a nanosecond count of 1e9 or more. PostgreSQL has no
    // leap seconds: such a time would be stored as the next second (`23:59:60` as the
    // next day's `00:00:00`, colliding with a real point) or fail to convert at all.
    if t.nanosecond() >= 1_000_000_000 {
        return Err(TimeError::Refused(LEAP_SECOND.into()));
    }
    in_range(t.with_timezone(&Utc)).map_err(TimeError::Refused)
}

/// Parses RFC 3339, or a bare `YYYY-MM-DD` date meaning midnight UTC (query parameters).
pub fn parse_time_param(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d
            .and_hms_opt(0, 0, 0)
            .map(|n| n.and_utc())
            .ok_or("invalid date")?;
        return in_range(t);
    }
    rfc3339(s).map_err(|e| match e {
        TimeError::Format => format!(
            "'{}' is neither an RFC 3339 timestamp with a time zone nor a YYYY-MM-DD date.",
            shorten(s)
        ),
        TimeError::Refused(m) => m,
    })
}

fn in_range(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if !(MIN_YEAR..=MAX_YEAR).contains(&t.year()) {
        return Err(format!(
            "Time {} lies outside the accepted years {MIN_YEAR}–{MAX_YEAR}.",
            t.to_rfc3339()
        ));
    }
    Ok(t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t))
}

/// Formats a time as the API writes it: RFC 3339 in UTC with `Z`, microseconds only when
/// they are not zero.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 64 {
        format!("{}…", s.chars().take(64).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zoned_rfc3339_and_normalises_to_utc() {
        let t = parse_rfc3339("2025-01-01T02:01:00+02:00").unwrap();
        assert_eq!(format_utc(t), "2025-01-01T00:01:00Z");
        let t = parse_rfc3339("2025-01-01T00:00:00.1234567Z").unwrap();
        assert_eq!(format_utc(t), "2025-01-01T00:00:00.123456Z");
    }

    #[test]
    fn rejects_missing_zone_garbage_and_out_of_range_years() {
        assert!(parse_rfc3339("2025-01-01T00:00:00").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
        assert!(
            parse_rfc3339("1899-12-31T23:59:59Z")
                .unwrap_err()
                .contains("1900")
        );
        assert!(parse_rfc3339("2201-01-01T00:00:00Z").is_err());
        assert!(parse_rfc3339("2200-12-31T23:59:59Z").is_ok());
    }

    #[test]
    fn query_times_also_take_dates() {
        assert_eq!(
            format_utc(parse_time_param("2020-03-14").unwrap()),
            "2020-03-14T00:00:00Z"
        );
        assert!(parse_time_param("2020-13-01").is_err());
    }

    #[test]
    fn leap_seconds_are_refused_with_or_without_a_fraction() {
        for t in [
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-01-01T00:59:60+01:00",
        ] {
            assert_eq!(parse_rfc3339(t), Err(LEAP_SECOND.to_string()), "{t}");
            assert_eq!(parse_time_param(t), Err(LEAP_SECOND.to_string()), "{t}");
        }
        assert!(parse_rfc3339("2016-12-31T23:59:59.999999Z").is_ok());
        // The year range is named in query parameters too.
        assert!(
            parse_time_param("1800-01-01T00:00:00Z")
                .unwrap_err()
                .contains("1900")
        );
    }
}
