//! Checks of the rollup path: the same query asked along it and along raw points, and a
//! server whose rollups the test refreshes by hand.

use super::app::TestApp;
use chrono::{TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use seriesd::domain::interval::Interval;
use seriesd::domain::query::{AggFunc, Fill, SeriesPatterns};
use seriesd::services::catalogue::Snapshot;
use seriesd::services::query::{self, TimeseriesQuery};
use uuid::Uuid;

/// Equal, numbers to a relative 1e-9 (sums may add up in another order).
fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

/// Asks `q` along the rollup path and the raw path, asserts the answers are the same, and
/// returns the rollup path's `source`.
pub fn assert_same_answers(
    conn: &mut diesel::PgConnection,
    snapshot: &Snapshot,
    q: &TimeseriesQuery,
) -> String {
    let mut q = q.clone();
    q.rollups = true;
    let with = query::run(conn, snapshot, &q).unwrap();
    q.rollups = false;
    let without = query::run(conn, snapshot, &q).unwrap();
    assert_eq!(without.metadata.source, "raw");
    let a = serde_json::to_value(&with.results).unwrap();
    let b = serde_json::to_value(&without.results).unwrap();
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), b.len(), "{q:?}\nrollup: {a:?}\nraw: {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["bucket"], y["bucket"], "{q:?}");
        assert_eq!(x["series"], y["series"], "{q:?}");
        assert!(
            close(&x["value"], &y["value"]),
            "{q:?}: {} vs {}",
            x["value"],
            y["value"]
        );
    }
    with.metadata.source.to_string()
}

/// A query of `user`'s `patterns` over the whole UTC day `day` (a date, `YYYY-MM-DD`).
pub fn one_day(
    user: Uuid,
    patterns: &str,
    interval: &str,
    day: &str,
    agg: AggFunc,
) -> TimeseriesQuery {
    let start: chrono::DateTime<Utc> = format!("{day}T00:00:00Z").parse().unwrap();
    TimeseriesQuery {
        user_id: user,
        session_id: None,
        patterns: SeriesPatterns::parse(patterns).unwrap(),
        interval: Interval::parse(interval).unwrap(),
        start,
        end: start + TimeDelta::days(1) - TimeDelta::microseconds(1),
        agg: Some(agg),
        tz: Tz::UTC,
        fill: Fill::None,
        max_gap: None,
        smooth: None,
        approx: false,
        rollups: true,
        engine: crate::helpers::engine(),
    }
}

/// A server whose rollup job waits an hour between runs (the test refreshes by hand),
/// that caches nothing (the same query is asked again after the rollups changed) and
/// whose new sessions append hourly rows for any hour (these tests write in 2025).
pub async fn uncached_app_refreshed_by_hand() -> TestApp {
    let app = TestApp::spawn_with(&[
        ("ROLLUP_PERIOD_MS", "3600000"),
        ("CACHE_TTL_SECS", "0"),
        ("REDIS_URL", ""),
        ("ROLLUP_APPEND_HOURS", "1000000"),
    ])
    .await;
    after_first_rollup_run(&app).await;
    app
}

/// Waits for the rollup job's run at start, so that it never takes hours the test
/// refreshes by hand (on a loaded machine it could start late).
pub async fn after_first_rollup_run(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut resp = app.client.get(app.url("/metrics")).send().await.unwrap();
        let text = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
        if text.contains("seriesd_job_runs_total{job=\"rollup-refresh\"} 1") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollup job never ran"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
