//! Coalescing of occurrence-count updates: at most one write per resource per interval, so an
//! alert storm (every duplicate is an occurrence) does not become an API-server storm.
//!
//! A duplicate records its count here (the dedup store's count: absolute, so merging two is a
//! `max`); [`Coalescer::due`] hands out, once per interval per resource, the latest count to
//! write. A resource found missing (its signal went into a storm aggregate, or is still buffered)
//! is remembered as absent for a while, so its duplicates cost no API call at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use gateway_ports::{Occurrences, Timestamp};

/// How many resources may wait for their count update at most; beyond, the newest record is
/// dropped (the count is bookkeeping, never the alert itself).
pub const MAX_PENDING: usize = 100_000;

/// How many intervals a missing resource is remembered as missing.
const ABSENT_INTERVALS: u32 = 12;

type Key = (String, String);

/// What became of one recorded occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Queued for the next write of its resource.
    Queued,
    /// Folded into an update already queued.
    Coalesced,
    /// The resource is known to be missing: nothing to write.
    Absent,
    /// Too many resources waiting: dropped.
    Dropped,
}

#[derive(Debug, Default)]
struct State {
    pending: BTreeMap<Key, Occurrences>,
    last_write: HashMap<Key, Timestamp>,
    absent_until: HashMap<Key, Timestamp>,
}

/// Occurrence-count updates waiting for their resource's next write slot.
#[derive(Debug)]
pub struct Coalescer {
    interval: Duration,
    state: Mutex<State>,
}

fn key(o: &Occurrences) -> Key {
    (o.namespace.clone(), o.name.clone())
}

fn merge(into: &mut Occurrences, from: &Occurrences) {
    into.occurrence_count = into.occurrence_count.max(from.occurrence_count);
    into.last_occurrence = into.last_occurrence.max(from.last_occurrence);
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(
        t.as_millis()
            .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

impl Coalescer {
    /// At most one write per resource per `interval`.
    pub fn new(interval: Duration) -> Self {
        Coalescer {
            interval,
            state: Mutex::new(State::default()),
        }
    }

    /// The shortest time between two writes of one resource.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records occurrences seen at `now`.
    pub fn record(&self, occurrences: Occurrences, now: Timestamp) -> Recorded {
        let key = key(&occurrences);
        let mut state = self.state();
        if state
            .absent_until
            .get(&key)
            .is_some_and(|until| *until > now)
        {
            return Recorded::Absent;
        }
        if let Some(queued) = state.pending.get_mut(&key) {
            merge(queued, &occurrences);
            return Recorded::Coalesced;
        }
        if state.pending.len() >= MAX_PENDING {
            return Recorded::Dropped;
        }
        state.pending.insert(key, occurrences);
        Recorded::Queued
    }

    /// The updates whose resource has not been written within the interval (all of them with
    /// `everything`, at shutdown); they leave the queue and count as written at `now`.
    pub fn due(&self, now: Timestamp, everything: bool) -> Vec<Occurrences> {
        let mut state = self.state();
        let interval = self.interval;
        let State {
            pending,
            last_write,
            absent_until,
        } = &mut *state;
        last_write.retain(|_, at| plus(*at, interval) > now);
        absent_until.retain(|_, until| *until > now);
        let ready: Vec<Key> = pending
            .keys()
            .filter(|k| everything || !last_write.contains_key(*k))
            .cloned()
            .collect();
        ready
            .into_iter()
            .filter_map(|k| {
                last_write.insert(k.clone(), now);
                pending.remove(&k)
            })
            .collect()
    }

    /// A write that failed transiently: back in the queue (merged with anything newer).
    pub fn retry_later(&self, occurrences: Occurrences) {
        let key = key(&occurrences);
        let mut state = self.state();
        match state.pending.get_mut(&key) {
            Some(queued) => merge(queued, &occurrences),
            None => {
                state.pending.insert(key, occurrences);
            }
        }
    }

    /// The resource does not exist: its updates are dropped for a while.
    pub fn absent(&self, occurrences: &Occurrences, now: Timestamp) {
        let key = key(occurrences);
        let mut state = self.state();
        state.pending.remove(&key);
        state
            .absent_until
            .insert(key, plus(now, self.interval * ABSENT_INTERVALS));
    }

    /// Updates waiting.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(name: &str, count: u64, at_s: u64) -> Occurrences {
        Occurrences {
            name: name.to_owned(),
            namespace: "prod".to_owned(),
            last_occurrence: Timestamp::from_secs(at_s),
            occurrence_count: count,
        }
    }

    const T0: u64 = 1_764_000_000;

    #[test]
    fn many_duplicates_of_one_resource_become_one_write_per_interval() {
        let c = Coalescer::new(Duration::from_secs(5));
        assert_eq!(
            c.record(occ("a", 2, T0), Timestamp::from_secs(T0)),
            Recorded::Queued
        );
        for n in 3..50 {
            assert_eq!(
                c.record(occ("a", n, T0 + 1), Timestamp::from_secs(T0 + 1)),
                Recorded::Coalesced
            );
        }
        let due = c.due(Timestamp::from_secs(T0 + 1), false);
        assert_eq!(due, vec![occ("a", 49, T0 + 1)], "the latest count, once");
        // More duplicates within the interval wait for it to pass.
        c.record(occ("a", 60, T0 + 2), Timestamp::from_secs(T0 + 2));
        assert!(c.due(Timestamp::from_secs(T0 + 3), false).is_empty());
        assert_eq!(
            c.due(Timestamp::from_secs(T0 + 6), false),
            vec![occ("a", 60, T0 + 2)]
        );
    }

    #[test]
    fn counts_merge_as_a_maximum_whatever_the_order() {
        let c = Coalescer::new(Duration::from_secs(5));
        c.record(occ("a", 9, T0 + 3), Timestamp::from_secs(T0));
        c.record(occ("a", 4, T0 + 1), Timestamp::from_secs(T0));
        let due = c.due(Timestamp::from_secs(T0), false);
        assert_eq!(due, vec![occ("a", 9, T0 + 3)]);
        c.retry_later(occ("a", 7, T0 + 2));
        c.retry_later(occ("a", 8, T0 + 4));
        assert_eq!(
            c.due(Timestamp::from_secs(T0 + 10), false),
            vec![Occurrences {
                occurrence_count: 8,
                ..occ("a", 8, T0 + 4)
            }]
        );
    }

    #[test]
    fn a_missing_resource_costs_no_write_for_a_while() {
        let c = Coalescer::new(Duration::from_secs(5));
        c.record(occ("a", 2, T0), Timestamp::from_secs(T0));
        let due = c.due(Timestamp::from_secs(T0), false);
        c.absent(&due[0], Timestamp::from_secs(T0));
        assert_eq!(
            c.record(occ("a", 3, T0 + 30), Timestamp::from_secs(T0 + 30)),
            Recorded::Absent
        );
        assert_eq!(c.pending(), 0);
        // After 12 intervals it is tried again (it may have been created since).
        assert_eq!(
            c.record(occ("a", 4, T0 + 61), Timestamp::from_secs(T0 + 61)),
            Recorded::Queued
        );
    }

    #[test]
    fn shutdown_takes_everything_and_distinct_resources_do_not_wait_for_each_other() {
        let c = Coalescer::new(Duration::from_secs(5));
        c.record(occ("a", 2, T0), Timestamp::from_secs(T0));
        c.due(Timestamp::from_secs(T0), false);
        c.record(occ("a", 3, T0), Timestamp::from_secs(T0));
        c.record(occ("b", 2, T0), Timestamp::from_secs(T0));
        assert_eq!(
            c.due(Timestamp::from_secs(T0 + 1), false),
            vec![occ("b", 2, T0)]
        );
        assert_eq!(
            c.due(Timestamp::from_secs(T0 + 1), true),
            vec![occ("a", 3, T0)]
        );
    }
}
