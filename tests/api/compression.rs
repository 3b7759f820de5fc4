//! `COMPRESS_AFTER_WEEKS` on TimescaleDB: old weeks are compressed, every answer stays
//! the same, and writes, rewrites and deletions of points in compressed weeks work.
//! On the other engines there is nothing to compress (the setting is ignored with a
//! warning): the test runs where the suite runs on TimescaleDB (`make test-timescaledb`).

use crate::helpers::{TestApp, add_series, count, engine, ingest, settings_for, start_server};
use serde_json::{Value, json};
use seriesd::db::maintenance::StorageMode;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Every answer the test compares: aggregates read from rollups and from raw points,
/// the points themselves, the latest values and the sessions.
fn reads(user: Uuid, from: &str, to: &str) -> Vec<String> {
    let range = format!("user_id={user}&start_time={from}&end_time={to}");
    vec![
        format!("/api/timeseries/?{range}&series=session.*&interval=week"),
        format!("/api/timeseries/?{range}&series=session.*&interval=day&agg_func=count"),
        format!(
            "/api/timeseries/?{range}&series=session.gut_health_score&interval=week&agg_func=median"
        ),
        format!("/api/timeseries/?{range}&series=session.*&interval=90m&agg_func=max"),
        format!("/api/timeseries/points/?{range}&limit=10000"),
        format!("/api/timeseries/latest/?user_id={user}"),
        format!("/api/sessions/?user_id={user}"),
    ]
}

async fn answers(app: &TestApp, paths: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for path in paths {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        // What may differ between two runs of the same read: where it was read from, and
        // the time `latest` answers as of.
        let mut body = body;
        if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("source");
        }
        if let Some(m) = body.as_object_mut() {
            m.remove("as_of");
        }
        out.push(rounded(&body));
    }
    out
}

/// Where `a` and `b` first differ, and how.
fn difference(a: &Value, b: &Value, at: String) -> String {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .map(|(i, (p, q))| difference(p, q, format!("{at}[{i}]")))
            .unwrap_or(at),
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find(|(k, v)| y.get(*k) != Some(*v))
            .map(|(k, v)| difference(v, y.get(k).unwrap_or(&Value::Null), format!("{at}.{k}")))
            .unwrap_or_else(|| format!("{at}: keys differ")),
        _ => format!("{at}: {a} / {b}"),
    }
}

/// `v` with every fractional number to 12 significant digits: a sum over points read in
/// another order (a compressed chunk's) may differ in the last bits.
fn rounded(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            json!(format!("{x:.11e}"))
        }
        Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), rounded(v))).collect()),
        other => other.clone(),
    }
}

fn compressed_chunks(app: &TestApp) -> i64 {
    count(
        &mut app.conn(),
        "SELECT count(*) AS n FROM timescaledb_information.chunks
         WHERE hypertable_name = 'points' AND is_compressed",
    )
}

/// Waits until the compression job has run since `since` and left no chunk older than
/// its cutoff uncompressed or written to since (chunk status 8: partially compressed).
async fn wait_for_compression(app: &TestApp, weeks: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let pending = format!(
        "SELECT count(*) AS n FROM timescaledb_information.chunks c
         JOIN _timescaledb_catalog.chunk k
           ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
         WHERE c.hypertable_name = 'points' AND c.range_end <= now() - interval '{weeks} weeks'
           AND (NOT c.is_compressed OR k.status & 8 <> 0)"
    );
    loop {
        if compressed_chunks(app) > 0 && count(&mut app.conn(), &pending) == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the compression job did not compress the old weeks"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn old_weeks_are_compressed_and_answer_as_before_and_take_writes_and_deletions() {
    if engine() != StorageMode::Timescaledb {
        eprintln!("not TimescaleDB: nothing is compressed here (make test-timescaledb runs this)");
        return;
    }
    // No cache: every answer is computed from what is stored.
    let no_cache = [("CACHE_TTL_SECS", "0"), ("CACHE_TTL_RECENT_SECS", "0")];
    let app = TestApp::spawn_with(&no_cache).await;
    add_series(
        &app,
        "session.cmp_color",
        json!({"type": "object", "properties": {
        "r": {"type": "number"}, "g": {"type": "number"}}}),
    )
    .await;
    let user = Uuid::new_v4();
    let now = chrono::Utc::now();
    // Whole seconds: the range deleted below is compared with what SQL counts.
    let first = chrono::SubsecRound::trunc_subsecs(now - chrono::TimeDelta::days(70), 0);
    // Ten sessions over ten weeks, three series each, a point every five hours.
    let mut sessions = Vec::new();
    for s in 0..10 {
        let session = Uuid::new_v4();
        let mut points = Vec::new();
        for i in 0..33 {
            let t = (first + chrono::TimeDelta::hours(s * 165 + i * 5)).to_rfc3339();
            let v = s * 100 + i;
            points.push(("session.gut_health_score", t.clone(), json!({"value": v})));
            points.push(("session.cmp_color", t.clone(), json!({"r": v, "g": -v})));
            points.push((
                "session.urine.color",
                t,
                json!({"r": 1, "g": 2, "b": v % 256}),
            ));
        }
        ingest(&app, user, session, &points).await;
        sessions.push(session);
    }
    let (from, to) = (
        (first - chrono::TimeDelta::days(1))
            .format("%Y-%m-%d")
            .to_string(),
        (now + chrono::TimeDelta::days(1))
            .format("%Y-%m-%d")
            .to_string(),
    );
    let paths = reads(user, &from, &to);
    let before = answers(&app, &paths).await;
    assert_eq!(compressed_chunks(&app), 0);

    // A second server on the same database compresses the weeks older than three (the
    // reads and writes below go through the first; no answer is cached).
    let mut extra = no_cache.to_vec();
    extra.extend([
        ("COMPRESS_AFTER_WEEKS", "3"),
        ("MAINTENANCE_PERIOD_SECS", "1"),
    ]);
    start_server(settings_for(&app.db.url, &extra)).await;
    wait_for_compression(&app, 3).await;
    let uncompressed_recent = count(
        &mut app.conn(),
        "SELECT count(*) AS n FROM timescaledb_information.chunks
         WHERE hypertable_name = 'points' AND NOT is_compressed
           AND range_end > now() - interval '3 weeks'",
    );
    assert!(
        uncompressed_recent > 0,
        "the recent weeks are left as they are"
    );
    let compressed = answers(&app, &paths).await;
    for ((path, a), b) in paths.iter().zip(&before).zip(&compressed) {
        assert!(
            a == b,
            "{path}: changed by compression at {}",
            difference(a, b, String::new())
        );
    }

    // A late write, a rewrite, a session deleted and a range deleted, all in compressed
    // weeks.
    let late = (first + chrono::TimeDelta::hours(7)).to_rfc3339();
    ingest(
        &app,
        user,
        Uuid::new_v4(),
        &[(
            "session.gut_health_score",
            late.clone(),
            json!({"value": 12345}),
        )],
    )
    .await;
    let rewritten = (first + chrono::TimeDelta::hours(5)).to_rfc3339();
    ingest(
        &app,
        user,
        sessions[0],
        &[(
            "session.gut_health_score",
            rewritten.clone(),
            json!({"value": 777}),
        )],
    )
    .await;
    let (status, _) = app.delete(&format!("/api/sessions/{}/", sessions[1])).await;
    assert!(status == 200 || status == 204, "delete session: {status}");
    let gone_from = (first + chrono::TimeDelta::hours(2 * 165)).to_rfc3339();
    let gone_to = (first + chrono::TimeDelta::hours(2 * 165 + 50)).to_rfc3339();
    let in_range = count(
        &mut app.conn(),
        &format!(
            "SELECT count(*) AS n FROM points WHERE user_id = '{user}' AND time BETWEEN '{gone_from}' AND '{gone_to}'
             AND series_id = (SELECT id FROM metric_types WHERE series = 'session.cmp_color')"
        ),
    );
    assert!(in_range > 0);
    let (status, body) = app
        .delete(&format!(
            "/api/timeseries/?user_id={user}&series=session.cmp_color&start_time={}&end_time={}",
            urlencoding(&gone_from),
            urlencoding(&gone_to)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!(in_range), "{body}");

    let stored = |sql: &str| count(&mut app.conn(), sql);
    assert_eq!(
        stored(&format!(
            "SELECT count(*) AS n FROM points WHERE user_id = '{user}' AND num = 12345 AND time = '{late}'"
        )),
        1
    );
    assert_eq!(
        stored(&format!(
            "SELECT count(*) AS n FROM points WHERE user_id = '{user}' AND session_id = '{}' AND time = '{rewritten}' AND num = 777",
            sessions[0]
        )),
        1
    );
    assert_eq!(
        stored(&format!(
            "SELECT count(*) AS n FROM points WHERE session_id = '{}'",
            sessions[1]
        )),
        0
    );
    assert_eq!(
        stored(&format!(
            "SELECT count(*) AS n FROM points WHERE user_id = '{user}'"
        )),
        10 * 99 - 99 - in_range + 1
    );

    // The next runs compress the touched weeks again; both servers answer alike.
    wait_for_compression(&app, 3).await;
    let after = answers(&app, &paths).await;
    assert_ne!(after, before);
    let points = after[4]["results"].as_array().map_or(0, Vec::len);
    assert_eq!(points as i64, 10 * 99 - 99 - in_range + 1, "{}", after[4]);
    let rewritten_value = after[4]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["session_id"] == json!(sessions[0])
                && p["series"] == "session.gut_health_score"
                && p["time"].as_str().is_some_and(|t| {
                    chrono::DateTime::parse_from_rfc3339(t).ok()
                        == chrono::DateTime::parse_from_rfc3339(&rewritten).ok()
                })
        })
        .map(|p| p["value"].clone());
    assert_eq!(rewritten_value, Some(json!({"value": 777})));
}

fn urlencoding(t: &str) -> String {
    t.replace('+', "%2B").replace(':', "%3A")
}
