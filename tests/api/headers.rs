//! Response headers: the security headers on every response; CORS, off unless origins
//! are configured; `HEAD` answered like `GET` without a body; links whose scheme and host
//! come from `Forwarded` / `X-Forwarded-*` only from a trusted proxy.

use crate::helpers::{TestApp, client, client_with, raw_exchange, scored_session};
use awc::http::Method;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

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

/// `HEAD path` over a raw connection: the status line, the head (lower case) and the
/// bytes after it, which must be none.
async fn head(app: &TestApp, path: &str, token: Option<&str>) -> (String, String, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    let address = app.address.clone();
    let answer = actix_web::web::block(move || {
        raw_exchange(
            &address,
            &[(request.as_bytes(), Duration::ZERO)],
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (
        status.to_string(),
        headers.to_ascii_lowercase(),
        rest.to_string(),
    )
}

/// The `GET path` body's length with `token`.
async fn get_length(app: &TestApp, path: &str, token: Option<&str>) -> usize {
    let mut resp = client_with(token).get(app.url(path)).send().await.unwrap();
    resp.body().limit(16 << 20).await.unwrap().len()
}

#[actix_web::test]
async fn head_is_answered_like_get_without_a_body() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (status, _) = app
        .post("/api/sessions/", &scored_session(user, Uuid::new_v4(), 5.0))
        .await;
    assert_eq!(status, 201);
    let admin = Some(app.admin_token.as_str());
    // Public routes, and API routes with a token: 200, GET's length, no body.
    for (path, token) in [
        ("/health/", None),
        ("/api/schema/", None),
        ("/redoc/", None),
        ("/api/metrictypes/", admin),
        (
            "/api/sessions/?user_id=6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
            admin,
        ),
    ] {
        let (status, headers, rest) = head(&app, path, token).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
        assert_eq!(rest, "", "{path}");
        let length = get_length(&app, path, token).await;
        assert!(
            headers.contains(&format!("content-length: {length}\r\n"))
                || headers.ends_with(&format!("content-length: {length}")),
            "{path}: {headers}"
        );
        assert!(
            headers.contains("x-content-type-options: nosniff"),
            "{path}"
        );
    }
    let (status, _, rest) = head(&app, "/metrics", None).await;
    assert_eq!((status.as_str(), rest.as_str()), ("HTTP/1.1 200 OK", ""));
    // Authentication applies as for GET.
    let (status, headers, rest) = head(&app, "/api/metrictypes/", None).await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");
    assert_eq!(rest, "");
    // An export: its headers, no body, and its slot back.
    let export = format!("/api/timeseries/points/?user_id={user}&format=csv");
    let (status, headers, rest) = head(&app, &export, admin).await;
    assert_eq!((status.as_str(), rest.as_str()), ("HTTP/1.1 200 OK", ""));
    assert!(headers.contains("content-type: text/csv"), "{headers}");
    assert!(
        headers.contains("content-disposition: attachment"),
        "{headers}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.get(&export).await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the export slots stayed taken"
        );
    }
    // A path without GET still refuses HEAD.
    let (status, headers, _) = head(&app, "/api/sessions/bulk/", admin).await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.contains("allow: post"), "{headers}");
}

/// `next` of the first page of the catalogue, one type a page, asked with `headers`.
async fn next_link(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let mut request = app.client.get(app.url("/api/metrictypes/?limit=1"));
    for header in headers {
        request = request.insert_header(*header);
    }
    let mut resp = request.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["next"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn links_follow_forwarded_headers_only_from_trusted_proxies() {
    let forged = [
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "javascript"),
    ];
    let rfc7239 = [("Forwarded", "host=evil.example;proto=javascript")];
    let untrusting = TestApp::spawn().await;
    for headers in [&forged[..], &rfc7239[..]] {
        assert_eq!(
            next_link(&untrusting, headers).await,
            untrusting.url("/api/metrictypes/?limit=1&offset=1"),
            "{headers:?}"
        );
    }
    // Behind a trusted proxy (the tests' loopback), its host and scheme are used; a
    // scheme other than http(s) never is.
    let proxied = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert_eq!(
        next_link(
            &proxied,
            &[
                ("X-Forwarded-Host", "api.example"),
                ("X-Forwarded-Proto", "https")
            ]
        )
        .await,
        "https://api.example/api/metrictypes/?limit=1&offset=1"
    );
    for headers in [&forged[..], &rfc7239[..]] {
        assert_eq!(
            next_link(&proxied, headers).await,
            "http://evil.example/api/metrictypes/?limit=1&offset=1",
            "{headers:?}"
        );
    }
    assert_eq!(
        next_link(&proxied, &[]).await,
        proxied.url("/api/metrictypes/?limit=1&offset=1")
    );
}
