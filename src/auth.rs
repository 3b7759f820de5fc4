//! Authentication, per-token rate limiting and the [`Caller`] that handlers authorise
//! against.
//!
//! [`authenticate`] runs before routing on every request. The public routes
//! ([`PUBLIC_PATHS`]: health, metrics, the API document and ReDoc) pass
//! untouched. Every other request needs `Authorization: Bearer <token>` (or DRF's
//! `Token <token>`): no or a malformed header, or a token that is unknown or revoked, is
//! a 401 with `WWW-Authenticate`; a token over its rate limit is a 429 with
//! `Retry-After`. Otherwise the request carries a [`Caller`], which handlers take as an
//! extractor and ask before they read or write anything (403 when the token may not).
//!
//! Token lookups are cached in each process for at most `AUTH_CACHE_TTL_MS` (≤ 1 s),
//! counted from when the lookup *started*, so a revocation committed at `t` is seen by
//! every request that starts after `t + 1 s`, on every replica. The secret itself is
//! never logged, never echoed and never stored; the cache is keyed by its hash.

use crate::config::AuthMode;
use crate::db::{self, DbPool};
use crate::domain::api_token::{Scope, TokenHash, TokenSecret};
use crate::error::ApiError;
use crate::services::tokens::{self, ActiveToken};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::future::{Ready, ready};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The routes anyone may call without a token: health for load balancers, metrics for
/// Prometheus (they carry route patterns and counts, never user data), the API's own
/// description, and the explorer's page and files (which hold no data: the page asks
/// the API with the token its user gives it). Every other path, unknown ones included,
/// needs a token.
pub const PUBLIC_PATHS: &[&str] = &[
    "/health/",
    "/metrics/",
    "/api/schema/",
    "/redoc/",
    "/redoc/redoc.standalone.js/",
    "/ui/",
    "/ui/{file}/",
];

/// Whether `path` (as routed: with its trailing slash) is one of [`PUBLIC_PATHS`], or
/// a file of the explorer (`/ui/<name>/`, one segment; unknown names are a 404).
pub fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path)
        || path
            .strip_prefix("/ui/")
            .and_then(|rest| rest.strip_suffix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// Who is calling: the token's id (none when `AUTH=disabled`) and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub token_id: Option<i64>,
    pub scope: Scope,
}

impl Caller {
    /// Everyone, when authentication is disabled.
    pub const ANONYMOUS_ADMIN: Caller = Caller {
        token_id: None,
        scope: Scope::Admin,
    };

    /// 403 unless the token is an admin's.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.scope {
            Scope::Admin => Ok(()),
            Scope::User(_) => Err(ApiError::Forbidden),
        }
    }

    /// 403 unless the token may read and write `user`'s data.
    pub fn authorize_user(&self, user: Uuid) -> Result<(), ApiError> {
        if self.scope.may_access(user) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The only user whose data this caller may see; `None` for an admin.
    pub fn restricted_to(&self) -> Option<Uuid> {
        self.scope.user_id()
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Set by `authenticate` on every route that is not public; a public handler
        // that asked for it would get a 401.
        ready(
            req.extensions()
                .get::<Caller>()
                .copied()
                .ok_or(ApiError::Unauthorized {
                    detail: NOT_PROVIDED,
                    error: None,
                }),
        )
    }
}

const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
const INVALID_TOKEN: &str = "Invalid token.";
const BAD_HEADER: &str = "Invalid token header: use `Authorization: Bearer <token>`.";

/// The token in an `Authorization` header value: `Bearer <token>` or `Token <token>`
/// (the scheme in any case). `Ok(None)`: the header names another scheme, which is the
/// same as no credentials.
pub fn credentials(header: &[u8]) -> Result<Option<TokenSecret>, ApiError> {
    let invalid = |detail| ApiError::Unauthorized {
        detail,
        error: Some("invalid_token"),
    };
    let text = std::str::from_utf8(header).map_err(|_| invalid(BAD_HEADER))?;
    let mut parts = text.split_ascii_whitespace();
    let scheme = parts.next().unwrap_or_default();
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")) {
        return Ok(None);
    }
    let (Some(token), None) = (parts.next(), parts.next()) else {
        return Err(invalid(BAD_HEADER));
    };
    TokenSecret::parse(token)
        .map(Some)
        .ok_or_else(|| invalid(INVALID_TOKEN))
}

/// Token lookups remembered for a short time, by hash. Refusals are remembered too, so
/// a client retrying a bad token costs one lookup per lifetime.
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<TokenHash, (Instant, Option<ActiveToken>)>>,
}

/// Entries the token cache keeps at most; past it, expired ones go, then all.
const TOKEN_CACHE_CAPACITY: usize = 10_000;

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered answer for `hash`, if it is still fresh at `now`.
    pub fn get(&self, hash: &TokenHash, now: Instant) -> Option<Option<ActiveToken>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(hash)
            .filter(|(expires, _)| now < *expires)
            .map(|(_, token)| *token)
    }

    /// Remembers the answer of a lookup that started at `started`.
    pub fn put(&self, hash: TokenHash, started: Instant, token: Option<ActiveToken>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            let now = Instant::now();
            entries.retain(|_, (expires, _)| now < *expires);
            if entries.len() >= TOKEN_CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(hash, (started + self.ttl, token));
    }
}

/// Per-token rate limits (GCRA, from the `governor` crate), in this process.
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
}

impl RateLimits {
    /// `per_sec == 0`: no limit.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// Takes one request from the token's allowance, or says how long to wait.
    pub fn check(&self, token_id: i64) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&token_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs_f64().ceil().max(1.0) as u64)
        })
    }

    /// Forgets tokens that have their whole allowance back (call now and then).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// What [`authenticate`] needs: the mode, the token cache, the rate limits and the pool
/// tokens are looked up on. It is app data of its own, so that the middleware needs
/// nothing else of the application.
pub struct Authenticator {
    pub mode: AuthMode,
    pool: DbPool,
    pub cache: TokenCache,
    pub limits: RateLimits,
}

impl Authenticator {
    pub fn new(settings: &crate::config::Settings, pool: DbPool) -> Self {
        Self {
            mode: settings.auth,
            pool,
            cache: TokenCache::new(settings.auth_cache_ttl),
            limits: RateLimits::new(settings.rate_limit_per_sec, settings.rate_limit_burst),
        }
    }

    /// The active token behind `secret`, from the cache or the database.
    pub async fn resolve(&self, secret: &TokenSecret) -> Result<Option<ActiveToken>, ApiError> {
        let hash = secret.hash();
        let started = Instant::now();
        if let Some(known) = self.cache.get(&hash, started) {
            return Ok(known);
        }
        let found = db::run(&self.pool, move |conn| tokens::resolve(conn, &hash)).await?;
        self.cache.put(hash, started, found);
        Ok(found)
    }

    /// Who is calling, from the request's `Authorization` header.
    async fn caller(&self, req: &ServiceRequest) -> Result<Caller, ApiError> {
        if self.mode == AuthMode::Disabled {
            return Ok(Caller::ANONYMOUS_ADMIN);
        }
        let secret = match req.headers().get(AUTHORIZATION) {
            None => None,
            Some(value) => credentials(value.as_bytes())?,
        };
        let Some(secret) = secret else {
            return Err(ApiError::Unauthorized {
                detail: NOT_PROVIDED,
                error: None,
            });
        };
        let Some(token) = self.resolve(&secret).await? else {
            return Err(ApiError::Unauthorized {
                detail: INVALID_TOKEN,
                error: Some("invalid_token"),
            });
        };
        self.limits.check(token.id)?;
        Ok(Caller {
            token_id: Some(token.id),
            scope: token.scope,
        })
    }
}

/// The middleware: public routes pass; others need a valid token within its rate
/// limit, and carry the [`Caller`] on.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if is_public(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(auth) = req.app_data::<web::Data<Authenticator>>().cloned() else {
        let e = ApiError::internal("authenticator missing from the app data");
        return Ok(req.into_response(e.error_response()).map_into_right_body());
    };
    match auth.caller(&req).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_paths_and_one_level_under_ui_are_public() {
        for path in ["/ui/", "/ui/main.js/", "/redoc/", "/health/"] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/uifoo/",
            "/ui",
            "/ui//",
            "/ui/a/b/",
            "/ui/../api/timeseries/points/",
            "/ui/main.js",
            "/api/timeseries/points/",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }

    fn token(id: i64) -> Option<ActiveToken> {
        Some(ActiveToken {
            id,
            scope: Scope::Admin,
        })
    }

    #[test]
    fn headers_name_a_bearer_or_drf_token() {
        let t = TokenSecret::generate().unwrap();
        for header in [
            format!("Bearer {}", t.expose()),
            format!("bearer  {}", t.expose()),
            format!("Token {}", t.expose()),
            format!("TOKEN {}\t", t.expose()),
        ] {
            assert_eq!(credentials(header.as_bytes()).unwrap(), Some(t.clone()));
        }
        assert_eq!(credentials(b"Basic dXNlcjpwdw==").unwrap(), None);
        assert_eq!(credentials(b"").unwrap(), None);
        for bad in [
            "Bearer".to_string(),
            format!("Bearer {} extra", t.expose()),
            "Bearer sdk_short".to_string(),
        ] {
            let e = credentials(bad.as_bytes()).unwrap_err();
            assert!(matches!(e, ApiError::Unauthorized { .. }), "{bad}");
            // The refusal never repeats what was sent.
            assert!(!e.to_string().contains("sdk_"), "{e}");
        }
        assert!(credentials(b"Bearer \xff\xfe").is_err());
    }

    #[test]
    fn cached_lookups_expire_a_lifetime_after_the_lookup_started() {
        let cache = TokenCache::new(Duration::from_millis(1000));
        let h = TokenSecret::generate().unwrap().hash();
        let started = Instant::now();
        assert_eq!(cache.get(&h, started), None);
        cache.put(h, started, token(7));
        assert_eq!(
            cache.get(&h, started + Duration::from_millis(999)),
            Some(token(7))
        );
        assert_eq!(cache.get(&h, started + Duration::from_millis(1000)), None);
        // Refusals are remembered as refusals.
        let bad = TokenSecret::generate().unwrap().hash();
        cache.put(bad, started, None);
        assert_eq!(cache.get(&bad, started), Some(None));
        // A zero lifetime remembers nothing.
        let none = TokenCache::new(Duration::ZERO);
        none.put(h, started, token(1));
        assert_eq!(none.get(&h, started), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(Duration::from_secs(1));
        let now = Instant::now();
        for _ in 0..TOKEN_CACHE_CAPACITY + 5 {
            cache.put(TokenSecret::generate().unwrap().hash(), now, None);
        }
        assert!(cache.entries.lock().unwrap().len() <= TOKEN_CACHE_CAPACITY);
    }

    #[test]
    fn rate_limits_allow_the_burst_then_say_when_to_retry() {
        let limits = RateLimits::new(1, 3);
        for _ in 0..3 {
            limits.check(1).unwrap();
        }
        match limits.check(1) {
            Err(ApiError::TooManyRequests {
                retry_after_secs, ..
            }) => {
                assert!((1..=2).contains(&retry_after_secs))
            }
            other => panic!("{other:?}"),
        }
        // Another token has its own allowance.
        limits.check(2).unwrap();
        // Off means off.
        let off = RateLimits::new(0, 1);
        for _ in 0..10_000 {
            off.check(1).unwrap();
        }
    }

    #[test]
    fn callers_are_authorised_by_scope() {
        let (u, other) = (Uuid::new_v4(), Uuid::new_v4());
        let user = Caller {
            token_id: Some(1),
            scope: Scope::User(u),
        };
        assert!(user.authorize_user(u).is_ok());
        assert!(matches!(
            user.authorize_user(other),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(user.require_admin(), Err(ApiError::Forbidden)));
        assert_eq!(user.restricted_to(), Some(u));
        assert!(Caller::ANONYMOUS_ADMIN.require_admin().is_ok());
        assert!(Caller::ANONYMOUS_ADMIN.authorize_user(other).is_ok());
        assert_eq!(Caller::ANONYMOUS_ADMIN.restricted_to(), None);
    }
}
