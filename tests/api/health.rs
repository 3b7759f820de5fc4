use crate::helpers::{TestApp, client, send, settings_for, start_server};

#[actix_web::test]
async fn health_reports_database_and_native_storage() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/health/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["storage"], "native-partitions");
    assert_eq!(body["cache"]["backend"], "redis");
    assert_eq!(body["cache"]["reachable"], true);
    // Without the trailing slash too.
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn health_is_503_when_the_database_is_unreachable() {
    // Port 1 on loopback: nothing listens there.
    let url =
        seriesd::config::DatabaseUrl::parse("postgres://postgres@127.0.0.1:1/nothing").unwrap();
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
    // An API call that needs the database is a 503 with a clear message, not a 500.
    let (status, body) = send(
        client().post(format!("{address}/api/sessions/")),
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
    let (status, body) = send(app.client.delete(app.url("/health/")), None).await;
    assert_eq!(status, 405);
    assert_eq!(body["detail"], "Method \"DELETE\" not allowed.");
}
