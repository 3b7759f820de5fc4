//! What the OpenAPI 3.1 document of the HTTP API is made of, below the handlers that
//! point to it: error bodies and reusable error responses ([`responses`]), the value
//! sets of query parameters ([`schemas`]), and the conventions every operation shares
//! ([`conventions`]: the bearer-token scheme and the responses any operation may give).
//!
//! The document itself is assembled from the handlers' `#[utoipa::path]` annotations in
//! `routes::api_doc`; it is served at `GET /api/schema/` (ReDoc at `GET /redoc/`) and
//! committed as `openapi/openapi.json` (`make openapi` rewrites it; a test fails when the
//! two differ).

pub mod conventions;
pub mod responses;
pub mod schemas;

pub use crate::error::body::{
    BadRequestBody, ErrorDetail, FieldError, ItemErrors, ValidationErrors,
};
pub use conventions::{Conventions, SECURITY_SCHEME};
pub use responses::*;
pub use schemas::{INTERVAL_NAMES, IntervalParam, TimeParam};
