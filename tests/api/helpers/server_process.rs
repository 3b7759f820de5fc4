//! Servers a test runs as processes of their own: a free port for them, `seriesd serve`
//! on a test database, waiting until it listens, and stopping it as an operator would.

use super::database::TestDb;
use std::process::Command;
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
