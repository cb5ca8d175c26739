//! The deduplication policy: whether a signal is new, a duplicate, or the end of its alert.
//!
//! - A **firing** signal is recorded in the [`DedupStore`] under its fingerprint with the TTL in
//!   force at that moment. The first occurrence in a window is [`DedupOutcome::New`] (its caller
//!   creates the RemediationRequest); later ones within the window are
//!   [`DedupOutcome::Duplicate`], counted. A window's TTL is fixed when it opens, so a reload
//!   changes the windows opened after it, never stretches or cuts an open one.
//! - A **resolved** signal never creates a remediation: it ends its fingerprint's window, so the
//!   next firing is new again.
//! - If the remediation for a new signal cannot be written, [`Deduplicator::release`] ends the
//!   window, so the sender's retry counts as new: an alert is never lost to deduplication (a second
//!   RemediationRequest is the safe failure). Once it is written, [`Deduplicator::settle`] ends
//!   the first occurrence's claim; until then later occurrences are [`DedupOutcome::Claimed`]
//!   (not yet known to be recorded), and a claim left by a crash is taken over once old.
//!
//! Which occurrence is first is decided atomically by the store; this crate decides which TTL
//! applies and what the caller is told. Store errors are passed on untouched, so the caller can
//! answer "not recorded, send again".

use std::fmt;
use std::sync::Arc;

use gateway_ports::{
    Clock, ConfigSource, DedupSettings, DedupStore, Fingerprint, Seen, Signal, SignalStatus,
    StoreError, Timestamp,
};

/// What deduplication concluded about one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupOutcome {
    /// The first occurrence in a new window: the caller creates the remediation.
    New {
        /// When the window opened (this occurrence).
        window_start: Timestamp,
    },
    /// A later occurrence within an open window: the remediation exists or is being created.
    Duplicate {
        /// When the window opened (its first occurrence).
        window_start: Timestamp,
        /// Occurrences in the window, this one included (≥ 2).
        count: u64,
    },
    /// A later occurrence while the first is still being recorded (by another request, or by a
    /// process that crashed: its claim is taken over once old): not yet known to be recorded,
    /// so the caller must not answer it as done.
    Claimed {
        /// When the window opened.
        window_start: Timestamp,
    },
    /// The alert resolved: its window ended and nothing is to be created.
    Resolved,
}

/// Applies the deduplication policy over a [`DedupStore`].
///
/// Cheap to clone (it holds the store behind an [`Arc`]); `S` may be `dyn DedupStore` when the
/// store is chosen at run time.
pub struct Deduplicator<S: ?Sized> {
    store: Arc<S>,
}

impl<S: DedupStore + ?Sized> Deduplicator<S> {
    /// A deduplicator over `store`.
    pub fn new(store: Arc<S>) -> Self {
        Deduplicator { store }
    }

    /// Records a firing signal at `now` with `settings.ttl`, or ends a resolved signal's window.
    ///
    /// A resolved signal is never recorded: it is [`DedupOutcome::Resolved`] whether or not a
    /// window was open.
    pub async fn observe(
        &self,
        signal: &Signal,
        settings: &DedupSettings,
        now: Timestamp,
    ) -> Result<DedupOutcome, StoreError> {
        match signal.status {
            SignalStatus::Firing => {
                let seen = self
                    .store
                    .record(&signal.fingerprint, settings.ttl.get(), now)
                    .await?;
                Ok(match seen {
                    Seen::First { window_start } => DedupOutcome::New { window_start },
                    Seen::Duplicate {
                        window_start,
                        count,
                    } => DedupOutcome::Duplicate {
                        window_start,
                        count,
                    },
                    Seen::Claimed { window_start, .. } => DedupOutcome::Claimed { window_start },
                })
            }
            SignalStatus::Resolved => {
                self.store.forget(&signal.fingerprint).await?;
                Ok(DedupOutcome::Resolved)
            }
        }
    }

    /// [`Deduplicator::observe`] with the dedup settings in force in `config` and the time from
    /// `clock`.
    pub async fn observe_with(
        &self,
        signal: &Signal,
        config: &dyn ConfigSource,
        clock: &dyn Clock,
    ) -> Result<DedupOutcome, StoreError> {
        let settings = config.dedup();
        self.observe(signal, &settings, clock.now()).await
    }

    /// Ends `fingerprint`'s window because the remediation for its [`DedupOutcome::New`]
    /// occurrence — observed at `claimed_at` — could not be written, so the sender's retry
    /// counts as new rather than as a duplicate of work that does not exist. Only while that
    /// occurrence's claim still holds: a release tried again late never ends a window another
    /// caller opened or took over since.
    pub async fn release(
        &self,
        fingerprint: &Fingerprint,
        claimed_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.store.release(fingerprint, claimed_at).await
    }

    /// The [`DedupOutcome::New`] occurrence of `fingerprint` is recorded: later ones are
    /// duplicates (until then they are [`DedupOutcome::Claimed`]).
    pub async fn settle(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        self.store.settle(fingerprint).await
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }
}

// Written by hand so that neither impl requires `S: Debug` or `S: Clone`: `dyn DedupStore` is
// neither, and the app holds a `Deduplicator<dyn DedupStore>`.
impl<S: ?Sized> fmt::Debug for Deduplicator<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deduplicator").finish_non_exhaustive()
    }
}

impl<S: ?Sized> Clone for Deduplicator<S> {
    fn clone(&self) -> Self {
        Deduplicator {
            store: Arc::clone(&self.store),
        }
    }
}

#[cfg(test)]
mod tests;
