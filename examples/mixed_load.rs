//! Mixed load for `make bench-query` and `make bench-replicas`: CLIENTS connections for
//! SECONDS, 80% uncached queries and 20% 10-point ingests, while the rollup lag (and
//! the read replicas' lag, if any) is sampled from /metrics.
//!
//! usage: mixed_load HOST PORT SECONDS CLIENTS USER_BASE USERS [RATE]
//!
//! Without RATE each client sends its next request as soon as the last one is answered
//! (a saturating closed loop: the figures are the machine's capacity and the queueing it
//! causes). With RATE (requests/s over all clients) each client follows a fixed schedule,
//! and latency is measured from the request's scheduled time, so a slow answer also
//! counts against the requests it delayed (no coordinated omission); the runtime's timer
//! has millisecond resolution, so a paced request may leave up to ~1 ms after its time,
//! which its latency includes.
//!
//! Prints one JSON object; with MIXED_LOAD_TRACE=FILE, also writes every answered
//! request to FILE as `seconds-since-start kind latency-ms` (kind: the shape's index,
//! 3 for an ingest), to see when the slow ones happened. The API token is taken from SERIESD_TOKEN and sent as
//! `Authorization: Bearer` (/metrics needs none). Written in Rust, on one thread, so that
//! the client takes little of the CPU it shares with the server (benches/mixed_load.py,
//! its predecessor, took a sizeable part and added its own queueing behind the GIL).

use awc::Client;
use awc::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use seriesd::stress::{Histogram, SplitMix64};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error>;

/// The query shapes: series, interval, days back from now.
const SHAPES: [(&str, &str, i64); 3] = [
    ("session.gut_health_score", "month", 730),
    ("session.*", "month", 730),
    ("session.gut_health_score", "day", 90),
];

struct Args {
    base: String,
    seconds: f64,
    clients: u64,
    user_base: u128,
    users: u64,
    rate: Option<f64>,
}

fn parse_args() -> Result<Args, BoxError> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        return Err("usage: mixed_load HOST PORT SECONDS CLIENTS USER_BASE USERS [RATE]".into());
    }
    let user_base = match Uuid::parse_str(&a[4]) {
        Ok(u) => u.as_u128(),
        Err(_) => a[4].parse()?,
    };
    Ok(Args {
        base: format!("http://{}:{}", a[0], a[1]),
        seconds: a[2].parse()?,
        clients: a[3].parse::<u64>()?.max(1),
        user_base,
        users: a[5].parse::<u64>()?.max(1),
        rate: a.get(6).map(|r| r.parse()).transpose()?,
    })
}

#[derive(Default)]
struct Totals {
    queries: RefCell<Histogram>,
    /// The queries again, by shape (index into [`SHAPES`]).
    by_shape: [RefCell<Histogram>; 3],
    ingests: RefCell<Histogram>,
    errors: Cell<u64>,
    max_lag: Cell<Option<f64>>,
    lag_samples: Cell<u64>,
    /// The largest `seriesd_replica_lag_seconds` of any read replica sampled.
    max_replica_lag: Cell<Option<f64>>,
    /// With MIXED_LOAD_TRACE=FILE: every answered request as (sent, shape or 3 for an
    /// ingest, latency), written to FILE at the end.
    trace: RefCell<Vec<(Instant, usize, Duration)>>,
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A client's next request: the query's shape (index into [`SHAPES`]; `None` for an
/// ingest, a POST), its path, and its body (empty for a query).
fn next_request(
    rng: &mut SplitMix64,
    sessions: &mut SplitMix64,
    args: &Args,
    now: DateTime<Utc>,
) -> (Option<usize>, String, String) {
    let user = Uuid::from_u128(args.user_base + u128::from(rng.below(args.users)));
    if rng.below(10) < 8 {
        let shape = rng.below(3) as usize;
        let (series, interval, days) = SHAPES[shape];
        // A distinct end time per request: every query is a cache miss.
        let end = now + TimeDelta::microseconds(rng.below(1_000_000_000_000) as i64);
        let path = format!(
            "/api/timeseries/?user_id={user}&series={series}&interval={interval}&start_time={}&end_time={}",
            fmt(now - TimeDelta::days(days)),
            fmt(end)
        );
        (Some(shape), path, String::new())
    } else {
        let t = Utc::now();
        let data: Vec<String> = (0..10)
            .map(|k| {
                format!(
                    r#"{{"series":"session.gut_health_score","time":"{}","value":{{"value":{}}}}}"#,
                    fmt(t - TimeDelta::seconds(10 - k)),
                    rng.below(100) as f64 / 10.0
                )
            })
            .collect();
        let body = format!(
            r#"{{"user_id":"{user}","session_id":"{}","data":[{}]}}"#,
            sessions.uuid(),
            data.join(",")
        );
        (None, "/api/sessions/".to_string(), body)
    }
}

async fn worker(client: Client, args: Rc<Args>, totals: Rc<Totals>, seed: u64, stop: Instant) {
    let mut rng = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x6D69_7865);
    // Session ids differ from run to run (the rest of the sequence does not): with the
    // same ids, a second run's ingests were rewrites of the first run's sessions, a
    // heavier write than the new sessions this load stands for.
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut sessions = SplitMix64::new(rng.next_u64() ^ salt);
    let now = Utc::now();
    // Paced: this client's n-th request is due at begin + n * gap (clients offset).
    let gap = args
        .rate
        .map(|r| Duration::from_secs_f64(args.clients as f64 / r));
    let begin = Instant::now()
        + gap
            .unwrap_or_default()
            .mul_f64(seed as f64 / args.clients as f64);
    let mut n = 0u32;
    while Instant::now() < stop {
        let due = gap.map(|g| begin + g * n);
        n += 1;
        if let Some(due) = due {
            actix_web::rt::time::sleep_until(due.into()).await;
        }
        let (shape, path, body) = next_request(&mut rng, &mut sessions, &args, now);
        let query = shape.is_some();
        let url = format!("{}{path}", args.base);
        let sent = due.unwrap_or_else(Instant::now);
        let response = if query {
            client.get(url).send().await
        } else {
            client
                .post(url)
                .content_type("application/json")
                .send_body(body)
                .await
        };
        let ok = match response {
            Ok(mut r) => {
                let read = r.body().limit(1 << 24).await.is_ok();
                let want = if query {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                read && r.status() == want
            }
            Err(_) => false,
        };
        // Latencies of answered requests only; a failure is counted, and the client
        // pauses a little so that a failing server is not hammered in a tight loop.
        if ok {
            let hist = if query {
                &totals.queries
            } else {
                &totals.ingests
            };
            let took = sent.elapsed();
            hist.borrow_mut().record(took);
            if let Some(shape) = shape {
                totals.by_shape[shape].borrow_mut().record(took);
            }
            totals
                .trace
                .borrow_mut()
                .push((sent, shape.unwrap_or(3), took));
        } else {
            totals.errors.set(totals.errors.get() + 1);
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Samples `seriesd_rollup_lag_seconds` every half second until `until`.
async fn sampler(client: Client, base: String, totals: Rc<Totals>, until: Instant) {
    while Instant::now() < until {
        if let Ok(mut r) = client.get(format!("{base}/metrics")).send().await
            && let Ok(body) = r.body().limit(1 << 24).await
        {
            let text = String::from_utf8_lossy(&body);
            let lag = text
                .lines()
                .find_map(|l| l.strip_prefix("seriesd_rollup_lag_seconds "))
                .and_then(|v| v.trim().parse::<f64>().ok());
            if let Some(lag) = lag {
                let max = totals.max_lag.get().map_or(lag, |m| m.max(lag));
                totals.max_lag.set(Some(max));
                totals.lag_samples.set(totals.lag_samples.get() + 1);
            }
            let replica_lags = text
                .lines()
                .filter(|l| l.starts_with("seriesd_replica_lag_seconds{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
            for lag in replica_lags {
                let max = totals.max_replica_lag.get().map_or(lag, |m| m.max(lag));
                totals.max_replica_lag.set(Some(max));
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
}

fn main() -> Result<(), BoxError> {
    let args = Rc::new(parse_args()?);
    let totals = Rc::new(Totals::default());
    let seconds = args.seconds;
    actix_web::rt::System::new().block_on({
        let (args, totals) = (args.clone(), totals.clone());
        async move {
            let mut client = Client::builder()
                .connector(
                    awc::Connector::new()
                        .limit(args.clients as usize + 1)
                        .timeout(Duration::from_secs(10)),
                )
                .timeout(Duration::from_secs(60));
            if let Ok(token) = std::env::var("SERIESD_TOKEN") {
                client = client.add_default_header((
                    awc::http::header::AUTHORIZATION,
                    format!("Bearer {}", token.trim()),
                ));
            }
            let client = client.finish();
            let stop = Instant::now() + Duration::from_secs_f64(seconds);
            let mut tasks = vec![actix_web::rt::spawn(sampler(
                client.clone(),
                args.base.clone(),
                totals.clone(),
                stop + Duration::from_secs(3),
            ))];
            for i in 0..args.clients {
                tasks.push(actix_web::rt::spawn(worker(
                    client.clone(),
                    args.clone(),
                    totals.clone(),
                    i,
                    stop,
                )));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    });
    let q = totals.queries.borrow();
    let i = totals.ingests.borrow();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let out = serde_json::json!({
        "seconds": seconds, "clients": args.clients, "offered_per_s": args.rate,
        "queries": q.total(), "ingests": i.total(), "errors": totals.errors.get(),
        "query_p50_ms": round(q.quantile_ms(0.5)), "query_p99_ms": round(q.quantile_ms(0.99)),
        "ingest_p50_ms": round(i.quantile_ms(0.5)), "ingest_p99_ms": round(i.quantile_ms(0.99)),
        "max_rollup_lag_s": totals.max_lag.get().map(round), "lag_samples": totals.lag_samples.get(),
        "max_replica_lag_s": totals.max_replica_lag.get().map(round),
        "queries_per_s": round(q.total() as f64 / seconds),
        "ingest_points_per_s": round(i.total() as f64 * 10.0 / seconds),
        "query_p50_p99_ms_by_shape": totals.by_shape.iter().zip(SHAPES).map(|(h, (series, interval, days))| {
            let h = h.borrow();
            serde_json::json!({"shape": format!("{series} {interval} over {days} days"),
                               "p50": round(h.quantile_ms(0.5)), "p99": round(h.quantile_ms(0.99))})
        }).collect::<Vec<_>>(),
    });
    println!("{out}");
    if let Ok(path) = std::env::var("MIXED_LOAD_TRACE") {
        let trace = totals.trace.borrow();
        let first = trace.iter().map(|t| t.0).min();
        let lines: String = trace
            .iter()
            .map(|(sent, kind, took)| {
                let at = first.map_or(0.0, |f| sent.duration_since(f).as_secs_f64());
                format!("{at:.4} {kind} {:.3}\n", took.as_secs_f64() * 1000.0)
            })
            .collect();
        std::fs::write(path, lines)?;
    }
    Ok(())
}
