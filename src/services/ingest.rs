//! Ingest: turning a posted session into rows (all-or-nothing validation), and writing
//! rows through a small pool of writer tasks that group concurrent requests into one
//! transaction ("group commit").
//!
//! Each writer takes every request waiting in the queue (up to a number of points),
//! writes them in one transaction (one `COPY` straight into `points` when every session
//! of the batch is new, else `COPY` into staging and one upsert) and answers each
//! request only after that transaction committed. So many small requests share one WAL
//! flush, and no request is acknowledged before its points are durable.

use crate::db::partials::Partials;
use crate::db::points::{self, PointKey, PointRow};
use crate::db::{self, DbPool, generations, partitions::PartitionManager, rollups, sessions};
use crate::domain::rollup_plan::hour_of;
use crate::domain::timestamp;
use crate::error::ApiError;
use crate::services::catalogue::Snapshot;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::Connection;
use diesel::pg::PgConnection;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};
use utoipa::ToSchema;
use uuid::Uuid;

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

/// Why a body was refused.
#[derive(Debug)]
pub struct Rejection {
    pub error: ApiError,
    /// Some point named a series not in the catalogue snapshot used.
    pub unknown_series: bool,
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            unknown_series: false,
        }
    }
}

const REQUIRED: &str = "This field is required.";

fn parse_uuid(raw: Option<&&RawValue>) -> Result<Uuid, String> {
    let raw = raw.ok_or(REQUIRED)?;
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::String(s)) => Uuid::parse_str(&s).map_err(|_| "Must be a valid UUID.".into()),
        Ok(Value::Null) => Err("This field may not be null.".into()),
        _ => Err("Must be a valid UUID.".into()),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Splits a value into what queries aggregate: the main number (a bare number, or an
/// object's numeric `value` field) and the object's other numeric fields, by name.
pub fn extract_numbers(value: &Value) -> (Option<f64>, Vec<(String, f64)>) {
    match value {
        Value::Number(n) => (n.as_f64(), Vec::new()),
        Value::Object(map) => {
            let num = map.get("value").and_then(Value::as_f64);
            let fields = map
                .iter()
                .filter(|(k, _)| k.as_str() != "value")
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect();
            (num, fields)
        }
        _ => (None, Vec::new()),
    }
}

/// Whether `value` holds a string that spells a non-finite number.
fn spells_non_finite(value: &Value) -> bool {
    let bad = |s: &str| s.trim().parse::<f64>().is_ok_and(|f| !f.is_finite());
    match value {
        Value::String(s) => bad(s),
        Value::Object(map) => map
            .values()
            .any(|v| matches!(v, Value::String(s) if bad(s))),
        _ => false,
    }
}

/// Parses and validates a `POST /api/sessions/` body against the catalogue. Any bad
/// point rejects the whole body, with an error for every point by position.
pub fn parse_session(
    body: &[u8],
    catalogue: &Snapshot,
    max_points: usize,
) -> Result<SessionWrite, Rejection> {
    let top: &RawValue = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))?;
    if !top.get().trim_start().starts_with('{') {
        let kind = serde_json::from_str::<Value>(top.get())
            .map(|v| json_type(&v))
            .unwrap_or("something else");
        return Err(ApiError::Invalid(json!({"non_field_errors": [format!(
            "Invalid data. Expected an object, but got {kind}."
        )]}))
        .into());
    }
    // Each field stays raw, so that every `value` is stored exactly as sent.
    let fields: HashMap<String, &RawValue> = serde_json::from_str(top.get())
        .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))?;
    let mut errors = Map::new();
    let user_id = parse_uuid(fields.get("user_id"))
        .map_err(|m| errors.insert("user_id".into(), json!([m])))
        .ok();
    let session_id = parse_uuid(fields.get("session_id"))
        .map_err(|m| errors.insert("session_id".into(), json!([m])))
        .ok();
    let start_ts = match fields
        .get("start_ts")
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        None | Some(Ok(Value::Null)) => None,
        Some(Ok(Value::String(s))) => match timestamp::parse_rfc3339(&s) {
            Ok(t) => Some(t),
            Err(m) => {
                errors.insert("start_ts".into(), json!([m]));
                None
            }
        },
        Some(_) => {
            errors.insert(
                "start_ts".into(),
                json!(["Expected an RFC 3339 timestamp string or null."]),
            );
            None
        }
    };
    let mut unknown_series = false;
    let items: Vec<&RawValue> = match fields.get("data") {
        None => {
            errors.insert("data".into(), json!([REQUIRED]));
            Vec::new()
        }
        Some(raw) => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Ok(items) if items.len() > max_points => {
                errors.insert(
                    "data".into(),
                    json!([format!(
                        "Ensure this field has no more than {max_points} points (MAX_POINTS_PER_REQUEST)."
                    )]),
                );
                Vec::new()
            }
            Ok(items) => items,
            Err(_) => {
                errors.insert(
                    "data".into(),
                    json!(["Expected a list of points [{series, time, value}]."]),
                );
                Vec::new()
            }
        },
    };

    let mut point_errors: Vec<Value> = Vec::with_capacity(items.len());
    let mut any_point_error = false;
    let mut rows: Vec<PointRow> = Vec::with_capacity(items.len());
    for raw in &items {
        match parse_point(raw, catalogue) {
            Ok(row) => {
                point_errors.push(json!({}));
                rows.push(row);
            }
            Err((e, unknown)) => {
                unknown_series |= unknown;
                any_point_error = true;
                point_errors.push(Value::Object(e));
            }
        }
    }
    if any_point_error {
        errors.insert("data".into(), Value::Array(point_errors));
    }
    let (Some(user_id), Some(session_id)) = (user_id, session_id) else {
        return Err(Rejection {
            error: ApiError::Invalid(Value::Object(errors)),
            unknown_series,
        });
    };
    if !errors.is_empty() {
        return Err(Rejection {
            error: ApiError::Invalid(Value::Object(errors)),
            unknown_series,
        });
    }
    let received = rows.len();
    // One point per (series, time); the later one in the request wins.
    let mut index: HashMap<(i32, DateTime<Utc>), usize> = HashMap::with_capacity(rows.len());
    let mut distinct: Vec<PointRow> = Vec::with_capacity(rows.len());
    for mut row in rows {
        row.user_id = user_id;
        row.session_id = session_id;
        match index.get(&(row.series_id, row.time)) {
            Some(&i) => distinct[i] = row,
            None => {
                index.insert((row.series_id, row.time), distinct.len());
                distinct.push(row);
            }
        }
    }
    Ok(SessionWrite {
        user_id,
        session_id,
        start_ts,
        rows: distinct,
        received,
    })
}

/// One point; on failure the DRF error object for its position, and whether the
/// failure was an unknown series.
fn parse_point(
    raw: &RawValue,
    catalogue: &Snapshot,
) -> Result<PointRow, (Map<String, Value>, bool)> {
    let mut errors = Map::new();
    let fields: BTreeMap<String, &RawValue> = match serde_json::from_str(raw.get()) {
        Ok(f) => f,
        Err(_) => {
            errors.insert(
                "non_field_errors".into(),
                json!(["Expected an object {series, time, value}."]),
            );
            return Err((errors, false));
        }
    };
    let mut unknown = false;
    let series = match fields
        .get("series")
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        None => {
            errors.insert("series".into(), json!([REQUIRED]));
            None
        }
        Some(Ok(Value::String(name))) => match catalogue.get(&name) {
            Some(t) => Some(t.clone()),
            None => {
                unknown = true;
                let shown: String = name.chars().take(255).collect();
                errors.insert(
                    "series".into(),
                    json!([format!("Unknown series '{shown}'.")]),
                );
                None
            }
        },
        Some(_) => {
            errors.insert("series".into(), json!(["Expected a series name (string)."]));
            None
        }
    };
    let time = match fields
        .get("time")
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        None => {
            errors.insert("time".into(), json!([REQUIRED]));
            None
        }
        Some(Ok(Value::String(s))) => match timestamp::parse_rfc3339(&s) {
            Ok(t) => Some(t),
            Err(m) => {
                errors.insert("time".into(), json!([m]));
                None
            }
        },
        Some(_) => {
            errors.insert(
                "time".into(),
                json!(["Expected an RFC 3339 timestamp string with a time zone."]),
            );
            None
        }
    };
    let value_raw = fields.get("value");
    let value = match value_raw.map(|r| serde_json::from_str::<Value>(r.get())) {
        None => {
            errors.insert("value".into(), json!([REQUIRED]));
            None
        }
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.insert("value".into(), json!([format!("Invalid JSON value: {e}")]));
            None
        }
    };
    if let (Some(series), Some(value)) = (&series, &value)
        && let Some(mut reason) = series.check(value)
    {
        if spells_non_finite(value) {
            reason.push_str(" (NaN and infinite numbers are not accepted)");
        }
        errors.insert("value".into(), json!([reason]));
    }
    match (series, time, value, value_raw) {
        (Some(series), Some(time), Some(value), Some(raw)) if errors.is_empty() => {
            let (num, fields) = extract_numbers(&value);
            Ok(PointRow {
                user_id: Uuid::nil(),
                series_id: series.id(),
                time,
                session_id: Uuid::nil(),
                num,
                fields,
                value: raw.get().to_string(),
            })
        }
        _ => Err((errors, unknown)),
    }
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

type Reply = oneshot::Sender<Result<IngestOutcome, ApiError>>;

struct Job {
    write: SessionWrite,
    reply: Reply,
}

/// The handle requests use to write; cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
}

impl Ingestor {
    /// Starts `writers` writer tasks on the current runtime.
    /// `append_hours`: see [`write_batch`].
    pub fn start(
        pool: DbPool,
        partitions: PartitionManager,
        writers: usize,
        batch_points: usize,
        append_hours: u32,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let rx = rx.clone();
            let pool = pool.clone();
            let partitions = partitions.clone();
            actix_web::rt::spawn(async move {
                writer_loop(rx, pool, partitions, batch_points, append_hours).await;
            });
        }
        Self { tx }
    }

    /// Writes a session post; resolves once it committed (or failed).
    pub async fn submit(&self, write: SessionWrite) -> Result<IngestOutcome, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { write, reply })
            .await
            .map_err(|_| ApiError::Unavailable("The service is shutting down.".into()))?;
        answer
            .await
            .map_err(|_| ApiError::internal("ingest writer stopped before answering"))?
    }
}

async fn writer_loop(
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    pool: DbPool,
    partitions: PartitionManager,
    batch_points: usize,
    append_hours: u32,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut points = first.write.rows.len();
            jobs.push(first);
            while points < batch_points {
                match rx.try_recv() {
                    Ok(job) => {
                        points += job.write.rows.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let (writes, replies): (Vec<SessionWrite>, Vec<Reply>) =
            jobs.into_iter().map(|j| (j.write, j.reply)).unzip();
        let pool = pool.clone();
        let partitions = partitions.clone();
        let results = db::run(&pool, move |conn| {
            Ok(write_batch(conn, &partitions, &writes, append_hours))
        })
        .await
        .unwrap_or_else(|e| {
            let shared = shared_error(&e);
            (0..replies.len())
                .map(|_| Err(shared.clone_error()))
                .collect()
        });
        for (reply, result) in replies.into_iter().zip(results) {
            // The client may have gone; its points are committed either way.
            let _ = reply.send(result);
        }
    }
}

/// An error to hand to every request of a failed batch.
struct SharedError(ApiError);

fn shared_error(e: &ApiError) -> SharedError {
    SharedError(match e {
        ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
        other => ApiError::Internal(other.to_string()),
    })
}

impl SharedError {
    fn clone_error(&self) -> ApiError {
        match &self.0 {
            ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn is_retryable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::SerializationFailure, _) => true,
        E::DatabaseError(_, info) => info.message().contains("deadlock detected"),
        _ => false,
    }
}

/// Writes a batch in one transaction, retrying on deadlock or serialization failure. If
/// the batch fails otherwise, each request is tried alone so one bad request cannot fail
/// the others. A batch of new sessions appends the hourly aggregates of its points in
/// the last `append_hours` hours (from the current UTC hour back; `ROLLUP_APPEND_HOURS`)
/// to the rollups (see [`crate::db::partials`]).
pub fn write_batch(
    conn: &mut PgConnection,
    partitions: &PartitionManager,
    writes: &[SessionWrite],
    append_hours: u32,
) -> Vec<Result<IngestOutcome, ApiError>> {
    let times = writes.iter().flat_map(|w| w.rows.iter().map(|r| r.time));
    if let Err(e) = partitions.ensure_for_times(conn, times) {
        let shared = shared_error(&ApiError::from(e));
        return writes.iter().map(|_| Err(shared.clone_error())).collect();
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match conn.transaction(|conn| batch_transaction(conn, writes, append_hours)) {
            Ok(results) => return results,
            Err(e) if is_retryable(&e) && attempt < 4 => continue,
            // Another replica's retention dropped a week we thought existed.
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("no partition of relation") && attempt < 4 =>
            {
                let times = writes.iter().flat_map(|w| w.rows.iter().map(|r| r.time));
                if let Err(e) = partitions
                    .reload(conn)
                    .and_then(|()| partitions.ensure_for_times(conn, times))
                {
                    let shared = shared_error(&ApiError::from(e));
                    return writes.iter().map(|_| Err(shared.clone_error())).collect();
                }
                continue;
            }
            Err(e) => {
                let error = ApiError::from(e);
                if writes.len() > 1 && !matches!(error, ApiError::Unavailable(_)) {
                    tracing::warn!(%error, jobs = writes.len(), "batch failed; writing its requests one by one");
                    return writes
                        .iter()
                        .flat_map(|w| {
                            write_batch(conn, partitions, std::slice::from_ref(w), append_hours)
                        })
                        .collect();
                }
                let shared = shared_error(&error);
                return writes.iter().map(|_| Err(shared.clone_error())).collect();
            }
        }
    }
}

fn batch_transaction(
    conn: &mut PgConnection,
    writes: &[SessionWrite],
    append_hours: u32,
) -> diesel::QueryResult<Vec<Result<IngestOutcome, ApiError>>> {
    let mut ids: Vec<Uuid> = writes.iter().map(|w| w.session_id).collect();
    ids.sort();
    ids.dedup();
    sessions::lock_session_ids(conn, &ids)?;
    let mut owner = sessions::owners(conn, &ids)?;
    // Every session of the batch is new: its points cannot exist yet.
    let all_new = owner.is_empty();

    let mut results: Vec<Option<Result<IngestOutcome, ApiError>>> =
        (0..writes.len()).map(|_| None).collect();
    let mut accepted: Vec<usize> = Vec::with_capacity(writes.len());
    let mut session_rows: BTreeMap<(Uuid, Uuid), Option<DateTime<Utc>>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        let user = *owner.entry(w.session_id).or_insert(w.user_id);
        if user != w.user_id {
            results[i] = Some(Err(ApiError::Conflict(format!(
                "Session {} belongs to another user.",
                w.session_id
            ))));
            continue;
        }
        accepted.push(i);
        let start = session_rows
            .entry((w.user_id, w.session_id))
            .or_insert(None);
        if w.start_ts.is_some() {
            *start = w.start_ts;
        }
    }
    if !session_rows.is_empty() {
        let rows: Vec<(Uuid, Uuid, Option<DateTime<Utc>>)> = session_rows
            .into_iter()
            .map(|((u, s), t)| (u, s, t))
            .collect();
        sessions::upsert(conn, &rows)?;
    }
    // Across requests of one batch, the later request's point wins.
    let mut latest: HashMap<PointKey, (i32, &PointRow)> = HashMap::new();
    for &i in &accepted {
        for row in &writes[i].rows {
            latest.insert(row.key(), (i as i32, row));
        }
    }
    let counts = if all_new {
        // Only new points: the hourly rollups of their recent hours get them at once.
        let live_from = match append_hours {
            0 => DateTime::<Utc>::MAX_UTC,
            n => hour_of(Utc::now()) - TimeDelta::hours(i64::from(n) - 1),
        };
        let partials = Partials::of(latest.values().map(|(_, r)| *r), live_from);
        let counts = points::insert_new(conn, latest.values().copied())?;
        partials.append(conn)?;
        counts
    } else {
        let counts = points::upsert(conn, latest.into_values())?;
        rollups::invalidate_staged(conn)?;
        counts
    };
    let users: Vec<Uuid> = accepted.iter().map(|&i| writes[i].user_id).collect();
    generations::bump(conn, &users)?;
    for &i in &accepted {
        let w = &writes[i];
        let job = i as i32;
        let inserted = counts.inserted.get(&job).copied().unwrap_or(0);
        let updated = counts.updated.get(&job).copied().unwrap_or(0);
        let stored = w.rows.len();
        results[i] = Some(Ok(IngestOutcome {
            message: "Data ingested successfully",
            user_id: w.user_id,
            session_id: w.session_id,
            received: w.received,
            stored,
            duplicates_in_request: w.received - stored,
            inserted,
            updated,
            unchanged: stored.saturating_sub(inserted + updated),
        }));
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::internal("ingest result missing"))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_extracted_from_the_seed_shapes() {
        assert_eq!(extract_numbers(&json!(3.5)), (Some(3.5), vec![]));
        assert_eq!(extract_numbers(&json!({"value": 2})), (Some(2.0), vec![]));
        assert_eq!(
            extract_numbers(&json!({"r": 255, "g": 1.5, "b": 0, "note": "x", "ok": true})),
            (
                None,
                vec![("b".into(), 0.0), ("g".into(), 1.5), ("r".into(), 255.0)]
            )
        );
        assert_eq!(extract_numbers(&json!({"value": "text"})), (None, vec![]));
    }

    #[test]
    fn non_finite_spellings_are_spotted() {
        assert!(spells_non_finite(&json!({"value": "NaN"})));
        assert!(spells_non_finite(&json!("-Infinity")));
        assert!(!spells_non_finite(&json!({"value": "1.5"})));
    }
}

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
    #[schema(value_type = crate::openapi::BadRequestBody)]
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
