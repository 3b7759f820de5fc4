//! `GET /api/timeseries/points/` as CSV and NDJSON exports: streamed, parsed back point
//! for point against what was stored, with the server's peak memory flat as the export
//! grows tenfold (downsampled with `max_points` too).

use crate::helpers::{
    SECOND, ServerProcess, TestApp, TestDb, bulk_series, client, expected_points, load_points, time,
};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// Splits one CSV record (RFC 4180 quoting, no line breaks inside fields).
fn csv_record(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

async fn export(app: &TestApp, params: &str) -> (String, String) {
    let mut resp = app
        .client
        .get(app.url(&format!("/api/timeseries/points/?{params}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.body().limit(256 * 1024 * 1024).await.unwrap();
    (ct, String::from_utf8(body.to_vec()).unwrap())
}

#[actix_web::test]
async fn exports_of_100k_points_parse_back_point_for_point() {
    let app = TestApp::spawn().await;
    let mut conn = app.conn();
    let series = bulk_series(&mut conn);
    let names: HashMap<i32, &str> = [
        (series.0, "session.gut_health_score"),
        (series.1, "session.example.series"),
    ]
    .into();
    let (user, sessions) = (Uuid::new_v4(), [Uuid::new_v4(), Uuid::new_v4()]);
    let start = Utc.with_ymd_and_hms(2024, 12, 30, 12, 0, 0).unwrap();
    let n = 100_000;
    load_points(&app.db, user, sessions, series, start, SECOND, n);
    // Another user's points in the same range stay out.
    load_points(
        &app.db,
        Uuid::new_v4(),
        sessions,
        series,
        start,
        SECOND,
        1000,
    );
    let want = expected_points(sessions, series, start, SECOND, n);
    assert_eq!(want.len(), 100_000);
    let check = |got: Vec<(DateTime<Utc>, String, Uuid, Value)>| {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                (g.0, g.1.as_str(), g.2, &g.3),
                (w.0, names[&w.1], w.2, &w.3),
                "point {i}"
            );
        }
    };

    let (ct, csv) = export(&app, &format!("user_id={user}&format=csv")).await;
    assert_eq!(ct, "text/csv; charset=utf-8");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("time,series,session_id,value"));
    check(
        lines
            .map(|l| {
                let f = csv_record(l);
                assert_eq!(f.len(), 4, "{l}");
                (
                    time(&f[0]),
                    f[1].clone(),
                    f[2].parse().unwrap(),
                    serde_json::from_str(&f[3]).unwrap(),
                )
            })
            .collect(),
    );

    let (ct, nd) = export(&app, &format!("user_id={user}&format=ndjson")).await;
    assert_eq!(ct, "application/x-ndjson");
    check(
        nd.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    time(v["time"].as_str().unwrap()),
                    v["series"].as_str().unwrap().to_string(),
                    v["session_id"].as_str().unwrap().parse().unwrap(),
                    v["value"].clone(),
                )
            })
            .collect(),
    );

    // A range and a series filter; an empty range is just the header.
    let (_, csv) = export(
        &app,
        &format!("user_id={user}&format=csv&series=session.example.series&start_time=2024-12-30T12:00:10Z&end_time=2024-12-30T12:00:20Z"),
    )
    .await;
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    let expect: Vec<_> = want
        .iter()
        .filter(|w| {
            w.1 == series.1
                && w.0 >= time("2024-12-30T12:00:10Z")
                && w.0 <= time("2024-12-30T12:00:20Z")
        })
        .collect();
    assert_eq!(lines.len(), expect.len());
    assert!(lines.iter().all(|l| l.contains(",session.example.series,")));
    let (_, csv) = export(
        &app,
        &format!("user_id={user}&format=csv&start_time=2030-01-01"),
    )
    .await;
    assert_eq!(csv, "time,series,session_id,value\n");
    let (_, nd) = export(
        &app,
        &format!("user_id={user}&format=ndjson&end_time=2000-01-01"),
    )
    .await;
    assert_eq!(nd, "");
}

/// Streams an export, counting its lines without keeping it.
async fn export_lines(server: &ServerProcess, params: &str) -> usize {
    let mut resp = client()
        .get(server.url(&format!("/api/timeseries/points/?{params}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut lines = 0;
    while let Some(chunk) = resp.next().await {
        lines += chunk.unwrap().iter().filter(|&&b| b == b'\n').count();
    }
    lines
}

#[actix_web::test]
async fn an_exports_peak_memory_stays_flat_when_the_range_grows_tenfold() {
    let db = TestDb::create();
    let mut conn = db.conn();
    let series = bulk_series(&mut conn);
    let sessions = [Uuid::new_v4(), Uuid::new_v4()];
    let (small, large) = (Uuid::new_v4(), Uuid::new_v4());
    let start = Utc.with_ymd_and_hms(2025, 6, 2, 0, 0, 0).unwrap();
    load_points(&db, small, sessions, series, start, SECOND, 50_000);
    load_points(&db, large, sessions, series, start, SECOND, 500_000);
    // Memory is the point here, not authentication.
    let server = ServerProcess::start(&db, &[("AUTH", "disabled")]).await;

    let mut peaks = Vec::new();
    for (user, n) in [(small, 50_000), (large, 500_000)] {
        for format in ["csv", "ndjson"] {
            let lines = export_lines(&server, &format!("user_id={user}&format={format}")).await;
            let header = usize::from(format == "csv");
            assert_eq!(lines, n + header, "{format}");
            // Downsampled to 3 points a series, whose one bucket is the whole range
            // but its ends: read twice, a batch at a time, never held.
            let lines = export_lines(
                &server,
                &format!("user_id={user}&format={format}&max_points=3"),
            )
            .await;
            assert_eq!(lines, 2 * 3 + header, "{format}, max_points=3");
        }
        peaks.push(server.peak_rss_kb());
    }
    let growth_mb = (peaks[1] as f64 - peaks[0] as f64) / 1024.0;
    println!(
        "seriesd peak RSS: {} kB after 50k-point exports, {} kB after 500k-point exports (+{growth_mb:.1} MB)",
        peaks[0], peaks[1]
    );
    assert!(
        growth_mb < 30.0,
        "peak RSS grew by {growth_mb:.1} MB: {peaks:?}"
    );
}
