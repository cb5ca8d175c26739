//! Dedup releases that failed — a new signal's write failed while the dedup store was away too
//! (a Redis primary lost mid-request) — tried again every round until done, or until the claim
//! they name is old enough to be taken over anyway ([`DedupWindow::CLAIM`]). Without them the
//! signal's resends are answered `503 claimed` for the rest of the claim once the store is back.
//!
//! Invariant: a release names its claim, so one made late never ends a window another caller
//! opened or took over since ([`DedupStore::release`]). At most [`MAX_WAITING`] wait, the
//! oldest dropped first (each then costs what it would have without this: the claim's wait).

use std::collections::VecDeque;
use std::sync::Mutex;

use gateway_dedup::Deduplicator;
use gateway_ports::{DedupStore, DedupWindow, Fingerprint, Timestamp};

/// The most releases that wait: each is a signal answered 503 in the last
/// [`DedupWindow::CLAIM`], so this is only reached by a long outage at a high rate.
pub const MAX_WAITING: usize = 100_000;

/// Releases to try again.
#[derive(Debug, Default)]
pub struct PendingReleases {
    waiting: Mutex<VecDeque<(Fingerprint, Timestamp)>>,
}

impl PendingReleases {
    fn waiting(&self) -> std::sync::MutexGuard<'_, VecDeque<(Fingerprint, Timestamp)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The release of `fingerprint`'s claim made at `claimed_at` failed: try it again later.
    pub fn add(&self, fingerprint: Fingerprint, claimed_at: Timestamp) {
        let mut waiting = self.waiting();
        if waiting.len() >= MAX_WAITING {
            waiting.pop_front();
        }
        waiting.push_back((fingerprint, claimed_at));
    }

    /// Tries the waiting releases at `now`, oldest first, until one fails (the store is still
    /// away: the rest wait for the next round, none costs a timeout of its own); a claim old
    /// enough to be taken over is dropped untried. How many still wait.
    pub async fn retry(&self, dedup: &Deduplicator<dyn DedupStore>, now: Timestamp) -> usize {
        let mut batch = std::mem::take(&mut *self.waiting());
        while let Some((fingerprint, claimed_at)) = batch.pop_front() {
            if now.saturating_since(claimed_at) >= DedupWindow::CLAIM {
                continue;
            }
            if let Err(e) = dedup.release(&fingerprint, claimed_at).await {
                tracing::debug!(error = %e, %fingerprint, "a dedup release waits for the store");
                batch.push_front((fingerprint, claimed_at));
                break;
            }
            tracing::info!(%fingerprint, "a dedup release that failed is done: the alert's resend is new");
        }
        let mut waiting = self.waiting();
        // Added meanwhile go after the ones that waited.
        batch.extend(waiting.drain(..));
        *waiting = batch;
        waiting.len()
    }

    /// How many wait.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use gateway_adapter_memory::MemoryDedupStore;
    use gateway_ports::{Seen, StoreError};

    use super::*;

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::from_hex(&format!("{n:02x}").repeat(32)).unwrap()
    }

    const TTL: Duration = Duration::from_secs(300);

    /// A store that is away until `back` is set.
    #[derive(Debug)]
    struct Away {
        inner: MemoryDedupStore,
        back: std::sync::atomic::AtomicBool,
    }

    impl Default for Away {
        fn default() -> Self {
            Away {
                inner: MemoryDedupStore::new(std::num::NonZeroUsize::new(100).unwrap()),
                back: std::sync::atomic::AtomicBool::new(false),
            }
        }
    }

    impl Away {
        fn up(&self) -> Result<(), StoreError> {
            if self.back.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(())
            } else {
                Err(StoreError::Unavailable {
                    reason: "away".into(),
                    source: None,
                })
            }
        }
    }

    #[async_trait::async_trait]
    impl DedupStore for Away {
        async fn record(
            &self,
            f: &Fingerprint,
            ttl: Duration,
            now: Timestamp,
        ) -> Result<Seen, StoreError> {
            self.inner.record(f, ttl, now).await
        }
        async fn forget(&self, f: &Fingerprint) -> Result<(), StoreError> {
            self.inner.forget(f).await
        }
        async fn release(&self, f: &Fingerprint, at: Timestamp) -> Result<(), StoreError> {
            self.up()?;
            self.inner.release(f, at).await
        }
        async fn settle(&self, f: &Fingerprint) -> Result<(), StoreError> {
            self.inner.settle(f).await
        }
        async fn check(&self) -> Result<(), StoreError> {
            self.up()
        }
    }

    #[tokio::test]
    async fn a_failed_release_is_made_once_the_store_is_back_and_the_resend_is_new() {
        let store = Arc::new(Away::default());
        let dedup = Deduplicator::new(store.clone() as Arc<dyn DedupStore>);
        let t0 = Timestamp::from_secs(1_000);
        assert!(matches!(
            store.record(&fp(1), TTL, t0).await.unwrap(),
            Seen::First { .. }
        ));
        let pending = PendingReleases::default();
        pending.add(fp(1), t0);
        // Still away: it waits.
        assert_eq!(pending.retry(&dedup, t0 + Duration::from_secs(1)).await, 1);
        store.back.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(pending.retry(&dedup, t0 + Duration::from_secs(2)).await, 0);
        assert!(matches!(
            store
                .record(&fp(1), TTL, t0 + Duration::from_secs(3))
                .await
                .unwrap(),
            Seen::First { .. }
        ));
    }

    #[tokio::test]
    async fn a_claim_old_enough_to_be_taken_over_is_dropped_untried() {
        let store = Arc::new(Away::default());
        let dedup = Deduplicator::new(store.clone() as Arc<dyn DedupStore>);
        let pending = PendingReleases::default();
        let t0 = Timestamp::from_secs(1_000);
        pending.add(fp(1), t0);
        pending.add(fp(2), t0 + Duration::from_secs(20));
        // Away still: the first is too old to matter, the second waits.
        assert_eq!(pending.retry(&dedup, t0 + DedupWindow::CLAIM).await, 1);
    }

    #[test]
    fn at_most_max_waiting_wait_the_oldest_dropped() {
        let pending = PendingReleases::default();
        for i in 0..MAX_WAITING + 3 {
            pending.add(fp(1), Timestamp::from_millis(i as u64));
        }
        assert_eq!(pending.len(), MAX_WAITING);
        assert_eq!(
            pending.waiting().front().unwrap().1,
            Timestamp::from_millis(3)
        );
    }
}
