//! Test helpers: each test's own database and the real application on it, and a free
//! port for servers a test runs as processes of its own.

mod app;
mod database;
mod server_process;

pub use app::{TestApp, client, client_with, send, settings_for, start_server};
pub use database::{TestDb, count, drop_database};
pub use server_process::free_port;
