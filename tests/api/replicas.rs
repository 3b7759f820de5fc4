//! Read replicas against real standbys: a throwaway primary cluster and a streaming hot
//! standby of it made with `pg_basebackup -R`, the service on both
//! (`DATABASE_REPLICA_URLS`). Reads are counted on the standby itself; a write read back
//! at once while the standby's replay is paused must be seen (a session deleted and a
//! user erased too); stopping the standby hard
//! under load must fail no request; a promoted standby must serve no reads, and a
//! rebuilt one must serve again.

use crate::helpers::{Cluster, client, count, send, session_body, settings_for, start_server};
use diesel::prelude::*;
use serde_json::{Value, json};
use seriesd::config::DatabaseUrl;
use std::time::{Duration, Instant};
use uuid::Uuid;

const DB: &str = "seriesd_replica";

/// A primary, a hot standby of it, and the service on both.
struct Fleet {
    primary: Cluster,
    standby: Cluster,
    address: String,
}

impl Fleet {
    /// Migrates and seeds the primary, makes the standby, starts the service (no cache,
    /// so that every read reaches a database) and waits until the standby serves.
    async fn start(extra: &[(&str, &str)]) -> Self {
        let primary = Cluster::create();
        let url = DatabaseUrl::parse(&primary.url(DB)).unwrap();
        seriesd::db::maintenance::migrate(&url).unwrap();
        let mut conn = PgConnection::establish(url.as_str()).unwrap();
        seriesd::services::seed::seed_metric_types(&mut conn).unwrap();
        drop(conn);
        let standby = Cluster::standby_of(&primary, &[]);
        let standby_url = standby.url(DB);
        let mut vars = vec![
            ("DATABASE_REPLICA_URLS", standby_url.as_str()),
            ("REDIS_URL", ""),
            ("CACHE_TTL_SECS", "0"),
            ("CACHE_TTL_RECENT_SECS", "0"),
            ("AUTH", "disabled"),
            ("REPLICA_RETRY_MAX_MS", "1000"),
        ];
        vars.extend_from_slice(extra);
        let address = start_server(settings_for(&url, &vars)).await;
        let fleet = Self {
            primary,
            standby,
            address,
        };
        fleet.wait_for_state("ok", Duration::from_secs(20)).await;
        fleet
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The standby's entry in `/health/`.
    async fn replica_health(&self) -> Value {
        let (status, body) = send(client().get(self.url("/health/")), None).await;
        assert_eq!(status, 200, "{body}");
        body["replicas"][0].clone()
    }

    async fn wait_for_state(&self, state: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let replica = self.replica_health().await;
            if replica["state"] == state {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the replica is not {state} after {within:?}: {replica}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A counter of `/metrics`, e.g. `seriesd_reads_total{server="primary"}`.
    async fn metric(&self, series: &str) -> f64 {
        let (status, body) = send(client().get(self.url("/metrics")), None).await;
        assert_eq!(status, 200);
        let text = body.as_str().unwrap().to_string();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{series} ")))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    async fn primary_reads(&self) -> f64 {
        self.metric("seriesd_reads_total{server=\"primary\"}").await
    }

    /// The standby as `/metrics` labels it.
    fn standby_name(&self) -> String {
        format!("127.0.0.1:{}/{DB}", self.standby.port)
    }

    async fn standby_reads(&self) -> f64 {
        let name = self.standby_name();
        self.metric(&format!("seriesd_reads_total{{server=\"{name}\"}}"))
            .await
    }

    /// Reads the standby passed on: it had not replayed the user's latest write.
    async fn standby_behind(&self) -> f64 {
        let name = self.standby_name();
        self.metric(&format!(
            "seriesd_replica_behind_total{{replica=\"{name}\"}}"
        ))
        .await
    }

    fn standby_conn(&self) -> PgConnection {
        PgConnection::establish(&self.standby.url(DB)).unwrap()
    }

    /// Waits until the standby holds `points` points of `user`.
    async fn wait_replayed(&self, user: Uuid, points: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut conn = self.standby_conn();
        let sql = format!("SELECT count(*) AS n FROM points WHERE user_id = '{user}'");
        while count(&mut conn, &sql) != points {
            assert!(Instant::now() < deadline, "the standby never replayed");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn post(&self, body: &Value) {
        let (status, resp) = send(
            client()
                .post(self.url("/api/sessions/"))
                .insert_header(("content-type", "application/json")),
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await;
        assert_eq!(status, 201, "{resp}");
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = send(client().get(self.url(path)), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
}

/// Session number `k` of a user: ten gut health scores, a minute apart, on day `k + 1` of
/// January 2025.
fn session(user: Uuid, session: Uuid, k: u32) -> Value {
    let data: Vec<Value> = (0..10)
        .map(|i| {
            json!({"series": "session.gut_health_score",
                   "time": format!("2025-01-{:02}T00:{i:02}:00Z", k + 1),
                   "value": {"value": i}})
        })
        .collect();
    session_body(user, session, data)
}

/// What each kind of read answers of `user` (and of `session`, one of theirs).
#[derive(Debug, PartialEq)]
struct Answers {
    /// Points counted by `GET /api/timeseries/`.
    counted: i64,
    /// The time of `GET /api/timeseries/latest/`'s point.
    latest: Value,
    /// Points of a JSON page and of a CSV export.
    page: usize,
    exported: usize,
    /// Sessions listed, and the points of `session`'s detail.
    sessions: i64,
    detail: i64,
}

impl Answers {
    /// `points` of the user in every read, the latest at `latest`, `sessions` of theirs,
    /// `detail` points in the session asked about.
    fn of(points: i64, latest: &str, sessions: i64, detail: i64) -> Self {
        Self {
            counted: points,
            latest: json!(latest),
            page: points as usize,
            exported: points as usize,
            sessions,
            detail,
        }
    }
}

/// The six reads a replica may answer: aggregates, latest, a page, an export, the
/// session list and a session's detail.
async fn read_all(fleet: &Fleet, user: Uuid, session: Uuid) -> Answers {
    let q = format!(
        "/api/timeseries/?user_id={user}&agg_func=count&interval=year&start_time=2025-01-01&end_time=2025-12-31"
    );
    let counted = fleet.get(&q).await["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap() as i64)
        .sum();
    let latest = fleet
        .get(&format!("/api/timeseries/latest/?user_id={user}"))
        .await["results"][0]["time"]
        .clone();
    let page = fleet
        .get(&format!(
            "/api/timeseries/points/?user_id={user}&limit=1000"
        ))
        .await["results"]
        .as_array()
        .unwrap()
        .len();
    let csv = fleet
        .get(&format!(
            "/api/timeseries/points/?user_id={user}&format=csv"
        ))
        .await;
    let exported = csv.as_str().unwrap().lines().count() - 1;
    let sessions = fleet.get(&format!("/api/sessions/?user_id={user}")).await["count"]
        .as_i64()
        .unwrap();
    let detail = fleet.get(&format!("/api/sessions/{session}/")).await["points"]
        .as_i64()
        .unwrap();
    Answers {
        counted,
        latest,
        page,
        exported,
        sessions,
        detail,
    }
}

/// Index and sequential scans of `user_generations` on a server: each read a replica
/// answers reads the user's generation there first.
fn generation_reads(conn: &mut PgConnection) -> i64 {
    count(
        conn,
        "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::bigint AS n
         FROM pg_stat_user_tables WHERE relname = 'user_generations'",
    )
}

#[actix_web::test]
async fn reads_go_to_the_standby_and_never_miss_an_acknowledged_write() {
    // The standby stays `ok` while its replay is paused: what keeps the reads right is
    // the generation each replica must show, not its lag.
    let fleet = Fleet::start(&[("REPLICA_MAX_LAG_MS", "600000")]).await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (s1, s2, s3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    fleet.post(&session(user, s1, 0)).await;
    fleet.post(&session(other, s3, 0)).await;
    fleet.wait_replayed(user, 10).await;
    fleet.wait_replayed(other, 10).await;

    // Served by the standby: counted by the service, and on the standby itself.
    let mut standby = fleet.standby_conn();
    let scans_before = generation_reads(&mut standby);
    let (primary_before, standby_before) =
        (fleet.primary_reads().await, fleet.standby_reads().await);
    let expected = Answers::of(10, "2025-01-01T00:09:00Z", 1, 10);
    for _ in 0..3 {
        assert_eq!(read_all(&fleet, user, s1).await, expected);
    }
    assert_eq!(fleet.primary_reads().await, primary_before);
    assert_eq!(fleet.standby_reads().await, standby_before + 18.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while generation_reads(&mut standby) < scans_before + 18 {
        assert!(Instant::now() < deadline, "the standby counted fewer reads");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }

    // The standby held behind: a write read back at once is seen, by every kind of read.
    diesel::sql_query("SELECT pg_wal_replay_pause()")
        .execute(&mut standby)
        .unwrap();
    let paused = "SELECT count(*) AS n FROM pg_get_wal_replay_pause_state() s WHERE s = 'paused'";
    while count(&mut standby, paused) == 0 {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let behind_before = fleet.standby_behind().await;
    fleet.post(&session(user, s2, 1)).await;
    let after_write = Answers::of(20, "2025-01-02T00:09:00Z", 2, 10);
    assert_eq!(read_all(&fleet, user, s2).await, after_write);
    // A session deleted, read back at once: gone from every answer.
    let (status, body) = send(
        client().delete(fleet.url(&format!("/api/sessions/{s1}/"))),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let after_delete = Answers::of(10, "2025-01-02T00:09:00Z", 1, 10);
    assert_eq!(read_all(&fleet, user, s2).await, after_delete);
    // The standby really was behind: it has neither change, and passed those reads on.
    let sql = format!("SELECT count(*) AS n FROM points WHERE user_id = '{user}'");
    assert_eq!(
        count(&mut standby, &sql),
        10,
        "the standby replayed the write"
    );
    let sql = format!("SELECT count(*) AS n FROM sessions WHERE session_id = '{s2}'");
    assert_eq!(count(&mut standby, &sql), 0);
    let behind = fleet.standby_behind().await;
    assert!(
        behind >= behind_before + 12.0,
        "{behind_before} -> {behind}"
    );
    // A user who wrote nothing since is still read from the paused standby.
    let standby_before = fleet.standby_reads().await;
    let q = format!("/api/timeseries/latest/?user_id={other}");
    assert_eq!(
        fleet.get(&q).await["results"][0]["time"],
        "2025-01-01T00:09:00Z"
    );
    assert_eq!(fleet.standby_reads().await, standby_before + 1.0);
    // That user erased, read back at once: nothing left, though the standby still has it.
    let (status, body) = send(
        client().delete(fleet.url(&format!("/api/users/{other}/"))),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fleet.get(&q).await["results"], json!([]));
    let sessions = fleet.get(&format!("/api/sessions/?user_id={other}")).await;
    assert_eq!(sessions["count"], 0, "{sessions}");
    let sql = format!("SELECT count(*) AS n FROM points WHERE user_id = '{other}'");
    assert_eq!(count(&mut standby, &sql), 10);

    // Replay resumed: the user's reads go back to the standby, with both changes.
    diesel::sql_query("SELECT pg_wal_replay_resume()")
        .execute(&mut standby)
        .unwrap();
    fleet.wait_replayed(user, 10).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let served = fleet.standby_reads().await;
        assert_eq!(read_all(&fleet, user, s2).await, after_delete);
        if fleet.standby_reads().await >= served + 6.0 {
            break;
        }
        assert!(Instant::now() < deadline, "reads never went back");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let health = fleet.replica_health().await;
    assert_eq!(health["state"], "ok", "{health}");
    assert!(health["lag_ms"].as_u64().is_some(), "{health}");
    assert!(health["reads"].as_u64().unwrap() >= 25, "{health}");
}

/// One client's load: its own user, whose points only it writes. Each round writes a
/// session (one in four) or reads the user's point count, which must equal what the
/// client has written so far. Returns the requests made and the failures, with why.
async fn client_load(address: String, user: Uuid, until: Instant) -> (u64, Vec<String>) {
    let http = client();
    let (mut requests, mut failures) = (0, Vec::new());
    let mut written = 0i64;
    let mut round = 0u32;
    while Instant::now() < until {
        round += 1;
        requests += 1;
        if round % 4 == 1 {
            let body = serde_json::to_vec(&session(user, Uuid::new_v4(), round % 28)).unwrap();
            let resp = http
                .post(format!("{address}/api/sessions/"))
                .insert_header(("content-type", "application/json"))
                .send_body(body)
                .await;
            match resp.map(|r| r.status().as_u16()) {
                Ok(201) => written += 10,
                other => failures.push(format!("write: {other:?}")),
            }
            continue;
        }
        let path = match round % 3 {
            0 => format!(
                "/api/timeseries/?user_id={user}&agg_func=count&interval=year&start_time=2025-01-01&end_time=2025-12-31"
            ),
            1 => format!("/api/timeseries/points/?user_id={user}&format=ndjson"),
            _ => format!("/api/timeseries/points/?user_id={user}&limit=10000"),
        };
        let (status, body) = match http.get(format!("{address}{path}")).send().await {
            Ok(mut resp) => (
                resp.status().as_u16(),
                resp.body().limit(64 << 20).await.ok().unwrap_or_default(),
            ),
            Err(e) => {
                failures.push(format!("{path}: {e}"));
                continue;
            }
        };
        let json = || serde_json::from_slice::<Value>(&body).ok();
        let seen = match (status, round % 3) {
            (200, 0) => json().and_then(|v| {
                let rows = v["results"].as_array()?.clone();
                Some(rows.iter().filter_map(|r| r["value"].as_f64()).sum::<f64>() as i64)
            }),
            (200, 1) => Some(
                body.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count() as i64,
            ),
            (200, _) => json().and_then(|v| Some(v["results"].as_array()?.len() as i64)),
            _ => None,
        };
        match seen {
            Some(n) if n == written => {}
            _ => failures.push(format!("{path}: {status}, saw {seen:?} of {written}")),
        }
    }
    (requests, failures)
}

#[actix_web::test]
async fn a_standby_stopped_hard_under_load_fails_no_request_and_is_picked_up_again() {
    // One token (authentication off) runs every client's exports.
    let fleet = Fleet::start(&[("MAX_EXPORTS_PER_TOKEN", "8")]).await;
    let until = Instant::now() + Duration::from_secs(7);
    let clients: Vec<_> = (0..6)
        .map(|_| actix_web::rt::spawn(client_load(fleet.address.clone(), Uuid::new_v4(), until)))
        .collect();
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let served_before_stop = fleet.standby_reads().await;
    assert!(served_before_stop > 0.0, "the standby served nothing");
    fleet.standby.stop_immediately();
    // Skipped within a second.
    let noticed = fleet.wait_for_state("down", Duration::from_secs(1)).await;
    let primary_after_stop = fleet.primary_reads().await;
    let (mut requests, mut failures) = (0, Vec::new());
    for c in clients {
        let (n, f) = c.await.unwrap();
        requests += n;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} failed: {failures:?}",
        failures.len()
    );
    assert!(requests > 100, "too little load: {requests}");
    assert!(
        fleet.primary_reads().await > primary_after_stop,
        "the primary answered nothing after the stop ({noticed:?} to notice)"
    );

    // Started again: checked with backoff, found, and reading from it again.
    fleet.standby.start();
    fleet.wait_for_state("ok", Duration::from_secs(10)).await;
    let user = Uuid::new_v4();
    let s = Uuid::new_v4();
    fleet.post(&session(user, s, 3)).await;
    fleet.wait_replayed(user, 10).await;
    let served = fleet.standby_reads().await;
    let q = format!("/api/sessions/{s}/");
    assert_eq!(fleet.get(&q).await["points"], 10);
    assert_eq!(fleet.standby_reads().await, served + 1.0);
}

#[actix_web::test]
async fn a_promoted_standby_serves_no_reads_and_a_rebuilt_one_serves_again() {
    let fleet = Fleet::start(&[]).await;
    let user = Uuid::new_v4();
    let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
    fleet.post(&session(user, s1, 0)).await;
    fleet.wait_replayed(user, 10).await;
    let latest = format!("/api/timeseries/latest/?user_id={user}");
    let served = fleet.standby_reads().await;
    assert_eq!(
        fleet.get(&latest).await["results"][0]["time"],
        "2025-01-01T00:09:00Z"
    );
    assert_eq!(fleet.standby_reads().await, served + 1.0);

    // Promoted, it takes writes of its own and follows the primary no more.
    fleet.standby.promote();
    fleet
        .wait_for_state("unusable", Duration::from_secs(5))
        .await;
    let health = fleet.replica_health().await;
    assert!(
        health["detail"].as_str().unwrap().contains("promoted"),
        "{health}"
    );
    fleet.post(&session(user, s2, 1)).await;
    let served = fleet.standby_reads().await;
    let primary = fleet.primary_reads().await;
    assert_eq!(
        fleet.get(&latest).await["results"][0]["time"],
        "2025-01-02T00:09:00Z"
    );
    assert_eq!(fleet.standby_reads().await, served);
    assert_eq!(fleet.primary_reads().await, primary + 1.0);

    // Rebuilt from the primary on the same address: picked up, with both sessions.
    fleet.standby.rebuild_from(&fleet.primary);
    fleet.wait_for_state("ok", Duration::from_secs(10)).await;
    let served = fleet.standby_reads().await;
    let sessions = fleet.get(&format!("/api/sessions/?user_id={user}")).await;
    assert_eq!(sessions["count"], 2, "{sessions}");
    assert_eq!(fleet.standby_reads().await, served + 1.0);
}
