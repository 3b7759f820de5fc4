//! The nesting limit of JSON bodies (`MAX_JSON_DEPTH`), checked by one pass over the
//! bytes before anything parses them, so that no parser or validator ever recurses
//! deeper than the limit. (serde_json stops at 128 levels on its own; this makes the
//! limit configurable below that and gives the answer a clear message.)

/// A body nests arrays and objects deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub max: usize,
}

impl TooDeep {
    /// The message of the 400.
    pub fn message(self) -> String {
        format!(
            "JSON nested deeper than {} levels of arrays and objects (MAX_JSON_DEPTH).",
            self.max
        )
    }
}

/// Checks that `json` nests arrays and objects at most `max` levels deep. Brackets
/// inside strings do not count. Malformed JSON passes unless it is too deep: the parser
/// reports it.
pub fn check(json: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(TooDeep { max });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The deepest nesting of arrays and objects in a parsed value (a scalar is 0).
pub fn depth_of(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_arrays_and_objects_but_not_brackets_in_strings() {
        assert!(check(br#"{"a": [1, {"b": 2}]}"#, 3).is_ok());
        assert_eq!(
            check(br#"{"a": [1, {"b": [2]}]}"#, 3),
            Err(TooDeep { max: 3 })
        );
        assert!(check(br#"{"a": "[[[[{{{{\"[[[["}"#, 1).is_ok());
        assert!(check(br#""\\" [[["#, 2).is_err());
        assert!(check(b"42", 0).is_ok());
        assert!(check(b"[]", 0).is_err());
    }

    #[test]
    fn ten_thousand_levels_are_refused_at_once() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(check(deep.as_bytes(), 64), Err(TooDeep { max: 64 }));
        assert!(TooDeep { max: 64 }.message().contains("MAX_JSON_DEPTH"));
    }

    #[test]
    fn agrees_with_the_parsed_depth() {
        for text in [
            r#"{"user_id": "x", "data": [{"value": {"r": 1, "g": [2, {"h": 3}]}}]}"#,
            r#"[[], [[]], {"a": {}}, "]]]]"]"#,
            r#"{"a\"[": [1]}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let d = depth_of(&v);
            assert!(check(text.as_bytes(), d).is_ok(), "{text}");
            assert!(check(text.as_bytes(), d - 1).is_err(), "{text}");
        }
    }
}
