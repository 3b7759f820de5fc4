//! One tenant's data cannot hurt another: the write window bounds the partitions writes
//! make, one user's partitions stay out of every other user's plans, and data the rollup
//! job cannot roll up is set aside without stopping the job for anyone.

use crate::helpers::{TestApp, after_first_rollup_run, count, engine, ingest, session_body};
use chrono::{TimeDelta, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use seriesd::db::maintenance::StorageMode;
use seriesd::db::rollups;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn point(time: &str, score: f64) -> Value {
    json!({"series": "session.gut_health_score", "time": time, "value": {"value": score}})
}

#[actix_web::test]
async fn point_times_outside_the_write_window_are_refused_naming_the_setting() {
    let app = TestApp::spawn_with(&[
        ("WRITE_WINDOW_PAST_DAYS", "30"),
        ("WRITE_WINDOW_FUTURE_DAYS", "1"),
    ])
    .await;
    let user = Uuid::new_v4();
    let now = Utc::now();
    let at = |d: TimeDelta| (now + d).to_rfc3339();
    for (time, setting) in [
        ("1900-01-01T00:00:00Z".to_string(), "WRITE_WINDOW_PAST_DAYS"),
        (at(TimeDelta::days(-31)), "WRITE_WINDOW_PAST_DAYS"),
        (at(TimeDelta::days(3)), "WRITE_WINDOW_FUTURE_DAYS"),
    ] {
        let body = session_body(
            user,
            Uuid::new_v4(),
            json!([point(&at(TimeDelta::zero()), 1.0), point(&time, 2.0)]),
        );
        let (status, resp) = app.post("/api/sessions/", &body).await;
        assert_eq!(status, 400, "{time}: {resp}");
        let message = resp["data"][0].as_str().unwrap_or_default();
        assert!(message.contains(setting), "{time}: {resp}");
    }
    // Nothing of the refused sessions was written; times inside the window are fine.
    assert_eq!(
        count(&mut app.conn(), "SELECT count(*) AS n FROM points"),
        0
    );
    let body = session_body(
        user,
        Uuid::new_v4(),
        json!([
            point(&at(TimeDelta::days(-29)), 1.0),
            point(&at(TimeDelta::hours(20)), 2.0)
        ]),
    );
    let (status, resp) = app.post("/api/sessions/", &body).await;
    assert_eq!(status, 201, "{resp}");

    // A bulk load refuses such a line in its report, and keeps the others.
    let lines = [
        session_body(
            user,
            Uuid::new_v4(),
            json!([point(&at(TimeDelta::zero()), 3.0)]),
        ),
        session_body(
            user,
            Uuid::new_v4(),
            json!([point("1950-06-01T00:00:00Z", 4.0)]),
        ),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (status, report) = app
        .post_raw("/api/sessions/bulk/", lines.into_bytes())
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    assert_eq!(report["rejected"][0]["line"], 2, "{report}");
    let refused = report["rejected"][0]["errors"]["data"][0].to_string();
    assert!(refused.contains("WRITE_WINDOW_PAST_DAYS"), "{report}");
}

/// The median of `n` timings of `f`.
async fn median_ms<F, Fut>(n: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

/// The number of `points` partitions (or TimescaleDB chunks) a plan of `sql` reads: its
/// scan nodes.
fn partitions_in_plan(conn: &mut PgConnection, sql: &str) -> usize {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let lines: Vec<Line> = diesel::sql_query(format!("EXPLAIN (COSTS OFF) {sql}"))
        .load(conn)
        .unwrap();
    lines
        .iter()
        .filter(|l| l.line.contains("Scan") && l.line.contains(" on "))
        .count()
}

#[actix_web::test]
async fn one_users_hundreds_of_partitions_stay_out_of_another_users_reads() {
    if engine() == StorageMode::Citus {
        // A week's partition there is one table per shard, made by distributed DDL
        // (about a second each on this machine): 600 of them would take the test ten
        // minutes. Citus's own plans are checked by `engines::per_user_statements_*`.
        println!("skipped on Citus: 600 weekly partitions take too long to create there");
        return;
    }
    // An import window (the default would refuse 1990): the attacker's points, one a
    // week, make a partition each.
    let app = TestApp::spawn_with(&[("REDIS_URL", ""), ("CACHE_TTL_SECS", "0")]).await;
    let victim = Uuid::new_v4();
    let victim_session = Uuid::new_v4();
    ingest(
        &app,
        victim,
        victim_session,
        &[
            (
                "session.gut_health_score",
                "2025-01-01T00:00:00Z",
                json!({"value": 5}),
            ),
            (
                "session.gut_health_score",
                "2025-01-02T00:00:00Z",
                json!({"value": 6}),
            ),
        ],
    )
    .await;
    let reads = [
        format!("/api/timeseries/latest/?user_id={victim}"),
        format!("/api/timeseries/points/?user_id={victim}"),
        format!("/api/sessions/{victim_session}/"),
    ];
    let timed = |path: String| {
        let app = &app;
        move || {
            let path = path.clone();
            async move {
                let (status, body) = app.get(&path).await;
                assert_eq!(status, 200, "{path}: {body}");
            }
        }
    };
    let mut before = Vec::new();
    for path in &reads {
        before.push(median_ms(7, timed(path.clone())).await);
    }

    let attacker = Uuid::new_v4();
    let weeks = 600;
    let start = chrono::NaiveDate::from_ymd_opt(1990, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    for chunk in (0..weeks).collect::<Vec<i64>>().chunks(200) {
        let data: Vec<Value> = chunk
            .iter()
            .map(|w| point(&(start + TimeDelta::weeks(*w)).to_rfc3339(), *w as f64))
            .collect();
        let (status, resp) = app
            .post(
                "/api/sessions/",
                &session_body(attacker, Uuid::new_v4(), data),
            )
            .await;
        assert_eq!(status, 201, "{resp}");
    }
    let mut conn = app.conn();
    let partitions = count(
        &mut conn,
        "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'points'::regclass",
    );
    assert!(partitions >= weeks, "{partitions} partitions");

    // The victim's reads plan only the partitions of the victim's own span...
    let span = seriesd::db::generations::span(&mut conn, victim)
        .unwrap()
        .unwrap();
    let bounded = format!(
        "SELECT * FROM points WHERE user_id = '{victim}' AND time >= '{}' AND time <= '{}'",
        span.first.to_rfc3339(),
        span.last.to_rfc3339()
    );
    // (one week on native partitions; TimescaleDB's Thursday-aligned chunks split it)
    let planned = partitions_in_plan(&mut conn, &bounded);
    assert!((1..=2).contains(&planned), "{planned} partitions planned");
    // ...and answer as fast as before, within a small factor.
    for (path, before) in reads.iter().zip(before) {
        let after = median_ms(7, timed(path.clone())).await;
        println!("{path}: {before:.2} ms before, {after:.2} ms after");
        assert!(
            after < before * 5.0 + 20.0,
            "{path}: {before:.2} -> {after:.2} ms"
        );
    }
    // Concurrent reads of the attacker's own data do not exhaust the shared lock table
    // for everyone: each plans only the attacker's partitions, within the window.
    let latest = format!("/api/timeseries/latest/?user_id={attacker}");
    let answers = futures_util::future::join_all((0..8).map(|_| app.get(&latest))).await;
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app.get(&reads[0]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["value"], json!({"value": 6}));
}

#[actix_web::test]
async fn an_hour_the_rollup_job_cannot_refresh_is_set_aside_and_the_job_goes_on() {
    let app = TestApp::spawn_with(&[
        ("ROLLUP_PERIOD_MS", "3600000"),
        ("CACHE_TTL_SECS", "0"),
        ("REDIS_URL", ""),
    ])
    .await;
    after_first_rollup_run(&app).await;
    let (victim, attacker) = (Uuid::new_v4(), Uuid::new_v4());
    let hour = "2025-03-01T10";
    for user in [attacker, victim] {
        ingest(
            &app,
            user,
            Uuid::new_v4(),
            &[
                (
                    "session.gut_health_score",
                    format!("{hour}:00:00Z"),
                    json!({"value": 1}),
                ),
                (
                    "session.gut_health_score",
                    format!("{hour}:30:00Z"),
                    json!({"value": 2}),
                ),
            ],
        )
        .await;
    }
    // Stored before numbers were bounded: two values whose sum overflows float8.
    let mut conn = app.conn();
    diesel::sql_query(
        "UPDATE points SET num = 1.7976931348623157e308, value = '{\"value\": 1.7976931348623157e308}'
         WHERE user_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(attacker)
    .execute(&mut conn)
    .unwrap();

    // The job's run succeeds: the victim's hour is rolled up, the attacker's set aside.
    let refreshed = rollups::refresh_run(
        &mut conn,
        500,
        &mut Default::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(refreshed, 1);
    let pending = |conn: &mut PgConnection, user: Uuid| {
        count(
            conn,
            &format!("SELECT count(*) AS n FROM rollup_invalidations WHERE user_id = '{user}'"),
        )
    };
    assert_eq!(pending(&mut conn, victim), 0);
    assert_eq!(
        pending(&mut conn, attacker),
        1,
        "its hour is still read raw"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM rollup_failures WHERE attempts = 1"
        ),
        1
    );
    let (status, metrics) = {
        let mut resp = app.client.get(app.url("/metrics")).send().await.unwrap();
        (
            resp.status().as_u16(),
            String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap(),
        )
    };
    assert_eq!(status, 200);
    assert!(
        metrics.contains("seriesd_rollup_failed_hours 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("seriesd_rollup_lag_seconds 0"),
        "{metrics}"
    );

    // The attacker's sum is a 422 naming the cause; other aggregates and every answer
    // for the victim are as usual.
    let query = |user: Uuid, agg: &str| {
        format!(
            "/api/timeseries/?user_id={user}&series=session.gut_health_score&interval=hour\
             &agg_func={agg}&start_time={hour}:00:00Z&end_time={hour}:59:59Z"
        )
    };
    let (status, body) = app.get(&query(attacker, "sum")).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("double precision"),
        "{body}"
    );
    let (status, body) = app.get(&query(attacker, "count")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get(&query(victim, "sum")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["value"], json!(3.0), "{body}");

    // Retried once due, with a longer wait after each failure; the next run is quick.
    diesel::sql_query("UPDATE rollup_failures SET retry_at = now()")
        .execute(&mut conn)
        .unwrap();
    rollups::refresh_run(
        &mut conn,
        500,
        &mut Default::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM rollup_failures
             WHERE attempts = 2 AND retry_at > now() + interval '3 seconds'"
        ),
        1
    );
    // Once the data is fixed (deleted or rewritten), the retry goes through.
    diesel::sql_query("UPDATE points SET num = 1, value = '{\"value\": 1}' WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(attacker)
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("UPDATE rollup_failures SET retry_at = now()")
        .execute(&mut conn)
        .unwrap();
    assert_eq!(
        rollups::refresh_run(
            &mut conn,
            500,
            &mut Default::default(),
            Duration::from_secs(5)
        )
        .unwrap(),
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM rollup_failures"),
        0
    );
    assert_eq!(pending(&mut conn, attacker), 0);
}
