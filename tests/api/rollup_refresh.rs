//! The rollup job's refresh: a write committed while it recomputes an hour is counted
//! once, its sweep comes back to hours invalidated behind it, and a run goes on through
//! batches full of one hour's writes.

use crate::helpers::{
    assert_same_answers, count, one_day, session_body, uncached_app_refreshed_by_hand,
};
use diesel::connection::SimpleConnection;
use serde_json::{Value, json};
use seriesd::db::maintenance::StorageMode;
use seriesd::db::rollups;
use seriesd::domain::query::AggFunc;
use seriesd::services::catalogue::Catalogue;
use seriesd::services::query;
use uuid::Uuid;

#[actix_web::test]
async fn a_write_committed_while_the_job_recomputes_its_hour_is_counted_once() {
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
    // On Citus the job waits on a worker: every node's activity.
    let activity = match crate::helpers::engine() {
        StorageMode::Citus => "citus_stat_activity",
        _ => "pg_stat_activity",
    };
    let waiting = &format!(
        "SELECT count(*) AS n FROM {activity}
         WHERE datname = current_database() AND wait_event_type = 'Lock'"
    );
    for _ in 0..500 {
        if count(&mut conn, waiting) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Natively the job's one backend waits; on Citus its shard statement can also show
    // as waiting on the coordinator's shard lock, so more than one row may wait.
    assert!(count(&mut conn, waiting) >= 1, "the job never waited");
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

#[actix_web::test]
async fn the_job_sweep_reaches_hours_invalidated_behind_it() {
    let app = uncached_app_refreshed_by_hand().await;
    let user = Uuid::new_v4();
    let write = |points: &[(&str, f64)]| {
        let data: Vec<Value> = points
            .iter()
            .map(|(t, v)| json!({"series": "session.gut_health_score", "time": t, "value": {"value": v}}))
            .collect();
        session_body(user, Uuid::new_v4(), data)
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
        count(conn, "SELECT count(*) AS n FROM rollup_invalidations")
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
