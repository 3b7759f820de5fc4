//! Stored sessions (list, detail, delete) and raw points back out: latest-as-of, keyset
//! pages, and the streamed CSV / NDJSON export — compared point by point with what was
//! stored, and with the server's peak memory measured as the export grows tenfold.

use crate::helpers::{TestApp, TestDb, client, count, send};
use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use seriesd::db::partitions::PartitionManager;
use std::collections::HashMap;
use uuid::Uuid;

/// Posts one session of `(series, time, value)` points.
async fn ingest(app: &TestApp, user: Uuid, session: Uuid, points: &[(&str, &str, Value)]) {
    let data: Vec<Value> = points
        .iter()
        .map(|(s, t, v)| json!({"series": s, "time": t, "value": v}))
        .collect();
    let body = json!({"user_id": user, "session_id": session, "data": data});
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 201, "{resp}");
}

async fn add_series(app: &TestApp, series: &str, schema: Value) {
    let (status, body) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": series, "schema": schema}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn series_id(conn: &mut PgConnection, series: &str) -> i32 {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        id: i32,
    }
    diesel::sql_query("SELECT id FROM metric_types WHERE series = $1")
        .bind::<diesel::sql_types::Text, _>(series)
        .get_result::<Id>(conn)
        .unwrap()
        .id
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

// ---------------------------------------------------------------------------------
// Sessions

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
        let (status, body) = app.get(&format!("/api/sessions/?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body[name].is_array(), "{q}: {body}");
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

    let url = app.url(&format!(
        "/api/timeseries/?user_id={user}&start_time=2025-03-01&end_time=2025-03-31&interval=month"
    ));
    let get = || async {
        let mut resp = app.client.get(url.clone()).send().await.unwrap();
        let cache = resp
            .headers()
            .get("X-Cache")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = resp.json().await.unwrap();
        (cache, body)
    };
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

    let (status, body) = send(
        app.client
            .delete(app.url(&format!("/api/sessions/{gone}/"))),
        None,
    )
    .await;
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
    let (status, _) = send(
        app.client
            .delete(app.url(&format!("/api/sessions/{gone}/"))),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // The session id can be used again.
    ingest(&app, user, gone, &p(4.0)).await;
    assert_eq!(get().await.1["results"][0]["value"], json!(3.0));
}

// ---------------------------------------------------------------------------------
// Latest

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

/// Two turbines as two users; each day of readings is a session of its own.
async fn turbines(app: &TestApp) -> ([Uuid; 2], [Uuid; 2]) {
    add_series(app, "turbine.output", json!({"type": "number"})).await;
    add_series(app, "turbine.rpm", json!({"type": "number"})).await;
    let users = [Uuid::new_v4(), Uuid::new_v4()];
    // Session ids of the first user; the second user's are other ids.
    let days = [Uuid::new_v4(), Uuid::new_v4()];
    for (i, user) in users.iter().enumerate() {
        let sessions = if i == 0 {
            days
        } else {
            [Uuid::new_v4(), Uuid::new_v4()]
        };
        for (d, day) in ["2020-03-14", "2020-03-15"].iter().enumerate() {
            let points: Vec<(&str, &str, Value)> = TURBINE
                .iter()
                .filter(|(tid, t, _)| usize::from(*tid) == i + 1 && t.starts_with(day))
                .map(|(_, t, v)| ("turbine.output", *t, json!(v)))
                .collect();
            if !points.is_empty() {
                ingest(app, *user, sessions[d], &points).await;
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
        let (status, body) = app.get(&format!("/api/timeseries/latest/?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body[name].is_array(), "{q}: {body}");
    }
}

/// Loads `n` points for `user` straight into `points` (with their sessions): point `i`
/// is at `start + (i/2) * spacing`, in session `sessions[i % 2]`, of `numeric` (value
/// `{"value": i/4}`) or, every third point, `text` (a string with a comma, quotes and
/// a non-ASCII character).
fn load_points(
    db: &TestDb,
    user: Uuid,
    sessions: [Uuid; 2],
    series: (i32, i32),
    start: DateTime<Utc>,
    spacing: Duration,
    n: i64,
) {
    let mut conn = db.conn();
    let end = start + spacing * i32::try_from(n / 2 + 1).unwrap();
    let mut days = Vec::new();
    let mut t = start;
    while t <= end {
        days.push(t);
        t += Duration::days(1);
    }
    days.push(end);
    PartitionManager::new()
        .ensure_for_times(&mut conn, days)
        .unwrap();
    diesel::sql_query(
        "INSERT INTO sessions (user_id, session_id) VALUES ($1, $2), ($1, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Uuid, _>(sessions[0])
    .bind::<diesel::sql_types::Uuid, _>(sessions[1])
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO points (user_id, series_id, time, session_id, num, value)
         SELECT $1,
                CASE WHEN i % 3 = 0 THEN $3 ELSE $2 END,
                $4 + (i / 2) * $8 * interval '1 microsecond',
                CASE WHEN i % 2 = 0 THEN $5 ELSE $6 END,
                CASE WHEN i % 3 = 0 THEN NULL ELSE i * 0.25 END,
                CASE WHEN i % 3 = 0 THEN json_build_object('value', 'note, \"' || i || '\" ✓')
                     ELSE json_build_object('value', i * 0.25) END
         FROM generate_series(0, $7 - 1) i",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Integer, _>(series.0)
    .bind::<diesel::sql_types::Integer, _>(series.1)
    .bind::<diesel::sql_types::Timestamptz, _>(start)
    .bind::<diesel::sql_types::Uuid, _>(sessions[0])
    .bind::<diesel::sql_types::Uuid, _>(sessions[1])
    .bind::<diesel::sql_types::BigInt, _>(n)
    .bind::<diesel::sql_types::BigInt, _>(spacing.num_microseconds().unwrap())
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("ANALYZE points")
        .execute(&mut conn)
        .unwrap();
}

const SECOND: Duration = Duration::seconds(1);
const MINUTE: Duration = Duration::minutes(1);

/// What [`load_points`] stored, in export order: (time, series id, session, value).
fn expected_points(
    sessions: [Uuid; 2],
    series: (i32, i32),
    start: DateTime<Utc>,
    spacing: Duration,
    n: i64,
) -> Vec<(DateTime<Utc>, i32, Uuid, Value)> {
    let mut v: Vec<_> = (0..n)
        .map(|i| {
            let text = i % 3 == 0;
            (
                start + spacing * i32::try_from(i / 2).unwrap(),
                if text { series.1 } else { series.0 },
                sessions[(i % 2) as usize],
                if text {
                    json!({"value": format!("note, \"{i}\" ✓")})
                } else {
                    json!({"value": i as f64 * 0.25})
                },
            )
        })
        .collect();
    v.sort_by_key(|p| (p.0, p.1, p.2));
    v
}

#[actix_web::test]
async fn latest_walks_the_primary_key_backwards() {
    let app = TestApp::spawn().await;
    let mut conn = app.conn();
    let series = (
        series_id(&mut conn, "session.gut_health_score"),
        series_id(&mut conn, "session.example.series"),
    );
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let sessions = [Uuid::new_v4(), Uuid::new_v4()];
    for u in &users {
        // 40,000 points a minute apart (pairwise): about two weeks, three partitions.
        load_points(&app.db, *u, sessions, series, start, MINUTE, 40_000);
    }
    let as_of = start + Duration::days(10);
    for session in [None, Some(sessions[1])] {
        let plan =
            seriesd::db::retrieval::explain_latest(&mut conn, users[2], series.0, as_of, session)
                .unwrap();
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

// ---------------------------------------------------------------------------------
// Points: keyset pages

/// Every page of a JSON query, following `next`.
async fn all_pages(app: &TestApp, params: &str) -> (Vec<Value>, usize) {
    let mut url = app.url(&format!("/api/timeseries/points/?{params}"));
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let (status, body) = send(app.client.get(&url), None).await;
        assert_eq!(status, 200, "{url}: {body}");
        pages += 1;
        rows.extend(body["results"].as_array().unwrap().iter().cloned());
        match (body["next"].as_str(), body["next_cursor"].as_str()) {
            (Some(next), Some(cursor)) => {
                assert!(next.contains(&format!("cursor={cursor}")), "{next}");
                url = next.to_string();
            }
            (None, None) => return (rows, pages),
            _ => panic!("next and next_cursor disagree: {body}"),
        }
    }
}

#[actix_web::test]
async fn points_come_in_keyset_pages_in_time_series_session_order() {
    let app = TestApp::spawn().await;
    let mut conn = app.conn();
    let (user, s1, s2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Ties: several series and both sessions at the same instants.
    ingest(
        &app,
        user,
        s1,
        &[
            (
                "session.gut_health_score",
                "2025-03-03T10:00:00Z",
                json!({"value": 1}),
            ),
            (
                "session.urine.color",
                "2025-03-03T10:00:00Z",
                json!({"r": 1, "g": 1, "b": 1}),
            ),
            (
                "session.example.series",
                "2025-03-03T10:00:00Z",
                json!({"value": "a"}),
            ),
            (
                "session.gut_health_score",
                "2025-03-03T10:00:01Z",
                json!({"value": 2}),
            ),
            (
                "session.gut_health_score",
                "2025-03-04T00:00:00Z",
                json!({"value": 3}),
            ),
        ],
    )
    .await;
    ingest(
        &app,
        user,
        s2,
        &[
            (
                "session.gut_health_score",
                "2025-03-03T10:00:00Z",
                json!({"value": 10}),
            ),
            (
                "session.example.series",
                "2025-03-03T10:00:01Z",
                json!({"value": "b"}),
            ),
            (
                "session.urine.night_count",
                "2025-03-10T00:00:00Z",
                json!({"value": 1}),
            ),
        ],
    )
    .await;
    ingest(
        &app,
        Uuid::new_v4(),
        Uuid::new_v4(),
        &[(
            "session.gut_health_score",
            "2025-03-03T10:00:00Z",
            json!({"value": 99}),
        )],
    )
    .await;

    let ids: HashMap<String, i32> = [
        "session.gut_health_score",
        "session.urine.color",
        "session.example.series",
        "session.urine.night_count",
    ]
    .iter()
    .map(|s| (s.to_string(), series_id(&mut conn, s)))
    .collect();
    let key = |r: &Value| {
        (
            time(r["time"].as_str().unwrap()),
            ids[r["series"].as_str().unwrap()],
            r["session_id"].as_str().unwrap().parse::<Uuid>().unwrap(),
        )
    };

    let (whole, pages) = all_pages(&app, &format!("user_id={user}")).await;
    assert_eq!((whole.len(), pages), (8, 1));
    let keys: Vec<_> = whole.iter().map(key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(
        whole[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["series", "session_id", "time", "value"]
            .iter()
            .collect::<Vec<_>>()
    );
    // Any page size gives the same points in the same order, each exactly once.
    for limit in [1, 2, 3, 7, 8] {
        let (paged, pages) = all_pages(&app, &format!("user_id={user}&limit={limit}")).await;
        assert_eq!(paged, whole, "limit {limit}");
        assert_eq!(pages, 8usize.div_ceil(limit), "limit {limit}");
    }
    // Filters: series patterns, an inclusive time range, one session.
    let (rows, _) = all_pages(
        &app,
        &format!("user_id={user}&series=session.gut.*&start_time=2025-03-03T10:00:00Z&end_time=2025-03-03T10:00:01Z&limit=2"),
    )
    .await;
    let values: Vec<&Value> = rows.iter().map(|r| &r["value"]).collect();
    // At 10:00:00 both sessions have a point: session ids break the tie.
    let (first, second) = if s1 < s2 { (1, 10) } else { (10, 1) };
    assert_eq!(
        values,
        [
            &json!({"value": first}),
            &json!({"value": second}),
            &json!({"value": 2})
        ]
    );
    let (rows, _) = all_pages(&app, &format!("user_id={user}&session_id={s2}&limit=2")).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["session_id"] == s2.to_string()));

    // Values come back exactly as sent (spacing and key order), fields in a fixed order.
    let raw_user = Uuid::new_v4();
    let raw = format!(
        r#"{{"user_id": "{raw_user}", "session_id": "{}", "data": [{{"series": "session.urine.color", "time": "2025-03-03T10:00:00Z", "value": {{"r": 1,  "g": 2, "b": 3}}}}]}}"#,
        Uuid::new_v4()
    );
    assert_eq!(
        app.post_raw("/api/sessions/", raw.into_bytes()).await.0,
        201
    );
    for path in ["points", "latest"] {
        let mut resp = app
            .client
            .get(app.url(&format!("/api/timeseries/{path}/?user_id={raw_user}")))
            .send()
            .await
            .unwrap();
        let text = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
        assert!(
            text.contains(r#""value":{"r": 1,  "g": 2, "b": 3}"#),
            "{text}"
        );
        if path == "points" {
            assert!(
                text.starts_with(r#"{"results":[{"time":"2025-03-03T10:00:00Z","series":"#),
                "{text}"
            );
            assert!(
                text.ends_with(r#","next_cursor":null,"next":null}"#),
                "{text}"
            );
        }
    }

    let (status, body) = app
        .get(&format!(
            "/api/timeseries/points/?user_id={user}&limit=50000"
        ))
        .await;
    assert_eq!(status, 200, "limit over the maximum is capped: {body}");
    for (q, name) in [
        (String::new(), "user_id"),
        (format!("user_id={user}&limit=0"), "limit"),
        (format!("user_id={user}&cursor=garbage"), "cursor"),
        (format!("user_id={user}&format=xml"), "format"),
        (
            format!("user_id={user}&start_time=2025-03-04&end_time=2025-03-03"),
            "start_time",
        ),
        (format!("user_id={user}&end_time=soon"), "end_time"),
        (format!("user_id={user}&session_id=x"), "session_id"),
        (format!("user_id={user}&series=("), "series"),
    ] {
        let (status, body) = app.get(&format!("/api/timeseries/points/?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body[name].is_array(), "{q}: {body}");
    }
}

// ---------------------------------------------------------------------------------
// Points: exports

/// Splits one CSV record (RFC 4180 quoting, no line breaks inside fields).
fn csv_record(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

async fn export(app: &TestApp, params: &str) -> (String, String) {
    let mut resp = app
        .client
        .get(app.url(&format!("/api/timeseries/points/?{params}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.body().limit(256 * 1024 * 1024).await.unwrap();
    (ct, String::from_utf8(body.to_vec()).unwrap())
}

#[actix_web::test]
async fn exports_of_100k_points_parse_back_point_for_point() {
    let app = TestApp::spawn().await;
    let mut conn = app.conn();
    let series = (
        series_id(&mut conn, "session.gut_health_score"),
        series_id(&mut conn, "session.example.series"),
    );
    let names: HashMap<i32, &str> = [
        (series.0, "session.gut_health_score"),
        (series.1, "session.example.series"),
    ]
    .into();
    let (user, sessions) = (Uuid::new_v4(), [Uuid::new_v4(), Uuid::new_v4()]);
    let start = Utc.with_ymd_and_hms(2024, 12, 30, 12, 0, 0).unwrap();
    let n = 100_000;
    load_points(&app.db, user, sessions, series, start, SECOND, n);
    // Another user's points in the same range stay out.
    load_points(
        &app.db,
        Uuid::new_v4(),
        sessions,
        series,
        start,
        SECOND,
        1000,
    );
    let want = expected_points(sessions, series, start, SECOND, n);
    assert_eq!(want.len(), 100_000);
    let check = |got: Vec<(DateTime<Utc>, String, Uuid, Value)>| {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                (g.0, g.1.as_str(), g.2, &g.3),
                (w.0, names[&w.1], w.2, &w.3),
                "point {i}"
            );
        }
    };

    let (ct, csv) = export(&app, &format!("user_id={user}&format=csv")).await;
    assert_eq!(ct, "text/csv; charset=utf-8");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("time,series,session_id,value"));
    check(
        lines
            .map(|l| {
                let f = csv_record(l);
                assert_eq!(f.len(), 4, "{l}");
                (
                    time(&f[0]),
                    f[1].clone(),
                    f[2].parse().unwrap(),
                    serde_json::from_str(&f[3]).unwrap(),
                )
            })
            .collect(),
    );

    let (ct, nd) = export(&app, &format!("user_id={user}&format=ndjson")).await;
    assert_eq!(ct, "application/x-ndjson");
    check(
        nd.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    time(v["time"].as_str().unwrap()),
                    v["series"].as_str().unwrap().to_string(),
                    v["session_id"].as_str().unwrap().parse().unwrap(),
                    v["value"].clone(),
                )
            })
            .collect(),
    );

    // A range and a series filter; an empty range is just the header.
    let (_, csv) = export(
        &app,
        &format!("user_id={user}&format=csv&series=session.example.series&start_time=2024-12-30T12:00:10Z&end_time=2024-12-30T12:00:20Z"),
    )
    .await;
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    let expect: Vec<_> = want
        .iter()
        .filter(|w| {
            w.1 == series.1
                && w.0 >= time("2024-12-30T12:00:10Z")
                && w.0 <= time("2024-12-30T12:00:20Z")
        })
        .collect();
    assert_eq!(lines.len(), expect.len());
    assert!(lines.iter().all(|l| l.contains(",session.example.series,")));
    let (_, csv) = export(
        &app,
        &format!("user_id={user}&format=csv&start_time=2030-01-01"),
    )
    .await;
    assert_eq!(csv, "time,series,session_id,value\n");
    let (_, nd) = export(
        &app,
        &format!("user_id={user}&format=ndjson&end_time=2000-01-01"),
    )
    .await;
    assert_eq!(nd, "");
}

/// `VmHWM` (peak resident set) of a process, in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The real `seriesd serve` as a child process; killed on drop.
struct Server {
    child: std::process::Child,
    address: String,
}

impl Server {
    async fn start(db: &TestDb) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_seriesd"))
            .arg("serve")
            .env("DATABASE_URL", db.url.as_str())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("REDIS_URL", "")
            .env("WORKERS", "2")
            .env("DB_POOL_SIZE", "4")
            // Memory is the point here, not authentication.
            .env("AUTH", "disabled")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ok = client()
                .get(format!("{}/health/", server.address))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "seriesd serve did not come up"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Streams an export, counting its lines without keeping it.
    async fn export_lines(&self, params: &str) -> usize {
        let mut resp = client()
            .get(format!("{}/api/timeseries/points/?{params}", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut lines = 0;
        while let Some(chunk) = resp.next().await {
            lines += chunk.unwrap().iter().filter(|&&b| b == b'\n').count();
        }
        lines
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn an_exports_peak_memory_stays_flat_when_the_range_grows_tenfold() {
    let db = TestDb::create();
    let mut conn = db.conn();
    let series = (
        series_id(&mut conn, "session.gut_health_score"),
        series_id(&mut conn, "session.example.series"),
    );
    let sessions = [Uuid::new_v4(), Uuid::new_v4()];
    let (small, large) = (Uuid::new_v4(), Uuid::new_v4());
    let start = Utc.with_ymd_and_hms(2025, 6, 2, 0, 0, 0).unwrap();
    load_points(&db, small, sessions, series, start, SECOND, 50_000);
    load_points(&db, large, sessions, series, start, SECOND, 500_000);
    let server = Server::start(&db).await;
    let pid = server.child.id();

    let mut peaks = Vec::new();
    for (user, n) in [(small, 50_000), (large, 500_000)] {
        for format in ["csv", "ndjson"] {
            let lines = server
                .export_lines(&format!("user_id={user}&format={format}"))
                .await;
            let header = usize::from(format == "csv");
            assert_eq!(lines, n + header, "{format}");
        }
        peaks.push(peak_rss_kb(pid));
    }
    let growth_mb = (peaks[1] as f64 - peaks[0] as f64) / 1024.0;
    println!(
        "seriesd peak RSS: {} kB after 50k-point exports, {} kB after 500k-point exports (+{growth_mb:.1} MB)",
        peaks[0], peaks[1]
    );
    assert!(
        growth_mb < 30.0,
        "peak RSS grew by {growth_mb:.1} MB: {peaks:?}"
    );
}
