//! The OpenAPI document: committed and current, served, complete against the routes the
//! server registers; ReDoc served with its script from this server; the JSON 405.

use crate::helpers::TestApp;
use serde_json::Value;
use seriesd::routes::ROUTES;
use std::collections::BTreeSet;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn committed_document_is_current() {
    let generated = seriesd::routes::api_doc::json().expect("document");
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (c, g))| c != g)
            .map(|(i, (c, g))| format!("line {}:\n  committed: {c}\n  generated: {g}", i + 1))
            .unwrap_or_else(|| "one is a prefix of the other".into());
        panic!(
            "openapi/openapi.json is stale: run `make openapi` and commit the result.\n\
             First difference at {first_difference}"
        );
    }
}

/// Every (path, method) of the registered routes, methods in lower case.
fn registered() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .iter()
                .map(|m| (path.to_string(), m.to_ascii_lowercase()))
        })
        .collect()
}

/// Every (path, method) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (path.clone(), m.to_string()))
        })
        .collect()
}

#[actix_web::test]
async fn schema_is_openapi_3_and_names_every_registered_route() {
    let app = TestApp::spawn().await;
    for path in ["/api/schema/", "/api/schema", "/api/schema/?format=json"] {
        let mut resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body = resp.body().limit(16 << 20).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            seriesd::routes::api_doc::json().unwrap(),
            "the served document is the generated one"
        );
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            doc["openapi"]
        );
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

        let (routes, described) = (registered(), documented(&doc));
        let undocumented: Vec<_> = routes.difference(&described).collect();
        let unrouted: Vec<_> = described.difference(&routes).collect();
        assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");
        assert!(
            unrouted.is_empty(),
            "documented but not served: {unrouted:?}"
        );

        // Every operation: a summary, a unique id, and the 405 every resource answers.
        let mut ids = BTreeSet::new();
        for (p, m) in &described {
            let op = &doc["paths"][p][m];
            assert!(op["summary"].is_string(), "{m} {p}: no summary");
            assert!(ids.insert(op["operationId"].to_string()), "{m} {p}: id");
            assert!(op["responses"]["405"].is_object(), "{m} {p}: no 405");
        }
    }
}

#[test]
fn every_reference_in_the_document_resolves() {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(&seriesd::routes::api_doc::json().unwrap()).unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[actix_web::test]
async fn schema_as_yaml_and_a_bad_format() {
    let app = TestApp::spawn().await;
    let mut resp = app
        .client
        .get(app.url("/api/schema/?format=yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/yaml"
    );
    let body = resp.body().limit(16 << 20).await.unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.starts_with("openapi: 3.1.0\n"), "{}", &text[..80]);
    assert!(text.contains("/api/timeseries/:"));

    let (status, body) = app.get("/api/schema/?format=xml").await;
    assert_eq!(status, 400);
    assert_eq!(body, serde_json::json!({"format": ["Use json or yaml."]}));
}

#[actix_web::test]
async fn redoc_runs_on_the_schema_with_a_script_from_this_server() {
    let app = TestApp::spawn().await;
    for path in ["/redoc/", "/redoc"] {
        let mut resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let content_type = resp
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let html = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
        assert!(
            html.contains(r#"<redoc spec-url="/api/schema/">"#),
            "{html}"
        );

        let scripts: Vec<&str> = html
            .split("<script")
            .skip(1)
            .filter_map(|tag| tag.split("src=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(scripts, ["/redoc/redoc.standalone.js"], "{html}");
        // No third-party origin anywhere on the page (no CDN, no web fonts).
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));

        let mut js = app.client.get(app.url(scripts[0])).send().await.unwrap();
        assert_eq!(js.status().as_u16(), 200);
        let content_type = js.headers().get("content-type").unwrap().to_str().unwrap();
        assert!(
            content_type.starts_with("application/javascript"),
            "{content_type}"
        );
        let bundle = js.body().limit(16 << 20).await.unwrap();
        assert!(bundle.len() > 500_000, "{} bytes", bundle.len());
        let text = std::str::from_utf8(&bundle).unwrap();
        assert!(text.contains("ReDoc") && text.contains("spec-url"));
    }
}

#[actix_web::test]
async fn methods_a_path_does_not_serve_are_a_json_405_with_allow() {
    let app = TestApp::spawn().await;
    for (path, methods) in ROUTES {
        let url = app.url(
            &path
                .replace("{session_id}", "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11")
                .replace("{series}", "session.urine.color")
                .replace("{file}", "main.js"),
        );
        let mut resp = app.client.patch(url.clone()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 405, "PATCH {path}");
        // A path that serves GET serves HEAD too.
        let mut allowed = methods.join(", ");
        if methods.contains(&"GET") {
            allowed.push_str(", HEAD");
        }
        assert_eq!(
            resp.headers().get("allow").unwrap().to_str().unwrap(),
            allowed,
            "{path}"
        );
        if methods.contains(&"GET") {
            let head = app.client.head(url.clone()).send().await.unwrap();
            assert_ne!(head.status().as_u16(), 405, "HEAD {path}");
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"detail": "Method \"PATCH\" not allowed."})
        );
    }
}
