//! [`WindowSlot`]: what a [`WindowStore`](crate::WindowStore) keeps under one key, and the
//! reference compare-and-set of [`WindowStore::replace`](crate::WindowStore::replace), for
//! adapters that keep the state themselves (the Redis store's `replace_window.lua` does the same).

use std::time::Duration;

use crate::storm::StoredWindow;
use crate::time::Timestamp;

/// One key's window, or the version a deleted window left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSlot {
    /// The last version given out under the key: the window's, or the deleted window's.
    pub version: u64,
    /// The window's state; `None`: deleted, its version kept until `expires`.
    pub state: Option<Vec<u8>>,
    /// The first instant the slot no longer holds (`ttl` after its last replacement).
    pub expires: Timestamp,
}

/// What [`WindowSlot::replace`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// The stored version is not the expected one: another writer came first (`Ok(false)`).
    Refused,
    /// Nothing to change: a deletion where no window is stored, expecting none (`Ok(true)`).
    Unchanged,
    /// Store this slot under the key (`Ok(true)`).
    Store(WindowSlot),
}

impl WindowSlot {
    /// Whether the slot still holds at `now`; an expired slot is as if nothing were stored.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires
    }

    /// The stored window, unless the slot is a deletion's.
    pub fn window(&self) -> Option<StoredWindow> {
        self.state.as_ref().map(|state| StoredWindow {
            version: self.version,
            state: state.clone(),
        })
    }

    /// The compare-and-set of [`WindowStore::replace`](crate::WindowStore::replace) against
    /// `current`, the slot stored under the key (expired slots are ignored): the version rises
    /// by one with every replacement, a deletion included, and the slot expires `ttl` (at least
    /// a millisecond) after `now`.
    pub fn replace(
        current: Option<&WindowSlot>,
        expected: Option<u64>,
        state: Option<Vec<u8>>,
        ttl: Duration,
        now: Timestamp,
    ) -> Replacement {
        let current = current.filter(|slot| slot.is_live(now));
        let stored = current.and_then(|slot| slot.state.is_some().then_some(slot.version));
        if stored != expected {
            return Replacement::Refused;
        }
        if state.is_none() && stored.is_none() {
            return Replacement::Unchanged;
        }
        Replacement::Store(WindowSlot {
            version: current.map_or(0, |slot| slot.version) + 1,
            state,
            expires: now + ttl.max(Duration::from_millis(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);
    const T0: Timestamp = Timestamp::from_secs(1_764_090_000);

    fn stored(replacement: Replacement) -> WindowSlot {
        match replacement {
            Replacement::Store(slot) => slot,
            other => panic!("expected a slot to store, got {other:?}"),
        }
    }

    #[test]
    fn a_deletion_keeps_the_version_so_a_new_window_continues_it() {
        let first = stored(WindowSlot::replace(None, None, Some(vec![1]), TTL, T0));
        assert_eq!(first.version, 1);
        let deleted = stored(WindowSlot::replace(Some(&first), Some(1), None, TTL, T0));
        assert_eq!((deleted.version, deleted.window()), (2, None));
        assert_eq!(
            WindowSlot::replace(Some(&deleted), Some(2), Some(vec![2]), TTL, T0),
            Replacement::Refused
        );
        let again = stored(WindowSlot::replace(
            Some(&deleted),
            None,
            Some(vec![3]),
            TTL,
            T0,
        ));
        assert_eq!(again.version, 3);
    }

    #[test]
    fn an_expired_slot_counts_as_nothing_stored() {
        let first = stored(WindowSlot::replace(None, None, Some(vec![1]), TTL, T0));
        let later = T0 + TTL;
        assert_eq!(
            WindowSlot::replace(Some(&first), Some(1), Some(vec![2]), TTL, later),
            Replacement::Refused
        );
        assert_eq!(
            WindowSlot::replace(Some(&first), None, None, TTL, later),
            Replacement::Unchanged
        );
        let fresh = stored(WindowSlot::replace(
            Some(&first),
            None,
            Some(vec![]),
            TTL,
            later,
        ));
        assert_eq!(fresh.version, 1);
        assert_eq!(fresh.expires, later + TTL);
    }
}
