//! Response headers the whole service shares: the security headers every response
//! carries, and CORS (off unless `CORS_ALLOWED_ORIGINS` names origins).

use crate::config::CorsOrigins;
use actix_cors::Cors;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;

/// The content security policy. Answers are JSON or text, which need nothing; ReDoc
/// (`/redoc/`) loads its script from this server, fetches `/api/schema/`, injects
/// `<style>` elements (styled-components), starts its search worker from a `blob:` URL
/// and draws a few `data:` images; the explorer (`/ui/`) needs less (its modules and
/// style sheets from this server, its requests to it). Nothing else is allowed, and no
/// page may be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// Headers added to every response that does not set its own.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        // Answers are per token: no shared cache may keep them (a response that may be
        // kept, such as ReDoc's script, says so itself).
        .add((header::CACHE_CONTROL, "no-store"))
}

/// CORS for the configured origins; `None` when CORS is off.
pub fn cors(origins: &CorsOrigins) -> Option<Cors> {
    let base = || {
        Cors::default()
            .allowed_methods(["GET", "POST", "PUT", "DELETE"])
            .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            .expose_headers([
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                header::CONTENT_DISPOSITION,
                header::HeaderName::from_static("x-cache"),
                header::HeaderName::from_static("x-downsampled"),
                header::HeaderName::from_static("x-points-total"),
                header::HeaderName::from_static("x-points-kept"),
            ])
            .max_age(3600)
            // An origin not on the list gets no CORS headers (the browser then keeps
            // the answer from the script) rather than an error, so same-origin and
            // non-browser clients are unaffected.
            .block_on_origin_mismatch(false)
    };
    match origins {
        CorsOrigins::Off => None,
        CorsOrigins::Any => Some(base().allow_any_origin()),
        CorsOrigins::List(list) => Some(
            list.iter()
                .fold(base(), |cors, origin| cors.allowed_origin(origin)),
        ),
    }
}
