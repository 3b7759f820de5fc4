//! Sample data the tests write through the API: session bodies, series added to the
//! catalogue, and seed 001's turbine readings.

use super::app::TestApp;
use serde_json::{Value, json};
use uuid::Uuid;

/// A `POST /api/sessions/` body of `user`'s `session` with the points in `data`.
pub fn session_body(user: Uuid, session: Uuid, data: impl Into<Value>) -> Value {
    json!({"user_id": user, "session_id": session, "data": data.into()})
}

/// A session of two points at 2025-01-01T00:00Z: a gut health score of `score`, and a
/// urine colour a minute later.
pub fn scored_session(user: Uuid, session: Uuid, score: f64) -> Value {
    session_body(
        user,
        session,
        json!([
            {"series": "session.gut_health_score", "time": "2025-01-01T00:00:00Z", "value": {"value": score}},
            {"series": "session.urine.color", "time": "2025-01-01T00:01:00Z", "value": {"r": 1, "g": 2, "b": 3}}
        ]),
    )
}

/// Posts one session of `(series, time, value)` points; asserts it was stored.
pub async fn ingest<T: AsRef<str>>(
    app: &TestApp,
    user: Uuid,
    session: Uuid,
    points: &[(&str, T, Value)],
) {
    let data: Vec<Value> = points
        .iter()
        .map(|(s, t, v)| json!({"series": s, "time": t.as_ref(), "value": v}))
        .collect();
    let (status, resp) = app
        .post("/api/sessions/", &session_body(user, session, data))
        .await;
    assert_eq!(status, 201, "{resp}");
}

/// Adds `series` to the catalogue through the API.
pub async fn add_series(app: &TestApp, series: &str, schema: Value) {
    let (status, body) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": series, "schema": schema}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Seed 001's turbine readings: (turbine, time, output).
const TURBINE: [(u8, &str, f64); 12] = [
    (1, "2020-03-14T13:00:33Z", 1_000_000.0),
    (1, "2020-03-14T13:00:34Z", 1_000_000.0),
    (1, "2020-03-14T13:00:35Z", 1_050_000.0),
    (1, "2020-03-14T13:00:36Z", 1_000_000.0),
    (2, "2020-03-14T13:00:33Z", 2_000_000.0),
    (2, "2020-03-14T13:00:34Z", 2_000_000.0),
    (2, "2020-03-14T13:00:35Z", 2_050_000.0),
    (2, "2020-03-14T13:00:36Z", 2_070_000.0),
    (1, "2020-03-15T13:00:33Z", 1_010_000.0),
    (1, "2020-03-15T13:00:34Z", 1_020_000.0),
    (1, "2020-03-15T13:00:35Z", 1_030_000.0),
    (1, "2020-03-15T13:00:36Z", 1_030_000.0),
];

/// Seed 001's readings of turbine `turbine` (1 or 2) at times that start with `prefix`
/// (a day, or "" for all), as `turbine.output` points to [`ingest`].
pub fn turbine_output(turbine: u8, prefix: &str) -> Vec<(&'static str, &'static str, Value)> {
    TURBINE
        .iter()
        .filter(|(tid, t, _)| *tid == turbine && t.starts_with(prefix))
        .map(|(_, t, v)| ("turbine.output", *t, json!(v)))
        .collect()
}
