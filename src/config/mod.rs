//! Settings read from the environment (and an optional `.env` file, loaded by `main`).
//!
//! Every variable is read through [`EnvSource::get`], so an error always names the
//! variable. `.env.example` lists every variable with a one-line comment; keep the two in
//! step.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

mod replicas;
mod values;

pub use replicas::{MAX_REPLICAS, ReplicaSettings};
pub use values::{AuthMode, CorsOrigins, DatabaseUrl, TrustedProxies};

/// Bytes of the ingest memory budget (`INGEST_MEMORY_MIB`) one body byte holds while it
/// is read, parsed and written: the body, its parsed points, the deduplication index
/// and the `COPY` text of its batch (points with several numeric fields cost the most).
pub const INGEST_MEMORY_PER_BODY_BYTE: usize = 10;

/// A configuration error: which variable, and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where settings come from: the process environment, or a map in tests.
pub struct EnvSource {
    vars: HashMap<String, String>,
}

impl EnvSource {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// A fixed set of variables (tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Parses `name` with `FromStr`, or returns `default` when it is unset.
    pub fn get<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(name).map(str::trim) {
            None | Some("") => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| ConfigError {
                variable: name,
                message: format!("'{value}': {e}"),
            }),
        }
    }

    fn get_bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError {
                variable: name,
                message: format!("'{v}': expected true or false"),
            }),
        }
    }

    fn get_positive(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        let value: u64 = self.get(name, default)?;
        if value == 0 {
            return Err(ConfigError {
                variable: name,
                message: "must be greater than 0".into(),
            });
        }
        Ok(value)
    }
}

/// Pooled connections kept out of reach of the ingest writers and heavy work: one for
/// `/health/` and at least one for everything else (token lookups, the latest points,
/// session lists, queries).
pub const POOL_RESERVE: u32 = 2;

/// `HEAVY_CONNECTIONS`, checked against `DB_POOL_SIZE`: the ingest writers (each holds a
/// connection while it commits a batch), heavy work and [`POOL_RESERVE`] must fit the
/// pool, so that neither writes nor exports and bulk loads can take the connections
/// `/health/` and small requests need. Default: what the writers and the reserve leave,
/// at least 1.
fn pool_budget(env: &EnvSource, pool: u32, writers: u32) -> Result<u32, ConfigError> {
    let (pool, writers, reserve) = (u64::from(pool), u64::from(writers), u64::from(POOL_RESERVE));
    let left = pool.saturating_sub(writers + reserve);
    let heavy = env.get_positive("HEAVY_CONNECTIONS", left.max(1))?;
    if heavy > left {
        let given = env
            .raw("HEAVY_CONNECTIONS")
            .is_some_and(|v| !v.trim().is_empty());
        return Err(ConfigError {
            variable: if given {
                "HEAVY_CONNECTIONS"
            } else {
                "DB_POOL_SIZE"
            },
            message: format!(
                "HEAVY_CONNECTIONS ({heavy}) + INGEST_WRITERS ({writers}) + {reserve} reserved \
                 for /health/ and small requests need DB_POOL_SIZE of at least {}, and it is {pool}",
                heavy.saturating_add(writers + reserve)
            ),
        });
    }
    // `heavy <= left <= pool`, a u32.
    Ok(u32::try_from(heavy).unwrap_or(u32::MAX))
}

/// Everything the service can be told from outside.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    /// Hot standbys that serve reads, and how they are watched.
    pub replicas: ReplicaSettings,
    /// `None` when `REDIS_URL` is set to the empty string: no Redis, in-process cache.
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub listen_addr: SocketAddr,
    pub workers: usize,
    pub db_pool_size: u32,
    /// Pooled connections heavy work (exports, bulk-load batches, deleting a session, a
    /// range, a user or a series' points) may hold at once; see [`pool_budget`].
    pub heavy_connections: u32,
    /// The longest heavy work waits for one of those connections before a 503.
    pub heavy_queue_timeout: Duration,
    /// Exports (`format=csv|ndjson`) one token may run at once in this process.
    pub max_exports_per_token: usize,
    /// Bulk loads one token may run at once in this process.
    pub max_bulk_loads_per_token: usize,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers make the scheme and host of
    /// links.
    pub trusted_proxies: TrustedProxies,
    /// Uncached queries computed at once; the others wait in arrival order.
    pub query_concurrency: usize,
    /// The longest an uncached query waits for its turn before a 503.
    pub query_queue_timeout: Duration,
    pub db_pool_timeout: Duration,
    pub statement_timeout: Duration,
    pub db_jit: bool,
    pub auto_migrate: bool,
    pub max_body_bytes: usize,
    /// Memory that ingest bodies being read and processed may hold at once (estimated as
    /// [`INGEST_MEMORY_PER_BODY_BYTE`] per body byte), in bytes.
    pub ingest_memory_bytes: usize,
    /// Longest wait for a share of the ingest memory budget before a 503.
    pub ingest_memory_wait: Duration,
    pub max_points_per_request: usize,
    /// How far from now written points' times may lie.
    pub write_window: crate::domain::write_window::WriteWindow,
    pub partition_premake_weeks: u32,
    pub shutdown_timeout: Duration,
    pub ingest_writers: usize,
    pub ingest_batch_points: usize,
    /// Points one transaction of a deletion (a range, or a user's erase) deletes at most.
    pub delete_batch_points: i64,
    /// Sessions one transaction of a user's erase deletes at most.
    pub erase_batch_sessions: i64,
    pub max_buckets: i64,
    pub cache_ttl: Duration,
    pub cache_ttl_recent: Duration,
    pub redis_timeout: Duration,
    /// Weeks of points kept; older whole weeks are dropped. `None`: keep everything.
    pub retention_weeks: Option<u32>,
    /// On TimescaleDB, weeks after which chunks of points are compressed. `None`: never.
    pub compress_after_weeks: Option<u32>,
    /// Period of the maintenance jobs (partition pre-making, retention).
    pub maintenance_period: Duration,
    /// Period of the rollup refresh job.
    pub rollup_period: Duration,
    /// Time the rollup job may spend per run before it waits for the next period.
    pub rollup_budget: Duration,
    /// How often the rollup job vacuums the tables it churns (`None`: never).
    pub rollup_vacuum_period: Option<Duration>,
    /// Batches of new sessions append the hourly aggregates of their points in this many
    /// hours, from the current UTC hour back, to the rollups (0: none).
    pub rollup_append_hours: u32,
    /// Whether queries may read rollups (false: always raw points).
    pub rollups: bool,
    /// Whether requests need a token.
    pub auth: AuthMode,
    /// How long a token lookup is trusted (at most a second: a revoked token is refused
    /// by every replica within it).
    pub auth_cache_ttl: Duration,
    /// Requests per second each token may make on average; 0: no limit.
    pub rate_limit_per_sec: u32,
    /// Requests a token may make at once above the average rate.
    pub rate_limit_burst: u32,
    /// Deepest nesting of arrays and objects in a JSON body.
    pub max_json_depth: usize,
    /// Limits on `series` patterns.
    pub pattern_limits: crate::domain::query::PatternLimits,
    /// Time a client has to send a request's head (actix's `client_request_timeout`;
    /// zero: none).
    pub client_request_timeout: Duration,
    /// Time given to a client to acknowledge the connection's close.
    pub client_disconnect_timeout: Duration,
    /// How long an idle keep-alive connection stays open (zero: no keep-alive).
    pub keep_alive: Duration,
    /// Longest wait for the next chunk of a request body (408 beyond).
    pub body_read_timeout: Duration,
    /// Which browser origins may call the API.
    pub cors_allowed_origins: CorsOrigins,
}

impl Settings {
    pub const DEFAULT_DATABASE_URL: &'static str = "postgres://postgres@127.0.0.1:5432/seriesd";

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&EnvSource::process())
    }

    pub fn from_source(env: &EnvSource) -> Result<Self, ConfigError> {
        let database_url = env.get(
            "DATABASE_URL",
            DatabaseUrl(Self::DEFAULT_DATABASE_URL.to_string()),
        )?;
        let redis_url = match env.raw("REDIS_URL") {
            None => Some("redis://127.0.0.1:6379/0".to_string()),
            Some(v) if v.trim().is_empty() => None,
            Some(v) => {
                let v = v.trim();
                if !(v.starts_with("redis://")
                    || v.starts_with("rediss://")
                    || v.starts_with("unix://"))
                {
                    return Err(ConfigError {
                        variable: "REDIS_URL",
                        message: format!("'{v}': expected a redis:// URL, or empty for none"),
                    });
                }
                Some(v.to_string())
            }
        };
        let cpus = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let max_body_mib = env.get_positive("MAX_BODY_MIB", 128)?;
        // At least one largest body's share, so that any body MAX_BODY_MIB allows is
        // admitted (alone) within the budget.
        let min_ingest_mib = max_body_mib.saturating_mul(INGEST_MEMORY_PER_BODY_BYTE as u64);
        let ingest_memory_mib = env.get_positive("INGEST_MEMORY_MIB", min_ingest_mib)?;
        if ingest_memory_mib < min_ingest_mib {
            return Err(ConfigError {
                variable: "INGEST_MEMORY_MIB",
                message: format!(
                    "'{ingest_memory_mib}': at least {INGEST_MEMORY_PER_BODY_BYTE} x MAX_BODY_MIB \
                     = {min_ingest_mib}, the share of one largest body (or lower MAX_BODY_MIB)"
                ),
            });
        }
        let ingest_writers = env.get_positive("INGEST_WRITERS", 3)? as usize;
        // A statement runs on one core: a few more connections than cores keep them
        // busy, and more only add contention. At least the ingest writers, one heavy
        // connection and the reserve (see `pool_budget`).
        let db_pool_size =
            env.get_positive("DB_POOL_SIZE", (2 * cpus).max(ingest_writers + 3) as u64)? as u32;
        let heavy_connections = pool_budget(env, db_pool_size, ingest_writers as u32)?;
        Ok(Self {
            database_url,
            replicas: ReplicaSettings::from_source(env)?,
            redis_url,
            redis_prefix: env.get("REDIS_PREFIX", "seriesd".to_string())?,
            listen_addr: env.get("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            workers: env.get_positive("WORKERS", cpus as u64)? as usize,
            db_pool_size,
            heavy_connections,
            heavy_queue_timeout: Duration::from_millis(
                env.get_positive("HEAVY_QUEUE_TIMEOUT_MS", 30_000)?,
            ),
            // Twice the CPUs: enough to keep the cores busy while a statement waits on a
            // round trip. Past that, more queries at once only share the cores more finely
            // and every answer is late; waiting in line instead, a saturating mixed load's
            // query p99 went from 2.1-2.3 to 1.5-1.7 times its p50 (same throughput), and
            // ingests (which do not wait in this line) from 26-29 to 8-11 ms at the median.
            query_concurrency: env.get_positive("QUERY_CONCURRENCY", 2 * cpus as u64)? as usize,
            // As long as a statement may run: slow queries (raw points over years, ~0.5 s
            // each) from 16 clients at once waited more than 5 s for their turn, though
            // each was answered well within the statement timeout.
            query_queue_timeout: Duration::from_millis(
                env.get_positive("QUERY_QUEUE_TIMEOUT_MS", 30_000)?,
            ),
            db_pool_timeout: Duration::from_millis(env.get_positive("DB_POOL_TIMEOUT_MS", 5000)?),
            statement_timeout: Duration::from_millis(
                env.get_positive("DB_STATEMENT_TIMEOUT_MS", 30_000)?,
            ),
            db_jit: env.get_bool("DB_JIT", false)?,
            auto_migrate: env.get_bool("AUTO_MIGRATE", true)?,
            max_body_bytes: (max_body_mib as usize).saturating_mul(1024 * 1024),
            ingest_memory_bytes: (ingest_memory_mib as usize).saturating_mul(1024 * 1024),
            ingest_memory_wait: Duration::from_millis(
                env.get_positive("INGEST_MEMORY_WAIT_MS", 30_000)?,
            ),
            max_points_per_request: env.get_positive("MAX_POINTS_PER_REQUEST", 1_000_000)? as usize,
            write_window: crate::domain::write_window::WriteWindow {
                past_days: env.get("WRITE_WINDOW_PAST_DAYS", 1096)?,
                future_days: env.get("WRITE_WINDOW_FUTURE_DAYS", 7)?,
            },
            partition_premake_weeks: env.get("PARTITION_PREMAKE_WEEKS", 4)?,
            shutdown_timeout: Duration::from_secs(env.get_positive("SHUTDOWN_TIMEOUT_SECS", 30)?),
            ingest_writers,
            ingest_batch_points: env.get_positive("INGEST_BATCH_POINTS", 20_000)? as usize,
            delete_batch_points: env
                .get_positive("DELETE_BATCH_POINTS", 10_000)?
                .min(i64::MAX as u64) as i64,
            erase_batch_sessions: env
                .get_positive("ERASE_BATCH_SESSIONS", 500)?
                .min(i64::MAX as u64) as i64,
            max_buckets: env.get_positive("MAX_BUCKETS", 10_000)? as i64,
            cache_ttl: Duration::from_secs(env.get("CACHE_TTL_SECS", 3600)?),
            cache_ttl_recent: Duration::from_secs(env.get("CACHE_TTL_RECENT_SECS", 5)?),
            redis_timeout: Duration::from_millis(env.get_positive("REDIS_TIMEOUT_MS", 250)?),
            retention_weeks: match env.get::<u32>("RETENTION_WEEKS", 0)? {
                0 => None,
                n => Some(n),
            },
            compress_after_weeks: match env.get::<u32>("COMPRESS_AFTER_WEEKS", 0)? {
                0 => None,
                n => Some(n),
            },
            maintenance_period: Duration::from_secs(
                env.get_positive("MAINTENANCE_PERIOD_SECS", 3600)?,
            ),
            rollup_period: Duration::from_millis(env.get_positive("ROLLUP_PERIOD_MS", 1000)?),
            rollup_budget: Duration::from_millis(env.get_positive("ROLLUP_BUDGET_MS", 250)?),
            rollup_append_hours: env.get("ROLLUP_APPEND_HOURS", 2)?,
            rollup_vacuum_period: match env.get::<u64>("ROLLUP_VACUUM_SECS", 60)? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            rollups: env.get_bool("ROLLUPS", true)?,
            auth: env.get("AUTH", AuthMode::Required)?,
            auth_cache_ttl: {
                let ms: u64 = env.get("AUTH_CACHE_TTL_MS", 1000)?;
                if ms > 1000 {
                    return Err(ConfigError {
                        variable: "AUTH_CACHE_TTL_MS",
                        message: format!(
                            "'{ms}': at most 1000, so that a revoked token is refused within a second"
                        ),
                    });
                }
                Duration::from_millis(ms)
            },
            rate_limit_per_sec: env.get("RATE_LIMIT_PER_SEC", 1000)?,
            rate_limit_burst: env.get_positive("RATE_LIMIT_BURST", 2000)? as u32,
            max_json_depth: {
                let depth: usize = env.get("MAX_JSON_DEPTH", 64)?;
                if !(1..=128).contains(&depth) {
                    return Err(ConfigError {
                        variable: "MAX_JSON_DEPTH",
                        message: format!("'{depth}': from 1 to 128 (the JSON parser's own limit)"),
                    });
                }
                depth
            },
            pattern_limits: crate::domain::query::PatternLimits {
                max_patterns: env.get_positive("MAX_SERIES_PATTERNS", 32)? as usize,
                max_chars: env.get_positive("MAX_PATTERN_CHARS", 256)? as usize,
                max_regex_bytes: env.get_positive("MAX_REGEX_BYTES", 64 * 1024)? as usize,
            },
            client_request_timeout: Duration::from_millis(
                env.get("CLIENT_REQUEST_TIMEOUT_MS", 5000)?,
            ),
            client_disconnect_timeout: Duration::from_millis(
                env.get("CLIENT_DISCONNECT_TIMEOUT_MS", 1000)?,
            ),
            keep_alive: Duration::from_secs(env.get("KEEP_ALIVE_SECS", 5)?),
            body_read_timeout: Duration::from_millis(
                env.get_positive("BODY_READ_TIMEOUT_MS", 30_000)?,
            ),
            max_exports_per_token: env.get_positive("MAX_EXPORTS_PER_TOKEN", 2)? as usize,
            max_bulk_loads_per_token: env.get_positive("MAX_BULK_LOADS_PER_TOKEN", 1)? as usize,
            trusted_proxies: env.get("TRUSTED_PROXIES", TrustedProxies::default())?,
            cors_allowed_origins: match env.raw("CORS_ALLOWED_ORIGINS") {
                None => CorsOrigins::Off,
                Some(v) => CorsOrigins::parse(v).map_err(|message| ConfigError {
                    variable: "CORS_ALLOWED_ORIGINS",
                    message,
                })?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::from_source(&EnvSource::from_pairs::<_, &str, &str>([])).unwrap();
        assert_eq!(s.listen_addr.to_string(), "127.0.0.1:8000");
        assert_eq!(s.database_url.database_name(), "seriesd");
        assert_eq!(s.redis_url.as_deref(), Some("redis://127.0.0.1:6379/0"));
        assert!(s.max_body_bytes >= 64 * 1024 * 1024);
        assert_eq!(
            s.ingest_memory_bytes,
            INGEST_MEMORY_PER_BODY_BYTE * s.max_body_bytes
        );
    }

    #[test]
    fn the_ingest_memory_budget_holds_one_largest_body_at_least() {
        let s = Settings::from_source(&EnvSource::from_pairs([
            ("MAX_BODY_MIB", "8"),
            ("INGEST_MEMORY_MIB", "80"),
        ]))
        .unwrap();
        assert_eq!(s.ingest_memory_bytes, 80 << 20);
        let e = Settings::from_source(&EnvSource::from_pairs([
            ("MAX_BODY_MIB", "8"),
            ("INGEST_MEMORY_MIB", "79"),
        ]))
        .unwrap_err();
        assert_eq!(e.variable, "INGEST_MEMORY_MIB");
        assert!(e.message.contains("MAX_BODY_MIB"), "{e}");
    }

    #[test]
    fn empty_redis_url_means_no_redis() {
        let s = Settings::from_source(&EnvSource::from_pairs([("REDIS_URL", "")])).unwrap();
        assert_eq!(s.redis_url, None);
    }

    #[test]
    fn errors_name_the_variable() {
        let e =
            Settings::from_source(&EnvSource::from_pairs([("LISTEN_ADDR", "nope")])).unwrap_err();
        assert_eq!(e.variable, "LISTEN_ADDR");
        assert!(e.to_string().starts_with("invalid LISTEN_ADDR: 'nope'"));
        let e = Settings::from_source(&EnvSource::from_pairs([("DB_POOL_SIZE", "0")])).unwrap_err();
        assert_eq!(e.variable, "DB_POOL_SIZE");
        let e = Settings::from_source(&EnvSource::from_pairs([("DB_JIT", "maybe")])).unwrap_err();
        assert_eq!(e.variable, "DB_JIT");
    }

    #[test]
    fn security_settings_default_to_safe_values_and_are_checked() {
        let s = Settings::from_source(&EnvSource::from_pairs::<_, &str, &str>([])).unwrap();
        assert_eq!(s.auth, AuthMode::Required);
        assert_eq!(s.auth_cache_ttl, Duration::from_secs(1));
        assert_eq!(s.cors_allowed_origins, CorsOrigins::Off);
        assert!(s.rate_limit_per_sec > 0);
        let s = Settings::from_source(&EnvSource::from_pairs([
            ("AUTH", "Disabled"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://a.example, http://localhost:3000",
            ),
        ]))
        .unwrap();
        assert_eq!(s.auth, AuthMode::Disabled);
        assert_eq!(
            s.cors_allowed_origins,
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:3000".into()
            ])
        );
        for (var, value) in [
            ("AUTH", "off"),
            ("AUTH_CACHE_TTL_MS", "5000"),
            ("MAX_JSON_DEPTH", "500"),
            ("MAX_JSON_DEPTH", "0"),
            ("CORS_ALLOWED_ORIGINS", "https://a.example/path"),
            ("CORS_ALLOWED_ORIGINS", "a.example"),
            ("RATE_LIMIT_BURST", "0"),
            ("INGEST_MEMORY_MIB", "1279"),
            ("INGEST_MEMORY_WAIT_MS", "0"),
        ] {
            let e = Settings::from_source(&EnvSource::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(e.variable, var, "{var}={value}");
        }
    }

    #[test]
    fn every_variable_is_in_env_example_and_the_readme() {
        let source = [include_str!("mod.rs"), include_str!("replicas.rs")].concat();
        let example = include_str!("../../.env.example");
        let readme = include_str!("../../README.md");
        let names =
            regex::Regex::new(r#"env\.(?:get|get_bool|get_positive|raw)\(\s*"([A-Z_]+)""#).unwrap();
        let mut seen = 0;
        for c in names.captures_iter(&source) {
            let name = &c[1];
            seen += 1;
            assert!(
                example.lines().any(|l| l.starts_with(&format!("{name}="))),
                "{name} is missing from .env.example"
            );
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} is missing from the README's configuration table"
            );
        }
        assert!(seen > 30, "{seen}");
    }

    #[test]
    fn writers_heavy_work_and_the_reserve_must_fit_the_pool() {
        let settings = |pairs: &[(&str, &str)]| {
            Settings::from_source(&EnvSource::from_pairs(pairs.iter().copied()))
        };
        let s = settings(&[("DB_POOL_SIZE", "8")]).unwrap();
        assert_eq!(s.heavy_connections, 8 - 3 - POOL_RESERVE);
        assert_eq!(
            (s.max_exports_per_token, s.max_bulk_loads_per_token),
            (2, 1)
        );
        assert!(s.trusted_proxies.is_empty());
        // The default pool always leaves one heavy connection and the reserve.
        let s = settings(&[]).unwrap();
        assert!(s.heavy_connections >= 1);
        assert!(s.ingest_writers as u32 + s.heavy_connections + POOL_RESERVE <= s.db_pool_size);
        let s = settings(&[("DB_POOL_SIZE", "4"), ("INGEST_WRITERS", "1")]).unwrap();
        assert_eq!(s.heavy_connections, 1);
        // Too many heavy connections for the pool: the error names the settings.
        let e = settings(&[("DB_POOL_SIZE", "8"), ("HEAVY_CONNECTIONS", "4")]).unwrap_err();
        assert_eq!(e.variable, "HEAVY_CONNECTIONS");
        assert_eq!(
            e.to_string(),
            "invalid HEAVY_CONNECTIONS: HEAVY_CONNECTIONS (4) + INGEST_WRITERS (3) + 2 reserved \
             for /health/ and small requests need DB_POOL_SIZE of at least 9, and it is 8"
        );
        // A pool too small for even one: the pool is what to change.
        let e = settings(&[("DB_POOL_SIZE", "4")]).unwrap_err();
        assert_eq!(e.variable, "DB_POOL_SIZE");
        assert!(e.message.contains("HEAVY_CONNECTIONS (1)"), "{e}");
        for (var, value) in [
            ("HEAVY_CONNECTIONS", "0"),
            ("HEAVY_QUEUE_TIMEOUT_MS", "0"),
            ("MAX_EXPORTS_PER_TOKEN", "0"),
            ("MAX_BULK_LOADS_PER_TOKEN", "x"),
            ("TRUSTED_PROXIES", "10.0.0.0/40"),
        ] {
            let e = settings(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{var}={value}");
        }
    }
}
