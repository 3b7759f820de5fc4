//! The read replicas' settings: which hot standbys of `DATABASE_URL` serve reads, how
//! often they are checked, and how far behind one may be and still serve.

use super::{ConfigError, DatabaseUrl, EnvSource};
use std::time::Duration;

/// The most replicas `DATABASE_REPLICA_URLS` may name (each has a pool and a health
/// check of its own).
pub const MAX_REPLICAS: usize = 16;

/// Where reads may go besides the primary, and how replicas are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// `DATABASE_REPLICA_URLS`: hot standbys of the primary; empty: every read goes to the
    /// primary.
    pub urls: Vec<DatabaseUrl>,
    /// `REPLICA_MAX_LAG_MS`: a replica further behind the primary serves no reads.
    pub max_lag: Duration,
    /// `REPLICA_CHECK_INTERVAL_MS`: how often each replica is checked while it answers.
    pub check_interval: Duration,
    /// `REPLICA_TIMEOUT_MS`: the longest a check waits for an answer, and a read for a
    /// replica's pooled connection, before the replica counts as down.
    pub timeout: Duration,
    /// `REPLICA_RETRY_MAX_MS`: a replica that is down is checked again after a delay that
    /// doubles from `check_interval` up to this.
    pub retry_max: Duration,
}

impl ReplicaSettings {
    pub fn from_source(env: &EnvSource) -> Result<Self, ConfigError> {
        let urls = match env.raw("DATABASE_REPLICA_URLS") {
            None => Vec::new(),
            Some(v) => parse_urls(v).map_err(|message| ConfigError {
                variable: "DATABASE_REPLICA_URLS",
                message,
            })?,
        };
        let settings = Self {
            urls,
            max_lag: Duration::from_millis(env.get_positive("REPLICA_MAX_LAG_MS", 1000)?),
            check_interval: Duration::from_millis(
                env.get_positive("REPLICA_CHECK_INTERVAL_MS", 250)?,
            ),
            timeout: Duration::from_millis(env.get_positive("REPLICA_TIMEOUT_MS", 500)?),
            retry_max: Duration::from_millis(env.get_positive("REPLICA_RETRY_MAX_MS", 10_000)?),
        };
        if settings.retry_max < settings.check_interval {
            return Err(ConfigError {
                variable: "REPLICA_RETRY_MAX_MS",
                message: format!(
                    "'{}': at least REPLICA_CHECK_INTERVAL_MS ({})",
                    settings.retry_max.as_millis(),
                    settings.check_interval.as_millis()
                ),
            });
        }
        Ok(settings)
    }
}

/// Parses the comma-separated URLs: each a `postgres://` URL, at most [`MAX_REPLICAS`],
/// none twice.
fn parse_urls(value: &str) -> Result<Vec<DatabaseUrl>, String> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.len() > MAX_REPLICAS {
        return Err(format!(
            "{} URLs: at most {MAX_REPLICAS} replicas",
            items.len()
        ));
    }
    let mut urls: Vec<DatabaseUrl> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let url = DatabaseUrl::parse(item).map_err(|e| format!("URL {}: {e}", i + 1))?;
        if urls.contains(&url) {
            return Err(format!("URL {} is named twice", i + 1));
        }
        urls.push(url);
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<ReplicaSettings, ConfigError> {
        ReplicaSettings::from_source(&EnvSource::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn no_replicas_by_default() {
        let s = settings(&[]).unwrap();
        assert!(s.urls.is_empty());
        assert_eq!(s.max_lag, Duration::from_secs(1));
        // Down or unreachable: noticed within a second.
        assert!(s.check_interval + s.timeout <= Duration::from_secs(1));
        assert!(
            settings(&[("DATABASE_REPLICA_URLS", " ")])
                .unwrap()
                .urls
                .is_empty()
        );
    }

    #[test]
    fn urls_are_comma_separated_and_checked() {
        let s = settings(&[(
            "DATABASE_REPLICA_URLS",
            "postgres://r1:5432/seriesd, postgresql://u:pw@r2/seriesd?sslmode=require,",
        )])
        .unwrap();
        assert_eq!(s.urls.len(), 2);
        assert_eq!(s.urls[1].database_name(), "seriesd");
        for bad in [
            "mysql://r1/seriesd",
            "postgres://r1",
            "postgres://r1/a,postgres://r1/a",
        ] {
            let e = settings(&[("DATABASE_REPLICA_URLS", bad)]).unwrap_err();
            assert_eq!(e.variable, "DATABASE_REPLICA_URLS", "{bad}");
            // The message never repeats a URL, which may hold a password.
            assert!(!e.message.contains("r1"), "{e}");
        }
        let many = vec!["postgres://r/db"; MAX_REPLICAS + 1].join(",");
        let e = settings(&[("DATABASE_REPLICA_URLS", &many)]).unwrap_err();
        assert!(e.message.contains("at most 16"), "{e}");
    }

    #[test]
    fn timings_are_positive_and_the_backoff_cap_is_at_least_the_interval() {
        for var in [
            "REPLICA_MAX_LAG_MS",
            "REPLICA_CHECK_INTERVAL_MS",
            "REPLICA_TIMEOUT_MS",
            "REPLICA_RETRY_MAX_MS",
        ] {
            assert_eq!(settings(&[(var, "0")]).unwrap_err().variable, var);
        }
        let e = settings(&[
            ("REPLICA_CHECK_INTERVAL_MS", "500"),
            ("REPLICA_RETRY_MAX_MS", "400"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "REPLICA_RETRY_MAX_MS");
    }
}
