//! Test helpers: each test's own database and the real application on it, servers run
//! as processes, and the fixtures tests share (sample data, bulk points, rollup checks).

mod app;
mod cluster;
mod database;
mod rollup_checks;
mod sample_data;
mod server_process;
mod stored_points;

pub use app::{
    FORBIDDEN, TestApp, assert_throttled, client, client_with, raw_exchange, send, settings_for,
    start_server,
};
pub use cluster::{CitusCluster, Cluster, extension_bin};
pub use database::{TestDb, count, drop_database, expected_storage, series_id};
pub use rollup_checks::{
    after_first_rollup_run, assert_same_answers, one_day, uncached_app_refreshed_by_hand,
};
pub use sample_data::{add_series, ingest, scored_session, session_body, turbine_output};
pub use server_process::{ServerProcess, free_port, serve_command, sigterm, wait_for_port};
pub use stored_points::{MINUTE, SECOND, bulk_series, expected_points, load_points, time};
