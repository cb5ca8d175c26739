//! The [`DedupStore`] port: who saw a fingerprint first within its TTL window.

use std::time::Duration;

use async_trait::async_trait;

use crate::signal::Fingerprint;
use crate::time::Timestamp;

/// What a store knew of a fingerprint when an occurrence was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The first occurrence in a new window: this caller owns creating the remediation.
    First {
        /// Start of the window (the `now` passed in).
        window_start: Timestamp,
    },
    /// A later occurrence within the window.
    Duplicate {
        /// Start of the window (the first occurrence).
        window_start: Timestamp,
        /// Occurrences in this window, this one included (≥ 2).
        count: u64,
    },
}

/// A store failure. Vendor errors are kept as the boxed source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; the call may be retried.
    #[error("dedup store unavailable: {reason}")]
    Unavailable {
        /// A short description, safe to show.
        reason: String,
        /// The vendor error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store answered with something it should not have.
    #[error("dedup store error: {reason}")]
    Backend {
        /// A short description, safe to show.
        reason: String,
        /// The vendor error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Records occurrences of fingerprints and decides, atomically, which one is the first.
///
/// Contract (checked by the conformance suite in the tests crate, for every adapter):
/// - [`DedupStore::record`] returns [`Seen::First`] for **exactly one** caller per fingerprint and
///   TTL window, however many race; every other caller within the window gets
///   [`Seen::Duplicate`] with a count that rises by one per call;
/// - a window lasts `ttl` from its first occurrence (duplicates do not extend it); the TTL given
///   with the first occurrence is the one that applies to that window;
/// - [`DedupStore::forget`] ends the fingerprint's window at once: the next `record` is `First`;
/// - memory is bounded: an adapter may evict, and an evicted fingerprint reads as `First`
///   (a second RemediationRequest is the safe failure; a lost alert is not).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DedupStore: Send + Sync {
    /// Records one occurrence of `fingerprint` at `now`.
    async fn record(
        &self,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Seen, StoreError>;

    /// Ends the fingerprint's window (its alert resolved, or creating its remediation failed).
    async fn forget(&self, fingerprint: &Fingerprint) -> Result<(), StoreError>;

    /// Succeeds when the store can serve requests now (readiness).
    async fn check(&self) -> Result<(), StoreError>;
}
