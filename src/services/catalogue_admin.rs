//! Reading and changing the metric-type catalogue over the API: validated input
//! ([`SeriesName`], [`MetricTypeInput`]), listing, create, replace and delete.
//!
//! Every change reloads this process's [`Catalogue`] at once; other replicas follow
//! through the `catalogue_version` trigger. Changing a schema never rewrites stored
//! points. Deleting a type that has points needs `force`, which deletes them too and
//! bumps the generation of every user who had any, so their cached answers go stale.

use crate::db::metric_types::{MetricTypeRow, NewMetricType};
use crate::db::{generations, metric_types};
use crate::domain::timestamp::format_utc;
use crate::error::ApiError;
use crate::services::catalogue::Catalogue;
use diesel::Connection;
use diesel::pg::PgConnection;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// The longest series name (the column is `varchar(255)`).
pub const MAX_SERIES_LEN: usize = 255;

/// A series name: 1–255 characters from `A-Z a-z 0-9 _ . : -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesName(String);

impl SeriesName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("This field may not be blank.".into());
        }
        if s.chars().count() > MAX_SERIES_LEN {
            return Err(format!(
                "Ensure this field has no more than {MAX_SERIES_LEN} characters."
            ));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
        {
            return Err(format!(
                "Invalid character {bad:?}: a series name may only contain letters, digits, '_', '.', ':' and '-'."
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a series aggregates when a query names no `agg_func`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Measure,
    Count,
    Sample,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Self::Measure, Self::Count, Self::Sample];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "measure" => Ok(Self::Measure),
            "count" => Ok(Self::Count),
            "sample" => Ok(Self::Sample),
            _ => Err(format!(
                "\"{}\" is not a valid choice; use measure, count or sample.",
                s.chars().take(40).collect::<String>()
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Measure => "measure",
            Self::Count => "count",
            Self::Sample => "sample",
        }
    }
}

/// DRF's message for a NUL character, which PostgreSQL can store neither in `text` nor
/// in `jsonb`.
const NUL_MESSAGE: &str = "Null characters are not allowed.";

/// Whether any string or key in `v` holds a NUL character.
fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Checks that `schema` is a JSON Schema (Draft 7 or later) that compiles as the service
/// applies it ([`compile_schema`](crate::services::catalogue::compile_schema): linear-time
/// patterns only) and can be stored; the error is the validator's message.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err("A JSON Schema must be an object or a boolean.".into());
    }
    if holds_nul(schema) {
        return Err(NUL_MESSAGE.into());
    }
    if let Some(uri) = schema.get("$schema").and_then(Value::as_str)
        && (uri.contains("draft-04") || uri.contains("draft-06") || uri.contains("draft-03"))
    {
        return Err(format!(
            "'{}' is older than Draft 7; use Draft 7, 2019-09 or 2020-12.",
            uri.chars().take(80).collect::<String>()
        ));
    }
    jsonschema::meta::validate(schema).map_err(|e| {
        let path = e.instance_path().to_string();
        if path.is_empty() {
            e.to_string()
        } else {
            format!("{e} (at {path})")
        }
    })?;
    crate::services::catalogue::compile_schema(schema)?;
    Ok(())
}

/// A validated metric-type body (`POST` and `PUT`).
#[derive(Debug, Clone)]
pub struct MetricTypeInput {
    pub series: SeriesName,
    pub schema: Value,
    pub description: String,
    pub kind: Option<Kind>,
}

impl MetricTypeInput {
    /// Parses a JSON body. `path_series` is the name in the URL (`PUT`): the body's
    /// `series` may then be left out, and must match it when given. Every bad field is
    /// reported at once, DRF style.
    pub fn parse(body: &[u8], path_series: Option<&str>) -> Result<Self, ApiError> {
        let top: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))?;
        let Value::Object(fields) = top else {
            return Err(ApiError::field(
                "non_field_errors",
                "Invalid data. Expected a JSON object.",
            ));
        };
        let mut errors = Map::new();
        let mut error = |field: &str, message: String| {
            errors.insert(field.to_string(), json!([message]));
        };
        let series = match (fields.get("series"), path_series) {
            (None | Some(Value::Null), Some(path)) => {
                SeriesName::parse(path).map_err(|m| error("series", m)).ok()
            }
            (None, None) => {
                error("series", "This field is required.".into());
                None
            }
            (Some(Value::String(s)), path) => match SeriesName::parse(s) {
                Ok(name) if path.is_some_and(|p| p != name.as_str()) => {
                    error(
                        "series",
                        "Does not match the series name in the URL.".into(),
                    );
                    None
                }
                Ok(name) => Some(name),
                Err(m) => {
                    error("series", m);
                    None
                }
            },
            (Some(Value::Null), None) => {
                error("series", "This field may not be null.".into());
                None
            }
            (Some(_), _) => {
                error("series", "Not a valid string.".into());
                None
            }
        };
        let schema = match fields.get("schema") {
            None => {
                error("schema", "This field is required.".into());
                None
            }
            Some(Value::Null) => {
                error("schema", "This field may not be null.".into());
                None
            }
            Some(s) => match check_schema(s) {
                Ok(()) => Some(s.clone()),
                Err(m) => {
                    error("schema", m);
                    None
                }
            },
        };
        let description = match fields.get("description") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.contains('\0') => {
                error("description", NUL_MESSAGE.into());
                String::new()
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                error("description", "Not a valid string.".into());
                String::new()
            }
        };
        let kind = match fields.get("kind") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Kind::parse(s).map_err(|m| error("kind", m)).ok(),
            Some(_) => {
                error("kind", "Not a valid string.".into());
                None
            }
        };
        match (series, schema) {
            (Some(series), Some(schema)) if errors.is_empty() => Ok(Self {
                series,
                schema,
                description,
                kind,
            }),
            _ => Err(ApiError::Invalid(Value::Object(errors))),
        }
    }

    fn as_new(&self) -> NewMetricType<'_> {
        NewMetricType {
            series: self.series.as_str(),
            schema: &self.schema,
            description: &self.description,
            kind: self.kind.map(Kind::name),
        }
    }
}

/// A metric type as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "series": "session.urine.color",
    "schema": {"type": "object", "properties": {"r": {"type": "number"}, "g": {"type": "number"}, "b": {"type": "number"}}, "required": ["r", "g", "b"]},
    "description": "Urine color as RGB",
    "kind": null,
    "created_at": "2025-01-01T00:00:00Z",
    "updated_at": "2025-01-01T00:00:00Z"
}))]
pub struct MetricTypeView {
    pub series: String,
    /// The JSON Schema every value of the series must match.
    #[schema(value_type = Value)]
    pub schema: Value,
    pub description: String,
    /// How the series aggregates by default; `null` means `measure`.
    #[schema(value_type = Option<Kind>)]
    pub kind: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<MetricTypeRow> for MetricTypeView {
    fn from(r: MetricTypeRow) -> Self {
        Self {
            series: r.series,
            schema: r.schema,
            description: r.description,
            kind: r.kind,
            created_at: format_utc(r.created_at),
            updated_at: format_utc(r.updated_at),
        }
    }
}

/// The total number of types and one page of them, ordered by series.
pub fn list(
    conn: &mut PgConnection,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<MetricTypeView>), ApiError> {
    let total = metric_types::count(conn)?;
    let rows = metric_types::page(conn, limit, offset)?;
    Ok((total, rows.into_iter().map(Into::into).collect()))
}

fn not_found(series: &str) -> ApiError {
    ApiError::NotFound(format!(
        "No metric type '{}'.",
        series.chars().take(255).collect::<String>()
    ))
}

/// One type by name.
pub fn get(conn: &mut PgConnection, series: &str) -> Result<MetricTypeView, ApiError> {
    // A name no type can have (one with a NUL would not even reach PostgreSQL).
    if SeriesName::parse(series).is_err() {
        return Err(not_found(series));
    }
    metric_types::get(conn, series)?
        .map(Into::into)
        .ok_or_else(|| not_found(series))
}

/// Reloads this process's catalogue after a committed change. A failure only delays the
/// change here until the next version check (within a second), so it is logged, not
/// answered.
fn reload(conn: &mut PgConnection, catalogue: &Catalogue) {
    if let Err(e) = catalogue.reload(conn) {
        tracing::warn!(error = %e, "catalogue reload after a change failed; the version check will retry");
    }
}

/// Creates a type; 409 if the series exists.
pub fn create(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
    input: &MetricTypeInput,
) -> Result<MetricTypeView, ApiError> {
    let row = metric_types::insert(conn, &input.as_new())?.ok_or_else(|| {
        ApiError::Conflict(format!(
            "Metric type '{}' already exists; use PUT /api/metrictypes/{}/ to replace it.",
            input.series.as_str(),
            input.series.as_str()
        ))
    })?;
    reload(conn, catalogue);
    Ok(row.into())
}

/// Creates the type or replaces its schema, description and kind; `true` when created.
pub fn replace(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
    input: &MetricTypeInput,
) -> Result<(MetricTypeView, bool), ApiError> {
    let (row, created) = metric_types::upsert(conn, &input.as_new())?;
    reload(conn, catalogue);
    Ok((row.into(), created))
}

/// Deletes a type. With points stored: 409, unless `force`, which deletes them in the
/// same transaction and bumps their users' generations.
pub fn delete(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
    series: &str,
    force: bool,
) -> Result<(), ApiError> {
    if SeriesName::parse(series).is_err() {
        return Err(not_found(series));
    }
    conn.transaction(|conn| {
        let row = metric_types::lock(conn, series)?.ok_or_else(|| not_found(series))?;
        if force {
            let users = metric_types::delete_points(conn, row.id)?;
            generations::bump(conn, &users)?;
        } else if metric_types::has_points(conn, row.id)? {
            return Err(ApiError::Conflict(format!(
                "Metric type '{series}' has stored points; add ?force=true to delete them with it."
            )));
        }
        crate::db::rollups::forget_series(conn, row.id)?;
        metric_types::delete(conn, row.id)?;
        Ok(())
    })?;
    reload(conn, catalogue);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_names_allow_dots_colons_and_dashes_only() {
        for ok in ["session.urine.color", "a", "x:y-z_1", &"a".repeat(255)] {
            assert!(SeriesName::parse(ok).is_ok(), "{ok}");
        }
        assert!(SeriesName::parse("").is_err());
        assert!(
            SeriesName::parse(&"a".repeat(256))
                .unwrap_err()
                .contains("255")
        );
        for bad in ["a b", "a/b", "é", "a,b", "a*"] {
            assert!(SeriesName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemas_are_checked_against_their_meta_schema() {
        assert!(check_schema(&json!({"type": "number"})).is_ok());
        assert!(check_schema(&json!(true)).is_ok());
        let e = check_schema(&json!({"type": "nope"})).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        assert!(check_schema(&json!({"minimum": "zero"})).is_err());
        assert!(check_schema(&json!("number")).is_err());
        assert!(
            check_schema(&json!({"$schema": "http://json-schema.org/draft-04/schema#"}))
                .unwrap_err()
                .contains("Draft 7")
        );
        // Meta-valid (formats are not asserted) but the pattern does not compile.
        assert!(check_schema(&json!({"type": "string", "pattern": "("})).is_err());
        // Valid ECMA 262, but only a backtracking engine runs look-around and
        // backreferences, so they are refused, naming where they are.
        for pattern in ["^(a|aa)+(?=c)$", "^(a)\\1$", "(?<!x)y"] {
            let e =
                check_schema(&json!({"properties": {"code": {"pattern": pattern}}})).unwrap_err();
            assert!(
                e.contains("linear-time") && e.contains("/properties/code/pattern"),
                "{e}"
            );
        }
        let e = check_schema(&json!({"patternProperties": {"^(?=a)": {}}})).unwrap_err();
        assert!(e.contains("patternProperties"), "{e}");
        assert!(check_schema(&json!({"pattern": "^[a-f0-9]{6}$", "format": "email"})).is_ok());
        // Valid, but PostgreSQL's jsonb cannot hold a NUL, in a key or in a string.
        for nul in [
            json!({"description": "a\u{0}b"}),
            json!({"properties": {"a\u{0}": {}}}),
            json!({"enum": [["x", "\u{0}"]]}),
        ] {
            assert_eq!(check_schema(&nul).unwrap_err(), NUL_MESSAGE, "{nul}");
        }
    }

    #[test]
    fn bodies_report_every_bad_field() {
        let err = MetricTypeInput::parse(
            br#"{"series": "a b", "schema": {"type": 1}, "kind": "avg", "description": 3}"#,
            None,
        )
        .unwrap_err();
        let ApiError::Invalid(v) = err else {
            panic!("{err:?}")
        };
        for f in ["series", "schema", "kind", "description"] {
            assert!(v[f].is_array(), "{f}: {v}");
        }
        let ok = MetricTypeInput::parse(br#"{"schema": {"type": "number"}}"#, Some("x.y")).unwrap();
        assert_eq!(ok.series.as_str(), "x.y");
        assert_eq!(ok.kind, None);
        assert!(
            MetricTypeInput::parse(br#"{"series": "x.z", "schema": true}"#, Some("x.y")).is_err()
        );
        assert!(matches!(
            MetricTypeInput::parse(b"{", None),
            Err(ApiError::BadRequest(_))
        ));
    }
}
