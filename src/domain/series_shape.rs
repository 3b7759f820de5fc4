//! The shape of a series, decided from its metric type's JSON Schema: how its values
//! aggregate.
//! - *number*: a bare number or `{value: number}`: aggregated to a number;
//! - *fields*: an object with other numeric fields (`{r, g, b}`): each field aggregated,
//!   the value is an object;
//! - *other* (strings, anything else): the first value of the bucket, the last with
//!   `agg_func=last`, the number of points with `count` (the seed's behaviour).

use serde_json::Value;

/// How a series' values aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    Number,
    Fields,
    Other,
}

fn is_numeric_schema(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "number" || t == "integer",
        Some(Value::Array(ts)) => {
            !ts.is_empty()
                && ts
                    .iter()
                    .all(|t| t == "number" || t == "integer" || t == "null")
                && ts.iter().any(|t| t == "number" || t == "integer")
        }
        _ => false,
    }
}

/// The shape of a series, from its schema.
pub fn shape_of(schema: &Value) -> Shape {
    if is_numeric_schema(schema) {
        return Shape::Number;
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Shape::Other;
    };
    let numeric: Vec<&String> = props
        .iter()
        .filter(|(_, s)| is_numeric_schema(s))
        .map(|(k, _)| k)
        .collect();
    match numeric.as_slice() {
        [] => Shape::Other,
        [only] if only.as_str() == "value" => Shape::Number,
        _ => Shape::Fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_come_from_schemas() {
        assert_eq!(shape_of(&json!({"type": "number"})), Shape::Number);
        assert_eq!(
            shape_of(&json!({"type": "object", "properties": {"value": {"type": "number"}}})),
            Shape::Number
        );
        assert_eq!(
            shape_of(
                &json!({"type": "object", "properties": {"r": {"type": "number"}, "g": {"type": "integer"}}})
            ),
            Shape::Fields
        );
        assert_eq!(
            shape_of(&json!({"type": "object", "properties": {"value": {"type": "string"}}})),
            Shape::Other
        );
    }
}
