//! `/api/metrictypes/`: the catalogue of series. Any token may read it; creating,
//! replacing and deleting need an admin token (`Caller::require_admin`, checked before
//! the body is read).

use crate::auth::Caller;
use crate::db;
use crate::domain::json_depth;
use crate::error::ApiError;
use crate::routes::query_params::{LimitOffset, bool_param, check};
use crate::routes::sessions::read_body;
use crate::services::catalogue_admin::Kind;
use crate::services::catalogue_admin::{self, MetricTypeInput, MetricTypeView};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Map;
use std::collections::BTreeMap;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

/// Default page size of the list.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size of the list; larger `limit`s are capped to it.
pub const MAX_LIMIT: i64 = 1000;

/// Reads a metric-type body: size, time and nesting limits, then the fields.
async fn read_input(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    series: Option<&str>,
) -> Result<MetricTypeInput, ApiError> {
    let body = read_body(req, payload, &state.settings, None).await?;
    json_depth::check(&body, state.settings.max_json_depth)
        .map_err(|e| ApiError::BadRequest(e.message()))?;
    MetricTypeInput::parse(&body, series)
}

/// `GET /api/metrictypes/`: a limit/offset page, ordered by series.
#[utoipa::path(
    get,
    path = "/api/metrictypes/",
    operation_id = "metrictypes_list",
    tag = "metric types",
    summary = "List the metric types",
    description = "The catalogue, by series name, in DRF's limit/offset envelope.",
    params(MetricTypeListParams),
    responses(
        (status = 200, description = "One page.", body = MetricTypePage),
        (status = 400, response = crate::openapi::BadRequest),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/metrictypes/{series}/",
    operation_id = "metrictypes_retrieve",
    tag = "metric types",
    summary = "One metric type",
    params(("series" = String, Path, description = "The series name: 1–255 characters from `A-Z a-z 0-9 _ . : -`.",
        pattern = "^[A-Za-z0-9_.:-]{1,255}$", example = "session.urine.color")),
    responses(
        (status = 200, description = "The metric type.", body = MetricTypeView),
        (status = 404, response = crate::openapi::NotFound),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let series = path.into_inner();
    let view = db::run(&state.pool, move |conn| catalogue_admin::get(conn, &series)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /api/metrictypes/`: 201, or 409 when the series exists.
#[utoipa::path(
    post,
    path = "/api/metrictypes/",
    operation_id = "metrictypes_create",
    tag = "metric types",
    summary = "Create a metric type",
    description = "Adds a series to the catalogue (admin tokens only). The schema must \
                   itself be a valid JSON Schema.",
    request_body(content = MetricTypeCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = MetricTypeView),
        (status = 400, description = "Malformed JSON (`detail`), or field errors: a missing or \
            bad series name, an invalid JSON Schema, an unknown kind.",
            body = crate::openapi::BadRequestBody,
            example = json!({"schema": ["\"nope\" is not valid under any of the schemas listed in the 'anyOf' keyword (at /type)"]})),
        (status = 409, description = "The series exists.", body = crate::openapi::ErrorDetail,
            example = json!({"detail": "Metric type 'lab.ph' already exists; use PUT /api/metrictypes/lab.ph/ to replace it."})),
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
    caller.require_admin()?;
    let input = read_input(&state, &req, payload, None).await?;
    let catalogue = state.catalogue.clone();
    let view = db::run(&state.pool, move |conn| {
        catalogue_admin::create(conn, &catalogue, &input)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `PUT /api/metrictypes/{series}/`: creates (201) or replaces (200) the type.
#[utoipa::path(
    put,
    path = "/api/metrictypes/{series}/",
    operation_id = "metrictypes_update",
    tag = "metric types",
    summary = "Create or replace a metric type",
    description = "Replaces the schema, description and kind (admin tokens only). Stored \
                   points are not re-validated or rewritten.",
    params(("series" = String, Path, description = "The series name: 1–255 characters from `A-Z a-z 0-9 _ . : -`.",
        pattern = "^[A-Za-z0-9_.:-]{1,255}$", example = "session.urine.color")),
    request_body(content = MetricTypeReplace, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced.", body = MetricTypeView),
        (status = 201, description = "Created.", body = MetricTypeView),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 408, response = crate::openapi::RequestTimeout),
    )
)]
pub async fn replace(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let input = read_input(&state, &req, payload, Some(&path)).await?;
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
#[utoipa::path(
    delete,
    path = "/api/metrictypes/{series}/",
    operation_id = "metrictypes_destroy",
    tag = "metric types",
    summary = "Delete a metric type",
    description = "Removes the series from the catalogue (admin tokens only). A series \
                   with points needs `force=true`, which deletes its points too.",
    params(
        ("series" = String, Path, description = "The series name: 1–255 characters from `A-Z a-z 0-9 _ . : -`.",
        pattern = "^[A-Za-z0-9_.:-]{1,255}$", example = "session.urine.color"),
        ("force" = Option<bool>, Query, description = "Also delete the series' points. \
            Accepts `true`/`false`, `1`/`0`, `yes`/`no`. Default `false`."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "The series has points and `force` is not set.",
            body = crate::openapi::ErrorDetail,
            example = json!({"detail": "Metric type 'lab.ph' has stored points; add ?force=true to delete them with it."})),
        (status = 403, response = crate::openapi::Forbidden),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let mut errors = Map::new();
    let force = bool_param(&params, "force", &mut errors);
    check(errors)?;
    let series = path.into_inner();
    let catalogue = state.catalogue.clone();
    let delete = move |conn: &mut diesel::PgConnection| {
        catalogue_admin::delete(conn, &catalogue, &series, force)
    };
    // With `force`, every point of the series goes: heavy work.
    if force {
        state.heavy.run(delete).await?;
    } else {
        db::run(&state.pool, delete).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------
// What the document says of the parameters and bodies this handler reads from a raw map
// or parses itself.

/// `GET /api/metrictypes/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MetricTypeListParams {
    /// Page size; values over 1000 are capped to it. Default 100.
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// Types to skip. Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// A metric type to create (`POST /api/metrictypes/`).
#[derive(ToSchema)]
#[schema(example = json!({
    "series": "lab.ph",
    "schema": {"type": "number", "minimum": 0, "maximum": 14},
    "description": "Urine pH",
    "kind": "measure"
}))]
#[allow(dead_code)]
pub struct MetricTypeCreate {
    /// The series name: 1–255 characters from `A-Z a-z 0-9 _ . : -`.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,255}$")]
    series: String,
    /// A JSON Schema (Draft 7, 2019-09 or 2020-12) every value of the series must match:
    /// an object or a boolean.
    #[schema(value_type = JsonSchemaDoc)]
    schema: serde_json::Value,
    /// Free text. Default empty.
    description: Option<String>,
    /// How the series aggregates by default; `null` means `measure`.
    kind: Option<Kind>,
}

/// A metric type's new definition (`PUT /api/metrictypes/{series}/`).
#[derive(ToSchema)]
#[schema(example = json!({
    "schema": {"type": "number", "minimum": 0, "maximum": 14},
    "description": "Urine pH",
    "kind": "measure"
}))]
#[allow(dead_code)]
pub struct MetricTypeReplace {
    /// May be left out (or `null`); when given it must equal the name in the URL.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,255}$")]
    series: Option<String>,
    /// A JSON Schema (Draft 7, 2019-09 or 2020-12) every value of the series must match:
    /// an object or a boolean.
    #[schema(value_type = JsonSchemaDoc)]
    schema: serde_json::Value,
    /// Free text. Default empty.
    description: Option<String>,
    /// How the series aggregates by default; `null` means `measure`.
    kind: Option<Kind>,
}

/// A JSON Schema: an object or a boolean.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum JsonSchemaDoc {
    Object(BTreeMap<String, serde_json::Value>),
    Boolean(bool),
}

/// A limit/offset page of metric types (DRF's envelope).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MetricTypePage {
    /// Metric types in all pages.
    count: i64,
    /// The next page's absolute URL, `null` on the last.
    next: Option<String>,
    /// The previous page's absolute URL, `null` on the first.
    previous: Option<String>,
    /// By series name.
    results: Vec<MetricTypeView>,
}
