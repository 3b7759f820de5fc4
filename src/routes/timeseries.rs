//! `GET /api/timeseries/`: bucketed aggregates, cached.

use crate::auth::Caller;
use crate::db::maintenance::StorageMode;
use crate::domain::interval::Interval;
use crate::domain::query::{AggFunc, Fill, MaxGap, PatternLimits};
use crate::domain::timestamp::parse_time_param;
use crate::error::ApiError;
use crate::openapi::{IntervalParam, TimeParam};
use crate::routes::query_params::{patterns_param, required_uuid, uuid_param};
use crate::services::query::cached::CachedQuery;
use crate::services::query::{QueryResponse, TimeseriesQuery};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use utoipa::IntoParams;
use uuid::Uuid;

/// Most buckets a trailing moving average may span.
pub const MAX_SMOOTH: usize = 1000;

/// Validates every parameter; all problems are reported at once, by parameter.
pub fn parse_params(
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
    max_buckets: i64,
    pattern_limits: &PatternLimits,
) -> Result<CachedQuery, ApiError> {
    let mut errors = Map::new();
    let user_id = required_uuid(params, "user_id", &mut errors);
    let session_id = uuid_param(params, "session_id", &mut errors);
    let patterns = patterns_param(params, pattern_limits, &mut errors);
    let interval = match Interval::parse(params.get("interval").map_or("week", String::as_str)) {
        Ok(i) => Some(i),
        Err(e) => {
            errors.insert("interval".into(), json!([e]));
            None
        }
    };
    let mut time = |name: &str| match params.get(name) {
        None => Ok(None),
        Some(v) => parse_time_param(v).map(Some).map_err(|e| {
            errors.insert(name.into(), json!([e]));
        }),
    };
    let end_given = time("end_time").ok().flatten();
    let start_given = time("start_time").ok().flatten();
    let agg = match params.get("agg_func") {
        None => None,
        Some(a) => match AggFunc::parse(a) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.insert("agg_func".into(), json!([e]));
                None
            }
        },
    };
    let tz: Tz = match params.get("tz").map(|s| s.trim()) {
        None | Some("") => Tz::UTC,
        Some(name) => match name.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                errors.insert(
                    "tz".into(),
                    json!([format!(
                        "'{}' is not an IANA time zone name.",
                        name.chars().take(64).collect::<String>()
                    )]),
                );
                Tz::UTC
            }
        },
    };
    let fill = match params.get("fill").map(|f| Fill::parse(f)) {
        None => Fill::None,
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            errors.insert("fill".into(), json!([e]));
            Fill::None
        }
    };
    let max_gap = match params.get("max_gap").map(|g| MaxGap::parse(g)) {
        None => None,
        Some(Err(e)) => {
            errors.insert("max_gap".into(), json!([e]));
            None
        }
        Some(Ok(_))
            if !errors.contains_key("fill") && !matches!(fill, Fill::Previous | Fill::Linear) =>
        {
            errors.insert(
                "max_gap".into(),
                json!(["max_gap applies to fill=previous and fill=linear only."]),
            );
            None
        }
        Some(Ok(g)) => Some(g),
    };
    let approx = match params.get("approx").map(|a| a.trim().to_ascii_lowercase()) {
        None => false,
        Some(a) if a == "true" || a == "1" => true,
        Some(a) if a == "false" || a == "0" => false,
        Some(_) => {
            errors.insert("approx".into(), json!(["Must be true or false."]));
            false
        }
    };
    let smooth = match params.get("smooth").map(|s| s.trim().parse::<usize>()) {
        None => None,
        Some(Ok(n)) if (1..=MAX_SMOOTH).contains(&n) => Some(n),
        Some(_) => {
            errors.insert(
                "smooth".into(),
                json!([format!(
                    "Must be a whole number of buckets from 1 to {MAX_SMOOTH}."
                )]),
            );
            None
        }
    };
    if params.contains_key("start_time")
        && params.contains_key("end_time")
        && errors.get("start_time").is_none()
        && errors.get("end_time").is_none()
        && start_given > end_given
    {
        errors.insert(
            "start_time".into(),
            json!(["start_time must not be after end_time."]),
        );
    }
    let end = end_given.unwrap_or(now);
    let start = start_given.unwrap_or(end - TimeDelta::days(7));
    if start > end && !errors.contains_key("start_time") {
        errors.insert(
            "start_time".into(),
            json!(["start_time must not be after end_time."]),
        );
    }
    if let Some(i) = interval
        && !errors.contains_key("start_time")
    {
        let buckets = i.bucket_count(start, end, tz);
        if buckets > max_buckets {
            errors.insert(
                "interval".into(),
                json!([format!(
                    "The range holds {buckets} {} buckets per series (from the bucket holding start_time to the one holding end_time, both included), more than the maximum of {max_buckets} (MAX_BUCKETS): use a wider interval or a shorter range.",
                    i.canonical()
                )]),
            );
        }
    }
    let (Some(user_id), Some(patterns), Some(interval), true) =
        (user_id, patterns, interval, errors.is_empty())
    else {
        return Err(ApiError::Invalid(Value::Object(errors)));
    };
    Ok(CachedQuery {
        query: TimeseriesQuery {
            user_id,
            session_id,
            patterns,
            interval,
            start,
            end,
            agg,
            tz,
            fill,
            max_gap,
            smooth,
            approx,
            // Both from the service's settings and database (`Queries::answer`).
            rollups: true,
            engine: StorageMode::NativePartitions,
        },
        start_given,
        end_given,
        now,
    })
}

/// `GET /api/timeseries/`: bucketed aggregates of one user's points, cached.
#[utoipa::path(
    get,
    path = "/api/timeseries/",
    operation_id = "timeseries_list",
    tag = "timeseries",
    summary = "Bucketed aggregates",
    description = "Aggregates one user's points per series and time bucket. A numeric series \
                   aggregates to a number, an object with numeric fields (`{r, g, b}`) to an \
                   object, any other series to the first value of each bucket (the last with \
                   `agg_func=last`, the number of points with `count`). Answers are cached \
                   and never stale: a write for the user makes every cached answer for that \
                   user unreachable. A range holding more than `MAX_BUCKETS` buckets per \
                   series (from the bucket holding `start_time` to the one holding \
                   `end_time`, both included: the buckets `fill` answers) is a 400 naming \
                   `interval`.",
    params(TimeseriesParams),
    responses(
        (status = 200, description = "The aggregates.", body = QueryResponse,
            headers(("X-Cache" = String, description = "`HIT` when answered from the cache, else `MISS`."))),
        (status = 400, description = "Field errors naming each bad parameter.",
            body = crate::openapi::BadRequestBody,
            example = json!({"agg_func": ["'mode' is not an aggregate function; use one of avg, min, max, count, sum, first, last, median, p90, p95, p99, stddev."],
                             "user_id": ["This parameter is required."]})),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Unprocessable),
    )
)]
pub async fn timeseries(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let parsed = parse_params(
        &params,
        Utc::now(),
        state.settings.max_buckets,
        &state.settings.pattern_limits,
    )?;
    // Before the cache: an answer cached for one user is never served to another's token.
    caller.authorize_user(parsed.query.user_id)?;
    let answer = state.queries.answer(parsed).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Cache", if answer.hit { "HIT" } else { "MISS" }))
        .content_type("application/json")
        .body(answer.body))
}

// ---------------------------------------------------------------------------------------
// What the document says of the parameters and bodies this handler reads from a raw map
// or parses itself.

/// `GET /api/timeseries/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TimeseriesParams {
    /// The user whose points are read.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Only this session's points.
    session_id: Option<Uuid>,
    /// Comma-separated patterns, each matched against the whole series name: a regular
    /// expression (`session.urine.*`), or, if it is not a valid one, a `*` glob
    /// (`*.color`). At most 32 patterns of 256 characters. Default: every series.
    #[param(example = "session.*")]
    series: Option<String>,
    /// The bucket width. Default `week`.
    #[param(value_type = Option<IntervalParam>)]
    interval: Option<String>,
    /// Start of the range, inclusive. Default: `end_time` minus 7 days.
    #[param(value_type = Option<TimeParam>)]
    start_time: Option<String>,
    /// End of the range, inclusive. Default: now.
    #[param(value_type = Option<TimeParam>)]
    end_time: Option<String>,
    /// The aggregate. Default: by the series' kind (`avg`; `sum` for `count`, `last` for
    /// `sample`).
    agg_func: Option<AggFunc>,
    /// An IANA time zone for calendar buckets and bucket labels. Default `UTC`.
    #[param(example = "Europe/Paris")]
    tz: Option<String>,
    /// Gap filling. Default `none`.
    fill: Option<Fill>,
    /// With `fill=previous` or `fill=linear` only: the longest gap filled, a width like
    /// `90m`, `6h`, `3d`, `2w` (at most `36525d`). `linear` fills between two non-empty
    /// buckets whose starts are at most this far apart; `previous` fills a bucket that
    /// starts at most this long after the start of the last non-empty bucket. Longer gaps
    /// stay `null`. Default: any gap.
    #[param(pattern = "^[0-9]{1,9}[smhdw]$", example = "90m")]
    max_gap: Option<String>,
    /// Trailing moving average over the last N buckets of each series, after the fill.
    #[param(minimum = 1, maximum = 1000)]
    smooth: Option<u32>,
    /// `true`: `median`, `p90`, `p95` and `p99` may come from the quantile sketches kept
    /// in the rollups (DDSketch), each within 1% (relative) of a value between the two
    /// points that bracket the exact percentile's rank, at the cost of an `avg` over
    /// rollups; `metadata.approximate` says whether they did. Other aggregates, and
    /// queries that read no rollups, are answered exactly whatever it says. Default
    /// `false`: percentiles are exact (`percentile_cont` over raw points).
    approx: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11";

    fn parse(interval: &str, start: &str, end: &str, max: i64) -> Result<CachedQuery, ApiError> {
        let params: HashMap<String, String> = [
            ("user_id", USER),
            ("interval", interval),
            ("start_time", start),
            ("end_time", end),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        parse_params(&params, Utc::now(), max, &PatternLimits::default())
    }

    #[test]
    fn the_bucket_limit_counts_the_buckets_answered() {
        // Both ends are inclusive: 9,999 s later is the 10,000th one-second bucket.
        assert!(parse("1s", "2025-01-01T00:00:00Z", "2025-01-01T02:46:39Z", 10_000).is_ok());
        assert!(
            parse(
                "1s",
                "2025-01-01T00:00:00.5Z",
                "2025-01-01T02:46:39.9Z",
                10_000
            )
            .is_ok()
        );
        match parse("1s", "2025-01-01T00:00:00Z", "2025-01-01T02:46:40Z", 10_000) {
            Err(ApiError::Invalid(v)) => {
                let m = v["interval"][0].as_str().unwrap();
                assert!(m.contains("holds 10001 1s buckets"), "{m}");
                assert!(m.contains("MAX_BUCKETS"), "{m}");
            }
            other => panic!("{:?}", other.err()),
        }
        // Calendar buckets are counted on the calendar: a year is 12 months, 4 quarters.
        assert!(parse("month", "2025-01-01", "2025-12-31T23:59:59Z", 12).is_ok());
        assert!(parse("month", "2025-01-01", "2026-01-01", 12).is_err());
        assert!(parse("quarter", "2025-01-01", "2025-12-31T23:59:59Z", 4).is_ok());
        // A start inside a bucket counts that whole bucket.
        assert!(parse("5m", "2025-01-01T00:04:00Z", "2025-01-01T00:05:00Z", 1).is_err());
    }
}
