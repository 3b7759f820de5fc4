//! `GET /api/timeseries/latest/`: each series' last point as of a time (per session
//! too), read by walking the primary key backwards.

use crate::helpers::{
    MINUTE, TestApp, add_series, bulk_series, expected_points, ingest, load_points, node_plan,
    time, turbine_output,
};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// Two turbines as two users; each day of readings is a session of its own.
async fn turbines(app: &TestApp) -> ([Uuid; 2], [Uuid; 2]) {
    add_series(app, "turbine.output", json!({"type": "number"})).await;
    add_series(app, "turbine.rpm", json!({"type": "number"})).await;
    let users = [Uuid::new_v4(), Uuid::new_v4()];
    // Session ids of the first user; the second user's are other ids.
    let days = [Uuid::new_v4(), Uuid::new_v4()];
    for (turbine, user) in (1..).zip(users) {
        let sessions = if turbine == 1 {
            days
        } else {
            [Uuid::new_v4(), Uuid::new_v4()]
        };
        for (session, day) in sessions.into_iter().zip(["2020-03-14", "2020-03-15"]) {
            let points = turbine_output(turbine, day);
            if !points.is_empty() {
                ingest(app, user, session, &points).await;
            }
        }
    }
    (users, days)
}

async fn latest(app: &TestApp, params: &str) -> Value {
    let (status, body) = app.get(&format!("/api/timeseries/latest/?{params}")).await;
    assert_eq!(status, 200, "{params}: {body}");
    body
}

#[actix_web::test]
async fn latest_as_of_between_points_before_the_first_and_per_session() {
    let app = TestApp::spawn().await;
    let ([t1, t2], [day14, day15]) = turbines(&app).await;

    // Seed 001's AS OF example.
    for (user, output) in [(t1, 1_050_000.0), (t2, 2_050_000.0)] {
        let body = latest(
            &app,
            &format!("user_id={user}&series=turbine.output&as_of=2020-03-14T13:00:35.5Z"),
        )
        .await;
        assert_eq!(
            body,
            json!({"as_of": "2020-03-14T13:00:35.500Z", "results": [
                {"series": "turbine.output", "time": "2020-03-14T13:00:35Z",
                 "value": output, "session_id": body["results"][0]["session_id"]}
            ]})
        );
        assert_eq!(
            user == t1,
            body["results"][0]["session_id"] == day14.to_string()
        );
    }
    // Exactly at a point's time: that point.
    let body = latest(
        &app,
        &format!("user_id={t1}&series=turbine.*&as_of=2020-03-14T13:00:34Z"),
    )
    .await;
    assert_eq!(body["results"][0]["time"], "2020-03-14T13:00:34Z");
    // Before the first point: nothing; the series without points is left out too.
    let body = latest(
        &app,
        &format!("user_id={t1}&as_of=2020-03-14T13:00:32Z&series=turbine.*"),
    )
    .await;
    assert_eq!(body["results"], json!([]));
    // Default as_of is now; every series by default; a date means its midnight.
    let body = latest(&app, &format!("user_id={t1}")).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["results"][0]["time"], "2020-03-15T13:00:36Z");
    assert_eq!(body["results"][0]["value"], json!(1_030_000.0));
    let as_of = time(body["as_of"].as_str().unwrap());
    assert!((Utc::now() - as_of).num_seconds().abs() < 60);
    let body = latest(&app, &format!("user_id={t1}&as_of=2020-03-15")).await;
    assert_eq!(body["as_of"], "2020-03-15T00:00:00Z");
    assert_eq!(body["results"][0]["time"], "2020-03-14T13:00:36Z");
    // Per session: the first day's session ends with 1,000,000 at :36.
    let body = latest(&app, &format!("user_id={t1}&session_id={day14}")).await;
    assert_eq!(body["results"][0]["time"], "2020-03-14T13:00:36Z");
    assert_eq!(body["results"][0]["value"], json!(1_000_000.0));
    assert_eq!(body["results"][0]["session_id"], day14.to_string());
    let body = latest(&app, &format!("user_id={t2}&session_id={day15}")).await;
    assert_eq!(body["results"], json!([]), "another user's session");
    let body = latest(
        &app,
        &format!("user_id={t1}&session_id={day15}&as_of=2020-03-15T13:00:33Z"),
    )
    .await;
    assert_eq!(body["results"][0]["value"], json!(1_010_000.0));
    // Another user's points never show.
    let body = latest(&app, &format!("user_id={}", Uuid::new_v4())).await;
    assert_eq!(body["results"], json!([]));

    // Several series, ordered by name; values come back as stored.
    ingest(
        &app,
        t1,
        Uuid::new_v4(),
        &[
            ("turbine.rpm", "2020-03-15T12:00:00Z", json!(15.5)),
            (
                "session.urine.color",
                "2020-03-15T12:00:00Z",
                json!({"r": 1, "g": 2, "b": 3}),
            ),
        ],
    )
    .await;
    let body = latest(
        &app,
        &format!("user_id={t1}&series=turbine.*,session.urine.*"),
    )
    .await;
    let got: Vec<(&str, &Value)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["series"].as_str().unwrap(), &r["value"]))
        .collect();
    assert_eq!(
        got,
        [
            ("session.urine.color", &json!({"r": 1, "g": 2, "b": 3})),
            ("turbine.output", &json!(1_030_000.0)),
            ("turbine.rpm", &json!(15.5)),
        ]
    );

    for (q, name) in [
        (String::new(), "user_id"),
        ("user_id=x".to_string(), "user_id"),
        (format!("user_id={t1}&as_of=yesterday"), "as_of"),
        (format!("user_id={t1}&as_of=2020-03-14T13:00:00"), "as_of"),
        (format!("user_id={t1}&session_id=1"), "session_id"),
        (format!("user_id={t1}&series=turbine.("), "series"),
    ] {
        app.assert_400_naming(&format!("/api/timeseries/latest/?{q}"), name)
            .await;
    }
}

#[actix_web::test]
async fn latest_walks_the_primary_key_backwards() {
    let app = TestApp::spawn().await;
    let mut conn = app.conn();
    let series = bulk_series(&mut conn);
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let sessions = [Uuid::new_v4(), Uuid::new_v4()];
    for u in &users {
        // 40,000 points a minute apart (pairwise): about two weeks, three partitions.
        load_points(&app.db, *u, sessions, series, start, MINUTE, 40_000);
    }
    let as_of = start + Duration::days(10);
    for session in [None, Some(sessions[1])] {
        let plan = node_plan(
            &seriesd::db::retrieval::explain_latest(
                &mut conn,
                users[2],
                series.0,
                (start, as_of),
                session,
            )
            .unwrap(),
        );
        println!(
            "EXPLAIN latest (session filter: {}):\n{plan}",
            session.is_some()
        );
        assert!(plan.starts_with("Limit"), "{plan}");
        assert!(
            plan.contains("Index Scan Backward") || plan.contains("Index Only Scan Backward"),
            "{plan}"
        );
        assert!(
            !plan.contains("Seq Scan") && !plan.contains("Sort"),
            "{plan}"
        );
    }
    // And the answer is the right point.
    let body = latest(
        &app,
        &format!("user_id={}&as_of=2025-01-03T00:00:00.2Z", users[2]),
    )
    .await;
    let want: Vec<_> = expected_points(sessions, series, start, MINUTE, 40_000)
        .into_iter()
        .filter(|p| p.0 <= time("2025-01-03T00:00:00.2Z"))
        .collect();
    let last_num = want.iter().rev().find(|p| p.1 == series.0).unwrap();
    let got = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["series"] == "session.gut_health_score")
        .unwrap();
    assert_eq!(time(got["time"].as_str().unwrap()), last_num.0);
    assert_eq!(got["value"], last_num.3);
    assert_eq!(got["session_id"], last_num.2.to_string());
}
