//! `GET /api/timeseries/`: bucketed aggregates, cached.

use crate::auth::Caller;
use crate::db::{self, generations};
use crate::domain::interval::Interval;
use crate::domain::query::{AggFunc, Fill, PatternLimits, SeriesPatterns};
use crate::domain::timestamp::parse_time_param;
use crate::error::ApiError;
use crate::routes::query_params::{required_uuid, uuid_param};
use crate::services::query::{self, QueryResponse, TimeseriesQuery};
use crate::startup::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// Most buckets a trailing moving average may span.
pub const MAX_SMOOTH: usize = 1000;

/// A parsed query and what its cache key is made of.
pub struct Parsed {
    pub query: TimeseriesQuery,
    /// The normalised parameters; defaulted times appear as `now` tokens.
    pub key: String,
    /// The range reaches the present or the future: cache briefly.
    pub recent: bool,
}

/// Validates every parameter; all problems are reported at once, by parameter.
pub fn parse_params(
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
    max_buckets: i64,
    pattern_limits: &PatternLimits,
) -> Result<Parsed, ApiError> {
    let mut errors = Map::new();
    let user_id = required_uuid(params, "user_id", &mut errors);
    let session_id = uuid_param(params, "session_id", &mut errors);
    let patterns = match SeriesPatterns::parse_with(
        params.get("series").map_or("", String::as_str),
        pattern_limits,
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.insert("series".into(), json!([e]));
            None
        }
    };
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
        let buckets = (end - start).num_seconds() / i.nominal_secs() + 1;
        if buckets > max_buckets {
            errors.insert(
                "interval".into(),
                json!([format!(
                    "The range holds about {buckets} {} buckets per series, more than the maximum of {max_buckets} (MAX_BUCKETS): use a wider interval or a shorter range.",
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
    let key = format!(
        "u={user_id}|s={}|p={}|i={}|st={}|en={}|a={}|tz={}|f={}|sm={}",
        session_id.map(|s| s.to_string()).unwrap_or_default(),
        patterns.source.join(","),
        interval.canonical(),
        start_given.map_or("now-7d".to_string(), |t| t.timestamp_micros().to_string()),
        end_given.map_or("now".to_string(), |t| t.timestamp_micros().to_string()),
        agg.map_or("default", |a| a.name()),
        tz.name(),
        fill.name(),
        smooth.unwrap_or(0),
    );
    Ok(Parsed {
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
            smooth,
            rollups: true,
        },
        key,
        recent: end_given.is_none_or(|e| e >= now),
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
                   series is a 400 naming `interval`.",
    params(crate::openapi::TimeseriesParams),
    responses(
        (status = 200, description = "The aggregates.", body = QueryResponse,
            headers(("X-Cache" = String, description = "`HIT` when answered from the cache, else `MISS`."))),
        (status = 400, description = "Field errors naming each bad parameter.",
            body = crate::openapi::BadRequestBody,
            example = json!({"agg_func": ["'mode' is not an aggregate function; use one of avg, min, max, count, sum, first, last, median, p90, p95, p99, stddev."],
                             "user_id": ["This parameter is required."]})),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 405, response = crate::openapi::MethodNotAllowed),
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
    let user = parsed.query.user_id;
    // Before the cache: an answer cached for one user is never served to another's token.
    caller.authorize_user(user)?;
    let generation = db::run(&state.pool, move |conn| {
        Ok(generations::current(conn, user)?)
    })
    .await?;
    let snapshot = state.catalogue.snapshot();
    let key = format!(
        "{}:ts:v1:{user}:{generation}:{}:{}",
        state.settings.redis_prefix, snapshot.version, parsed.key
    );
    if let Some(body) = state.cache.get(&key).await {
        state.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        return Ok(HttpResponse::Ok()
            .insert_header(("X-Cache", "HIT"))
            .content_type("application/json")
            .body(body));
    }
    state.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
    // In line behind the uncached queries already being computed (first come, first
    // served), for at most QUERY_QUEUE_TIMEOUT_MS.
    let slot = tokio::time::timeout(
        state.settings.query_queue_timeout,
        state.query_gate.clone().acquire_owned(),
    )
    .await
    .map_err(|_| {
        ApiError::Unavailable(format!(
            "Too many queries at once: this one did not start within {} ms (QUERY_QUEUE_TIMEOUT_MS; QUERY_CONCURRENCY queries are computed at a time).",
            state.settings.query_queue_timeout.as_millis()
        ))
    })?
    .map_err(ApiError::internal)?;
    let mut q = parsed.query;
    q.rollups = state.settings.rollups;
    // The slot goes with the work: a client that leaves does not free it early.
    let body = db::run(&state.pool, move |conn| {
        let _slot = slot;
        let response = query::run(conn, &snapshot, &q)?;
        serde_json::to_vec(&response).map_err(ApiError::internal)
    })
    .await?;
    let ttl = if parsed.recent {
        state.settings.cache_ttl_recent
    } else {
        state.settings.cache_ttl
    };
    state.cache.set(&key, body.clone(), ttl).await;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Cache", "MISS"))
        .content_type("application/json")
        .body(body))
}
