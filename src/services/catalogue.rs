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

/// One metric type with its compiled validator.
pub struct MetricType {
    pub row: MetricTypeRow,
    pub validator: jsonschema::Validator,
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

    /// Explains why `value` does not match this type's schema, or `None` if it does.
    pub fn check(&self, value: &Value) -> Option<String> {
        if self.validator.is_valid(value) {
            return None;
        }
        let reasons: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(3)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} (at {path})")
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
            let validator = match jsonschema::validator_for(&row.schema) {
                Ok(v) => v,
                Err(e) => {
                    // Schemas are checked on the way in; one that no longer compiles
                    // (written by hand in SQL) is skipped, loudly.
                    tracing::error!(series = %row.series, error = %e, "metric type schema does not compile; series disabled");
                    continue;
                }
            };
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
