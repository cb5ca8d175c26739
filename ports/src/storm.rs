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

/// What a [`StormCounter`] counts over. The storm domain chooses it (`gateway_storm::COUNTING`);
/// adapters take it as given, so no adapter copies a domain constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counting {
    /// Signals younger than this count towards the rate.
    pub rate_window: Duration,
    /// Resources hit more recently than this count as distinct resources.
    pub pattern_window: Duration,
    /// The most signals, and the most distinct resources, kept per alert name: the oldest go
    /// first. It bounds memory during a huge storm; a threshold at or above it is never exceeded.
    pub max_tracked: u32,
}

/// Counts signals per alert name where every replica sees them, so a threshold means the same
/// with one replica or five.
///
/// Contract (checked by the conformance suite in the tests crate, for every adapter):
/// [`StormCounter::count`] adds the signal and returns the counts with it, in one atomic step;
/// a signal exactly `rate_window` old no longer counts for the rate, a resource last hit exactly
/// `pattern_window` ago no longer counts as hit; alert names are counted apart; at most
/// `max_tracked` signals and resources are kept per alert name; the state of an alert name that
/// goes quiet is dropped after the longer of the two windows.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait StormCounter: Send + Sync + std::fmt::Debug {
    /// Records one new signal of `alert_name` on `resource` at `now` and counts.
    async fn count(
        &self,
        alert_name: &str,
        resource: &ResourceRef,
        now: Timestamp,
        counting: Counting,
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
/// into the same window never lose one another's; `state: None` deletes the window. A key's version
/// never repeats while a deletion of it is younger than its `ttl` (a window opened again in its
/// place continues the versions), so a writer holding a deleted window's version cannot overwrite
/// the new one. A stored window expires after `ttl` unless replaced. [`WindowStore::keys`] lists every stored window
/// (it may list some that just expired: their `load` is `None`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait WindowStore: Send + Sync + std::fmt::Debug {
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
