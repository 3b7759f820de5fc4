//! The metric-type catalogue held in memory, with each schema compiled once.
//!
//! Replicas stay in step through the `catalogue_version` row, which a trigger bumps on
//! every change to `metric_types`: a background task compares it every second, and a
//! request that names a series we do not know compares it at once before answering
//! "unknown series". A reload replaces the whole catalogue atomically.

use crate::db::metric_types::{self, MetricTypeRow};
use diesel::QueryResult;
use diesel::pg::PgConnection;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Compiles a metric type's schema as the service applies it: `pattern` and
/// `patternProperties` on the `regex` crate's engine, which matches in time linear in the
/// value (no pattern can stall a request, so values need not be validated off the HTTP
/// workers for being small), and `format` (`email`, `uri`, `date-time`, ...) asserted
/// whatever the draft. A pattern that engine cannot compile (look-around,
/// backreferences) is an error naming where it is in the schema.
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| {
            let at = e.schema_path().to_string();
            let at = if at.is_empty() {
                String::new()
            } else {
                format!(" (at {at})")
            };
            match e.kind() {
                jsonschema::error::ValidationErrorKind::Format { format } if format == "regex" => {
                    format!(
                        "{e}: patterns run on a linear-time engine, without look-around or \
                         backreferences{at}."
                    )
                }
                _ => format!("{e}{at}"),
            }
        })
}

/// The longest a schema violation's reason is shown, in characters.
const MAX_REASON_CHARS: usize = 200;

fn shorten(text: String) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// One metric type with its compiled validator.
pub struct MetricType {
    pub row: MetricTypeRow,
    /// The compiled schema, or why the stored schema cannot be applied (one written
    /// before patterns were restricted to the linear-time engine, or by hand in SQL).
    pub validator: Result<jsonschema::Validator, String>,
}

impl std::fmt::Debug for MetricType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricType")
            .field("row", &self.row)
            .finish()
    }
}

impl MetricType {
    pub fn id(&self) -> i32 {
        self.row.id
    }

    /// Why this type's values cannot be checked at all: its stored schema does not
    /// compile. Points of it are refused until an admin replaces the schema; queries of
    /// its stored points are unaffected.
    pub fn unusable(&self) -> Option<String> {
        self.validator.as_ref().err().map(|reason| {
            format!(
                "The schema of series '{}' cannot be applied, so no point of it is accepted \
                 until an admin replaces it (PUT /api/metrictypes/{}/): {reason}",
                self.row.series, self.row.series
            )
        })
    }

    /// Explains why `value` does not match this type's schema, or `None` if it does.
    pub fn check(&self, value: &Value) -> Option<String> {
        let validator = match &self.validator {
            Ok(v) => v,
            Err(_) => return self.unusable(),
        };
        if validator.is_valid(value) {
            return None;
        }
        let reasons: Vec<String> = validator
            .iter_errors(value)
            .take(3)
            .map(|e| {
                // A reason quotes the offending instance, and a path its keys: shortened,
                // an answer's size does not grow with the size of the values it lists.
                let path = shorten(e.instance_path().to_string());
                let reason = shorten(e.to_string());
                if path.is_empty() {
                    reason
                } else {
                    format!("{reason} (at {path})")
                }
            })
            .collect();
        Some(format!(
            "Value does not match schema: {}",
            reasons.join("; ")
        ))
    }
}

/// A consistent snapshot of the catalogue.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    by_name: HashMap<String, Arc<MetricType>>,
    by_id: HashMap<i32, Arc<MetricType>>,
}

impl Snapshot {
    pub fn get(&self, series: &str) -> Option<&Arc<MetricType>> {
        self.by_name.get(series)
    }

    pub fn by_id(&self, id: i32) -> Option<&Arc<MetricType>> {
        self.by_id.get(&id)
    }

    /// All types, ordered by series name.
    pub fn all(&self) -> Vec<Arc<MetricType>> {
        let mut v: Vec<_> = self.by_name.values().cloned().collect();
        v.sort_by(|a, b| a.row.series.cmp(&b.row.series));
        v
    }
}

/// The shared, reloadable catalogue.
#[derive(Clone, Default)]
pub struct Catalogue {
    current: Arc<RwLock<Arc<Snapshot>>>,
}

impl Catalogue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads if the database's version differs from ours; returns the snapshot in force.
    pub fn refresh(&self, conn: &mut PgConnection) -> QueryResult<Arc<Snapshot>> {
        let version = metric_types::version(conn)?;
        let current = self.snapshot();
        if current.version == version && version != 0 {
            return Ok(current);
        }
        self.reload(conn)
    }

    /// Reloads unconditionally.
    pub fn reload(&self, conn: &mut PgConnection) -> QueryResult<Arc<Snapshot>> {
        // Read the version first: a change racing with the load leaves us behind by
        // one version, and the next check reloads again.
        let version = metric_types::version(conn)?;
        let rows = metric_types::all(conn)?;
        let mut snapshot = Snapshot {
            version,
            ..Snapshot::default()
        };
        for row in rows {
            // Schemas are checked on the way in; one that does not compile (stored
            // before its pattern was refused, or written by hand in SQL) keeps the series
            // queryable but refuses its new points, loudly.
            let validator = compile_schema(&row.schema);
            if let Err(e) = &validator {
                tracing::error!(series = %row.series, error = %e, "metric type schema does not compile; new points of the series are refused");
            }
            let entry = Arc::new(MetricType { row, validator });
            snapshot.by_id.insert(entry.id(), entry.clone());
            snapshot.by_name.insert(entry.row.series.clone(), entry);
        }
        let snapshot = Arc::new(snapshot);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot.clone();
        tracing::debug!(version, "metric-type catalogue loaded");
        Ok(snapshot)
    }
}
