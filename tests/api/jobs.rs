//! Background jobs: advisory locks across processes, retention, graceful shutdown.

use crate::helpers::{
    TestApp, TestDb, count, free_port, serve_command, session_body, sigterm, wait_for_port,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::json;
use seriesd::jobs::{self, Job};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The real binary serving `db` on a free port.
fn spawn_serve(db: &TestDb, extra: &[(&str, &str)]) -> (Child, u16) {
    let port = free_port();
    let mut cmd = serve_command(db, port);
    cmd.env("RUST_LOG", "warn")
        // Jobs and shutdown are the point here, not authentication.
        .env("AUTH", "disabled")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    wait_for_port(port, Duration::from_secs(20));
    (child, port)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_job_whose_lock_is_held_elsewhere_is_skipped() {
    let db = TestDb::create();
    let job = Job {
        name: "test-job",
        lock_key: 99_001,
        period: Duration::from_secs(60),
        run: Arc::new(|_| Ok("ran".to_string())),
        quiet: false,
    };
    let mut holder = db.conn();
    holder
        .batch_execute("SELECT pg_advisory_lock(99001)")
        .unwrap();
    let mut conn = db.conn();
    assert_eq!(jobs::run_once(&mut conn, &job).unwrap(), None);
    holder
        .batch_execute("SELECT pg_advisory_unlock(99001)")
        .unwrap();
    assert_eq!(
        jobs::run_once(&mut conn, &job).unwrap(),
        Some("ran".to_string())
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM job_runs WHERE job = 'test-job' AND ok"
        ),
        1
    );
}

#[derive(QueryableByName, Debug)]
struct Run {
    #[diesel(sql_type = diesel::sql_types::Text)]
    job: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    instance: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    started_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    finished_at: chrono::DateTime<chrono::Utc>,
}

#[test]
fn two_replicas_never_run_a_job_at_the_same_time_and_stop_cleanly() {
    let db = TestDb::create();
    let env = [("MAINTENANCE_PERIOD_SECS", "1"), ("RETENTION_WEEKS", "520")];
    let (mut a, _) = spawn_serve(&db, &env);
    let (mut b, _) = spawn_serve(&db, &env);
    let mut conn = db.conn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut conn, "SELECT count(*) AS n FROM job_runs") < 8 {
        assert!(Instant::now() < deadline, "jobs did not run");
        std::thread::sleep(Duration::from_millis(200));
    }
    sigterm(a.id());
    sigterm(b.id());
    assert!(wait_exit(&mut a, Duration::from_secs(15)).success());
    assert!(wait_exit(&mut b, Duration::from_secs(15)).success());
    let runs: Vec<Run> = diesel::sql_query(
        "SELECT job, instance, started_at, finished_at FROM job_runs ORDER BY job, started_at",
    )
    .load(&mut conn)
    .unwrap();
    let jobs: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.job.as_str()).collect();
    assert_eq!(
        jobs.into_iter().collect::<Vec<_>>(),
        vec!["partition-premake", "retention"]
    );
    for pair in runs.windows(2) {
        if pair[0].job == pair[1].job {
            assert!(
                pair[0].finished_at <= pair[1].started_at,
                "overlapping runs: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    let instances: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r.instance.as_str()).collect();
    assert!(!instances.is_empty());
}

#[actix_web::test]
async fn retention_drops_whole_old_weeks_and_their_cached_answers() {
    let app =
        TestApp::spawn_with(&[("RETENTION_WEEKS", "4"), ("MAINTENANCE_PERIOD_SECS", "1")]).await;
    let user = Uuid::new_v4();
    let now = chrono::Utc::now();
    let old = now - chrono::TimeDelta::weeks(10);
    let body = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": [
        {"series": "session.gut_health_score", "time": old.to_rfc3339(), "value": {"value": 1}},
        {"series": "session.gut_health_score", "time": now.to_rfc3339(), "value": {"value": 2}}
    ]});
    assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
    // A run may drop the old week between its creation and the insert (the write then
    // makes it again, and a later run drops it), or wait for the write and drop the week
    // with the point: the point is gone once a run that finished after the write was
    // acknowledged shows it gone.
    let posted = chrono::Utc::now();
    let old_range = format!(
        "/api/timeseries/?user_id={user}&start_time={}&end_time={}",
        (old - chrono::TimeDelta::days(1)).format("%Y-%m-%d"),
        (old + chrono::TimeDelta::days(1)).format("%Y-%m-%d")
    );
    let mut conn = app.conn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let dropped = format!(
        "SELECT count(*) AS n FROM job_runs WHERE job = 'retention' \
         AND summary LIKE 'dropped %' AND finished_at > '{}'",
        posted.to_rfc3339()
    );
    let users_points = format!("SELECT count(*) AS n FROM points WHERE user_id = '{user}'");
    loop {
        // Cached while the old week still exists...
        let (_, body) = app.get(&old_range).await;
        // (The job records its run once its transaction committed: on Citus the
        // coordinator shows the week gone a moment before every worker committed.)
        if count(&mut conn, &dropped) > 0 && count(&mut conn, &users_points) == 1 {
            break;
        }
        if count(&mut conn, "SELECT count(*) AS n FROM points") == 2 {
            assert_eq!(body["results"][0]["value"], json!(1.0), "{body}");
        }
        assert!(Instant::now() < deadline, "retention did not run");
        // Awaited, not slept: the jobs run on this test's runtime.
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and never served once the week is gone.
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM points"), 1);
    let (_, body) = app.get(&old_range).await;
    assert_eq!(body["results"], json!([]));
    assert_eq!(count(&mut conn, &users_points), 1);
}

#[actix_web::test]
async fn sigterm_during_a_large_ingest_completes_it() {
    let db = TestDb::create();
    let (mut child, port) = spawn_serve(&db, &[]);
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let start = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let data: Vec<serde_json::Value> = (0..200_000)
        .map(|i| json!({"series": "session.gut_health_score", "time": (start + chrono::TimeDelta::seconds(i)).to_rfc3339(), "value": {"value": i}}))
        .collect();
    let body = serde_json::to_vec(&session_body(user, sid, data)).unwrap();
    let client = crate::helpers::client();
    let request = client
        .post(format!("http://127.0.0.1:{port}/api/sessions/"))
        .send_body(body);
    let pid = child.id();
    let killer = actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
        sigterm(pid);
    });
    let result = request.await;
    killer.await.unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(40)).success());
    let stored = count(&mut db.conn(), "SELECT count(*) AS n FROM points");
    match result {
        Ok(resp) => {
            assert_eq!(resp.status().as_u16(), 201);
            assert_eq!(stored, 200_000);
        }
        // Refused before it started: nothing written.
        Err(_) => assert_eq!(stored, 0),
    }
}

/// Which of the seven tables the rollup job churns (the invalidation log and the rollup
/// tables) have been vacuumed, once `want` has been or `wait` has passed.
async fn vacuumed_rollup_tables(app: &TestApp, want: &str, wait: Duration) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        relname: String,
    }
    let mut conn = app.conn();
    let deadline = Instant::now() + wait;
    loop {
        let names: Vec<String> = diesel::sql_query(
            "SELECT relname::text FROM pg_stat_user_tables
             WHERE relname LIKE 'rollup\\_%' AND last_vacuum IS NOT NULL ORDER BY relname",
        )
        .load::<Name>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|n| n.relname)
        .collect();
        if names.iter().any(|n| n == want) || Instant::now() >= deadline {
            return names;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether autovacuum may vacuum behind the test's back (it is off on the test machine).
fn autovacuum_on(conn: &mut PgConnection) -> bool {
    count(
        conn,
        "SELECT (current_setting('autovacuum') = 'on')::int::int8 AS n",
    ) == 1
}

#[actix_web::test]
async fn the_vacuum_job_vacuums_the_rollup_tables_holding_enough_dead_rows() {
    let app = TestApp::spawn_with(&[("ROLLUP_VACUUM_SECS", "1")]).await;
    let mut conn = app.conn();
    // Its completed runs, from /metrics (a run that vacuums nothing leaves no job_runs row).
    let runs = || async {
        let mut resp = app.client.get(app.url("/metrics")).send().await.unwrap();
        let text = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("seriesd_job_runs_total{job=\"rollup-vacuum\"} "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs().await < 2 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(runs().await >= 2);
    let autovacuum = autovacuum_on(&mut conn);
    // Fresh tables: the job ran, and found nothing worth a vacuum.
    if !autovacuum {
        assert_eq!(
            vacuumed_rollup_tables(&app, "", Duration::ZERO).await,
            Vec::<String>::new()
        );
    }
    // 1,500 invalidations, which the rollup job takes: as many dead rows in the log.
    conn.batch_execute(
        "INSERT INTO rollup_invalidations (user_id, series_id, hour)
         SELECT gen_random_uuid(), 1, '2025-01-06T00:00:00Z'::timestamptz + k * interval '1 hour'
         FROM generate_series(1, 1500) k",
    )
    .unwrap();
    let vacuumed =
        vacuumed_rollup_tables(&app, "rollup_invalidations", Duration::from_secs(30)).await;
    assert!(
        vacuumed.iter().any(|n| n == "rollup_invalidations"),
        "{vacuumed:?}"
    );
    if !autovacuum {
        // The rollup tables, with no dead rows, were left alone.
        assert_eq!(vacuumed, ["rollup_invalidations"]);
    }
    // The rollup job takes them all (500 a batch, runs of ROLLUP_BUDGET_MS: on a loaded
    // machine the vacuum may come before its last batch).
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut conn, "SELECT count(*) AS n FROM rollup_invalidations") > 0 {
        assert!(
            Instant::now() < deadline,
            "the rollup job left invalidations"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn without_the_vacuum_job_a_vacuum_still_restores_the_statement_timeout() {
    // ROLLUP_VACUUM_SECS=0 leaves it to autovacuum.
    let app = TestApp::spawn_with(&[("ROLLUP_VACUUM_SECS", "0")]).await;
    let mut conn = app.conn();
    // Dead rows in one table, their count flushed to the statistics at once.
    conn.batch_execute(
        "INSERT INTO rollup_monthly
         SELECT gen_random_uuid(), 1, '', '2025-01-01', 1, 1, 1, 1, now(), 1, now(), 1
         FROM generate_series(1, 1500);
         DELETE FROM rollup_monthly;
         SELECT pg_stat_force_next_flush();",
    )
    .unwrap();
    conn.batch_execute("SELECT 1").unwrap();
    if !autovacuum_on(&mut conn) {
        assert_eq!(
            vacuumed_rollup_tables(&app, "", Duration::from_secs(2)).await,
            Vec::<String>::new()
        );
    }
    // The vacuum runs without the statement timeout, and the session gets its own back.
    conn.batch_execute("SET statement_timeout = 1234").unwrap();
    assert_eq!(
        seriesd::db::rollups::vacuum(&mut conn).unwrap(),
        ["rollup_monthly"]
    );
    let ms = "SELECT extract(epoch FROM current_setting('statement_timeout')::interval * 1000)::int8 AS n";
    assert_eq!(count(&mut conn, ms), 1234);
}

#[actix_web::test]
async fn retention_keeps_exactly_the_points_from_the_cutoffs_monday_on_every_engine() {
    let app = TestApp::spawn_with(&[("CACHE_TTL_SECS", "0"), ("REDIS_URL", "")]).await;
    let user = Uuid::new_v4();
    // Around Monday 2025-03-03 (the cutoff's week start) and Thursday 2025-02-27 (where
    // a TimescaleDB chunk starts).
    let times = [
        "2025-02-26T12:00:00Z",
        "2025-02-27T00:00:00Z",
        "2025-03-02T23:59:59.999999Z",
        "2025-03-03T00:00:00Z",
        "2025-03-05T12:00:00Z",
        "2025-03-20T00:00:00Z",
    ];
    let data: Vec<serde_json::Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"series": "session.gut_health_score", "time": t, "value": {"value": i}}))
        .collect();
    let body = json!({"user_id": user, "session_id": Uuid::new_v4(), "data": data});
    assert_eq!(app.post("/api/sessions/", &body).await.0, 201);
    let mut conn = app.conn();
    seriesd::db::rollups::refresh(&mut conn, 1000).unwrap();
    let cutoff = chrono::DateTime::parse_from_rfc3339("2025-03-05T12:00:00Z")
        .unwrap()
        .to_utc();
    let manager = seriesd::db::partitions::PartitionManager::new();
    seriesd::db::partitions::drop_older_than(&mut conn, &manager, cutoff).unwrap();
    #[derive(QueryableByName)]
    struct Time {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let kept: Vec<String> = diesel::sql_query(
        "SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') AS t FROM points ORDER BY time",
    )
    .load::<Time>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|r| r.t)
    .collect();
    assert_eq!(
        kept,
        [
            "2025-03-03T00:00:00",
            "2025-03-05T12:00:00",
            "2025-03-20T00:00:00"
        ]
    );
    // Queries over the month (rollups and raw points alike) see just those.
    seriesd::db::rollups::refresh(&mut conn, 1000).unwrap();
    let (status, body) = app
        .get(&format!(
            "/api/timeseries/?user_id={user}&interval=month&agg_func=count\
             &start_time=2025-02-01&end_time=2025-03-31"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let counts: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["bucket"].as_str().unwrap().to_string(),
                r["value"].clone(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("2025-03-01T00:00:00Z".to_string(), json!(3))],
        "{body}"
    );
}
