//! The values settings parse into beyond numbers and flags: the database URL, the
//! authentication mode, the CORS origins and the trusted proxies.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A validated PostgreSQL connection URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub(super) String);

impl DatabaseUrl {
    pub fn parse(value: &str) -> Result<Self, String> {
        let rest = value
            .strip_prefix("postgres://")
            .or_else(|| value.strip_prefix("postgresql://"))
            .ok_or_else(|| "expected a postgres:// or postgresql:// URL".to_string())?;
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let Some((authority, database)) = path.split_once('/') else {
            return Err("the URL names no database (postgres://host/DATABASE)".into());
        };
        if authority.is_empty() {
            return Err("the URL names no host".into());
        }
        if database.is_empty() || database.contains('/') {
            return Err("the URL names no database (postgres://host/DATABASE)".into());
        }
        if database.len() > 63 {
            return Err("the database name is longer than 63 characters".into());
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The database name in the URL's path.
    pub fn database_name(&self) -> &str {
        let rest = self.0.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        path.split_once('/').map(|(_, db)| db).unwrap_or_default()
    }

    /// The same server, with the `postgres` maintenance database in place of ours.
    pub fn maintenance_url(&self) -> String {
        self.with_database("postgres")
    }

    /// `host[:port]/database`: the URL without user, password or options, for logs,
    /// `/health/` and `/metrics`.
    pub fn display_name(&self) -> String {
        let rest = self.0.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let authority = path.split_once('/').map_or(path, |(a, _)| a);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        format!("{host}/{}", self.database_name())
    }

    /// The URL with the connection option `name=value` added, unless it sets `name`
    /// itself.
    pub fn with_default_option(&self, name: &str, value: &str) -> DatabaseUrl {
        let query = self.0.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let set = query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name));
        if set {
            return self.clone();
        }
        let separator = if self.0.contains('?') { '&' } else { '?' };
        DatabaseUrl(format!("{}{separator}{name}={value}", self.0))
    }

    /// The same server and options, another database.
    pub fn with_database(&self, database: &str) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("postgres", ""));
        let (path, query) = match rest.find(['?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = path.split_once('/').map(|(a, _)| a).unwrap_or(path);
        format!("{scheme}://{authority}/{database}{query}")
    }
}

impl fmt::Debug for DatabaseUrl {
    // Never print passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl(.../{})", self.database_name())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `AUTH`: whether requests need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every route but the public ones needs a valid token (the default).
    Required,
    /// No authentication and no authorisation: every caller is an admin. For local
    /// experiments only; the service warns loudly at start.
    Disabled,
}

impl FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "required" => Ok(Self::Required),
            "disabled" => Ok(Self::Disabled),
            _ => Err("expected required or disabled".into()),
        }
    }
}

/// `CORS_ALLOWED_ORIGINS`: the origins whose browser scripts may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all (the default): browsers keep other origins out.
    Off,
    /// Any origin (`*`). Tokens travel in a header, never in cookies, so no credentials
    /// are shared implicitly.
    Any,
    /// These origins (`scheme://host[:port]`).
    List(Vec<String>),
}

impl CorsOrigins {
    pub fn parse(value: &str) -> Result<Self, String> {
        let items: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Self::Off);
        }
        if items == ["*"] {
            return Ok(Self::Any);
        }
        for origin in &items {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!("'{origin}': an origin is http(s)://host[:port], or * alone")
                })?;
            let valid = !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if !valid {
                return Err(format!(
                    "'{origin}': an origin is http(s)://host[:port], with no path, or * alone"
                ));
            }
        }
        Ok(Self::List(items.into_iter().map(String::from).collect()))
    }
}

/// `TRUSTED_PROXIES`: the addresses whose `Forwarded` / `X-Forwarded-*` headers are
/// believed (comma-separated IPs or CIDR blocks). Empty, the default, trusts none: a
/// request's scheme is its connection's and its host its `Host` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `10.0.0.1, 192.168.0.0/16, ::1, fd00::/8`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut blocks = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (item, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("'{item}': expected an IP address or a CIDR block"))?;
            let ip = canonical(ip);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("'{item}': the prefix length is 0 to {max}")),
                },
            };
            blocks.push((ip, prefix));
        }
        Ok(Self(blocks))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted addresses (an IPv4 address written as IPv6,
    /// `::ffff:a.b.c.d`, counts as the IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|&(block, prefix)| match (block, ip) {
            (IpAddr::V4(b), IpAddr::V4(a)) => same_prefix(
                u128::from(u32::from(b)),
                u128::from(u32::from(a)),
                32,
                prefix,
            ),
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                same_prefix(u128::from(b), u128::from(a), 128, prefix)
            }
            _ => false,
        })
    }
}

impl FromStr for TrustedProxies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether the first `prefix` of `bits` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let shift = bits - u32::from(prefix);
    shift >= bits || (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_checked_and_rewritten() {
        assert!(DatabaseUrl::parse("mysql://x/y").is_err());
        assert!(DatabaseUrl::parse("postgres://host").is_err());
        assert!(DatabaseUrl::parse("postgres://host/").is_err());
        let url = DatabaseUrl::parse("postgres://u:pw@h:5432/metrics?sslmode=disable").unwrap();
        assert_eq!(url.database_name(), "metrics");
        assert_eq!(
            url.maintenance_url(),
            "postgres://u:pw@h:5432/postgres?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("pw"));
        assert_eq!(url.display_name(), "h:5432/metrics");
        assert_eq!(
            url.with_default_option("connect_timeout", "2").as_str(),
            "postgres://u:pw@h:5432/metrics?sslmode=disable&connect_timeout=2"
        );
        let set = DatabaseUrl::parse("postgres://h/db?connect_timeout=9").unwrap();
        assert_eq!(set.with_default_option("connect_timeout", "2"), set);
        let bare = DatabaseUrl::parse("postgres://h/db").unwrap();
        assert_eq!(
            bare.with_default_option("connect_timeout", "2")
                .with_default_option("keepalives_idle", "1")
                .as_str(),
            "postgres://h/db?connect_timeout=2&keepalives_idle=1"
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_are_addresses_and_blocks() {
        let none = TrustedProxies::parse(" , ").unwrap();
        assert!(none.is_empty() && !none.contains(ip("127.0.0.1")));
        let t = TrustedProxies::parse("127.0.0.1, 10.1.0.0/16, fd00::/8").unwrap();
        for yes in ["127.0.0.1", "::ffff:127.0.0.1", "10.1.255.3", "fd12::1"] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in ["127.0.0.2", "10.2.0.1", "::1", "fe80::1"] {
            assert!(!t.contains(ip(no)), "{no}");
        }
        let all = TrustedProxies::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        for bad in ["localhost", "10.0.0.0/33", "::/129", "10.0.0.1/x", "*"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }
}
