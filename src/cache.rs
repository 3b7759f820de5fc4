//! The query cache: Redis when configured, else an in-process map. Errors of the cache
//! count as misses and never fail a request; Redis is reconnected by itself.
//!
//! Keys carry the user's write generation (see `db::generations`), so an entry written
//! before a write is never read after it: the cache needs no invalidation to be fresh.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries the in-process cache keeps at most.
const MEMORY_CAPACITY: usize = 10_000;
/// After a failed connection attempt, Redis is not tried again for this long.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum Cache {
    Redis(RedisCache),
    Memory(MemoryCache),
}

impl Cache {
    pub fn new(redis_url: Option<&str>, timeout: Duration) -> Self {
        match redis_url.map(redis::Client::open) {
            Some(Ok(client)) => Self::Redis(RedisCache {
                client,
                timeout,
                down_since: Arc::new(Mutex::new(None)),
            }),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "REDIS_URL unusable; using the in-process cache");
                Self::Memory(MemoryCache::default())
            }
            None => Self::Memory(MemoryCache::default()),
        }
    }

    /// `redis` or `in-process`, as `/health/` reports it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Redis(_) => "redis",
            Self::Memory(_) => "in-process",
        }
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Self::Redis(r) => r.get(key).await,
            Self::Memory(m) => m.get(key),
        }
    }

    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        match self {
            Self::Redis(r) => r.set(key, value, ttl).await,
            Self::Memory(m) => m.set(key, value, ttl),
        }
    }

    /// Removes every entry whose key starts with `prefix`, spending at most `budget` on
    /// it; returns how many went. An entry it does not reach (Redis down or slow, the
    /// budget spent) stays until its TTL.
    pub async fn remove_prefixed(&self, prefix: &str, budget: Duration) -> usize {
        match self {
            Self::Redis(r) => r.remove_prefixed(prefix, budget).await,
            Self::Memory(m) => m.remove_prefixed(prefix),
        }
    }

    /// Whether the cache answers now (for `/health/`).
    pub async fn reachable(&self) -> bool {
        match self {
            Self::Redis(r) => r.ping().await,
            Self::Memory(_) => true,
        }
    }
}

thread_local! {
    // actix runs one single-threaded runtime per worker: each keeps its own multiplexed
    // connection, driven by that worker's runtime.
    static CONNECTIONS: RefCell<HashMap<String, ConnectionManager>> = RefCell::new(HashMap::new());
}

#[derive(Clone)]
pub struct RedisCache {
    client: redis::Client,
    timeout: Duration,
    down_since: Arc<Mutex<Option<Instant>>>,
}

impl RedisCache {
    fn id(&self) -> String {
        format!("{:?}", self.client.get_connection_info().addr())
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let id = self.id();
        if let Some(c) = CONNECTIONS.with(|m| m.borrow().get(&id).cloned()) {
            return Some(c);
        }
        {
            let down = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
            if down.is_some_and(|t| t.elapsed() < RECONNECT_BACKOFF) {
                return None;
            }
        }
        match tokio::time::timeout(self.timeout * 4, self.client.get_connection_manager()).await {
            Ok(Ok(conn)) => {
                *self.down_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
                CONNECTIONS.with(|m| m.borrow_mut().insert(id, conn.clone()));
                Some(conn)
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.mark_down("connection timed out");
                None
            }
        }
    }

    fn mark_down(&self, why: &str) {
        let mut down = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        if down.is_none() {
            tracing::warn!(error = %why, "Redis unreachable; answering from the database");
        }
        *down = Some(Instant::now());
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, conn.get::<_, Option<Vec<u8>>>(key)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.mark_down("GET timed out");
                None
            }
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let secs = ttl.as_secs().max(1);
        match tokio::time::timeout(self.timeout, conn.set_ex::<_, _, ()>(key, value, secs)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.mark_down(&e.to_string()),
            Err(_) => self.mark_down("SET timed out"),
        }
    }

    async fn remove_prefixed(&self, prefix: &str, budget: Duration) -> usize {
        let Some(mut conn) = self.connection().await else {
            return 0;
        };
        let deadline = Instant::now() + budget;
        let pattern = format!("{}*", glob_escape(prefix));
        let mut cursor = 0u64;
        let mut removed = 0;
        while Instant::now() < deadline {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let scan = scan.query_async::<(u64, Vec<String>)>(&mut conn);
            let (next, keys) = match tokio::time::timeout(self.timeout, scan).await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    self.mark_down(&e.to_string());
                    break;
                }
                Err(_) => {
                    self.mark_down("SCAN timed out");
                    break;
                }
            };
            if !keys.is_empty() {
                match tokio::time::timeout(self.timeout, conn.del::<_, usize>(&keys)).await {
                    Ok(Ok(n)) => removed += n,
                    Ok(Err(e)) => {
                        self.mark_down(&e.to_string());
                        break;
                    }
                    Err(_) => {
                        self.mark_down("DEL timed out");
                        break;
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        removed
    }

    async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection().await else {
            return false;
        };
        matches!(
            tokio::time::timeout(
                self.timeout,
                redis::cmd("PING").query_async::<String>(&mut conn)
            )
            .await,
            Ok(Ok(_))
        )
    }
}

/// Keys one `SCAN` call looks at.
const SCAN_COUNT: usize = 1000;

/// `s` with Redis's glob characters escaped, so that a `MATCH` pattern takes it
/// literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An entry: when it expires, and the body.
type Entry = (Instant, Arc<Vec<u8>>);

/// A bounded in-process cache with expiry.
#[derive(Clone, Default)]
pub struct MemoryCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl MemoryCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((expires, v)) if *expires > Instant::now() => Some(v.as_ref().clone()),
            _ => None,
        }
    }

    fn remove_prefixed(&self, prefix: &str) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let before = entries.len();
        entries.retain(|key, _| !key.starts_with(prefix));
        before - entries.len()
    }

    fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MEMORY_CAPACITY {
            let now = Instant::now();
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= MEMORY_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key.to_string(), (Instant::now() + ttl, Arc::new(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_taken_literally() {
        assert_eq!(glob_escape("a*b?[c]\\^"), "a\\*b\\?\\[c\\]\\\\\\^");
        assert_eq!(glob_escape("seriesd:ts:v1:"), "seriesd:ts:v1:");
    }

    #[actix_web::test]
    async fn removing_a_prefix_keeps_other_keys() {
        let cache = Cache::Memory(MemoryCache::default());
        let ttl = Duration::from_secs(60);
        cache.set("p:u1:1", vec![1], ttl).await;
        cache.set("p:u1:2", vec![2], ttl).await;
        cache.set("p:u2:1", vec![3], ttl).await;
        assert_eq!(cache.remove_prefixed("p:u1:", ttl).await, 2);
        assert_eq!(cache.get("p:u1:1").await, None);
        assert_eq!(cache.get("p:u2:1").await, Some(vec![3]));
    }
}
