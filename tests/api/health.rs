//! `/health/` (503 while the database is unreachable), `/metrics`, and JSON answers to
//! unknown paths and methods.

use crate::helpers::{TestApp, client, client_with, send, settings_for, start_server};

#[actix_web::test]
async fn health_reports_database_and_storage() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/health/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["storage"], crate::helpers::expected_storage());
    assert_eq!(body["cache"]["backend"], "redis");
    assert_eq!(body["cache"]["reachable"], true);
    // Without the trailing slash too.
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn health_is_503_when_the_database_is_unreachable() {
    // Port 1 on loopback: nothing listens there.
    let url = seriesd::config::DatabaseUrl::parse(
        "postgres://postgres@127.0.0.1:1/nothing?gssencmode=disable",
    )
    .unwrap();
    let settings = settings_for(
        &url,
        &[("AUTO_MIGRATE", "false"), ("DB_POOL_TIMEOUT_MS", "500")],
    );
    let address = start_server(settings).await;
    let started = std::time::Instant::now();
    let (status, body) = send(client().get(format!("{address}/health/")), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "unreachable");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // An API call that needs the database is a 503 with a clear message, not a 500 (nor
    // a 401: the token cannot be checked, which says nothing about it).
    let token = seriesd::domain::api_token::TokenSecret::generate().unwrap();
    let (status, body) = send(
        client_with(Some(token.expose())).post(format!("{address}/api/sessions/")),
        Some(br#"{"user_id":"6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11","session_id":"1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11","data":[]}"#.to_vec()),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Database unavailable")
    );
}

#[actix_web::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/no/such/thing/").await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "Not found.");
    let (status, body) = app.delete("/health/").await;
    assert_eq!(status, 405);
    assert_eq!(body["detail"], "Method \"DELETE\" not allowed.");
}

#[actix_web::test]
async fn metrics_count_requests_points_and_cache_use() {
    let app = TestApp::spawn().await;
    let user = uuid::Uuid::new_v4();
    let body = serde_json::json!({"user_id": user, "session_id": uuid::Uuid::new_v4(), "data": [
        {"series": "session.gut_health_score", "time": "2025-01-01T00:00:00Z", "value": {"value": 1}},
        {"series": "session.gut_health_score", "time": "2025-01-01T00:01:00Z", "value": {"value": 2}}
    ]});
    assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
    let q = format!("/api/timeseries/?user_id={user}&start_time=2025-01-01&end_time=2025-01-02");
    app.get(&q).await;
    app.get(&q).await;
    let mut resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    for line in [
        "seriesd_http_requests_total{route=\"/api/sessions/\",method=\"POST\",status=\"201\"} 1",
        "seriesd_http_requests_total{route=\"/api/timeseries/\",method=\"GET\",status=\"200\"} 2",
        "seriesd_points_ingested_total 2",
        "seriesd_cache_hits_total 1",
        "seriesd_cache_misses_total 1",
        "# TYPE seriesd_http_request_duration_seconds histogram",
        "seriesd_db_pool_max_connections 8",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // The user id in the query string never becomes a label.
    assert!(!text.contains(&user.to_string()));
}
