//! `approx=true` percentiles: read from the quantile sketches kept in the rollups, each
//! within 1% (relative) of a value between the two points that bracket the exact
//! percentile's rank, whatever was written, rewritten or deleted and however far the
//! rollup job has got; exact by default, and for everything else.

use crate::helpers::{TestApp, add_series, session_body, uncached_app_refreshed_by_hand};
use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use seriesd::db::rollups;
use seriesd::domain::interval::Interval;
use seriesd::domain::query::{AggFunc, Fill, SeriesPatterns};
use seriesd::services::catalogue::Catalogue;
use seriesd::services::query::{self, TimeseriesQuery};
use seriesd::stress::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A number of any sign and size: wide ranges, zeros, repeated small integers.
fn number(rng: &mut SplitMix64) -> f64 {
    match rng.below(5) {
        0 => (rng.below(2_000_001) as f64 - 1e6) / 1000.0,
        1 => 0.0,
        2 => {
            let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            let scale = 10f64.powi(rng.below(20) as i32 - 6);
            sign * scale * (1.0 + rng.below(100) as f64 / 100.0)
        }
        3 => rng.below(10) as f64,
        _ => 1000.0 + rng.below(50) as f64 / 10.0,
    }
}

/// The start of the UTC bucket of `interval` holding `t`, computed here.
fn bucket_of(t: DateTime<Utc>, interval: &str) -> DateTime<Utc> {
    let day = t.date_naive();
    let midnight = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc();
    match interval {
        "hour" => midnight(day) + TimeDelta::hours(t.hour().into()),
        "6h" => midnight(day) + TimeDelta::hours((t.hour() - t.hour() % 6).into()),
        "day" => midnight(day),
        "week" => midnight(day - TimeDelta::days(day.weekday().num_days_from_monday().into())),
        "month" => midnight(day.with_day(1).unwrap()),
        _ => unreachable!(),
    }
}

/// Whether `v` is within 1% of a value in `[lo, hi]` (up to rounding).
fn within_one_percent(v: f64, lo: f64, hi: f64) -> bool {
    let nearest = v.clamp(lo, hi);
    (v - nearest).abs() <= 0.01 * nearest.abs() * (1.0 + 1e-9)
}

/// The numbers of the points `percentile_cont` interpolates between for quantile `q`.
fn bracket(sorted: &[f64], q: f64) -> (f64, f64) {
    let pos = q * (sorted.len() - 1) as f64;
    (sorted[pos.floor() as usize], sorted[pos.ceil() as usize])
}

/// One stored point: user, series, time, numbers by field ('' for a bare number).
type Point = (Uuid, &'static str, DateTime<Utc>, Vec<(&'static str, f64)>);

#[actix_web::test]
async fn approximate_percentiles_are_within_one_percent_of_the_bracketing_points() {
    let users = [Uuid::new_v4(), Uuid::new_v4()];
    let origin = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    // The test refreshes by hand; new sessions append hourly rows in the second half of
    // the span (as if it ended now), so that rows with and without the job's work meet.
    let append_hours = (Utc::now() - (origin + TimeDelta::days(45))).num_hours() + 1;
    let app = TestApp::spawn_with(&[
        ("ROLLUP_PERIOD_MS", "3600000"),
        ("ROLLUP_APPEND_HOURS", &append_hours.to_string()),
    ])
    .await;
    add_series(&app, "test.reading", json!({"type": "number"})).await;
    add_series(
        &app,
        "test.vector",
        json!({"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}),
    )
    .await;
    let mut conn = app.conn();
    let span_secs = 90 * 86_400;
    let mut rng = SplitMix64::new(20_261_206);
    let mut sessions: Vec<(Uuid, Vec<Point>)> = Vec::new();
    let intervals = ["hour", "6h", "day", "week", "month"];
    let percentiles = [AggFunc::Median, AggFunc::P90, AggFunc::P95, AggFunc::P99];
    let (mut checked, mut from_sketches) = (0, 0);
    let mut cursor = rollups::Cursor::default();
    for round in 0..4 {
        for _ in 0..12 {
            let user = users[rng.below(2) as usize];
            let base = origin + TimeDelta::seconds(rng.below(span_secs) as i64);
            let mut times = BTreeSet::new();
            let mut points: Vec<Point> = Vec::new();
            for _ in 0..(10 + rng.below(60)) {
                let t = base + TimeDelta::seconds(rng.below(4 * 86_400) as i64);
                let series = if rng.below(3) == 0 {
                    "test.vector"
                } else {
                    "test.reading"
                };
                if !times.insert((series, t)) {
                    continue;
                }
                let fields = if series == "test.vector" {
                    vec![("x", number(&mut rng)), ("y", number(&mut rng))]
                } else {
                    vec![("", number(&mut rng))]
                };
                points.push((user, series, t, fields));
            }
            let session = Uuid::new_v4();
            assert_eq!(
                app.post("/api/sessions/", &body(session, &points)).await.0,
                201
            );
            sessions.push((session, points));
        }
        // A rewrite (other numbers, last write wins) and a deletion.
        if round > 0 {
            let i = rng.below(sessions.len() as u64) as usize;
            for p in &mut sessions[i].1 {
                for f in &mut p.3 {
                    f.1 = number(&mut rng);
                }
            }
            let (session, points) = &sessions[i];
            assert_eq!(
                app.post("/api/sessions/", &body(*session, points)).await.0,
                201
            );
            let (session, _) = sessions.remove(rng.below(sessions.len() as u64) as usize);
            assert_eq!(
                app.delete(&format!("/api/sessions/{session}/")).await.0,
                204
            );
        }
        let limit = [0i64, 80, 100_000, 100_000][rng.below(4) as usize];
        rollups::refresh_from(&mut conn, limit, &mut cursor).unwrap();

        let snapshot = Catalogue::new().reload(&mut conn).unwrap();
        for _ in 0..20 {
            let interval = intervals[rng.below(intervals.len() as u64) as usize];
            let start = origin + TimeDelta::seconds(rng.below(span_secs / 3) as i64);
            let end = start + TimeDelta::seconds((86_400 + rng.below(span_secs)) as i64);
            let agg = percentiles[rng.below(4) as usize];
            let user = users[rng.below(2) as usize];
            let q = TimeseriesQuery {
                user_id: user,
                session_id: None,
                patterns: SeriesPatterns::parse("test.*").unwrap(),
                interval: Interval::parse(interval).unwrap(),
                start,
                end,
                agg: Some(agg),
                tz: Tz::UTC,
                fill: Fill::None,
                max_gap: None,
                smooth: None,
                approx: true,
                rollups: true,
                engine: crate::helpers::engine(),
            };
            let answer = query::run(&mut conn, &snapshot, &q).unwrap();
            let m = &answer.metadata;
            assert_eq!(m.approximate, m.source.contains("rollup"), "{q:?}");
            assert_eq!(m.relative_accuracy, m.approximate.then_some(0.01));
            from_sketches += usize::from(m.approximate);
            // The numbers of each series, bucket and field in range, computed here.
            let mut expected: BTreeMap<(&str, DateTime<Utc>, &str), Vec<f64>> = BTreeMap::new();
            for (u, series, t, fields) in sessions.iter().flat_map(|(_, p)| p) {
                if *u == user && (start..=end).contains(t) {
                    for (field, v) in fields {
                        let key = (*series, bucket_of(*t, interval), *field);
                        expected.entry(key).or_default().push(*v);
                    }
                }
            }
            let got = serde_json::to_value(&answer.results).unwrap();
            let rows = got.as_array().unwrap();
            let buckets: BTreeSet<(&str, DateTime<Utc>)> =
                expected.keys().map(|(s, b, _)| (*s, *b)).collect();
            assert_eq!(rows.len(), buckets.len(), "{q:?}: {got}");
            for row in rows {
                let series = row["series"].as_str().unwrap();
                let bucket: DateTime<Utc> = row["bucket"].as_str().unwrap().parse().unwrap();
                let values: Vec<(&str, f64)> = match &row["value"] {
                    Value::Object(o) => o
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_f64().unwrap()))
                        .collect(),
                    v => vec![("", v.as_f64().unwrap())],
                };
                for (field, v) in values {
                    let mut numbers = expected[&(series, bucket, field)].clone();
                    numbers.sort_by(f64::total_cmp);
                    let (lo, hi) = bracket(&numbers, agg.quantile().unwrap());
                    assert!(
                        within_one_percent(v, lo, hi),
                        "{q:?} {series} {bucket} {field}: {v} not within 1% of [{lo}, {hi}] ({} points)",
                        numbers.len()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 500, "few values checked: {checked}");
    assert!(
        from_sketches >= 20,
        "sketches rarely answered: {from_sketches}"
    );
}

/// A session's body from its points.
fn body(session: Uuid, points: &[Point]) -> Value {
    let data: Vec<Value> = points
        .iter()
        .map(|(_, series, t, fields)| {
            let value = match fields.as_slice() {
                [("", v)] => json!(v),
                _ => Value::Object(
                    fields
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect(),
                ),
            };
            json!({"series": series, "time": t.to_rfc3339(), "value": value})
        })
        .collect();
    session_body(points[0].0, session, data)
}

#[actix_web::test]
async fn approx_is_a_permission_the_metadata_answers_for() {
    let app = uncached_app_refreshed_by_hand().await;
    add_series(&app, "test.reading", json!({"type": "number"})).await;
    let user = Uuid::new_v4();
    // Three months of a point every 3 hours: negative numbers, zeros, positive ones.
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let points: Vec<(DateTime<Utc>, f64)> = (0..720)
        .map(|i| {
            (
                start + TimeDelta::hours(3 * i),
                ((i * 37) % 101 - 50) as f64 * 1.5,
            )
        })
        .collect();
    let data: Vec<Value> = points
        .iter()
        .map(|(t, v)| json!({"series": "test.reading", "time": t.to_rfc3339(), "value": v}))
        .collect();
    let session = Uuid::new_v4();
    let (status, resp) = app
        .post("/api/sessions/", &session_body(user, session, data))
        .await;
    assert_eq!(status, 201, "{resp}");
    rollups::refresh(&mut app.conn(), 100_000).unwrap();
    let range = "series=test.reading&interval=month&start_time=2025-01-01&end_time=2025-03-31T23:59:59.999999Z";
    let ask = |params: String| {
        let app = &app;
        async move {
            let (status, body) = app
                .get(&format!("/api/timeseries/?user_id={user}&{params}"))
                .await;
            assert_eq!(status, 200, "{params}: {body}");
            body
        }
    };
    let by_month = |month: u32| -> Vec<f64> {
        let mut v: Vec<f64> = points
            .iter()
            .filter(|(t, _)| t.month() == month)
            .map(|(_, v)| *v)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    for (agg, q) in [("median", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        let approx = ask(format!("agg_func={agg}&approx=true&{range}")).await;
        assert_eq!(approx["metadata"]["approximate"], true, "{approx}");
        assert_eq!(approx["metadata"]["relative_accuracy"], 0.01);
        assert_eq!(approx["metadata"]["source"], "rollup");
        let exact = ask(format!("agg_func={agg}&{range}")).await;
        assert_eq!(exact["metadata"]["approximate"], false);
        assert_eq!(exact["metadata"]["relative_accuracy"], Value::Null);
        assert_eq!(exact["metadata"]["source"], "raw");
        for month in 1..=3u32 {
            let numbers = by_month(month);
            let (lo, hi) = bracket(&numbers, q);
            let a = approx["results"][month as usize - 1]["value"]
                .as_f64()
                .unwrap();
            assert!(
                within_one_percent(a, lo, hi),
                "{agg} {month}: {a} vs [{lo}, {hi}]"
            );
            // Exact by default: percentile_cont, computed here.
            let pos = q * (numbers.len() - 1) as f64;
            let want = lo + (hi - lo) * (pos - pos.floor());
            let e = exact["results"][month as usize - 1]["value"]
                .as_f64()
                .unwrap();
            assert!(
                (e - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{agg} {month}: {e} vs {want}"
            );
        }
    }
    // Another aggregate, a session's points (never read from rollups): exact, and says so.
    let avg = ask(format!("agg_func=avg&approx=true&{range}")).await;
    assert_eq!(avg["metadata"]["approximate"], false);
    assert_eq!(
        avg["results"],
        ask(format!("agg_func=avg&{range}")).await["results"]
    );
    let one = ask(format!(
        "agg_func=p99&approx=true&session_id={session}&{range}"
    ))
    .await;
    assert_eq!(
        (&one["metadata"]["approximate"], &one["metadata"]["source"]),
        (&json!(false), &json!("raw"))
    );
    app.assert_400_naming(
        &format!("/api/timeseries/?user_id={user}&approx=yes"),
        "approx",
    )
    .await;
}

#[actix_web::test]
async fn approx_keys_the_cache() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let data: Vec<Value> = (0..40)
        .map(|i| json!({"series": "session.gut_health_score", "time": format!("2025-01-{:02}T10:00:00Z", 1 + i % 28), "value": {"value": i % 9}}))
        .collect();
    assert_eq!(
        app.post("/api/sessions/", &session_body(user, Uuid::new_v4(), data))
            .await
            .0,
        201
    );
    let get = |approx: bool| {
        let path = format!(
            "/api/timeseries/?user_id={user}&agg_func=p99&interval=month&start_time=2025-01-01&end_time=2025-01-31&approx={approx}"
        );
        let app = &app;
        async move {
            let (cache, body) = app.get_cached(&path).await;
            (cache, body["metadata"]["approximate"].clone())
        }
    };
    assert_eq!(get(false).await.0, "MISS");
    // Not the exact answer from the cache: a key of its own.
    assert_eq!(get(true).await.0, "MISS");
    assert_eq!(get(true).await.0, "HIT");
    assert_eq!(get(false).await, ("HIT".to_string(), json!(false)));
}
