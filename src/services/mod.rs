//! The logic behind the API: no HTTP types and no SQL text here.

pub mod catalogue;
pub mod catalogue_admin;
pub mod demo_data;
pub mod erasure;
pub mod health;
pub mod ingest;
pub mod query;
pub mod retrieval;
pub mod seed;
pub mod sessions;
pub mod token_slots;
pub mod tokens;
