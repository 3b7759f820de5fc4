//! `GET /api/timeseries/points/` as JSON: raw points in keyset pages, in (time, series,
//! session) order, filtered, and with values exactly as they were sent.

use crate::helpers::{TestApp, ingest, send, series_id, time};
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

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
        app.assert_400_naming(&format!("/api/timeseries/points/?{q}"), name)
            .await;
    }
}
