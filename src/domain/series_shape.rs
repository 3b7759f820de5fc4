//! The shape of a series, decided from its metric type's JSON Schema: how its values
//! aggregate.
//! - *number*: a bare number or `{value: number}`: aggregated to a number;
//! - *fields*: an object with other numeric fields (`{r, g, b}`): each field aggregated,
//!   the value is an object;
//! - *other* (strings, anything else): the first value of the bucket, the last with
//!   `agg_func=last`, the number of points with `count` (the seed's behaviour).
//!
//! The shape also decides the [`Measure`] a series is downsampled by (`max_points`).

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

/// The numeric fields a *fields* series' schema declares, by name (`["b", "g", "r"]`): the
/// keys every bucket of its aggregates holds. Empty for other shapes.
pub fn numeric_fields(schema: &Value) -> Vec<String> {
    if shape_of(schema) != Shape::Fields {
        return Vec::new();
    }
    let mut names: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, s)| is_numeric_schema(s))
        .map(|(k, _)| k.clone())
        .collect();
    names.sort();
    names
}

/// The number of a point that downsampling (LTTB) weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// The main number, as ingest extracts it: a bare number, or the object's `value`.
    Main,
    /// The object's numeric field of this name (any but `value`).
    Field(String),
}

/// What a series is downsampled by: a *number* series by its number; a *fields* series
/// by its first numeric field in name order (`b` of `{r, g, b}`: schemas are stored as
/// `jsonb`, which keeps no declaration order, and name order is the order aggregates
/// list the fields in); an *other* series by none.
pub fn measure_of(schema: &Value) -> Option<Measure> {
    match shape_of(schema) {
        Shape::Number => Some(Measure::Main),
        Shape::Other => None,
        Shape::Fields => schema
            .get("properties")
            .and_then(Value::as_object)?
            .iter()
            .filter(|(_, s)| is_numeric_schema(s))
            .map(|(k, _)| k)
            .min()
            .map(|k| match k.as_str() {
                "value" => Measure::Main,
                _ => Measure::Field(k.clone()),
            }),
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

    #[test]
    fn fields_series_name_their_numeric_fields() {
        let color = json!({"properties": {
            "r": {"type": "number"}, "g": {"type": "number"}, "b": {"type": "integer"},
            "note": {"type": "string"}}});
        assert_eq!(numeric_fields(&color), ["b", "g", "r"]);
        assert!(numeric_fields(&json!({"type": "number"})).is_empty());
        assert!(numeric_fields(&json!({"properties": {"value": {"type": "number"}}})).is_empty());
    }

    #[test]
    fn measures_are_the_number_or_the_first_numeric_field_by_name() {
        assert_eq!(measure_of(&json!({"type": "number"})), Some(Measure::Main));
        assert_eq!(
            measure_of(&json!({"properties": {"value": {"type": "number"}}})),
            Some(Measure::Main)
        );
        assert_eq!(
            measure_of(&json!({"properties": {
                "r": {"type": "number"}, "g": {"type": "number"}, "b": {"type": "integer"},
                "a": {"type": "string"}}})),
            Some(Measure::Field("b".into()))
        );
        assert_eq!(
            measure_of(
                &json!({"properties": {"a": {"type": "number"}, "value": {"type": "number"}}})
            ),
            Some(Measure::Field("a".into()))
        );
        assert_eq!(
            measure_of(
                &json!({"properties": {"value": {"type": "number"}, "y": {"type": "number"}}})
            ),
            Some(Measure::Main)
        );
        assert_eq!(
            measure_of(&json!({"properties": {"value": {"type": "string"}}})),
            None
        );
    }
}
