//! [`MemoryStormCounter`]: the [`StormCounter`] port in process memory; each alert name's
//! arithmetic is the ports' [`StormHistory`] (the Redis adapter's `STORM` script does the same).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use gateway_ports::{
    Counting, ResourceRef, StoreError, StormCounter, StormCounts, StormHistory, Timestamp,
    resource_member,
};

/// Storm counts per alert name in process memory, bounded in the number of alert names.
///
/// Per alert name a [`StormHistory`] (the times of its signals and its resources by last hit,
/// /// trimmed as the port's contract says). A name whose last signal is older than both windows
/// holds nothing that could still count: a sweep drops such names, over all names once per as many calls as names were held
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
    by_name: HashMap<String, Tracked>,
    /// Alert names by the sequence number of their last count, least recent first.
    recency: BTreeMap<u64, String>,
    next_sequence: u64,
    /// Counts left before the next sweep: as many as names were held after the last one, so the
    /// map at most doubles (plus a minimum) between sweeps.
    counts_to_sweep: usize,
    evicted: u64,
}

#[derive(Debug)]
struct Tracked {
    /// The key of this name in `Names::recency`.
    sequence: u64,
    history: StormHistory,
}

impl Names {
    /// Records one signal of `name` and counts, making room for `name` if it is new.
    fn count(
        &mut self,
        name: &str,
        member: &str,
        now: Timestamp,
        counting: Counting,
        max_alert_names: usize,
    ) -> StormCounts {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        if let Some(tracked) = self.by_name.get_mut(name) {
            let key = self
                .recency
                .remove(&tracked.sequence)
                .unwrap_or_else(|| name.to_owned());
            self.recency.insert(sequence, key);
            tracked.sequence = sequence;
            return tracked.history.record(member, now, counting);
        }
        self.make_room(max_alert_names, now, counting);
        let mut history = StormHistory::default();
        let counts = history.record(member, now, counting);
        self.by_name
            .insert(name.to_owned(), Tracked { sequence, history });
        self.recency.insert(sequence, name.to_owned());
        counts
    }

    /// Makes room for one more name: the least recently counted goes.
    fn make_room(&mut self, max_alert_names: usize, now: Timestamp, counting: Counting) {
        while self.by_name.len() >= max_alert_names {
            let Some((_, name)) = self.recency.pop_first() else {
                break;
            };
            if let Some(tracked) = self.by_name.remove(&name)
                && !tracked.history.is_quiet(now, counting)
            {
                self.evicted += 1;
            }
        }
    }

    /// Drops every name that holds nothing that could still count at `now`.
    fn sweep(&mut self, now: Timestamp, counting: Counting) {
        let recency = &mut self.recency;
        self.by_name.retain(|_, tracked| {
            let keep = !tracked.history.is_quiet(now, counting);
            if !keep {
                recency.remove(&tracked.sequence);
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
        let member = resource_member(resource);
        let mut names = self.lock();
        names.counts_to_sweep = names.counts_to_sweep.saturating_sub(1);
        if names.counts_to_sweep == 0 {
            names.sweep(now, counting);
        }
        Ok(names.count(
            alert_name,
            &member,
            now,
            counting,
            self.max_alert_names.get(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let history = &names.by_name["Disk"].history;
        let kept: Vec<&str> = history.resources().map(|(r, _)| r).collect();
        assert_eq!(
            kept,
            ["4:prod/3:Pod/1:c", "4:prod/3:Pod/1:d", "4:prod/3:Pod/1:a"]
        );
        assert_eq!(history.signals().count(), 3);
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
            .history
            .resources()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(kept, ["4:prod/3:Pod/1:b", "4:prod/3:Pod/1:c"]);
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
            c.lock().by_name["Disk"]
                .history
                .signals()
                .collect::<Vec<_>>(),
            [at(10), at(65)]
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
