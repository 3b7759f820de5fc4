//! The one error type of the HTTP API, [`ApiError`], and how it becomes a response.
//!
//! Use it as the error of every handler and service function that can fail because of a
//! request. The variant decides the status, never the message text:
//!
//! | variant | status | body |
//! |---|---|---|
//! | `Invalid` | 400 | DRF field errors, e.g. `{"data": [{}, {"series": ["..."]}]}` |
//! | `BadRequest` | 400 | `{"detail": "..."}` |
//! | `Unauthorized` | 401 + `WWW-Authenticate` | `{"detail": "..."}` (no, or no valid, token) |
//! | `Forbidden` | 403 | `{"detail": "You do not have permission to perform this action."}` |
//! | `NotFound` | 404 | `{"detail": "..."}` |
//! | `MethodNotAllowed` | 405 | `{"detail": "..."}` |
//! | `RequestTimeout` | 408 | `{"detail": "..."}` (a client too slow to send its body) |
//! | `Conflict` | 409 | `{"detail": "..."}` |
//! | `PayloadTooLarge` | 413 | `{"detail": "..."}` |
//! | `Unprocessable` | 422 | `{"detail": "..."}` (the stored data cannot give this answer) |
//! | `TooManyRequests` | 429 + `Retry-After` | `{"detail": "..."}` |
//! | `Unavailable` | 503 + `Retry-After` | `{"detail": "..."}` |
//! | `Internal` | 500 | an opaque `{"detail": "Internal server error."}`; the cause is logged |
//!
//! Failures that are not about a request (start-up, CLI commands) use `anyhow`-style
//! boxed errors in `main` instead.

pub mod body;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};
use std::fmt;

/// The error of start-up and command-line code, where any cause ends the program with
/// its message (requests answer [`ApiError`] instead).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub enum ApiError {
    /// Field-level validation errors in DRF's shape.
    Invalid(Value),
    BadRequest(String),
    /// No credentials, or credentials that are not an active token. The message never
    /// repeats what was sent.
    Unauthorized {
        detail: &'static str,
        /// RFC 6750's `error` attribute of `WWW-Authenticate` (`invalid_token`), if any.
        error: Option<&'static str>,
    },
    /// The token may not do this. The body is always the same, so that it never tells
    /// whether another user or their data exists.
    Forbidden,
    NotFound(String),
    MethodNotAllowed(String),
    RequestTimeout(String),
    Conflict(String),
    PayloadTooLarge(String),
    /// The request is valid, but the stored data cannot give its answer (an aggregate
    /// beyond double precision).
    Unprocessable(String),
    /// The token is over one of its limits (its request rate, or the exports or bulk
    /// loads it may run at once); `detail` names the setting. It may retry after
    /// `retry_after_secs`.
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    /// The database (or another dependency we cannot do without) is unavailable.
    Unavailable(String),
    /// A bug or an unexpected failure; the message is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// `{"field": ["message"]}`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(json!({ field: [message.into()] }))
    }

    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// 429: the token is over its rate limit (`RATE_LIMIT_PER_SEC`) for this long.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::TooManyRequests {
            detail: format!(
                "Request was throttled (RATE_LIMIT_PER_SEC). Expected available in {retry_after_secs} second{}.",
                if retry_after_secs == 1 { "" } else { "s" }
            ),
            retry_after_secs,
        }
    }

    /// 429: the token already runs `limit` pieces of `work` (\"exports\"), the most the
    /// setting `setting` lets it run at once.
    pub fn too_many_at_once(setting: &str, limit: usize, work: &str) -> Self {
        Self::TooManyRequests {
            detail: format!(
                "Request was throttled ({setting}): this token already runs {limit} {work}, \
                 the most it may run at once. Retry when one finishes."
            ),
            retry_after_secs: u64::from(RETRY_AFTER_SECS),
        }
    }
}

/// The body of every 403.
pub const FORBIDDEN_DETAIL: &str = "You do not have permission to perform this action.";

/// The `WWW-Authenticate` challenge of every 401 (RFC 6750), without an error attribute.
pub const AUTH_CHALLENGE: &str = "Bearer realm=\"seriesd\"";

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(v) => write!(f, "invalid input: {v}"),
            Self::Unauthorized { detail, .. } => f.write_str(detail),
            Self::Forbidden => f.write_str(FORBIDDEN_DETAIL),
            Self::TooManyRequests { detail: m, .. }
            | Self::BadRequest(m)
            | Self::NotFound(m)
            | Self::MethodNotAllowed(m)
            | Self::RequestTimeout(m)
            | Self::Conflict(m)
            | Self::PayloadTooLarge(m)
            | Self::Unprocessable(m)
            | Self::Unavailable(m)
            | Self::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ApiError {}

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 2;

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        let body = match self {
            Self::Invalid(v) => v.clone(),
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                json!({ "detail": "Internal server error." })
            }
            Self::Unavailable(m) => {
                builder.insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()));
                json!({ "detail": m })
            }
            Self::Unauthorized { detail, error } => {
                let challenge = match error {
                    Some(e) => format!("{AUTH_CHALLENGE}, error=\"{e}\""),
                    None => AUTH_CHALLENGE.to_string(),
                };
                builder.insert_header(("WWW-Authenticate", challenge));
                json!({ "detail": detail })
            }
            Self::TooManyRequests {
                detail,
                retry_after_secs,
            } => {
                builder.insert_header(("Retry-After", retry_after_secs.to_string()));
                json!({ "detail": detail })
            }
            other => json!({ "detail": other.to_string() }),
        };
        builder.json(body)
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        tracing::warn!(error = %e, "database pool checkout failed");
        Self::Unavailable("Database unavailable: no connection could be obtained in time.".into())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match &e {
            E::NotFound => Self::NotFound("Not found.".into()),
            E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, info) => {
                tracing::warn!(error = %info.message(), "database connection lost");
                Self::Unavailable("Database unavailable: the connection was lost.".into())
            }
            E::DatabaseError(_, info) if is_unavailable_message(info.message()) => {
                tracing::warn!(error = %info.message(), "database unavailable");
                Self::Unavailable("Database unavailable.".into())
            }
            E::DatabaseError(K::Unknown, info) if info.message().contains("statement timeout") => {
                Self::Unavailable(
                    "The query took longer than the statement timeout (DB_STATEMENT_TIMEOUT_MS)."
                        .into(),
                )
            }
            // SQLSTATE 22003 (numeric_value_out_of_range); diesel passes no code.
            E::DatabaseError(K::Unknown, info) if info.message().contains("out of range") => {
                Self::Unprocessable(OUT_OF_RANGE.into())
            }
            _ => Self::Internal(format!("database error: {e}")),
        }
    }
}

/// The detail of a query whose aggregate leaves double precision.
pub const OUT_OF_RANGE: &str = "An aggregate of these points lies beyond double precision \
    (a sum or a sum of squares past ±1.8e308): ask for another aggregate, another interval \
    or a narrower range.";

/// libpq reports a dead server through messages only (no SQLSTATE reaches diesel).
fn is_unavailable_message(message: &str) -> bool {
    [
        "server closed the connection",
        "terminating connection",
        "no connection to the server",
        "could not connect",
        "the database system is",
        "connection to server",
    ]
    .iter()
    .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(e: ApiError) -> (StatusCode, Value) {
        let resp = e.error_response();
        let status = resp.status();
        let bytes = to_bytes(resp.into_body()).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_web::test]
    async fn field_errors_keep_their_shape() {
        let (status, body) = body_of(ApiError::field("user_id", "Must be a valid UUID.")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"user_id": ["Must be a valid UUID."]}));
    }

    #[actix_web::test]
    async fn internal_errors_are_opaque() {
        let (status, body) = body_of(ApiError::internal("secret table missing")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"detail": "Internal server error."}));
    }

    #[actix_web::test]
    async fn auth_errors_carry_their_headers_and_say_nothing_more() {
        let resp = ApiError::Unauthorized {
            detail: "Invalid token.",
            error: Some("invalid_token"),
        }
        .error_response();
        assert_eq!(
            resp.headers().get("WWW-Authenticate").unwrap(),
            "Bearer realm=\"seriesd\", error=\"invalid_token\""
        );
        let (status, body) = body_of(ApiError::Forbidden).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body, json!({"detail": FORBIDDEN_DETAIL}));
        let resp = ApiError::rate_limited(3).error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "3");
        let (status, body) = body_of(ApiError::too_many_at_once(
            "MAX_EXPORTS_PER_TOKEN",
            2,
            "exports",
        ))
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body["detail"],
            "Request was throttled (MAX_EXPORTS_PER_TOKEN): this token already runs 2 \
             exports, the most it may run at once. Retry when one finishes."
        );
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let resp = ApiError::Unavailable("down".into()).error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "2");
    }
}
