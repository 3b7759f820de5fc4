//! HTTP only: extract, convert to domain types, call a service, respond.
//!
//! Every path is registered with a trailing slash; `NormalizePath` (in `startup`) adds
//! the slash to requests that lack it, so both forms work.

pub mod health;
pub mod sessions;
pub mod timeseries;

use crate::error::ApiError;
use actix_web::{HttpRequest, HttpResponse, web};

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health/")
            .name("health")
            .route(web::get().to(health::health))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/sessions/")
            .name("sessions")
            .route(web::post().to(sessions::create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/sessions/bulk/")
            .name("sessions-bulk")
            .route(web::post().to(sessions::bulk))
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
