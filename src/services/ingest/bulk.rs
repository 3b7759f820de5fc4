//! The report of `POST /api/sessions/bulk/`: what each NDJSON line did.

use super::*;
use crate::error::ApiError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The answer to a bulk NDJSON load.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(example = json!({"message": "Bulk load finished", "lines": 7, "accepted": 5, "points": 10,
    "inserted": 10, "updated": 0, "unchanged": 0,
    "rejected": [{"line": 2, "errors": {"detail": "JSON parse error - expected value at line 1 column 1"}},
                 {"line": 5, "errors": {"data": [{"series": ["Unknown series 'nope'."]}]}}]}))]
pub struct BulkReport {
    #[schema(example = "Bulk load finished")]
    pub message: &'static str,
    /// Lines read (blank lines are skipped and not counted).
    pub lines: usize,
    /// Lines whose session was stored.
    pub accepted: usize,
    /// Points stored by the accepted lines (after in-line duplicates were folded).
    pub points: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Every refused line, by number (1-based), with its reasons.
    pub rejected: Vec<RejectedLine>,
}

/// A refused line of a bulk load.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedLine {
    /// The line's number, 1-based (blank lines count).
    pub line: usize,
    /// What a `POST /api/sessions/` of this line alone would have answered.
    #[schema(value_type = crate::error::body::BadRequestBody)]
    pub errors: Value,
}

/// Turns an error into the DRF-style body it would have answered alone.
pub fn error_body(e: &ApiError) -> Value {
    match e {
        ApiError::Invalid(v) => v.clone(),
        ApiError::Internal(_) => json!({"detail": "Internal server error."}),
        other => json!({"detail": other.to_string()}),
    }
}

impl BulkReport {
    pub fn new() -> Self {
        Self {
            message: "Bulk load finished",
            ..Self::default()
        }
    }

    pub fn reject(&mut self, line: usize, error: &ApiError) {
        self.rejected.push(RejectedLine {
            line,
            errors: error_body(error),
        });
    }

    /// Records the outcome of one written batch of lines.
    pub fn record(&mut self, lines: &[usize], results: Vec<Result<IngestOutcome, ApiError>>) {
        for (&line, result) in lines.iter().zip(results) {
            match result {
                Ok(o) => {
                    self.accepted += 1;
                    self.points += o.stored;
                    self.inserted += o.inserted;
                    self.updated += o.updated;
                    self.unchanged += o.unchanged;
                }
                Err(e) => self.reject(line, &e),
            }
        }
    }
}
