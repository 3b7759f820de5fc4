//! Response headers: the security headers on every response, and CORS, off unless
//! origins are configured.

use crate::helpers::{TestApp, client, client_with};
use awc::http::Method;

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
