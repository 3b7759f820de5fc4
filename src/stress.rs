//! `seriesd stress`: the seed project's `stress_test` command. Generates sessions of
//! points and posts them to a running server's `POST /api/sessions/`, from a number of
//! concurrent tasks, then reports throughput and latency.
//!
//! Every session is generated from `(seed, index)` alone, when it is sent, so a run is
//! reproducible whatever the concurrency, and memory does not grow with the number of
//! sessions (latencies go into a fixed-size histogram).

use crate::error::BoxError;
use awc::Client;
use awc::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Options of `seriesd stress`.
#[derive(Debug, Clone, clap::Args)]
pub struct StressArgs {
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Number of users.
    #[arg(long, default_value_t = 1)]
    pub users: u64,
    /// Sessions per user.
    #[arg(long, default_value_t = 25_000)]
    pub sessions: u64,
    /// Points per session.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub points: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Session start times are spread uniformly over this many days ending now (less
    /// the time a session's points take, so that every point is in the past).
    #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub span_days: u64,
    /// Seed of the generator (random when absent; the seed used is printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Deterministic user ids: user i is `Uuid::from_u128(BASE + i)`. BASE is a UUID or
    /// an integer. Without it, user ids are derived from the seed.
    #[arg(long, value_parser = parse_uuid_base)]
    pub user_ids_from: Option<u128>,
    /// Seconds to wait for one answer before counting it as an error.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// API token sent as `Authorization: Bearer <token>` (an admin token, or a user
    /// token when every generated session is its user's). Best given through the
    /// environment, which keeps it out of `ps` output.
    #[arg(long, env = "SERIESD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// A UUID (`6f1c…`) or a plain integer, as a 128-bit number.
fn parse_uuid_base(s: &str) -> Result<u128, String> {
    if let Ok(u) = Uuid::parse_str(s) {
        return Ok(u.as_u128());
    }
    s.parse::<u128>()
        .map_err(|_| format!("expected a UUID or an integer, got {s:?}"))
}

/// SplitMix64: small, fast, and good enough to make test data.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// A random (version 4) UUID.
    pub fn uuid(&mut self) -> Uuid {
        let hi = u128::from(self.next_u64()) << 64;
        let bytes = (hi | u128::from(self.next_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// What is needed to generate any session of a run.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    users: u64,
    points: u64,
    user_base: Option<u128>,
    /// Start of the span (session starts are uniform in `[from, from + span)`).
    from: DateTime<Utc>,
    span_secs: u64,
}

const SERIES: [&str; 3] = [
    "session.gut_health_score",
    "session.urine.color",
    "session.urine.night_count",
];
const EXAMPLE_SERIES: &str = "session.example.series";

impl Generator {
    pub fn new(args: &StressArgs, seed: u64, now: DateTime<Utc>) -> Self {
        let span_secs = args.span_days * 86_400;
        Self {
            seed,
            users: args.users.max(1),
            points: args.points,
            user_base: args.user_ids_from,
            from: now - TimeDelta::seconds(span_secs as i64),
            span_secs,
        }
    }

    /// The id of user `i`.
    pub fn user_id(&self, i: u64) -> Uuid {
        match self.user_base {
            Some(base) => Uuid::from_u128(base.wrapping_add(u128::from(i))),
            None => {
                SplitMix64::new(self.seed ^ 0x5553_4552 ^ i.wrapping_mul(0xA24B_AED4_963E_E407))
                    .uuid()
            }
        }
    }

    /// The JSON body of session `k` (users take turns: session `k` is user `k % users`'s).
    pub fn session_body(&self, k: u64) -> String {
        let mut rng = SplitMix64::new(self.seed ^ k.wrapping_mul(0x9FB2_1C65_1E98_DF25));
        // Mix once more so that neighbouring k do not start from related states.
        rng.next_u64();
        let user_id = self.user_id(k % self.users);
        let session_id = rng.uuid();
        // Starts leave room for the session's points (at most 300 s apart) before now, so
        // that no point falls past the server's write window, however long the session.
        let room = self
            .span_secs
            .saturating_sub(self.points.saturating_mul(300))
            .max(1);
        let start = self.from + TimeDelta::seconds(rng.below(room) as i64);
        let mut body = String::with_capacity(120 + 80 * self.points as usize);
        let _ = write!(
            body,
            r#"{{"user_id":"{user_id}","session_id":"{session_id}","start_ts":"{}","data":["#,
            start.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let mut t = start;
        for j in 0..self.points {
            // Points a few seconds to a few minutes apart; times strictly increase, so no
            // two points of a session share a key.
            t += TimeDelta::seconds(rng.between(5, 300) as i64);
            if j > 0 {
                body.push(',');
            }
            let series = if rng.below(20) == 0 {
                EXAMPLE_SERIES
            } else {
                SERIES[(j % 3) as usize]
            };
            let _ = write!(
                body,
                r#"{{"series":"{series}","time":"{}","value":"#,
                t.format("%Y-%m-%dT%H:%M:%SZ")
            );
            match series {
                "session.gut_health_score" => {
                    let tenths = rng.below(101);
                    let _ = write!(body, r#"{{"value":{}.{}}}}}"#, tenths / 10, tenths % 10);
                }
                "session.urine.color" => {
                    let _ = write!(
                        body,
                        r#"{{"r":{},"g":{},"b":{}}}}}"#,
                        rng.below(256),
                        rng.below(256),
                        rng.below(256)
                    );
                }
                "session.urine.night_count" => {
                    let _ = write!(body, r#"{{"value":{}}}}}"#, rng.below(6));
                }
                _ => {
                    let _ = write!(body, r#"{{"value":"example value {}"}}}}"#, rng.below(1000));
                }
            }
        }
        body.push_str("]}");
        body
    }
}

/// Latencies in logarithmic buckets (1% wide) from 1 µs to about 20 minutes: bounded
/// memory whatever the number of requests.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const HIST_GROWTH: f64 = 1.01;
const HIST_BUCKETS: usize = 2_100;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; HIST_BUCKETS],
            total: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_secs_f64() * 1e6).max(1.0);
        let i = (us.ln() / HIST_GROWTH.ln()) as usize;
        self.counts[i.min(HIST_BUCKETS - 1)] += 1;
        self.total += 1;
    }

    /// How many latencies were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1) in milliseconds (the middle of its bucket); 0 if empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let lo = HIST_GROWTH.powi(i as i32);
                return lo * (1.0 + HIST_GROWTH) / 2.0 / 1000.0;
            }
        }
        0.0
    }
}

/// Progress shared by the tasks of a run (all on one thread).
#[derive(Default)]
struct Progress {
    next: Cell<u64>,
    done: Cell<u64>,
    points_ok: Cell<u64>,
    errors: Cell<u64>,
    latencies: RefCell<Histogram>,
}

const ERRORS_SHOWN: u64 = 5;

/// CPU seconds this process used so far (user + system), from `/proc/self/stat`.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based
    // from the state field); in USER_HZ, which is 100 on Linux.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs the load; `Err` when any post failed (or the run could not start).
pub fn run(args: StressArgs) -> Result<(), BoxError> {
    let seed = args.seed.unwrap_or_else(|| {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        SplitMix64::new(nanos as u64 ^ u64::from(std::process::id())).next_u64()
    });
    let total = args
        .users
        .checked_mul(args.sessions)
        .ok_or("too many sessions")?;
    let url = format!("{}/api/sessions/", args.url.trim_end_matches('/'));
    let generator = Rc::new(Generator::new(&args, seed, Utc::now()));
    eprintln!(
        "stress: {total} sessions of {} points ({} users x {}) to {url}, concurrency {}, seed {seed}",
        args.points, args.users, args.sessions, args.concurrency
    );
    let concurrency = args.concurrency;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let token = args.token.clone();
    if token.is_none() {
        eprintln!(
            "stress: no --token (or SERIESD_TOKEN): fine only if the server runs with AUTH=disabled"
        );
    }
    let cpu_before = own_cpu_seconds();

    let (progress, elapsed) = actix_web::rt::System::new().block_on(async move {
        let mut client = Client::builder()
            .connector(
                awc::Connector::new()
                    .limit(concurrency as usize)
                    .timeout(Duration::from_secs(10)),
            )
            .timeout(timeout);
        if let Some(token) = &token {
            client = client.add_default_header((
                awc::http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            ));
        }
        let client = client.finish();
        let progress = Rc::new(Progress::default());
        let started = Instant::now();

        let ticker = {
            let progress = progress.clone();
            let points = args.points;
            actix_web::rt::spawn(async move {
                let mut last_done_points = 0u64;
                let mut last = Instant::now();
                let mut interval = actix_web::rt::time::interval(Duration::from_secs(1));
                interval.tick().await;
                loop {
                    interval.tick().await;
                    let done = progress.done.get();
                    let points_ok = progress.points_ok.get();
                    let dt = last.elapsed().as_secs_f64().max(1e-9);
                    let all = started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!(
                        "stress: {done}/{total} sessions, {} points, {:.0} points/s now, {:.0} points/s overall, {} errors",
                        done * points,
                        (points_ok - last_done_points) as f64 / dt,
                        points_ok as f64 / all,
                        progress.errors.get()
                    );
                    last_done_points = points_ok;
                    last = Instant::now();
                }
            })
        };

        let mut workers = Vec::with_capacity(concurrency as usize);
        for _ in 0..concurrency.min(total.max(1)) {
            let client = client.clone();
            let progress = progress.clone();
            let generator = generator.clone();
            let url = url.clone();
            workers.push(actix_web::rt::spawn(async move {
                loop {
                    let k = progress.next.get();
                    if k >= total {
                        break;
                    }
                    progress.next.set(k + 1);
                    let body = generator.session_body(k);
                    let sent = Instant::now();
                    let outcome = match client
                        .post(url.as_str())
                        .content_type("application/json")
                        .send_body(body)
                        .await
                    {
                        Ok(mut resp) => {
                            let status = resp.status();
                            let text = resp.body().limit(1 << 20).await;
                            if status == StatusCode::CREATED {
                                Ok(())
                            } else {
                                let text = text
                                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                                    .unwrap_or_else(|e| format!("(body unreadable: {e})"));
                                Err(format!("HTTP {status}: {text}"))
                            }
                        }
                        Err(e) => Err(format!("request failed: {e}")),
                    };
                    progress.latencies.borrow_mut().record(sent.elapsed());
                    progress.done.set(progress.done.get() + 1);
                    match outcome {
                        Ok(()) => progress
                            .points_ok
                            .set(progress.points_ok.get() + generator.points),
                        Err(msg) => {
                            let n = progress.errors.get() + 1;
                            progress.errors.set(n);
                            if n <= ERRORS_SHOWN {
                                let shown: String = msg.chars().take(500).collect();
                                eprintln!("stress: session {k}: {shown}");
                            }
                        }
                    }
                }
            }));
        }
        for w in workers {
            if let Err(e) = w.await {
                eprintln!("stress: a worker task failed: {e}");
                progress.errors.set(progress.errors.get() + 1);
            }
        }
        let elapsed = started.elapsed();
        ticker.abort();
        (progress, elapsed)
    });

    let seconds = elapsed.as_secs_f64();
    let sessions = progress.done.get();
    let points = progress.points_ok.get();
    let errors = progress.errors.get();
    let latencies = progress.latencies.borrow();
    let points_per_sec = if seconds > 0.0 {
        points as f64 / seconds
    } else {
        0.0
    };
    let p50 = latencies.quantile_ms(0.50);
    let p99 = latencies.quantile_ms(0.99);
    let client_cpu = match (cpu_before, own_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    println!(
        "stress: {points} points in {sessions} sessions in {seconds:.2} s: {points_per_sec:.0} points/s, \
         {:.0} sessions/s, p50 {p50:.1} ms, p99 {p99:.1} ms, {errors} errors, client CPU {client_cpu:.1} s",
        sessions as f64 / seconds.max(1e-9)
    );
    let summary = serde_json::json!({
        "points": points,
        "sessions": sessions,
        "seconds": round3(seconds),
        "points_per_sec": round3(points_per_sec),
        "errors": errors,
        "p50_ms": round3(p50),
        "p99_ms": round3(p99),
        "client_cpu_seconds": if client_cpu.is_finite() { Some(round3(client_cpu)) } else { None },
        "seed": seed,
    });
    println!("{summary}");
    if errors > 0 {
        return Err(format!("{errors} of {sessions} session posts failed").into());
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StressArgs,
    }

    fn args(extra: &[&str]) -> StressArgs {
        let mut v = vec!["stress"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).args
    }

    #[test]
    fn defaults_are_the_seed_commands() {
        let a = args(&[]);
        assert_eq!(a.url, "http://127.0.0.1:8000");
        assert_eq!((a.users, a.sessions, a.points), (1, 25_000, 10));
        assert_eq!((a.concurrency, a.span_days), (32, 730));
        assert!(a.seed.is_none() && a.user_ids_from.is_none());
        let a = args(&["--token", "sdk_x"]);
        assert_eq!(a.token.as_deref(), Some("sdk_x"));
    }

    #[test]
    fn user_ids_from_takes_a_uuid_or_an_integer() {
        let a = args(&["--user-ids-from", "00000000-0000-0000-0000-000000000010"]);
        assert_eq!(a.user_ids_from, Some(16));
        let a = args(&["--user-ids-from", "16", "--users", "3"]);
        let g = Generator::new(&a, 1, Utc::now());
        assert_eq!(
            g.user_id(2).to_string(),
            "00000000-0000-0000-0000-000000000012"
        );
    }

    #[test]
    fn long_sessions_end_before_now() {
        let a = args(&["--points", "5000", "--span-days", "30"]);
        let now = Utc::now();
        let g = Generator::new(&a, 7, now);
        for k in 0..50 {
            let v: serde_json::Value = serde_json::from_str(&g.session_body(k)).unwrap();
            let last = v["data"].as_array().unwrap().last().unwrap()["time"].clone();
            let last: DateTime<Utc> = last.as_str().unwrap().parse().unwrap();
            assert!(last <= now, "session {k} ends at {last}");
        }
    }

    #[test]
    fn sessions_are_reproducible_valid_json_in_the_span() {
        let a = args(&["--points", "50", "--users", "2", "--span-days", "10"]);
        let now = Utc::now();
        let g = Generator::new(&a, 42, now);
        assert_eq!(
            g.session_body(7),
            Generator::new(&a, 42, now).session_body(7)
        );
        assert_ne!(g.session_body(7), g.session_body(8));
        let v: serde_json::Value = serde_json::from_str(&g.session_body(7)).unwrap();
        assert_eq!(v["user_id"], g.user_id(1).to_string());
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 50);
        let start: DateTime<Utc> = v["start_ts"].as_str().unwrap().parse().unwrap();
        assert!(start >= now - TimeDelta::days(10) - TimeDelta::seconds(1) && start <= now);
        let mut last = start;
        for p in data {
            let t: DateTime<Utc> = p["time"].as_str().unwrap().parse().unwrap();
            assert!(t > last && t <= now, "{t}");
            last = t;
            let value = &p["value"];
            match p["series"].as_str().unwrap() {
                "session.gut_health_score" => {
                    let x = value["value"].as_f64().unwrap();
                    assert!((0.0..=10.0).contains(&x));
                }
                "session.urine.color" => {
                    for c in ["r", "g", "b"] {
                        assert!(value[c].as_u64().unwrap() <= 255);
                    }
                }
                "session.urine.night_count" => assert!(value["value"].as_u64().unwrap() < 6),
                "session.example.series" => assert!(value["value"].is_string()),
                other => panic!("unexpected series {other}"),
            }
        }
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile_ms(0.5);
        let p99 = h.quantile_ms(0.99);
        assert!((p50 - 50.0).abs() < 1.0, "{p50}");
        assert!((p99 - 99.0).abs() < 1.5, "{p99}");
        assert_eq!(Histogram::default().quantile_ms(0.5), 0.0);
    }
}
