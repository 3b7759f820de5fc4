//! Overload: a token past its rate limit gets 429, and a query past the query
//! concurrency or the statement timeout gets 503; each names its setting and says when
//! to retry.

use crate::helpers::{TestApp, assert_throttled, scored_session};
use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use serde_json::Value;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[actix_web::test]
async fn a_token_over_its_rate_limit_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_SEC", "1"), ("RATE_LIMIT_BURST", "3")]).await;
    // The burst passes; the allowance then refills at one a second, so on a slow machine
    // one more may pass before the refusal.
    let mut passed = 0;
    let mut resp = loop {
        let resp = app
            .client
            .get(app.url("/api/metrictypes/"))
            .send()
            .await
            .unwrap();
        if resp.status() != 200 {
            break resp;
        }
        passed += 1;
        assert!(passed < 20, "never limited");
    };
    assert!(passed >= 3, "{passed}");
    let retry = assert_throttled(&mut resp, "RATE_LIMIT_PER_SEC").await;
    assert!((1..=2).contains(&retry), "{retry}");
    // Another token has an allowance of its own; public routes have no limit.
    let other = app.user_token(Uuid::new_v4());
    assert_eq!(app.get_as(Some(&other), "/api/metrictypes/").await.0, 200);
    for _ in 0..10 {
        assert_eq!(app.get("/health/").await.0, 200);
    }
}

/// A user with one session written, and a connection holding the points table, so that
/// the user's queries wait on it (until `ROLLBACK` on the connection).
async fn user_behind_a_points_lock(app: &TestApp) -> (Uuid, PgConnection) {
    let user = Uuid::new_v4();
    assert_eq!(
        app.post("/api/sessions/", &scored_session(user, Uuid::new_v4(), 1.0))
            .await
            .0,
        201
    );
    let mut holder = app.conn();
    holder
        .batch_execute("BEGIN; LOCK TABLE points IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    (user, holder)
}

#[actix_web::test]
async fn uncached_queries_past_query_concurrency_wait_their_turn_or_get_a_503() {
    let app = TestApp::spawn_with(&[
        ("QUERY_CONCURRENCY", "1"),
        ("QUERY_QUEUE_TIMEOUT_MS", "700"),
    ])
    .await;
    // The first query takes the only slot and waits on a lock held elsewhere.
    let (user, mut holder) = user_behind_a_points_lock(&app).await;
    let path = |month: u32| {
        format!("/api/timeseries/?user_id={user}&start_time=2024-12-01&end_time=2025-{month:02}-01")
    };
    let first = actix_web::rt::spawn(app.client.get(app.url(&path(2))).send());
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    // The next one (another cache key) waits in line for QUERY_QUEUE_TIMEOUT_MS, then is
    // told why, while the first is still being computed.
    let started = Instant::now();
    let mut resp = app.client.get(app.url(&path(3))).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("Retry-After").is_some());
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("QUERY_CONCURRENCY"),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(!first.is_finished());
    // The lock goes: the first query answers, and the slot is free again.
    holder.batch_execute("ROLLBACK").unwrap();
    let mut first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["metadata"]["count"], 2, "{body}");
    assert_eq!(app.get(&path(3)).await.0, 200);
}

#[actix_web::test]
async fn a_query_past_the_statement_timeout_is_a_503_naming_it() {
    // Long enough for every honest query on a loaded test machine.
    let app = TestApp::spawn_with(&[("DB_STATEMENT_TIMEOUT_MS", "2000")]).await;
    // Another session holds the points table; the query waits for it until the
    // statement timeout cancels it.
    let (user, mut holder) = user_behind_a_points_lock(&app).await;
    let started = Instant::now();
    let mut resp = app
        .client
        .get(app.url(&format!(
            "/api/timeseries/?user_id={user}&start_time=2024-12-01&end_time=2025-02-01"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("Retry-After").unwrap(), "2");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("DB_STATEMENT_TIMEOUT_MS"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    holder.batch_execute("ROLLBACK").unwrap();
    let (status, _) = app
        .get(&format!(
            "/api/timeseries/?user_id={user}&start_time=2024-12-01&end_time=2025-02-01"
        ))
        .await;
    assert_eq!(status, 200);
}
