//! Sample data the tests write through the API: session bodies and series added to the
//! catalogue.

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
