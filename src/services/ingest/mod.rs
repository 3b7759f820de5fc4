//! Ingest: turning a posted session into rows (all-or-nothing validation), and writing
//! rows through a small pool of writer tasks that group concurrent requests into one
//! transaction ("group commit").
//!
//! Each writer takes every request waiting in the queue (up to a number of points),
//! writes them in one transaction (one `COPY` straight into `points` when every session
//! of the batch is new, else `COPY` into staging and one upsert) and answers each
//! request only after that transaction committed. So many small requests share one WAL
//! flush, and no request is acknowledged before its points are durable.

mod batch;
mod budget;
mod bulk;
mod parse;
mod writers;

pub use batch::*;
pub use budget::*;
pub use bulk::*;
pub use parse::*;
pub use writers::*;

use crate::db::points::PointRow;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// The most errors one answer lists: bad points of a `POST /api/sessions/` body, refused
/// lines of a bulk report. The rest are counted, not listed, so that an answer (and the
/// memory that builds it) does not grow with the number of errors.
pub const MAX_LISTED_ERRORS: usize = 100;

/// A count written with thousands separators (`999,900`).
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A validated session post, ready to write.
#[derive(Debug, Clone)]
pub struct SessionWrite {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub start_ts: Option<DateTime<Utc>>,
    /// Distinct points (one per key; the later of two duplicates kept).
    pub rows: Vec<PointRow>,
    /// Points in the request, duplicates included.
    pub received: usize,
}

/// What a stored session post did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(example = json!({"message": "Data ingested successfully",
    "user_id": "6f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11", "session_id": "1f1c3c36-8a6e-4a52-9d1e-3f1b7c0e9a11",
    "received": 3, "stored": 3, "duplicates_in_request": 0, "inserted": 3, "updated": 0, "unchanged": 0}))]
pub struct IngestOutcome {
    #[schema(example = "Data ingested successfully")]
    pub message: &'static str,
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// Points in the request.
    pub received: usize,
    /// Distinct points after in-request duplicates were folded (later wins).
    pub stored: usize,
    pub duplicates_in_request: usize,
    /// Points that did not exist before.
    pub inserted: usize,
    /// Points that existed with another value and were replaced (last write wins).
    pub updated: usize,
    /// Points that existed with the same value (a retry): nothing changed.
    pub unchanged: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (999_900, "999,900"),
        ] {
            assert_eq!(thousands(n), text);
        }
        assert_eq!(thousands(1_234_567_890), "1,234,567,890");
    }
}
