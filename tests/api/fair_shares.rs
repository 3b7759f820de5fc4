//! No tenant can hurt another: one token's exports and bulk loads are limited per token
//! (429 naming the setting), and heavy work of all tokens together holds at most
//! `HEAVY_CONNECTIONS` pooled connections, so `/health/` and other users' small requests
//! keep answering.

use crate::helpers::{
    SECOND, TestApp, assert_throttled, bulk_series, client_with, load_points, scored_session, send,
    time,
};
use awc::ClientResponse;
use diesel::connection::SimpleConnection;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A user with `n` points loaded straight into the database: an export of them is many
/// megabytes, more than the socket buffers between a server and a client that does not
/// read hold, so such an export stays running.
fn user_with_points(app: &TestApp, n: i64) -> Uuid {
    let user = Uuid::new_v4();
    let series = bulk_series(&mut app.conn());
    let sessions = [Uuid::new_v4(), Uuid::new_v4()];
    load_points(
        &app.db,
        user,
        sessions,
        series,
        time("2025-06-02T00:00:00Z"),
        SECOND,
        n,
    );
    user
}

/// A user with one session of two points, and a token of theirs.
async fn small_user(app: &TestApp) -> (Uuid, String) {
    let user = Uuid::new_v4();
    let (status, _) = app
        .post("/api/sessions/", &scored_session(user, Uuid::new_v4(), 1.0))
        .await;
    assert_eq!(status, 201);
    (user, app.user_token(user))
}

/// `count` exports of `user`'s points sent at once with `token`; the answers' heads, in
/// no particular order, bodies unread.
async fn exports_at_once(
    app: &TestApp,
    token: &str,
    user: Uuid,
    count: usize,
) -> Vec<ClientResponse> {
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let request = client_with(Some(token)).get(app.url(&format!(
                "/api/timeseries/points/?user_id={user}&format=csv"
            )));
            actix_web::rt::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

/// The median time `GET path` takes with `token`, over `n` requests; each must be a 200.
async fn median_latency(app: &TestApp, token: &str, path: &str, n: usize) -> Duration {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (status, body) = app.get_as(Some(token), path).await;
        took.push(started.elapsed());
        assert_eq!(status, 200, "{path}: {body}");
    }
    took.sort();
    took[n / 2]
}

#[actix_web::test]
async fn thirty_five_slow_exports_from_one_token_get_two_slots_and_hurt_no_one() {
    let app = TestApp::spawn().await;
    let attacker = user_with_points(&app, 200_000);
    let token = app.user_token(attacker);
    let (victim, victim_token) = small_user(&app).await;
    let latest = format!("/api/timeseries/latest/?user_id={victim}");
    let before = median_latency(&app, &victim_token, &latest, 15).await;

    // 35 exports at once from one token, none of them read: two run, the rest are told
    // which setting refused them.
    let mut answers = exports_at_once(&app, &token, attacker, 35).await;
    let mut running = Vec::new();
    for mut resp in answers.drain(..) {
        if resp.status() == 200 {
            running.push(resp);
        } else {
            assert_throttled(&mut resp, "MAX_EXPORTS_PER_TOKEN").await;
        }
    }
    assert_eq!(running.len(), 2);

    // Meanwhile the database is reachable and another user is answered about as fast.
    let (status, health) = app.get("/health/").await;
    assert_eq!(
        (status, &health["database"]),
        (200, &Value::from("ok")),
        "{health}"
    );
    let during = median_latency(&app, &victim_token, &latest, 15).await;
    println!("another user's latest points: median {before:?} before, {during:?} during");
    assert!(
        during < (before * 10).max(Duration::from_millis(500)),
        "{before:?} before, {during:?} during"
    );
    // Admins are held to the same limit, each token on its own.
    let admin_exports = exports_at_once(&app, &app.admin_token, attacker, 3).await;
    assert_eq!(
        admin_exports.iter().filter(|r| r.status() == 200).count(),
        2
    );
    drop(admin_exports);

    // The client leaves: its slots come back.
    drop(running);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = exports_at_once(&app, &token, attacker, 2).await;
        if again.iter().all(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the slots never came back");
        drop(again);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn heavy_work_holds_at_most_its_share_of_the_pool() {
    // A pool of 8: 3 for the ingest writers, 2 for heavy work, 3 left for the rest.
    let app = TestApp::spawn_with(&[
        ("HEAVY_CONNECTIONS", "2"),
        ("HEAVY_QUEUE_TIMEOUT_MS", "1500"),
        ("DB_POOL_TIMEOUT_MS", "2000"),
    ])
    .await;
    let exported = user_with_points(&app, 1000);
    let (victim, victim_token) = small_user(&app).await;
    // A query answered once, so that it is cached.
    let query =
        format!("/api/timeseries/?user_id={victim}&start_time=2024-12-01&end_time=2025-02-01");
    assert_eq!(app.get_as(Some(&victim_token), &query).await.0, 200);
    // Every export waits on a lock held elsewhere while it holds its connection: ten of
    // them, two from each of five tokens, would hold the whole pool.
    let mut holder = app.conn();
    // On Citus the lock reaches every shard, and its deadlock detector may cancel it
    // against the background jobs' locks: then it is taken again.
    for attempt in 1.. {
        match holder.batch_execute("BEGIN; LOCK TABLE points IN ACCESS EXCLUSIVE MODE") {
            Ok(()) => break,
            Err(e) if attempt < 5 && e.to_string().contains("deadlock") => {
                holder.batch_execute("ROLLBACK").unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    let url = app.url(&format!(
        "/api/timeseries/points/?user_id={exported}&format=ndjson"
    ));
    let mut exports = Vec::new();
    for _ in 0..5 {
        let token = app.user_token(exported);
        for _ in 0..2 {
            let request = client_with(Some(&token)).get(&url);
            exports.push(actix_web::rt::spawn(
                async move { send(request, None).await },
            ));
        }
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    // Health, a session list, a cached query and a new token's lookup answer at once.
    let started = Instant::now();
    let (status, health) = app.get("/health/").await;
    assert_eq!(
        (status, &health["database"]),
        (200, &Value::from("ok")),
        "{health}"
    );
    let sessions = format!("/api/sessions/?user_id={victim}");
    assert_eq!(app.get_as(Some(&victim_token), &sessions).await.0, 200);
    assert_eq!(app.get_as(Some(&victim_token), &query).await.0, 200);
    let newcomer = app.user_token(victim);
    assert_eq!(app.get_as(Some(&newcomer), &sessions).await.0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // The exports past the budget waited their turn, then were told why.
    actix_web::rt::time::sleep(Duration::from_millis(2000)).await;
    holder.batch_execute("ROLLBACK").unwrap();
    let mut statuses = Vec::new();
    for export in exports {
        let (status, body) = export.await.unwrap();
        if status == 503 {
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("HEAVY_CONNECTIONS"), "{detail}");
            assert!(detail.contains("HEAVY_QUEUE_TIMEOUT_MS"), "{detail}");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503, 503, 503, 503, 503, 503, 503]);
}

#[actix_web::test]
async fn one_bulk_load_at_a_time_per_token() {
    let app = TestApp::spawn().await;
    let (user, token) = small_user(&app).await;
    let line = |session: Uuid| {
        let mut line = serde_json::to_vec(&scored_session(user, session, 2.0)).unwrap();
        line.push(b'\n');
        line
    };
    // A load whose body keeps coming: the first line now, the second later (over a raw
    // connection, so that what is sent is on the wire at once).
    let (first_line, second_line) = (line(Uuid::new_v4()), line(Uuid::new_v4()));
    let head = format!(
        "POST /api/sessions/bulk/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        first_line.len() + second_line.len()
    );
    let address = app.address.trim_start_matches("http://").to_string();
    let open_first = move || {
        let (address, head, first_line) = (address.clone(), head.clone(), first_line.clone());
        actix_web::web::block(move || {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&first_line).unwrap();
            stream
        })
    };
    let mut first = open_first().await.unwrap();
    // Once the server runs it, the token's second load is refused; another token's runs.
    let bulk = |token: &str| client_with(Some(token)).post(app.url("/api/sessions/bulk/"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = loop {
        let resp = bulk(&token).send_body(line(Uuid::new_v4())).await.unwrap();
        if resp.status() == 429 {
            break resp;
        }
        assert_eq!(resp.status(), 200);
        assert!(Instant::now() < deadline, "the first load never started");
        // On a loaded machine one of these loads can reach the server first and turn the
        // first one away with its own 429: then the first is sent again.
        first.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        if matches!(std::io::Read::read(&mut first, &mut byte), Ok(n) if n > 0) {
            first = open_first().await.unwrap();
        } else {
            first.set_nonblocking(false).unwrap();
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_throttled(&mut refused, "MAX_BULK_LOADS_PER_TOKEN").await;
    let (other_user, other_token) = small_user(&app).await;
    let mut other = scored_session(other_user, Uuid::new_v4(), 3.0).to_string();
    other.push('\n');
    let (status, report) = send(bulk(&other_token), Some(other.into_bytes())).await;
    assert_eq!(
        (status, &report["accepted"]),
        (200, &Value::from(1)),
        "{report}"
    );
    // The first load ends; the token may load again.
    let answer = actix_web::web::block(move || {
        first.write_all(&second_line).unwrap();
        let mut answer = String::new();
        first.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"accepted\":2"), "{answer}");
    let (status, _) = send(bulk(&token), Some(line(Uuid::new_v4()))).await;
    assert_eq!(status, 200);
}
