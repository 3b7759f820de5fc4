//! Per-token concurrency limits: how many exports (`MAX_EXPORTS_PER_TOKEN`) or bulk
//! loads (`MAX_BULK_LOADS_PER_TOKEN`) one token may run at once in this process.
//!
//! A request takes a [`Slot`] before it starts the work and keeps it until the work is
//! over: a streamed export keeps it in the response body (and in the task producing the
//! chunks), so it goes back when the last chunk was sent or the client left. A token
//! with all its slots taken gets a 429 naming the setting. With `AUTH=disabled` every
//! caller is the same anonymous admin, and so shares one set of slots.

use crate::error::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The slots of one kind of work, by token.
#[derive(Clone)]
pub struct TokenSlots {
    inner: Arc<Inner>,
}

struct Inner {
    /// The setting, named in the 429.
    setting: &'static str,
    /// What the work is called in the 429, plural ("exports").
    work: &'static str,
    limit: usize,
    /// Slots taken, by token; a token with none taken has no entry, so the map holds
    /// only the tokens running work now.
    taken: Mutex<HashMap<Option<i64>, usize>>,
}

impl Inner {
    fn taken(&self) -> MutexGuard<'_, HashMap<Option<i64>, usize>> {
        // The map is left consistent at every await-free step, so a panic elsewhere
        // while it was held leaves nothing half-done.
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TokenSlots {
    /// `limit` slots per token for `work`, limited by `setting`.
    pub fn new(setting: &'static str, work: &'static str, limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                setting,
                work,
                limit,
                taken: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Takes one of the slots of the token `token_id` (`None`: no authentication), or
    /// answers the 429 that says why not.
    pub fn take(&self, token_id: Option<i64>) -> Result<Slot, ApiError> {
        let key = token_id;
        let mut taken = self.inner.taken();
        let count = taken.entry(key).or_insert(0);
        if *count >= self.inner.limit {
            return Err(ApiError::too_many_at_once(
                self.inner.setting,
                self.inner.limit,
                self.inner.work,
            ));
        }
        *count += 1;
        Ok(Slot {
            slots: self.inner.clone(),
            key,
        })
    }

    /// Slots the token `token_id` holds now.
    pub fn held(&self, token_id: Option<i64>) -> usize {
        self.inner.taken().get(&token_id).copied().unwrap_or(0)
    }
}

/// One taken slot; given back when dropped.
pub struct Slot {
    slots: Arc<Inner>,
    key: Option<i64>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken();
        if let Some(count) = taken.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_has_its_own_slots_and_gets_them_back() {
        let slots = TokenSlots::new("MAX_EXPORTS_PER_TOKEN", "exports", 2);
        let (a, b) = (Some(1), Some(2));
        let first = slots.take(a).unwrap();
        let second = slots.take(a).unwrap();
        match slots.take(a) {
            Err(ApiError::TooManyRequests {
                detail,
                retry_after_secs,
            }) => {
                assert!(detail.contains("(MAX_EXPORTS_PER_TOKEN)"), "{detail}");
                assert!(detail.contains("2 exports"), "{detail}");
                assert!(retry_after_secs >= 1);
            }
            other => panic!("{:?}", other.err()),
        }
        // Another token is not affected.
        let other = slots.take(b).unwrap();
        assert_eq!((slots.held(Some(1)), slots.held(Some(2))), (2, 1));
        drop(first);
        let third = slots.take(a).unwrap();
        drop((second, third, other));
        // No token holds anything: the map is empty again.
        assert!(slots.inner.taken().is_empty());
    }

    #[test]
    fn without_authentication_every_caller_shares_one_set() {
        let slots = TokenSlots::new("MAX_BULK_LOADS_PER_TOKEN", "bulk loads", 1);
        let _held = slots.take(None).unwrap();
        assert!(slots.take(None).is_err());
    }
}
