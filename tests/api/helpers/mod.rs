//! Test helpers: each test's own database and the real application on it, servers run
//! as processes, a headless browser, and the fixtures tests share (sample data, bulk points, rollup checks).

mod app;
mod browser;
mod cluster;
mod database;
mod rollup_checks;
mod sample_data;
mod server_process;
mod stored_points;

pub use app::{
    FORBIDDEN, TestApp, assert_throttled, client, client_with, raw_exchange, send, settings_for,
    start_server, x_cache,
};
pub use browser::Browser;
pub use cluster::{CitusCluster, Cluster, extension_bin};
pub use database::{TestDb, count, drop_database, engine, expected_storage, node_plan, series_id};
pub use rollup_checks::{
    after_first_rollup_run, assert_same_answers, one_day, uncached_app_refreshed_by_hand,
};
pub use sample_data::{add_series, ingest, scored_session, session_body, turbine_output};
pub use server_process::{ServerProcess, free_port, serve_command, sigterm, wait_for_port};
pub use stored_points::{MINUTE, SECOND, bulk_series, expected_points, load_points, time};
