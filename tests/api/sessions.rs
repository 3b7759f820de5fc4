//! Stored sessions: a user's list (newest first, DRF pages), one session's detail, and
//! deleting a session with its points (which makes cached answers stale).

use crate::helpers::{TestApp, count, ingest, send};
use serde_json::{Value, json};
use uuid::Uuid;

#[actix_web::test]
async fn a_users_sessions_newest_first_paginated() {
    let app = TestApp::spawn().await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let p = [(
        "session.gut_health_score",
        "2025-03-03T10:00:00Z",
        json!({"value": 1}),
    )];
    let mut mine = Vec::new();
    for _ in 0..3 {
        let s = Uuid::new_v4();
        ingest(&app, user, s, &p).await;
        mine.push(s);
    }
    ingest(&app, other, Uuid::new_v4(), &p).await;
    mine.reverse(); // newest first

    let (status, page) = app.get(&format!("/api/sessions/?user_id={user}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 3);
    assert_eq!(
        (page["next"].clone(), page["previous"].clone()),
        (Value::Null, Value::Null)
    );
    let ids: Vec<Uuid> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, mine);
    let first = page["results"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "session_id", "start_ts", "user_id"]);
    assert_eq!(first["user_id"], user.to_string());

    let (_, page) = app
        .get(&format!("/api/sessions/?user_id={user}&limit=2"))
        .await;
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    assert_eq!(
        next,
        app.url(&format!("/api/sessions/?user_id={user}&limit=2&offset=2"))
    );
    let (_, page) = send(app.client.get(next), None).await;
    assert_eq!(page["results"][0]["session_id"], mine[2].to_string());
    assert_eq!(page["next"], Value::Null);

    let (_, page) = app
        .get(&format!("/api/sessions/?user_id={user}&offset=10"))
        .await;
    assert_eq!(
        (page["count"].clone(), page["results"].clone()),
        (json!(3), json!([]))
    );
    let (_, page) = app
        .get(&format!("/api/sessions/?user_id={}", Uuid::new_v4()))
        .await;
    assert_eq!(page["count"], 0);

    for (q, name) in [
        ("", "user_id"),
        ("user_id=nope", "user_id"),
        (&format!("user_id={user}&limit=0") as &str, "limit"),
    ] {
        app.assert_400_naming(&format!("/api/sessions/?{q}"), name)
            .await;
    }
    // The existing POST routes are untouched; GET on bulk/ is not a session id.
    let (status, _) = app.get("/api/sessions/bulk/").await;
    assert_eq!(status, 405);
}

#[actix_web::test]
async fn a_sessions_detail_after_two_posts() {
    let app = TestApp::spawn().await;
    let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
    ingest(
        &app,
        user,
        session,
        &[
            (
                "session.gut_health_score",
                "2025-03-03T10:00:00Z",
                json!({"value": 1}),
            ),
            (
                "session.gut_health_score",
                "2025-03-03T10:05:00Z",
                json!({"value": 2}),
            ),
            (
                "session.urine.color",
                "2025-03-03T10:01:00Z",
                json!({"r": 1, "g": 2, "b": 3}),
            ),
        ],
    )
    .await;
    // The second post adds two points and sends one again with another value.
    let body = json!({
        "user_id": user,
        "session_id": session,
        "start_ts": "2025-03-03T09:59:00Z",
        "data": [
            {"series": "session.gut_health_score", "time": "2025-03-03T10:05:00Z", "value": {"value": 5}},
            {"series": "session.gut_health_score", "time": "2025-03-03T09:58:00.5Z", "value": {"value": 0}},
            {"series": "session.example.series", "time": "2025-03-03T11:00:00Z", "value": {"value": "late"}},
        ],
    });
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 201, "{resp}");

    for path in [
        format!("/api/sessions/{session}/"),
        format!("/api/sessions/{session}"),
    ] {
        let (status, d) = app.get(&path).await;
        assert_eq!(status, 200, "{d}");
        assert_eq!(d["session_id"], session.to_string());
        assert_eq!(d["user_id"], user.to_string());
        assert_eq!(d["start_ts"], "2025-03-03T09:59:00Z");
        assert!(d["created_at"].is_string());
        assert_eq!(d["points"], 5);
        assert_eq!(d["first_time"], "2025-03-03T09:58:00.500Z");
        assert_eq!(d["last_time"], "2025-03-03T11:00:00Z");
        assert_eq!(
            d["series"],
            json!([
                {"series": "session.example.series", "count": 1,
                 "first_time": "2025-03-03T11:00:00Z", "last_time": "2025-03-03T11:00:00Z"},
                {"series": "session.gut_health_score", "count": 3,
                 "first_time": "2025-03-03T09:58:00.500Z", "last_time": "2025-03-03T10:05:00Z"},
                {"series": "session.urine.color", "count": 1,
                 "first_time": "2025-03-03T10:01:00Z", "last_time": "2025-03-03T10:01:00Z"},
            ])
        );
    }
    let (status, body) = app.get(&format!("/api/sessions/{}/", Uuid::new_v4())).await;
    assert_eq!(status, 404);
    assert!(body["detail"].is_string());
    assert_eq!(app.get("/api/sessions/not-a-uuid/").await.0, 404);
}

#[actix_web::test]
async fn deleting_a_session_deletes_its_points_and_stales_the_cache() {
    let app = TestApp::spawn().await;
    let (user, gone, kept, other_session) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let other = Uuid::new_v4();
    let p = |v: f64| {
        [(
            "session.gut_health_score",
            "2025-03-03T10:00:00Z",
            json!({"value": v}),
        )]
    };
    ingest(&app, user, gone, &p(10.0)).await;
    ingest(&app, user, kept, &p(2.0)).await;
    ingest(&app, other, other_session, &p(7.0)).await;

    let path = format!(
        "/api/timeseries/?user_id={user}&start_time=2025-03-01&end_time=2025-03-31&interval=month"
    );
    let get = || app.get_cached(&path);
    let (c1, b1) = get().await;
    assert_eq!(
        (c1.as_str(), b1["results"][0]["value"].clone()),
        ("MISS", json!(6.0))
    );
    assert_eq!(get().await.0, "HIT");
    let gen_before = count(
        &mut app.conn(),
        &format!("SELECT generation AS n FROM user_generations WHERE user_id = '{user}'"),
    );

    let (status, body) = app.delete(&format!("/api/sessions/{gone}/")).await;
    assert_eq!((status, body), (204, Value::Null));

    let mut conn = app.conn();
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM points WHERE session_id = '{gone}'")
        ),
        0
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM sessions WHERE session_id = '{gone}'")
        ),
        0
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 2);
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT generation AS n FROM user_generations WHERE user_id = '{user}'")
        ),
        gen_before + 1
    );
    // The cached answer is unreachable; the new one lacks the deleted point.
    let (c2, b2) = get().await;
    assert_eq!(
        (c2.as_str(), b2["results"][0]["value"].clone()),
        ("MISS", json!(2.0))
    );
    assert_eq!(app.get(&format!("/api/sessions/{gone}/")).await.0, 404);
    let (_, page) = app.get(&format!("/api/sessions/?user_id={user}")).await;
    assert_eq!(page["count"], 1);
    let (status, _) = app.delete(&format!("/api/sessions/{gone}/")).await;
    assert_eq!(status, 404);
    // The session id can be used again.
    ingest(&app, user, gone, &p(4.0)).await;
    assert_eq!(get().await.1["results"][0]["value"], json!(3.0));
}
