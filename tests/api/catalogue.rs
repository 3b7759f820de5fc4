//! `/api/metrictypes/`: DRF limit/offset pagination, reading one type, creating,
//! replacing and deleting types (with and without `force`), and that every change is
//! seen at once by ingest and never rewrites stored points.

use crate::helpers::{TestApp, add_series, count, send, x_cache};
use serde_json::{Value, json};
use uuid::Uuid;

async fn put(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    send(
        app.client
            .put(app.url(path))
            .insert_header(("content-type", "application/json")),
        Some(serde_json::to_vec(body).unwrap()),
    )
    .await
}

/// Posts one point of `series` for `user`; returns the status and body.
async fn post_point(app: &TestApp, user: Uuid, series: &str, value: Value) -> (u16, Value) {
    let body = json!({
        "user_id": user,
        "session_id": Uuid::new_v4(),
        "data": [{"series": series, "time": "2025-03-03T10:00:00Z", "value": value}],
    });
    app.post("/api/sessions/", &body).await
}

fn series_of(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["series"].as_str().unwrap().to_string())
        .collect()
}

const SEEDED: [&str; 4] = [
    "session.example.series",
    "session.gut_health_score",
    "session.urine.color",
    "session.urine.night_count",
];

#[actix_web::test]
async fn the_list_is_a_drf_limit_offset_page() {
    let app = TestApp::spawn().await;
    for name in ["a.first", "z.last", "m:middle-1"] {
        add_series(&app, name, json!({"type": "number"})).await;
    }
    let mut all: Vec<String> = SEEDED.iter().map(|s| s.to_string()).collect();
    all.extend(["a.first", "z.last", "m:middle-1"].map(String::from));
    all.sort();

    // Default page: everything, ordered by series, no links; with or without the slash.
    for path in ["/api/metrictypes/", "/api/metrictypes"] {
        let (status, page) = app.get(path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["count"], 7);
        assert_eq!(page["next"], Value::Null);
        assert_eq!(page["previous"], Value::Null);
        assert_eq!(series_of(&page), all);
        let item = page["results"][0].as_object().unwrap();
        let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "created_at",
                "description",
                "kind",
                "schema",
                "series",
                "updated_at"
            ]
        );
    }

    // Following `next` (absolute URLs) visits every type once, in order.
    let (_, first) = app.get("/api/metrictypes/?limit=3").await;
    assert_eq!(
        first["next"],
        app.url("/api/metrictypes/?limit=3&offset=3").as_str()
    );
    let mut seen = series_of(&first);
    let mut next = first["next"].clone();
    let mut pages = 1;
    while let Some(url) = next.as_str() {
        let (status, page) = send(app.client.get(url), None).await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 7);
        assert!(page["previous"].is_string());
        seen.extend(series_of(&page));
        next = page["next"].clone();
        pages += 1;
    }
    assert_eq!((seen, pages), (all.clone(), 3));

    // `previous` from offset 4 with limit 3 goes to offset 1; from offset 2 it drops the
    // offset, like DRF.
    let (_, page) = app.get("/api/metrictypes/?limit=3&offset=4").await;
    assert_eq!(
        page["previous"],
        app.url("/api/metrictypes/?limit=3&offset=1").as_str()
    );
    assert_eq!(page["next"], Value::Null);
    let (_, page) = app.get("/api/metrictypes/?offset=2&limit=3").await;
    assert_eq!(
        page["previous"],
        app.url("/api/metrictypes/?limit=3").as_str()
    );

    // Past the end: empty results, the true count.
    let (status, page) = app.get("/api/metrictypes/?offset=100").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["count"].clone(), series_of(&page).len()),
        (json!(7), 0)
    );
    assert_eq!(page["next"], Value::Null);

    // Over the maximum: capped to 1000 (the links say so).
    let (status, page) = app.get("/api/metrictypes/?limit=5000&offset=1").await;
    assert_eq!(status, 200);
    assert_eq!(series_of(&page), all[1..]);
    assert_eq!(
        page["previous"],
        app.url("/api/metrictypes/?limit=1000").as_str()
    );

    // Zero, negative or non-numeric limits and offsets: a 400 naming the parameter.
    for (q, name) in [
        ("limit=0", "limit"),
        ("limit=-2", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
    ] {
        app.assert_400_naming(&format!("/api/metrictypes/?{q}"), name)
            .await;
    }
}

#[actix_web::test]
async fn one_type_by_name_dots_and_colons_included() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/metrictypes/session.urine.color/",
        "/api/metrictypes/session.urine.color",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["series"], "session.urine.color");
        assert_eq!(body["schema"]["required"], json!(["r", "g", "b"]));
        assert_eq!(body["kind"], Value::Null);
    }
    let (status, _) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": "dev:42.temp-c_x", "schema": {"type": "number"}, "kind": "sample"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app.get("/api/metrictypes/dev:42.temp-c_x/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "sample");

    let (status, body) = app.get("/api/metrictypes/session.nope/").await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().unwrap().contains("session.nope"));
    let (status, body) = app.get("/api/metrictypes/bad%20name/").await;
    assert_eq!((status, body["detail"].is_string()), (404, true));
    let (status, body) = send(app.client.patch(app.url("/api/metrictypes/x/")), None).await;
    assert_eq!((status, body["detail"].is_string()), (405, true));
}

#[actix_web::test]
async fn creating_validates_every_field_and_is_seen_by_ingest_at_once() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    // Not known yet.
    let (status, _) = post_point(&app, user, "lab.ph", json!(7.1)).await;
    assert_eq!(status, 400);

    let cases = [
        (
            json!({"series": "lab.ph", "schema": {"type": "nope"}}),
            "schema",
        ),
        (
            json!({"series": "lab.ph", "schema": {"type": "number", "minimum": "zero"}}),
            "schema",
        ),
        (json!({"series": "lab.ph", "schema": "number"}), "schema"),
        (json!({"series": "lab.ph"}), "schema"),
        (
            json!({"series": "lab.ph", "schema": {"$schema": "http://json-schema.org/draft-04/schema#"}}),
            "schema",
        ),
        (
            json!({"series": "lab.ph", "schema": {"type": "string", "pattern": "(unclosed"}}),
            "schema",
        ),
        (json!({"series": "lab ph", "schema": true}), "series"),
        (json!({"series": "", "schema": true}), "series"),
        (json!({"series": "x".repeat(256), "schema": true}), "series"),
        (json!({"series": 5, "schema": true}), "series"),
        (json!({"schema": true}), "series"),
        (
            json!({"series": "lab.ph", "schema": true, "kind": "avg"}),
            "kind",
        ),
        (
            json!({"series": "lab.ph", "schema": true, "description": 1}),
            "description",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = app.post("/api/metrictypes/", &body).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert!(resp[field][0].is_string(), "{body}: {resp}");
    }
    // The reason comes from the validator.
    let (_, resp) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": "lab.ph", "schema": {"type": "nope"}}),
        )
        .await;
    let reason = resp["schema"][0].as_str().unwrap();
    assert!(reason.contains("nope"), "{reason}");
    let (status, resp) = app.post_raw("/api/metrictypes/", b"{".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        resp["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );
    assert_eq!(
        count(&mut app.conn(), "SELECT count(*) AS n FROM metric_types"),
        4
    );

    let schema = json!({"type": "number", "minimum": 0, "maximum": 14});
    let (status, created) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": "lab.ph", "schema": schema, "description": "pH", "kind": "measure"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["series"], "lab.ph");
    assert_eq!(created["schema"], schema);
    assert_eq!(created["description"], "pH");
    assert_eq!(created["kind"], "measure");
    assert_eq!(created["created_at"], created["updated_at"]);
    let (status, again) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": "lab.ph", "schema": true}),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert!(again["detail"].is_string());

    // This process reloaded its catalogue: the series is usable at once, with its schema.
    let (status, body) = post_point(&app, user, "lab.ph", json!(7.1)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_point(&app, user, "lab.ph", json!(15)).await;
    assert_eq!(status, 400, "{body}");
}

#[actix_web::test]
async fn put_creates_or_replaces_and_never_rewrites_points() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (status, created) = put(
        &app,
        "/api/metrictypes/lab.glucose/",
        &json!({"schema": {"type": "number"}, "description": "mg/dL"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["series"], "lab.glucose");
    let (status, _) = post_point(&app, user, "lab.glucose", json!(95)).await;
    assert_eq!(status, 201);

    // Replace: a string schema, no description, a kind. Same row, same points.
    let (status, replaced) = put(
        &app,
        "/api/metrictypes/lab.glucose",
        &json!({"series": "lab.glucose", "schema": {"type": "string"}, "kind": "sample"}),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["schema"], json!({"type": "string"}));
    assert_eq!(replaced["description"], "");
    assert_eq!(replaced["kind"], "sample");
    assert_eq!(replaced["created_at"], created["created_at"]);
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(time(&replaced["updated_at"]) > time(&created["updated_at"]));
    let (_, got) = app.get("/api/metrictypes/lab.glucose/").await;
    assert_eq!(got, replaced);
    // The old point is still there, as it was; new points follow the new schema.
    let (status, points) = app
        .get(&format!(
            "/api/timeseries/points/?user_id={user}&series=lab.glucose"
        ))
        .await;
    assert_eq!(status, 200, "{points}");
    assert_eq!(points["results"][0]["value"], json!(95));
    let (status, _) = post_point(&app, user, "lab.glucose", json!(96)).await;
    assert_eq!(status, 400);
    let (status, _) = post_point(&app, user, "lab.glucose", json!("high")).await;
    assert_eq!(status, 201);

    // The body's series must match the URL's; a bad name in the URL is a 400 naming it.
    let (status, body) = put(
        &app,
        "/api/metrictypes/lab.glucose/",
        &json!({"series": "lab.other", "schema": true}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["series"].is_array());
    let (status, body) = put(
        &app,
        "/api/metrictypes/bad%20name/",
        &json!({"schema": true}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["series"].is_array());
    let (status, body) = put(
        &app,
        "/api/metrictypes/lab.glucose/",
        &json!({"schema": {"type": 12}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["schema"].is_array());
}

#[actix_web::test]
async fn deleting_a_type_with_points_needs_force_which_deletes_them() {
    let app = TestApp::spawn().await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());

    // Without points: deleted at once.
    let (status, _) = put(
        &app,
        "/api/metrictypes/tmp.unused/",
        &json!({"schema": true}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = app.delete("/api/metrictypes/tmp.unused/").await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(app.get("/api/metrictypes/tmp.unused/").await.0, 404);
    assert_eq!(app.delete("/api/metrictypes/tmp.unused/").await.0, 404);

    // With points of two users.
    let (status, _) = put(
        &app,
        "/api/metrictypes/lab.ketones/",
        &json!({"schema": {"type": "number"}}),
    )
    .await;
    assert_eq!(status, 201);
    for u in [user, other] {
        assert_eq!(post_point(&app, u, "lab.ketones", json!(0.4)).await.0, 201);
    }
    let (status, _) = post_point(&app, user, "session.gut_health_score", json!({"value": 3})).await;
    assert_eq!(status, 201);
    // A cached answer for `user`.
    let url = app.url(&format!(
        "/api/timeseries/?user_id={user}&start_time=2025-03-01&end_time=2025-03-31&interval=month"
    ));
    let mut resp = app.client.get(url.clone()).send().await.unwrap();
    assert_eq!(x_cache(&resp), "MISS");
    let before: Value = resp.json().await.unwrap();
    assert_eq!(before["results"].as_array().unwrap().len(), 2, "{before}");
    let resp = app.client.get(url.clone()).send().await.unwrap();
    assert_eq!(x_cache(&resp), "HIT");

    let id_sql = "SELECT count(*) AS n FROM points p JOIN metric_types m ON m.id = p.series_id WHERE m.series = 'lab.ketones'";
    assert_eq!(count(&mut app.conn(), id_sql), 2);
    let (status, body) = app.delete("/api/metrictypes/lab.ketones/").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("force=true"));
    assert_eq!(count(&mut app.conn(), id_sql), 2);
    let (status, body) = app
        .delete("/api/metrictypes/lab.ketones/?force=perhaps")
        .await;
    assert_eq!(status, 400);
    assert!(body["force"].is_array());

    let total_before = count(&mut app.conn(), "SELECT count(*) AS n FROM points");
    let (status, _) = app.delete("/api/metrictypes/lab.ketones/?force=true").await;
    assert_eq!(status, 204);
    assert_eq!(
        count(&mut app.conn(), "SELECT count(*) AS n FROM points"),
        total_before - 2
    );
    assert_eq!(
        count(
            &mut app.conn(),
            "SELECT count(*) AS n FROM metric_types WHERE series = 'lab.ketones'"
        ),
        0
    );
    assert_eq!(app.get("/api/metrictypes/lab.ketones/").await.0, 404);
    // The cached answer is unreachable: computed afresh, without the deleted series.
    let mut resp = app.client.get(url).send().await.unwrap();
    assert_eq!(x_cache(&resp), "MISS");
    let after: Value = resp.json().await.unwrap();
    assert_eq!(after["results"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["results"][0]["series"], "session.gut_health_score");
    // Ingest no longer knows the series.
    let (status, body) = post_point(&app, user, "lab.ketones", json!(0.5)).await;
    assert_eq!(status, 400, "{body}");
}

/// Found by `make api-check`: PostgreSQL stores a NUL character neither in `text` nor in
/// `jsonb`, so these were 500s.
#[actix_web::test]
async fn nul_characters_are_refused_or_name_no_type() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/metrictypes/",
            &json!({"series": "t.nul", "schema": {"description": "a\u{0}b"}, "description": "x\u{0}y"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body,
        json!({"schema": ["Null characters are not allowed."],
               "description": ["Null characters are not allowed."]})
    );
    let (status, body) = put(
        &app,
        "/api/metrictypes/t.nul/",
        &json!({"schema": {"properties": {"\u{0}": {}}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    for path in ["/api/metrictypes/a%00b/", "/api/metrictypes/a%20b/"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "GET {path}: {body}");
        let (status, body) = app.delete(path).await;
        assert_eq!(status, 404, "DELETE {path}: {body}");
    }
}
