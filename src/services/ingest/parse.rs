//! Turning a posted session into rows: every point validated against its series' schema,
//! problems reported by point (all-or-nothing), the first [`MAX_LISTED_ERRORS`] of them
//! listed and the others counted.

use super::*;
use crate::db::points::PointRow;
use crate::domain::{point_value, timestamp};
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
/// point rejects the whole body, with DRF's positional list of point errors holding the
/// first [`MAX_LISTED_ERRORS`] bad points and a `non_field_errors` message counting the
/// others. Memory for errors stays bounded however many points are bad: good points are
/// not kept once one is bad, and only the listed errors are.
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

    let mut rows: Vec<PointRow> = Vec::with_capacity(items.len());
    // The first MAX_LISTED_ERRORS bad points by position; the others are only counted.
    let mut listed: Vec<(usize, Map<String, Value>)> = Vec::new();
    let mut bad_points = 0usize;
    for (i, raw) in items.iter().enumerate() {
        match parse_point(raw, catalogue) {
            Ok(row) if bad_points == 0 => rows.push(row),
            Ok(_) => {}
            Err((e, unknown)) => {
                unknown_series |= unknown;
                if bad_points == 0 {
                    // The body is refused: the rows parsed so far are of no more use.
                    rows = Vec::new();
                }
                bad_points += 1;
                if listed.len() < MAX_LISTED_ERRORS {
                    listed.push((i, e));
                }
            }
        }
    }
    if bad_points > 0 {
        if bad_points > listed.len() {
            errors.insert(
                "non_field_errors".into(),
                json!([format!(
                    "Only the first {} points with errors are listed in data; {} more points have errors.",
                    listed.len(),
                    thousands(bad_points - listed.len())
                )]),
            );
        }
        errors.insert("data".into(), positional_errors(listed));
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
    let rows = distinct_points(rows, user_id, session_id);
    Ok(SessionWrite {
        user_id,
        session_id,
        start_ts,
        rows,
        received,
    })
}

/// DRF's positional list of point errors: `{}` for each good point, up to the last
/// listed bad one.
fn positional_errors(listed: Vec<(usize, Map<String, Value>)>) -> Value {
    let len = listed.last().map_or(0, |(i, _)| i + 1);
    let mut data = vec![Value::Object(Map::new()); len];
    for (i, e) in listed {
        data[i] = Value::Object(e);
    }
    Value::Array(data)
}

/// Gives the rows their user and session and keeps one per (series, time), the later of
/// two in the request, in place (a session's rows are its largest allocation).
fn distinct_points(mut rows: Vec<PointRow>, user_id: Uuid, session_id: Uuid) -> Vec<PointRow> {
    let mut index: HashMap<(i32, DateTime<Utc>), usize> = HashMap::with_capacity(rows.len());
    // Rows before `kept` are distinct; those from `kept` to `next` are spent.
    let mut kept = 0;
    for next in 0..rows.len() {
        rows[next].user_id = user_id;
        rows[next].session_id = session_id;
        match index.entry((rows[next].series_id, rows[next].time)) {
            std::collections::hash_map::Entry::Occupied(at) => rows.swap(*at.get(), next),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(kept);
                rows.swap(kept, next);
                kept += 1;
            }
        }
    }
    rows.truncate(kept);
    rows
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
            Some(t) => match t.unusable() {
                None => Some(t.clone()),
                Some(reason) => {
                    errors.insert("series".into(), json!([reason]));
                    None
                }
            },
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
    let value = match value_raw.map(|r| point_value::parse(r.get())) {
        None => {
            errors.insert("value".into(), json!([REQUIRED]));
            None
        }
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.insert("value".into(), json!([e.to_string()]));
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
    let numbers = match (&series, &value) {
        (Some(_), Some(value)) if !errors.contains_key("value") => {
            let (num, fields) = extract_numbers(value);
            match point_value::check_magnitudes(num, fields.iter().map(|(_, f)| f)) {
                Ok(()) => Some((num, fields)),
                Err(m) => {
                    errors.insert("value".into(), json!([m]));
                    None
                }
            }
        }
        _ => None,
    };
    match (series, time, numbers, value_raw) {
        (Some(series), Some(time), Some((num, fields)), Some(raw)) if errors.is_empty() => {
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
