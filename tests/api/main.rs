//! Integration tests: the real application against real PostgreSQL (and Redis), each
//! test on a database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalogue;
mod cli;
mod faults;
mod health;
mod helpers;
mod ingest;
mod jobs;
mod openapi;
mod query;
mod retrieval;
mod rollups;
mod security;
