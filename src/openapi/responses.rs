//! The reusable error responses operations point to (`#/components/responses/...`),
//! with the error bodies of [`crate::error::body`].

use serde_json::json;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, header::HeaderBuilder};
use utoipa::{PartialSchema, ToResponse};

fn json_response(
    description: &str,
    schema: &str,
    example: serde_json::Value,
) -> utoipa::openapi::response::ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .example(Some(example))
            .build(),
    )
}

macro_rules! error_response {
    ($(#[$doc:meta])* $name:ident, $builder:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $builder.build().into())
            }
        }
    };
}

error_response!(
    /// 400: the request is invalid; the body says what and where.
    BadRequest,
    json_response(
        "The request is invalid: field errors naming each bad field or parameter, or a \
         detail when no field is to blame.",
        "BadRequestBody",
        json!({"user_id": ["This parameter is required."]}),
    )
);
error_response!(
    /// 401, with `WWW-Authenticate`.
    Unauthorized,
    json_response(
        "No token, a malformed `Authorization` header, or a token that is unknown or \
         revoked.",
        "ErrorDetail",
        json!({"detail": "Authentication credentials were not provided."}),
    )
    .header(
        "WWW-Authenticate",
        HeaderBuilder::new()
            .schema(String::schema())
            .description(Some(
                "`Bearer realm=\"seriesd\"`, with `error=\"invalid_token\"` when a token was \
                 sent but is not valid.",
            ))
            .build(),
    )
);
error_response!(
    /// 403.
    Forbidden,
    json_response(
        "The token may not do this: a user token asking about another user, or changing \
         the catalogue. The answer is the same whether or not the other user exists.",
        "ErrorDetail",
        json!({"detail": "You do not have permission to perform this action."}),
    )
);
error_response!(
    /// 408.
    RequestTimeout,
    json_response(
        "The client stopped sending its body for longer than `BODY_READ_TIMEOUT_MS`.",
        "ErrorDetail",
        json!({"detail": "The request body did not arrive in time: nothing was received for 30000 ms (BODY_READ_TIMEOUT_MS)."}),
    )
);
error_response!(
    /// 429, with `Retry-After`.
    TooManyRequests,
    json_response(
        "The token made more requests than `RATE_LIMIT_PER_SEC` (with bursts of \
         `RATE_LIMIT_BURST`) allow, or already runs as many exports \
         (`MAX_EXPORTS_PER_TOKEN`) or bulk loads (`MAX_BULK_LOADS_PER_TOKEN`) as it may run \
         at once; `detail` names the setting. Retry after `Retry-After` seconds.",
        "ErrorDetail",
        json!({"detail": "Request was throttled (RATE_LIMIT_PER_SEC). Expected available in 1 second."}),
    )
    .header("Retry-After", retry_after_header())
);
error_response!(
    /// 404.
    NotFound,
    json_response(
        "No such resource.",
        "ErrorDetail",
        json!({"detail": "Not found."})
    )
);
error_response!(
    /// 405, with `Allow`.
    MethodNotAllowed,
    json_response(
        "The path does not serve this method (answered to any method the path does not \
         list; a path that serves `GET` also serves `HEAD`); `Allow` names those it serves.",
        "ErrorDetail",
        json!({"detail": "Method \"PATCH\" not allowed."}),
    )
    .header(
        "Allow",
        HeaderBuilder::new()
            .schema(String::schema())
            .description(Some("The methods this path serves, e.g. `GET, POST, HEAD`."))
            .build(),
    )
);
error_response!(
    /// 409.
    Conflict,
    json_response(
        "The request conflicts with stored data; nothing was written.",
        "ErrorDetail",
        json!({"detail": "Session 1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11 belongs to another user."}),
    )
);
error_response!(
    /// 422.
    Unprocessable,
    json_response(
        "The stored points cannot give this answer: an aggregate lies beyond double precision.",
        "ErrorDetail",
        json!({"detail": crate::error::OUT_OF_RANGE}),
    )
);
error_response!(
    /// 413.
    PayloadTooLarge,
    json_response(
        "The body (or, for NDJSON, one line) is larger than `MAX_BODY_MIB`.",
        "ErrorDetail",
        json!({"detail": "Request body exceeds the limit of 64 MiB (MAX_BODY_MIB)."}),
    )
);
error_response!(
    /// 503, with `Retry-After`.
    Unavailable,
    json_response(
        "The database is unavailable, the query took longer than the statement timeout, \
         the work waited longer than allowed for its turn (`QUERY_QUEUE_TIMEOUT_MS`, \
         `HEAVY_QUEUE_TIMEOUT_MS`), or (ingest) the body's share of the ingest memory \
         budget (`INGEST_MEMORY_MIB`) did not come within `INGEST_MEMORY_WAIT_MS`. Safe to \
         retry after `Retry-After` seconds.",
        "ErrorDetail",
        json!({"detail": "Database unavailable: no connection could be obtained in time."}),
    )
    .header("Retry-After", retry_after_header())
);

/// The `Retry-After` header of a 503.
pub fn retry_after_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait before retrying."))
        .build()
}
