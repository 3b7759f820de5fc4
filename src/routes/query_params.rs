//! Query-string parameters shared by the list and retrieval endpoints: UUIDs, DRF's
//! limit/offset pagination with its `{count, next, previous, results}` envelope, and
//! absolute links to the same request with some parameters changed.
//!
//! Pagination rules (as DRF's `LimitOffsetPagination`, but strict about garbage): `limit`
//! over the maximum is capped to it; `limit` below 1, a negative `offset` or a value that
//! is not a whole number is a 400 naming the parameter; an `offset` past the end gives
//! empty `results` with the true `count`.

use crate::config::TrustedProxies;
use crate::domain::query::{PatternLimits, SeriesPatterns};
use crate::domain::timestamp::parse_time_param;
use crate::error::ApiError;
use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use uuid::Uuid;

/// Parses the UUID parameter `name` if present, recording a field error otherwise.
pub fn uuid_param(
    params: &HashMap<String, String>,
    name: &str,
    errors: &mut Map<String, Value>,
) -> Option<Uuid> {
    let v = params.get(name)?;
    match Uuid::parse_str(v.trim()) {
        Ok(u) => Some(u),
        Err(_) => {
            errors.insert(name.into(), json!(["Must be a valid UUID."]));
            None
        }
    }
}

/// Like [`uuid_param`], and a missing parameter is an error too.
pub fn required_uuid(
    params: &HashMap<String, String>,
    name: &str,
    errors: &mut Map<String, Value>,
) -> Option<Uuid> {
    if !params.contains_key(name) {
        errors.insert(name.into(), json!(["This parameter is required."]));
        return None;
    }
    uuid_param(params, name, errors)
}

/// `series` from the query (every series when absent), its error recorded.
pub fn patterns_param(
    params: &HashMap<String, String>,
    limits: &PatternLimits,
    errors: &mut Map<String, Value>,
) -> Option<SeriesPatterns> {
    match SeriesPatterns::parse_with(params.get("series").map_or("", String::as_str), limits) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.insert("series".into(), json!([e]));
            None
        }
    }
}

/// The parameter `name` parsed by `parse`, if present; its error is recorded.
pub fn parsed_param<T>(
    params: &HashMap<String, String>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    errors: &mut Map<String, Value>,
) -> Option<T> {
    parse(params.get(name)?)
        .map_err(|e| {
            errors.insert(name.into(), json!([e]));
        })
        .ok()
}

/// A time parameter (RFC 3339 or `YYYY-MM-DD`), if present; its error is recorded.
pub fn time_param(
    params: &HashMap<String, String>,
    name: &str,
    errors: &mut Map<String, Value>,
) -> Option<DateTime<Utc>> {
    parsed_param(params, name, parse_time_param, errors)
}

/// A `true`/`false` parameter (also `1`/`0`, `yes`/`no`), `false` when absent; anything
/// else is an error.
pub fn bool_param(
    params: &HashMap<String, String>,
    name: &str,
    errors: &mut Map<String, Value>,
) -> bool {
    parsed_param(
        params,
        name,
        |v| match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err("Must be true or false.".to_string()),
        },
        errors,
    )
    .unwrap_or(false)
}

/// `limit` from the query: `default` when absent, capped to `max`, at least 1.
pub fn limit_param(
    params: &HashMap<String, String>,
    default: i64,
    max: i64,
    errors: &mut Map<String, Value>,
) -> i64 {
    match params.get("limit").map(|v| v.trim().parse::<i64>()) {
        None => default,
        Some(Ok(n)) if n >= 1 => n.min(max),
        Some(_) => {
            errors.insert(
                "limit".into(),
                json!([format!(
                    "Must be a whole number from 1 (values over {max} are capped to {max})."
                )]),
            );
            default
        }
    }
}

/// `limit` and `offset`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOffset {
    pub limit: i64,
    pub offset: i64,
}

impl LimitOffset {
    pub fn parse(
        params: &HashMap<String, String>,
        default: i64,
        max: i64,
        errors: &mut Map<String, Value>,
    ) -> Self {
        let limit = limit_param(params, default, max, errors);
        let offset = match params.get("offset").map(|v| v.trim().parse::<i64>()) {
            None => 0,
            Some(Ok(n)) if n >= 0 => n,
            Some(_) => {
                errors.insert(
                    "offset".into(),
                    json!(["Must be a whole number, 0 or more."]),
                );
                0
            }
        };
        Self { limit, offset }
    }

    /// DRF's envelope around one page, with absolute `next` and `previous` links.
    pub fn envelope<T: Serialize>(
        &self,
        req: &HttpRequest,
        count: i64,
        results: Vec<T>,
    ) -> Envelope<T> {
        let limit = self.limit.to_string();
        let next = (self.offset.saturating_add(self.limit) < count).then(|| {
            let offset = (self.offset + self.limit).to_string();
            url_with(req, &[("limit", Some(&limit)), ("offset", Some(&offset))])
        });
        let previous = (self.offset > 0).then(|| {
            if self.offset - self.limit <= 0 {
                url_with(req, &[("limit", Some(&limit)), ("offset", None)])
            } else {
                let offset = (self.offset - self.limit).to_string();
                url_with(req, &[("limit", Some(&limit)), ("offset", Some(&offset))])
            }
        });
        Envelope {
            count,
            next,
            previous,
            results,
        }
    }
}

/// DRF's limit/offset page.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// The absolute URL of this request (scheme and host as [`origin`] finds them), with
/// each named parameter replaced (`Some`) or removed (`None`). Other parameters keep
/// their order and encoding; replaced ones go last.
pub fn url_with(req: &HttpRequest, changes: &[(&str, Option<&str>)]) -> String {
    let (scheme, host) = origin(req);
    let mut parts: Vec<String> = req
        .query_string()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or_default();
            !changes.iter().any(|(name, _)| *name == key)
        })
        .map(String::from)
        .collect();
    for (name, value) in changes {
        if let Some(v) = value {
            parts.push(format!("{name}={}", encode_component(v)));
        }
    }
    let mut url = format!("{scheme}://{host}{}", req.path());
    if !parts.is_empty() {
        url.push('?');
        url.push_str(&parts.join("&"));
    }
    url
}

/// The scheme and host links to this service are made of. From a peer listed in
/// `TRUSTED_PROXIES` (app data; none when absent), those its `Forwarded` /
/// `X-Forwarded-Proto` / `X-Forwarded-Host` headers name; from anyone else, the
/// connection's scheme and the `Host` header. Either way a scheme other than `http` or
/// `https`, or a host that is not `name[:port]` or `[v6][:port]`, is not used: the
/// connection's scheme, the `Host` header, or the address the request came in on
/// stand in.
pub fn origin(req: &HttpRequest) -> (String, String) {
    let own_scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let own_host = || {
        req.headers()
            .get(actix_web::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| is_host(h))
            .map(str::to_string)
            .unwrap_or_else(|| req.app_config().local_addr().to_string())
    };
    let trusted = req
        .app_data::<web::Data<TrustedProxies>>()
        .zip(req.peer_addr())
        .is_some_and(|(proxies, peer)| proxies.contains(peer.ip()));
    if !trusted {
        return (own_scheme.to_string(), own_host());
    }
    let info = req.connection_info();
    let scheme = info.scheme().to_ascii_lowercase();
    let scheme = if scheme == "http" || scheme == "https" {
        scheme
    } else {
        own_scheme.to_string()
    };
    let host = if is_host(info.host()) {
        info.host().to_string()
    } else {
        own_host()
    };
    (scheme, host)
}

/// Whether `s` is `name[:port]` or `[v6 address][:port]`: nothing that could end the
/// authority of a URL (`/`, `?`, `#`, `@`, `\\`, spaces) or smuggle another scheme.
fn is_host(s: &str) -> bool {
    let (name_ok, port) = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) => (v6.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (name, port) = s.split_at(s.find(':').unwrap_or(s.len()));
            let name_ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            (name_ok, port)
        }
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    name_ok && port_ok
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every collected parameter error as one 400, or `Ok` when there is none.
pub fn check(errors: Map<String, Value>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(Value::Object(errors)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn params(q: &[(&str, &str)]) -> HashMap<String, String> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limits_are_capped_and_garbage_is_named() {
        let mut e = Map::new();
        let p = LimitOffset::parse(&params(&[("limit", "5000")]), 100, 1000, &mut e);
        assert_eq!(
            p,
            LimitOffset {
                limit: 1000,
                offset: 0
            }
        );
        assert!(e.is_empty());
        for (k, v) in [
            ("limit", "0"),
            ("limit", "-1"),
            ("limit", "x"),
            ("offset", "-1"),
        ] {
            let mut e = Map::new();
            LimitOffset::parse(&params(&[(k, v)]), 100, 1000, &mut e);
            assert!(e[k].is_array(), "{k}={v}");
        }
    }

    #[test]
    fn links_follow_drf() {
        let req = TestRequest::get()
            .uri("/api/metrictypes/?limit=2&offset=3&x=a%20b")
            .insert_header(("host", "example.org:8000"))
            .to_http_request();
        let page = LimitOffset {
            limit: 2,
            offset: 3,
        };
        let env = page.envelope(&req, 10, vec![1, 2]);
        assert_eq!(
            env.next.as_deref(),
            Some("http://example.org:8000/api/metrictypes/?x=a%20b&limit=2&offset=5")
        );
        assert_eq!(
            env.previous.as_deref(),
            Some("http://example.org:8000/api/metrictypes/?x=a%20b&limit=2&offset=1")
        );
        let first = LimitOffset {
            limit: 2,
            offset: 1,
        }
        .envelope(&req, 3, vec![1, 2]);
        assert_eq!(first.next, None);
        assert_eq!(
            first.previous.as_deref(),
            Some("http://example.org:8000/api/metrictypes/?x=a%20b&limit=2")
        );
    }

    /// A request from `peer` forging every forwarding header, with `trusted` proxies.
    fn forged(peer: &str, trusted: &str) -> HttpRequest {
        TestRequest::get()
            .uri("/api/sessions/?limit=1")
            .peer_addr(peer.parse().unwrap())
            .insert_header(("host", "api.example:8000"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-proto", "javascript"))
            .app_data(web::Data::new(TrustedProxies::parse(trusted).unwrap()))
            .to_http_request()
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let origin_of = |req: &HttpRequest| {
            let (scheme, host) = origin(req);
            format!("{scheme}://{host}")
        };
        // Trust none (the default), or not this peer: the Host header, plain http.
        for trusted in ["", "10.0.0.0/8"] {
            assert_eq!(
                origin_of(&forged("127.0.0.1:5000", trusted)),
                "http://api.example:8000"
            );
        }
        // A trusted proxy's host is used; a scheme other than http(s) never is.
        let req = forged("127.0.0.1:5000", "127.0.0.1");
        assert_eq!(origin_of(&req), "http://evil.example");
        let req = TestRequest::get()
            .peer_addr("10.1.2.3:5000".parse().unwrap())
            .insert_header(("forwarded", "proto=HTTPS;host=api.example"))
            .app_data(web::Data::new(TrustedProxies::parse("10.0.0.0/8").unwrap()))
            .to_http_request();
        assert_eq!(origin_of(&req), "https://api.example");
        // A host that is not name[:port] is never used, from anyone.
        for bad in ["evil.example/x?", "a@b", "a b", "x:99999", "[::1", ""] {
            let req = TestRequest::get()
                .peer_addr("10.1.2.3:5000".parse().unwrap())
                .insert_header(("host", "api.example"))
                .insert_header(("x-forwarded-host", bad))
                .app_data(web::Data::new(TrustedProxies::parse("10.0.0.0/8").unwrap()))
                .to_http_request();
            assert_eq!(origin_of(&req), "http://api.example", "{bad}");
        }
        for good in ["a.example", "a-b.example:8443", "[::1]:8000", "127.0.0.1"] {
            assert!(is_host(good), "{good}");
        }
    }
}
