//! The OpenAPI 3.1 document of the HTTP API, built with `utoipa` from the handlers'
//! `#[utoipa::path]` annotations, and the schema types that only the document needs:
//! error bodies, reusable error responses, query-parameter sets and the value sets of
//! `agg_func`, `fill`, `interval`, `format` and `kind`.
//!
//! The same document is served at `GET /api/schema/` (ReDoc at `GET /redoc/`) and
//! committed as `openapi/openapi.json`; `make openapi` rewrites the file from
//! [`json`], and a test fails when the two differ.

use crate::domain::query::{AggFunc, Fill};
use crate::routes;
use crate::services::catalogue_admin::{Kind, MetricTypeView};
use crate::services::retrieval::Format;
use crate::services::sessions::SessionView;
use serde::Serialize;
use serde_json::json;
use std::borrow::Cow;
use std::collections::BTreeMap;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, header::HeaderBuilder};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};
use uuid::Uuid;

/// The document's description: what ReDoc shows above the operations.
const DESCRIPTION: &str = "\
A time-series metrics backend: post sessions of per-user metric points, each value \
validated against its series' JSON Schema, and ask for bucketed aggregates, the latest \
values or the raw points.

**Conventions** (those of Django REST framework):
- Every path works with and without its trailing slash.
- A client mistake is a `400` whose body names what is wrong: either field errors, an \
object mapping each field or parameter to a list of messages (for a list field such as \
`data`, one object per item, `{}` for a good item), or `{\"detail\": \"...\"}` when no \
field is to blame (malformed JSON, an unreadable body).
- Other errors are `{\"detail\": \"...\"}`: `401` (no valid token), `403` (the token \
may not do this), `404` (no such resource), `405` (a method the path does not serve; \
the `Allow` header lists those it does), `408` (the body stalled for \
`BODY_READ_TIMEOUT_MS`), `409` (a conflict with stored data), `413` (a body over \
`MAX_BODY_MIB`), `429` (the token's rate limit; retry after `Retry-After` seconds), \
`503` (the database is unavailable or a query outran `DB_STATEMENT_TIMEOUT_MS`; retry \
after `Retry-After` seconds).
- Times are RFC 3339 with a zone; answers write them in UTC (`Z`).

**Authentication**: every operation except `/health/`, `/metrics/`, `/api/schema/` and \
`/redoc/` needs an API token, `Authorization: Bearer <token>` (DRF's `Token <token>` \
works too). Tokens are made with `seriesd token create --admin` or `seriesd token \
create --user <uuid>`. An admin token may do everything; a user token may only post \
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
        routes::points::latest,
        routes::points::points,
        routes::metric_types::list,
        routes::metric_types::create,
        routes::metric_types::get,
        routes::metric_types::replace,
        routes::metric_types::delete,
        routes::health::health,
        routes::metrics::metrics,
        routes::docs::schema,
        routes::docs::redoc,
        routes::docs::redoc_script,
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
            TooManyRequests,
            Unavailable
        ),
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "sessions", description = "Posting sessions of points; the stored sessions."),
        (name = "timeseries", description = "Reading points back: bucketed aggregates, the latest values, raw points."),
        (name = "metric types", description = "The catalogue of series and their JSON Schemas."),
        (name = "service", description = "Health and Prometheus metrics of the service itself."),
        (name = "documentation", description = "This document and ReDoc."),
    ),
)]
pub struct ApiDoc;

/// The name of the security scheme in the document.
pub const SECURITY_SCHEME: &str = "bearerAuth";

/// Declares the bearer-token scheme and puts it, with the `401` and `429` every
/// authenticated request may get, on every operation that is not public
/// ([`routes::PUBLIC_PATHS`]). Operations where a token's scope can be refused list
/// their `403` themselves.
pub struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sdk_ + 43 characters of base64url")
                    .description(Some(
                        "An API token from `seriesd token create`, as `Authorization: Bearer \
                         <token>` (or DRF's `Authorization: Token <token>`).",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if routes::is_public(path) {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![SecurityRequirement::new(
                    SECURITY_SCHEME,
                    Vec::<String>::new(),
                )]);
                for (status, name) in [("401", "Unauthorized"), ("429", "TooManyRequests")] {
                    op.responses
                        .responses
                        .insert(status.into(), RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

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

// ---------------------------------------------------------------------------------------
// Error bodies and reusable error responses.

/// An error that no single field is to blame for.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"detail": "Not found."}))]
pub struct ErrorDetail {
    /// What went wrong, for a person.
    pub detail: String,
}

/// DRF field errors: each key names a field or query parameter (or
/// `non_field_errors`), each value lists its messages. A list field such as `data`
/// holds one [`ItemErrors`] per item instead, `{}` for a good item.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"data": [{}, {"value": ["Value does not match schema: 300 is greater than the maximum of 255"]}]}))]
pub struct ValidationErrors(pub BTreeMap<String, Vec<FieldError>>);

/// One entry of a field's error list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FieldError {
    /// A message about the field.
    Message(String),
    /// The errors of one item of a list field, by the item's fields (`{}`: no error).
    Item(ItemErrors),
}

/// The errors of one item of a list (e.g. one point of `data`), by field.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"series": ["Unknown series 'nope'."]}))]
pub struct ItemErrors(pub BTreeMap<String, Vec<String>>);

/// The body of a 400: field errors, or a detail when no field is to blame.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BadRequestBody {
    Fields(ValidationErrors),
    Detail(ErrorDetail),
}

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
         `RATE_LIMIT_BURST`) allow. Retry after `Retry-After` seconds.",
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
         list); `Allow` names those it serves.",
        "ErrorDetail",
        json!({"detail": "Method \"PATCH\" not allowed."}),
    )
    .header(
        "Allow",
        HeaderBuilder::new()
            .schema(String::schema())
            .description(Some("The methods this path serves, e.g. `GET, POST`."))
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
        "The database is unavailable, or the query took longer than the statement \
         timeout. Safe to retry after `Retry-After` seconds.",
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

// ---------------------------------------------------------------------------------------
// Value sets of query parameters, from the types that parse them.

fn string_enum(description: &str, values: &[&str], example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .examples([json!(example)])
        .into()
}

impl PartialSchema for AggFunc {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = AggFunc::ALL.iter().map(|a| a.name()).collect();
        string_enum(
            "An aggregate: `avg, min, max, count, sum`; `first`, `last` by time; `median`, \
             `p90`, `p95`, `p99` (continuous percentiles); `stddev` (sample). Case is ignored.",
            &names,
            "avg",
        )
    }
}
impl ToSchema for AggFunc {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AggFunc")
    }
}

impl PartialSchema for Fill {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = Fill::ALL.iter().map(|f| f.name()).collect();
        string_enum(
            "Gap filling: `none` leaves empty buckets out; the others emit every bucket \
             from `start_time` to `end_time`, empty ones as `null`, `0`, the previous \
             value, or interpolated linearly. Case is ignored.",
            &names,
            "none",
        )
    }
}
impl ToSchema for Fill {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Fill")
    }
}

impl PartialSchema for Format {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        string_enum(
            "`json`: keyset-paginated pages; `csv` and `ndjson`: the whole range, \
             streamed as a download. Case is ignored.",
            &names,
            "json",
        )
    }
}
impl ToSchema for Format {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Format")
    }
}

impl PartialSchema for Kind {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        string_enum(
            "How the series aggregates when a query names no `agg_func`: `measure` \
             (`avg`), `count` (`sum`) or `sample` (`last`).",
            &names,
            "measure",
        )
    }
}
impl ToSchema for Kind {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Kind")
    }
}

/// `interval`: a named bucket width or a fixed width.
pub struct IntervalParam;

/// The named widths `interval` accepts.
pub const INTERVAL_NAMES: &[&str] = &[
    "sec", "second", "min", "minute", "hour", "day", "week", "month", "quarter", "year",
];

impl PartialSchema for IntervalParam {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(INTERVAL_NAMES.iter().copied()))
                    .description(Some(
                        "A named width: `sec`, `min`, `hour` are fixed; `day`, `week` \
                         (from Monday), `month`, `quarter`, `year` are calendar buckets in \
                         `tz`.",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]{1,9}[smhdw]$"))
                    .description(Some(
                        "A fixed width: a positive whole number of seconds, minutes, hours, \
                         days or weeks (`30s`, `5m`, `3h`, `5d`, `2w`), at most 36525d (100 \
                         years), aligned like TimescaleDB's `time_bucket` on \
                         2000-01-03T00:00:00Z.",
                    )),
            )
            .description(Some("The bucket width."))
            .examples([json!("week"), json!("5m")])
            .into()
    }
}
impl ToSchema for IntervalParam {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Interval")
    }
}

/// A time in a query parameter: RFC 3339 with a zone, or a date (midnight UTC).
pub struct TimeParam;

impl PartialSchema for TimeParam {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime),
            )))
            .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date),
            )))
            .description(Some(
                "RFC 3339 with a zone (`2025-01-01T00:05:00Z`), or `YYYY-MM-DD` meaning \
                 midnight UTC; years 1900–2200.",
            ))
            .examples([json!("2025-01-01T00:00:00Z"), json!("2025-01-01")])
            .into()
    }
}
impl ToSchema for TimeParam {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TimeParam")
    }
}

// ---------------------------------------------------------------------------------------
// Query parameters of the handlers that read a raw query map.

/// `GET /api/timeseries/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TimeseriesParams {
    /// The user whose points are read.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Only this session's points.
    session_id: Option<Uuid>,
    /// Comma-separated patterns, each matched against the whole series name: a regular
    /// expression (`session.urine.*`), or, if it is not a valid one, a `*` glob
    /// (`*.color`). At most 32 patterns of 256 characters. Default: every series.
    #[param(example = "session.*")]
    series: Option<String>,
    /// The bucket width. Default `week`.
    #[param(value_type = Option<IntervalParam>)]
    interval: Option<String>,
    /// Start of the range, inclusive. Default: `end_time` minus 7 days.
    #[param(value_type = Option<TimeParam>)]
    start_time: Option<String>,
    /// End of the range, inclusive. Default: now.
    #[param(value_type = Option<TimeParam>)]
    end_time: Option<String>,
    /// The aggregate. Default: by the series' kind (`avg`; `sum` for `count`, `last` for
    /// `sample`).
    agg_func: Option<AggFunc>,
    /// An IANA time zone for calendar buckets and bucket labels. Default `UTC`.
    #[param(example = "Europe/Paris")]
    tz: Option<String>,
    /// Gap filling. Default `none`.
    fill: Option<Fill>,
    /// Trailing moving average over the last N buckets of each series, after the fill.
    #[param(minimum = 1, maximum = 1000)]
    smooth: Option<u32>,
}

/// `GET /api/timeseries/latest/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LatestParams {
    /// The user whose points are read.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Series patterns, as for `GET /api/timeseries/`. Default: every series.
    #[param(example = "session.urine.*")]
    series: Option<String>,
    /// The latest point at or before this time. Default: now.
    #[param(value_type = Option<TimeParam>)]
    as_of: Option<String>,
    /// Only this session's points.
    session_id: Option<Uuid>,
}

/// `GET /api/timeseries/points/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PointsParams {
    /// The user whose points are read.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Series patterns, as for `GET /api/timeseries/`. Default: every series.
    series: Option<String>,
    /// Start of the range, inclusive. Default: from the first point.
    #[param(value_type = Option<TimeParam>)]
    start_time: Option<String>,
    /// End of the range, inclusive. Default: to the last point.
    #[param(value_type = Option<TimeParam>)]
    end_time: Option<String>,
    /// Only this session's points.
    session_id: Option<Uuid>,
    /// The answer's format. Default `json`.
    format: Option<Format>,
    /// The JSON page size (exports ignore it); values over 10,000 are capped to it.
    /// Default 1000.
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// A `next_cursor` from a previous page: continue strictly after that point.
    #[param(
        pattern = "^[A-Za-z0-9_-]{39}$",
        example = "AQAGKpm9n-cAAAAABB8cPDaKbkpSnR4_G3wOmhE"
    )]
    cursor: Option<String>,
}

/// `GET /api/sessions/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SessionListParams {
    /// The user whose sessions are listed.
    #[param(example = "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")]
    user_id: Uuid,
    /// Page size; values over 1000 are capped to it. Default 100.
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// Sessions to skip. Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

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

// ---------------------------------------------------------------------------------------
// Bodies.

/// A session of points, as `POST /api/sessions/` takes it (and each line of
/// `POST /api/sessions/bulk/`).
#[derive(ToSchema)]
#[schema(example = json!({
    "user_id": "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
    "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
    "start_ts": "2025-01-01T00:00:00Z",
    "data": [
        {"series": "session.urine.color", "time": "2025-01-01T00:01:00Z", "value": {"r": 255, "g": 255, "b": 255}},
        {"series": "session.example.series", "time": "2025-01-01T00:01:00Z", "value": {"value": "example value"}},
        {"series": "session.gut_health_score", "time": "2025-01-01T00:02:00Z", "value": {"value": 6}}
    ]
}))]
#[allow(dead_code)]
pub struct SessionBody {
    /// The user the session belongs to; a session never changes user.
    user_id: Uuid,
    /// The session; posting it again adds points and replaces changed ones.
    session_id: Uuid,
    /// When the session started (RFC 3339 with a zone), if known.
    #[schema(value_type = Option<String>, format = DateTime)]
    start_ts: Option<String>,
    /// The points; all are stored or none.
    data: Vec<PointBody>,
}

/// One point of a session.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PointBody {
    /// A series of the catalogue (`GET /api/metrictypes/`).
    #[schema(example = "session.urine.color")]
    series: String,
    /// RFC 3339 with a zone, years 1900–2200; kept to microseconds.
    #[schema(value_type = String, format = DateTime)]
    time: String,
    /// Any JSON valid against the series' schema; stored as sent. NaN and infinite
    /// numbers are refused.
    #[schema(value_type = Value, example = json!({"r": 255, "g": 255, "b": 255}))]
    value: serde_json::Value,
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

// ---------------------------------------------------------------------------------------
// Pages.

/// A limit/offset page of sessions (DRF's envelope).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SessionPage {
    /// Sessions in all pages.
    count: i64,
    /// The next page's absolute URL, `null` on the last.
    next: Option<String>,
    /// The previous page's absolute URL, `null` on the first.
    previous: Option<String>,
    /// Newest first.
    results: Vec<SessionView>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_1_with_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&json().unwrap()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, methods) in routes::ROUTES {
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
        for (path, methods) in routes::ROUTES {
            for method in *methods {
                let op = &doc["paths"][path][method.to_ascii_lowercase()];
                let public = routes::is_public(path);
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

    #[test]
    fn interval_names_all_parse() {
        for name in INTERVAL_NAMES {
            assert!(
                crate::domain::interval::Interval::parse(name).is_ok(),
                "{name}"
            );
        }
    }
}
