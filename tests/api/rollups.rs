//! Rollups (hourly, daily, monthly; numbers and whole values): the rollup path answers
//! exactly what raw points answer, whatever was written, rewritten, deleted or dropped by
//! retention and whatever has been refreshed so far.

use crate::helpers::TestApp;
use chrono::{TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use seriesd::db::rollups;
use seriesd::domain::interval::Interval;
use seriesd::domain::query::{AggFunc, Fill, SeriesPatterns};
use seriesd::domain::rollup_plan::{Pending, Plan};
use seriesd::services::catalogue::{Catalogue, Snapshot};
use seriesd::services::query::{self, TimeseriesQuery};
use uuid::Uuid;

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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
fn assert_same_answers(
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
fn one_day(user: Uuid, patterns: &str, interval: &str, day: &str, agg: AggFunc) -> TimeseriesQuery {
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
        smooth: None,
        rollups: true,
    }
}

#[actix_web::test]
async fn the_rollup_path_answers_exactly_what_raw_points_answer() {
    let users = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let origin = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    // The service's own job stays out of the way: this test refreshes by hand. New
    // sessions append their hourly rows in the second half of the span only (as if it
    // ended now): both ways of awaiting the job meet in one range.
    let append_hours = (Utc::now() - (origin + TimeDelta::days(60))).num_hours() + 1;
    let app = TestApp::spawn_with(&[
        ("ROLLUP_PERIOD_MS", "3600000"),
        ("ROLLUP_APPEND_HOURS", &append_hours.to_string()),
    ])
    .await;
    let mut conn = app.conn();
    // Four months, so that whole months fall inside month and quarter buckets.
    let span_secs = 120 * 86_400;
    let mut rng = Rng(20_261_124);
    let mut sessions: Vec<(Uuid, Uuid, Value)> = Vec::new();
    // Times already used: reused now and then, so that points of different sessions share
    // a time (first/last must break the tie the same way on both paths).
    let mut used_times: Vec<chrono::DateTime<Utc>> = Vec::new();
    let zones: [Tz; 3] = [
        Tz::UTC,
        "America/New_York".parse().unwrap(),
        "Asia/Kolkata".parse().unwrap(),
    ];
    let intervals = ["hour", "3h", "day", "week", "month", "5d", "30m", "quarter"];
    let aggs = [
        AggFunc::Avg,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Count,
        AggFunc::Sum,
        AggFunc::First,
        AggFunc::Last,
        AggFunc::Median,
    ];
    let mut compared = 0;
    let mut rollup_answers = 0;
    let mut month_plans = 0;
    let mut cursor = rollups::Cursor::default();
    for round in 0..4 {
        // New sessions, some late (far in the past of the span), some with duplicate times.
        for _ in 0..16 {
            let user = users[rng.below(3) as usize];
            let session = Uuid::new_v4();
            let base = origin + TimeDelta::seconds(rng.below(span_secs) as i64);
            let data: Vec<Value> = (0..(5 + rng.below(30)))
                .map(|_| {
                    let t = if !used_times.is_empty() && rng.below(5) == 0 {
                        used_times[rng.below(used_times.len() as u64) as usize]
                    } else {
                        base + TimeDelta::seconds(rng.below(6 * 3600) as i64 - 3 * 3600)
                    };
                    used_times.push(t);
                    match rng.below(3) {
                        0 => json!({"series": "session.gut_health_score", "time": t.to_rfc3339(), "value": {"value": rng.below(1000) as f64 / 7.0}}),
                        1 => json!({"series": "session.urine.color", "time": t.to_rfc3339(),
                               "value": {"r": rng.below(256), "g": rng.below(256), "b": rng.below(256)}}),
                        _ => json!({"series": "session.example.series", "time": t.to_rfc3339(),
                               "value": {"value": format!("s{}", rng.below(1000))}}),
                    }
                })
                .collect();
            let body = json!({"user_id": user, "session_id": session, "data": data});
            sessions.push((user, session, body));
        }
        // Every other round in one bulk request: one batch of many new sessions, whose
        // points at a shared time meet in one hour's appended rows (ties to break).
        let new = &sessions[sessions.len() - 16..];
        if round % 2 == 0 {
            let mut ndjson = Vec::new();
            for (_, _, body) in new {
                ndjson.extend(serde_json::to_vec(body).unwrap());
                ndjson.push(b'\n');
            }
            let (status, resp) = app.post_raw("/api/sessions/bulk/", ndjson).await;
            assert_eq!((status, &resp["rejected"]), (200, &json!([])), "{resp}");
        } else {
            for (_, _, body) in new {
                let (status, resp) = app.post("/api/sessions/", body).await;
                assert_eq!(status, 201, "{resp}");
            }
        }
        // Rewrites: an old session posted again with other values (last write wins).
        if round > 0 {
            let (_, _, body) = sessions[rng.below(sessions.len() as u64) as usize].clone();
            let mut body = body;
            for p in body["data"].as_array_mut().unwrap() {
                if p["series"] == "session.gut_health_score" {
                    p["value"] = json!({"value": rng.below(100)});
                }
            }
            assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
        }
        // Retractions: a session deleted.
        if round > 1 {
            let (_, session, _) = sessions.remove(rng.below(sessions.len() as u64) as usize);
            let (status, _) = crate::helpers::send(
                app.client
                    .delete(app.url(&format!("/api/sessions/{session}/"))),
                None,
            )
            .await;
            assert_eq!(status, 204);
        }
        // Refresh some of what is pending, not necessarily all.
        // (The job's way: a sweep in key order that resumes where it stopped.)
        let limit = [0i64, 50, 100_000, 100_000][rng.below(4) as usize];
        rollups::refresh_from(&mut conn, limit, &mut cursor).unwrap();

        let snapshot = Catalogue::new().reload(&mut conn).unwrap();
        for _ in 0..25 {
            let name = intervals[rng.below(intervals.len() as u64) as usize];
            let interval = Interval::parse(name).unwrap();
            // Month-sized buckets get ranges long enough to hold whole months.
            let long = name == "month" || name == "quarter";
            let start = origin + TimeDelta::seconds(rng.below(span_secs / 4) as i64);
            let start = if rng.below(3) == 0 {
                Interval::Fixed(86_400).floor(start, Tz::UTC)
            } else {
                start
            };
            let length = if long {
                span_secs / 2 + rng.below(span_secs / 2)
            } else {
                3600 + rng.below(span_secs / 2)
            };
            let end = start + TimeDelta::seconds(length as i64);
            let tz = zones[rng.below(3) as usize];
            let q = TimeseriesQuery {
                user_id: users[rng.below(3) as usize],
                session_id: None,
                patterns: SeriesPatterns::parse(
                    "session.gut_health_score,session.urine.color,session.example.series",
                )
                .unwrap(),
                interval,
                start,
                end,
                agg: Some(aggs[rng.below(aggs.len() as u64) as usize]),
                tz,
                fill: Fill::None,
                smooth: None,
                rollups: true,
            };
            let whole = Plan::new(q.interval, q.tz, q.start, q.end, &Pending::default());
            if !whole.months.is_empty() {
                month_plans += 1;
            }
            if assert_same_answers(&mut conn, &snapshot, &q) != "raw" {
                rollup_answers += 1;
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 100);
    assert!(
        rollup_answers >= 10,
        "the rollup path was rarely taken: {rollup_answers}"
    );
    assert!(
        month_plans >= 5,
        "whole months were rarely asked: {month_plans}"
    );
}

#[actix_web::test]
async fn retention_inside_a_month_keeps_the_month_exact() {
    let app = TestApp::spawn_with(&[("ROLLUP_PERIOD_MS", "3600000")]).await;
    let mut conn = app.conn();
    let user = Uuid::new_v4();
    // A point every 6 hours from 20 February to 10 April 2024.
    let from = Utc.with_ymd_and_hms(2024, 2, 20, 0, 0, 0).unwrap();
    let data: Vec<Value> = (0..200)
        .map(|i| {
            let t = from + TimeDelta::hours(6 * i);
            json!({"series": "session.gut_health_score", "time": t.to_rfc3339(), "value": {"value": i}})
        })
        .collect();
    let body = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": data});
    assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
    rollups::refresh(&mut conn, 100_000).unwrap();
    let snapshot = Catalogue::new().reload(&mut conn).unwrap();
    let ask = |conn: &mut diesel::PgConnection, agg: AggFunc| {
        let q = TimeseriesQuery {
            user_id: user,
            session_id: None,
            patterns: SeriesPatterns::parse("session.gut_health_score").unwrap(),
            interval: Interval::parse("month").unwrap(),
            start: Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2024, 4, 30, 23, 0, 0).unwrap(),
            agg: Some(agg),
            tz: Tz::UTC,
            fill: Fill::None,
            smooth: None,
            rollups: true,
        };
        assert_same_answers(conn, &snapshot, &q)
    };
    for agg in [AggFunc::Count, AggFunc::Sum, AggFunc::First] {
        assert_eq!(ask(&mut conn, agg), "rollup+raw");
    }
    // Retention drops the week of 4 March (a Monday) as it does: rollups forgotten and
    // the points deleted in one transaction.
    let (week, next) = (
        Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2024, 3, 11, 0, 0, 0).unwrap(),
    );
    {
        use diesel::{Connection, RunQueryDsl};
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            rollups::forget_range(conn, week, next)?;
            diesel::sql_query(format!(
                "DELETE FROM points WHERE user_id = '{user}' AND time >= '{}' AND time < '{}'",
                week.to_rfc3339(),
                next.to_rfc3339()
            ))
            .execute(conn)?;
            Ok(())
        })
        .unwrap();
    }
    // March awaits its recomputation (read by the day meanwhile), then is read whole.
    for agg in [AggFunc::Count, AggFunc::Sum, AggFunc::Last] {
        ask(&mut conn, agg);
    }
    assert_eq!(rollups::refresh(&mut conn, 100_000).unwrap(), 1);
    for agg in [AggFunc::Count, AggFunc::Sum, AggFunc::Min] {
        ask(&mut conn, agg);
    }
}

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
async fn a_write_committed_while_the_job_recomputes_its_hour_is_counted_once() {
    use diesel::RunQueryDsl;
    use diesel::connection::SimpleConnection;
    let app = uncached_app_refreshed_by_hand().await;
    let user = Uuid::new_v4();
    let session = |minute: u32| {
        json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
            {"series": "session.gut_health_score", "time": format!("2025-04-01T10:{minute:02}:00Z"), "value": {"value": 1}}
        ]})
    };
    assert_eq!(app.post("/api/sessions/", &session(1)).await.0, 201);
    // Hold the hour's rollup rows locked, so that the job stops at its delete of them,
    // after it has begun (the first write pending).
    let mut holder = app.conn();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM rollup_hourly WHERE user_id = '{user}' FOR UPDATE"
        ))
        .unwrap();
    let mut job_conn = app.conn();
    let job = std::thread::spawn(move || rollups::refresh(&mut job_conn, 1000));
    let mut conn = app.conn();
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    for _ in 0..500 {
        if diesel::sql_query(waiting)
            .get_result::<N>(&mut conn)
            .unwrap()
            .n
            > 0
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        diesel::sql_query(waiting)
            .get_result::<N>(&mut conn)
            .unwrap()
            .n,
        1
    );
    // A second write to the hour commits meanwhile.
    assert_eq!(app.post("/api/sessions/", &session(2)).await.0, 201);
    holder.batch_execute("ROLLBACK").unwrap();
    assert_eq!(job.join().unwrap().unwrap(), 1);
    // The job's recomputation holds the first write; the second one's appended rows
    // hold the second: two points, by both paths.
    let snapshot = Catalogue::new().reload(&mut conn).unwrap();
    let q = one_day(
        user,
        "session.gut_health_score",
        "day",
        "2025-04-01",
        AggFunc::Count,
    );
    assert_eq!(assert_same_answers(&mut conn, &snapshot, &q), "rollup");
    let r = query::run(&mut conn, &snapshot, &q).unwrap();
    assert_eq!(
        serde_json::to_value(&r.results).unwrap()[0]["value"],
        json!(2)
    );
    assert_eq!(rollups::refresh(&mut conn, 1000).unwrap(), 1);
    let r = query::run(&mut conn, &snapshot, &q).unwrap();
    assert_eq!(
        serde_json::to_value(&r.results).unwrap()[0]["value"],
        json!(2)
    );
}

/// A server whose rollup job waits an hour between runs (the test refreshes by hand),
/// that caches nothing (the same query is asked again after the rollups changed) and
/// whose new sessions append hourly rows for any hour (these tests write in 2025).
async fn uncached_app_refreshed_by_hand() -> TestApp {
    TestApp::spawn_with(&[
        ("ROLLUP_PERIOD_MS", "3600000"),
        ("CACHE_TTL_SECS", "0"),
        ("REDIS_URL", ""),
        ("ROLLUP_APPEND_HOURS", "1000000"),
    ])
    .await
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
        json!({"user_id": user, "session_id": Uuid::new_v4(), "data": data})
    };
    let rows = |conn: &mut diesel::PgConnection| {
        crate::helpers::count(
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

#[actix_web::test]
async fn the_job_sweep_reaches_hours_invalidated_behind_it() {
    let app = uncached_app_refreshed_by_hand().await;
    let user = Uuid::new_v4();
    let write = |points: &[(&str, f64)]| {
        let data: Vec<Value> = points
            .iter()
            .map(|(t, v)| json!({"series": "session.gut_health_score", "time": t, "value": {"value": v}}))
            .collect();
        json!({"user_id": user, "session_id": Uuid::new_v4(), "data": data})
    };
    let hours = [
        ("2025-01-05T10:00:00Z", 1.0),
        ("2025-01-05T11:00:00Z", 2.0),
        ("2025-01-05T12:00:00Z", 3.0),
        ("2025-01-05T13:00:00Z", 4.0),
    ];
    assert_eq!(app.post("/api/sessions/", &write(&hours)).await.0, 201);
    let mut conn = app.conn();
    let pending = |conn: &mut diesel::PgConnection| {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM rollup_invalidations")
            .get_result::<N>(conn)
            .unwrap()
            .n
    };
    let mut cursor = rollups::Cursor::default();
    assert_eq!(
        rollups::refresh_from(&mut conn, 2, &mut cursor)
            .unwrap()
            .hours,
        2
    );
    assert_eq!(pending(&mut conn), 2);
    // A late point in the first hour, which the sweep has passed.
    let late = write(&[("2025-01-05T10:30:00Z", 5.0)]);
    assert_eq!(app.post("/api/sessions/", &late).await.0, 201);
    assert_eq!(pending(&mut conn), 3);
    // The sweep goes on after its cursor, then wraps around to the late hour.
    assert_eq!(
        rollups::refresh_from(&mut conn, 2, &mut cursor)
            .unwrap()
            .hours,
        2
    );
    assert_eq!(
        rollups::refresh_from(&mut conn, 2, &mut cursor)
            .unwrap()
            .hours,
        1
    );
    assert_eq!(pending(&mut conn), 0);
    let (status, r) = app
        .get(&format!(
            "/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=day&start_time=2025-01-05&end_time=2025-01-05T23:59:59.999999Z"
        ))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["metadata"]["source"], "rollup");
    assert_eq!(r["results"][0]["value"], json!(3.0));
}

#[actix_web::test]
async fn metadata_says_which_path_answered() {
    let app = uncached_app_refreshed_by_hand().await;
    let user = Uuid::new_v4();
    let body = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
        {"series": "session.gut_health_score", "time": "2025-01-05T10:00:00Z", "value": {"value": 2}},
        {"series": "session.gut_health_score", "time": "2025-01-06T10:00:00Z", "value": {"value": 4}}
    ]});
    assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
    let path = |agg: &str, end: &str| {
        format!(
            "/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=day&agg_func={agg}&start_time=2025-01-05&end_time={end}"
        )
    };
    // Not refreshed yet: a new session's write appended its points' aggregates to the
    // hourly rollups, so its hours are read from them (their days by the hour).
    let (_, r) = app.get(&path("avg", "2025-01-06T23:59:59.999999Z")).await;
    assert_eq!(r["metadata"]["source"], "rollup");
    assert_eq!(r["results"][1]["value"], json!(4.0));
    // A rewrite (the session posted again, another value) leaves its hours to raw points
    // until the job has run.
    let mut rewrite = body.clone();
    rewrite["data"][1]["value"] = json!({"value": 8});
    assert_eq!(app.post("/api/sessions/", &rewrite).await.0, 201);
    let (_, r) = app.get(&path("avg", "2025-01-06T23:59:59.999999Z")).await;
    assert_eq!(r["metadata"]["source"], "rollup+raw");
    assert_eq!(r["results"][1]["value"], json!(8.0));
    assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
    let mut conn = app.conn();
    rollups::refresh(&mut conn, 1000).unwrap();
    let (_, r) = app.get(&path("avg", "2025-01-06T23:59:59.999999Z")).await;
    assert_eq!(r["metadata"]["source"], "rollup");
    assert_eq!(r["results"][1]["value"], json!(4.0));
    // A partial last bucket comes from raw points.
    let (_, r) = app.get(&path("sum", "2025-01-06T12:00:00Z")).await;
    assert_eq!(r["metadata"]["source"], "rollup+raw");
    // Medians are never read from rollups.
    let (_, r) = app
        .get(&path("median", "2025-01-06T23:59:59.999999Z"))
        .await;
    assert_eq!(r["metadata"]["source"], "raw");
    // A late point of a new session, in a refreshed day: in the answer at once, from the
    // hourly rows its write appended (the day's row is out of date until the next run).
    let late = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
        {"series": "session.gut_health_score", "time": "2025-01-05T11:00:00Z", "value": {"value": 6}}
    ]});
    assert_eq!(app.post("/api/sessions/", &late).await.0, 201);
    let (_, r) = app.get(&path("avg", "2025-01-06T23:59:59.999999Z")).await;
    assert_eq!(r["metadata"]["source"], "rollup");
    assert_eq!(r["results"][0]["value"], json!(4.0));
    // String series are rolled up too: first and last value and the count per bucket.
    let words = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
        {"series": "session.example.series", "time": "2025-01-05T10:00:00Z", "value": {"value": "a"}},
        {"series": "session.example.series", "time": "2025-01-05T13:00:00Z", "value": {"value": "b"}},
        {"series": "session.example.series", "time": "2025-01-06T09:00:00Z", "value": {"value": "c"}}
    ]});
    assert_eq!(app.post("/api/sessions/", &words).await.0, 201);
    rollups::refresh(&mut conn, 1000).unwrap();
    let words_path = |agg: &str| {
        format!(
            "/api/timeseries/?user_id={user}&series=session.example.series&interval=week&agg_func={agg}&start_time=2024-12-30&end_time=2025-01-12T23:59:59.999999Z"
        )
    };
    // 2025-01-05 is a Sunday: two weeks.
    for (agg, want) in [
        ("avg", json!([{"value": "a"}, {"value": "c"}])),
        ("last", json!([{"value": "b"}, {"value": "c"}])),
        ("count", json!([2, 1])),
    ] {
        let (_, r) = app.get(&words_path(agg)).await;
        assert_eq!(r["metadata"]["source"], "rollup", "{agg}: {r}");
        let values: Vec<Value> = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["value"].clone())
            .collect();
        assert_eq!(Value::Array(values), want, "{agg}: {r}");
    }
}

/// The rollup plans this connection holds as prepared statements.
fn prepared_plans(conn: &mut diesel::PgConnection) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements
         WHERE statement ~ 'FROM rollup_(values_)?(hourly|daily|monthly)'",
    )
    .get_result::<N>(conn)
    .unwrap()
    .n
}

#[actix_web::test]
async fn repeated_plans_run_prepared_exactly_and_their_number_is_bounded() {
    let app = uncached_app_refreshed_by_hand().await;
    let user = Uuid::new_v4();
    let data: Vec<Value> = (0..72)
        .map(|h| {
            let t = Utc.with_ymd_and_hms(2025, 3, 1, 0, 30, 0).unwrap() + TimeDelta::hours(h);
            json!({"series": "session.gut_health_score", "time": t.to_rfc3339(), "value": {"value": (h * 7 % 11) as f64}})
        })
        .collect();
    let body = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": data});
    assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
    let mut conn = app.conn();
    rollups::refresh(&mut conn, 1000).unwrap();
    let snapshot = Catalogue::new().reload(&mut conn).unwrap();
    let query = |start_hour: i64, interval: Interval, agg: AggFunc| TimeseriesQuery {
        user_id: user,
        session_id: None,
        patterns: SeriesPatterns::parse("session.gut_health_score").unwrap(),
        interval,
        // Partial edge hours: every plan has raw branches as well as rollup ones.
        start: Utc.with_ymd_and_hms(2025, 3, 1, 0, 10, 0).unwrap() + TimeDelta::hours(start_hour),
        end: Utc.with_ymd_and_hms(2025, 3, 2, 23, 50, 0).unwrap() + TimeDelta::hours(start_hour),
        agg: Some(agg),
        tz: Tz::UTC,
        fill: Fill::None,
        smooth: None,
        rollups: true,
    };
    // The same plan shape with other bound times and bucket widths (the width is bound
    // too), asked more often than PostgreSQL's five custom plans before it may switch
    // to a generic one: every answer is still the raw path's, and one statement serves.
    for start_hour in 0..21 {
        let width = Interval::Fixed([3, 6, 12][start_hour as usize % 3] * 3600);
        let source = assert_same_answers(
            &mut conn,
            &snapshot,
            &query(start_hour, width, AggFunc::Avg),
        );
        assert_eq!(source, "rollup+raw");
    }
    assert_eq!(prepared_plans(&mut conn), 1);
    // Many plan texts (aggregates x bucket units), each asked twice: the connection
    // keeps no more of them prepared than the process admits. (nextest runs each test
    // in its own process, so the admitted texts are this test's.)
    let aggs = [
        AggFunc::Avg,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Sum,
        AggFunc::First,
        AggFunc::Last,
        AggFunc::Count,
    ];
    let units = ["hour", "day", "week", "month", "quarter", "year"];
    assert!(aggs.len() * units.len() > seriesd::db::prepared::MAX_TEXTS);
    for agg in aggs {
        for unit in units {
            for _ in 0..2 {
                query::run(
                    &mut conn,
                    &snapshot,
                    &query(0, Interval::parse(unit).unwrap(), agg),
                )
                .unwrap();
            }
        }
    }
    assert_eq!(
        prepared_plans(&mut conn),
        seriesd::db::prepared::MAX_TEXTS as i64
    );
}

#[actix_web::test]
async fn a_job_run_goes_on_while_batches_are_full_of_one_hours_writes() {
    let app = uncached_app_refreshed_by_hand().await;
    let user = Uuid::new_v4();
    // Three hours, each written four times (four invalidation rows per hour).
    for hour in ["10", "11", "12"] {
        for k in 0..4 {
            let body = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
                {"series": "session.gut_health_score", "time": format!("2025-01-05T{hour}:0{k}:00Z"), "value": {"value": k}}
            ]});
            assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
        }
    }
    let mut conn = app.conn();
    // Batches of four rows: each holds one hour's writes, a full batch of one key.
    let hours = rollups::refresh_run(
        &mut conn,
        4,
        &mut rollups::Cursor::default(),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(hours, 3);
    let (status, r) = app
        .get(&format!(
            "/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=day&agg_func=count&start_time=2025-01-05&end_time=2025-01-05T23:59:59.999999Z"
        ))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["metadata"]["source"], "rollup");
    assert_eq!(r["results"][0]["value"], json!(12));
}
