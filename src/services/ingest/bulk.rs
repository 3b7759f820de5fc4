//! The report of `POST /api/sessions/bulk/`: what the NDJSON lines did, with the first
//! [`MAX_LISTED_ERRORS`] refused lines listed and every refused line counted.

use super::*;
use crate::error::ApiError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The answer to a bulk NDJSON load.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(example = json!({"message": "Bulk load finished", "lines": 7, "accepted": 5, "points": 10,
    "inserted": 10, "updated": 0, "unchanged": 0, "rejected_count": 2,
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
    /// Refused lines, all of them (`lines` - `accepted`).
    pub rejected_count: usize,
    /// The first 100 refused lines, by number (1-based), with their reasons; the others
    /// are only counted in `rejected_count`.
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

    /// Counts a refused line, and lists it if it is among the first
    /// [`MAX_LISTED_ERRORS`] refused lines by number (lines may be refused out of order:
    /// a failed batch is reported after later lines were parsed).
    pub fn reject(&mut self, line: usize, error: &ApiError) {
        self.rejected_count += 1;
        if !self.lists(line) {
            return;
        }
        let at = self.rejected.partition_point(|r| r.line < line);
        self.rejected.insert(
            at,
            RejectedLine {
                line,
                errors: error_body(error),
            },
        );
        self.rejected.truncate(MAX_LISTED_ERRORS);
    }

    /// Counts a refused line known not to be among the first [`MAX_LISTED_ERRORS`].
    pub fn count_rejected(&mut self) {
        self.rejected_count += 1;
    }

    /// Whether a refusal of `line` would be listed.
    fn lists(&self, line: usize) -> bool {
        self.rejected.len() < MAX_LISTED_ERRORS
            || self.rejected.last().is_some_and(|last| line < last.line)
    }

    /// How many more refused lines the report lists, when they come after every line
    /// refused so far.
    pub fn room(&self) -> usize {
        MAX_LISTED_ERRORS.saturating_sub(self.rejected.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lines_by_number_are_listed_and_all_are_counted() {
        let mut report = BulkReport::new();
        let error = ApiError::BadRequest("bad".into());
        for line in (2..=1000).rev().step_by(2).chain([1, 3, 5]) {
            report.reject(line, &error);
        }
        assert_eq!(report.rejected_count, 503);
        assert_eq!(report.rejected.len(), MAX_LISTED_ERRORS);
        let listed: Vec<usize> = report.rejected.iter().map(|r| r.line).collect();
        let mut expected: Vec<usize> = [1, 3, 5].into_iter().chain((2..=194).step_by(2)).collect();
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(report.room(), 0);
        report.count_rejected();
        assert_eq!(report.rejected_count, 504);
    }
}
