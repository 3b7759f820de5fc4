//! Raw points: `GET /api/timeseries/latest/` (the last point per series as of a time)
//! and `GET /api/timeseries/points/` (a range as keyset-paginated JSON, or a streamed
//! CSV / NDJSON export).

use crate::auth::Caller;
use crate::db::replicas::Need;
use crate::domain::downsample::MaxPoints;
use crate::domain::query::PatternLimits;
use crate::error::ApiError;
use crate::openapi::TimeParam;
use crate::routes::query_params::{
    limit_param, parsed_param, patterns_param, required_uuid, time_param, url_with, uuid_param,
};
use crate::services::retrieval::{
    self, Downsampling, Export, Format, LatestQuery, LatestResponse, Page, PageRow, PointKey,
    PointsQuery,
};
use crate::services::token_slots::Slot;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::Instrument;
use utoipa::IntoParams;
use uuid::Uuid;

/// Default page size of the JSON format.
pub const DEFAULT_LIMIT: i64 = 1000;
/// Largest page size of the JSON format; larger `limit`s are capped to it.
pub const MAX_LIMIT: i64 = 10_000;
/// Export chunks produced ahead of the client.
const EXPORT_CHUNKS_AHEAD: usize = 2;

/// Validates `latest`'s parameters; every problem is reported at once, by parameter.
pub fn parse_latest(
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
    limits: &PatternLimits,
) -> Result<LatestQuery, ApiError> {
    let mut errors = Map::new();
    let user_id = required_uuid(params, "user_id", &mut errors);
    let session_id = uuid_param(params, "session_id", &mut errors);
    let patterns = patterns_param(params, limits, &mut errors);
    let as_of = time_param(params, "as_of", &mut errors).unwrap_or(now);
    match (user_id, patterns) {
        (Some(user_id), Some(patterns)) if errors.is_empty() => Ok(LatestQuery {
            user_id,
            patterns,
            as_of,
            session_id,
        }),
        _ => Err(ApiError::Invalid(Value::Object(errors))),
    }
}

/// `GET /api/timeseries/latest/?user_id=&series=&as_of=&session_id=`.
#[utoipa::path(
    get,
    path = "/api/timeseries/latest/",
    operation_id = "timeseries_latest",
    tag = "timeseries",
    summary = "The latest point of each series",
    description = "For each matched series, its last point at or before `as_of` (an AS OF \
                   query): one backwards index probe per series, never a scan of the user's \
                   history. Two points of different sessions at the same instant: the larger \
                   session id wins.",
    params(LatestParams),
    responses(
        (status = 200, description = "The latest points, by series name.", body = LatestResponse),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
    )
)]
pub async fn latest(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let q = parse_latest(&params, Utc::now(), &state.settings.pattern_limits)?;
    caller.authorize_user(q.user_id)?;
    let snapshot = state.catalogue.snapshot();
    let need = state.reads.need(q.user_id).await?;
    let response = state
        .reads
        .run(need, (), move |conn| retrieval::latest(conn, &snapshot, &q))
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

/// A validated `points` request.
#[derive(Debug)]
pub struct PointsRequest {
    pub query: PointsQuery,
    pub format: Format,
    /// The JSON page size.
    pub limit: usize,
}

/// Validates `points`' parameters; every problem is reported at once, by parameter.
pub fn parse_points(
    params: &HashMap<String, String>,
    limits: &PatternLimits,
) -> Result<PointsRequest, ApiError> {
    let mut errors = Map::new();
    let user_id = required_uuid(params, "user_id", &mut errors);
    let session_id = uuid_param(params, "session_id", &mut errors);
    let patterns = patterns_param(params, limits, &mut errors);
    let start = time_param(params, "start_time", &mut errors);
    let end = time_param(params, "end_time", &mut errors);
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        errors.insert(
            "start_time".into(),
            json!(["start_time must not be after end_time."]),
        );
    }
    let limit = limit_param(params, DEFAULT_LIMIT, MAX_LIMIT, &mut errors);
    let after = parsed_param(params, "cursor", PointKey::decode, &mut errors);
    let max_points = parsed_param(params, "max_points", MaxPoints::parse, &mut errors);
    let format = parsed_param(params, "format", Format::parse, &mut errors).unwrap_or(Format::Json);
    match (user_id, patterns, usize::try_from(limit)) {
        (Some(user_id), Some(patterns), Ok(limit)) if errors.is_empty() => Ok(PointsRequest {
            query: PointsQuery {
                user_id,
                session_id,
                patterns,
                start,
                end,
                after,
                max_points,
            },
            format,
            limit,
        }),
        _ => Err(ApiError::Invalid(Value::Object(errors))),
    }
}

/// `GET /api/timeseries/points/?user_id=&series=&start_time=&end_time=&session_id=&limit=&cursor=&format=&max_points=`.
#[utoipa::path(
    get,
    path = "/api/timeseries/points/",
    operation_id = "timeseries_points",
    tag = "timeseries",
    summary = "Raw points: pages or an export",
    description = "A user's points in `(time, series, session)` order. `format=json`: \
                   keyset-paginated pages (follow `next`). `format=csv` (a header line \
                   `time,series,session_id,value`, the JSON value quoted) or `format=ndjson` \
                   (one object per line): the whole range streamed as a download; a failure \
                   part-way aborts the response rather than truncating it. A token runs at \
                   most `MAX_EXPORTS_PER_TOKEN` exports at once (a `429` beyond, until one \
                   finishes or its client leaves).\n\n\
                   `max_points=N` (3 to 100,000), in any format, keeps at most N points of \
                   each series: Largest-Triangle-Three-Buckets over the series' number (for \
                   an object with several numeric fields, such as `{r, g, b}`, over the \
                   first by name, keeping whole points), evenly spaced points for series \
                   without a number; the first and last points of each series are always \
                   kept. The JSON `metadata` and the `X-Downsampled`, `X-Points-Total` and \
                   `X-Points-Kept` headers say what was left out. Such a request reads the \
                   whole range, so in JSON too it counts as an export.",
    params(PointsParams),
    responses(
        (status = 200,
            headers(
                ("Content-Disposition" = String,
                    description = "Exports only: `attachment; filename=\"points.csv\"` (or `points.ndjson`)."),
                ("X-Downsampled" = String,
                    description = "With `max_points` only: `true` when some series lost points, else `false`."),
                ("X-Points-Total" = u64,
                    description = "With `max_points` only: the points of the range, every series together."),
                ("X-Points-Kept" = u64,
                    description = "With `max_points` only: the points kept, every series together (over all pages)."),
            ),
            description = "A page (`json`); the points as CSV; or the points as NDJSON, one \
                object per line (each item of the array as one line).",
            content(
                (Page = "application/json"),
                (String = "text/csv", example = json!("time,series,session_id,value\n2025-01-01T00:02:00Z,lab.ph,1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11,\"6.5\"\n")),
                (Vec<PageRow> = "application/x-ndjson", example = json!([
                    {"time": "2025-01-01T00:02:00Z", "series": "lab.ph", "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11", "value": 6.5}
                ])),
            )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
    )
)]
pub async fn points(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let PointsRequest {
        query: q,
        format,
        limit,
    } = parse_points(&params, &state.settings.pattern_limits)?;
    caller.authorize_user(q.user_id)?;
    let snapshot = state.catalogue.snapshot();
    if format == Format::Json {
        let need = state.reads.need(q.user_id).await?;
        let downsampled = q.max_points.is_some();
        let read =
            move |conn: &mut diesel::PgConnection| retrieval::page(conn, &snapshot, &q, limit);
        let mut page = if !downsampled {
            state.reads.run(need, (), read).await?
        } else {
            // It reads the whole range, as an export does: one of the token's export
            // slots and a heavy connection until the work is over (even if the client
            // leaves first).
            let slot = state.exports.take(caller.token_id)?;
            let turn = state.heavy.turn().await?;
            state.reads.run(need, (slot, turn), read).await?
        };
        page.next = page
            .next_cursor
            .as_deref()
            .map(|c| url_with(&req, &[("cursor", Some(c))]));
        let mut response = HttpResponse::Ok();
        downsampling_headers(&mut response, page.metadata.as_ref());
        return Ok(response.json(page));
    }
    let slot = state.exports.take(caller.token_id)?;
    let need = state.reads.need(q.user_id).await?;
    export(&state, Export::new(snapshot, q, format), need, slot).await
}

/// The headers that say what `max_points` left out, in every format: `X-Downsampled`
/// (`true` when a series lost points), `X-Points-Total` (points in the range) and
/// `X-Points-Kept` (points kept), every series together. Nothing without `max_points`.
fn downsampling_headers(response: &mut HttpResponseBuilder, d: Option<&Downsampling>) {
    if let Some(d) = d {
        response
            .insert_header((
                "X-Downsampled",
                if d.downsampled { "true" } else { "false" },
            ))
            .insert_header(("X-Points-Total", d.points.to_string()))
            .insert_header(("X-Points-Kept", d.kept.to_string()));
    }
}

/// Streams an export: the first chunk is produced before answering (so a failure to
/// start is a proper error status), the rest by a task that stays at most
/// [`EXPORT_CHUNKS_AHEAD`] chunks ahead of the client and holds a database connection
/// only while producing a chunk, within the heavy-work budget, on any server `need`
/// allows (a chunk that fails on a replica is made again elsewhere). A failure after the
/// first chunk aborts the response, so a client never mistakes a truncated export for a
/// complete one. The token's export `slot` is held by the response body and by that
/// task, so it is given back once the last chunk went out or the client left.
async fn export(
    state: &web::Data<AppState>,
    export: Export,
    need: Need,
    slot: Slot,
) -> Result<HttpResponse, ApiError> {
    let format = export.format();
    let export = Arc::new(Mutex::new(export));
    let chunk = {
        let (state, export) = (state.clone(), export.clone());
        move || {
            let (state, export) = (state.clone(), export.clone());
            async move {
                let turn = state.heavy.turn().await?;
                state
                    .reads
                    .run(need, turn, move |conn| {
                        let mut export = export.lock().unwrap_or_else(|e| e.into_inner());
                        export.next_chunk(conn, retrieval::EXPORT_CHUNK_ROWS)
                    })
                    .await
            }
        }
    };
    let first = chunk().await?;
    let (downsampling, done) = {
        let export = export.lock().unwrap_or_else(|e| e.into_inner());
        (export.downsampling(), export.done())
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, ApiError>>(EXPORT_CHUNKS_AHEAD);
    let slot = Arc::new(slot);
    let producer_slot = slot.clone();
    let first_done = first.is_none() || done;
    actix_web::rt::spawn(
        async move {
            let _slot = producer_slot;
            if first_done {
                return;
            }
            loop {
                match chunk().await {
                    Ok(Some(bytes)) => {
                        // A send error means the client went away: stop reading.
                        if tx.send(Ok(web::Bytes::from(bytes))).await.is_err() {
                            return;
                        }
                        if export.lock().unwrap_or_else(|e| e.into_inner()).done() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "export failed part-way; aborting the response");
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
        .instrument(tracing::Span::current()),
    );
    let first = futures_util::stream::iter(first.map(|c| Ok(web::Bytes::from(c))));
    let rest = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv().await.map(|item| (item, (rx, slot)))
    });
    let mut response = HttpResponse::Ok();
    response.content_type(format.content_type());
    downsampling_headers(&mut response, downsampling.as_ref());
    if format == Format::Csv {
        response.insert_header(("Content-Disposition", "attachment; filename=\"points.csv\""));
    } else {
        response.insert_header((
            "Content-Disposition",
            "attachment; filename=\"points.ndjson\"",
        ));
    }
    Ok(response.streaming(first.chain(rest)))
}

// ---------------------------------------------------------------------------------------
// What the document says of the parameters and bodies this handler reads from a raw map
// or parses itself.

/// `GET /api/timeseries/latest/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LatestParams {
    /// The user whose points are read.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Series patterns, as for `GET /api/timeseries/`. Default: every series.
    #[param(example = "session.urine.*")]
    series: Option<String>,
    /// The latest point at or before this time. Default: now.
    #[param(value_type = Option<TimeParam>)]
    as_of: Option<String>,
    /// Only this session's points.
    session_id: Option<Uuid>,
}

/// `GET /api/timeseries/points/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PointsParams {
    /// The user whose points are read.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Series patterns, as for `GET /api/timeseries/`. Default: every series.
    series: Option<String>,
    /// Start of the range, inclusive. Default: from the first point.
    #[param(value_type = Option<TimeParam>)]
    start_time: Option<String>,
    /// End of the range, inclusive. Default: to the last point.
    #[param(value_type = Option<TimeParam>)]
    end_time: Option<String>,
    /// Only this session's points.
    session_id: Option<Uuid>,
    /// The answer's format. Default `json`.
    format: Option<Format>,
    /// The JSON page size (exports ignore it); values over 10,000 are capped to it.
    /// Default 1000.
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// At most this many points per series (3 to 100,000), in any format: LTTB over
    /// the series' number (the first numeric field by name of an object such as
    /// `{r, g, b}`, whole points kept), evenly spaced points for series without one;
    /// first and last points kept. Default: every point.
    #[param(minimum = 3, maximum = 100000, example = 1000)]
    max_points: Option<u32>,
    /// A `next_cursor` from a previous page: continue strictly after that point.
    #[param(
        pattern = "^[A-Za-z0-9_-]{39}$",
        example = "AQAGKpm9n-cAAAAABB8cPDaKbkpSnR4_G3wOmhE"
    )]
    cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> HashMap<String, String> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Invalid(Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("{other:?}"),
        }
    }

    const USER: &str = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11";
    const LIMITS: PatternLimits = PatternLimits {
        max_patterns: 32,
        max_chars: 256,
        max_regex_bytes: 65536,
    };

    #[test]
    fn latest_defaults_to_now_and_names_every_bad_parameter() {
        let now = Utc::now();
        let q = parse_latest(&params(&[("user_id", USER)]), now, &LIMITS).unwrap();
        assert_eq!(
            (q.as_of, q.session_id, q.patterns.is_empty()),
            (now, None, true)
        );
        let q = parse_latest(
            &params(&[("user_id", USER), ("as_of", "2020-03-14")]),
            now,
            &LIMITS,
        )
        .unwrap();
        assert_eq!(q.as_of.to_rfc3339(), "2020-03-14T00:00:00+00:00");
        let e = parse_latest(
            &params(&[("as_of", "x"), ("session_id", "y"), ("series", "(")]),
            now,
            &LIMITS,
        )
        .unwrap_err();
        assert_eq!(fields(e), ["as_of", "series", "session_id", "user_id"]);
    }

    #[test]
    fn points_parameters() {
        let r = parse_points(&params(&[("user_id", USER), ("limit", "99999")]), &LIMITS).unwrap();
        assert_eq!((r.limit, r.format), (10_000, Format::Json));
        assert_eq!(
            (r.query.start, r.query.end, r.query.after),
            (None, None, None)
        );
        let r = parse_points(&params(&[("user_id", USER), ("format", "CSV")]), &LIMITS).unwrap();
        assert_eq!((r.limit, r.format), (1000, Format::Csv));
        let e = parse_points(
            &params(&[
                ("user_id", USER),
                ("start_time", "2025-02-01"),
                ("end_time", "2025-01-01"),
                ("limit", "0"),
                ("cursor", "nope"),
                ("format", "xml"),
            ]),
            &LIMITS,
        )
        .unwrap_err();
        assert_eq!(fields(e), ["cursor", "format", "limit", "start_time"]);
    }

    #[test]
    fn max_points_is_optional_and_from_3_to_100000() {
        let r = parse_points(&params(&[("user_id", USER)]), &LIMITS).unwrap();
        assert_eq!(r.query.max_points, None);
        let r = parse_points(
            &params(&[("user_id", USER), ("max_points", "3"), ("format", "csv")]),
            &LIMITS,
        )
        .unwrap();
        assert_eq!(r.query.max_points.map(MaxPoints::get), Some(3));
        for bad in ["", "2", "0", "-1", "100001", "ten", "5.5"] {
            let e = parse_points(&params(&[("user_id", USER), ("max_points", bad)]), &LIMITS)
                .unwrap_err();
            assert_eq!(fields(e), ["max_points"], "{bad}");
        }
    }
}
