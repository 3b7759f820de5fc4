//! Test helpers: each test's own database and the real application on it, servers run
//! as processes, and the fixtures tests share (sample data, bulk points).

mod app;
mod database;
mod sample_data;
mod server_process;
mod stored_points;

pub use app::{FORBIDDEN, TestApp, client, client_with, send, settings_for, start_server};
pub use database::{TestDb, count, drop_database, series_id};
pub use sample_data::{add_series, ingest, scored_session, turbine_output};
pub use server_process::{free_port, serve_command, sigterm, wait_for_port};
pub use stored_points::{MINUTE, SECOND, bulk_series, expected_points, load_points, time};
