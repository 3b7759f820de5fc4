//! The parameters of `GET /api/timeseries/` once validated: aggregation, fill, series
//! patterns.

use super::interval::{Interval, MAX_FIXED_SECS, WidthError, parse_width};
use regex::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// `agg_func`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    Avg,
    Min,
    Max,
    Count,
    Sum,
    First,
    Last,
    Median,
    P90,
    P95,
    P99,
    Stddev,
}

impl AggFunc {
    pub const ALL: [AggFunc; 12] = [
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::Count,
        Self::Sum,
        Self::First,
        Self::Last,
        Self::Median,
        Self::P90,
        Self::P95,
        Self::P99,
        Self::Stddev,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
            Self::Sum => "sum",
            Self::First => "first",
            Self::Last => "last",
            Self::Median => "median",
            Self::P90 => "p90",
            Self::P95 => "p95",
            Self::P99 => "p99",
            Self::Stddev => "stddev",
        }
    }

    /// The quantile a percentile stands for (`median` 0.5, `p90` 0.9, ...).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Self::Median => Some(0.5),
            Self::P90 => Some(0.9),
            Self::P95 => Some(0.95),
            Self::P99 => Some(0.99),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "'{}' is not an aggregate function; use one of {}.",
                    s.chars().take(40).collect::<String>(),
                    names.join(", ")
                )
            })
    }
}

/// `fill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fill {
    None,
    Null,
    Zero,
    Previous,
    Linear,
}

impl Fill {
    pub const ALL: [Fill; 5] = [
        Self::None,
        Self::Null,
        Self::Zero,
        Self::Previous,
        Self::Linear,
    ];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "null" => Ok(Self::Null),
            "zero" => Ok(Self::Zero),
            "previous" => Ok(Self::Previous),
            "linear" => Ok(Self::Linear),
            _ => Err("Use one of none, null, zero, previous, linear.".into()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Null => "null",
            Self::Zero => "zero",
            Self::Previous => "previous",
            Self::Linear => "linear",
        }
    }
}

/// `max_gap`: the longest gap `fill=previous|linear` fills, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxGap(i64);

impl MaxGap {
    /// Parses a width (`90m`, `3d`, `2w`), as fixed `interval` widths are written.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_width(s).map(Self).map_err(|e| match e {
            WidthError::NotAWidth => format!(
                "'{}' is not a duration: use a width like 90m, 6h, 3d, 2w.",
                s.trim().chars().take(40).collect::<String>()
            ),
            WidthError::Zero => "Must be longer than zero.".into(),
            WidthError::TooLong => {
                format!("Must be at most {}d (100 years).", MAX_FIXED_SECS / 86_400)
            }
        })
    }

    pub fn seconds(self) -> i64 {
        self.0
    }

    /// As metadata and cache keys show it (`90m`, `3d`).
    pub fn canonical(self) -> String {
        Interval::Fixed(self.0).canonical()
    }
}

/// Limits on `series` patterns (`MAX_SERIES_PATTERNS`, `MAX_PATTERN_CHARS`,
/// `MAX_REGEX_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternLimits {
    /// Most comma-separated patterns.
    pub max_patterns: usize,
    /// Most characters in one pattern.
    pub max_chars: usize,
    /// Largest compiled program of one pattern, in bytes (the regex crate's size limit).
    pub max_regex_bytes: usize,
}

impl Default for PatternLimits {
    fn default() -> Self {
        Self {
            max_patterns: 32,
            max_chars: 256,
            max_regex_bytes: 64 * 1024,
        }
    }
}

/// Deepest nesting of groups in a pattern.
const NEST_LIMIT: u32 = 32;

/// Compiled patterns kept by the process at most (the map is emptied when full).
const KEPT_PATTERNS: usize = 256;

/// Compiles `^(?:re)$` within `limits`, or takes it from the patterns compiled before: a
/// handful of patterns serve nearly every query, and compiling one again on each request
/// was a few percent of the server's CPU under a query load. Kept shared, one compiled
/// pattern also keeps its matching caches warm across requests.
fn compile(re: &str, limits: &PatternLimits) -> Result<Arc<Regex>, regex::Error> {
    /// Compiled patterns by (pattern, size limit).
    type Kept = HashMap<(String, usize), Arc<Regex>>;
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    let kept = KEPT.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (re.to_string(), limits.max_regex_bytes);
    if let Some(hit) = kept.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(hit.clone());
    }
    let compiled = Arc::new(
        RegexBuilder::new(&format!("^(?:{re})$"))
            .size_limit(limits.max_regex_bytes)
            .dfa_size_limit(limits.max_regex_bytes)
            .nest_limit(NEST_LIMIT)
            .build()?,
    );
    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() >= KEPT_PATTERNS {
        kept.clear();
    }
    kept.insert(key, compiled.clone());
    Ok(compiled)
}

/// The comma-separated `series` patterns, each matched against the whole series name.
#[derive(Debug, Clone)]
pub struct SeriesPatterns {
    /// The patterns as given (normalised: trimmed, empty ones dropped).
    pub source: Vec<String>,
    compiled: Vec<Arc<Regex>>,
}

impl SeriesPatterns {
    /// Parses `a,b.*,c` with the default limits.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_with(s, &PatternLimits::default())
    }

    /// Parses `a,b.*,c`. A pattern that is not a valid regular expression but is a valid
    /// `*` glob is taken as a glob. The regex engine is linear-time and size-limited.
    pub fn parse_with(s: &str, limits: &PatternLimits) -> Result<Self, String> {
        let source: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        if source.len() > limits.max_patterns {
            return Err(format!(
                "At most {} patterns are accepted (MAX_SERIES_PATTERNS).",
                limits.max_patterns
            ));
        }
        let mut compiled = Vec::with_capacity(source.len());
        for p in &source {
            if p.chars().count() > limits.max_chars {
                return Err(format!(
                    "Pattern '{}…' is longer than {} characters (MAX_PATTERN_CHARS).",
                    p.chars().take(32).collect::<String>(),
                    limits.max_chars
                ));
            }
            let re = match compile(p, limits) {
                Ok(re) => re,
                Err(regex::Error::CompiledTooBig(limit)) => {
                    return Err(format!(
                        "Pattern '{}' compiles to a program larger than {limit} bytes (MAX_REGEX_BYTES).",
                        p.chars().take(32).collect::<String>()
                    ));
                }
                Err(regex_err) => {
                    let glob = p
                        .split('*')
                        .map(regex::escape)
                        .collect::<Vec<_>>()
                        .join(".*");
                    match (p.contains('*'), compile(&glob, limits)) {
                        (true, Ok(re)) => re,
                        _ => {
                            return Err(format!(
                                "Pattern '{p}' is neither a valid regular expression nor a * glob: {}",
                                regex_err.to_string().lines().last().unwrap_or("invalid")
                            ));
                        }
                    }
                }
            };
            compiled.push(re);
        }
        Ok(Self { source, compiled })
    }

    /// No pattern: every series.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    pub fn matches(&self, name: &str) -> bool {
        self.compiled.is_empty() || self.compiled.iter().any(|re| re.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names_as_regex_or_glob() {
        let p = SeriesPatterns::parse("session.urine.*").unwrap();
        assert!(p.matches("session.urine.color"));
        assert!(!p.matches("session.gut_health_score"));
        let p = SeriesPatterns::parse("session.gut_health_score, session.urine.color").unwrap();
        assert!(p.matches("session.gut_health_score"));
        assert!(!p.matches("xsession.gut_health_score"));
        // Not a regex (a leading *), but a glob.
        let p = SeriesPatterns::parse("*.color").unwrap();
        assert!(p.matches("session.urine.color"));
        assert!(SeriesPatterns::parse("session.(").is_err());
        assert!(SeriesPatterns::parse("").unwrap().is_empty());
    }

    #[test]
    fn hostile_patterns_are_bounded() {
        assert!(SeriesPatterns::parse(&"a".repeat(300)).is_err());
        assert!(SeriesPatterns::parse(&vec!["a"; 40].join(",")).is_err());
        let p = SeriesPatterns::parse("(a+)+$").unwrap();
        let started = std::time::Instant::now();
        assert!(!p.matches(&format!("{}b", "a".repeat(10_000))));
        assert!(started.elapsed().as_millis() < 500);
        assert!(
            SeriesPatterns::parse(
                "(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))"
            )
            .is_err()
        );
    }

    #[test]
    fn limits_are_configurable_and_named() {
        let tight = PatternLimits {
            max_patterns: 2,
            max_chars: 10,
            max_regex_bytes: 2000,
        };
        let e = SeriesPatterns::parse_with("a,b,c", &tight).unwrap_err();
        assert!(e.contains("MAX_SERIES_PATTERNS"), "{e}");
        let e = SeriesPatterns::parse_with("abcdefghijk", &tight).unwrap_err();
        assert!(e.contains("MAX_PATTERN_CHARS"), "{e}");
        let e = SeriesPatterns::parse_with(r"\w{5}", &tight).unwrap_err();
        assert!(e.contains("MAX_REGEX_BYTES"), "{e}");
        assert!(SeriesPatterns::parse_with("a.*,b", &tight).is_ok());
    }

    #[test]
    fn a_pattern_compiled_before_is_still_held_to_a_tighter_limit() {
        let loose = SeriesPatterns::parse("[a-z]{50}").unwrap();
        assert!(loose.matches(&"x".repeat(50)) && !loose.matches(&"x".repeat(49)));
        let tight = PatternLimits {
            max_regex_bytes: 2000,
            ..PatternLimits::default()
        };
        let e = SeriesPatterns::parse_with("[a-z]{50}", &tight).unwrap_err();
        assert!(e.contains("MAX_REGEX_BYTES"), "{e}");
        // And the kept one still matches the same names.
        assert!(
            SeriesPatterns::parse("[a-z]{50}")
                .unwrap()
                .matches(&"y".repeat(50))
        );
    }

    #[test]
    fn agg_and_fill_names() {
        assert_eq!(AggFunc::parse("P95"), Ok(AggFunc::P95));
        assert!(AggFunc::parse("mode").unwrap_err().contains("stddev"));
        assert_eq!(Fill::parse("linear"), Ok(Fill::Linear));
        assert!(Fill::parse("spline").is_err());
    }

    #[test]
    fn max_gaps_are_widths() {
        assert_eq!(MaxGap::parse("90m").unwrap().seconds(), 5400);
        assert_eq!(MaxGap::parse("90m").unwrap().canonical(), "90m");
        assert_eq!(MaxGap::parse(" 72h").unwrap().canonical(), "3d");
        for bad in ["", "3", "1.5h", "-1h", "week", "0m", "36526d"] {
            assert!(MaxGap::parse(bad).is_err(), "{bad}");
        }
    }
}
