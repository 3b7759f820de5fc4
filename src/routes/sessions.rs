//! `POST /api/sessions/`: ingest one session of points.

use crate::db;
use crate::error::ApiError;
use crate::services::ingest::{self, Rejection, SessionWrite};
use crate::startup::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;

/// Bodies larger than this are parsed on the blocking pool, off the async workers.
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// Reads the whole body, refusing it with 413 as soon as it passes `limit`.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<BytesMut, ApiError> {
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
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("Could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn parse(state: &web::Data<AppState>, body: web::Bytes) -> Result<SessionWrite, ApiError> {
    let max_points = state.settings.max_points_per_request;
    let snapshot = state.catalogue.snapshot();
    let first = if body.len() <= INLINE_PARSE_LIMIT {
        ingest::parse_session(&body, &snapshot, max_points)
    } else {
        let body = body.clone();
        web::block(move || ingest::parse_session(&body, &snapshot, max_points))
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
            web::block(move || ingest::parse_session(&body, &fresh, max_points))
                .await
                .map_err(ApiError::internal)?
                .map_err(|r| r.error)
        }
        Err(r) => Err(r.error),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.settings.max_body_bytes)
        .await?
        .freeze();
    let write = parse(&state, body).await?;
    let outcome = state.ingestor.submit(write).await?;
    Ok(HttpResponse::Created().json(outcome))
}
