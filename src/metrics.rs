//! `GET /metrics`: counters and latency histograms about the service itself, in the
//! Prometheus text format. Hand-written (a few atomics and a lock-free-enough map) to keep
//! the dependency list short.

use crate::jobs::JobStats;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Every metric the service exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (route, method, status) -> latency histogram.
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    pub points_ingested: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

impl Metrics {
    /// Records one request. `route` is the matched pattern (never the raw path, which
    /// would make a series per user id).
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let h = map
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The text exposition. `pool` is (open, idle, max) connections; `jobs` the
    /// background jobs' statistics by name.
    pub fn render(&self, pool: (u32, u32, u32), jobs: &[(&str, &JobStats)]) -> String {
        let mut out = String::new();
        let map = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        header(
            &mut out,
            "seriesd_http_requests_total",
            "counter",
            "HTTP requests by route, method and status.",
        );
        for ((route, method, status), h) in &map {
            let _ = writeln!(
                out,
                "seriesd_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                h.count
            );
        }
        header(
            &mut out,
            "seriesd_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by route, method and status.",
        );
        for ((route, method, status), h) in &map {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "seriesd_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "seriesd_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                 seriesd_http_request_duration_seconds_sum{{{labels}}} {}\n\
                 seriesd_http_request_duration_seconds_count{{{labels}}} {}",
                h.count, h.sum, h.count
            );
        }
        let counters = [
            (
                "seriesd_points_ingested_total",
                "Points written by ingest (new or changed).",
                &self.points_ingested,
            ),
            (
                "seriesd_cache_hits_total",
                "Query answers served from the cache.",
                &self.cache_hits,
            ),
            (
                "seriesd_cache_misses_total",
                "Query answers computed from the database.",
                &self.cache_misses,
            ),
        ];
        for (name, help, v) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let (open, idle, max) = pool;
        header(
            &mut out,
            "seriesd_db_pool_connections",
            "gauge",
            "Pooled PostgreSQL connections by state.",
        );
        let _ = writeln!(
            out,
            "seriesd_db_pool_connections{{state=\"in_use\"}} {}",
            open.saturating_sub(idle)
        );
        let _ = writeln!(out, "seriesd_db_pool_connections{{state=\"idle\"}} {idle}");
        header(
            &mut out,
            "seriesd_db_pool_max_connections",
            "gauge",
            "The pool's size limit.",
        );
        let _ = writeln!(out, "seriesd_db_pool_max_connections {max}");
        for (name, help, pick) in [
            (
                "seriesd_job_runs_total",
                "Background job runs that completed.",
                0,
            ),
            (
                "seriesd_job_failures_total",
                "Background job runs that failed (retried with backoff).",
                1,
            ),
            (
                "seriesd_job_skipped_total",
                "Background job runs skipped: another replica held the lock.",
                2,
            ),
        ] {
            header(&mut out, name, "counter", help);
            for (job, stats) in jobs {
                let v =
                    [&stats.runs, &stats.failures, &stats.skipped][pick].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{job=\"{job}\"}} {v}");
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe("/api/sessions/", "POST", 201, 0.003);
        m.observe("/api/sessions/", "POST", 201, 2.0);
        m.points_ingested.fetch_add(10, Ordering::Relaxed);
        let stats = JobStats::default();
        stats.runs.fetch_add(2, Ordering::Relaxed);
        let text = m.render((3, 1, 16), &[("partition-premake", &stats)]);
        assert!(text.contains(
            "seriesd_http_requests_total{route=\"/api/sessions/\",method=\"POST\",status=\"201\"} 2"
        ));
        assert!(text.contains("seriesd_http_request_duration_seconds_bucket{route=\"/api/sessions/\",method=\"POST\",status=\"201\",le=\"0.005\"} 1"));
        assert!(text.contains("seriesd_points_ingested_total 10"));
        assert!(text.contains("seriesd_db_pool_connections{state=\"in_use\"} 2"));
        assert!(text.contains("seriesd_job_runs_total{job=\"partition-premake\"} 2"));
    }
}
