//! Occurrence counts of duplicates: at most one write per resource per interval, so an alert
//! storm (every duplicate is an occurrence) does not become an API-server storm.
//!
//! A duplicate records its count here (the dedup store's count: absolute, so merging two is a
//! `max`); [`Coalescer::due`] hands out, once per interval per resource, the latest count to
//! write, and [`OccurrenceFlusher::flush`] (the ticker's) writes it. A resource found missing
//! (its signal went into a storm aggregate, or is still buffered) is remembered as absent for a
//! while, so its duplicates cost no API call at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use gateway_ports::{Occurrences, Signal, Timestamp, WriteFailure};

use crate::metrics::Metrics;
use crate::remediation;
use crate::writer::RetryingWriter;

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

    /// A write that failed transiently: back in the queue (merged with anything newer), unless
    /// the queue is full.
    pub fn retry_later(&self, occurrences: Occurrences) {
        let key = key(&occurrences);
        let mut state = self.state();
        let full = state.pending.len() >= MAX_PENDING;
        match state.pending.get_mut(&key) {
            Some(queued) => merge(queued, &occurrences),
            None if full => {}
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

/// What became of one occurrence-count update, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccurrenceUpdate {
    /// Written onto its resource.
    Written,
    /// Folded into an update already waiting.
    Coalesced,
    /// The resource does not exist: nothing to count on.
    Absent,
    /// The write failed; kept for the next flush when the failure is transient.
    Failed,
    /// Too many resources waiting: dropped (a count, never an alert).
    Dropped,
}

impl OccurrenceUpdate {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            OccurrenceUpdate::Written => "written",
            OccurrenceUpdate::Coalesced => "coalesced",
            OccurrenceUpdate::Absent => "absent",
            OccurrenceUpdate::Failed => "failed",
            OccurrenceUpdate::Dropped => "dropped",
        }
    }
}

/// How many occurrence-count writes run at once.
const CONCURRENCY: usize = 16;

/// Records the occurrence counts of duplicates and writes them, coalesced.
#[derive(Debug)]
pub struct OccurrenceFlusher {
    coalescer: Coalescer,
    writer: std::sync::Arc<RetryingWriter>,
    metrics: Metrics,
    fallback_namespace: String,
}

impl OccurrenceFlusher {
    /// At most one write per resource per `interval`, through `writer`.
    pub fn new(
        interval: Duration,
        writer: std::sync::Arc<RetryingWriter>,
        metrics: Metrics,
        fallback_namespace: String,
    ) -> Self {
        OccurrenceFlusher {
            coalescer: Coalescer::new(interval),
            writer,
            metrics,
            fallback_namespace,
        }
    }

    /// Queues the occurrence count of a duplicate of `signal`, whose dedup window (of `ttl`)
    /// started at `window_start`, for its resource.
    pub fn record(&self, signal: &Signal, window_start: Timestamp, ttl: Duration, count: u64) {
        let occurrences = Occurrences {
            name: remediation::signal_name(signal, window_start, ttl),
            namespace: remediation::namespace_of(signal, &self.fallback_namespace),
            last_occurrence: signal.received_time,
            occurrence_count: count,
        };
        let update = match self.coalescer.record(occurrences, signal.received_time) {
            Recorded::Queued => return,
            Recorded::Coalesced => OccurrenceUpdate::Coalesced,
            Recorded::Absent => OccurrenceUpdate::Absent,
            Recorded::Dropped => OccurrenceUpdate::Dropped,
        };
        self.metrics.occurrence_update(update);
    }

    /// Writes the counts whose interval has passed (all of them with `everything`, at
    /// shutdown): one write per resource, however many duplicates it had, several at once.
    pub async fn flush(&self, now: Timestamp, everything: bool) {
        let due = self.coalescer.due(now, everything);
        let updates: Vec<OccurrenceUpdate> = futures::stream::iter(due)
            .map(|occurrences| async move { self.write(occurrences, now, everything).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for update in updates {
            self.metrics.occurrence_update(update);
        }
    }

    async fn write(
        &self,
        occurrences: Occurrences,
        now: Timestamp,
        last: bool,
    ) -> OccurrenceUpdate {
        match self.writer.record_occurrences(&occurrences).await {
            Ok(_) => OccurrenceUpdate::Written,
            Err(e) if e.failure == WriteFailure::NotFound => {
                self.coalescer.absent(&occurrences, now);
                OccurrenceUpdate::Absent
            }
            Err(e) => {
                let retryable = matches!(
                    gateway_retry::classify(&e.failure),
                    gateway_retry::Class::Retryable { .. }
                );
                tracing::debug!(error = %e, retryable, "occurrence count not written");
                if retryable && !last {
                    self.coalescer.retry_later(occurrences);
                }
                OccurrenceUpdate::Failed
            }
        }
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
