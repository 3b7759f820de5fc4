//! A point's value as the API accepts it: JSON with no object key twice at any depth,
//! and no number that queries aggregate beyond ±[`MAX_NUMBER_MAGNITUDE`].
//!
//! A value is stored exactly as sent, so a duplicate key would be checked against its
//! schema by its last occurrence (what `serde_json::Value` keeps) yet stored and exported
//! with both. [`parse`] builds the `Value` in one pass, as `serde_json::from_str` does,
//! refusing the second occurrence of a key instead of overwriting the first.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// The largest magnitude of a number queries aggregate (a bare value, an object's
/// `value`, its other numeric fields). Aggregates and rollups sum the squares of values
/// in `float8`: beyond about 1e154 one square overflows, and sums of many squares of
/// numbers near it would too.
pub const MAX_NUMBER_MAGNITUDE: f64 = 1e150;

/// The message for a number beyond [`MAX_NUMBER_MAGNITUDE`].
pub const TOO_LARGE: &str =
    "Numbers beyond ±1e150 are not accepted: sums of squares would overflow.";

/// Why a value was refused by [`parse`].
#[derive(Debug)]
pub enum ValueError {
    /// An object holds this key twice.
    DuplicateKey(String),
    /// Not JSON (or JSON serde_json cannot carry, such as `1e999`).
    Json(serde_json::Error),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateKey(k) => {
                let shown: String = k.chars().take(64).collect();
                write!(f, "Duplicate key '{shown}' in value.")
            }
            Self::Json(e) => write!(f, "Invalid JSON value: {e}"),
        }
    }
}

/// Parses JSON text into a `Value`, refusing any object that holds a key twice.
pub fn parse(text: &str) -> Result<Value, ValueError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match duplicate.into_inner() {
        Some(key) => ValueError::DuplicateKey(key),
        None => ValueError::Json(e),
    })
}

/// Refuses any number beyond [`MAX_NUMBER_MAGNITUDE`] among the main number and the
/// numeric fields of a value.
pub fn check_magnitudes<'a>(
    main: Option<f64>,
    fields: impl IntoIterator<Item = &'a f64>,
) -> Result<(), &'static str> {
    let too_large = |x: &f64| x.abs() > MAX_NUMBER_MAGNITUDE;
    if main.as_ref().is_some_and(too_large) || fields.into_iter().any(too_large) {
        return Err(TOO_LARGE);
    }
    Ok(())
}

/// A `Value` deserialiser that records the first duplicate key it meets (the parser's
/// own error then carries only a position, so the key travels on the side).
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot carry"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(access.next_value_seed(self)?);
                }
                Entry::Occupied(taken) => {
                    *self.duplicate.borrow_mut() = Some(taken.key().clone());
                    return Err(de::Error::custom("duplicate key"));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_serde_json_parses_them() {
        for text in [
            r#"{"r": 255, "g": 1.5, "b": -2, "note": "x", "ok": true, "n": null}"#,
            r#"[1, [2, {"a": [3]}], "s", 18446744073709551615, -9223372036854775808]"#,
            "3.25",
            r#""text""#,
            "  {}  ",
        ] {
            let strict = parse(text).unwrap();
            let plain: Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict, plain, "{text}");
        }
    }

    #[test]
    fn a_key_twice_at_any_depth_is_refused_by_name() {
        for (text, key) in [
            (r#"{"r":999,"g":1,"b":2,"r":3}"#, "r"),
            (r#"{"a": [{"x": 1, "x": 1}]}"#, "x"),
            (r#"[{"deep": {"k": 1, "k": 2}}]"#, "k"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                matches!(&e, ValueError::DuplicateKey(k) if k == key),
                "{e:?}"
            );
            assert_eq!(e.to_string(), format!("Duplicate key '{key}' in value."));
        }
        // The same key in sibling objects is fine.
        assert!(parse(r#"[{"a": 1}, {"a": 2}]"#).is_ok());
    }

    #[test]
    fn malformed_text_is_a_json_error() {
        for text in ["{", "1e999", "[1,]", "{} {}", "NaN"] {
            assert!(matches!(parse(text), Err(ValueError::Json(_))), "{text}");
        }
    }

    #[test]
    fn magnitudes_beyond_the_limit_are_refused() {
        assert!(check_magnitudes(Some(1e150), &[-1e150, 0.0]).is_ok());
        assert_eq!(check_magnitudes(Some(-1.1e150), &[]), Err(TOO_LARGE));
        assert_eq!(check_magnitudes(None, &[1.0, 1e200]), Err(TOO_LARGE));
        assert!(check_magnitudes(None, &[]).is_ok());
    }
}
