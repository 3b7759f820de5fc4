//! Query-string parameters shared by the list and retrieval endpoints: UUIDs, DRF's
//! limit/offset pagination with its `{count, next, previous, results}` envelope, and
//! absolute links to the same request with some parameters changed.
//!
//! Pagination rules (as DRF's `LimitOffsetPagination`, but strict about garbage): `limit`
//! over the maximum is capped to it; `limit` below 1, a negative `offset` or a value that
//! is not a whole number is a 400 naming the parameter; an `offset` past the end gives
//! empty `results` with the true `count`.

use crate::error::ApiError;
use actix_web::HttpRequest;
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

/// The absolute URL of this request (scheme and host from the connection info, which
/// honours `Forwarded` / `X-Forwarded-*`), with each named parameter replaced
/// (`Some`) or removed (`None`). Other parameters keep their order and encoding;
/// replaced ones go last.
pub fn url_with(req: &HttpRequest, changes: &[(&str, Option<&str>)]) -> String {
    let info = req.connection_info();
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
    let mut url = format!("{}://{}{}", info.scheme(), info.host(), req.path());
    if !parts.is_empty() {
        url.push('?');
        url.push_str(&parts.join("&"));
    }
    url
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
}
