//! The logic behind the API: no HTTP types and no SQL text here.

pub mod catalogue;
pub mod ingest;
pub mod query;
pub mod seed;
