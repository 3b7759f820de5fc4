//! `GET /api/timeseries/points/?max_points=N`: each series cut down to at most N points,
//! LTTB over its number (the first numeric field by name of an `{r, g, b}` object, whole
//! points kept) or evenly spaced points for a string series, in JSON pages, CSV and
//! NDJSON, with what was left out in `metadata` and the headers.

use crate::helpers::{TestApp, add_series, ingest, send, time};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use seriesd::domain::downsample::MaxPoints;
use seriesd::domain::downsample::lttb::{self, Point};
use std::collections::BTreeMap;
use uuid::Uuid;

const N: usize = 10_000;
const MAX: usize = 100;
const GUT: &str = "session.gut_health_score";
const COLOR: &str = "session.urine.color";
const TEXT: &str = "session.example.series";

/// The values sent for point `i` of each series.
fn gut(i: usize) -> Value {
    // A wave with a spike and a dip LTTB must keep.
    let v = match i {
        3_333 => 1_000.0,
        6_666 => -1_000.0,
        _ => ((i * 37) % 101) as f64 / 4.0,
    };
    json!({"value": v})
}

fn color(i: usize) -> Value {
    json!({"r": i % 256, "g": (i * 7) % 256, "b": (i * 13) % 256})
}

fn text(i: usize) -> Value {
    json!({"value": format!("note {i}")})
}

/// Point `i`'s time: irregular steps, recent enough for the write window.
fn times(start: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    (0..N)
        .map(|i| start + Duration::seconds((i * 30 + i % 7) as i64))
        .collect()
}

/// The indices LTTB keeps of `(time, number)` points, `x` in microseconds since the
/// first, as the service computes them.
fn lttb_indices(times: &[DateTime<Utc>], ys: &[f64], max: usize) -> Vec<usize> {
    let points: Vec<Point> = times
        .iter()
        .zip(ys)
        .map(|(t, y)| Point {
            x: (t.timestamp_micros() - times[0].timestamp_micros()) as f64,
            y: *y,
        })
        .collect();
    lttb::select(&points, MaxPoints::try_from(max as u32).unwrap())
}

/// The indices evenly spaced points keep.
fn even_indices(n: usize, max: usize) -> Vec<usize> {
    (0..max).map(|i| i * (n - 1) / (max - 1)).collect()
}

/// `(time, value)` of each series, in order.
fn by_series(
    rows: &[(DateTime<Utc>, String, Value)],
) -> BTreeMap<String, Vec<(DateTime<Utc>, Value)>> {
    let mut m: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for (t, s, v) in rows {
        m.entry(s.clone()).or_default().push((*t, v.clone()));
    }
    m
}

/// The body and the downsampling headers of a `GET`.
async fn fetch(app: &TestApp, params: &str) -> (String, [Option<String>; 3]) {
    let mut resp = app
        .client
        .get(app.url(&format!("/api/timeseries/points/?{params}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{params}");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let headers = [
        header("x-downsampled"),
        header("x-points-total"),
        header("x-points-kept"),
    ];
    let body = resp.body().limit(64 * 1024 * 1024).await.unwrap();
    (String::from_utf8(body.to_vec()).unwrap(), headers)
}

/// Every page of a JSON read, following `next`: the rows and the first page's metadata.
async fn json_pages(app: &TestApp, params: &str) -> (Vec<(DateTime<Utc>, String, Value)>, Value) {
    let mut url = app.url(&format!("/api/timeseries/points/?{params}"));
    let mut rows = Vec::new();
    let mut metadata = None;
    loop {
        let (status, body) = send(app.client.get(&url), None).await;
        assert_eq!(status, 200, "{url}: {body}");
        metadata.get_or_insert_with(|| body["metadata"].clone());
        assert_eq!(
            Some(&body["metadata"]),
            metadata.as_ref(),
            "same on every page"
        );
        for r in body["results"].as_array().unwrap() {
            rows.push((
                time(r["time"].as_str().unwrap()),
                r["series"].as_str().unwrap().to_string(),
                r["value"].clone(),
            ));
        }
        match body["next"].as_str() {
            Some(next) => url = next.to_string(),
            None => return (rows, metadata.unwrap_or(Value::Null)),
        }
    }
}

#[actix_web::test]
async fn max_points_keeps_lttbs_points_first_and_last_in_every_format() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let start = (Utc::now() - Duration::days(10))
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let times = times(start);
    let mut data = Vec::with_capacity(3 * N);
    for (i, t) in times.iter().enumerate() {
        let t = t.to_rfc3339();
        data.push((GUT, t.clone(), gut(i)));
        data.push((COLOR, t.clone(), color(i)));
        data.push((TEXT, t, text(i)));
    }
    ingest(&app, user, Uuid::new_v4(), &data).await;
    // Another user's points stay out of the counts.
    ingest(
        &app,
        Uuid::new_v4(),
        Uuid::new_v4(),
        &[(GUT, times[5].to_rfc3339(), json!({"value": 1e6}))],
    )
    .await;

    // What each series should keep: LTTB over the number, over `b` for {r, g, b} (the
    // first numeric field by name), evenly spaced strings.
    let gut_y: Vec<f64> = (0..N).map(|i| gut(i)["value"].as_f64().unwrap()).collect();
    let b_y: Vec<f64> = (0..N).map(|i| ((i * 13) % 256) as f64).collect();
    let want: BTreeMap<String, Vec<(DateTime<Utc>, Value)>> = [
        (
            GUT,
            lttb_indices(&times, &gut_y, MAX),
            gut as fn(usize) -> Value,
        ),
        (COLOR, lttb_indices(&times, &b_y, MAX), color),
        (TEXT, even_indices(N, MAX), text),
    ]
    .into_iter()
    .map(|(s, idx, value)| {
        (
            s.to_string(),
            idx.into_iter().map(|i| (times[i], value(i))).collect(),
        )
    })
    .collect();
    for (s, points) in &want {
        assert_eq!(points.len(), MAX, "{s}");
        assert_eq!(points[0].0, times[0], "{s}: first kept");
        assert_eq!(points[MAX - 1].0, times[N - 1], "{s}: last kept");
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "{s}");
    }
    assert!(want[GUT].contains(&(times[3_333], gut(3_333))), "the spike");
    assert!(want[GUT].contains(&(times[6_666], gut(6_666))), "the dip");
    let headers = [
        Some("true".to_string()),
        Some((3 * N).to_string()),
        Some((3 * MAX).to_string()),
    ];

    // JSON, in one page, then in pages of 70 following `next`: the same points.
    let params = format!("user_id={user}&max_points={MAX}");
    let (body, got_headers) = fetch(&app, &format!("{params}&limit=10000")).await;
    assert_eq!(got_headers, headers);
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        page["metadata"],
        json!({"max_points": MAX, "downsampled": true, "points": 3 * N, "kept": 3 * MAX,
               "series": {
                   GUT: {"points": N, "kept": MAX, "method": "lttb"},
                   COLOR: {"points": N, "kept": MAX, "method": "lttb"},
                   TEXT: {"points": N, "kept": MAX, "method": "even"}}})
    );
    let (one_page, metadata) = json_pages(&app, &format!("{params}&limit=10000")).await;
    assert_eq!(metadata, page["metadata"]);
    let merged_times: Vec<DateTime<Utc>> = one_page.iter().map(|r| r.0).collect();
    assert!(merged_times.windows(2).all(|w| w[0] <= w[1]), "time order");
    assert_eq!(by_series(&one_page), want);
    let (paged, _) = json_pages(&app, &format!("{params}&limit=70")).await;
    assert_eq!(paged, one_page, "pages of 70");

    // CSV and NDJSON: the same points, in the same order, with the same headers.
    let (csv, got_headers) = fetch(&app, &format!("{params}&format=csv")).await;
    assert_eq!(got_headers, headers);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("time,series,session_id,value"));
    let csv_rows: Vec<(DateTime<Utc>, String, Value)> = lines
        .map(|l| {
            let mut f = l.splitn(4, ',');
            let t = time(f.next().unwrap());
            let s = f.next().unwrap().to_string();
            f.next();
            let v = f.next().unwrap();
            let v = v[1..v.len() - 1].replace("\"\"", "\"");
            (t, s, serde_json::from_str(&v).unwrap())
        })
        .collect();
    assert_eq!(csv_rows, one_page, "csv");
    let (nd, got_headers) = fetch(&app, &format!("{params}&format=ndjson")).await;
    assert_eq!(got_headers, headers);
    let nd_rows: Vec<(DateTime<Utc>, String, Value)> = nd
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                time(v["time"].as_str().unwrap()),
                v["series"].as_str().unwrap().to_string(),
                v["value"].clone(),
            )
        })
        .collect();
    assert_eq!(nd_rows, one_page, "ndjson");

    // A range within the data: its own first and last points, counted on their own.
    let (sub, metadata) = json_pages(
        &app,
        &format!(
            "user_id={user}&series={GUT}&max_points=10&start_time={}&end_time={}",
            times[1000].to_rfc3339().replace('+', "%2B"),
            times[1999].to_rfc3339().replace('+', "%2B"),
        ),
    )
    .await;
    assert_eq!(
        metadata["series"][GUT],
        json!({"points": 1000, "kept": 10, "method": "lttb"})
    );
    let sub_want: Vec<DateTime<Utc>> = lttb_indices(&times[1000..2000], &gut_y[1000..2000], 10)
        .into_iter()
        .map(|i| times[1000 + i])
        .collect();
    assert_eq!(sub.iter().map(|r| r.0).collect::<Vec<_>>(), sub_want);

    // No more points than max_points: all of them, and the answer says nothing was
    // dropped.
    let (body, got_headers) = fetch(
        &app,
        &format!("user_id={user}&max_points={N}&series={TEXT}"),
    )
    .await;
    assert_eq!(
        got_headers,
        [
            Some("false".into()),
            Some(N.to_string()),
            Some(N.to_string())
        ]
    );
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["metadata"]["downsampled"], false);
    // Without max_points: no metadata, no headers.
    let (body, got_headers) = fetch(&app, &format!("user_id={user}&limit=1")).await;
    assert_eq!(got_headers, [None, None, None]);
    assert!(body.starts_with(r#"{"results":["#), "{body}");
}

#[actix_web::test]
async fn a_point_without_a_number_counts_as_the_number_before_it() {
    let app = TestApp::spawn().await;
    add_series(&app, "lab.level", json!({"type": ["number", "null"]})).await;
    let user = Uuid::new_v4();
    let start = (Utc::now() - Duration::days(2))
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let n = 2_000;
    let times: Vec<DateTime<Utc>> = (0..n)
        .map(|i| start + Duration::seconds(i as i64))
        .collect();
    // Nulls first, every 10th, and a run of them after a spike.
    let value = |i: usize| match i {
        0..3 => Value::Null,
        1_000 => json!(500),
        1_001..1_050 => Value::Null,
        _ if i.is_multiple_of(10) => Value::Null,
        _ => json!((i % 17) as f64),
    };
    let data: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, t)| ("lab.level", t.to_rfc3339(), value(i)))
        .collect();
    ingest(&app, user, Uuid::new_v4(), &data).await;
    let mut last = 0.0;
    let ys: Vec<f64> = (0..n)
        .map(|i| {
            last = value(i).as_f64().unwrap_or(last);
            last
        })
        .collect();
    let want: Vec<(DateTime<Utc>, Value)> = lttb_indices(&times, &ys, 50)
        .into_iter()
        .map(|i| (times[i], value(i)))
        .collect();
    let (rows, metadata) = json_pages(&app, &format!("user_id={user}&max_points=50")).await;
    assert_eq!(by_series(&rows)["lab.level"], want);
    assert_eq!(metadata["series"]["lab.level"]["kept"], 50);
}

#[actix_web::test]
async fn bad_max_points_is_a_400_naming_it_in_every_format() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    for format in ["json", "csv", "ndjson"] {
        for bad in ["0", "2", "-3", "100001", "ten", "1.5", ""] {
            app.assert_400_naming(
                &format!("/api/timeseries/points/?user_id={user}&format={format}&max_points={bad}"),
                "max_points",
            )
            .await;
        }
        // The bounds themselves are fine, even with no points at all.
        for good in ["3", "100000"] {
            let (status, body) = app
                .get(&format!(
                    "/api/timeseries/points/?user_id={user}&format={format}&max_points={good}"
                ))
                .await;
            assert_eq!(status, 200, "{format} {good}: {body}");
        }
    }
}
