//! Per-alert-name history: what storm detection counts.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use gateway_ports::{ResourceRef, StormSettings, Timestamp};

use crate::{PATTERN_WINDOW, RATE_WINDOW, StormType, threshold};

/// Most entries kept per alert name, however recent (see [`crate::COUNTING`]).
const CAP: usize = crate::COUNTING.max_tracked as usize;

/// The recent signals of one alert name, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// (arrival time, resource) in arrival order.
    entries: VecDeque<(Timestamp, ResourceRef)>,
    /// How many entries name each resource: its length is the distinct-resource count, kept up to
    /// date so a pattern check does not rescan the whole history on every signal.
    per_resource: HashMap<ResourceRef, usize>,
}

impl History {
    /// Records one signal for `resource` arriving at `now`.
    pub(crate) fn record(&mut self, resource: &ResourceRef, now: Timestamp) {
        self.prune(now);
        self.entries.push_back((now, resource.clone()));
        *self.per_resource.entry(resource.clone()).or_default() += 1;
        if self.entries.len() > CAP {
            self.pop_oldest();
        }
    }

    /// Forgets entries that have left the pattern window (the longer of the two).
    pub(crate) fn prune(&mut self, now: Timestamp) {
        while self
            .entries
            .front()
            .is_some_and(|(at, _)| now.saturating_since(*at) >= PATTERN_WINDOW)
        {
            self.pop_oldest();
        }
    }

    /// True when nothing recent is left, so the alert name can be forgotten.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The storm this history shows at `now` (rate wins when both hold), if any.
    ///
    /// Expects `prune(now)` to have run (as `record` does), so every entry is in the pattern window.
    pub(crate) fn storm(&self, settings: &StormSettings, now: Timestamp) -> Option<StormType> {
        let rate_limit = threshold(settings.rate_threshold);
        // Entries are in arrival order, so the recent ones are a suffix; stop counting once the
        // threshold is exceeded.
        let recent = self
            .entries
            .iter()
            .rev()
            .take_while(|(at, _)| now.saturating_since(*at) < RATE_WINDOW)
            .take(rate_limit.saturating_add(1))
            .count();
        if recent > rate_limit {
            Some(StormType::Rate)
        } else if self.per_resource.len() > threshold(settings.pattern_threshold) {
            Some(StormType::Pattern)
        } else {
            None
        }
    }

    fn pop_oldest(&mut self) {
        let Some((_, resource)) = self.entries.pop_front() else {
            return;
        };
        if let Entry::Occupied(mut count) = self.per_resource.entry(resource) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{at, pod, settings};

    #[test]
    fn entries_leave_the_history_after_the_pattern_window() {
        let mut history = History::default();
        history.record(&pod("a"), at(0));
        history.record(&pod("b"), at(60));
        history.prune(at(119));
        assert_eq!(history.per_resource.len(), 2);
        history.prune(at(120));
        assert_eq!(history.per_resource.len(), 1, "an entry 120 s old is out");
        history.prune(at(180));
        assert!(history.is_empty());
    }

    #[test]
    fn history_is_capped_by_dropping_the_oldest_entries() {
        let mut history = History::default();
        for n in 0..CAP + 5 {
            history.record(&pod(&n.to_string()), at(0));
        }
        assert_eq!(history.entries.len(), CAP);
        assert_eq!(history.per_resource.len(), CAP);
        assert!(!history.per_resource.contains_key(&pod("4")));
        assert!(history.per_resource.contains_key(&pod("5")));
    }

    #[test]
    fn rate_wins_when_both_conditions_hold() {
        let mut history = History::default();
        for n in 0..3 {
            history.record(&pod(&n.to_string()), at(0));
        }
        assert_eq!(
            history.storm(&settings(2, 2, 5), at(0)),
            Some(StormType::Rate)
        );
        assert_eq!(
            history.storm(&settings(3, 2, 5), at(0)),
            Some(StormType::Pattern)
        );
        assert_eq!(history.storm(&settings(3, 3, 5), at(0)), None);
    }
}
