//! Validated input types. Everything the HTTP layer accepts becomes one of these at the
//! edge ("parse, don't validate"); services and the database layer only see them.

pub mod interval;
pub mod query;
pub mod timestamp;
