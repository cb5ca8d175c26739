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
    /// A later occurrence within the window, whose first occurrence was settled (recorded).
    Duplicate {
        /// Start of the window (the first occurrence).
        window_start: Timestamp,
        /// Occurrences in this window, this one included (≥ 2).
        count: u64,
    },
    /// A later occurrence within the window while its first occurrence is still claimed: being
    /// recorded by another caller, or abandoned by one that crashed (then, once the claim is
    /// [`DedupWindow::CLAIM`] old, the next occurrence takes it over as [`Seen::First`]).
    Claimed {
        /// Start of the window (the first occurrence).
        window_start: Timestamp,
        /// Occurrences in this window, this one included (≥ 2).
        count: u64,
    },
}

/// A failure of a state store (dedup, storm counts, storm windows). Vendor errors are kept as the
/// boxed source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; the call may be retried.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// A short description, safe to show.
        reason: String,
        /// The vendor error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store answered with something it should not have.
    #[error("store error: {reason}")]
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
/// - a `First` window is **claimed** until [`DedupStore::settle`]: occurrences meanwhile are
///   [`Seen::Claimed`]; an occurrence when the claim is [`DedupWindow::CLAIM`] old takes it over
///   (`First` again, same window start, the claim renewed), so a caller that crashed between
///   `record` and `settle` cannot leave a fingerprint marked as seen with nothing behind it;
/// - [`DedupStore::forget`] ends the fingerprint's window at once: the next `record` is `First`;
/// - memory is bounded: an adapter may evict, and an evicted fingerprint reads as `First`
///   (a second RemediationRequest is the safe failure; a lost alert is not).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DedupStore: Send + Sync + std::fmt::Debug {
    /// Records one occurrence of `fingerprint` at `now`.
    async fn record(
        &self,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Seen, StoreError>;

    /// Ends the fingerprint's window (its alert resolved).
    async fn forget(&self, fingerprint: &Fingerprint) -> Result<(), StoreError>;

    /// Ends the fingerprint's window if its first occurrence is still claimed by the `record`
    /// made at `claimed_at` (the one told [`Seen::First`]): creating its remediation failed, so
    /// the sender's resend is new. Anything else — settled, taken over since, another window,
    /// none — is left as it is (`Ok`), so a release made late (tried again after an outage)
    /// never ends a window someone else now holds.
    async fn release(
        &self,
        fingerprint: &Fingerprint,
        claimed_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Ends the claim of the fingerprint's window: its first occurrence is recorded, later ones
    /// are [`Seen::Duplicate`]. A missing window is `Ok`. An adapter may answer once the change
    /// is queued ahead of every later operation rather than done (what comes after reads it
    /// settled); if it then fails, the claim stays until taken over, as after an `Err`.
    async fn settle(&self, fingerprint: &Fingerprint) -> Result<(), StoreError>;

    /// Succeeds when the store can serve requests now (readiness).
    async fn check(&self) -> Result<(), StoreError>;
}

/// The reference semantics of one fingerprint's window, for adapters that keep state themselves
/// (the in-memory store; the Redis store's Lua script does the same arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupWindow {
    /// The first occurrence.
    pub start: Timestamp,
    /// The TTL given with the first occurrence.
    pub ttl: Duration,
    /// Occurrences so far, the first included.
    pub count: u64,
    /// When the first occurrence was claimed (or the claim taken over); `None` once settled.
    pub claimed: Option<Timestamp>,
}

impl DedupWindow {
    /// How long a claim holds before the next occurrence may take it over: longer than any
    /// request's processing (the gateway bounds `--write-deadline` well below it).
    pub const CLAIM: Duration = Duration::from_secs(30);

    /// A window opened, and claimed, by a first occurrence at `now`.
    pub fn open(now: Timestamp, ttl: Duration) -> Self {
        DedupWindow {
            start: now,
            ttl,
            count: 1,
            claimed: Some(now),
        }
    }

    /// The window with its claim ended.
    pub fn settled(self) -> Self {
        DedupWindow {
            claimed: None,
            ..self
        }
    }

    /// The first instant at which the window no longer holds.
    pub fn expires_at(&self) -> Timestamp {
        self.start + self.ttl
    }

    /// Whether the window still holds at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at()
    }

    /// Records an occurrence at `now` against `previous` (the stored window, if any): returns the
    /// window to store and what the caller is told.
    pub fn record(
        previous: Option<DedupWindow>,
        now: Timestamp,
        ttl: Duration,
    ) -> (DedupWindow, Seen) {
        match previous {
            Some(w) if w.is_live(now) => {
                let mut w = DedupWindow {
                    count: w.count.saturating_add(1),
                    ..w
                };
                let seen = match w.claimed {
                    None => Seen::Duplicate {
                        window_start: w.start,
                        count: w.count,
                    },
                    Some(at) if now.saturating_since(at) >= Self::CLAIM => {
                        w.claimed = Some(now);
                        Seen::First {
                            window_start: w.start,
                        }
                    }
                    Some(_) => Seen::Claimed {
                        window_start: w.start,
                        count: w.count,
                    },
                };
                (w, seen)
            }
            _ => (
                DedupWindow::open(now, ttl),
                Seen::First { window_start: now },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_claim_holds_until_settled_or_taken_over_when_old() {
        let t0 = Timestamp::from_secs(100);
        let ttl = Duration::from_secs(600);
        let (w, _) = DedupWindow::record(None, t0, ttl);
        let (w, seen) = DedupWindow::record(Some(w), t0 + Duration::from_secs(1), ttl);
        assert_eq!(
            seen,
            Seen::Claimed {
                window_start: t0,
                count: 2
            }
        );
        let late = t0 + DedupWindow::CLAIM;
        let (w, seen) = DedupWindow::record(Some(w), late, ttl);
        assert_eq!(seen, Seen::First { window_start: t0 }, "taken over");
        assert_eq!(w.claimed, Some(late), "the claim renewed");
        let (_, seen) = DedupWindow::record(Some(w.settled()), late, ttl);
        assert_eq!(
            seen,
            Seen::Duplicate {
                window_start: t0,
                count: 4
            }
        );
    }

    #[test]
    fn a_window_holds_for_exactly_its_ttl() {
        let w = DedupWindow::open(Timestamp::from_secs(100), Duration::from_secs(10));
        assert!(w.is_live(Timestamp::from_millis(109_999)));
        assert!(!w.is_live(Timestamp::from_secs(110)));
    }

    proptest! {
        #[test]
        fn occurrences_within_ttl_are_counted_and_later_ones_open_a_new_window(
            ttl_ms in 1_000u64..600_000,
            gaps in proptest::collection::vec(0u64..200_000, 1..50),
        ) {
            let ttl = Duration::from_millis(ttl_ms);
            let mut now = Timestamp::from_secs(1_700_000_000);
            let (window, seen) = DedupWindow::record(None, now, ttl);
            prop_assert_eq!(seen, Seen::First { window_start: now });
            let mut window = window.settled();
            for gap in gaps {
                now = now + Duration::from_millis(gap);
                let live = now.saturating_since(window.start) < ttl;
                let (next, seen) = DedupWindow::record(Some(window), now, ttl);
                if live {
                    prop_assert_eq!(seen, Seen::Duplicate { window_start: window.start, count: window.count + 1 });
                    prop_assert_eq!(next.start, window.start);
                } else {
                    prop_assert_eq!(seen, Seen::First { window_start: now });
                    prop_assert_eq!(next.count, 1);
                }
                prop_assert!(next.is_live(now));
                window = next.settled();
            }
        }
    }
}
