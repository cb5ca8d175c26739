//! The [`StormCounter`] port: storm-detection counts shared by every gateway replica.

use std::time::Duration;

use async_trait::async_trait;

use crate::dedup::StoreError;
use crate::signal::ResourceRef;
use crate::time::Timestamp;

/// What storm detection counts for one alert name, the signal just recorded included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StormCounts {
    /// Signals of the alert name within the rate window.
    pub rate: u64,
    /// Distinct resources the alert name hit within the pattern window.
    pub distinct_resources: u64,
}

/// Counts signals per alert name where every replica sees them, so a threshold means the same
/// with one replica or five.
///
/// Contract: [`StormCounter::count`] adds the signal and returns the counts with it, in one
/// atomic step; a signal exactly `rate_window` (or `pattern_window`) old no longer counts; the
/// state of an alert name that goes quiet expires after `pattern_window`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait StormCounter: Send + Sync {
    /// Records one new signal of `alert_name` on `resource` at `now` and counts.
    async fn count(
        &self,
        alert_name: &str,
        resource: &ResourceRef,
        now: Timestamp,
        rate_window: Duration,
        pattern_window: Duration,
    ) -> Result<StormCounts, StoreError>;
}

/// A stored aggregation window: its serialised state and the version a replacement must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWindow {
    /// Rises by one with every replacement.
    pub version: u64,
    /// The window, as its owner serialised it.
    pub state: Vec<u8>,
}

/// Open storm aggregation windows, shared by every replica, replaced by compare-and-set.
///
/// Contract: [`WindowStore::replace`] succeeds only when the stored version is still `expected`
/// (`None`: only when no window is stored), in one atomic step, so two replicas taking signals
/// into the same window never lose one another's; `state: None` deletes the window. A stored
/// window expires after `ttl` unless replaced. [`WindowStore::keys`] lists every stored window
/// (it may list some that just expired: their `load` is `None`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait WindowStore: Send + Sync {
    /// The window stored under `key`.
    async fn load(&self, key: &str) -> Result<Option<StoredWindow>, StoreError>;
    /// Compare-and-set; `Ok(false)` when another writer came first.
    async fn replace(
        &self,
        key: &str,
        expected: Option<u64>,
        state: Option<Vec<u8>>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Every stored window's key.
    async fn keys(&self) -> Result<Vec<String>, StoreError>;
}
