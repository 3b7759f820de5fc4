//! Hostile input: SQL and regex payloads in every parameter are refused or harmless and
//! leak nothing, and patterns that make backtracking engines hang answer at once.

use crate::helpers::{TestApp, add_series, client_with, count, scored_session};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

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
        app.post("/api/sessions/", &scored_session(a, sa, 1.0))
            .await
            .0,
        201
    );
    assert_eq!(
        app.post("/api/sessions/", &scored_session(b, sb, 2.0))
            .await
            .0,
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
    add_series(&app, &long, json!({"type": "number"})).await;
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
