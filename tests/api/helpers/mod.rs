//! Test helpers: each test's own database and the real application on it, servers run
//! as processes, and the sample data tests share.

mod app;
mod database;
mod sample_data;
mod server_process;

pub use app::{FORBIDDEN, TestApp, client, client_with, send, settings_for, start_server};
pub use database::{TestDb, count, drop_database};
pub use sample_data::{add_series, scored_session};
pub use server_process::{free_port, serve_command, sigterm, wait_for_port};
