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
