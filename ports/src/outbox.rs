//! The [`Outbox`] port: RemediationRequest writes that no request waits on, kept where the
//! configured state lives until they are made, so a crash between a 2xx and the write loses
//! nothing.

use async_trait::async_trait;

use crate::dedup::StoreError;

/// One stored entry of an [`Outbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The entry's key (the RemediationRequest's name).
    pub key: String,
    /// Rises with every [`Outbox::put`] of the key; [`Outbox::remove`] names it.
    pub version: u64,
    /// The write, as its owner serialised it.
    pub entry: Vec<u8>,
}

/// The pending-write queue: writes handed over to the background (the signals of a storm buffer
/// that went quiet, a closed storm aggregate), durable in the configured state backend before the
/// hand-over counts as done.
///
/// Contract (checked by the conformance suite in the tests crate, for every adapter):
/// - [`Outbox::put`] stores `entry` under `key`, replacing what was there, and returns a version
///   greater than any earlier version of that key (also of a removed entry, for as long as the
///   store lives), in one atomic step; once it returns `Ok`, the entry survives a crash of the
///   process (the in-memory adapter excepted, as documented there);
/// - [`Outbox::remove`] deletes the entry only when its version is still `version` (a write that
///   finished must not delete a newer entry put meanwhile); removing a missing entry is `Ok`;
/// - [`Outbox::list`] returns every stored entry (recovery at start-up), in key order;
/// - [`Outbox::len`] counts the stored entries.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
#[allow(clippy::len_without_is_empty)] // a store's count, asked rarely: `len() == 0` says it
pub trait Outbox: Send + Sync + std::fmt::Debug {
    /// Stores `entry` under `key`; returns its version.
    async fn put(&self, key: &str, entry: Vec<u8>) -> Result<u64, StoreError>;
    /// Deletes the entry under `key` if its version is still `version`.
    async fn remove(&self, key: &str, version: u64) -> Result<(), StoreError>;
    /// Every stored entry, in key order.
    async fn list(&self) -> Result<Vec<OutboxEntry>, StoreError>;
    /// How many entries are stored.
    async fn len(&self) -> Result<usize, StoreError>;
    /// Whether no entry is stored.
    async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }
}
