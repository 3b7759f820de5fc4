//! Turning a posted session into rows: every point validated against its series' schema,
//! all problems reported at once, by point (all-or-nothing).

use super::*;
use crate::db::points::PointRow;
use crate::domain::timestamp;
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Why a body was refused.
#[derive(Debug)]
pub struct Rejection {
    pub error: ApiError,
    /// Some point named a series not in the catalogue snapshot used.
    pub unknown_series: bool,
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            unknown_series: false,
        }
    }
}

pub(super) const REQUIRED: &str = "This field is required.";

pub(super) fn parse_uuid(raw: Option<&&RawValue>) -> Result<Uuid, String> {
    let raw = raw.ok_or(REQUIRED)?;
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::String(s)) => Uuid::parse_str(&s).map_err(|_| "Must be a valid UUID.".into()),
        Ok(Value::Null) => Err("This field may not be null.".into()),
        _ => Err("Must be a valid UUID.".into()),
    }
}

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Splits a value into what queries aggregate: the main number (a bare number, or an
/// object's numeric `value` field) and the object's other numeric fields, by name.
pub fn extract_numbers(value: &Value) -> (Option<f64>, Vec<(String, f64)>) {
    match value {
        Value::Number(n) => (n.as_f64(), Vec::new()),
        Value::Object(map) => {
            let num = map.get("value").and_then(Value::as_f64);
            let fields = map
                .iter()
                .filter(|(k, _)| k.as_str() != "value")
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect();
            (num, fields)
        }
        _ => (None, Vec::new()),
    }
}

/// Whether `value` holds a string that spells a non-finite number.
pub(super) fn spells_non_finite(value: &Value) -> bool {
    let bad = |s: &str| s.trim().parse::<f64>().is_ok_and(|f| !f.is_finite());
    match value {
        Value::String(s) => bad(s),
        Value::Object(map) => map
            .values()
            .any(|v| matches!(v, Value::String(s) if bad(s))),
        _ => false,
    }
}

/// Parses and validates a `POST /api/sessions/` body against the catalogue. Any bad
/// point rejects the whole body, with an error for every point by position.
pub fn parse_session(
    body: &[u8],
    catalogue: &Snapshot,
    max_points: usize,
) -> Result<SessionWrite, Rejection> {
    let top: &RawValue = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))?;
    if !top.get().trim_start().starts_with('{') {
        let kind = serde_json::from_str::<Value>(top.get())
            .map(|v| json_type(&v))
            .unwrap_or("something else");
        return Err(ApiError::Invalid(json!({"non_field_errors": [format!(
            "Invalid data. Expected an object, but got {kind}."
        )]}))
        .into());
    }
    // Each field stays raw, so that every `value` is stored exactly as sent.
    let fields: HashMap<String, &RawValue> = serde_json::from_str(top.get())
        .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))?;
    let mut errors = Map::new();
    let user_id = parse_uuid(fields.get("user_id"))
        .map_err(|m| errors.insert("user_id".into(), json!([m])))
        .ok();
    let session_id = parse_uuid(fields.get("session_id"))
        .map_err(|m| errors.insert("session_id".into(), json!([m])))
        .ok();
    let start_ts = match fields
        .get("start_ts")
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        None | Some(Ok(Value::Null)) => None,
        Some(Ok(Value::String(s))) => match timestamp::parse_rfc3339(&s) {
            Ok(t) => Some(t),
            Err(m) => {
                errors.insert("start_ts".into(), json!([m]));
                None
            }
        },
        Some(_) => {
            errors.insert(
                "start_ts".into(),
                json!(["Expected an RFC 3339 timestamp string or null."]),
            );
            None
        }
    };
    let mut unknown_series = false;
    let items: Vec<&RawValue> = match fields.get("data") {
        None => {
            errors.insert("data".into(), json!([REQUIRED]));
            Vec::new()
        }
        Some(raw) => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Ok(items) if items.len() > max_points => {
                errors.insert(
                    "data".into(),
                    json!([format!(
                        "Ensure this field has no more than {max_points} points (MAX_POINTS_PER_REQUEST)."
                    )]),
                );
                Vec::new()
            }
            Ok(items) => items,
            Err(_) => {
                errors.insert(
                    "data".into(),
                    json!(["Expected a list of points [{series, time, value}]."]),
                );
                Vec::new()
            }
        },
    };

    let mut point_errors: Vec<Value> = Vec::with_capacity(items.len());
    let mut any_point_error = false;
    let mut rows: Vec<PointRow> = Vec::with_capacity(items.len());
    for raw in &items {
        match parse_point(raw, catalogue) {
            Ok(row) => {
                point_errors.push(json!({}));
                rows.push(row);
            }
            Err((e, unknown)) => {
                unknown_series |= unknown;
                any_point_error = true;
                point_errors.push(Value::Object(e));
            }
        }
    }
    if any_point_error {
        errors.insert("data".into(), Value::Array(point_errors));
    }
    let (Some(user_id), Some(session_id)) = (user_id, session_id) else {
        return Err(Rejection {
            error: ApiError::Invalid(Value::Object(errors)),
            unknown_series,
        });
    };
    if !errors.is_empty() {
        return Err(Rejection {
            error: ApiError::Invalid(Value::Object(errors)),
            unknown_series,
        });
    }
    let received = rows.len();
    // One point per (series, time); the later one in the request wins.
    let mut index: HashMap<(i32, DateTime<Utc>), usize> = HashMap::with_capacity(rows.len());
    let mut distinct: Vec<PointRow> = Vec::with_capacity(rows.len());
    for mut row in rows {
        row.user_id = user_id;
        row.session_id = session_id;
        match index.get(&(row.series_id, row.time)) {
            Some(&i) => distinct[i] = row,
            None => {
                index.insert((row.series_id, row.time), distinct.len());
                distinct.push(row);
            }
        }
    }
    Ok(SessionWrite {
        user_id,
        session_id,
        start_ts,
        rows: distinct,
        received,
    })
}

/// One point; on failure the DRF error object for its position, and whether the
/// failure was an unknown series.
pub(super) fn parse_point(
    raw: &RawValue,
    catalogue: &Snapshot,
) -> Result<PointRow, (Map<String, Value>, bool)> {
    let mut errors = Map::new();
    let fields: BTreeMap<String, &RawValue> = match serde_json::from_str(raw.get()) {
        Ok(f) => f,
        Err(_) => {
            errors.insert(
                "non_field_errors".into(),
                json!(["Expected an object {series, time, value}."]),
            );
            return Err((errors, false));
        }
    };
    let mut unknown = false;
    let series = match fields
        .get("series")
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        None => {
            errors.insert("series".into(), json!([REQUIRED]));
            None
        }
        Some(Ok(Value::String(name))) => match catalogue.get(&name) {
            Some(t) => Some(t.clone()),
            None => {
                unknown = true;
                let shown: String = name.chars().take(255).collect();
                errors.insert(
                    "series".into(),
                    json!([format!("Unknown series '{shown}'.")]),
                );
                None
            }
        },
        Some(_) => {
            errors.insert("series".into(), json!(["Expected a series name (string)."]));
            None
        }
    };
    let time = match fields
        .get("time")
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        None => {
            errors.insert("time".into(), json!([REQUIRED]));
            None
        }
        Some(Ok(Value::String(s))) => match timestamp::parse_rfc3339(&s) {
            Ok(t) => Some(t),
            Err(m) => {
                errors.insert("time".into(), json!([m]));
                None
            }
        },
        Some(_) => {
            errors.insert(
                "time".into(),
                json!(["Expected an RFC 3339 timestamp string with a time zone."]),
            );
            None
        }
    };
    let value_raw = fields.get("value");
    let value = match value_raw.map(|r| serde_json::from_str::<Value>(r.get())) {
        None => {
            errors.insert("value".into(), json!([REQUIRED]));
            None
        }
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.insert("value".into(), json!([format!("Invalid JSON value: {e}")]));
            None
        }
    };
    if let (Some(series), Some(value)) = (&series, &value)
        && let Some(mut reason) = series.check(value)
    {
        if spells_non_finite(value) {
            reason.push_str(" (NaN and infinite numbers are not accepted)");
        }
        errors.insert("value".into(), json!([reason]));
    }
    match (series, time, value, value_raw) {
        (Some(series), Some(time), Some(value), Some(raw)) if errors.is_empty() => {
            let (num, fields) = extract_numbers(&value);
            Ok(PointRow {
                user_id: Uuid::nil(),
                series_id: series.id(),
                time,
                session_id: Uuid::nil(),
                num,
                fields,
                value: raw.get().to_string(),
            })
        }
        _ => Err((errors, unknown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_extracted_from_the_seed_shapes() {
        assert_eq!(extract_numbers(&json!(3.5)), (Some(3.5), vec![]));
        assert_eq!(extract_numbers(&json!({"value": 2})), (Some(2.0), vec![]));
        assert_eq!(
            extract_numbers(&json!({"r": 255, "g": 1.5, "b": 0, "note": "x", "ok": true})),
            (
                None,
                vec![("b".into(), 0.0), ("g".into(), 1.5), ("r".into(), 255.0)]
            )
        );
        assert_eq!(extract_numbers(&json!({"value": "text"})), (None, vec![]));
    }

    #[test]
    fn non_finite_spellings_are_spotted() {
        assert!(spells_non_finite(&json!({"value": "NaN"})));
        assert!(spells_non_finite(&json!("-Infinity")));
        assert!(!spells_non_finite(&json!({"value": "1.5"})));
    }
}
