//! Buckets without an answer in `GET /api/timeseries/`: a multi-field series answers an
//! object with every field in every bucket (null fields where there is no answer), and
//! `max_gap` bounds how far `fill=previous|linear` reaches.

use crate::helpers::{TestApp, add_series, ingest};
use chrono::TimeZone;
use serde_json::{Value, json};
use uuid::Uuid;

async fn query(app: &TestApp, params: &str) -> Value {
    let (status, body) = app.get(&format!("/api/timeseries/?{params}")).await;
    assert_eq!(status, 200, "{params} -> {body}");
    body
}

fn values(body: &Value) -> Vec<Value> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect()
}

/// Sample standard deviation, computed here.
fn stddev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[actix_web::test]
async fn a_multi_field_series_answers_an_object_with_every_field_in_every_bucket() {
    let app = TestApp::spawn().await;
    // `pm10` is optional: some points lack it.
    add_series(
        &app,
        "air.quality",
        json!({"type": "object", "properties": {
            "pm25": {"type": "number"}, "pm10": {"type": "number"}, "note": {"type": "string"}},
            "required": ["pm25"]}),
    )
    .await;
    let user = Uuid::new_v4();
    // Day 1: one point (no stddev); day 2: nothing; day 3: two points, one without pm10.
    ingest(
        &app,
        user,
        Uuid::new_v4(),
        &[
            (
                "air.quality",
                "2025-03-01T08:00:00Z",
                json!({"pm25": 10, "pm10": 20, "note": "a"}),
            ),
            ("air.quality", "2025-03-03T08:00:00Z", json!({"pm25": 12})),
            (
                "air.quality",
                "2025-03-03T09:00:00Z",
                json!({"pm25": 17, "pm10": 30}),
            ),
        ],
    )
    .await;
    let range =
        "series=air.quality&interval=day&start_time=2025-03-01&end_time=2025-03-04T12:00:00Z";
    let nulls = json!({"pm10": null, "pm25": null});
    // stddev of one point has no answer: an object of nulls, not a bare null; the empty
    // days under fill=null too.
    let body = query(
        &app,
        &format!("user_id={user}&agg_func=stddev&fill=null&{range}"),
    )
    .await;
    assert_eq!(
        values(&body),
        vec![
            nulls.clone(),
            nulls.clone(),
            json!({"pm10": null, "pm25": stddev(&[12.0, 17.0])}),
            nulls.clone(),
        ],
        "{body}"
    );
    // Without fill, only the buckets holding points, still objects.
    let body = query(&app, &format!("user_id={user}&agg_func=stddev&{range}")).await;
    assert_eq!(values(&body)[0], nulls, "{body}");
    assert_eq!(body["metadata"]["count"], 2);
    // A field a bucket's points lack is null, or 0 when counted; the other aggregates
    // keep every field too.
    let body = query(&app, &format!("user_id={user}&agg_func=max&{range}")).await;
    assert_eq!(
        values(&body),
        vec![
            json!({"pm10": 20.0, "pm25": 10.0}),
            json!({"pm10": 30.0, "pm25": 17.0})
        ]
    );
    let body = query(
        &app,
        &format!("user_id={user}&agg_func=count&fill=null&{range}"),
    )
    .await;
    assert_eq!(
        values(&body),
        vec![
            json!({"pm10": 1, "pm25": 1}),
            nulls.clone(),
            json!({"pm10": 1, "pm25": 2}),
            nulls.clone(),
        ]
    );
    // Leading and trailing gaps that linear and previous cannot fill, and smoothing over
    // empty windows, stay objects as well.
    for params in [
        "agg_func=avg&fill=linear",
        "agg_func=avg&fill=previous",
        "agg_func=stddev&fill=null&smooth=2",
    ] {
        let body = query(
            &app,
            &format!("user_id={user}&{params}&series=air.quality&interval=day&start_time=2025-02-27&end_time=2025-03-05"),
        )
        .await;
        let got = values(&body);
        assert_eq!(got.len(), 7, "{params}: {body}");
        assert!(
            got.iter()
                .all(|v| v.as_object().is_some_and(|o| o.len() == 2)),
            "{params}: {body}"
        );
        assert_eq!(got[0], nulls, "{params}: {body}");
    }
    // A number series keeps its bare null for an empty bucket.
    let body = query(
        &app,
        &format!("user_id={user}&series=session.gut_health_score&interval=day&fill=null&start_time=2025-03-01&end_time=2025-03-01"),
    )
    .await;
    assert_eq!(values(&body), vec![Value::Null]);
}

/// `fill=previous|linear` with `max_gap`, computed here from the buckets' averages: each
/// empty bucket between the non-empty ones `p` (before) and `n` (after), bucket starts
/// in seconds.
fn expected_fill(
    starts: &[i64],
    avgs: &[Option<f64>],
    fill: &str,
    max_gap: i64,
) -> Vec<Option<f64>> {
    (0..starts.len())
        .map(|j| {
            if avgs[j].is_some() {
                return avgs[j];
            }
            let p = (0..j).rev().find(|&i| avgs[i].is_some());
            let n = (j + 1..starts.len()).find(|&i| avgs[i].is_some());
            match (fill, p, n) {
                ("previous", Some(p), _) if starts[j] - starts[p] <= max_gap => avgs[p],
                ("linear", Some(p), Some(n)) if starts[n] - starts[p] <= max_gap => {
                    let (a, b) = (avgs[p].unwrap(), avgs[n].unwrap());
                    let f = (starts[j] - starts[p]) as f64 / (starts[n] - starts[p]) as f64;
                    Some(a + (b - a) * f)
                }
                _ => None,
            }
        })
        .collect()
}

#[actix_web::test]
async fn max_gap_fills_only_short_gaps_as_computed_independently() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let start = chrono::Utc
        .with_ymd_and_hms(2025, 4, 1, 0, 0, 0)
        .single()
        .unwrap();
    // Points at irregular hours of five days (a fixed LCG), gaps of every length.
    let mut x: u64 = 7;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    let mut raw: Vec<(i64, f64)> = Vec::new();
    let mut hour = 0;
    while hour < 120 {
        for _ in 0..=next(3) {
            raw.push((hour * 3600 + next(3600) as i64, next(1000) as f64 / 10.0));
        }
        hour += 1 + [0, 0, 1, 2, 3, 5, 8, 13][next(8) as usize] as i64;
    }
    let points: Vec<(&str, String, Value)> = raw
        .iter()
        .map(|(s, v)| {
            let t = start + chrono::TimeDelta::seconds(*s);
            (
                "session.gut_health_score",
                t.to_rfc3339(),
                json!({"value": v}),
            )
        })
        .collect();
    ingest(&app, user, Uuid::new_v4(), &points).await;
    let width = 3 * 3600;
    let starts: Vec<i64> = (0..40).map(|b| b * width).collect();
    let avgs: Vec<Option<f64>> = starts
        .iter()
        .map(|b| {
            let v: Vec<f64> = raw
                .iter()
                .filter(|(s, _)| s - s % width == *b)
                .map(|(_, v)| *v)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect();
    let window = "series=session.gut_health_score&interval=3h&start_time=2025-04-01&end_time=2025-04-05T23:59:59Z";
    let mut filled_somewhere = [false; 2];
    let mut left_somewhere = [false; 2];
    for (i, fill) in ["previous", "linear"].into_iter().enumerate() {
        for max_gap in ["3h", "6h", "9h", "12h", "15h", "1d", "2d"] {
            let secs = seriesd::domain::query::MaxGap::parse(max_gap)
                .unwrap()
                .seconds();
            let body = query(
                &app,
                &format!("user_id={user}&fill={fill}&max_gap={max_gap}&{window}"),
            )
            .await;
            assert_eq!(body["metadata"]["max_gap"], max_gap);
            let got = values(&body);
            let want = expected_fill(&starts, &avgs, fill, secs);
            assert_eq!(got.len(), want.len(), "{fill} {max_gap}: {body}");
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                match w {
                    None => assert_eq!(g, &Value::Null, "{fill} {max_gap} bucket {j}"),
                    Some(w) => {
                        let g = g
                            .as_f64()
                            .unwrap_or_else(|| panic!("{fill} {max_gap} {j}: {g}"));
                        assert!(
                            (g - w).abs() < 1e-9,
                            "{fill} {max_gap} bucket {j}: {g} vs {w}"
                        );
                    }
                }
                if avgs[j].is_none() {
                    filled_somewhere[i] |= w.is_some();
                    left_somewhere[i] |= w.is_none() && j > 0 && j < 39;
                }
            }
        }
    }
    // The data holds gaps both sides of the limits.
    assert_eq!((filled_somewhere, left_somewhere), ([true; 2], [true; 2]));
}

#[actix_web::test]
async fn max_gap_is_measured_on_the_calendar_and_keys_the_cache() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    // January and March 2025: February's start is 31 days after January's, March's 59.
    let points: Vec<(&str, &str, Value)> = [
        ("2025-01-10T00:00:00Z", 2, 1),
        ("2025-03-10T00:00:00Z", 8, 3),
    ]
    .into_iter()
    .flat_map(|(t, score, c)| {
        [
            ("session.gut_health_score", t, json!({"value": score})),
            (
                "session.urine.color",
                t,
                json!({"r": c, "g": c + 1, "b": c + 2}),
            ),
        ]
    })
    .collect();
    ingest(&app, user, Uuid::new_v4(), &points).await;
    let window =
        "series=session.gut_health_score&interval=month&start_time=2025-01-01&end_time=2025-03-31";
    let february = |fill: &str, max_gap: &str| {
        let app = &app;
        let path =
            format!("/api/timeseries/?user_id={user}&fill={fill}&max_gap={max_gap}&{window}");
        async move {
            let (status, body) = app.get(&path).await;
            assert_eq!(status, 200, "{body}");
            body["results"][1]["value"].clone()
        }
    };
    assert_eq!(february("previous", "31d").await, json!(2.0));
    assert_eq!(february("previous", "30d").await, Value::Null);
    let linear = february("linear", "59d").await.as_f64().unwrap();
    assert!(
        (linear - (2.0 + 6.0 * 31.0 / 59.0)).abs() < 1e-9,
        "{linear}"
    );
    // Asked again with another max_gap: not the cached answer of the first.
    assert_eq!(february("linear", "58d").await, Value::Null);
    // A multi-field series' unfilled gap is an object of nulls.
    let body = query(
        &app,
        &format!("user_id={user}&fill=linear&max_gap=4w&series=session.urine.color&interval=month&start_time=2025-01-01&end_time=2025-03-31"),
    )
    .await;
    assert_eq!(
        values(&body),
        vec![
            json!({"b": 3.0, "g": 2.0, "r": 1.0}),
            json!({"b": null, "g": null, "r": null}),
            json!({"b": 5.0, "g": 4.0, "r": 3.0})
        ]
    );
}

#[actix_web::test]
async fn max_gap_without_previous_or_linear_or_unparseable_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    for params in [
        "max_gap=3h",
        "fill=none&max_gap=3h",
        "fill=null&max_gap=3h",
        "fill=zero&max_gap=3h",
        "fill=linear&max_gap=soon",
        "fill=previous&max_gap=0m",
        "fill=previous&max_gap=1.5h",
        "fill=linear&max_gap=36526d",
        "fill=linear&max_gap=",
    ] {
        app.assert_400_naming(
            &format!("/api/timeseries/?user_id={user}&{params}"),
            "max_gap",
        )
        .await;
    }
}
