//! `POST /api/sessions/`: validation, idempotence, concurrency, size, durability.

use crate::helpers::{TestApp, count};
use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

fn session(user: Uuid, session: Uuid, data: Vec<Value>) -> Value {
    json!({"user_id": user, "session_id": session, "start_ts": "2025-01-01T00:00:00Z", "data": data})
}

fn point(series: &str, time: &str, value: Value) -> Value {
    json!({"series": series, "time": time, "value": value})
}

fn nothing_written(app: &TestApp) {
    let mut conn = app.conn();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 0);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 0);
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Stored {
    #[diesel(sql_type = diesel::sql_types::Text)]
    series: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    time: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    num: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn stored(app: &TestApp, user: Uuid) -> Vec<Stored> {
    diesel::sql_query(
        "SELECT m.series::text AS series, p.time, p.num, p.value::text AS value
         FROM points p JOIN metric_types m ON m.id = p.series_id
         WHERE p.user_id = $1 ORDER BY p.time, m.series",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .load(&mut app.conn())
    .unwrap()
}

#[actix_web::test]
async fn the_seed_body_is_stored_exactly() {
    let app = TestApp::spawn().await;
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let body = session(
        user,
        sid,
        vec![
            point(
                "session.example.series",
                "2025-01-01T00:01:00Z",
                json!({"value": "example value"}),
            ),
            point(
                "session.urine.color",
                "2025-01-01T00:01:00Z",
                json!({"r": 255, "g": 255, "b": 255}),
            ),
            point(
                "session.gut_health_score",
                "2025-01-01T02:01:00.5+02:00",
                json!({"value": 7.25}),
            ),
        ],
    );
    let (status, resp) = app.post("/api/sessions", &body).await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["message"], "Data ingested successfully");
    assert_eq!(resp["received"], 3);
    assert_eq!(resp["inserted"], 3);
    let rows = stored(&app, user);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].series, "session.example.series");
    assert_eq!(rows[0].value, r#"{"value":"example value"}"#);
    assert_eq!(rows[0].num, None);
    // serde_json writes object keys sorted: this is the body exactly as the test sent it.
    assert_eq!(rows[1].value, r#"{"b":255,"g":255,"r":255}"#);
    assert_eq!(rows[2].series, "session.gut_health_score");
    assert_eq!(
        rows[2].time,
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 1, 0).unwrap() + Duration::milliseconds(500)
    );
    assert_eq!(rows[2].num, Some(7.25));
    let mut conn = app.conn();
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM sessions WHERE session_id = '{sid}' AND user_id = '{user}' AND start_ts = '2025-01-01T00:00:00Z'"
            )
        ),
        1
    );
    // The {r,g,b} fields are extracted for aggregation without JSON parsing.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM points WHERE fields = '{b,g,r}' AND field_values = '{255,255,255}'"
        ),
        1
    );
}

#[actix_web::test]
async fn values_are_kept_as_sent_byte_for_byte() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let raw = format!(
        r#"{{"user_id":"{user}","session_id":"{}","data":[{{"series":"session.gut_health_score","time":"2025-01-01T00:00:00Z","value":{{ "value" : 1.50e1 }}}}]}}"#,
        Uuid::new_v4()
    );
    let (status, resp) = app.post_raw("/api/sessions/", raw.into_bytes()).await;
    assert_eq!(status, 201, "{resp}");
    let rows = stored(&app, user);
    assert_eq!(rows[0].value, r#"{ "value" : 1.50e1 }"#);
    assert_eq!(rows[0].num, Some(15.0));
}

#[actix_web::test]
async fn every_bad_input_is_a_400_that_says_where_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let good = point(
        "session.gut_health_score",
        "2025-01-01T00:00:00Z",
        json!({"value": 1}),
    );

    let cases: Vec<(Vec<u8>, Value)> = vec![
        (b"{not json".to_vec(), json!("detail")),
        (b"[1, 2]".to_vec(), json!("non_field_errors")),
        (serde_json::to_vec(&json!({"session_id": sid, "data": [good]})).unwrap(), json!({"user_id": ["This field is required."]})),
        (serde_json::to_vec(&json!({"user_id": "nope", "session_id": sid, "data": [good]})).unwrap(), json!({"user_id": ["Must be a valid UUID."]})),
        (serde_json::to_vec(&json!({"user_id": user, "session_id": 42, "data": [good]})).unwrap(), json!({"session_id": ["Must be a valid UUID."]})),
        (serde_json::to_vec(&json!({"user_id": user, "session_id": sid, "data": {"a": 1}})).unwrap(), json!("data")),
        (serde_json::to_vec(&json!({"user_id": user, "session_id": sid})).unwrap(), json!({"data": ["This field is required."]})),
        (serde_json::to_vec(&json!({"user_id": user, "session_id": sid, "start_ts": "2025-01-01", "data": [good]})).unwrap(), json!("start_ts")),
    ];
    for (body, expected) in cases {
        let (status, resp) = app.post_raw("/api/sessions/", body.clone()).await;
        assert_eq!(status, 400, "{} -> {resp}", String::from_utf8_lossy(&body));
        match expected {
            Value::String(key) => assert!(resp.get(&key).is_some(), "{resp} lacks {key}"),
            other => assert_eq!(resp, other),
        }
    }

    // Per-point errors, by position; the good points get {}.
    let body = session(
        user,
        sid,
        vec![
            good.clone(),
            point("x", "2025-01-01T00:00:00Z", json!({"value": 1})),
            point(
                "session.gut_health_score",
                "2025-01-01T00:00:00Z",
                json!({"value": "high"}),
            ),
            point(
                "session.gut_health_score",
                "2025-01-01T00:00:00",
                json!({"value": 1}),
            ),
            point(
                "session.gut_health_score",
                "1899-12-31T23:59:59Z",
                json!({"value": 1}),
            ),
            point(
                "session.gut_health_score",
                "2201-01-01T00:00:00Z",
                json!({"value": 1}),
            ),
            point(
                "session.gut_health_score",
                "2025-01-01T00:00:00Z",
                json!({"value": "NaN"}),
            ),
            json!({"series": "session.gut_health_score", "time": "2025-01-01T00:00:00Z"}),
            json!("not an object"),
            point(
                "session.urine.color",
                "2025-01-01T00:00:00Z",
                json!({"r": 1, "g": 2}),
            ),
        ],
    );
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 400, "{resp}");
    let data = resp["data"].as_array().unwrap();
    assert_eq!(data.len(), 10);
    assert_eq!(data[0], json!({}));
    assert_eq!(data[1], json!({"series": ["Unknown series 'x'."]}));
    assert!(
        data[2]["value"][0]
            .as_str()
            .unwrap()
            .starts_with("Value does not match schema:")
    );
    assert!(data[3]["time"][0].as_str().unwrap().contains("time zone"));
    assert!(data[4]["time"][0].as_str().unwrap().contains("1900"));
    assert!(data[5]["time"][0].as_str().unwrap().contains("2200"));
    assert!(data[6]["value"][0].as_str().unwrap().contains("NaN"));
    assert_eq!(data[7], json!({"value": ["This field is required."]}));
    assert!(data[8]["non_field_errors"].is_array());
    assert!(
        data[9]["value"][0]
            .as_str()
            .unwrap()
            .contains("\"b\" is a required property")
    );

    // Numbers JSON cannot carry: a literal NaN (malformed JSON) and an infinite exponent
    // (named at its point).
    let nan = format!(
        r#"{{"user_id":"{user}","session_id":"{sid}","data":[{{"series":"session.gut_health_score","time":"2025-01-01T00:00:00Z","value":{{"value":NaN}}}}]}}"#
    );
    let (status, resp) = app.post_raw("/api/sessions/", nan.into_bytes()).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );
    let inf = format!(
        r#"{{"user_id":"{user}","session_id":"{sid}","data":[{{"series":"session.gut_health_score","time":"2025-01-01T00:00:00Z","value":{{"value":1e999}}}}]}}"#
    );
    let (status, resp) = app.post_raw("/api/sessions/", inf.into_bytes()).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["data"][0]["value"][0]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{resp}"
    );
    nothing_written(&app);
}

#[actix_web::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let app = TestApp::spawn_with(&[("MAX_BODY_MIB", "1")]).await;
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let data: Vec<Value> = (0..30_000)
        .map(|i| {
            point(
                "session.gut_health_score",
                &format!("2025-01-01T00:00:{:02}.{:06}Z", i % 60, i),
                json!({"value": i}),
            )
        })
        .collect();
    let (status, resp) = app.post("/api/sessions/", &session(user, sid, data)).await;
    assert_eq!(status, 413, "{resp}");
    assert!(resp["detail"].as_str().unwrap().contains("MAX_BODY_MIB"));
    nothing_written(&app);
}

#[actix_web::test]
async fn retries_change_nothing_and_new_values_win() {
    let app = TestApp::spawn().await;
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let body = session(
        user,
        sid,
        vec![
            point(
                "session.gut_health_score",
                "2025-01-01T00:00:00Z",
                json!({"value": 1}),
            ),
            point(
                "session.gut_health_score",
                "2025-01-01T00:01:00Z",
                json!({"value": 2}),
            ),
            // Same key twice in one request: the later one wins.
            point(
                "session.gut_health_score",
                "2025-01-01T00:01:00Z",
                json!({"value": 3}),
            ),
        ],
    );
    let (status, first) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 201);
    assert_eq!(
        (
            first["stored"].as_u64(),
            first["duplicates_in_request"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let (status, retry) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 201, "{retry}");
    assert_eq!(retry["inserted"], 0);
    assert_eq!(retry["updated"], 0);
    assert_eq!(retry["unchanged"], 2);
    let nums: Vec<Option<f64>> = stored(&app, user).iter().map(|r| r.num).collect();
    assert_eq!(nums, vec![Some(1.0), Some(3.0)]);

    let change = session(
        user,
        sid,
        vec![
            point(
                "session.gut_health_score",
                "2025-01-01T00:00:00Z",
                json!({"value": 10}),
            ),
            point(
                "session.gut_health_score",
                "2025-01-01T00:02:00Z",
                json!({"value": 4}),
            ),
        ],
    );
    let (status, resp) = app.post("/api/sessions/", &change).await;
    assert_eq!(status, 201);
    assert_eq!(
        (resp["inserted"].as_u64(), resp["updated"].as_u64()),
        (Some(1), Some(1))
    );
    let nums: Vec<Option<f64>> = stored(&app, user).iter().map(|r| r.num).collect();
    assert_eq!(nums, vec![Some(10.0), Some(3.0), Some(4.0)]);
}

#[actix_web::test]
async fn a_session_belongs_to_one_user() {
    let app = TestApp::spawn().await;
    let sid = Uuid::new_v4();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let p = point(
        "session.gut_health_score",
        "2025-01-01T00:00:00Z",
        json!({"value": 1}),
    );
    let (status, _) = app
        .post("/api/sessions/", &session(a, sid, vec![p.clone()]))
        .await;
    assert_eq!(status, 201);
    let (status, resp) = app.post("/api/sessions/", &session(b, sid, vec![p])).await;
    assert_eq!(status, 409, "{resp}");
    assert!(resp["detail"].is_string());
    let mut conn = app.conn();
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM points WHERE user_id = '{b}'")
        ),
        0
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM sessions WHERE user_id = '{b}'")
        ),
        0
    );
}

#[actix_web::test]
async fn concurrent_posts_of_one_session_neither_duplicate_nor_deadlock() {
    let app = TestApp::spawn().await;
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let data: Vec<Value> = (0..200)
        .map(|i| {
            point(
                "session.gut_health_score",
                &format!("2025-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
                json!({"value": i}),
            )
        })
        .collect();
    let body = session(user, sid, data);
    let posts = (0..8).map(|_| app.post("/api/sessions/", &body));
    for (status, resp) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 201, "{resp}");
    }
    let mut conn = app.conn();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 200);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 1);
}

#[actix_web::test]
async fn far_past_and_future_weeks_get_partitions_on_demand() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let body = session(
        user,
        Uuid::new_v4(),
        vec![
            point(
                "session.gut_health_score",
                "1999-06-01T00:00:00Z",
                json!({"value": 1}),
            ),
            point(
                "session.gut_health_score",
                "2090-01-01T00:00:00Z",
                json!({"value": 2}),
            ),
        ],
    );
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 201, "{resp}");
    let rows = stored(&app, user);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].time,
        Utc.with_ymd_and_hms(1999, 6, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(rows[1].num, Some(2.0));
    let mut conn = app.conn();
    // Native weeks by name (a hypertable names its chunks itself).
    if crate::helpers::expected_storage() == "native-partitions" {
        assert_eq!(
            count(
                &mut conn,
                "SELECT count(*) AS n FROM pg_class WHERE relname IN ('points_w19990531', 'points_w20891226')"
            ),
            2
        );
    }

    // Two writers racing into a week that has no partition yet both succeed.
    let app = &app;
    let posts = (0..2).map(|i| {
        let body = session(
            Uuid::new_v4(),
            Uuid::new_v4(),
            vec![point(
                "session.gut_health_score",
                &format!("2150-03-0{}T00:00:00Z", i + 1),
                json!({"value": i}),
            )],
        );
        async move { app.post("/api/sessions/", &body).await }
    });
    for (status, resp) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 201, "{resp}");
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM points WHERE time >= '2150-01-01'"
        ),
        2
    );
}

#[actix_web::test]
async fn racing_processes_create_a_week_once() {
    if crate::helpers::expected_storage() != "native-partitions" {
        eprintln!("skipped: partitions are the hypertable's own on this engine");
        return;
    }
    // Two partition managers (as in two replicas) on one database, many threads.
    let app = TestApp::spawn().await;
    let url = app.db.url.clone();
    let week = seriesd::db::partitions::week_of(Utc.with_ymd_and_hms(2170, 6, 1, 0, 0, 0).unwrap());
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(url.as_str()).unwrap();
                let manager = seriesd::db::partitions::PartitionManager::new();
                manager
                    .ensure_weeks(&mut conn, &[week].into_iter().collect())
                    .unwrap()
            })
        })
        .collect();
    let created: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(created, 1);
}

#[actix_web::test]
async fn a_hundred_thousand_point_session_over_two_hundred_weeks() {
    let app = TestApp::spawn().await;
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let start = Utc.with_ymd_and_hms(2021, 1, 4, 0, 0, 0).unwrap();
    // 100,000 points spread evenly over 200 weeks.
    let step = Duration::seconds(200 * 7 * 24 * 3600 / 100_000);
    let data: Vec<Value> = (0..100_000)
        .map(|i| {
            let t = start + step * i;
            point(
                "session.gut_health_score",
                &t.to_rfc3339(),
                json!({"value": f64::from(i) / 4.0}),
            )
        })
        .collect();
    let (status, resp) = app.post("/api/sessions/", &session(user, sid, data)).await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["inserted"], 100_000);
    let mut conn = app.conn();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM points"),
        100_000
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT tableoid)::bigint AS n FROM points"
        ),
        // From a Monday: 200 weekly partitions, or 201 TimescaleDB chunks (Thursdays).
        if crate::helpers::expected_storage() == "timescaledb" {
            201
        } else {
            200
        }
    );
    // Every value came back exactly.
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM points WHERE num * 4 = round(extract(epoch FROM time - '{}') / {})",
                start.to_rfc3339(),
                step.num_seconds()
            )
        ),
        100_000
    );
}

#[actix_web::test]
async fn a_series_added_by_another_replica_is_accepted_at_once() {
    let app = TestApp::spawn().await;
    diesel::sql_query(
        "INSERT INTO metric_types (series, schema) VALUES ('iot.temp', '{\"type\": \"number\"}')",
    )
    .execute(&mut app.conn())
    .unwrap();
    // A trigger bumps the version on one server; on Citus a hand edit says so itself.
    diesel::sql_query("UPDATE catalogue_version SET version = version + 1 WHERE id")
        .execute(&mut app.conn())
        .unwrap();
    let user = Uuid::new_v4();
    let body = session(
        user,
        Uuid::new_v4(),
        vec![point("iot.temp", "2025-01-01T00:00:00Z", json!(21.5))],
    );
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(stored(&app, user)[0].num, Some(21.5));
}

#[actix_web::test]
async fn bulk_ndjson_keeps_good_lines_and_names_bad_ones() {
    let app = TestApp::spawn_with(&[("INGEST_BATCH_POINTS", "5")]).await;
    let user = Uuid::new_v4();
    let good = |minute: u32| {
        serde_json::to_string(&session(
            user,
            Uuid::new_v4(),
            vec![
                point(
                    "session.gut_health_score",
                    &format!("2025-02-01T00:{minute:02}:00Z"),
                    json!({"value": minute}),
                ),
                point(
                    "session.urine.night_count",
                    &format!("2025-02-01T00:{minute:02}:00Z"),
                    json!({"value": 1}),
                ),
            ],
        ))
        .unwrap()
    };
    let bad_series = serde_json::to_string(&session(
        user,
        Uuid::new_v4(),
        vec![point("nope", "2025-02-01T00:00:00Z", json!({"value": 1}))],
    ))
    .unwrap();
    let body = [
        good(1),
        "{broken".to_string(),
        good(2),
        String::new(),
        bad_series,
        good(3),
        good(4),
        good(5),
    ]
    .join("\n"); // no newline after the last line
    let (status, report) = app.post_raw("/api/sessions/bulk/", body.into_bytes()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["lines"], 7);
    assert_eq!(report["accepted"], 5);
    assert_eq!(report["points"], 10);
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["line"], 2);
    assert!(
        rejected[0]["errors"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );
    assert_eq!(rejected[1]["line"], 5);
    assert_eq!(
        rejected[1]["errors"]["data"][0]["series"][0],
        "Unknown series 'nope'."
    );
    let mut conn = app.conn();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 10);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 5);
}
