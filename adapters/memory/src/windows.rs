//! [`MemoryWindowStore`]: the [`WindowStore`] port in process memory, expiring windows by an
//! injected [`Clock`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{
    Clock, Replacement, StoreError, StoredWindow, Timestamp, WindowSlot, WindowStore,
};

/// Storm aggregation windows in process memory, replaced by compare-and-set (the ports'
/// [`WindowSlot::replace`]).
///
/// A window's version starts at 1 and rises by one with every replacement, its deletion included:
/// a deleted window leaves its version behind (not listed, `load` says `None`) until its TTL ends,
/// so a window created again under the same key continues the count instead of starting at 1 —
/// a writer still holding the deleted window's version is refused, not mistaken for the new
/// window's owner. A window expires `ttl` (at least a millisecond) after its last replacement, by
/// the clock given to [`MemoryWindowStore::new`]; expired windows are dropped when met and by a
/// sweep over all windows once per as many replacements as windows were held after the
/// previous sweep.
pub struct MemoryWindowStore {
    clock: Arc<dyn Clock>,
    state: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    by_key: HashMap<String, WindowSlot>,
    /// Replacements left before the next sweep: as many as slots were held after the last one.
    replaces_to_sweep: usize,
}

/// A sweep runs after at least this many replacements, however few windows are held.
const MIN_REPLACES_PER_SWEEP: usize = 64;

impl Windows {
    /// The unexpired slot under `key`; an expired one is dropped.
    fn slot(&mut self, key: &str, now: Timestamp) -> Option<&WindowSlot> {
        if self.by_key.get(key).is_some_and(|slot| !slot.is_live(now)) {
            self.by_key.remove(key);
        }
        self.by_key.get(key)
    }

    fn sweep(&mut self, now: Timestamp) {
        self.by_key.retain(|_, slot| slot.is_live(now));
        self.replaces_to_sweep = self.by_key.len().max(MIN_REPLACES_PER_SWEEP);
    }
}

impl std::fmt::Debug for MemoryWindowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryWindowStore")
            .field("held", &self.lock().by_key.len())
            .finish_non_exhaustive()
    }
}

impl MemoryWindowStore {
    /// An empty store whose windows expire by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryWindowStore {
            clock,
            state: Mutex::new(Windows::default()),
        }
    }

    /// Windows and deletion markers currently held (live or not yet swept).
    pub fn held(&self) -> usize {
        self.lock().by_key.len()
    }

    fn lock(&self) -> MutexGuard<'_, Windows> {
        // Every update is a single insert or remove: the map is consistent even if a holder
        // panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl WindowStore for MemoryWindowStore {
    async fn load(&self, key: &str) -> Result<Option<StoredWindow>, StoreError> {
        let now = self.clock.now();
        let mut windows = self.lock();
        Ok(windows.slot(key, now).and_then(WindowSlot::window))
    }

    async fn replace(
        &self,
        key: &str,
        expected: Option<u64>,
        state: Option<Vec<u8>>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut windows = self.lock();
        windows.replaces_to_sweep = windows.replaces_to_sweep.saturating_sub(1);
        if windows.replaces_to_sweep == 0 {
            windows.sweep(now);
        }
        match WindowSlot::replace(windows.slot(key, now), expected, state, ttl, now) {
            Replacement::Refused => Ok(false),
            Replacement::Unchanged => Ok(true),
            Replacement::Store(slot) => {
                windows.by_key.insert(key.to_owned(), slot);
                Ok(true)
            }
        }
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        let mut windows = self.lock();
        windows.sweep(now);
        Ok(windows
            .by_key
            .iter()
            .filter(|(_, slot)| slot.state.is_some())
            .map(|(key, _)| key.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[derive(Debug)]
    struct TestClock(AtomicU64);

    impl TestClock {
        fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_millis(self.0.load(Ordering::SeqCst))
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    fn store() -> (MemoryWindowStore, Arc<TestClock>) {
        let clock = Arc::new(TestClock(AtomicU64::new(1_764_090_000_000)));
        (MemoryWindowStore::new(clock.clone()), clock)
    }

    fn window(version: u64, state: &[u8]) -> Option<StoredWindow> {
        Some(StoredWindow {
            version,
            state: state.to_vec(),
        })
    }

    #[tokio::test]
    async fn versions_start_at_one_and_rise_by_one_per_replacement() {
        let (s, _) = store();
        assert_eq!(s.load("w").await.unwrap(), None);
        assert!(
            s.replace("w", None, Some(b"a".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert_eq!(s.load("w").await.unwrap(), window(1, b"a"));
        assert!(
            !s.replace("w", None, Some(b"x".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert!(
            !s.replace("w", Some(2), Some(b"x".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert!(
            s.replace("w", Some(1), Some(b"b".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert_eq!(s.load("w").await.unwrap(), window(2, b"b"));
        assert!(
            !s.replace("w", Some(1), Some(b"x".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert!(
            s.replace("w", Some(2), Some(Vec::new()), TTL)
                .await
                .unwrap()
        );
        assert_eq!(
            s.load("w").await.unwrap(),
            window(3, b""),
            "an empty state is a state"
        );
    }

    #[tokio::test]
    async fn deleting_hides_the_window_and_a_new_one_continues_the_versions() {
        let (s, _) = store();
        assert!(
            s.replace("w", None, Some(b"a".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert!(!s.replace("w", Some(2), None, TTL).await.unwrap());
        assert!(s.replace("w", Some(1), None, TTL).await.unwrap());
        assert_eq!(s.load("w").await.unwrap(), None);
        assert!(s.keys().await.unwrap().is_empty());
        assert!(
            !s.replace("w", Some(2), Some(b"x".to_vec()), TTL)
                .await
                .unwrap(),
            "a deleted window's version names no window"
        );
        assert!(
            s.replace("w", None, Some(b"b".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert_eq!(s.load("w").await.unwrap(), window(3, b"b"));
        assert!(
            !s.replace("w", Some(1), Some(b"x".to_vec()), TTL)
                .await
                .unwrap(),
            "a writer holding the first window's version cannot overwrite the second"
        );
        assert!(s.replace("gone", None, None, TTL).await.unwrap());
        assert_eq!(s.held(), 1);
    }

    #[tokio::test]
    async fn a_window_expires_ttl_after_its_last_replacement() {
        let (s, clock) = store();
        assert!(
            s.replace("w", None, Some(b"a".to_vec()), TTL)
                .await
                .unwrap()
        );
        clock.advance(Duration::from_secs(59));
        assert!(
            s.replace("w", Some(1), Some(b"b".to_vec()), TTL)
                .await
                .unwrap()
        );
        clock.advance(Duration::from_secs(59));
        assert_eq!(s.load("w").await.unwrap(), window(2, b"b"));
        assert_eq!(s.keys().await.unwrap(), ["w"]);
        clock.advance(Duration::from_millis(999));
        assert_eq!(s.load("w").await.unwrap(), window(2, b"b"));
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.load("w").await.unwrap(), None);
        assert!(s.keys().await.unwrap().is_empty());
        assert!(
            !s.replace("w", Some(2), Some(b"x".to_vec()), TTL)
                .await
                .unwrap(),
            "an expired window cannot be replaced"
        );
        assert!(
            s.replace("w", None, Some(b"c".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert_eq!(s.load("w").await.unwrap(), window(1, b"c"));
    }

    #[tokio::test]
    async fn expired_windows_are_swept_as_others_are_replaced() {
        let (s, clock) = store();
        for n in 0..100 {
            let key = format!("w{n}");
            assert!(s.replace(&key, None, Some(vec![1]), TTL).await.unwrap());
        }
        clock.advance(TTL);
        for round in 0..101 {
            assert!(
                s.replace("live", (round > 0).then_some(round), Some(vec![2]), TTL)
                    .await
                    .unwrap()
            );
        }
        assert!(s.held() <= 2, "{}", s.held());
        assert_eq!(s.keys().await.unwrap(), ["live"]);
    }

    #[test]
    fn the_store_is_shareable() {
        fn shareable<T: Send + Sync + std::fmt::Debug>() {}
        shareable::<MemoryWindowStore>();
    }
}
