//! Rows appended by writes: a new session's write appends its points' aggregates to the
//! hourly rollups of recent hours, which queries read at once (ties broken as raw points
//! break them) and the job merges into one row per hour.

use crate::helpers::{
    TestApp, assert_same_answers, count, one_day, session_body, uncached_app_refreshed_by_hand,
};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use seriesd::db::rollups;
use seriesd::domain::query::AggFunc;
use seriesd::services::catalogue::Catalogue;
use uuid::Uuid;

#[actix_web::test]
async fn ties_inside_one_batch_break_as_raw_points_break_them() {
    let app = uncached_app_refreshed_by_hand().await;
    let mut conn = app.conn();
    let user = Uuid::new_v4();
    // Two new sessions in one bulk request (one batch, one appended row per hour): their
    // points share the first and the last time of the hour, with other values.
    let (first, last) = ("2025-03-02T10:00:00Z", "2025-03-02T10:59:59Z");
    let session = |values: [f64; 2], words: [&str; 2]| {
        json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
            {"series": "session.gut_health_score", "time": first, "value": {"value": values[0]}},
            {"series": "session.gut_health_score", "time": last, "value": {"value": values[1]}},
            {"series": "session.urine.color", "time": first, "value": {"r": values[0], "g": values[1], "b": 1}},
            {"series": "session.urine.color", "time": last, "value": {"r": values[1], "g": values[0], "b": 2}},
            {"series": "session.example.series", "time": first, "value": {"value": words[0]}},
            {"series": "session.example.series", "time": last, "value": {"value": words[1]}}
        ]})
    };
    let mut ndjson = Vec::new();
    for body in [
        session([3.0, 1.0], ["x", "y"]),
        session([2.0, 5.0], ["z", "w"]),
    ] {
        ndjson.extend(serde_json::to_vec(&body).unwrap());
        ndjson.push(b'\n');
    }
    let (status, resp) = app.post_raw("/api/sessions/bulk/", ndjson).await;
    assert_eq!((status, &resp["rejected"]), (200, &json!([])), "{resp}");
    let snapshot = Catalogue::new().reload(&mut conn).unwrap();
    for agg in [AggFunc::First, AggFunc::Last, AggFunc::Count, AggFunc::Sum] {
        let q = one_day(user, "session.*", "hour", "2025-03-02", agg);
        // Read from the rows the write appended, not yet refreshed.
        assert_eq!(
            assert_same_answers(&mut conn, &snapshot, &q),
            "rollup",
            "{agg:?}"
        );
    }
}

#[actix_web::test]
async fn an_hour_of_appending_writes_is_merged_into_one_row_exactly() {
    let app = uncached_app_refreshed_by_hand().await;
    let mut conn = app.conn();
    let user = Uuid::new_v4();
    let session = |minutes: &[(u32, f64)]| {
        let data: Vec<Value> = minutes
            .iter()
            .flat_map(|&(m, v)| {
                let t = format!("2025-05-06T07:{m:02}:00Z");
                [
                    json!({"series": "session.gut_health_score", "time": t, "value": {"value": v}}),
                    json!({"series": "session.urine.color", "time": t, "value": {"r": v, "g": 2.0 * v, "b": 1}}),
                    json!({"series": "session.example.series", "time": t, "value": {"value": format!("w{v}")}}),
                ]
            })
            .collect();
        session_body(user, Uuid::new_v4(), data)
    };
    let rows = |conn: &mut diesel::PgConnection| {
        count(
            conn,
            &format!("SELECT count(*) AS n FROM rollup_hourly WHERE user_id = '{user}'"),
        )
    };
    assert_eq!(
        app.post("/api/sessions/", &session(&[(10, 4.0), (20, 1.0)]))
            .await
            .0,
        201
    );
    assert_eq!(rollups::refresh(&mut conn, 1000).unwrap(), 3);
    // Later writes to the hour, at its first and last minute and in between: each
    // appends its rows (one per field), which the next run merges with the job's row.
    for minutes in [
        &[(5, 9.0), (30, 2.0)][..],
        &[(5, 3.0), (58, 7.0)],
        &[(58, 8.0)],
    ] {
        assert_eq!(app.post("/api/sessions/", &session(minutes)).await.0, 201);
    }
    // Three series' hours; four numeric fields (the number, r, g, b), one row each from
    // the job and from each write.
    assert_eq!(rows(&mut conn), 4 * 4);
    assert_eq!(rollups::refresh(&mut conn, 1000).unwrap(), 3);
    assert_eq!(rows(&mut conn), 4);
    let snapshot = Catalogue::new().reload(&mut conn).unwrap();
    for agg in [
        AggFunc::Avg,
        AggFunc::Sum,
        AggFunc::Count,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::First,
        AggFunc::Last,
    ] {
        let q = one_day(user, "session.*", "hour", "2025-05-06", agg);
        assert_eq!(
            assert_same_answers(&mut conn, &snapshot, &q),
            "rollup",
            "{agg:?}"
        );
    }
}

#[actix_web::test]
async fn only_recent_hours_of_new_sessions_are_read_from_appended_rows() {
    // The default: the current and the previous hour.
    let app = TestApp::spawn_with(&[
        ("ROLLUP_PERIOD_MS", "3600000"),
        ("CACHE_TTL_SECS", "0"),
        ("REDIS_URL", ""),
    ])
    .await;
    let user = Uuid::new_v4();
    let now = Utc::now();
    let write = |t: chrono::DateTime<Utc>| {
        json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
            {"series": "session.gut_health_score", "time": t.to_rfc3339(), "value": {"value": 3}}
        ]})
    };
    let day_of = |t: chrono::DateTime<Utc>| {
        format!(
            "/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=day&agg_func=sum&start_time={}&end_time={}",
            t.format("%Y-%m-%dT00:00:00Z"),
            t.format("%Y-%m-%dT23:59:59.999999Z")
        )
    };
    // Now: its hour is read from the row the write appended.
    assert_eq!(app.post("/api/sessions/", &write(now)).await.0, 201);
    let (_, r) = app.get(&day_of(now)).await;
    assert_eq!(r["metadata"]["source"], "rollup", "{r}");
    assert_eq!(r["results"][0]["value"], json!(3.0));
    // Ten days ago (a backfill): its hour awaits the job, read raw meanwhile.
    let then = now - TimeDelta::days(10);
    assert_eq!(app.post("/api/sessions/", &write(then)).await.0, 201);
    let (_, r) = app.get(&day_of(then)).await;
    assert_eq!(r["metadata"]["source"], "rollup+raw", "{r}");
    assert_eq!(r["results"][0]["value"], json!(3.0));
    let mut conn = app.conn();
    assert_eq!(rollups::refresh(&mut conn, 1000).unwrap(), 2);
    let (_, r) = app.get(&day_of(then)).await;
    assert_eq!(r["metadata"]["source"], "rollup", "{r}");
    assert_eq!(r["results"][0]["value"], json!(3.0));
}
