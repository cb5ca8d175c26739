//! [`StormHistory`]: one alert name's storm-counting state and the reference arithmetic of
//! [`StormCounter::count`](crate::StormCounter::count), for adapters that keep the state
//! themselves (in memory, in an embedded database; the Redis store's `storm.lua` does the same
//! arithmetic on two sorted sets).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::signal::ResourceRef;
use crate::storm::{Counting, StormCounts};
use crate::time::Timestamp;

/// The member a resource is counted as: `namespace`, `kind` and `name` each length-prefixed
/// (`4:prod/3:Pod/5:api-0`), so two different resources never give one member whatever their
/// names hold. Every adapter counts resources by it, so ties in time are broken alike.
pub fn resource_member(resource: &ResourceRef) -> String {
    format!(
        "{}:{}/{}:{}/{}:{}",
        resource.namespace.len(),
        resource.namespace,
        resource.kind.len(),
        resource.kind,
        resource.name.len(),
        resource.name
    )
}

/// One alert name's signals and resources, as [`StormHistory::record`] keeps them.
///
/// The times of its signals (trimmed to the rate window, then to the `max_tracked` newest) and
/// its resources by last hit (trimmed to the pattern window, then to the `max_tracked` most
/// recent, ties broken by member as Redis breaks them in a sorted set). Times are milliseconds;
/// windows and the bound are floored as the Redis script floors them (1 ms, 1 entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StormHistory {
    /// The latest instant counted at (ms).
    last: u64,
    /// Signal times (ms), ascending.
    signals: VecDeque<u64>,
    /// Each resource's last hit (ms).
    resources: HashMap<Arc<str>, u64>,
    /// The same, ordered by last hit, then by member.
    by_hit: BTreeSet<(u64, Arc<str>)>,
}

/// The windows and bound of one call, in milliseconds and with the floors the Redis script uses.
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
}

impl StormHistory {
    /// A history rebuilt from what [`StormHistory::last`], [`StormHistory::signals`] and
    /// [`StormHistory::resources`] returned (for adapters that store it as bytes). Signals in any
    /// order; a resource named twice keeps the hit named last.
    pub fn from_parts(
        last: Timestamp,
        signals: impl IntoIterator<Item = Timestamp>,
        resources: impl IntoIterator<Item = (String, Timestamp)>,
    ) -> Self {
        let mut signals: Vec<u64> = signals.into_iter().map(Timestamp::as_millis).collect();
        signals.sort_unstable();
        let mut history = StormHistory {
            last: last.as_millis(),
            signals: signals.into(),
            ..StormHistory::default()
        };
        for (member, hit) in resources {
            history.hit(&member, hit.as_millis());
        }
        history
    }

    /// Records one signal on the resource counted as `member` (see [`resource_member`]) at `now`
    /// and returns the counts with it.
    pub fn record(&mut self, member: &str, now: Timestamp, counting: Counting) -> StormCounts {
        let limits = Limits::of(counting);
        let now = now.as_millis();
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

        self.hit(member, now);
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

    /// Whether nothing of this history could still count at `now`: its last signal is at least
    /// the longer of the two windows old. Such a history may be dropped.
    pub fn is_quiet(&self, now: Timestamp, counting: Counting) -> bool {
        let limits = Limits::of(counting);
        self.last
            .saturating_add(limits.rate_ms.max(limits.pattern_ms))
            <= now.as_millis()
    }

    /// The latest instant a signal was counted at.
    pub fn last(&self) -> Timestamp {
        Timestamp::from_millis(self.last)
    }

    /// The times of the signals kept, oldest first.
    pub fn signals(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.signals.iter().map(|&t| Timestamp::from_millis(t))
    }

    /// The resources kept (their members) with their last hits, least recent first.
    pub fn resources(&self) -> impl Iterator<Item = (&str, Timestamp)> + '_ {
        self.by_hit
            .iter()
            .map(|(hit, member)| (&**member, Timestamp::from_millis(*hit)))
    }

    /// Sets `member`'s last hit to `at` (a late signal moves it back, as `ZADD` does in Redis).
    fn hit(&mut self, member: &str, at: u64) {
        let member: Arc<str> = match self.resources.get_key_value(member) {
            Some((name, _)) => name.clone(),
            None => Arc::from(member),
        };
        if let Some(previous) = self.resources.insert(member.clone(), at) {
            self.by_hit.remove(&(previous, member.clone()));
        }
        self.by_hit.insert((at, member));
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

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(1_764_090_000 + secs)
    }

    fn pod(namespace: &str, name: &str) -> ResourceRef {
        ResourceRef {
            kind: "Pod".into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    #[test]
    fn members_of_different_resources_differ_whatever_their_names_hold() {
        assert_eq!(resource_member(&pod("prod", "api")), "4:prod/3:Pod/3:api");
        assert_ne!(
            resource_member(&pod("a/Pod/b", "c")),
            resource_member(&pod("a", "b/Pod/c"))
        );
    }

    #[test]
    fn a_history_rebuilt_from_its_parts_counts_on_as_the_original() {
        let mut original = StormHistory::default();
        for (n, member) in ["a", "b", "a", "c"].into_iter().enumerate() {
            original.record(member, at(n as u64), COUNTING);
        }
        let mut rebuilt = StormHistory::from_parts(
            original.last(),
            original.signals().collect::<Vec<_>>().into_iter().rev(),
            original
                .resources()
                .map(|(m, t)| (m.to_owned(), t))
                .collect::<Vec<_>>(),
        );
        assert_eq!(rebuilt, original);
        assert_eq!(
            rebuilt.record("d", at(61), COUNTING),
            original.record("d", at(61), COUNTING)
        );
    }

    #[test]
    fn a_history_is_quiet_once_the_longer_window_has_passed() {
        let mut history = StormHistory::default();
        history.record("a", at(0), COUNTING);
        assert!(!history.is_quiet(at(119), COUNTING));
        assert!(history.is_quiet(at(120), COUNTING));
    }
}
