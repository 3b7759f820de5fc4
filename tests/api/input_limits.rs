//! Input limits: bodies nested too deep, too many or too long series patterns, ranges of
//! too many buckets, bodies that stop arriving, huge headers and heads that never end get
//! a clear 4xx (naming the setting where there is one) or a closed connection.

use crate::helpers::{
    TestApp, count, raw_exchange, scored_session, send, settings_for, start_server,
};
use awc::http::Method;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[actix_web::test]
async fn limits_answer_a_clear_4xx_naming_the_setting() {
    let app =
        TestApp::spawn_with(&[("MAX_SERIES_PATTERNS", "3"), ("MAX_PATTERN_CHARS", "20")]).await;
    let user = Uuid::new_v4();
    // JSON nesting: 10,000 levels, and 100 (under serde_json's own 128) to every body.
    for depth in [10_000, 100] {
        let deep = format!(
            "{{\"user_id\": \"{user}\", \"session_id\": \"{}\", \"data\": [{{\"series\": \"session.gut_health_score\", \"time\": \"2025-01-01T00:00:00Z\", \"value\": {}1{}}}]}}",
            Uuid::new_v4(),
            "[".repeat(depth),
            "]".repeat(depth)
        );
        for (method, path) in [
            (Method::POST, "/api/sessions/"),
            (Method::POST, "/api/metrictypes/"),
            (Method::PUT, "/api/metrictypes/lab.ph/"),
        ] {
            let (status, body) = send(
                app.client
                    .request(method.clone(), app.url(path))
                    .insert_header(("content-type", "application/json")),
                Some(deep.clone().into_bytes()),
            )
            .await;
            assert_eq!(status, 400, "{path} {depth}");
            assert!(
                body["detail"].as_str().unwrap().contains("MAX_JSON_DEPTH"),
                "{path}: {body}"
            );
        }
        let (status, report) = send(
            app.client.post(app.url("/api/sessions/bulk/")),
            Some(format!("{deep}\n").into_bytes()),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            report["rejected"][0]["errors"]["detail"]
                .as_str()
                .unwrap()
                .contains("MAX_JSON_DEPTH"),
            "{report}"
        );
    }
    // Patterns: count and length.
    let (status, body) = app
        .get(&format!("/api/timeseries/?user_id={user}&series=a,b,c,d"))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["series"][0]
            .as_str()
            .unwrap()
            .contains("MAX_SERIES_PATTERNS")
    );
    let (status, body) = app
        .get(&format!(
            "/api/timeseries/latest/?user_id={user}&series={}",
            "a".repeat(21)
        ))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["series"][0]
            .as_str()
            .unwrap()
            .contains("MAX_PATTERN_CHARS")
    );
    assert_eq!(
        count(&mut app.conn(), "SELECT count(*) AS n FROM points"),
        0
    );
}

#[actix_web::test]
async fn max_buckets_is_the_number_of_buckets_answered() {
    let app = TestApp::spawn_with(&[("MAX_BUCKETS", "100")]).await;
    let user = Uuid::new_v4();
    let (status, _) = app
        .post("/api/sessions/", &scored_session(user, Uuid::new_v4(), 4.0))
        .await;
    assert_eq!(status, 201);
    let path = |end: &str| {
        format!(
            "/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=1s\
             &fill=null&start_time=2025-01-01T00:00:00Z&end_time={end}"
        )
    };
    // Both ends are inclusive: 99 s after the start ends the 100th one-second bucket,
    // and the answer holds exactly the 100.
    let (status, body) = app.get(&path("2025-01-01T00:01:39Z")).await;
    assert_eq!(status, 200, "{body}");
    let buckets = body["results"].as_array().unwrap();
    assert_eq!(buckets.len(), 100);
    assert_eq!(buckets[99]["bucket"], "2025-01-01T00:01:39Z");
    // One second more is one bucket more: refused, naming the setting.
    let (status, body) = app.get(&path("2025-01-01T00:01:40Z")).await;
    assert_eq!(status, 400, "{body}");
    let message = body["interval"][0].as_str().unwrap();
    assert!(message.contains("holds 101 1s buckets"), "{message}");
    assert!(message.contains("MAX_BUCKETS"), "{message}");
}

#[actix_web::test]
async fn slow_clients_and_huge_headers_are_cut_off() {
    let app = TestApp::spawn_with(&[("BODY_READ_TIMEOUT_MS", "300")]).await;
    // Its own server: a head timeout this short would also catch honest clients on a
    // loaded test machine.
    let slowloris = start_server(settings_for(
        &app.db.url,
        &[("CLIENT_REQUEST_TIMEOUT_MS", "300")],
    ))
    .await;
    let address = app.address.clone();
    let token = app.admin_token.clone();
    let answers = actix_web::web::block(move || {
        // A body that stops arriving: 408 naming the setting.
        let head = format!(
            "POST /api/sessions/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"user_id\": "
        );
        let slow_body = raw_exchange(
            &address,
            &[(head.as_bytes(), Duration::ZERO)],
            Duration::from_secs(20),
        );
        // Headers far over actix's 128 KiB head limit.
        let big = format!(
            "GET /health/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(200 * 1024)
        );
        let huge = raw_exchange(
            &address,
            &[(big.as_bytes(), Duration::ZERO)],
            Duration::from_secs(20),
        );
        // A head that never ends (slowloris): the connection is closed.
        let started = Instant::now();
        let slow_head = raw_exchange(
            &slowloris,
            &[(b"GET /health/ HTTP/1.1\r\nHost: x\r\n", Duration::ZERO)],
            Duration::from_secs(20),
        );
        (slow_body, huge, slow_head, started.elapsed())
    })
    .await
    .unwrap();
    let (slow_body, huge, slow_head, slow_head_took) = answers;
    assert!(slow_body.starts_with("HTTP/1.1 408"), "{slow_body}");
    assert!(slow_body.contains("BODY_READ_TIMEOUT_MS"), "{slow_body}");
    // Usually 431 at once; now and then actix-http stops reading at its buffer limit
    // before it parses, and the head timeout answers 408 instead. Refused either way.
    assert!(
        huge.starts_with("HTTP/1.1 431") || huge.starts_with("HTTP/1.1 408"),
        "{huge}"
    );
    assert!(
        slow_head.is_empty() || slow_head.starts_with("HTTP/1.1 408"),
        "{slow_head}"
    );
    assert!(
        slow_head_took < Duration::from_secs(15),
        "{slow_head_took:?}"
    );
    // The server is fine afterwards.
    assert_eq!(app.get("/health/").await.0, 200);
}
