//! Validated input types. Everything the HTTP layer accepts becomes one of these at the
//! edge ("parse, don't validate"); services and the database layer only see them.

pub mod api_token;
pub mod downsample;
pub mod gap_fill;
pub mod interval;
pub mod json_depth;
pub mod point_value;
pub mod query;
pub mod rollup_plan;
pub mod series_shape;
pub mod sketch;
pub mod timestamp;
pub mod write_window;
