//! Rollups (hourly, daily, monthly; numbers and whole values) answer exactly what raw
//! points answer, whatever was written, rewritten, deleted or dropped by retention and
//! whatever has been refreshed so far.

use crate::helpers::{TestApp, assert_same_answers, session_body};
use chrono::{TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use seriesd::db::rollups;
use seriesd::domain::interval::Interval;
use seriesd::domain::query::{AggFunc, Fill, SeriesPatterns};
use seriesd::domain::rollup_plan::{Pending, Plan};
use seriesd::services::catalogue::Catalogue;
use seriesd::services::query::TimeseriesQuery;
use seriesd::stress::SplitMix64;
use uuid::Uuid;

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
    let mut rng = SplitMix64::new(20_261_124);
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
            let body = session_body(user, session, data);
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
            let (status, _) = app.delete(&format!("/api/sessions/{session}/")).await;
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
                max_gap: None,
                smooth: None,
                approx: false,
                rollups: true,
                engine: crate::helpers::engine(),
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
    let body = session_body(user, Uuid::new_v4(), data);
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
            max_gap: None,
            smooth: None,
            approx: false,
            rollups: true,
            engine: crate::helpers::engine(),
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
