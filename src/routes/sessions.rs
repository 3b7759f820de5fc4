//! `POST /api/sessions/` (ingest one session of points), `POST /api/sessions/bulk/`, and
//! the stored sessions: list, detail, delete.

use crate::auth::Caller;
use crate::config::Settings;
use crate::db;
use crate::domain::json_depth;
use crate::error::ApiError;
use crate::routes::query_params::{self, LimitOffset};
use crate::services::ingest::{
    self, BulkReport, IngestOutcome, Rejection, Reservation, SessionWrite,
};
use crate::services::sessions::SessionView;
use crate::services::sessions::{self as session_service, SessionDetail};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Bodies larger than this are parsed on the blocking pool, off the async workers.
/// Smaller ones are parsed and validated inline: schema patterns run on a linear-time
/// engine, so a small body cannot hold a worker for long whatever its schema, and moving
/// them off the workers would only add a thread hop to every small post.
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// The next chunk of a body, or a 408 when the client sends nothing for
/// `BODY_READ_TIMEOUT_MS`.
pub async fn next_chunk(
    payload: &mut web::Payload,
    settings: &Settings,
) -> Result<Option<web::Bytes>, ApiError> {
    match actix_web::rt::time::timeout(settings.body_read_timeout, payload.next()).await {
        Err(_) => Err(ApiError::RequestTimeout(format!(
            "The request body did not arrive in time: nothing was received for {} ms (BODY_READ_TIMEOUT_MS).",
            settings.body_read_timeout.as_millis()
        ))),
        Ok(None) => Ok(None),
        Ok(Some(chunk)) => chunk
            .map(Some)
            .map_err(|e| ApiError::BadRequest(format!("Could not read the body: {e}"))),
    }
}

/// Reads the whole body, refusing it with 413 as soon as it passes `MAX_BODY_MIB`, and
/// with 408 when the client stalls. With a `reservation` of the ingest memory budget, the
/// body's share is held before it is read: all of it at once when the body declares its
/// length, else growing as it arrives (503 when it does not come in time).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    settings: &Settings,
    mut reservation: Option<&mut Reservation>,
) -> Result<BytesMut, ApiError> {
    let limit = settings.max_body_bytes;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "Request body exceeds the limit of {} MiB (MAX_BODY_MIB).",
            limit / (1024 * 1024)
        ))
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    if let (Some(r), Some(n)) = (reservation.as_deref_mut(), declared) {
        r.cover(n).await?;
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    while let Some(chunk) = next_chunk(&mut payload, settings).await? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        if let Some(r) = reservation.as_deref_mut() {
            r.cover(body.len() + chunk.len()).await?;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Checks the nesting limit, then parses a session body.
fn parse_checked(
    body: &[u8],
    snapshot: &crate::services::catalogue::Snapshot,
    settings: &Settings,
) -> Result<SessionWrite, Rejection> {
    json_depth::check(body, settings.max_json_depth)
        .map_err(|e| ApiError::BadRequest(e.message()))?;
    parse_in_window(body, snapshot, settings)
}

/// Parses a session body whose point times must lie in `WRITE_WINDOW_*`.
fn parse_in_window(
    body: &[u8],
    snapshot: &crate::services::catalogue::Snapshot,
    settings: &Settings,
) -> Result<SessionWrite, Rejection> {
    let write = ingest::parse_session(body, snapshot, settings.max_points_per_request)?;
    let times = write.rows.iter().map(|r| r.time);
    settings
        .write_window
        .check(times, chrono::Utc::now())
        .map_err(|m| ApiError::field("data", m))?;
    Ok(write)
}

async fn parse(state: &web::Data<AppState>, body: web::Bytes) -> Result<SessionWrite, ApiError> {
    let snapshot = state.catalogue.snapshot();
    let first = if body.len() <= INLINE_PARSE_LIMIT {
        parse_checked(&body, &snapshot, &state.settings)
    } else {
        let body = body.clone();
        let settings = state.settings.clone();
        web::block(move || parse_checked(&body, &snapshot, &settings))
            .await
            .map_err(ApiError::internal)?
    };
    match first {
        Ok(w) => Ok(w),
        Err(Rejection {
            unknown_series: true,
            ..
        }) => {
            // Another replica may have added the series: check the catalogue version
            // before calling it unknown.
            let catalogue = state.catalogue.clone();
            let fresh = db::run(&state.pool, move |conn| Ok(catalogue.refresh(conn)?)).await?;
            let settings = state.settings.clone();
            web::block(move || parse_in_window(&body, &fresh, &settings))
                .await
                .map_err(ApiError::internal)?
                .map_err(|r| r.error)
        }
        Err(r) => Err(r.error),
    }
}

/// `POST /api/sessions/`: one session of points, all-or-nothing.
#[utoipa::path(
    post,
    path = "/api/sessions/",
    operation_id = "sessions_create",
    tag = "sessions",
    summary = "Post a session of points",
    description = "Stores a session's points, all or none: any bad point rejects the whole \
                   body with a 400 that names the first 100 bad points by position (and \
                   counts the others in `non_field_errors`). A point is \
                   identified by (user, series, session, time): posting it again with the same \
                   value changes nothing (`unchanged`), with another value replaces it \
                   (`updated`, last write wins). The answer comes once the points are durable. \
                   A user token may only post its own user's sessions (403 otherwise, \
                   before anything is written).",
    request_body(
        content = SessionBody,
        content_type = "application/json",
        description = "The session: `{user_id, session_id, start_ts, data: [{series, time, value}]}`, \
                       at most `MAX_POINTS_PER_REQUEST` points and `MAX_BODY_MIB` MiB.",
    ),
    responses(
        (status = 201, description = "Stored (or already stored: a retry is safe).", body = IngestOutcome),
        (status = 400, description = "Malformed JSON (`detail`), or field errors naming each bad \
            field and the first 100 bad points by position (`data`: `{}` for a good point, up \
            to the 100th bad one), with a `non_field_errors` message counting the bad points \
            not listed.", body = crate::openapi::BadRequestBody,
            examples(
                ("bad point" = (value = json!({"data": [{}, {"value": ["Value does not match schema: \"red\" is not of type \"number\""]}]}))),
                ("unknown series" = (value = json!({"data": [{"series": ["Unknown series 'nope'."]}]}))),
                ("leap second, duplicate key" = (value = json!({"data": [{"time": ["Leap seconds (second 60) are not accepted."]}, {}, {"value": ["Duplicate key 'r' in value."]}]}))),
                ("missing fields" = (value = json!({"user_id": ["This field is required."], "data": ["This field is required."]}))),
                ("malformed JSON" = (value = json!({"detail": "JSON parse error - EOF while parsing an object at line 1 column 1"}))),
            )),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 408, response = crate::openapi::RequestTimeout),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Held until the points are written: the body, its rows and their COPY text.
    let mut reservation = state.ingest_budget.reservation();
    let body = read_body(&req, payload, &state.settings, Some(&mut reservation))
        .await?
        .freeze();
    let write = parse(&state, body).await?;
    // After parsing (the user is in the body), before anything is written.
    caller.authorize_user(write.user_id)?;
    let outcome = state.ingestor.submit(write).await?;
    state.metrics.points_ingested.fetch_add(
        (outcome.inserted + outcome.updated) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(HttpResponse::Created().json(outcome))
}

/// Lines are parsed in groups of about this many bytes, on the blocking pool.
const BULK_PARSE_BYTES: usize = 1024 * 1024;
/// ... and of at most this many lines, so that the outcomes of one group (one per line)
/// stay small however short its lines are.
const BULK_PARSE_LINES: usize = 4096;

/// `POST /api/sessions/bulk/`: NDJSON, one session object per line, streamed. Each line is
/// all-or-nothing on its own; good lines are committed in batches of about
/// `INGEST_BATCH_POINTS` points, and a bad line never costs the good ones.
#[utoipa::path(
    post,
    path = "/api/sessions/bulk/",
    operation_id = "sessions_bulk_create",
    tag = "sessions",
    summary = "Load many sessions (NDJSON)",
    description = "Historical loads: one session object (the body of `POST /api/sessions/`) \
                   per line, streamed. Each line is validated all-or-nothing on its own; \
                   refused lines are counted (`rejected_count`) and the first 100 are \
                   reported by number (`rejected`); good lines are committed in batches and \
                   stay committed. With a user token, a line for another user is refused \
                   in the report with the body of a 403. The content type is not checked. \
                   A token runs at most `MAX_BULK_LOADS_PER_TOKEN` bulk loads at once (a \
                   `429` beyond).",
    request_body(
        content(
            (Vec<SessionBody> = "application/x-ndjson", example = json!([
                {"user_id": "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11", "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
                 "data": [{"series": "session.gut_health_score", "time": "2025-01-01T00:02:00Z", "value": {"value": 6}}]},
                {"user_id": "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11", "session_id": "2f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
                 "data": [{"series": "session.urine.night_count", "time": "2025-01-02T03:00:00Z", "value": {"value": 2}}]}
            ])),
        ),
        description = "NDJSON: a stream of session objects, one per line (each item of the \
                       array as one line of JSON); blank lines are skipped. An empty body is \
                       an empty load (`lines: 0`).",
    ),
    responses(
        (status = 200, description = "The whole stream was read; the report counts stored and \
            refused lines.", body = BulkReport),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 413, description = "One line is longer than `MAX_BODY_MIB`; lines before it may \
            have been committed.", body = crate::openapi::ErrorDetail,
            example = json!({"detail": "Line 3 exceeds the limit of 64 MiB (MAX_BODY_MIB)."})),
        (status = 408, response = crate::openapi::RequestTimeout),
    )
)]
pub async fn bulk(
    state: web::Data<AppState>,
    caller: Caller,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Held until the whole stream is read and its report written.
    let _slot = state.bulk_loads.take(caller.token_id)?;
    let line_limit = state.settings.max_body_bytes;
    let catalogue = state.catalogue.clone();
    let snapshot = db::run(&state.pool, move |conn| Ok(catalogue.refresh(conn)?)).await?;
    let mut report = ingest::BulkReport::new();
    let mut loader = BulkLoader::new(&state, snapshot, caller);
    // The body is streamed: the budget covers the lines read but not yet written (a
    // group, and the line being assembled), not the whole body.
    let mut reservation = state.ingest_budget.reservation();
    let mut pending = BytesMut::new();
    // The bytes at the start of `pending` already searched for a newline: each byte is
    // searched once, however many chunks a long line arrives in.
    let mut scanned = 0usize;
    let mut line_no = 0usize;
    let mut lines: Vec<(usize, web::Bytes)> = Vec::new();
    let mut lines_bytes = 0usize;
    while let Some(chunk) = next_chunk(&mut payload, &state.settings).await? {
        reservation
            .cover(lines_bytes + pending.len() + chunk.len())
            .await?;
        pending.extend_from_slice(&chunk);
        while let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
            let line = pending.split_to(scanned + pos + 1).freeze();
            scanned = 0;
            line_no += 1;
            lines_bytes += line.len();
            lines.push((line_no, line));
            if lines_bytes >= BULK_PARSE_BYTES || lines.len() >= BULK_PARSE_LINES {
                loader.feed(std::mem::take(&mut lines), &mut report).await?;
                lines_bytes = 0;
                reservation.shrink_to(pending.len());
            }
        }
        scanned = pending.len();
        if pending.len() > line_limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "Line {} exceeds the limit of {} MiB (MAX_BODY_MIB).",
                line_no + 1,
                line_limit / (1024 * 1024)
            )));
        }
    }
    if !pending.is_empty() {
        line_no += 1;
        lines.push((line_no, pending.freeze()));
    }
    loader.feed(lines, &mut report).await?;
    loader.flush(&mut report).await?;
    state.metrics.points_ingested.fetch_add(
        (report.inserted + report.updated) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(HttpResponse::Ok().json(report))
}

/// Parses lines and writes accepted sessions in batches.
struct BulkLoader<'a> {
    state: &'a web::Data<AppState>,
    snapshot: std::sync::Arc<crate::services::catalogue::Snapshot>,
    /// Lines for a user this caller may not write are refused (403's body).
    caller: Caller,
    batch: Vec<SessionWrite>,
    batch_lines: Vec<usize>,
    batch_points: usize,
}

impl<'a> BulkLoader<'a> {
    fn new(
        state: &'a web::Data<AppState>,
        snapshot: std::sync::Arc<crate::services::catalogue::Snapshot>,
        caller: Caller,
    ) -> Self {
        Self {
            state,
            snapshot,
            caller,
            batch: Vec::new(),
            batch_lines: Vec::new(),
            batch_points: 0,
        }
    }

    async fn feed(
        &mut self,
        lines: Vec<(usize, web::Bytes)>,
        report: &mut ingest::BulkReport,
    ) -> Result<(), ApiError> {
        if lines.is_empty() {
            return Ok(());
        }
        let snapshot = self.snapshot.clone();
        let settings = self.state.settings.clone();
        // Lines come in order, after every line refused so far: once `room` more lines
        // of this group are refused, the reasons of the others would not be listed, so
        // they are dropped as soon as they are known.
        let room = report.room();
        let parsed = web::block(move || {
            let mut refused = 0usize;
            lines
                .into_iter()
                .filter(|(_, line)| line.iter().any(|b| !b.is_ascii_whitespace()))
                .map(|(no, line)| {
                    let outcome = parse_checked(&line, &snapshot, &settings).map_err(|rejection| {
                        refused += 1;
                        (refused <= room).then_some(rejection.error)
                    });
                    (no, outcome)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(ApiError::internal)?;
        for (no, result) in parsed {
            report.lines += 1;
            match result {
                Ok(write) if self.caller.authorize_user(write.user_id).is_err() => {
                    report.reject(no, &ApiError::Forbidden);
                }
                Ok(write) => {
                    self.batch_points += write.rows.len();
                    self.batch.push(write);
                    self.batch_lines.push(no);
                    if self.batch_points >= self.state.settings.ingest_batch_points {
                        self.flush(report).await?;
                    }
                }
                Err(Some(error)) => report.reject(no, &error),
                Err(None) => report.count_rejected(),
            }
        }
        Ok(())
    }

    async fn flush(&mut self, report: &mut ingest::BulkReport) -> Result<(), ApiError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.batch);
        let lines = std::mem::take(&mut self.batch_lines);
        self.batch_points = 0;
        let partitions = self.state.partitions.clone();
        let append_hours = self.state.settings.rollup_append_hours;
        let written = self
            .state
            .heavy
            .run(move |conn| {
                Ok(ingest::write_batch(
                    conn,
                    &partitions,
                    &writes,
                    append_hours,
                ))
            })
            .await;
        match written {
            Ok(results) => report.record(&lines, results),
            // Nothing of this batch was written: say so for each of its lines.
            Err(e) => lines.iter().for_each(|&line| report.reject(line, &e)),
        }
        Ok(())
    }
}

/// Default page size of `GET /api/sessions/`.
pub const DEFAULT_LIST_LIMIT: i64 = 100;
/// Largest page size of `GET /api/sessions/`; larger `limit`s are capped to it.
pub const MAX_LIST_LIMIT: i64 = 1000;

/// `GET /api/sessions/?user_id=...`: the user's sessions, newest first, limit/offset
/// paginated.
#[utoipa::path(
    get,
    path = "/api/sessions/",
    operation_id = "sessions_list",
    tag = "sessions",
    summary = "List a user's sessions",
    description = "Newest first, in DRF's limit/offset envelope. A user token may only list \
                   its own user's sessions (403 otherwise).",
    params(SessionListParams),
    responses(
        (status = 200, description = "One page.", body = SessionPage),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    params: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = serde_json::Map::new();
    let user = query_params::required_uuid(&params, "user_id", &mut errors);
    let page = LimitOffset::parse(&params, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, &mut errors);
    query_params::check(errors)?;
    let Some(user) = user else {
        return Err(ApiError::field("user_id", "This parameter is required."));
    };
    caller.authorize_user(user)?;
    let need = state.reads.need(user).await?;
    let (count, rows) = state
        .reads
        .run(need, (), move |conn| {
            session_service::list(conn, user, page.limit, page.offset)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.envelope(&req, count, rows)))
}

/// A session id from the path; anything that is not a UUID names no session (404, as
/// DRF's `<uuid:pk>` routes do).
fn session_id(path: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(path).map_err(|_| ApiError::NotFound("Not found.".into()))
}

/// `GET /api/sessions/{session_id}/`: the session and a per-series summary of its points.
#[utoipa::path(
    get,
    path = "/api/sessions/{session_id}/",
    operation_id = "sessions_retrieve",
    tag = "sessions",
    summary = "One session",
    description = "The session and a per-series summary of its points. With a user token, \
                   another user's session is a 404, exactly like one that does not exist.",
    params(("session_id" = String, Path, format = Uuid,
        description = "The session; anything that is not a UUID names no session (404).")),
    responses(
        (status = 200, description = "The session.", body = SessionDetail),
        (status = 404, response = crate::openapi::NotFound),
    )
)]
pub async fn detail(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    let visible_to = caller.restricted_to();
    // Whose session it is, from the primary; then its points from any server that holds
    // every write of that user so far.
    let row = db::run(&state.pool, move |conn| {
        session_service::locate(conn, id, visible_to)
    })
    .await?;
    let need = state.reads.need(row.user_id).await?;
    let detail = state
        .reads
        .run(need, (), move |conn| session_service::detail(conn, &row))
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// `DELETE /api/sessions/{session_id}/`: 204 once the session and its points are gone.
#[utoipa::path(
    delete,
    path = "/api/sessions/{session_id}/",
    operation_id = "sessions_destroy",
    tag = "sessions",
    summary = "Delete a session",
    description = "Deletes the session and all its points; the user's cached answers become \
                   unreachable at once. With a user token, another user's session is a 404, \
                   exactly like one that does not exist, and nothing is deleted.",
    params(("session_id" = String, Path, format = Uuid,
        description = "The session; anything that is not a UUID names no session (404).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, response = crate::openapi::NotFound),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    let visible_to = caller.restricted_to();
    // All of a session's points: heavy work.
    state
        .heavy
        .run(move |conn| session_service::delete(conn, id, visible_to))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------
// What the document says of the parameters and bodies this handler reads from a raw map
// or parses itself.

/// `GET /api/sessions/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SessionListParams {
    /// The user whose sessions are listed.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Page size; values over 1000 are capped to it. Default 100.
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// Sessions to skip. Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// A session of points, as `POST /api/sessions/` takes it (and each line of
/// `POST /api/sessions/bulk/`).
#[derive(ToSchema)]
#[schema(example = json!({
    "user_id": "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
    "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
    "start_ts": "2025-01-01T00:00:00Z",
    "data": [
        {"series": "session.urine.color", "time": "2025-01-01T00:01:00Z", "value": {"r": 255, "g": 255, "b": 255}},
        {"series": "session.example.series", "time": "2025-01-01T00:01:00Z", "value": {"value": "example value"}},
        {"series": "session.gut_health_score", "time": "2025-01-01T00:02:00Z", "value": {"value": 6}}
    ]
}))]
#[allow(dead_code)]
pub struct SessionBody {
    /// The user the session belongs to; a session never changes user.
    user_id: Uuid,
    /// The session; posting it again adds points and replaces changed ones.
    session_id: Uuid,
    /// When the session started (RFC 3339 with a zone), if known.
    #[schema(value_type = Option<String>, format = DateTime)]
    start_ts: Option<String>,
    /// The points; all are stored or none.
    data: Vec<PointBody>,
}

/// One point of a session.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PointBody {
    /// A series of the catalogue (`GET /api/metrictypes/`).
    #[schema(example = "session.urine.color")]
    series: String,
    /// RFC 3339 with a zone, years 1900–2200; kept to microseconds.
    #[schema(value_type = String, format = DateTime)]
    time: String,
    /// Any JSON valid against the series' schema; stored as sent. NaN and infinite
    /// numbers are refused.
    #[schema(value_type = Value, example = json!({"r": 255, "g": 255, "b": 255}))]
    value: serde_json::Value,
}

/// A limit/offset page of sessions (DRF's envelope).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SessionPage {
    /// Sessions in all pages.
    count: i64,
    /// The next page's absolute URL, `null` on the last.
    next: Option<String>,
    /// The previous page's absolute URL, `null` on the first.
    previous: Option<String>,
    /// Newest first.
    results: Vec<SessionView>,
}
