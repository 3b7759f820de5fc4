//! `seriesd seed`: the seed project's `seed_metric_types`, plus a string-valued series.

use crate::db::metric_types::{self, NewMetricType};
use diesel::QueryResult;
use diesel::pg::PgConnection;
use serde_json::{Value, json};

/// `(series, schema, description, kind)` of every seeded type.
pub fn seed_types() -> Vec<(&'static str, Value, &'static str, Option<&'static str>)> {
    let value_number = json!({
        "type": "object",
        "properties": {"value": {"type": "number"}},
        "required": ["value"],
        "additionalProperties": false
    });
    vec![
        (
            "session.gut_health_score",
            value_number.clone(),
            "Gut health score reported for a session, as {\"value\": number}.",
            None,
        ),
        (
            "session.urine.color",
            json!({
                "type": "object",
                "properties": {
                    "r": {"type": "number", "minimum": 0, "maximum": 255},
                    "g": {"type": "number", "minimum": 0, "maximum": 255},
                    "b": {"type": "number", "minimum": 0, "maximum": 255}
                },
                "required": ["r", "g", "b"],
                "additionalProperties": false
            }),
            "Urine colour as an RGB triple, {\"r\", \"g\", \"b\"} numbers from 0 to 255.",
            None,
        ),
        (
            "session.urine.night_count",
            value_number,
            "Number of night-time urinations in a session, as {\"value\": number}.",
            None,
        ),
        (
            "session.example.series",
            json!({
                "type": "object",
                "properties": {"value": {"type": "string"}},
                "required": ["value"],
                "additionalProperties": false
            }),
            "A free-text series, as {\"value\": string} (the seed README's example).",
            None,
        ),
    ]
}

/// Inserts the seeded types that are missing; changes nothing that exists.
pub fn seed_metric_types(conn: &mut PgConnection) -> QueryResult<usize> {
    let types = seed_types();
    let rows: Vec<NewMetricType<'_>> = types
        .iter()
        .map(|(series, schema, description, kind)| NewMetricType {
            series,
            schema,
            description,
            kind: *kind,
        })
        .collect();
    metric_types::insert_missing(conn, &rows)
}
