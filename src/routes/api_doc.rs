//! The OpenAPI 3.1 document of the whole service, assembled with `utoipa` from the
//! handlers' `#[utoipa::path]` annotations and the parts in [`crate::openapi`].
//!
//! The same document is served at `GET /api/schema/` (ReDoc at `GET /redoc/`) and
//! committed as `openapi/openapi.json`; `make openapi` rewrites the file from [`json`],
//! and a test fails when the two differ.

use crate::domain::query::{AggFunc, Fill};
use crate::openapi::*;
use crate::routes;
use crate::services::catalogue_admin::Kind;
use crate::services::retrieval::Format;
use utoipa::OpenApi;

/// The document's description: what ReDoc shows above the operations.
const DESCRIPTION: &str = "\
A time-series metrics backend: post sessions of per-user metric points, each value \
validated against its series' JSON Schema, and ask for bucketed aggregates, the latest \
values or the raw points.

**Conventions** (those of Django REST framework):
- Every path works with and without its trailing slash, and every path that serves \
`GET` answers `HEAD` the same way, without the body.
- A client mistake is a `400` whose body names what is wrong: either field errors, an \
object mapping each field or parameter to a list of messages (for a list field such as \
`data`, one object per item, `{}` for a good item), or `{\"detail\": \"...\"}` when no \
field is to blame (malformed JSON, an unreadable body).
- Other errors are `{\"detail\": \"...\"}`: `401` (no valid token), `403` (the token \
may not do this), `404` (no such resource), `405` (a method the path does not serve; \
the `Allow` header lists those it does), `408` (the body stalled for \
`BODY_READ_TIMEOUT_MS`), `409` (a conflict with stored data), `413` (a body over \
`MAX_BODY_MIB`), `429` (the token's rate limit, or as many exports or bulk loads as it \
may run at once; retry after `Retry-After` seconds), `503` (the database is \
unavailable, a query outran `DB_STATEMENT_TIMEOUT_MS`, the work waited too long for \
its turn, or an ingest body waited longer than `INGEST_MEMORY_WAIT_MS` for its share of \
`INGEST_MEMORY_MIB`; retry after `Retry-After` seconds).
- Times are RFC 3339 with a zone; answers write them in UTC (`Z`).

**Authentication**: every operation except `/health/`, `/metrics/`, `/api/schema/`, \
`/redoc/` and the explorer's `/ui/` needs an API token, `Authorization: Bearer <token>` \
(DRF's `Token <token>` works too). Tokens are made with `seriesd token create --admin` \
or `seriesd token create --user <uuid>`. An admin token may do everything; a user token may only post \
and read its own user's data (another user's is a `403`, and another user's session \
is a `404`, exactly as if it did not exist) and may read, not change, the metric-type \
catalogue.";

/// The OpenAPI document of the whole service.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "seriesd",
        description = DESCRIPTION,
    ),
    paths(
        routes::sessions::create,
        routes::sessions::list,
        routes::sessions::bulk,
        routes::sessions::detail,
        routes::sessions::delete,
        routes::timeseries::timeseries,
        routes::erasure::delete_range,
        routes::points::latest,
        routes::points::points,
        routes::metric_types::list,
        routes::metric_types::create,
        routes::metric_types::get,
        routes::metric_types::replace,
        routes::metric_types::delete,
        routes::erasure::erase_user,
        routes::health::health,
        routes::metrics::metrics,
        routes::docs::schema,
        routes::docs::redoc,
        routes::docs::redoc_script,
        routes::ui::page,
        routes::ui::file,
    ),
    components(
        schemas(
            ErrorDetail,
            ValidationErrors,
            ItemErrors,
            FieldError,
            BadRequestBody,
            AggFunc,
            Fill,
            Format,
            Kind,
            IntervalParam,
            TimeParam,
            routes::docs::DocumentFormat,
            routes::ui::ExplorerFile,
        ),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            RequestTimeout,
            Conflict,
            PayloadTooLarge,
            Unprocessable,
            TooManyRequests,
            Unavailable
        ),
    ),
    modifiers(&Conventions),
    tags(
        (name = "sessions", description = "Posting sessions of points; the stored sessions."),
        (name = "timeseries", description = "Reading points back: bucketed aggregates, the latest values, raw points."),
        (name = "metric types", description = "The catalogue of series and their JSON Schemas."),
        (name = "users", description = "Erasing everything stored of a user."),
        (name = "service", description = "Health and Prometheus metrics of the service itself."),
        (name = "documentation", description = "This document and ReDoc."),
        (name = "explorer", description = "A page that draws a user's series in the browser, with the token its user gives it."),
    ),
)]
pub struct ApiDoc;

/// The document, with the crate's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // utoipa fills the licence and contact from Cargo metadata where it can; the crate
    // declares neither, so say nothing rather than something invented.
    doc.info.license = None;
    doc.info.contact = None;
    // utoipa makes a body optional only by making it nullable; an empty NDJSON stream is
    // a valid (empty) load, `null` is not.
    if let Some(body) = doc
        .paths
        .paths
        .get_mut("/api/sessions/bulk/")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    doc
}

/// The document as pretty-printed JSON with a final newline: the bytes of
/// `openapi/openapi.json` and of `GET /api/schema/`.
pub fn json() -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(&document())?;
    text.push('\n');
    Ok(text)
}

/// The document as YAML.
pub fn yaml() -> Result<String, String> {
    document().to_yaml().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_1_with_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&json().unwrap()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, methods) in super::super::ROUTES {
            for method in *methods {
                assert!(
                    doc["paths"][path][method.to_ascii_lowercase()].is_object(),
                    "{method} {path} is not documented"
                );
            }
        }
    }

    #[test]
    fn protected_operations_declare_the_token_and_its_refusals() {
        let doc: serde_json::Value = serde_json::from_str(&json().unwrap()).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"][SECURITY_SCHEME]["scheme"],
            "bearer"
        );
        for (path, methods) in super::super::ROUTES {
            for method in *methods {
                let op = &doc["paths"][path][method.to_ascii_lowercase()];
                let public = crate::auth::is_public(path);
                assert_eq!(op["security"].is_array(), !public, "{method} {path}");
                for status in ["401", "429"] {
                    assert_eq!(
                        op["responses"][status].is_object(),
                        !public,
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
