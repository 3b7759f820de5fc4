//! Integration tests: the real application against real PostgreSQL (and Redis), each
//! test on a database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalogue;
mod cli;
mod engines;
mod exports;
mod fair_shares;
mod faults;
mod headers;
mod health;
mod helpers;
mod hostile_input;
mod hostile_memory;
mod ingest;
mod input_limits;
mod jobs;
mod latest;
mod noisy_neighbours;
mod openapi;
mod overload;
mod points;
mod query;
mod rollup_appends;
mod rollup_exactness;
mod rollup_plans;
mod rollup_refresh;
mod sessions;
mod tenant_isolation;
mod tokens;
