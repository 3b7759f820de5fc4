//! Security: tokens (401 without, 403 beyond their scope, revocation within a second on
//! every replica), per-token rate limits, hostile input, limits, headers and CORS.

use crate::helpers::{
    TestApp, TestDb, client, client_with, count, send, settings_for, start_server,
};
use awc::http::Method;
use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use serde_json::{Value, json};
use seriesd::domain::api_token::TokenSecret;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use uuid::Uuid;

const FORBIDDEN: &str = "You do not have permission to perform this action.";

fn session(user: Uuid, sid: Uuid, value: f64) -> Value {
    json!({"user_id": user, "session_id": sid, "data": [
        {"series": "session.gut_health_score", "time": "2025-01-01T00:00:00Z", "value": {"value": value}},
        {"series": "session.urine.color", "time": "2025-01-01T00:01:00Z", "value": {"r": 1, "g": 2, "b": 3}}
    ]})
}

/// Every registered route with its parameters filled in.
fn concrete_routes() -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, methods) in seriesd::routes::ROUTES {
        let path = path
            .replace("{session_id}", &Uuid::new_v4().to_string())
            .replace("{series}", "session.urine.color");
        for m in *methods {
            out.push((Method::from_bytes(m.as_bytes()).unwrap(), path.clone()));
        }
    }
    out
}

/// Sends `method url` with an `Authorization` header (or none) and a JSON body;
/// returns the status, the `WWW-Authenticate` header and the body.
async fn request(
    authorization: Option<&str>,
    method: Method,
    url: &str,
) -> (u16, Option<String>, Value) {
    let mut req = client()
        .request(method, url)
        .insert_header(("content-type", "application/json"));
    if let Some(a) = authorization {
        req = req.insert_header(("authorization", a));
    }
    let mut resp = req.send_body("{}").await.unwrap();
    let challenge = resp
        .headers()
        .get("WWW-Authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.body().limit(16 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (resp.status().as_u16(), challenge, body)
}

#[actix_web::test]
async fn every_route_but_the_public_ones_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let well_formed_unknown = TokenSecret::generate().unwrap();
    for (method, path) in concrete_routes() {
        let public = seriesd::routes::is_public(&path);
        let url = app.url(&path);
        // No token.
        let (status, challenge, body) = request(None, method.clone(), &url).await;
        if public {
            assert_ne!(status, 401, "{method} {path}");
            continue;
        }
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"seriesd\""),
            "{method} {path}"
        );
        assert_eq!(
            body,
            json!({"detail": "Authentication credentials were not provided."})
        );
        // Without the trailing slash too.
        let (status, ..) = request(None, method.clone(), url.trim_end_matches('/')).await;
        assert_eq!(status, 401, "{method} {path} without the slash");
        // A token that is not one, a well-formed unknown one, as Bearer and as Token.
        for header in [
            "Bearer nope".to_string(),
            format!("Bearer {}", well_formed_unknown.expose()),
            format!("Token {}", well_formed_unknown.expose()),
        ] {
            let (status, challenge, body) = request(Some(&header), method.clone(), &url).await;
            assert_eq!(status, 401, "{method} {path} {header}");
            assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"seriesd\", error=\"invalid_token\"")
            );
            assert_eq!(body["detail"], "Invalid token.", "{header}");
        }
        // Another scheme is no credentials.
        let (status, ..) = request(Some("Basic dXNlcjpwYXNz"), method.clone(), &url).await;
        assert_eq!(status, 401);
    }
    // Unknown paths need a token too, so they reveal nothing about what exists.
    assert_eq!(app.get_as(None, "/api/nothing/").await.0, 401);
    assert_eq!(app.get("/api/nothing/").await.0, 404);
    // The admin token, as Bearer and as DRF's Token.
    assert_eq!(app.get("/api/metrictypes/").await.0, 200);
    let (status, _) = send(
        client()
            .get(app.url("/api/metrictypes/"))
            .insert_header(("authorization", format!("Token {}", app.admin_token))),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn a_user_token_reaches_its_own_user_and_no_other() {
    let app = TestApp::spawn().await;
    let (a, b, nobody) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (sa, sb) = (Uuid::new_v4(), Uuid::new_v4());
    let (ta, tb) = (app.user_token(a), app.user_token(b));
    // Each user posts their own session with their own token.
    assert_eq!(
        app.post_as(Some(&ta), "/api/sessions/", &session(a, sa, 1.0))
            .await
            .0,
        201
    );
    assert_eq!(
        app.post_as(Some(&tb), "/api/sessions/", &session(b, sb, 2.0))
            .await
            .0,
        201
    );
    // B may not post for A (nor for a user that does not exist): 403, nothing written.
    for user in [a, nobody] {
        let (status, body) = app
            .post_as(
                Some(&tb),
                "/api/sessions/",
                &session(user, Uuid::new_v4(), 9.0),
            )
            .await;
        assert_eq!((status, body), (403, json!({"detail": FORBIDDEN})));
    }
    let mut conn = app.conn();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 2);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 4);

    let range = "start_time=2024-12-01&end_time=2025-02-01";
    let reads = |user: Uuid| {
        vec![
            format!("/api/timeseries/?user_id={user}&{range}"),
            format!("/api/timeseries/latest/?user_id={user}"),
            format!("/api/timeseries/points/?user_id={user}"),
            format!("/api/timeseries/points/?user_id={user}&format=csv"),
            format!("/api/timeseries/points/?user_id={user}&format=ndjson"),
            format!("/api/sessions/?user_id={user}"),
        ]
    };
    for path in reads(a) {
        // A reads A.
        assert_eq!(app.get_as(Some(&ta), &path).await.0, 200, "{path}");
        // B reading A, or a user that does not exist: the same 403.
        for other in [
            path.clone(),
            path.replace(&a.to_string(), &nobody.to_string()),
        ] {
            let (status, body) = app.get_as(Some(&tb), &other).await;
            assert_eq!(
                (status, body),
                (403, json!({"detail": FORBIDDEN})),
                "{other}"
            );
        }
    }
    // The admin reads anyone.
    for path in reads(b) {
        assert_eq!(app.get(&path).await.0, 200, "{path}");
    }
    // What A reads is A's only.
    let (_, page) = app
        .get_as(Some(&ta), &format!("/api/sessions/?user_id={a}"))
        .await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["results"][0]["session_id"], sa.to_string());

    // Another user's session is answered exactly like one that does not exist.
    let missing = Uuid::new_v4();
    for (sid, expected) in [(sa, 200), (missing, 404)] {
        let (status, _) = app
            .get_as(Some(&ta), &format!("/api/sessions/{sid}/"))
            .await;
        assert_eq!(status, expected);
    }
    let (status, body) = app.get_as(Some(&tb), &format!("/api/sessions/{sa}/")).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": format!("No session {sa}.")}))
    );
    let (_, body_missing) = app
        .get_as(Some(&tb), &format!("/api/sessions/{missing}/"))
        .await;
    assert_eq!(
        body_missing,
        json!({"detail": format!("No session {missing}.")})
    );
    let (status, _) = send(
        client_with(Some(&tb)).delete(app.url(&format!("/api/sessions/{sa}/"))),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 2);
    // A deletes A's own.
    let (status, _) = send(
        client_with(Some(&ta)).delete(app.url(&format!("/api/sessions/{sa}/"))),
        None,
    )
    .await;
    assert_eq!(status, 204);
}

#[actix_web::test]
async fn bulk_lines_for_another_user_are_refused_one_by_one() {
    let app = TestApp::spawn().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let tb = app.user_token(b);
    let lines = [
        session(b, Uuid::new_v4(), 1.0),
        session(a, Uuid::new_v4(), 2.0),
        session(b, Uuid::new_v4(), 3.0),
    ]
    .iter()
    .map(|l| l.to_string() + "\n")
    .collect::<String>();
    let (status, report) = send(
        client_with(Some(&tb)).post(app.url("/api/sessions/bulk/")),
        Some(lines.into_bytes()),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2);
    assert_eq!(
        report["rejected"],
        json!([{"line": 2, "errors": {"detail": FORBIDDEN}}])
    );
    let mut conn = app.conn();
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM points WHERE user_id = '{a}'")
        ),
        0
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM points WHERE user_id = '{b}'")
        ),
        4
    );
}

#[actix_web::test]
async fn a_cached_answer_for_one_user_is_never_served_to_another_users_token() {
    let app = TestApp::spawn().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (ta, tb) = (app.user_token(a), app.user_token(b));
    assert_eq!(
        app.post("/api/sessions/", &session(a, Uuid::new_v4(), 5.0))
            .await
            .0,
        201
    );
    let path = format!("/api/timeseries/?user_id={a}&start_time=2024-12-01&end_time=2025-02-01");
    let x_cache = |token: String| {
        let url = app.url(&path);
        async move {
            let mut resp = client_with(Some(&token)).get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let cache = resp
                .headers()
                .get("X-Cache")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = resp.json().await.unwrap();
            (status, cache, body)
        }
    };
    let (status, cache, first) = x_cache(ta.clone()).await;
    assert_eq!((status, cache.as_deref()), (200, Some("MISS")));
    let (status, cache, _) = x_cache(app.admin_token.clone()).await;
    assert_eq!((status, cache.as_deref()), (200, Some("HIT")));
    // The same URL, with B's token: refused before the cache is looked at.
    let (status, cache, body) = x_cache(tb).await;
    assert_eq!(
        (status, cache, body),
        (403, None, json!({"detail": FORBIDDEN}))
    );
    let (status, cache, again) = x_cache(ta).await;
    assert_eq!((status, cache.as_deref()), (200, Some("HIT")));
    assert_eq!(again, first);
}

#[actix_web::test]
async fn changing_the_catalogue_needs_an_admin_token() {
    let app = TestApp::spawn().await;
    let user = app.user_token(Uuid::new_v4());
    let c = client_with(Some(&user));
    let body = json!({"series": "lab.ph", "schema": {"type": "number"}});
    let attempts = [
        c.post(app.url("/api/metrictypes/")),
        c.put(app.url("/api/metrictypes/lab.ph/")),
        c.put(app.url("/api/metrictypes/session.urine.color/")),
        c.delete(app.url("/api/metrictypes/session.urine.color/?force=true")),
    ];
    for req in attempts {
        let (status, answer) = send(
            req.insert_header(("content-type", "application/json")),
            Some(body.to_string().into_bytes()),
        )
        .await;
        assert_eq!((status, answer), (403, json!({"detail": FORBIDDEN})));
    }
    assert_eq!(
        count(&mut app.conn(), "SELECT count(*) AS n FROM metric_types"),
        4
    );
    // Reading is for every token.
    let (status, page) = app.get_as(Some(&user), "/api/metrictypes/").await;
    assert_eq!((status, page["count"].clone()), (200, json!(4)));
    assert_eq!(
        app.get_as(Some(&user), "/api/metrictypes/session.urine.color/")
            .await
            .0,
        200
    );
    // The admin may.
    let (status, _) = app.post("/api/metrictypes/", &body).await;
    assert_eq!(status, 201);
}

#[actix_web::test]
async fn a_revoked_token_is_refused_within_a_second_on_every_replica() {
    let app = TestApp::spawn().await;
    let replica = start_server(settings_for(&app.db.url, &[])).await;
    let user = Uuid::new_v4();
    let (id, token) = app.db.token(seriesd::domain::api_token::Scope::User(user));
    let path = format!("/api/sessions/?user_id={user}");
    let urls = [app.url(&path), format!("{replica}{path}")];
    let c = client_with(Some(&token));
    // Both replicas have the token in their caches.
    for url in &urls {
        assert_eq!(c.get(url).send().await.unwrap().status(), 200);
    }
    // Revoked with the command line, as an operator would.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seriesd"))
        .args(["token", "revoke", &id.to_string()])
        .env("DATABASE_URL", app.db.url.as_str())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = Instant::now();
    // Any request that starts a second after the revocation is refused, on both.
    let mut refused = [false, false];
    while refused != [true, true] {
        for (i, url) in urls.iter().enumerate() {
            let started = Instant::now();
            let status = c.get(url).send().await.unwrap().status().as_u16();
            if started >= revoked + Duration::from_secs(1) {
                assert_eq!(
                    status, 401,
                    "replica {i} accepted a token revoked over 1 s ago"
                );
            }
            if status == 401 {
                refused[i] = true;
            } else {
                assert_eq!(status, 200);
            }
        }
        assert!(revoked.elapsed() < Duration::from_secs(30), "never refused");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // And it stays refused.
    for url in &urls {
        assert_eq!(c.get(url).send().await.unwrap().status(), 401);
    }
}

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
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp
        .headers()
        .get("Retry-After")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Request was throttled (RATE_LIMIT_PER_SEC)."),
        "{body}"
    );
    // Another token has an allowance of its own; public routes have no limit.
    let other = app.user_token(Uuid::new_v4());
    assert_eq!(app.get_as(Some(&other), "/api/metrictypes/").await.0, 200);
    for _ in 0..10 {
        assert_eq!(app.get("/health/").await.0, 200);
    }
}

/// Strings a hostile client might put in any parameter.
fn hostile_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "' OR '1'='1",
        "'; DROP TABLE points; --",
        "\"; DROP TABLE sessions; --",
        "1; SELECT pg_sleep(10)",
        "$$; DROP TABLE api_tokens; $$",
        "' UNION SELECT token_hash FROM api_tokens --",
        "%' OR 1=1 --",
        "\\",
        "\u{0}",
        "(a+)+$",
        "(a|aa)+b",
        "((a*)*)*b",
        ".*",
        "(?i).*",
        "[",
        "\\p{Greek}+",
        "a{1000}{1000}",
        "x{99999999}",
        "*",
        "**.*",
        "../../etc/passwd",
        "<script>alert(1)</script>",
        "€∞𝔘",
        ",,,",
        "null",
        "-1",
        "1e999",
        "NaN",
        "9999-99-99",
        "2025-01-01T00:00:00Z' OR '1'='1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(10_000));
    v.push("(".repeat(300));
    v
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[actix_web::test]
async fn sql_and_regex_payloads_in_every_parameter_leak_nothing() {
    let app = TestApp::spawn().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let ta = app.user_token(a);
    let (sa, sb) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(
        app.post("/api/sessions/", &session(a, sa, 1.0)).await.0,
        201
    );
    assert_eq!(
        app.post("/api/sessions/", &session(b, sb, 2.0)).await.0,
        201
    );
    let endpoints: [(&str, &[&str]); 5] = [
        (
            "/api/timeseries/",
            &[
                "session_id",
                "series",
                "interval",
                "start_time",
                "end_time",
                "agg_func",
                "tz",
                "fill",
                "smooth",
            ],
        ),
        (
            "/api/timeseries/latest/",
            &["session_id", "series", "as_of"],
        ),
        (
            "/api/timeseries/points/",
            &[
                "session_id",
                "series",
                "start_time",
                "end_time",
                "format",
                "limit",
                "cursor",
            ],
        ),
        ("/api/sessions/", &["limit", "offset"]),
        ("/api/metrictypes/", &["limit", "offset"]),
    ];
    let c = client_with(Some(&ta));
    for payload in hostile_strings() {
        let p = encode(&payload);
        for (path, params) in endpoints {
            for param in params {
                let url = app.url(&format!("{path}?user_id={a}&{param}={p}"));
                let started = Instant::now();
                let mut resp = c.get(&url).send().await.unwrap();
                let status = resp.status().as_u16();
                let body = resp.body().limit(64 << 20).await.unwrap();
                let text = String::from_utf8_lossy(&body);
                assert!(
                    [200, 400].contains(&status),
                    "{path} {param}={payload:?}: {status} {text}"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{path} {param}={payload:?} took {:?}",
                    started.elapsed()
                );
                // Nothing of user B, and no database error in the answer (an echo of
                // the payload in a 400's message is fine).
                assert!(!text.contains(&b.to_string()), "{path} {param}: {text}");
                assert!(!text.contains(&sb.to_string()), "{path} {param}: {text}");
                for leak in [
                    "syntax error",
                    "ERROR:",
                    "relation \"",
                    "postgres://",
                    "panicked",
                    "Internal server error",
                ] {
                    assert!(
                        !text.contains(leak),
                        "{path} {param}={payload:?} leaks {leak}: {text}"
                    );
                }
            }
        }
        // The user id itself, and path parameters.
        for url in [
            format!("/api/timeseries/?user_id={p}"),
            format!("/api/sessions/?user_id={p}"),
        ] {
            let (status, _) = app.get_as(Some(&ta), &url).await;
            assert!([400, 403].contains(&status), "{url}: {status}");
        }
        if !payload.contains('/') && !payload.is_empty() {
            for url in [
                format!("/api/sessions/{p}/"),
                format!("/api/metrictypes/{p}/"),
            ] {
                let (status, body) = app.get_as(Some(&ta), &url).await;
                assert!([400, 404].contains(&status), "{url}: {status} {body}");
            }
        }
    }
    // Every table is still there, with what it held.
    let mut conn = app.conn();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 4);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM sessions"), 2);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM api_tokens"), 2);
}

#[actix_web::test]
async fn catastrophic_backtracking_patterns_answer_at_once() {
    let app = TestApp::spawn().await;
    // A series whose name is the classic input: many a's and then no match.
    let long = format!("{}b", "a".repeat(254));
    let (status, body) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": long, "schema": {"type": "number"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let user = Uuid::new_v4();
    for pattern in ["(a+)+$", "(a|aa)+$", "(a*)*$", "((a+)+)+c", "(.*a){20}$"] {
        for path in [
            "/api/timeseries/",
            "/api/timeseries/latest/",
            "/api/timeseries/points/",
        ] {
            let started = Instant::now();
            let (status, body) = app
                .get(&format!("{path}?user_id={user}&series={}", encode(pattern)))
                .await;
            let took = started.elapsed();
            assert!([200, 400].contains(&status), "{pattern} {status} {body}");
            // A backtracking engine would take longer than the universe's age here.
            assert!(
                took < Duration::from_secs(2),
                "{pattern} on {path}: {took:?}"
            );
        }
    }
}

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

/// Sends raw bytes over TCP and returns what came back before the server closed (or
/// `within` passed).
fn raw_exchange(address: &str, parts: &[(&[u8], Duration)], within: Duration) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    for (bytes, pause) in parts {
        // The server may already have given up on us.
        let _ = stream.write_all(bytes);
        std::thread::sleep(*pause);
    }
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
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

/// A user with one session written, and a connection holding the points table, so that
/// the user's queries wait on it (until `ROLLBACK` on the connection).
async fn user_behind_a_points_lock(app: &TestApp) -> (Uuid, PgConnection) {
    let user = Uuid::new_v4();
    assert_eq!(
        app.post("/api/sessions/", &session(user, Uuid::new_v4(), 1.0))
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

#[actix_web::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for (token, path) in [
        (None, "/health/"),
        (None, "/api/timeseries/"),
        (Some(app.admin_token.as_str()), "/api/timeseries/"),
        (Some(app.admin_token.as_str()), "/api/metrictypes/"),
        (Some(app.admin_token.as_str()), "/no/such/path/"),
        (None, "/redoc/"),
        (None, "/redoc/redoc.standalone.js"),
        (None, "/api/schema/"),
    ] {
        let resp = client_with(token).get(app.url(path)).send().await.unwrap();
        let h = resp.headers();
        for (name, value) in [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
            (
                "Content-Security-Policy",
                seriesd::headers::CONTENT_SECURITY_POLICY,
            ),
        ] {
            assert_eq!(h.get(name).unwrap(), value, "{path} {name}");
        }
        let cache = h.get("Cache-Control").unwrap().to_str().unwrap();
        if path.ends_with(".js") {
            assert!(cache.starts_with("public"), "{cache}");
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
    }
}

#[actix_web::test]
async fn cors_is_off_by_default_and_follows_the_configured_origins() {
    let preflight = |address: String, origin: &'static str| async move {
        client()
            .request(Method::OPTIONS, format!("{address}/api/timeseries/"))
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "GET"))
            .insert_header(("Access-Control-Request-Headers", "authorization"))
            .send()
            .await
            .unwrap()
    };
    let off = TestApp::spawn().await;
    let resp = preflight(off.address.clone(), "https://app.example").await;
    assert!(resp.headers().get("Access-Control-Allow-Origin").is_none());
    let resp = off
        .client
        .get(off.url("/api/metrictypes/"))
        .insert_header(("Origin", "https://app.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("Access-Control-Allow-Origin").is_none());

    let on = TestApp::spawn_with(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://app.example,http://localhost:3000",
    )])
    .await;
    let resp = preflight(on.address.clone(), "https://app.example").await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(
        h.get("Access-Control-Allow-Origin").unwrap(),
        "https://app.example"
    );
    assert!(
        h.get("Access-Control-Allow-Headers")
            .unwrap()
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("authorization")
    );
    assert_eq!(h.get("X-Frame-Options").unwrap(), "DENY");
    let resp = on
        .client
        .get(on.url("/api/metrictypes/"))
        .insert_header(("Origin", "http://localhost:3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("Access-Control-Allow-Origin").unwrap(),
        "http://localhost:3000"
    );
    // An origin not on the list gets no CORS headers (the browser keeps the answer
    // from its script); the request itself still needs a token.
    let resp = preflight(on.address.clone(), "https://evil.example").await;
    assert!(resp.headers().get("Access-Control-Allow-Origin").is_none());
    let resp = client()
        .get(on.url("/api/metrictypes/"))
        .insert_header(("Origin", "https://app.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[actix_web::test]
async fn auth_disabled_lets_every_caller_in_as_an_admin() {
    let app = TestApp::spawn_with(&[("AUTH", "disabled")]).await;
    let user = Uuid::new_v4();
    let (status, _) = app
        .post_as(None, "/api/sessions/", &session(user, Uuid::new_v4(), 1.0))
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        app.get_as(None, &format!("/api/sessions/?user_id={user}"))
            .await
            .0,
        200
    );
    let (status, _) = app
        .post_as(
            None,
            "/api/metrictypes/",
            &json!({"series": "lab.ph", "schema": {"type": "number"}}),
        )
        .await;
    assert_eq!(status, 201);
}

#[test]
fn tokens_never_reach_the_log() {
    let db = TestDb::create();
    let (_, token) = db.token(seriesd::domain::api_token::Scope::Admin);
    let unknown = TokenSecret::generate().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::env::temp_dir().join(format!("seriesd-log-{}.txt", Uuid::new_v4().simple()));
    let out = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_seriesd"))
        .arg("serve")
        .env("DATABASE_URL", db.url.as_str())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", "")
        // The most the log can say: every crate's trace events.
        .env("RUST_LOG", "trace")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let user = Uuid::new_v4();
    let requests = [
        format!("Bearer {token}"),
        format!("Token {token}"),
        format!("Bearer {}", unknown.expose()),
        format!("Bearer {}x", unknown.expose()),
        format!("Bearer {} {}", unknown.expose(), token),
    ];
    actix_web::rt::System::new().block_on(async {
        for header in &requests {
            for path in [
                format!("/api/sessions/?user_id={user}"),
                "/api/metrictypes/".to_string(),
            ] {
                let resp = client()
                    .get(format!("{address}{path}"))
                    .insert_header(("authorization", header.as_str()))
                    .send()
                    .await
                    .unwrap();
                assert!([200, 401].contains(&resp.status().as_u16()));
            }
            let _ = client()
                .post(format!("{address}/api/sessions/"))
                .insert_header(("authorization", header.as_str()))
                .send_body("{not json")
                .await
                .unwrap();
        }
    });
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(text.contains("request"), "the log is empty:\n{text}");
    for secret in [&token[4..], &unknown.expose()[4..]] {
        assert!(!text.contains(secret), "a token reached the log:\n{text}");
    }
    assert!(
        !text.contains(&user.to_string()),
        "a user id reached the log"
    );
}
