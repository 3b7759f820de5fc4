//! HTTP only: extract, convert to domain types, call a service, respond.
//!
//! Every path is registered with a trailing slash; `NormalizePath` (in `startup`) adds
//! the slash to requests that lack it, so both forms work. The one table below,
//! [`ROUTES`], is both what [`configure`] registers and what the OpenAPI test compares
//! the document against, so a route cannot be added without being documented.
//! [`PUBLIC_PATHS`] (kept by [`crate::auth`]) lists the few that need no token; the
//! others all do.

pub mod api_doc;
pub mod docs;
pub mod erasure;
pub mod head;
pub mod health;
pub mod metric_types;
pub mod metrics;
pub mod points;
pub mod query_params;
pub mod sessions;
pub mod timeseries;
pub mod ui;

use crate::error::ApiError;
use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, ResponseError, guard, web};

/// Declares the route table once and expands it into [`ROUTES`] and [`configure`].
/// Each resource answers the methods it lists (and `HEAD` where it lists `GET`, see
/// [`head`]) and a JSON 405 (with `Allow`) to others.
macro_rules! routes {
    ($( $path:literal as $name:literal { $( $method:ident => $handler:path ),+ $(,)? } )+) => {
        /// Every resource the server registers, in registration order: its path (as the
        /// OpenAPI document writes it) and its methods.
        pub const ROUTES: &[(&str, &[&str])] = &[ $( ($path, &[ $( stringify!($method) ),+ ]) ),+ ];

        /// Registers every route of [`ROUTES`].
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        .name($name)
                        $( .route(method_route(Method::$method).to($handler)) )+
                        .default_service(web::to(|req: HttpRequest| {
                            method_not_allowed(req, &[ $( stringify!($method) ),+ ])
                        })),
                );
            )+
        }
    };
}

routes! {
    "/metrics/" as "metrics" { GET => metrics::metrics }
    "/health/" as "health" { GET => health::health }
    "/api/sessions/" as "sessions" {
        POST => sessions::create,
        GET => sessions::list,
    }
    "/api/sessions/bulk/" as "sessions-bulk" { POST => sessions::bulk }
    // After `bulk/`, which would otherwise be taken for a session id.
    "/api/sessions/{session_id}/" as "session" {
        GET => sessions::detail,
        DELETE => sessions::delete,
    }
    "/api/metrictypes/" as "metric-types" {
        GET => metric_types::list,
        POST => metric_types::create,
    }
    // Series names may hold dots and colons; the handlers validate the name.
    "/api/metrictypes/{series}/" as "metric-type" {
        GET => metric_types::get,
        PUT => metric_types::replace,
        DELETE => metric_types::delete,
    }
    "/api/timeseries/latest/" as "timeseries-latest" { GET => points::latest }
    "/api/timeseries/points/" as "timeseries-points" { GET => points::points }
    "/api/timeseries/" as "timeseries" {
        GET => timeseries::timeseries,
        DELETE => erasure::delete_range,
    }
    "/api/users/{user_id}/" as "user" { DELETE => erasure::erase_user }
    "/api/schema/" as "schema" { GET => docs::schema }
    "/redoc/" as "redoc" { GET => docs::redoc }
    // Registered with the slash like every path; the page asks for it without one.
    "/redoc/redoc.standalone.js/" as "redoc-script" { GET => docs::redoc_script }
    "/ui/" as "explorer" { GET => ui::page }
    "/ui/{file}/" as "explorer-file" { GET => ui::file }
}

pub use crate::auth::{PUBLIC_PATHS, is_public};

/// The route of `method`; a `GET` route answers `HEAD` too (RFC 9110: the same answer
/// without its body, which [`head::drop_head_bodies`] removes).
fn method_route(method: Method) -> actix_web::Route {
    if method == Method::GET {
        web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
    } else {
        web::method(method)
    }
}

/// What the `Allow` header of a resource serving `methods` says: those, and `HEAD`
/// after `GET`.
pub fn allow_header(methods: &[&str]) -> String {
    let mut allowed: Vec<&str> = methods.to_vec();
    if allowed.contains(&"GET") && !allowed.contains(&"HEAD") {
        allowed.push("HEAD");
    }
    allowed.join(", ")
}

/// The JSON 405 of every resource, with the `Allow` header RFC 9110 asks for.
pub async fn method_not_allowed(
    req: HttpRequest,
    allowed: &'static [&'static str],
) -> HttpResponse {
    let mut response =
        ApiError::MethodNotAllowed(format!("Method \"{}\" not allowed.", req.method()))
            .error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow_header(allowed)) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// The JSON 404 of the whole app.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not found.".into()))
}
