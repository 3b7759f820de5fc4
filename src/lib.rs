//! `seriesd`: a time-series metrics backend in front of PostgreSQL (TimescaleDB when
//! present) and Redis.
//!
//! Layers, from the edge in; a module imports only from the layers below it:
//! - **HTTP**: [`routes`] (extract, call a service, respond; `routes::api_doc` assembles
//!   the OpenAPI document), the middleware [`auth`] (tokens, rate limits, the
//!   [`auth::Caller`]) and [`telemetry`] (the request log), [`headers`] (security headers,
//!   CORS), the document's parts in [`openapi`], and [`state::AppState`], what handlers
//!   share.
//! - **Logic**: [`services`] (ingest, queries and their cache, retrieval, the catalogue,
//!   sessions, tokens), [`jobs`] (the background jobs and their runner) and [`cache`]
//!   (Redis or in-process); below them [`metrics`] (the service's Prometheus metrics,
//!   which they report to).
//! - **Storage**: [`db`], all SQL: the pool, migrations, one module per table or subject.
//! - **Bottom**: [`domain`] (validated types and pure functions), [`config`] (settings from
//!   the environment) and [`error`] (the one error type).
//!
//! [`startup`] wires everything into a running [`startup::Application`]; `main`,
//! [`token_command`] and [`stress`] are the command line.

pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod headers;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod services;
pub mod startup;
pub mod state;
pub mod stress;
pub mod telemetry;
pub mod token_command;

#[cfg(test)]
mod parser_fuzz;
