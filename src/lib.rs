//! `seriesd`: a time-series metrics backend in front of PostgreSQL (TimescaleDB when
//! present) and Redis.
//!
//! Layers, from the edge in: [`routes`] (HTTP only) call [`services`] (the logic), which
//! call [`db`] (all SQL). [`domain`] holds validated input types used by all of them;
//! [`startup`] wires everything into a running [`startup::Application`]; [`auth`]
//! authenticates requests and carries the caller's scope to the handlers; [`openapi`]
//! describes the HTTP API.

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
pub mod stress;
pub mod telemetry;
pub mod token_command;

#[cfg(test)]
mod parser_fuzz;
