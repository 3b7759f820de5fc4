//! `/api/metrictypes/`: the catalogue of series. Reading is open; creating, replacing
//! and deleting go through [`require_admin`], the one place where the admin check will
//! live once authentication exists.

use crate::db;
use crate::error::ApiError;
use crate::routes::query_params::{LimitOffset, check};
use crate::routes::sessions::read_body;
use crate::services::catalogue_admin::{self, MetricTypeInput};
use crate::startup::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, json};
use std::collections::HashMap;

/// Default page size of the list.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size of the list; larger `limit`s are capped to it.
pub const MAX_LIMIT: i64 = 1000;

/// Authorises a change to the catalogue. Authentication does not exist yet, so every
/// caller is allowed; every write handler calls this first.
fn require_admin(_req: &HttpRequest) -> Result<(), ApiError> {
    Ok(())
}

/// `GET /api/metrictypes/`: a limit/offset page, ordered by series.
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Map::new();
    let page = LimitOffset::parse(&params, DEFAULT_LIMIT, MAX_LIMIT, &mut errors);
    check(errors)?;
    let (count, rows) = db::run(&state.pool, move |conn| {
        catalogue_admin::list(conn, page.limit, page.offset)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page.envelope(&req, count, rows)))
}

/// `GET /api/metrictypes/{series}/`.
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let series = path.into_inner();
    let view = db::run(&state.pool, move |conn| catalogue_admin::get(conn, &series)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /api/metrictypes/`: 201, or 409 when the series exists.
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req)?;
    let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
    let input = MetricTypeInput::parse(&body, None)?;
    let catalogue = state.catalogue.clone();
    let view = db::run(&state.pool, move |conn| {
        catalogue_admin::create(conn, &catalogue, &input)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `PUT /api/metrictypes/{series}/`: creates (201) or replaces (200) the type.
pub async fn replace(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req)?;
    let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
    let input = MetricTypeInput::parse(&body, Some(&path))?;
    let catalogue = state.catalogue.clone();
    let (view, created) = db::run(&state.pool, move |conn| {
        catalogue_admin::replace(conn, &catalogue, &input)
    })
    .await?;
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// `DELETE /api/metrictypes/{series}/[?force=true]`: 204; 409 if points exist and
/// `force` is not set.
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req)?;
    let force = match params.get("force").map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => true,
        Some(v) if ["false", "0", "no"].contains(&v.as_str()) => false,
        Some(_) => {
            return Err(ApiError::Invalid(
                json!({"force": ["Must be true or false."]}),
            ));
        }
    };
    let series = path.into_inner();
    let catalogue = state.catalogue.clone();
    db::run(&state.pool, move |conn| {
        catalogue_admin::delete(conn, &catalogue, &series, force)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
