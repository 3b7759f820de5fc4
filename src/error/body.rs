//! The JSON bodies [`super::ApiError`] answers with, as types the OpenAPI document
//! describes (DRF's shapes: field errors, or a detail).

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

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
