//! `GET /metrics`: Prometheus text about the service itself.

use crate::startup::AppState;
use actix_web::{HttpResponse, web};

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.state();
    let jobs: Vec<(&str, &crate::jobs::JobStats)> =
        state.jobs.iter().map(|(n, s)| (*n, s.as_ref())).collect();
    let body = state.metrics.render(
        (
            pool.connections,
            pool.idle_connections,
            state.pool.max_size(),
        ),
        &jobs,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
