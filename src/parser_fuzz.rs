//! Property-based fuzzing (proptest) of everything that parses what a client sends:
//! `interval`, times, `series` patterns, the whole `GET /api/timeseries/` parameter
//! set, cursors, the JSON nesting scan and the `Authorization` header.
//!
//! Each property runs 256 generated cases inside `make test`; `make fuzz` runs the same
//! properties (the tests named `fuzz_*`) with many more cases under a time bound
//! (`PROPTEST_CASES`, `FUZZ_SECONDS`), and CI calls it. A failing case is shrunk and
//! saved under `proptest-regressions/`, so it is replayed on every later run.

use crate::auth::credentials;
use crate::domain::api_token::TOKEN_LEN;
use crate::domain::interval::{CalendarUnit, Interval, MAX_FIXED_SECS};
use crate::domain::json_depth;
use crate::domain::query::{PatternLimits, SeriesPatterns};
use crate::domain::timestamp::{MAX_YEAR, MIN_YEAR, format_utc, parse_time_param};
use crate::routes::timeseries::parse_params;
use crate::services::retrieval::PointKey;
use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use std::collections::HashMap;

/// Seconds from 1900-01-01 to 2200-12-31, the accepted range.
const FIRST: i64 = -2_208_988_800;
const LAST: i64 = 7_289_654_399;

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    (FIRST..=LAST, 0u32..1_000_000_000).prop_map(|(s, ns)| {
        DateTime::<Utc>::from_timestamp(s, ns).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    })
}

fn any_zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(vec![
        Tz::UTC,
        Tz::America__New_York,
        Tz::Europe__Paris,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Kathmandu,
        Tz::Pacific__Apia,
        Tz::America__Sao_Paulo,
    ])
}

fn any_interval() -> impl Strategy<Value = Interval> {
    prop_oneof![
        (1..=MAX_FIXED_SECS).prop_map(Interval::Fixed),
        prop::sample::select(vec![
            CalendarUnit::Day,
            CalendarUnit::Week,
            CalendarUnit::Month,
            CalendarUnit::Quarter,
            CalendarUnit::Year,
        ])
        .prop_map(Interval::Calendar),
    ]
}

/// Text near what `interval` accepts, and anything at all.
fn interval_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,12}[smhdwSMHDWy ]?",
        " ?(sec|second|min|minute|hour|day|week|month|quarter|year|MONTH|Week) ?",
        "[+-]?[0-9]{1,3}(\\.[0-9])?[smhdw]",
        any::<String>(),
    ]
}

/// Text near what a time parameter accepts, and anything at all.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|z|[+-][0-9]{2}:[0-9]{2})?",
        " ?[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T[0-9]{2}:[0-9]{2}:[0-9]{2}Z ?",
        any::<String>(),
    ]
}

/// Text near a list of series patterns, and anything at all.
fn pattern_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z.:_*+?()|\\[\\]{}^$\\\\,0-9 -]{0,60}",
        "(\\(?[a-z]{1,3}[+*]?\\)?[+*]?){1,12}\\$?",
        "[a-z]{1,3}\\{[0-9]{1,7}(,[0-9]{0,7})?\\}",
        any::<String>(),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[\\[\\]{}\"\\\\a-z ]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::hash_map("[\\[{\"a-z]{0,4}", inner, 0..6)
                .prop_map(|m| { serde_json::Value::Object(m.into_iter().collect()) }),
        ]
    })
}

proptest! {
    #[test]
    fn fuzz_interval_parses_or_refuses_and_round_trips(s in interval_text()) {
        if let Ok(i) = Interval::parse(&s) {
            prop_assert_eq!(Interval::parse(&i.canonical()), Ok(i));
            let now = chrono::Utc::now();
            prop_assert_eq!(i.bucket_count(now, now, chrono_tz::Tz::UTC), 1);
            if let Interval::Fixed(w) = i {
                prop_assert!(w <= MAX_FIXED_SECS);
            }
        }
    }

    #[test]
    fn fuzz_fixed_widths_are_taken_up_to_a_hundred_years(n in 0i64..200_000, unit in "[smhdw]") {
        let secs = match unit.as_str() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 604_800,
        };
        let parsed = Interval::parse(&format!("{n}{unit}"));
        if n >= 1 && n * secs <= MAX_FIXED_SECS {
            prop_assert_eq!(parsed, Ok(Interval::Fixed(n * secs)));
        } else {
            prop_assert!(parsed.is_err());
        }
    }

    #[test]
    fn fuzz_every_time_lies_in_its_bucket(i in any_interval(), t in any_time(), tz in any_zone()) {
        let start = i.floor(t, tz);
        let end = i.next(start, tz);
        prop_assert!(start <= t, "{:?} floor {} > {}", i, start, t);
        prop_assert!(t < end, "{:?} next {} <= {}", i, end, t);
        prop_assert_eq!(i.floor(start, tz), start);
    }

    #[test]
    fn fuzz_time_parameters_parse_within_range_or_refuse(s in time_text()) {
        if let Ok(t) = parse_time_param(&s) {
            prop_assert!((MIN_YEAR..=MAX_YEAR).contains(&t.year()));
            prop_assert_eq!(t.timestamp_subsec_nanos() % 1000, 0);
            prop_assert_eq!(parse_time_param(&format_utc(t)), Ok(t));
        }
    }

    #[test]
    fn fuzz_rfc3339_times_in_any_offset_parse_back(t in any_time(), offset in -86_399i32..86_400) {
        let Some(zone) = FixedOffset::east_opt(offset / 60 * 60) else {
            return Ok(());
        };
        let text = zone.from_utc_datetime(&t.naive_utc()).to_rfc3339();
        match parse_time_param(&text) {
            Ok(parsed) => prop_assert_eq!(parsed.timestamp_micros(), t.timestamp_micros()),
            // Only an instant whose local year leaves the range may be refused... and
            // then only if the UTC year does too.
            Err(_) => prop_assert!(!(MIN_YEAR..=MAX_YEAR).contains(&t.year())),
        }
    }

    #[test]
    fn fuzz_series_patterns_compile_within_limits_or_refuse(s in pattern_text(), name in "[A-Za-z0-9_.:-]{1,80}") {
        let limits = PatternLimits::default();
        if let Ok(p) = SeriesPatterns::parse_with(&s, &limits) {
            prop_assert!(p.source.len() <= limits.max_patterns);
            // Matching never panics, whatever the name.
            let _ = p.matches(&name);
            let _ = p.matches(&s);
        }
    }

    #[test]
    fn fuzz_a_series_name_is_a_pattern_matching_itself(name in "[A-Za-z0-9_.:-]{1,255}") {
        let p = SeriesPatterns::parse(&name);
        prop_assert!(p.is_ok(), "{:?}", p.err());
        if let Ok(p) = p {
            prop_assert!(p.matches(&name));
        }
    }

    #[test]
    fn fuzz_timeseries_parameters_answer_a_query_or_a_400(
        params in prop::collection::hash_map(
            prop::sample::select(vec![
                "user_id", "session_id", "series", "interval", "start_time", "end_time",
                "agg_func", "tz", "fill", "smooth", "other",
            ]),
            prop_oneof![
                Just("6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11".to_string()),
                interval_text(),
                time_text(),
                pattern_text(),
                "(avg|p99|median|linear|previous|Europe/Paris|UTC|[0-9]{1,5})",
            ],
            0..10,
        ),
        now in any_time(),
    ) {
        let params: HashMap<String, String> =
            params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        match parse_params(&params, now, 10_000, &PatternLimits::default()) {
            Ok(parsed) => {
                prop_assert!(parsed.query.start <= parsed.query.end);
                prop_assert!(params.contains_key("user_id"));
            }
            Err(crate::error::ApiError::Invalid(serde_json::Value::Object(errors))) => {
                prop_assert!(!errors.is_empty());
            }
            Err(other) => prop_assert!(false, "not a field error: {:?}", other),
        }
    }

    #[test]
    fn fuzz_cursors_decode_to_what_was_encoded_or_refuse(s in prop_oneof!["[A-Za-z0-9_-]{0,60}", any::<String>()], t in any_time(), series in any::<i32>(), session in any::<u128>()) {
        if let Ok(k) = PointKey::decode(&s) {
            prop_assert_eq!(PointKey::decode(&k.encode()), Ok(k));
        }
        let micros = DateTime::<Utc>::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t);
        let key = PointKey { time: micros, series_id: series, session_id: uuid::Uuid::from_u128(session) };
        prop_assert_eq!(PointKey::decode(&key.encode()), Ok(key));
    }

    #[test]
    fn fuzz_the_nesting_scan_agrees_with_the_parser(v in any_json()) {
        let text = serde_json::to_string(&v).unwrap_or_default();
        let depth = json_depth::depth_of(&v);
        prop_assert!(json_depth::check(text.as_bytes(), depth).is_ok(), "{}", text);
        if depth > 0 {
            prop_assert!(json_depth::check(text.as_bytes(), depth - 1).is_err(), "{}", text);
        }
    }

    #[test]
    fn fuzz_the_nesting_scan_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400), max in 0usize..20) {
        let _ = json_depth::check(&bytes, max);
    }

    #[test]
    fn fuzz_authorization_headers_yield_a_well_formed_token_or_none(
        header in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            "(Bearer|bearer|Token|Basic|) {0,2}sdk_[A-Za-z0-9_+/=-]{0,50}( x)?".prop_map(String::into_bytes),
        ],
    ) {
        if let Ok(Some(token)) = credentials(&header) {
            prop_assert_eq!(token.expose().len(), TOKEN_LEN);
            prop_assert!(token.expose().starts_with("sdk_"));
        }
    }
}
