//! Servers a test runs as processes of their own: a free port for them, `seriesd serve`
//! on a test database, waiting until it listens, reading its memory from `/proc`, and
//! stopping it as an operator would.

use super::app::client;
use super::database::TestDb;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port nothing listens on right now (for servers and clusters a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `seriesd serve` of `db` on `port`, without Redis; the caller sets the rest and
/// spawns it.
pub fn serve_command(db: &TestDb, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seriesd"));
    cmd.arg("serve")
        .env("DATABASE_URL", db.url.as_str())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", "")
        .env("WRITE_WINDOW_PAST_DAYS", super::app::WIDE_WINDOW_DAYS)
        .env("WRITE_WINDOW_FUTURE_DAYS", super::app::WIDE_WINDOW_DAYS);
    cmd
}

/// Waits until something accepts connections on `port`; fails the test after `within`.
pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `SIGTERM` to the process `pid`.
pub fn sigterm(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

/// The real `seriesd serve` as a child process (two workers, a small pool, no Redis),
/// answering on `/health/`; killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub address: String,
}

impl ServerProcess {
    /// Starts `seriesd serve` on `db` with `env` applied over its defaults here, and waits
    /// until `/health/` answers 200.
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = serve_command(db, port);
        cmd.env("WORKERS", "2")
            .env("DB_POOL_SIZE", "4")
            // One writer, one heavy connection and the reserve of two fill the pool.
            .env("INGEST_WRITERS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let server = Self {
            child: cmd.spawn().unwrap(),
            address: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = client()
                .get(server.url("/health/"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return server;
            }
            assert!(Instant::now() < deadline, "seriesd serve did not come up");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `VmHWM`, the peak resident set of the process so far, in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
