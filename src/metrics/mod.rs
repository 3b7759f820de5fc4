//! `GET /metrics`: what the service reports about itself, encoded by the Prometheus
//! project's `prometheus-client` in the Prometheus text format 0.0.4. Requests and
//! their latency, points ingested and cache use are counted here as they happen; pool
//! use, job runs and rollup lag are handed to [`Metrics::render`] at each scrape; the
//! `process_*` series are read from `/proc` (the `process` submodule; Linux only).

use crate::db::replicas::{ReplicaReport, State};
use crate::db::rollups::RollupBacklog;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text,
};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(target_os = "linux")]
mod process;

/// Runs and failures of one background job, for `/metrics`. Kept here, not with the
/// jobs, so that everything that reports to this module sits below it.
#[derive(Debug, Default)]
pub struct JobStats {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    /// Runs skipped because another process held the job's lock.
    pub skipped: AtomicU64,
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Latency bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A request's labels, in the order the text lists them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

/// Every metric the service counts itself.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latencies: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pub points_ingested: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Uncached queries planned again: their statement saw hours awaiting the rollup
    /// job that their plan had read from rollup rows.
    pub query_replans: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latencies: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            points_ingested: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            query_replans: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records one request. `route` is the matched pattern (never the raw path, which
    /// would make a series per user id).
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = RequestLabels {
            route: route.to_owned(),
            method: method.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latencies.get_or_create(&labels).observe(seconds);
    }

    /// The text exposition ([`CONTENT_TYPE`]). `pool` is (open, idle, max) connections;
    /// `jobs` the background jobs' statistics by name; `rollup` the rollup job's backlog
    /// (`None`: unknown, its series are left out); `reads` the reads the primary
    /// answered, and each replica.
    ///
    /// The registry is built for each scrape, since half of what it holds is handed in
    /// here; a series family with no sample yet is left out, its `# TYPE` line too.
    pub fn render(
        &self,
        pool: (u32, u32, u32),
        jobs: &[(&str, &JobStats)],
        rollup: Option<RollupBacklog>,
        reads: (u64, &[ReplicaReport]),
    ) -> Result<String, fmt::Error> {
        // Names go in without a counter's `_total`, which the encoder appends, and help
        // texts without their full stop, which `register` appends.
        let mut registry = Registry::default();
        registry.register(
            "seriesd_http_requests",
            "HTTP requests by route, method and status",
            self.requests.clone(),
        );
        registry.register(
            "seriesd_http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            self.latencies.clone(),
        );
        for (name, help, value) in [
            (
                "seriesd_points_ingested",
                "Points written by ingest (new or changed)",
                &self.points_ingested,
            ),
            (
                "seriesd_cache_hits",
                "Query answers served from the cache",
                &self.cache_hits,
            ),
            (
                "seriesd_cache_misses",
                "Query answers computed from the database",
                &self.cache_misses,
            ),
            (
                "seriesd_query_replans",
                "Uncached queries planned and run again: a write came between reading the hours awaiting the rollup job and the query's statement",
                &self.query_replans,
            ),
        ] {
            registry.register(name, help, ConstCounter::new(value.load(Ordering::Relaxed)));
        }
        let (open, idle, max) = pool;
        registry.register_collector(Box::new(Labelled {
            name: "seriesd_db_pool_connections",
            help: "Pooled PostgreSQL connections by state.",
            label: "state",
            samples: vec![
                ("in_use".into(), ConstGauge::new(open.saturating_sub(idle))),
                ("idle".into(), ConstGauge::new(idle)),
            ],
        }));
        registry.register(
            "seriesd_db_pool_max_connections",
            "The pool's size limit",
            ConstGauge::new(max),
        );
        for (name, help, pick) in [
            ("seriesd_job_runs", "Background job runs that completed.", 0),
            (
                "seriesd_job_failures",
                "Background job runs that failed (retried with backoff).",
                1,
            ),
            (
                "seriesd_job_skipped",
                "Background job runs skipped: another replica held the lock.",
                2,
            ),
        ] {
            registry.register_collector(Box::new(Labelled {
                name,
                help,
                label: "job",
                samples: jobs
                    .iter()
                    .map(|(job, stats)| {
                        let count = [&stats.runs, &stats.failures, &stats.skipped][pick];
                        (
                            (*job).to_owned(),
                            ConstCounter::new(count.load(Ordering::Relaxed)),
                        )
                    })
                    .collect(),
            }));
        }
        if let Some(backlog) = rollup {
            registry.register(
                "seriesd_rollup_lag_seconds",
                "Age of the oldest hour awaiting rollup refresh (0: none)",
                ConstGauge::new(backlog.lag_seconds),
            );
            registry.register(
                "seriesd_rollup_failed_hours",
                "Hours the rollup job could not refresh, set aside and retried with backoff",
                ConstGauge::new(backlog.failed_hours),
            );
        }
        register_reads(&mut registry, reads);
        #[cfg(target_os = "linux")]
        registry.register_collector(Box::new(process::ProcessCollector));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

/// Where reads were answered, and each replica's state.
fn register_reads(registry: &mut Registry, (primary, replicas): (u64, &[ReplicaReport])) {
    let servers = std::iter::once(("primary".to_owned(), primary))
        .chain(replicas.iter().map(|r| (r.name.clone(), r.reads)));
    registry.register_collector(Box::new(Labelled {
        name: "seriesd_reads",
        help: "Reads a replica may answer (queries, latest, points, sessions), by the server that answered: primary or a replica.",
        label: "server",
        samples: servers.map(|(s, n)| (s, ConstCounter::new(n))).collect(),
    }));
    let per_replica = |value: &dyn Fn(&ReplicaReport) -> u64| {
        replicas
            .iter()
            .map(|r| (r.name.clone(), ConstCounter::new(value(r))))
            .collect()
    };
    registry.register_collector(Box::new(Labelled {
        name: "seriesd_replica_behind",
        help: "Reads a replica passed on: it had not replayed the user's latest write yet.",
        label: "replica",
        samples: per_replica(&|r| r.behind),
    }));
    registry.register_collector(Box::new(Labelled {
        name: "seriesd_replica_failures",
        help: "Reads that failed on a replica and were answered elsewhere.",
        label: "replica",
        samples: per_replica(&|r| r.failures),
    }));
    registry.register_collector(Box::new(Labelled {
        name: "seriesd_replica_up",
        help: "Whether a replica serves reads (1) or not (0: starting, lagging, down or unusable).",
        label: "replica",
        samples: replicas
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    ConstGauge::new(i64::from(r.status.state == State::Ok)),
                )
            })
            .collect(),
    }));
    registry.register_collector(Box::new(Labelled {
        name: "seriesd_replica_lag_seconds",
        help: "How far a replica was behind the primary at its last check (at least this much while it lags).",
        label: "replica",
        samples: replicas
            .iter()
            .filter_map(|r| Some((r.name.clone(), ConstGauge::new(r.status.lag?.as_secs_f64()))))
            .collect(),
    }));
}

/// One family of values read at scrape time, one sample per value of a single label.
#[derive(Debug)]
struct Labelled<M> {
    name: &'static str,
    /// With its full stop: unlike `Registry::register`, a collector adds none.
    help: &'static str,
    label: &'static str,
    samples: Vec<(String, M)>,
}

impl<M> Collector for Labelled<M>
where
    M: EncodeMetric + TypedMetric + fmt::Debug + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        if self.samples.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(self.name, self.help, None, M::TYPE)?;
        for (value, metric) in &self.samples {
            metric.encode(family.encode_family(&[(self.label, value.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;
    use std::collections::HashMap;

    fn render_example() -> String {
        let m = Metrics::default();
        m.observe("/api/sessions/", "POST", 201, 0.003);
        m.observe("/api/sessions/", "POST", 201, 2.0);
        m.points_ingested.fetch_add(10, Ordering::Relaxed);
        m.cache_hits.fetch_add(4, Ordering::Relaxed);
        m.cache_misses.fetch_add(5, Ordering::Relaxed);
        m.query_replans.fetch_add(3, Ordering::Relaxed);
        let stats = JobStats::default();
        stats.runs.fetch_add(2, Ordering::Relaxed);
        stats.failures.fetch_add(1, Ordering::Relaxed);
        stats.skipped.fetch_add(3, Ordering::Relaxed);
        let backlog = RollupBacklog {
            lag_seconds: 12.5,
            failed_hours: 2,
        };
        let replica = ReplicaReport {
            name: "r1:5432/seriesd".into(),
            status: crate::db::replicas::Status {
                state: State::Ok,
                lag: Some(std::time::Duration::from_millis(250)),
                detail: None,
            },
            reads: 7,
            behind: 2,
            failures: 1,
        };
        m.render(
            (3, 1, 16),
            &[("partition-premake", &stats)],
            Some(backlog),
            (5, &[replica]),
        )
        .unwrap()
    }

    #[test]
    fn renders_the_samples() {
        let text = render_example();
        for line in [
            "seriesd_http_requests_total{route=\"/api/sessions/\",method=\"POST\",status=\"201\"} 2",
            "seriesd_http_request_duration_seconds_bucket{route=\"/api/sessions/\",method=\"POST\",status=\"201\",le=\"0.0005\"} 0",
            "seriesd_http_request_duration_seconds_bucket{route=\"/api/sessions/\",method=\"POST\",status=\"201\",le=\"0.005\"} 1",
            "seriesd_http_request_duration_seconds_bucket{route=\"/api/sessions/\",method=\"POST\",status=\"201\",le=\"1\"} 1",
            "seriesd_http_request_duration_seconds_bucket{route=\"/api/sessions/\",method=\"POST\",status=\"201\",le=\"2.5\"} 2",
            "seriesd_http_request_duration_seconds_bucket{route=\"/api/sessions/\",method=\"POST\",status=\"201\",le=\"10\"} 2",
            "seriesd_http_request_duration_seconds_bucket{route=\"/api/sessions/\",method=\"POST\",status=\"201\",le=\"+Inf\"} 2",
            "seriesd_http_request_duration_seconds_sum{route=\"/api/sessions/\",method=\"POST\",status=\"201\"} 2.003",
            "seriesd_http_request_duration_seconds_count{route=\"/api/sessions/\",method=\"POST\",status=\"201\"} 2",
            "seriesd_points_ingested_total 10",
            "seriesd_cache_hits_total 4",
            "seriesd_cache_misses_total 5",
            "seriesd_query_replans_total 3",
            "seriesd_db_pool_connections{state=\"in_use\"} 2",
            "seriesd_db_pool_connections{state=\"idle\"} 1",
            "seriesd_db_pool_max_connections 16",
            "seriesd_job_runs_total{job=\"partition-premake\"} 2",
            "seriesd_job_failures_total{job=\"partition-premake\"} 1",
            "seriesd_job_skipped_total{job=\"partition-premake\"} 3",
            "seriesd_rollup_lag_seconds 12.5",
            "seriesd_rollup_failed_hours 2",
            "seriesd_reads_total{server=\"primary\"} 5",
            "seriesd_reads_total{server=\"r1:5432/seriesd\"} 7",
            "seriesd_replica_behind_total{replica=\"r1:5432/seriesd\"} 2",
            "seriesd_replica_failures_total{replica=\"r1:5432/seriesd\"} 1",
            "seriesd_replica_up{replica=\"r1:5432/seriesd\"} 1",
            "seriesd_replica_lag_seconds{replica=\"r1:5432/seriesd\"} 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        // One bucket line per bound, and the +Inf one.
        let buckets = text
            .lines()
            .filter(|l| l.starts_with("seriesd_http_request_duration_seconds_bucket"))
            .count();
        assert_eq!(buckets, BUCKETS.len() + 1);
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn every_series_keeps_its_name_and_type() {
        let text = render_example();
        for (name, kind) in [
            ("seriesd_http_requests_total", "counter"),
            ("seriesd_http_request_duration_seconds", "histogram"),
            ("seriesd_points_ingested_total", "counter"),
            ("seriesd_cache_hits_total", "counter"),
            ("seriesd_cache_misses_total", "counter"),
            ("seriesd_query_replans_total", "counter"),
            ("seriesd_db_pool_connections", "gauge"),
            ("seriesd_db_pool_max_connections", "gauge"),
            ("seriesd_job_runs_total", "counter"),
            ("seriesd_job_failures_total", "counter"),
            ("seriesd_job_skipped_total", "counter"),
            ("seriesd_rollup_lag_seconds", "gauge"),
            ("seriesd_rollup_failed_hours", "gauge"),
            ("seriesd_reads_total", "counter"),
            ("seriesd_replica_behind_total", "counter"),
            ("seriesd_replica_failures_total", "counter"),
            ("seriesd_replica_up", "gauge"),
            ("seriesd_replica_lag_seconds", "gauge"),
        ] {
            let type_line = format!("# TYPE {name} {kind}");
            assert!(
                text.lines().any(|l| l == type_line),
                "missing {type_line} in\n{text}"
            );
        }
    }

    #[test]
    fn the_rollup_lag_is_left_out_when_unknown() {
        let text = Metrics::default()
            .render((0, 0, 8), &[], None, (0, &[]))
            .unwrap();
        assert!(!text.contains("seriesd_rollup_lag_seconds"));
        assert!(text.contains("seriesd_db_pool_max_connections 8"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_plausible() {
        let text = render_example();
        let value = |name: &str| -> f64 {
            let type_line = format!("# TYPE {name} ");
            assert!(text.contains(&type_line), "missing {type_line} in\n{text}");
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("missing {name} in\n{text}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        // Started within the last day, and not in the future.
        assert!(
            start > now - 86_400.0 && start <= now + 1.0,
            "{start} {now}"
        );
    }

    /// Checks `text` against the Prometheus text format 0.0.4, line by line: each family
    /// has one `# HELP` and one `# TYPE` of a known kind, before its samples; each sample
    /// names a declared family (with `_bucket`, `_sum`, `_count` for histograms), has
    /// well-formed labels and a float value.
    fn assert_prometheus_text(text: &str) {
        let name = r"[a-zA-Z_:][a-zA-Z0-9_:]*";
        let label = r#"[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*""#;
        let help = Regex::new(&format!(r"^# HELP ({name}) .*$")).unwrap();
        let kind = Regex::new(&format!(
            r"^# TYPE ({name}) (counter|gauge|histogram|summary|untyped)$"
        ))
        .unwrap();
        let sample = Regex::new(&format!(
            r"^({name})(?:\{{(?:{label}(?:,{label})*)?\}})? (\S+)(?: (-?[0-9]+))?$"
        ))
        .unwrap();
        let mut kinds: HashMap<&str, &str> = HashMap::new();
        let mut helps = Vec::new();
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(c) = help.captures(line) {
                let family = c.get(1).unwrap().as_str();
                assert!(!helps.contains(&family), "second HELP: {line}");
                helps.push(family);
            } else if let Some(c) = kind.captures(line) {
                let family = c.get(1).unwrap().as_str();
                assert!(helps.contains(&family), "TYPE before HELP: {line}");
                let previous = kinds.insert(family, c.get(2).unwrap().as_str());
                assert!(previous.is_none(), "second TYPE: {line}");
            } else if let Some(c) = sample.captures(line) {
                let series = c.get(1).unwrap().as_str();
                let declared = kinds.contains_key(series)
                    || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                        series
                            .strip_suffix(suffix)
                            .is_some_and(|f| kinds.get(f) == Some(&"histogram"))
                    });
                assert!(declared, "sample of no declared family: {line}");
                let value = c.get(2).unwrap().as_str();
                assert!(
                    value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
                    "not a float: {line}"
                );
            } else {
                panic!("not Prometheus text: {line:?}");
            }
        }
    }

    #[test]
    fn the_output_is_prometheus_text() {
        assert_prometheus_text(&render_example());
        assert_prometheus_text(
            &Metrics::default()
                .render((0, 0, 8), &[], None, (0, &[]))
                .unwrap(),
        );
    }
}
