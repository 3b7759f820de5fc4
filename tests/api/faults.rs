//! Faults with real processes: a throwaway PostgreSQL cluster stopped with
//! `pg_ctl stop -m immediate` under ingest load, and a throwaway Redis killed under query
//! load. Nothing acknowledged may be lost, nothing may be half-written, and the service
//! must recover by itself.

use crate::helpers::{Cluster, client, free_port, send, session_body, settings_for, start_server};
use diesel::prelude::*;
use serde_json::{Value, json};
use seriesd::config::DatabaseUrl;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One posted session and how it was answered.
struct Posted {
    session: Uuid,
    status: u16,
    elapsed: Duration,
}

/// Session number `k`: ten points a second apart, from `10 k` seconds after three days
/// ago on (so that no two sessions share a time).
fn numbered_session(user: Uuid, session: Uuid, k: u64) -> Value {
    let base = chrono::Utc::now() - chrono::TimeDelta::days(3);
    let data: Vec<Value> = (0..10)
        .map(|i| {
            json!({"series": "session.gut_health_score",
                   "time": (base + chrono::TimeDelta::seconds((k * 10 + i) as i64)).to_rfc3339(),
                   "value": {"value": i}})
        })
        .collect();
    session_body(user, session, data)
}

#[actix_web::test]
async fn acknowledged_writes_survive_an_immediate_database_stop() {
    let cluster = Cluster::create();
    let url = DatabaseUrl::parse(&cluster.url("seriesd_fault")).unwrap();
    seriesd::db::maintenance::migrate(&url).unwrap();
    let mut conn = PgConnection::establish(url.as_str()).unwrap();
    seriesd::services::seed::seed_metric_types(&mut conn).unwrap();
    drop(conn);
    // Faults are the point here, not authentication.
    let settings = settings_for(
        &url,
        &[
            ("DB_POOL_TIMEOUT_MS", "1000"),
            ("REDIS_URL", ""),
            ("AUTH", "disabled"),
        ],
    );
    let address = start_server(settings).await;

    let user = Uuid::new_v4();
    let stop_at = Instant::now() + Duration::from_secs(12);
    let posted = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Posted>::new()));
    let mut clients = Vec::new();
    for c in 0..6u64 {
        let (address, posted) = (address.clone(), posted.clone());
        clients.push(actix_web::rt::spawn(async move {
            let http = client();
            let mut k = c * 1_000_000;
            while Instant::now() < stop_at {
                k += 1;
                let session = Uuid::new_v4();
                let body = serde_json::to_vec(&numbered_session(user, session, k)).unwrap();
                let started = Instant::now();
                let status = match http
                    .post(format!("{address}/api/sessions/"))
                    .send_body(body)
                    .await
                {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0,
                };
                posted.borrow_mut().push(Posted {
                    session,
                    status,
                    elapsed: started.elapsed(),
                });
                if status != 201 {
                    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    cluster.stop_immediately();
    // While it is down: 503s, quickly, and /health/ says so.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let (status, health) = send(client().get(format!("{address}/health/")), None).await;
    assert_eq!(status, 503, "{health}");
    cluster.start();
    for c in clients {
        c.await.unwrap();
    }

    // The service recovered by itself: a new write and /health/ succeed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = serde_json::to_vec(&numbered_session(user, Uuid::new_v4(), 9_999_999)).unwrap();
        let (status, _) = send(
            client().post(format!("{address}/api/sessions/")),
            Some(body),
        )
        .await;
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: last status {status}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        send(client().get(format!("{address}/health/")), None)
            .await
            .0,
        200
    );

    #[derive(QueryableByName)]
    struct PerSession {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        session_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = PgConnection::establish(url.as_str()).unwrap();
    let stored: std::collections::HashMap<Uuid, i64> =
        diesel::sql_query("SELECT session_id, count(*) AS n FROM points GROUP BY session_id")
            .load::<PerSession>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| (r.session_id, r.n))
            .collect();
    let posted = posted.borrow();
    let acknowledged = posted.iter().filter(|p| p.status == 201).count();
    let failed: Vec<&Posted> = posted.iter().filter(|p| p.status != 201).collect();
    assert!(acknowledged > 50, "too little load: {acknowledged}");
    assert!(
        !failed.is_empty(),
        "the stop caused no failure: the test proved nothing"
    );
    for p in posted.iter() {
        let n = stored.get(&p.session).copied().unwrap_or(0);
        if p.status == 201 {
            assert_eq!(n, 10, "acknowledged session {} lost points", p.session);
        } else {
            // Never half-written. (A commit whose answer the crash swallowed may be whole.)
            assert!(n == 0 || n == 10, "session {} half-written: {n}", p.session);
            assert!(p.status == 503 || p.status == 0, "status {}", p.status);
            assert!(
                p.elapsed < Duration::from_secs(10),
                "a failure took {:?}",
                p.elapsed
            );
        }
    }
    let ambiguous = failed
        .iter()
        .filter(|p| stored.contains_key(&p.session))
        .count();
    assert!(
        ambiguous <= 12,
        "{ambiguous} failed requests were stored whole"
    );
}

#[actix_web::test]
async fn queries_keep_answering_while_redis_dies_and_returns() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("seriesd-redis-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let spawn_redis = || -> Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut redis = spawn_redis();
    std::thread::sleep(Duration::from_millis(300));
    let db = crate::helpers::TestDb::create();
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let settings = settings_for(&db.url, &[("REDIS_URL", &redis_url), ("AUTH", "disabled")]);
    let address = start_server(settings).await;
    let user = Uuid::new_v4();
    let body = serde_json::to_vec(&numbered_session(user, Uuid::new_v4(), 1)).unwrap();
    assert_eq!(
        send(
            client().post(format!("{address}/api/sessions/")),
            Some(body)
        )
        .await
        .0,
        201
    );
    let path = format!("{address}/api/timeseries/?user_id={user}&interval=day");
    let mut hits = 0;
    for round in 0..60 {
        if round == 20 {
            redis.kill().unwrap();
            redis.wait().unwrap();
        }
        if round == 40 {
            redis = spawn_redis();
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut resp = client().get(&path).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "round {round}");
        let v: Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
        assert_eq!(v["results"][0]["value"], json!(4.5), "round {round}");
        if round >= 45 && resp.headers().get("X-Cache").is_some_and(|h| h == "HIT") {
            hits += 1;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // It reconnected by itself: answers come from Redis again.
    assert!(hits > 0, "never a cache hit after Redis came back");
    redis.kill().unwrap();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
