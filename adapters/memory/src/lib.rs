//! In-memory adapters: what the gateway runs on when no Redis and no cluster are configured, and
//! the doubles the app's tests use.
//!
//! - [`MemoryDedupStore`]: the [`DedupStore`] port in a bounded map;
//! - [`SystemClock`]: the [`Clock`] port over the operating system's clock (a clock for tests is
//!   `gateway_ports::test_util::ManualClock`);
//! - [`StaticConfigSource`]: the [`ConfigSource`](gateway_ports::ConfigSource) port over fixed values;
//! - [`MemoryStormCounter`]: the [`StormCounter`](gateway_ports::StormCounter) port, the Redis
//!   adapter's arithmetic in a map bounded in alert names;
//! - [`MemoryWindowStore`]: the [`WindowStore`](gateway_ports::WindowStore) port, compare-and-set
//!   windows expiring by an injected clock;
//! - [`MemoryOutbox`]: the [`Outbox`](gateway_ports::Outbox) port, lost on a crash (for
//!   `--state memory` and tests).

mod outbox;
mod storm_counter;
mod windows;

pub use outbox::MemoryOutbox;
pub use storm_counter::{DEFAULT_MAX_ALERT_NAMES, MemoryStormCounter};
pub use windows::MemoryWindowStore;

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use gateway_ports::{Clock, DedupStore, DedupWindow, Fingerprint, Seen, StoreError, Timestamp};

/// Fixed settings behind the `ConfigSource` port: [`gateway_ports::SettingsCell`] already is one
/// (its setters serve tests that need a change).
pub type StaticConfigSource = gateway_ports::SettingsCell;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the gateway reads the OS clock
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A [`DedupStore`] in process memory, bounded by a capacity.
///
/// Windows live in a map; a queue in first-occurrence order serves eviction. When the map is
/// full, expired windows go first, then the oldest live ones: an evicted fingerprint reads as
/// `First` again, which costs at worst a second RemediationRequest, never a lost alert.
/// State is per process: replicas do not share it (that is what the Redis store is for).
#[derive(Debug)]
pub struct MemoryDedupStore {
    capacity: NonZeroUsize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<Fingerprint, DedupWindow>,
    /// (fingerprint, window start) in order of first occurrence; entries whose window was since
    /// forgotten or replaced are stale and skipped.
    order: VecDeque<(Fingerprint, Timestamp)>,
    evicted: u64,
}

impl State {
    fn is_current(&self, fp: &Fingerprint, start: Timestamp) -> bool {
        self.windows.get(fp).is_some_and(|w| w.start == start)
    }

    /// Makes room for one more window.
    fn make_room(&mut self, capacity: usize, now: Timestamp) {
        while self.windows.len() >= capacity {
            let Some((fp, start)) = self.order.pop_front() else {
                break;
            };
            if self.is_current(&fp, start) {
                let live = self.windows.get(&fp).is_some_and(|w| w.is_live(now));
                self.windows.remove(&fp);
                if live {
                    self.evicted += 1;
                }
            }
        }
        // Stale entries accumulate when fingerprints are forgotten and seen again; rebuild the
        // queue before it outgrows the map by much.
        if self.order.len() > 2 * capacity {
            let windows = &self.windows;
            self.order
                .retain(|(fp, start)| windows.get(fp).is_some_and(|w| w.start == *start));
        }
    }
}

impl MemoryDedupStore {
    /// A store holding at most `capacity` fingerprints.
    pub fn new(capacity: NonZeroUsize) -> Self {
        MemoryDedupStore {
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    /// Fingerprints currently held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().windows.len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live windows evicted to respect the capacity, since start.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a single insert.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl DedupStore for MemoryDedupStore {
    async fn record(
        &self,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Seen, StoreError> {
        let mut state = self.lock();
        let previous = state.windows.get(fingerprint).copied();
        let (window, seen) = DedupWindow::record(previous, now, ttl);
        if let Seen::First { .. } = seen {
            if previous.is_none() {
                state.make_room(self.capacity.get(), now);
            }
            state.order.push_back((fingerprint.clone(), window.start));
        }
        state.windows.insert(fingerprint.clone(), window);
        Ok(seen)
    }

    async fn forget(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        self.lock().windows.remove(fingerprint);
        Ok(())
    }

    async fn release(
        &self,
        fingerprint: &Fingerprint,
        claimed_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state
            .windows
            .get(fingerprint)
            .is_some_and(|window| window.claimed == Some(claimed_at))
        {
            state.windows.remove(fingerprint);
        }
        Ok(())
    }

    async fn settle(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        if let Some(window) = self.lock().windows.get_mut(fingerprint) {
            window.claimed = None;
        }
        Ok(())
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u64) -> Fingerprint {
        Fingerprint::from_hex(&format!("{n:064x}")).unwrap()
    }

    fn store(capacity: usize) -> MemoryDedupStore {
        MemoryDedupStore::new(NonZeroUsize::new(capacity).unwrap())
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn memory_stays_within_capacity_under_unique_fingerprints() {
        let s = store(100);
        let t = Timestamp::from_secs(1_000);
        for n in 0..10_000 {
            s.record(&fp(n), TTL, t).await.unwrap();
            assert!(s.len() <= 100);
        }
        assert_eq!(s.evicted(), 9_900);
    }

    #[tokio::test]
    async fn expired_windows_are_evicted_before_live_ones() {
        let s = store(2);
        s.record(&fp(1), Duration::from_secs(1), Timestamp::from_secs(0))
            .await
            .unwrap();
        s.record(&fp(2), TTL, Timestamp::from_secs(0))
            .await
            .unwrap();
        s.record(&fp(3), TTL, Timestamp::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            s.evicted(),
            0,
            "fp 1 had expired: evicting it costs nothing"
        );
        let seen = s
            .record(&fp(2), TTL, Timestamp::from_secs(6))
            .await
            .unwrap();
        assert!(matches!(seen, Seen::Claimed { count: 2, .. }), "fp 2 kept");
    }

    #[tokio::test]
    async fn forget_then_record_churn_keeps_the_queue_bounded() {
        let s = store(10);
        for i in 0..1_000 {
            s.record(&fp(1), TTL, Timestamp::from_secs(i))
                .await
                .unwrap();
            s.forget(&fp(1)).await.unwrap();
        }
        assert!(s.lock().order.len() <= 21);
    }
}
