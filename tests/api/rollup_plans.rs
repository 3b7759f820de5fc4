//! Which path answers a query (rollups, raw points or both, as its metadata says), and
//! its plans run as prepared statements, exactly and in bounded number.

use crate::helpers::{assert_same_answers, count, session_body, uncached_app_refreshed_by_hand};
use chrono::{TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use seriesd::db::rollups;
use seriesd::domain::interval::Interval;
use seriesd::domain::query::{AggFunc, Fill, SeriesPatterns};
use seriesd::services::catalogue::Catalogue;
use seriesd::services::query::{self, TimeseriesQuery};
use uuid::Uuid;

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
    count(
        conn,
        "SELECT count(*) AS n FROM pg_prepared_statements
         WHERE statement ~ 'FROM rollup_(values_)?(hourly|daily|monthly)'",
    )
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
    let body = session_body(user, Uuid::new_v4(), data);
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
        max_gap: None,
        smooth: None,
        approx: false,
        rollups: true,
        engine: crate::helpers::engine(),
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
    // On Citus no combined statement is kept (see `Reads::statement`): each is planned
    // with its values, as Citus needs.
    let citus = crate::helpers::engine() == seriesd::db::maintenance::StorageMode::Citus;
    assert_eq!(prepared_plans(&mut conn), if citus { 0 } else { 1 });
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
    let most = if citus {
        0
    } else {
        seriesd::db::prepared::MAX_TEXTS as i64
    };
    assert_eq!(prepared_plans(&mut conn), most);
}
