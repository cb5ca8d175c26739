//! [`MemoryStormCounter`]: the [`StormCounter`] port in process memory, with the arithmetic of the
//! Redis adapter's `STORM` script.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{Counting, ResourceRef, StoreError, StormCounter, StormCounts, Timestamp};

/// Storm counts per alert name in process memory, bounded in the number of alert names.
///
/// Per alert name: the times of its signals (trimmed to the rate window, then to the
/// `max_tracked` newest) and its resources by last hit (trimmed to the pattern window, then to the
/// `max_tracked` most recent, ties broken by the resource's `namespace/kind/name` as Redis breaks
/// them). A name whose last signal is older than both windows holds nothing that could still
/// count: a sweep drops such names, over all names once per as many calls as names were held
/// after the previous sweep (amortised constant work per call). When `max_alert_names` names are
/// held, a new name evicts the one counted least recently; an evicted name that was still live
/// restarts from zero, which can only delay a storm, never invent one.
///
/// Memory: at most `max_alert_names` × `max_tracked` × (a time + a resource) in the worst case (a
/// huge storm on every name at once); a quiet gateway holds nothing.
#[derive(Debug)]
pub struct MemoryStormCounter {
    max_alert_names: NonZeroUsize,
    state: Mutex<Names>,
}

/// The bound used by [`MemoryStormCounter::default`]: far more alert names than a Prometheus
/// installation defines.
pub const DEFAULT_MAX_ALERT_NAMES: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A sweep runs after at least this many counts, however few names are held.
const MIN_COUNTS_PER_SWEEP: usize = 64;

#[derive(Debug, Default)]
struct Names {
    by_name: HashMap<String, History>,
    /// Alert names by the sequence number of their last count, least recent first.
    recency: BTreeMap<u64, String>,
    next_sequence: u64,
    /// Counts left before the next sweep: as many as names were held after the last one, so the
    /// map at most doubles (plus a minimum) between sweeps.
    counts_to_sweep: usize,
    evicted: u64,
}

#[derive(Debug, Default)]
struct History {
    /// The key of this name in `Names::recency`.
    sequence: u64,
    /// The latest instant this name was counted at (ms).
    last: u64,
    /// Signal times (ms), ascending.
    signals: VecDeque<u64>,
    /// Each resource's last hit (ms).
    resources: HashMap<Arc<str>, u64>,
    /// The same, ordered as Redis orders a sorted set: by last hit, then by name.
    by_hit: BTreeSet<(u64, Arc<str>)>,
}

/// The windows and bound of one call, in the units and with the floors the Redis script uses.
#[derive(Debug, Clone, Copy)]
struct Limits {
    rate_ms: u64,
    pattern_ms: u64,
    max_tracked: usize,
}

impl Limits {
    fn of(counting: Counting) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        Limits {
            rate_ms: millis(counting.rate_window),
            pattern_ms: millis(counting.pattern_window),
            max_tracked: usize::try_from(counting.max_tracked.max(1)).unwrap_or(usize::MAX),
        }
    }

    /// Whether a name last counted at `last` holds nothing that counts at `now`.
    fn is_quiet(self, last: u64, now: u64) -> bool {
        last.saturating_add(self.rate_ms.max(self.pattern_ms)) <= now
    }
}

impl History {
    fn record(&mut self, resource: &str, now: u64, limits: Limits) -> StormCounts {
        self.last = self.last.max(now);

        let at = self.signals.partition_point(|&t| t <= now);
        self.signals.insert(at, now);
        // A signal exactly `rate_window` old no longer counts.
        while self
            .signals
            .front()
            .is_some_and(|&t| t.saturating_add(limits.rate_ms) <= now)
        {
            self.signals.pop_front();
        }
        while self.signals.len() > limits.max_tracked {
            self.signals.pop_front();
        }

        let resource: Arc<str> = match self.resources.get_key_value(resource) {
            Some((name, _)) => name.clone(),
            None => Arc::from(resource),
        };
        if let Some(previous) = self.resources.insert(resource.clone(), now) {
            self.by_hit.remove(&(previous, resource.clone()));
        }
        self.by_hit.insert((now, resource));
        while let Some((hit, _)) = self.by_hit.first() {
            let gone = hit.saturating_add(limits.pattern_ms) <= now;
            if !gone && self.by_hit.len() <= limits.max_tracked {
                break;
            }
            if let Some((_, name)) = self.by_hit.pop_first() {
                self.resources.remove(&name);
            }
        }

        StormCounts {
            rate: self.signals.len() as u64,
            distinct_resources: self.resources.len() as u64,
        }
    }
}

impl Names {
    /// Records one signal of `name` and counts, making room for `name` if it is new.
    fn count(
        &mut self,
        name: &str,
        resource: &str,
        now: u64,
        limits: Limits,
        max_alert_names: usize,
    ) -> StormCounts {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        if let Some(history) = self.by_name.get_mut(name) {
            let key = self
                .recency
                .remove(&history.sequence)
                .unwrap_or_else(|| name.to_owned());
            self.recency.insert(sequence, key);
            history.sequence = sequence;
            return history.record(resource, now, limits);
        }
        self.make_room(max_alert_names, now, limits);
        let mut history = History {
            sequence,
            ..History::default()
        };
        let counts = history.record(resource, now, limits);
        self.by_name.insert(name.to_owned(), history);
        self.recency.insert(sequence, name.to_owned());
        counts
    }

    /// Makes room for one more name: the least recently counted goes.
    fn make_room(&mut self, max_alert_names: usize, now: u64, limits: Limits) {
        while self.by_name.len() >= max_alert_names {
            let Some((_, name)) = self.recency.pop_first() else {
                break;
            };
            if let Some(history) = self.by_name.remove(&name)
                && !limits.is_quiet(history.last, now)
            {
                self.evicted += 1;
            }
        }
    }

    /// Drops every name that holds nothing that could still count at `now`.
    fn sweep(&mut self, now: u64, limits: Limits) {
        let recency = &mut self.recency;
        self.by_name.retain(|_, history| {
            let keep = !limits.is_quiet(history.last, now);
            if !keep {
                recency.remove(&history.sequence);
            }
            keep
        });
        self.counts_to_sweep = self.by_name.len().max(MIN_COUNTS_PER_SWEEP);
    }
}

impl MemoryStormCounter {
    /// A counter holding at most `max_alert_names` alert names.
    pub fn new(max_alert_names: NonZeroUsize) -> Self {
        MemoryStormCounter {
            max_alert_names,
            state: Mutex::new(Names::default()),
        }
    }

    /// Alert names currently held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().by_name.len()
    }

    /// Whether no alert name is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live alert names evicted to respect the bound, since start.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    fn lock(&self) -> MutexGuard<'_, Names> {
        // Every count leaves the state usable even if it panicked half-way: at worst one name's
        // history is off by the signal being recorded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for MemoryStormCounter {
    fn default() -> Self {
        MemoryStormCounter::new(DEFAULT_MAX_ALERT_NAMES)
    }
}

#[async_trait]
impl StormCounter for MemoryStormCounter {
    async fn count(
        &self,
        alert_name: &str,
        resource: &ResourceRef,
        now: Timestamp,
        counting: Counting,
    ) -> Result<StormCounts, StoreError> {
        let limits = Limits::of(counting);
        let now = now.as_millis();
        // The Redis adapter's member for a resource, so both order ties alike.
        let resource = format!("{}/{}/{}", resource.namespace, resource.kind, resource.name);
        let mut names = self.lock();
        names.counts_to_sweep = names.counts_to_sweep.saturating_sub(1);
        if names.counts_to_sweep == 0 {
            names.sweep(now, limits);
        }
        Ok(names.count(
            alert_name,
            &resource,
            now,
            limits,
            self.max_alert_names.get(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTING: Counting = Counting {
        rate_window: Duration::from_secs(60),
        pattern_window: Duration::from_secs(120),
        max_tracked: 10_000,
    };

    fn pod(name: &str) -> ResourceRef {
        ResourceRef {
            kind: "Pod".into(),
            name: name.into(),
            namespace: "prod".into(),
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(1_764_090_000 + secs)
    }

    fn counts(rate: u64, distinct_resources: u64) -> StormCounts {
        StormCounts {
            rate,
            distinct_resources,
        }
    }

    #[tokio::test]
    async fn counts_include_the_signal_and_follow_both_windows() {
        let c = MemoryStormCounter::default();
        let count = |r: &str, t: u64| {
            let (c, r) = (&c, pod(r));
            async move { c.count("Disk", &r, at(t), COUNTING).await.unwrap() }
        };
        assert_eq!(count("a", 0).await, counts(1, 1));
        assert_eq!(count("a", 1).await, counts(2, 1));
        assert_eq!(count("b", 2).await, counts(3, 2));
        assert_eq!(count("c", 60).await, counts(3, 3), "the signal at 0 is out");
        assert_eq!(
            count("d", 121).await,
            counts(1, 3),
            "pod a (last hit at 1) is out"
        );
    }

    #[tokio::test]
    async fn at_most_max_tracked_signals_and_resources_are_kept_newest_first() {
        let c = MemoryStormCounter::default();
        let counting = Counting {
            max_tracked: 3,
            ..COUNTING
        };
        for (n, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            c.count("Disk", &pod(name), at(n as u64), counting)
                .await
                .unwrap();
        }
        // a, the least recent, was dropped: hitting it again adds a resource; hitting d does not.
        assert_eq!(
            c.count("Disk", &pod("a"), at(4), counting).await.unwrap(),
            counts(3, 3)
        );
        let names = c.lock();
        let history = &names.by_name["Disk"];
        let kept: Vec<&str> = history.by_hit.iter().map(|(_, r)| &**r).collect();
        assert_eq!(kept, ["prod/Pod/c", "prod/Pod/d", "prod/Pod/a"]);
        assert_eq!(history.signals.len(), 3);
    }

    #[tokio::test]
    async fn ties_in_time_drop_resources_in_name_order_as_redis_does() {
        let c = MemoryStormCounter::default();
        let counting = Counting {
            max_tracked: 2,
            ..COUNTING
        };
        for name in ["c", "a", "b"] {
            c.count("Disk", &pod(name), at(0), counting).await.unwrap();
        }
        let names = c.lock();
        let kept: Vec<&str> = names.by_name["Disk"]
            .by_hit
            .iter()
            .map(|(_, r)| &**r)
            .collect();
        assert_eq!(kept, ["prod/Pod/b", "prod/Pod/c"]);
    }

    #[tokio::test]
    async fn a_late_signal_is_counted_in_its_place() {
        let c = MemoryStormCounter::default();
        c.count("Disk", &pod("a"), at(10), COUNTING).await.unwrap();
        assert_eq!(
            c.count("Disk", &pod("b"), at(5), COUNTING).await.unwrap(),
            counts(2, 2)
        );
        // At 65 the signal at 5 is out, the one at 10 is not.
        assert_eq!(
            c.count("Disk", &pod("b"), at(65), COUNTING).await.unwrap(),
            counts(2, 2)
        );
        assert_eq!(
            c.lock().by_name["Disk"].signals,
            [at(10), at(65)].map(Timestamp::as_millis)
        );
    }

    #[tokio::test]
    async fn quiet_alert_names_are_swept_so_memory_stays_bounded() {
        let c = MemoryStormCounter::default();
        for n in 0..1_000 {
            c.count(&format!("Alert{n}"), &pod("a"), at(0), COUNTING)
                .await
                .unwrap();
        }
        assert_eq!(c.len(), 1_000);
        // Quiet for the longer window: every later batch of counts sweeps the earlier names.
        for n in 0..1_000 {
            c.count(&format!("Late{n}"), &pod("a"), at(120), COUNTING)
                .await
                .unwrap();
        }
        assert!(c.len() <= 1_000, "{}", c.len());
        assert!(
            c.lock().by_name.keys().all(|name| name.starts_with("Late")),
            "every name quiet for the pattern window was dropped"
        );
        let (held, ordered) = (c.len(), c.lock().recency.len());
        assert_eq!(ordered, held);
        assert_eq!(c.evicted(), 0);
    }

    #[tokio::test]
    async fn a_name_is_not_swept_while_a_signal_of_it_still_counts() {
        let c = MemoryStormCounter::default();
        c.count("Disk", &pod("a"), at(0), COUNTING).await.unwrap();
        for n in 0..200 {
            c.count(&format!("Other{n}"), &pod("a"), at(119), COUNTING)
                .await
                .unwrap();
        }
        assert_eq!(
            c.count("Disk", &pod("b"), at(119), COUNTING).await.unwrap(),
            counts(1, 2),
            "pod a, hit 119 s ago, still counts"
        );
    }

    #[tokio::test]
    async fn the_number_of_alert_names_is_bounded_least_recent_out() {
        let c = MemoryStormCounter::new(NonZeroUsize::new(3).unwrap());
        for name in ["A", "B", "C"] {
            c.count(name, &pod("a"), at(0), COUNTING).await.unwrap();
        }
        c.count("A", &pod("a"), at(1), COUNTING).await.unwrap();
        c.count("D", &pod("a"), at(2), COUNTING).await.unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.evicted(), 1);
        assert_eq!(
            c.count("A", &pod("a"), at(3), COUNTING).await.unwrap(),
            counts(3, 1),
            "A was counted recently, so B went"
        );
        assert_eq!(
            c.count("B", &pod("a"), at(4), COUNTING).await.unwrap(),
            counts(1, 1),
            "B restarts from zero"
        );
        for n in 0..10_000 {
            c.count(&format!("X{n}"), &pod("a"), at(5), COUNTING)
                .await
                .unwrap();
            assert!(c.len() <= 3);
        }
        let (held, ordered) = (c.len(), c.lock().recency.len());
        assert_eq!(ordered, held);
    }

    #[tokio::test]
    async fn zero_windows_and_bound_are_floored_as_in_redis() {
        let c = MemoryStormCounter::default();
        let counting = Counting {
            rate_window: Duration::ZERO,
            pattern_window: Duration::ZERO,
            max_tracked: 0,
        };
        assert_eq!(
            c.count("Disk", &pod("a"), at(0), counting).await.unwrap(),
            counts(1, 1)
        );
        assert_eq!(
            c.count("Disk", &pod("b"), at(0), counting).await.unwrap(),
            counts(1, 1)
        );
    }

    #[test]
    fn the_counter_is_shareable() {
        fn shareable<T: Send + Sync + std::fmt::Debug>() {}
        shareable::<MemoryStormCounter>();
    }
}
