//! API tokens: every route but the public ones refuses a request without a valid one
//! (401), the catalogue changes only with an admin token, a revoked token is refused on
//! every replica within a second, `AUTH=disabled` lets everyone in, and no token is ever
//! written to the log.

use crate::helpers::{
    FORBIDDEN, TestApp, TestDb, client, client_with, count, free_port, scored_session, send,
    serve_command, settings_for, sigterm, start_server, wait_for_port,
};
use awc::http::Method;
use serde_json::{Value, json};
use seriesd::domain::api_token::TokenSecret;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Every registered route with its parameters filled in.
fn concrete_routes() -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, methods) in seriesd::routes::ROUTES {
        let path = path
            .replace("{session_id}", &Uuid::new_v4().to_string())
            .replace("{series}", "session.urine.color")
            .replace("{file}", "main.js");
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
async fn auth_disabled_lets_every_caller_in_as_an_admin() {
    let app = TestApp::spawn_with(&[("AUTH", "disabled")]).await;
    let user = Uuid::new_v4();
    let (status, _) = app
        .post_as(
            None,
            "/api/sessions/",
            &scored_session(user, Uuid::new_v4(), 1.0),
        )
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
    let port = free_port();
    let log = std::env::temp_dir().join(format!("seriesd-log-{}.txt", Uuid::new_v4().simple()));
    let out = std::fs::File::create(&log).unwrap();
    let mut child = serve_command(&db, port)
        // The most the log can say: every crate's trace events.
        .env("RUST_LOG", "trace")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    wait_for_port(port, Duration::from_secs(30));
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
    sigterm(child.id());
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
