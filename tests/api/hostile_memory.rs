//! Hostile ingest from one ordinary user token, against the real server: memory that does
//! not grow with the number of errors, long NDJSON lines in linear time with `/health/`
//! answering, large bodies taking turns within `INGEST_MEMORY_MIB`, schema patterns that
//! cannot backtrack, and values the storage cannot hold faithfully (leap seconds,
//! duplicate keys, numbers whose squares overflow) refused by name. Never a 500.

use crate::helpers::{ServerProcess, TestApp, TestDb, add_series, client, count, session_body};
use diesel::RunQueryDsl;
use serde_json::{Value, json};
use seriesd::domain::api_token::Scope;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use uuid::Uuid;

const MIB: usize = 1024 * 1024;

/// What a raw HTTP exchange answered: status, head, JSON body (`Null` if none).
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

/// POSTs `body` over a plain socket, reading the answer while the body is still being
/// written: the server may answer (413, 503) and close before it read the whole body.
fn post_socket(address: &str, path: &str, token: &str, body: &[u8]) -> Answer {
    let addr = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let _ = reader.read_to_end(&mut raw);
        raw
    });
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A write error means the server answered early and closed; no half-close after
    // the body (actix-web takes it for a body cut short): `Connection: close` ends it.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| body.chunks(64 * 1024).try_for_each(|c| stream.write_all(c)));
    let raw = answer.join().unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_string(),
        body: serde_json::from_str(payload).unwrap_or(Value::Null),
    }
}

/// Runs `post` on a thread of its own while asking `/health/` every 50 ms; returns its
/// answer, how long it took and the slowest health answer.
async fn while_health_is_asked(
    server: &ServerProcess,
    post: impl FnOnce() -> Answer + Send + 'static,
) -> (Answer, Duration, Duration) {
    let start = Instant::now();
    let posting = std::thread::spawn(post);
    let mut slowest = Duration::ZERO;
    while !posting.is_finished() {
        let asked = Instant::now();
        let resp = client().get(server.url("/health/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        slowest = slowest.max(asked.elapsed());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = posting.join().unwrap();
    (answer, start.elapsed(), slowest)
}

/// A server process with a user token; its peak RSS once a small session is stored.
async fn server_with_user(db: &TestDb, env: &[(&str, &str)]) -> (ServerProcess, Uuid, String, u64) {
    let server = ServerProcess::start(db, env).await;
    let user = Uuid::new_v4();
    let token = db.token(Scope::User(user)).1;
    let small = points(user, 10, |_| json!({"value": 1}));
    let answer = post_socket(&server.address, "/api/sessions/", &token, &small);
    assert_eq!(answer.status, 201, "{}", answer.body);
    let idle = server.peak_rss_kb();
    (server, user, token, idle)
}

/// A session body of `n` gut-health points, a second apart, with values from `value`.
fn points(user: Uuid, n: usize, value: impl Fn(usize) -> Value) -> Vec<u8> {
    let data: Vec<Value> = (0..n)
        .map(|i| {
            json!({"series": "session.gut_health_score",
                   "time": format!("2025-01-{:02}T{:02}:{:02}:{:02}Z", 1 + i / 86_400, i / 3600 % 24, i / 60 % 60, i % 60),
                   "value": value(i)})
        })
        .collect();
    serde_json::to_vec(&session_body(user, Uuid::new_v4(), data)).unwrap()
}

/// How far the peak RSS rose above `idle_kb`, in MiB; printed for `--no-capture` runs.
fn growth_mib(what: &str, peak_kb: u64, idle_kb: u64) -> u64 {
    let growth = peak_kb.saturating_sub(idle_kb) / 1024;
    println!(
        "{what}: peak RSS {} MiB, {growth} MiB over idle",
        peak_kb / 1024
    );
    growth
}

#[actix_web::test]
async fn a_bulk_of_8_mib_of_bad_lines_lists_100_and_stays_small() {
    let db = TestDb::create();
    let (server, _, token, idle) = server_with_user(&db, &[]).await;
    let lines = 4 * MIB;
    let body = b"x\n".repeat(lines);
    let answer = post_socket(&server.address, "/api/sessions/bulk/", &token, &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let report = answer.body;
    assert_eq!(report["lines"], lines);
    assert_eq!(report["accepted"], 0);
    assert_eq!(report["rejected_count"], lines);
    let listed: Vec<u64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, (1..=100).collect::<Vec<u64>>());
    let growth = growth_mib("8 MiB of bad lines", server.peak_rss_kb(), idle);
    assert!(growth < 150, "peak RSS grew by {growth} MiB");
}

#[actix_web::test]
async fn sessions_of_invalid_points_list_100_and_count_the_rest_three_at_once() {
    let db = TestDb::create();
    let (server, user, token, idle) = server_with_user(&db, &[]).await;
    let n = 200_000;
    // The first point is good: it keeps its `{}` place in the list.
    let body = points(user, n, |i| {
        if i == 0 {
            json!({"value": 1})
        } else {
            json!({"value": "bad"})
        }
    });
    let body = std::sync::Arc::new(body);
    let posts: Vec<_> = (0..3)
        .map(|_| {
            let (address, token, body) = (server.address.clone(), token.clone(), body.clone());
            std::thread::spawn(move || post_socket(&address, "/api/sessions/", &token, &body))
        })
        .collect();
    for post in posts {
        let answer = post.join().unwrap();
        assert_eq!(answer.status, 400, "{}", answer.body);
        let data = answer.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 101);
        assert_eq!(data[0], json!({}));
        assert!(data[1..].iter().all(|e| e["value"].is_array()));
        assert_eq!(
            answer.body["non_field_errors"],
            json!([
                "Only the first 100 points with errors are listed in data; 199,899 more points have errors."
            ])
        );
    }
    let growth = growth_mib("3 x 200k bad points", server.peak_rss_kb(), idle);
    assert!(growth < 150, "peak RSS grew by {growth} MiB");
    assert_eq!(
        count(&mut db.conn(), "SELECT count(*) AS n FROM points"),
        10
    );
}

#[actix_web::test]
async fn three_large_bodies_take_turns_within_the_ingest_memory_budget() {
    let db = TestDb::create();
    let env = [
        ("MAX_BODY_MIB", "8"),
        ("INGEST_MEMORY_MIB", "80"),
        ("INGEST_MEMORY_WAIT_MS", "2000"),
    ];
    let (server, user, token, idle) = server_with_user(&db, &env).await;
    let bodies: Vec<Vec<u8>> = (0..3)
        .map(|_| points(user, 90_000, |i| json!({"value": i % 10})))
        .collect();
    assert!(
        bodies
            .iter()
            .all(|b| b.len() > 7 * MIB && b.len() < 8 * MIB)
    );
    let posts: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (address, token) = (server.address.clone(), token.clone());
            std::thread::spawn(move || post_socket(&address, "/api/sessions/", &token, &body))
        })
        .collect();
    let mut stored = 0;
    for post in posts {
        let answer = post.join().unwrap();
        match answer.status {
            201 => stored += 1,
            503 => {
                assert!(
                    answer.head.to_ascii_lowercase().contains("retry-after:"),
                    "{}",
                    answer.head
                );
                let detail = answer.body["detail"].as_str().unwrap();
                assert!(detail.contains("INGEST_MEMORY_MIB"), "{detail}");
            }
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert!(stored >= 1);
    // Within the 80 MiB budget, one body at a time; three at once take about 150 MiB.
    let growth = growth_mib("3 x 7.5 MiB bodies", server.peak_rss_kb(), idle);
    assert!(growth < 100, "peak RSS grew by {growth} MiB");
}

#[actix_web::test]
async fn a_32_mib_ndjson_line_is_read_in_linear_time_while_health_answers() {
    let db = TestDb::create();
    let line = {
        let mut l = b"{\"pad\": \"".to_vec();
        l.resize(32 * MIB, b'a');
        l.extend_from_slice(b"\"}\n");
        std::sync::Arc::new(l)
    };
    // Under the limit: read, parsed, refused in the report.
    let (server, _, token, _) = server_with_user(&db, &[]).await;
    let (address, body) = (server.address.clone(), line.clone());
    let post = move || post_socket(&address, "/api/sessions/bulk/", &token, &body);
    let (answer, took, slowest) = while_health_is_asked(&server, post).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["rejected"][0]["line"], 1);
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "/health/ took {slowest:?}"
    );
    drop(server);

    // Over a 16 MiB limit: 413 naming the line and the setting.
    let db = TestDb::create();
    let (server, _, token, _) = server_with_user(&db, &[("MAX_BODY_MIB", "16")]).await;
    let address = server.address.clone();
    let post = move || post_socket(&address, "/api/sessions/bulk/", &token, &line);
    let (answer, took, slowest) = while_health_is_asked(&server, post).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(
        answer.body["detail"],
        "Line 1 exceeds the limit of 16 MiB (MAX_BODY_MIB)."
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "/health/ took {slowest:?}"
    );
}

#[actix_web::test]
async fn schema_patterns_run_in_linear_time_and_backtracking_ones_are_refused() {
    let app = TestApp::spawn().await;
    // Look-around and backreferences need a backtracking engine: refused, by place.
    for (method, path) in [
        ("POST", "/api/metrictypes/"),
        ("PUT", "/api/metrictypes/lab.code/"),
    ] {
        let body = json!({"series": "lab.code", "schema": {"type": "object",
            "properties": {"code": {"type": "string", "pattern": "^(a|aa)+(?=c)$"}}}});
        let req = match method {
            "POST" => app.client.post(app.url(path)),
            _ => app.client.put(app.url(path)),
        };
        let (status, resp) = crate::helpers::send(
            req.insert_header(("content-type", "application/json")),
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
        assert_eq!(status, 400, "{resp}");
        let message = resp["schema"][0].as_str().unwrap();
        assert!(message.contains("/properties/code/pattern"), "{message}");
        assert!(message.contains("look-around"), "{message}");
    }
    // A pattern that makes backtracking engines take exponential time answers at once.
    add_series(
        &app,
        "lab.code",
        json!({"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a|aa)+$"}}}),
    )
    .await;
    let user = Uuid::new_v4();
    let body = session_body(
        user,
        Uuid::new_v4(),
        json!([{"series": "lab.code", "time": "2025-01-01T00:00:00Z",
                "value": {"code": format!("{}b", "a".repeat(5000))}}]),
    );
    let started = Instant::now();
    let (first, second) = futures_util::future::join(
        app.post("/api/sessions/", &body),
        app.post("/api/sessions/", &body),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for (status, resp) in [first, second] {
        assert_eq!(status, 400, "{resp}");
        assert!(
            resp["data"][0]["value"][0]
                .as_str()
                .unwrap()
                .contains("does not match")
        );
    }
}

#[actix_web::test]
async fn a_stored_schema_the_engine_cannot_run_refuses_new_points_only() {
    let app = TestApp::spawn().await;
    // Written before patterns were restricted (here: by hand in SQL).
    diesel::sql_query(
        "INSERT INTO metric_types (series, schema) VALUES
         ('lab.legacy', '{\"type\": \"string\", \"pattern\": \"^(?!x)\"}')",
    )
    .execute(&mut app.conn())
    .unwrap();
    // A trigger bumps the version on one server; on Citus a hand edit says so itself.
    diesel::sql_query("UPDATE catalogue_version SET version = version + 1 WHERE id")
        .execute(&mut app.conn())
        .unwrap();
    let user = Uuid::new_v4();
    let body = session_body(
        user,
        Uuid::new_v4(),
        json!([{"series": "lab.legacy", "time": "2025-01-01T00:00:00Z", "value": "y"}]),
    );
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 400, "{resp}");
    let message = resp["data"][0]["series"][0].as_str().unwrap();
    assert!(
        message.contains("cannot be applied")
            && message.contains("PUT /api/metrictypes/lab.legacy/"),
        "{message}"
    );
    assert_eq!(app.get("/health/").await.0, 200);
    assert_eq!(app.get("/api/metrictypes/lab.legacy/").await.0, 200);
    let (status, resp) = app
        .get(&format!(
            "/api/timeseries/?user_id={user}&series=lab.legacy"
        ))
        .await;
    assert_eq!(status, 200, "{resp}");
}

#[actix_web::test]
async fn formats_are_asserted() {
    let app = TestApp::spawn().await;
    add_series(
        &app,
        "lab.contact",
        json!({"type": "string", "format": "email"}),
    )
    .await;
    add_series(&app, "lab.link", json!({"type": "string", "format": "uri"})).await;
    let user = Uuid::new_v4();
    let post = |series: &str, value: &str| {
        session_body(
            user,
            Uuid::new_v4(),
            json!([{"series": series, "time": "2025-01-01T00:00:00Z", "value": value}]),
        )
    };
    for (series, bad) in [("lab.contact", "not an address"), ("lab.link", "not a uri")] {
        let (status, resp) = app.post("/api/sessions/", &post(series, bad)).await;
        assert_eq!(status, 400, "{series}: {resp}");
        assert!(resp["data"][0]["value"].is_array(), "{resp}");
    }
    for (series, good) in [
        ("lab.contact", "a@example.com"),
        ("lab.link", "https://example.com/x"),
    ] {
        let (status, resp) = app.post("/api/sessions/", &post(series, good)).await;
        assert_eq!(status, 201, "{series}: {resp}");
    }
}

#[actix_web::test]
async fn leap_seconds_are_refused_in_bodies_and_parameters() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let leap = "Leap seconds (second 60) are not accepted.";
    let body = json!({"user_id": user, "session_id": Uuid::new_v4(),
    "start_ts": "2016-12-31T23:59:60Z",
    "data": [
        {"series": "session.gut_health_score", "time": "2016-12-31T23:59:60Z", "value": {"value": 1}},
        {"series": "session.gut_health_score", "time": "2016-12-31T23:59:60.5Z", "value": {"value": 2}},
        {"series": "session.gut_health_score", "time": "2017-01-01T00:00:00Z", "value": {"value": 3}}
    ]});
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["start_ts"], json!([leap]));
    assert_eq!(resp["data"], json!([{"time": [leap]}, {"time": [leap]}]));
    assert_eq!(
        count(&mut app.conn(), "SELECT count(*) AS n FROM points"),
        0
    );
    for (path, field) in [
        (
            "/api/timeseries/?start_time=2016-12-31T23:59:60Z",
            "start_time",
        ),
        (
            "/api/timeseries/?end_time=2016-12-31T23:59:60.5Z",
            "end_time",
        ),
        (
            "/api/timeseries/latest/?as_of=2016-12-31T23:59:60Z",
            "as_of",
        ),
        (
            "/api/timeseries/points/?start_time=2016-12-31T23:59:60.5Z",
            "start_time",
        ),
    ] {
        let path = format!("{path}&user_id={user}");
        let (status, resp) = app.get(&path).await;
        assert_eq!(status, 400, "{path}: {resp}");
        assert_eq!(resp[field], json!([leap]), "{path}");
    }
}

#[actix_web::test]
async fn duplicate_keys_and_numbers_whose_squares_overflow_are_refused() {
    let app = TestApp::spawn().await;
    add_series(&app, "lab.level", json!({"type": "number"})).await;
    add_series(&app, "lab.vector", json!({"type": "object"})).await;
    let user = Uuid::new_v4();
    let point = |series: &str, value: &str| {
        format!(r#"{{"series": "{series}", "time": "2025-01-01T00:00:00Z", "value": {value}}}"#)
    };
    let data = [
        point("session.urine.color", r#"{"r":999,"g":1,"b":2,"r":3}"#),
        point("lab.vector", r#"{"a": [{"k": 1, "k": 2}]}"#),
        point("lab.level", "1e151"),
        point("lab.vector", r#"{"value": -2e150}"#),
        point("lab.vector", r#"{"x": 1, "y": 1e300}"#),
    ];
    let body = format!(
        r#"{{"user_id": "{user}", "session_id": "{}", "data": [{}]}}"#,
        Uuid::new_v4(),
        data.join(", ")
    );
    let (status, resp) = app.post_raw("/api/sessions/", body.into_bytes()).await;
    assert_eq!(status, 400, "{resp}");
    let too_large = "Numbers beyond ±1e150 are not accepted: sums of squares would overflow.";
    assert_eq!(
        resp["data"],
        json!([
            {"value": ["Duplicate key 'r' in value."]},
            {"value": ["Duplicate key 'k' in value."]},
            {"value": [too_large]},
            {"value": [too_large]},
            {"value": [too_large]}
        ])
    );
    // The limit itself, and big numbers queries do not aggregate, are fine.
    let data = [
        point("lab.level", "-1e150"),
        point(
            "lab.vector",
            r#"{"value": 1e150, "note": "1e300", "deep": {"x": 1e300}}"#,
        ),
    ];
    let body = format!(
        r#"{{"user_id": "{user}", "session_id": "{}", "data": [{}]}}"#,
        Uuid::new_v4(),
        data.join(", ")
    );
    let (status, resp) = app.post_raw("/api/sessions/", body.into_bytes()).await;
    assert_eq!(status, 201, "{resp}");
}
