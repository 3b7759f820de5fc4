//! The API's own documentation, served from the binary: the OpenAPI document
//! (`GET /api/schema/`) and ReDoc (`GET /redoc/`, with its script at
//! `/redoc/redoc.standalone.js`; no CDN is involved).

use super::api_doc;
use crate::error::ApiError;
use crate::routes::query_params::check;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use serde_json::{Map, json};
use std::collections::HashMap;
use std::sync::LazyLock;
use utoipa::ToSchema;

/// ReDoc 2.5.4 from npm's `redoc` package (`bundles/redoc.standalone.js`, MIT; the
/// notices of what it bundles are in `assets/redoc.standalone.js.LICENSE.txt`).
static REDOC_JS: &[u8] = include_bytes!("../../assets/redoc.standalone.js");

/// The page: ReDoc rendering `/api/schema/`, its script from this server.
const REDOC_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>seriesd API</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="/api/schema/"></redoc>
<script src="/redoc/redoc.standalone.js"></script>
</body>
</html>
"#;

/// The formats of `GET /api/schema/`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DocumentFormat {
    Json,
    Yaml,
}

/// The document, rendered once.
static DOCUMENT_JSON: LazyLock<Result<String, String>> =
    LazyLock::new(|| api_doc::json().map_err(|e| e.to_string()));
static DOCUMENT_YAML: LazyLock<Result<String, String>> =
    LazyLock::new(|| api_doc::yaml().map_err(|e| e.to_string()));

#[utoipa::path(
    get,
    path = "/api/schema/",
    operation_id = "schema",
    tag = "documentation",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3.1 document of the API, as JSON (default) or YAML. The \
                   repository holds the same JSON as `openapi/openapi.json`.",
    params(
        ("format" = Option<DocumentFormat>, Query, description = "Default `json`."),
    ),
    responses(
        (status = 200, description = "The document.", content(
            (Object = "application/json"),
            (String = "application/yaml"),
        )),
        (status = 400, response = crate::openapi::BadRequest),
    )
)]
pub async fn schema(params: web::Query<HashMap<String, String>>) -> Result<HttpResponse, ApiError> {
    let mut errors = Map::new();
    let (document, content_type) = match params.get("format").map(|f| f.trim()) {
        None | Some("json") => (&*DOCUMENT_JSON, "application/json"),
        Some("yaml") => (&*DOCUMENT_YAML, "application/yaml"),
        Some(_) => {
            errors.insert("format".into(), json!(["Use json or yaml."]));
            (&*DOCUMENT_JSON, "application/json")
        }
    };
    check(errors)?;
    let body = document.as_ref().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .body(body.clone()))
}

#[utoipa::path(
    get,
    path = "/redoc/",
    operation_id = "redoc",
    tag = "documentation",
    summary = "ReDoc",
    description = "An HTML page rendering this document with ReDoc; its script comes from \
                   this server.",
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
    )
)]
pub async fn redoc() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(REDOC_HTML)
}

#[utoipa::path(
    get,
    path = "/redoc/redoc.standalone.js/",
    operation_id = "redoc_script",
    tag = "documentation",
    summary = "ReDoc's script",
    description = "ReDoc's standalone bundle (MIT), served by this server. Like every path \
                   it works without the trailing slash: `/redoc/redoc.standalone.js`.",
    responses(
        (status = 200, description = "The script.", body = String,
            content_type = "application/javascript"),
    )
)]
pub async fn redoc_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=86400"))
        .body(REDOC_JS)
}
