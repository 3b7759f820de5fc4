//! The ingest memory budget (`INGEST_MEMORY_MIB`): a process-wide semaphore of KiB that
//! every ingest request holds while its body is read, parsed and written, so that large
//! bodies arriving together take turns instead of together exhausting the process's
//! memory.
//!
//! A request holds [`INGEST_MEMORY_PER_BODY_BYTE`] bytes of the budget per body byte (the
//! body itself, its parsed points and the `COPY` text of their batch). A body that
//! declares its length reserves all of it before its first byte is read, so that
//! requests waiting for the budget hold none of it; a chunked body grows its reservation
//! as it arrives. The wait is first come, first served and lasts at most
//! `INGEST_MEMORY_WAIT_MS`, then the request is answered 503 with `Retry-After`.

use crate::config::INGEST_MEMORY_PER_BODY_BYTE;
use crate::error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The process's budget; cheap to clone.
#[derive(Clone)]
pub struct IngestBudget {
    permits: Arc<Semaphore>,
    total_kib: usize,
    wait: Duration,
}

impl IngestBudget {
    /// A budget of `total_bytes`, each wait for it lasting at most `wait`.
    pub fn new(total_bytes: usize, wait: Duration) -> Self {
        let total_kib = (total_bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(total_kib)),
            total_kib,
            wait,
        }
    }

    /// A reservation holding nothing yet.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: None,
        }
    }

    /// KiB of the budget held by requests now.
    pub fn in_use_kib(&self) -> usize {
        self.total_kib - self.permits.available_permits()
    }

    /// KiB of the budget a body of `bytes` bytes holds; never more than the whole
    /// budget, so that any body the settings allow can be admitted (alone).
    fn kib_for(&self, bytes: usize) -> usize {
        bytes
            .saturating_mul(INGEST_MEMORY_PER_BODY_BYTE)
            .div_ceil(1024)
            .min(self.total_kib)
    }
}

/// One request's share of the budget, given back when dropped.
pub struct Reservation {
    budget: IngestBudget,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    fn held_kib(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Holds enough of the budget to process a body of `bytes` bytes, waiting at most
    /// `INGEST_MEMORY_WAIT_MS` for the rest; 503 when it does not come in time.
    pub async fn cover(&mut self, bytes: usize) -> Result<(), ApiError> {
        let need = self.budget.kib_for(bytes);
        let held = self.held_kib();
        if need <= held {
            return Ok(());
        }
        let more = u32::try_from(need - held).unwrap_or(u32::MAX);
        let acquire = self.budget.permits.clone().acquire_many_owned(more);
        let permit = match actix_web::rt::time::timeout(self.budget.wait, acquire).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => return Err(ApiError::internal(closed)),
            Err(_) => {
                return Err(ApiError::Unavailable(format!(
                    "Too much ingest in progress: this body did not get its share of the ingest \
                     memory budget within {} ms (INGEST_MEMORY_MIB, INGEST_MEMORY_WAIT_MS).",
                    self.budget.wait.as_millis()
                )));
            }
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Gives back what is held beyond the share of a body of `bytes` bytes.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = self.budget.kib_for(bytes);
        if let Some(held) = &mut self.held
            && held.num_permits() > keep
        {
            drop(held.split(held.num_permits() - keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[actix_web::test]
    async fn reservations_grow_shrink_and_give_back() {
        let budget = IngestBudget::new(100 * MIB, Duration::from_millis(50));
        let mut a = budget.reservation();
        a.cover(MIB).await.unwrap();
        assert_eq!(budget.in_use_kib(), INGEST_MEMORY_PER_BODY_BYTE * 1024);
        a.cover(MIB / 2).await.unwrap();
        assert_eq!(budget.in_use_kib(), INGEST_MEMORY_PER_BODY_BYTE * 1024);
        a.shrink_to(MIB / 4);
        assert_eq!(budget.in_use_kib(), INGEST_MEMORY_PER_BODY_BYTE * 256);
        drop(a);
        assert_eq!(budget.in_use_kib(), 0);
    }

    #[actix_web::test]
    async fn a_body_waits_for_its_share_then_is_refused_naming_the_settings() {
        let budget = IngestBudget::new(100 * MIB, Duration::from_millis(50));
        let mut first = budget.reservation();
        // More than the budget: the whole budget, no more.
        first.cover(1000 * MIB).await.unwrap();
        assert_eq!(budget.in_use_kib(), 100 * 1024);
        let mut second = budget.reservation();
        let Err(ApiError::Unavailable(m)) = second.cover(1024).await else {
            panic!("admitted over the budget");
        };
        assert!(m.contains("INGEST_MEMORY_MIB"), "{m}");
        // Once the first is done, the second gets its share.
        let waiting = actix_web::rt::spawn(async move {
            let mut third = budget.reservation();
            third.cover(1024).await.map(|()| third.held_kib())
        });
        drop(first);
        assert_eq!(waiting.await.unwrap().unwrap(), INGEST_MEMORY_PER_BODY_BYTE);
    }
}
