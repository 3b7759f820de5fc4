//! `GET /api/timeseries/`: every interval, aggregate, fill and smoothing mode, checked
//! against values computed here from the raw data; the seed documents' examples; the cache.

use crate::helpers::{TestApp, add_series, ingest, turbine_output};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

async fn query(app: &TestApp, params: &str) -> Value {
    let (status, body) = app.get(&format!("/api/timeseries/?{params}")).await;
    assert_eq!(status, 200, "{params} -> {body}");
    body
}

/// `(bucket, value)` pairs of one series.
fn pairs(body: &Value, series: &str) -> Vec<(String, Value)> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["series"] == series)
        .map(|r| {
            (
                r["bucket"].as_str().unwrap().to_string(),
                r["value"].clone(),
            )
        })
        .collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Two turbines as two users, all of each one's readings in one session.
async fn turbines(app: &TestApp) -> [Uuid; 2] {
    add_series(app, "turbine.output", json!({"type": "number"})).await;
    let users = [Uuid::new_v4(), Uuid::new_v4()];
    for (turbine, user) in (1..).zip(users) {
        ingest(app, user, Uuid::new_v4(), &turbine_output(turbine, "")).await;
    }
    users
}

fn range() -> &'static str {
    "start_time=2020-03-01&end_time=2020-03-31&series=turbine.output"
}

#[actix_web::test]
async fn seed_001_day_buckets_with_min_max_avg() {
    let app = TestApp::spawn().await;
    let [t1, t2] = turbines(&app).await;
    let expect = [
        (
            t1,
            vec![
                (
                    "2020-03-14T00:00:00Z",
                    1_000_000.0,
                    1_050_000.0,
                    1_012_500.0,
                ),
                (
                    "2020-03-15T00:00:00Z",
                    1_010_000.0,
                    1_030_000.0,
                    1_022_500.0,
                ),
            ],
        ),
        (
            t2,
            vec![(
                "2020-03-14T00:00:00Z",
                2_000_000.0,
                2_070_000.0,
                2_030_000.0,
            )],
        ),
    ];
    for (user, rows) in expect {
        for (agg, col) in [("min", 1), ("max", 2), ("avg", 3)] {
            let body = query(
                &app,
                &format!("user_id={user}&interval=day&agg_func={agg}&{}", range()),
            )
            .await;
            let got = pairs(&body, "turbine.output");
            assert_eq!(got.len(), rows.len(), "{body}");
            for (g, r) in got.iter().zip(&rows) {
                assert_eq!(g.0, r.0);
                let want = [r.1, r.2, r.3][col - 1];
                assert_eq!(num(&g.1), want, "{agg} {user}");
            }
        }
    }
}

#[actix_web::test]
async fn seed_001_three_second_and_five_day_buckets() {
    // A month of 3-second buckets is over the default limit of 10,000 buckets.
    let app = TestApp::spawn_with(&[("MAX_BUCKETS", "1000000")]).await;
    let [t1, t2] = turbines(&app).await;
    let body = query(
        &app,
        &format!("user_id={t1}&interval=3s&agg_func=avg&{}", range()),
    )
    .await;
    let got: Vec<(String, f64)> = pairs(&body, "turbine.output")
        .into_iter()
        .map(|(b, v)| (b, num(&v)))
        .collect();
    let want = [
        ("2020-03-14T13:00:33Z", 1_016_666.666_666_666_6),
        ("2020-03-14T13:00:36Z", 1_000_000.0),
        ("2020-03-15T13:00:33Z", 1_020_000.0),
        ("2020-03-15T13:00:36Z", 1_030_000.0),
    ];
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0);
        assert!((g.1 - w.1).abs() < 1e-6, "{g:?} vs {w:?}");
    }
    let body = query(
        &app,
        &format!("user_id={t2}&interval=3s&agg_func=max&{}", range()),
    )
    .await;
    let got: Vec<f64> = pairs(&body, "turbine.output")
        .iter()
        .map(|(_, v)| num(v))
        .collect();
    assert_eq!(got, vec![2_050_000.0, 2_070_000.0]);
    // TIME_BUCKET("5d"): both turbines' buckets start on 2020-03-13.
    for (user, avg) in [(t1, 1_017_500.0), (t2, 2_030_000.0)] {
        let body = query(&app, &format!("user_id={user}&interval=5d&{}", range())).await;
        assert_eq!(
            pairs(&body, "turbine.output"),
            vec![("2020-03-13T00:00:00Z".to_string(), json!(avg))]
        );
    }
}

#[actix_web::test]
async fn seed_001_two_row_moving_average() {
    let app = TestApp::spawn_with(&[("MAX_BUCKETS", "100000")]).await;
    let [t1, t2] = turbines(&app).await;
    for (user, want) in [
        (t1, [1_000_000.0, 1_000_000.0, 1_025_000.0, 1_025_000.0]),
        (t2, [2_000_000.0, 2_000_000.0, 2_025_000.0, 2_060_000.0]),
    ] {
        let body = query(
            &app,
            &format!("user_id={user}&interval=sec&smooth=2&start_time=2020-03-14&end_time=2020-03-14T23:59:59Z&series=turbine.output"),
        )
        .await;
        let got: Vec<f64> = pairs(&body, "turbine.output")
            .iter()
            .map(|(_, v)| num(v))
            .collect();
        assert_eq!(got, want);
    }
}

#[actix_web::test]
async fn seed_001_linear_interpolation_of_ticks() {
    let app = TestApp::spawn().await;
    add_series(&app, "tick.price", json!({"type": "number"})).await;
    let user = Uuid::new_v4();
    let ticks = [(36, 100.0), (37, 102.0), (40, 103.0), (42, 104.0)];
    let points: Vec<(&str, String, Value)> = ticks
        .iter()
        .map(|(s, p)| ("tick.price", format!("2019-02-18T10:55:{s}Z"), json!(p)))
        .collect();
    ingest(&app, user, Uuid::new_v4(), &points).await;
    let body = query(
        &app,
        &format!("user_id={user}&interval=sec&fill=linear&start_time=2019-02-18T10:55:36Z&end_time=2019-02-18T10:55:42Z&series=tick.price"),
    )
    .await;
    let got: Vec<(String, f64)> = pairs(&body, "tick.price")
        .into_iter()
        .map(|(b, v)| (b, (num(&v) * 10_000.0).round() / 10_000.0))
        .collect();
    let want: Vec<(String, f64)> = [
        (36, 100.0),
        (37, 102.0),
        (38, 102.3333),
        (39, 102.6667),
        (40, 103.0),
        (41, 103.5),
        (42, 104.0),
    ]
    .iter()
    .map(|(s, p)| (format!("2019-02-18T10:55:{s}Z"), *p))
    .collect();
    assert_eq!(got, want);
    // Leading and trailing gaps stay null.
    let body = query(
        &app,
        &format!("user_id={user}&interval=sec&fill=linear&start_time=2019-02-18T10:55:35Z&end_time=2019-02-18T10:55:43Z&series=tick.price"),
    )
    .await;
    let got = pairs(&body, "tick.price");
    assert_eq!(got.len(), 9);
    assert_eq!(got[0].1, Value::Null);
    assert_eq!(got[8].1, Value::Null);
}

fn percentile_cont(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[actix_web::test]
async fn every_aggregate_and_fill_matches_an_independent_computation() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let other = Uuid::new_v4();
    let start = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    // Days 0, 1, 3 and 6 have points (2, 4 and 5 are gaps); values from a fixed LCG.
    let mut x: u64 = 42;
    let mut raw: Vec<(DateTime<Utc>, f64)> = Vec::new();
    for day in [0i64, 1, 3, 6] {
        for k in 0..(5 + day as usize * 3) {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let v = ((x >> 33) % 10_000) as f64 / 100.0;
            raw.push((
                start + Duration::days(day) + Duration::minutes(37 * k as i64),
                v,
            ));
        }
    }
    let points: Vec<(&str, String, Value)> = raw
        .iter()
        .map(|(t, v)| {
            (
                "session.gut_health_score",
                t.to_rfc3339(),
                json!({"value": v}),
            )
        })
        .collect();
    ingest(&app, user, Uuid::new_v4(), &points).await;
    // Another user's points must never show.
    ingest(
        &app,
        other,
        Uuid::new_v4(),
        &[(
            "session.gut_health_score",
            start.to_rfc3339(),
            json!({"value": 1e6}),
        )],
    )
    .await;

    let by_day = |day: i64| -> Vec<f64> {
        raw.iter()
            .filter(|(t, _)| (*t - start).num_days() == day)
            .map(|(_, v)| *v)
            .collect()
    };
    let expected = |agg: &str, vals: &[f64]| -> f64 {
        let mut sorted = vals.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        match agg {
            "avg" => mean,
            "min" => sorted[0],
            "max" => sorted[sorted.len() - 1],
            "count" => n,
            "sum" => vals.iter().sum(),
            "first" => vals[0],
            "last" => vals[vals.len() - 1],
            "median" => percentile_cont(&sorted, 0.5),
            "p90" => percentile_cont(&sorted, 0.9),
            "p95" => percentile_cont(&sorted, 0.95),
            "p99" => percentile_cont(&sorted, 0.99),
            "stddev" => (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
            _ => unreachable!(),
        }
    };
    let window = "start_time=2024-05-01&end_time=2024-05-07T23:00:00Z&series=session.gut_health_score&interval=day";
    for agg in [
        "avg", "min", "max", "count", "sum", "first", "last", "median", "p90", "p95", "p99",
        "stddev",
    ] {
        let body = query(&app, &format!("user_id={user}&agg_func={agg}&{window}")).await;
        let got = pairs(&body, "session.gut_health_score");
        assert_eq!(got.len(), 4, "{agg}: {body}");
        for ((bucket, v), day) in got.iter().zip([0i64, 1, 3, 6]) {
            assert_eq!(
                bucket,
                &(start + Duration::days(day))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            );
            let want = expected(agg, &by_day(day));
            assert!(
                (num(v) - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{agg} day {day}: {v} vs {want}"
            );
        }
        assert_eq!(body["metadata"]["agg_func"], agg);
    }

    // Fills over the 7 buckets, on daily averages a0, a1, _, a3, _, _, a6.
    let a: Vec<f64> = [0i64, 1, 3, 6]
        .iter()
        .map(|d| expected("avg", &by_day(*d)))
        .collect();
    let fills: [(&str, [Option<f64>; 7]); 4] = [
        (
            "null",
            [
                Some(a[0]),
                Some(a[1]),
                None,
                Some(a[2]),
                None,
                None,
                Some(a[3]),
            ],
        ),
        (
            "zero",
            [
                Some(a[0]),
                Some(a[1]),
                Some(0.0),
                Some(a[2]),
                Some(0.0),
                Some(0.0),
                Some(a[3]),
            ],
        ),
        (
            "previous",
            [
                Some(a[0]),
                Some(a[1]),
                Some(a[1]),
                Some(a[2]),
                Some(a[2]),
                Some(a[2]),
                Some(a[3]),
            ],
        ),
        (
            "linear",
            [
                Some(a[0]),
                Some(a[1]),
                Some((a[1] + a[2]) / 2.0),
                Some(a[2]),
                Some(a[2] + (a[3] - a[2]) / 3.0),
                Some(a[2] + 2.0 * (a[3] - a[2]) / 3.0),
                Some(a[3]),
            ],
        ),
    ];
    for (fill, want) in fills {
        let body = query(&app, &format!("user_id={user}&fill={fill}&{window}")).await;
        let got = pairs(&body, "session.gut_health_score");
        assert_eq!(got.len(), 7, "{fill}: {body}");
        for ((_, v), w) in got.iter().zip(want) {
            match w {
                None => assert_eq!(v, &Value::Null, "{fill}"),
                Some(w) => assert!((num(v) - w).abs() < 1e-9, "{fill}: {v} vs {w}"),
            }
        }
        // Smoothing runs after the fill: a 3-bucket trailing mean of the filled values.
        let body = query(
            &app,
            &format!("user_id={user}&fill={fill}&smooth=3&{window}"),
        )
        .await;
        let got = pairs(&body, "session.gut_health_score");
        for (i, (_, v)) in got.iter().enumerate() {
            let win: Vec<f64> = want[i.saturating_sub(2)..=i]
                .iter()
                .flatten()
                .copied()
                .collect();
            let w = win.iter().sum::<f64>() / win.len() as f64;
            assert!((num(v) - w).abs() < 1e-9, "{fill} smooth {i}: {v} vs {w}");
        }
    }
}

#[actix_web::test]
async fn the_seed_query_shapes_mix_numbers_objects_and_strings() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    ingest(
        &app,
        user,
        Uuid::new_v4(),
        &[
            (
                "session.gut_health_score",
                "2025-01-05T10:00:00Z",
                json!({"value": 4}),
            ),
            (
                "session.gut_health_score",
                "2025-01-20T10:00:00Z",
                json!({"value": 8}),
            ),
            (
                "session.gut_health_score",
                "2025-02-02T10:00:00Z",
                json!({"value": 5}),
            ),
            (
                "session.urine.color",
                "2025-01-05T10:00:00Z",
                json!({"r": 200, "g": 100, "b": 0}),
            ),
            (
                "session.urine.color",
                "2025-01-06T10:00:00Z",
                json!({"r": 100, "g": 50, "b": 10}),
            ),
            (
                "session.example.series",
                "2025-01-07T10:00:00Z",
                json!({"value": "first"}),
            ),
            (
                "session.example.series",
                "2025-01-08T10:00:00Z",
                json!({"value": "second"}),
            ),
        ],
    )
    .await;
    let range = "start_time=2025-01-01&end_time=2025-02-28";
    let body = query(
        &app,
        &format!("user_id={user}&interval=month&series=session.gut_health_score&{range}"),
    )
    .await;
    assert_eq!(
        body["results"],
        json!([
            {"bucket": "2025-01-01T00:00:00Z", "series": "session.gut_health_score", "value": 6.0},
            {"bucket": "2025-02-01T00:00:00Z", "series": "session.gut_health_score", "value": 5.0}
        ])
    );
    assert_eq!(body["metadata"]["count"], 2);
    assert_eq!(body["metadata"]["interval"], "month");
    assert_eq!(body["metadata"]["agg_func"], "avg");

    let body = query(
        &app,
        &format!("user_id={user}&interval=month&series=session.*&{range}"),
    )
    .await;
    let results = body["results"].as_array().unwrap();
    let series: Vec<&str> = results
        .iter()
        .map(|r| r["series"].as_str().unwrap())
        .collect();
    assert_eq!(
        series,
        vec![
            "session.example.series",
            "session.gut_health_score",
            "session.gut_health_score",
            "session.urine.color"
        ]
    );
    assert_eq!(results[0]["value"], json!({"value": "first"}));
    assert_eq!(
        results[3]["value"],
        json!({"r": 150.0, "g": 75.0, "b": 5.0})
    );
    let body = query(
        &app,
        &format!("user_id={user}&interval=month&series=session.example.*&agg_func=last&{range}"),
    )
    .await;
    assert_eq!(body["results"][0]["value"], json!({"value": "second"}));
    let body = query(
        &app,
        &format!(
            "user_id={user}&interval=month&series=session.example.series&agg_func=count&{range}"
        ),
    )
    .await;
    assert_eq!(body["results"][0]["value"], json!(2));
    // A pattern matching nothing is an empty answer, not an error.
    let body = query(&app, &format!("user_id={user}&series=nothing.here&{range}")).await;
    assert_eq!(body["results"], json!([]));
    assert_eq!(body["metadata"]["count"], 0);
    // Another session id filters to that session only.
    let body = query(
        &app,
        &format!("user_id={user}&session_id={}&{range}", Uuid::new_v4()),
    )
    .await;
    assert_eq!(body["results"], json!([]));
}

#[actix_web::test]
async fn days_follow_new_york_across_the_dst_change_and_months_the_leap_year() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    ingest(
        &app,
        user,
        Uuid::new_v4(),
        &[
            // 2024-03-09 23:30 EST = 04:30Z on the 10th: still the 9th in New York.
            (
                "session.gut_health_score",
                "2024-03-10T04:30:00Z",
                json!({"value": 1}),
            ),
            // 2024-03-10 00:30 EST, then 23:30 EDT: one New York day of 23 hours.
            (
                "session.gut_health_score",
                "2024-03-10T05:30:00Z",
                json!({"value": 2}),
            ),
            (
                "session.gut_health_score",
                "2024-03-11T03:30:00Z",
                json!({"value": 4}),
            ),
            (
                "session.gut_health_score",
                "2024-03-11T04:30:00Z",
                json!({"value": 8}),
            ),
            (
                "session.gut_health_score",
                "2024-02-28T12:00:00Z",
                json!({"value": 10}),
            ),
            (
                "session.gut_health_score",
                "2024-02-29T12:00:00Z",
                json!({"value": 20}),
            ),
            (
                "session.gut_health_score",
                "2024-03-01T12:00:00Z",
                json!({"value": 30}),
            ),
        ],
    )
    .await;
    let body = query(
        &app,
        &format!("user_id={user}&interval=day&agg_func=sum&tz=America/New_York&start_time=2024-03-09T12:00:00Z&end_time=2024-03-12"),
    )
    .await;
    assert_eq!(
        pairs(&body, "session.gut_health_score"),
        vec![
            ("2024-03-09T00:00:00-05:00".to_string(), json!(1.0)),
            ("2024-03-10T00:00:00-05:00".to_string(), json!(6.0)),
            ("2024-03-11T00:00:00-04:00".to_string(), json!(8.0)),
        ]
    );
    let body = query(
        &app,
        &format!(
            "user_id={user}&interval=month&agg_func=count&start_time=2024-02-01&end_time=2024-03-31"
        ),
    )
    .await;
    let counts: Vec<(String, Value)> = pairs(&body, "session.gut_health_score");
    assert_eq!(counts[0], ("2024-02-01T00:00:00Z".to_string(), json!(2)));
    assert_eq!(counts[1], ("2024-03-01T00:00:00Z".to_string(), json!(5)));
}

#[actix_web::test]
async fn cached_answers_are_never_stale() {
    let app = TestApp::spawn().await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let p = |v: f64| {
        vec![(
            "session.gut_health_score",
            "2025-03-03T10:00:00Z".to_string(),
            json!({"value": v}),
        )]
    };
    ingest(&app, user, Uuid::new_v4(), &p(1.0)).await;
    let path = format!(
        "/api/timeseries/?user_id={user}&start_time=2025-03-01&end_time=2025-03-31&interval=month"
    );
    let get = || app.get_cached(&path);
    let (c1, b1) = get().await;
    let (c2, b2) = get().await;
    assert_eq!((c1.as_str(), c2.as_str()), ("MISS", "HIT"));
    assert_eq!(b1, b2);
    // Another user's write leaves this user's answer cached.
    ingest(&app, other, Uuid::new_v4(), &p(5.0)).await;
    assert_eq!(get().await.0, "HIT");
    // This user's write: the next answer is computed afresh and holds the new value.
    ingest(
        &app,
        user,
        Uuid::new_v4(),
        &[(
            "session.gut_health_score",
            "2025-03-04T10:00:00Z".to_string(),
            json!({"value": 3}),
        )],
    )
    .await;
    let (c3, v) = get().await;
    assert_eq!(c3, "MISS");
    assert_eq!(v["results"][0]["value"], json!(2.0));
}

#[actix_web::test]
async fn queries_answer_without_redis_and_with_redis_unreachable() {
    for redis in ["", "redis://127.0.0.1:1/0"] {
        let app = TestApp::spawn_with(&[("REDIS_URL", redis)]).await;
        let user = Uuid::new_v4();
        ingest(
            &app,
            user,
            Uuid::new_v4(),
            &[(
                "session.gut_health_score",
                "2025-03-03T10:00:00Z".to_string(),
                json!({"value": 7}),
            )],
        )
        .await;
        let path =
            format!("/api/timeseries/?user_id={user}&start_time=2025-03-01&end_time=2025-03-31");
        for _ in 0..2 {
            let (status, body) = app.get(&path).await;
            assert_eq!(status, 200, "{redis}: {body}");
            assert_eq!(body["results"][0]["value"], json!(7.0));
        }
        let mut resp = app.client.get(app.url(&path)).send().await.unwrap();
        let expected = if redis.is_empty() { "HIT" } else { "MISS" };
        assert_eq!(resp.headers().get("X-Cache").unwrap(), expected, "{redis}");
        let _ = resp.body().await;
        let (_, health) = app.get("/health/").await;
        let backend = if redis.is_empty() {
            "in-process"
        } else {
            "redis"
        };
        assert_eq!(health["cache"]["backend"], backend);
        assert_eq!(health["cache"]["reachable"], redis.is_empty());
    }
}

#[actix_web::test]
async fn every_bad_parameter_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let cases = [
        ("", "user_id"),
        ("user_id=nope", "user_id"),
        (
            &format!("user_id={user}&session_id=nope") as &str,
            "session_id",
        ),
        (&format!("user_id={user}&agg_func=mode"), "agg_func"),
        (&format!("user_id={user}&interval=fortnight"), "interval"),
        (
            &format!("user_id={user}&start_time=yesterday"),
            "start_time",
        ),
        (&format!("user_id={user}&end_time=2025-13-01"), "end_time"),
        (
            &format!("user_id={user}&start_time=2025-02-01&end_time=2025-01-01"),
            "start_time",
        ),
        (&format!("user_id={user}&tz=Mars/Olympus"), "tz"),
        (&format!("user_id={user}&smooth=0"), "smooth"),
        (&format!("user_id={user}&smooth=abc"), "smooth"),
        (&format!("user_id={user}&fill=spline"), "fill"),
        (&format!("user_id={user}&series=session.("), "series"),
        (
            &format!("user_id={user}&interval=sec&start_time=2020-01-01&end_time=2025-01-01"),
            "interval",
        ),
    ];
    for (params, name) in cases {
        app.assert_400_naming(&format!("/api/timeseries/?{params}"), name)
            .await;
    }
}

/// Fixed widths of millions of years, which the document's `interval` pattern allows,
/// overflowed the bucket arithmetic (a panic, answered 500) and PostgreSQL's intervals.
#[actix_web::test]
async fn fixed_widths_are_at_most_a_hundred_years() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    ingest(
        &app,
        user,
        Uuid::new_v4(),
        &[(
            "session.gut_health_score",
            "2025-01-01T00:00:00Z",
            json!({"value": 5}),
        )],
    )
    .await;
    for interval in ["999999999w", "36526d", "5218w"] {
        let (status, body) = app
            .get(&format!(
                "/api/timeseries/?user_id={user}&interval={interval}&fill=null&start_time=1900-01-01&end_time=2200-01-01"
            ))
            .await;
        assert_eq!(status, 400, "{interval}: {body}");
        assert!(
            body["interval"][0].as_str().unwrap().contains("100 years"),
            "{body}"
        );
    }
    let (status, body) = app
        .get(&format!(
            "/api/timeseries/?user_id={user}&interval=36525d&fill=null&start_time=1900-01-01&end_time=2200-01-01"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["interval"], "36525d");
}
