//! Round trips to PostgreSQL per uncached query, counted on the wire: the server talks to
//! its database through a proxy here that reads the protocol's messages, and every
//! `Sync` (the end of an extended-protocol exchange) that ran a statement, or simple
//! `Query`, the server sends is one round trip. Preparing a statement (a `Parse` alone),
//! done once in a connection's life, is not counted.

use crate::helpers::{
    TestApp, TestDb, add_series, client_with, count, ingest, settings_for, start_server,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One round trip: the connection it went over, the statements it ran and the bytes of
/// the values bound to them.
#[derive(Debug, Clone)]
struct RoundTrip {
    conn: usize,
    sql: Vec<String>,
    binds: Vec<u8>,
    /// Whether it ran a statement (a `Bind`, or a simple `Query`), not only prepared one.
    runs: bool,
}

type Log = Arc<Mutex<Vec<RoundTrip>>>;

/// A TCP proxy in front of PostgreSQL that logs the round trips clients make.
struct Proxy {
    address: String,
    log: Log,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log: Log = Arc::default();
        let shared = log.clone();
        std::thread::spawn(move || {
            for (conn, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy(s2, c2));
                let log = shared.clone();
                std::thread::spawn(move || frontend(client, server, conn, log));
            }
        });
        Proxy { address, log }
    }

    /// The round trips logged from now on while `f` runs.
    async fn during<F: std::future::Future>(&self, f: F) -> (F::Output, Vec<RoundTrip>) {
        let from = self.log.lock().unwrap().len();
        let out = f.await;
        // The server answers after its last round trip: nothing of this request comes later.
        let log = self.log.lock().unwrap();
        (out, log[from..].to_vec())
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut chunk = [0u8; 65536];
    while let Ok(n) = from.read(&mut chunk) {
        if n == 0 || to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// A NUL-terminated string at the start of `b`, and what follows it.
fn cstr(b: &[u8]) -> (String, &[u8]) {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    (
        String::from_utf8_lossy(&b[..end]).into_owned(),
        b.get(end + 1..).unwrap_or_default(),
    )
}

/// Forwards what a client sends and logs its round trips.
fn frontend(mut from: TcpStream, mut to: TcpStream, conn: usize, log: Log) {
    let mut buf: Vec<u8> = Vec::new();
    let mut started = false;
    let mut prepared: HashMap<String, String> = HashMap::new();
    let (mut sql, mut binds): (Vec<String>, Vec<u8>) = (Vec::new(), Vec::new());
    let mut runs = false;
    let mut chunk = [0u8; 65536];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Logged before it is forwarded: an answer never comes before its round trip's
        // entry.
        loop {
            if !started {
                // The start-up message, after any SSL or GSS request: no type byte.
                if buf.len() < 8 {
                    break;
                }
                let len = u32::from_be_bytes(buf[0..4].try_into().unwrap()) as usize;
                if buf.len() < len {
                    break;
                }
                let code = u32::from_be_bytes(buf[4..8].try_into().unwrap());
                buf.drain(..len);
                started = code != 80_877_103 && code != 80_877_104;
                continue;
            }
            if buf.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize;
            if buf.len() < 1 + len {
                break;
            }
            let kind = buf[0];
            let body = buf[5..1 + len].to_vec();
            buf.drain(..1 + len);
            match kind {
                b'P' => {
                    let (name, rest) = cstr(&body);
                    let (query, _) = cstr(rest);
                    prepared.insert(name, query.clone());
                    sql.push(query);
                }
                b'B' => {
                    let (_portal, rest) = cstr(&body);
                    let (name, _) = cstr(rest);
                    if let Some(query) = prepared.get(&name).filter(|q| !sql.contains(q)) {
                        sql.push(query.clone());
                    }
                    binds.extend_from_slice(&body);
                    runs = true;
                }
                b'Q' => log.lock().unwrap().push(RoundTrip {
                    conn,
                    sql: vec![cstr(&body).0],
                    binds: Vec::new(),
                    runs: true,
                }),
                b'S' => log.lock().unwrap().push(RoundTrip {
                    conn,
                    sql: std::mem::take(&mut sql),
                    binds: std::mem::take(&mut binds),
                    runs: std::mem::take(&mut runs),
                }),
                _ => {}
            }
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// The round trips of a request about `user`: those on the connections that sent the
/// user's id meanwhile, but for the background jobs' (which take advisory locks).
fn of_user(all: &[RoundTrip], jobs: &HashSet<usize>, user: Uuid) -> Vec<RoundTrip> {
    let id = user.as_bytes();
    let conns: HashSet<usize> = all
        .iter()
        .filter(|r| r.binds.windows(id.len()).any(|w| w == id))
        .map(|r| r.conn)
        .filter(|c| !jobs.contains(c))
        .collect();
    all.iter()
        .filter(|r| r.runs && conns.contains(&r.conn))
        .cloned()
        .collect()
}

/// The connections of the background jobs: every run tries its job's advisory lock
/// (ingest takes transaction locks, `pg_advisory_xact_lock`, on request connections).
fn job_conns(log: &Log) -> HashSet<usize> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.sql.iter().any(|s| s.contains("pg_try_advisory_lock(")))
        .map(|r| r.conn)
        .collect()
}

/// The same database through the proxy (no TLS, which the proxy could not read).
fn proxied(db: &TestDb, proxy: &str) -> String {
    let url = db.url.as_str();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, rest) = rest.split_once('@').unwrap();
    let (_, rest) = rest.split_once('/').unwrap();
    let sep = if rest.contains('?') { '&' } else { '?' };
    format!("{scheme}://{userinfo}@{proxy}/{rest}{sep}sslmode=disable")
}

fn upstream(db: &TestDb) -> String {
    let rest = db.url.as_str().split_once('@').unwrap().1;
    rest.split('/').next().unwrap().to_string()
}

#[actix_web::test]
async fn an_uncached_query_of_any_shape_makes_at_most_two_round_trips() {
    let db = TestDb::create();
    let proxy = Proxy::start(upstream(&db));
    let url = proxied(&db, &proxy.address);
    // Few connections, so that a warm-up prepares every statement on the one that runs it.
    let settings = settings_for(
        &db.url,
        &[
            ("DATABASE_URL", url.as_str()),
            ("AUTH", "disabled"),
            ("DB_POOL_SIZE", "4"),
            ("QUERY_CONCURRENCY", "1"),
            ("INGEST_WRITERS", "1"),
        ],
    );
    let app = TestApp {
        address: start_server(settings).await,
        client: client_with(None),
        admin_token: String::new(),
        db,
    };
    add_series(
        &app,
        "session.rt_color",
        json!({"type": "object", "properties": {
        "r": {"type": "number"}, "g": {"type": "number"}, "b": {"type": "number"}}}),
    )
    .await;
    add_series(&app, "session.rt_note", json!({"type": "string"})).await;
    let user = Uuid::new_v4();
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
    let mut points = Vec::new();
    for i in 0..240 {
        let t = (start + chrono::TimeDelta::hours(i * 73)).to_rfc3339();
        points.push(("session.gut_health_score", t.clone(), json!({"value": i})));
        points.push((
            "session.rt_color",
            t.clone(),
            json!({"r": i, "g": 1, "b": 2}),
        ));
        points.push(("session.rt_note", t, json!(format!("note {i}"))));
    }
    ingest(&app, user, Uuid::new_v4(), &points).await;
    let session = Uuid::new_v4();
    ingest(
        &app,
        user,
        session,
        &[(
            "session.gut_health_score",
            "2025-06-01T10:00:00Z",
            json!({"value": 1}),
        )],
    )
    .await;
    let mut conn = app.conn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&mut conn, "SELECT count(*) AS n FROM rollup_invalidations") > 0 {
        assert!(Instant::now() < deadline, "the rollup job did not catch up");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    let shapes = [
        "series=session.gut_health_score&interval=month&start_time=2024-01-01",
        "series=session.*&interval=month&start_time=2024-01-01",
        "series=session.gut_health_score&interval=day&start_time=2025-04-01",
        "series=session.gut_health_score&agg_func=p99&approx=true&interval=month&start_time=2024-01-01",
        "series=session.rt_note&agg_func=count&interval=week&start_time=2024-01-01",
        "series=session.rt_color&agg_func=max&interval=day&start_time=2025-04-01",
        // Raw points: not whole hours, an exact percentile, one session.
        "series=session.*&interval=90m&start_time=2025-06-01",
        "series=session.gut_health_score&agg_func=median&interval=month&start_time=2024-01-01",
        &format!("series=session.*&session_id={session}&interval=hour&start_time=2025-06-01"),
    ];
    // Each end time is new, so that no answer comes from the cache.
    let mut minute = 0;
    let mut query = async |shape: &str| {
        minute += 1;
        let path = format!(
            "/api/timeseries/?user_id={user}&{shape}&end_time=2025-12-31T23:{:02}:00Z",
            minute % 60
        );
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        path
    };
    for shape in &shapes {
        // Seen twice, a statement is kept; the third run prepares it on the connection.
        for _ in 0..3 {
            query(shape).await;
        }
        let (path, log) = proxy.during(query(shape)).await;
        let trips = of_user(&log, &job_conns(&proxy.log), user);
        assert!(!trips.is_empty(), "{path}: the proxy saw no round trip");
        assert_at_most(2, &path, &trips);
    }

    // Hours awaiting the rollup job, read with the generation: still two.
    ingest(
        &app,
        user,
        Uuid::new_v4(),
        &[(
            "session.gut_health_score",
            "2025-03-03T03:00:00Z",
            json!({"value": 5}),
        )],
    )
    .await;
    let (path, log) = proxy.during(query(shapes[0])).await;
    let trips = of_user(&log, &job_conns(&proxy.log), user);
    assert_at_most(2, &path, &trips);
}

fn assert_at_most(most: usize, path: &str, trips: &[RoundTrip]) {
    eprintln!("{path}: {} round trips", trips.len());
    let listed: Vec<(usize, Vec<String>)> = trips
        .iter()
        .map(|t| {
            let sql = t
                .sql
                .iter()
                .map(|s| s.chars().take(100).collect())
                .collect();
            (t.conn, sql)
        })
        .collect();
    assert!(
        trips.len() <= most,
        "{path}: {} round trips (connection, statements): {listed:#?}",
        trips.len()
    );
}
