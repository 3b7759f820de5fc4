//! HTTP only: extract, convert to domain types, call a service, respond.
//!
//! Every path is registered with a trailing slash; `NormalizePath` (in `startup`) adds
//! the slash to requests that lack it, so both forms work.

pub mod health;
pub mod metric_types;
pub mod metrics;
pub mod points;
pub mod query_params;
pub mod sessions;
pub mod timeseries;

use crate::error::ApiError;
use actix_web::{HttpRequest, HttpResponse, web};

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics/")
            .name("metrics")
            .route(web::get().to(metrics::metrics))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/health/")
            .name("health")
            .route(web::get().to(health::health))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/sessions/")
            .name("sessions")
            .route(web::post().to(sessions::create))
            .route(web::get().to(sessions::list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/sessions/bulk/")
            .name("sessions-bulk")
            .route(web::post().to(sessions::bulk))
            .default_service(web::to(method_not_allowed)),
    )
    // After `bulk/`, which would otherwise be taken for a session id.
    .service(
        web::resource("/api/sessions/{session_id}/")
            .name("session")
            .route(web::get().to(sessions::detail))
            .route(web::delete().to(sessions::delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/metrictypes/")
            .name("metric-types")
            .route(web::get().to(metric_types::list))
            .route(web::post().to(metric_types::create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        // Series names may hold dots and colons; the handlers validate the name.
        web::resource("/api/metrictypes/{series}/")
            .name("metric-type")
            .route(web::get().to(metric_types::get))
            .route(web::put().to(metric_types::replace))
            .route(web::delete().to(metric_types::delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/timeseries/latest/")
            .name("timeseries-latest")
            .route(web::get().to(points::latest))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/timeseries/points/")
            .name("timeseries-points")
            .route(web::get().to(points::points))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/timeseries/")
            .name("timeseries")
            .route(web::get().to(timeseries::timeseries))
            .default_service(web::to(method_not_allowed)),
    );
}

/// The JSON 405 of every resource.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!(
        "Method \"{}\" not allowed.",
        req.method()
    )))
}

/// The JSON 404 of the whole app.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not found.".into()))
}
