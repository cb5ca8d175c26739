//! The detector: per-alert-name histories, the open windows, and signals awaiting a retried flush.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use gateway_ports::{Clock, ConfigSource, Signal, StormCounts, StormSettings, Timestamp};

use crate::history::History;
use crate::window::Window;
use crate::{Closure, Decision, Observation, StormType, WindowCapacity, WindowKey, classify};

/// Detects storms and aggregates their signals; see the crate documentation for the model.
///
/// It holds state but performs no IO and reads no clock: the caller passes the settings in force
/// and the time to every call, and calls [`StormDetector::expire`] periodically so quiet windows
/// close even when no signal arrives.
#[derive(Debug, Default)]
pub struct StormDetector {
    capacity: WindowCapacity,
    histories: HashMap<String, History>,
    /// Ordered so that `expire` and `drain` return closures in a reproducible order.
    windows: BTreeMap<WindowKey, Window>,
}

impl StormDetector {
    /// A detector whose windows store at most `capacity` distinct resources each.
    pub fn new(capacity: WindowCapacity) -> Self {
        StormDetector {
            capacity,
            ..Self::default()
        }
    }

    /// Decides what to do with one new, firing, non-duplicate signal arriving at `now`.
    ///
    /// If the signal's window has reached its deadline it is closed first (returned in
    /// [`Observation::closed`]) and the signal is treated afresh: it may open a new window.
    pub fn observe(
        &mut self,
        signal: &Signal,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Observation {
        let (key, closed) = self.close_if_due(signal, settings, now);
        let history = self.histories.entry(signal.name.clone()).or_default();
        history.record(&signal.resource, now);
        let storm = history.storm(settings, now);
        self.decide(signal, key, storm, settings, now, closed)
    }

    /// [`StormDetector::observe`], with the storm decided from `counts` shared by every replica
    /// (the `StormCounter` port) instead of this process's own history; the counts include this
    /// signal.
    pub fn observe_counted(
        &mut self,
        signal: &Signal,
        counts: StormCounts,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Observation {
        let (key, closed) = self.close_if_due(signal, settings, now);
        let storm = classify(counts, settings);
        self.decide(signal, key, storm, settings, now, closed)
    }

    /// Closes the signal's window first if its deadline has passed.
    fn close_if_due(
        &mut self,
        signal: &Signal,
        settings: &StormSettings,
        now: Timestamp,
    ) -> (WindowKey, Vec<Closure>) {
        let key = WindowKey::of(signal);
        let mut closed = Vec::new();
        if let Entry::Occupied(open) = self.windows.entry(key.clone()) {
            let deadline = open.get().deadline(settings);
            if now >= deadline {
                let (key, window) = open.remove_entry();
                closed.push(window.close(key, deadline));
            }
        }
        (key, closed)
    }

    fn decide(
        &mut self,
        signal: &Signal,
        key: WindowKey,
        storm: Option<StormType>,
        settings: &StormSettings,
        now: Timestamp,
        closed: Vec<Closure>,
    ) -> Observation {
        // An open window takes the signal whether or not the storm still holds: the storm is
        // the window's, not the single signal's.
        let decision = if let Some(window) = self.windows.get_mut(&key) {
            window.take(key, signal, settings, now, None)
        } else if let Some(storm_type) = storm {
            let capacity = self.capacity;
            self.windows
                .entry(key.clone())
                .or_insert_with(|| Window::open(signal, storm_type, capacity, settings, now))
                .take(key, signal, settings, now, Some(storm_type))
        } else {
            Decision::Individual
        };
        Observation { decision, closed }
    }

    /// [`StormDetector::observe`] with the settings from `config.storm()` and the time from
    /// `clock.now()`.
    pub fn observe_with(
        &mut self,
        signal: &Signal,
        config: &dyn ConfigSource,
        clock: &dyn Clock,
    ) -> Observation {
        let settings = config.storm();
        self.observe(signal, &settings, clock.now())
    }

    /// Closes every window whose deadline is at or before `now` (`closed_at` = its deadline), and
    /// forgets history that left the pattern window.
    pub fn expire(&mut self, settings: &StormSettings, now: Timestamp) -> Vec<Closure> {
        self.histories.retain(|_, history| {
            history.prune(now);
            !history.is_empty()
        });
        let mut closed = Vec::new();
        let due: Vec<(WindowKey, Timestamp)> = self
            .windows
            .iter()
            .filter_map(|(key, window)| {
                let deadline = window.deadline(settings);
                (deadline <= now).then(|| (key.clone(), deadline))
            })
            .collect();
        for (key, deadline) in due {
            if let Some(window) = self.windows.remove(&key) {
                closed.push(window.close(key, deadline));
            }
        }
        closed
    }

    /// Closes every window (graceful shutdown).
    ///
    /// `closed_at` is `now`, or the window's deadline (under the settings of its last signal) if
    /// that passed without an `expire`: no aggregate claims to outlive `max_window_duration`.
    pub fn drain(&mut self, now: Timestamp) -> Vec<Closure> {
        let closed: Vec<Closure> = std::mem::take(&mut self.windows)
            .into_iter()
            .map(|(key, window)| {
                let closed_at = window.last_deadline().min(now);
                window.close(key, closed_at)
            })
            .collect();
        closed
    }

    /// Windows currently open.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Signals held in the buffers of open windows.
    pub fn buffered_signals(&self) -> usize {
        self.windows.values().map(Window::buffered).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use gateway_ports::{MockClock, MockConfigSource, ResourceRef};

    use super::*;
    use crate::Aggregate;
    use crate::test_support::{at, pod, sampling, settings, signal, timing};

    /// A clock the test moves by hand.
    #[derive(Debug)]
    struct ManualClock(AtomicU64);

    impl ManualClock {
        fn starting_at(t: Timestamp) -> Self {
            ManualClock(AtomicU64::new(t.as_millis()))
        }
        fn advance(&self, secs: u64) {
            self.0.fetch_add(secs * 1000, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_millis(self.0.load(Ordering::SeqCst))
        }
    }

    /// Observes a signal for pod `resource` of alert `A` in `prod`, expecting no closure.
    fn decide(
        detector: &mut StormDetector,
        n: u64,
        resource: &str,
        s: &StormSettings,
        t: Timestamp,
    ) -> Decision {
        let observation = detector.observe(&signal(n, "A", "prod", resource), s, t);
        assert_eq!(observation.closed, [], "signal {n}");
        observation.decision
    }

    fn key(namespace: &str, alert: &str) -> WindowKey {
        WindowKey {
            namespace: namespace.to_owned(),
            alert_name: alert.to_owned(),
        }
    }

    fn aggregate_of(decision: Decision) -> Aggregate {
        match decision {
            Decision::CreateAggregate { aggregate, .. }
            | Decision::Joined { aggregate }
            | Decision::SampledOut { aggregate } => aggregate,
            other => panic!("expected an aggregate, got {other:?}"),
        }
    }

    fn pods(names: &[&str]) -> Vec<ResourceRef> {
        names.iter().map(|n| pod(n)).collect()
    }

    /// Rate threshold 1 and buffer threshold 1: the second signal opens a window at `start` and
    /// creates its aggregate at once; returns the detector.
    fn with_aggregate(s: &StormSettings, start: Timestamp) -> StormDetector {
        let mut detector = StormDetector::default();
        assert_eq!(
            decide(&mut detector, 0, "p0", s, start),
            Decision::Individual
        );
        let opened = decide(&mut detector, 1, "p1", s, start);
        assert!(
            matches!(opened, Decision::CreateAggregate { .. }),
            "{opened:?}"
        );
        detector
    }

    #[test]
    fn no_storm_under_the_thresholds() {
        let s = settings(3, 3, 2);
        let mut detector = StormDetector::default();
        for n in 0..3 {
            let resource = format!("p{n}");
            assert_eq!(
                decide(&mut detector, n, &resource, &s, at(n)),
                Decision::Individual
            );
        }
        assert_eq!(detector.open_windows(), 0);
    }

    #[test]
    fn rate_storm_at_rate_threshold_plus_one_signals_within_a_minute() {
        let s = settings(3, 100, 5);
        let mut detector = StormDetector::default();
        for n in 0..3 {
            assert_eq!(
                decide(&mut detector, n, "p", &s, at(n * 19)),
                Decision::Individual
            );
        }
        assert_eq!(
            decide(&mut detector, 3, "p", &s, at(59)),
            Decision::Buffered {
                key: key("prod", "A"),
                buffered: 1,
                storm_started: Some(StormType::Rate),
            }
        );
    }

    #[test]
    fn signals_spread_over_more_than_a_minute_are_no_rate_storm() {
        let s = settings(3, 100, 5);
        let mut detector = StormDetector::default();
        // Signal 0 is exactly 60 s old when signal 3 arrives: out of the window.
        for n in 0..6 {
            assert_eq!(
                decide(&mut detector, n, "p", &s, at(n * 20)),
                Decision::Individual
            );
        }
    }

    #[test]
    fn rate_is_counted_per_alert_name_across_namespaces() {
        let s = settings(2, 100, 5);
        let mut detector = StormDetector::default();
        for (n, namespace) in ["a", "b"].into_iter().enumerate() {
            let o = detector.observe(&signal(n as u64, "A", namespace, "p"), &s, at(0));
            assert_eq!(o.decision, Decision::Individual);
        }
        let other_alert = detector.observe(&signal(2, "B", "a", "p"), &s, at(0));
        assert_eq!(other_alert.decision, Decision::Individual);
        let third = detector.observe(&signal(3, "A", "c", "p"), &s, at(0));
        assert!(
            matches!(third.decision, Decision::Buffered { ref key, .. } if key.namespace == "c"),
            "{third:?}"
        );
    }

    #[test]
    fn pattern_storm_at_pattern_threshold_plus_one_distinct_resources_within_two_minutes() {
        let s = settings(100, 3, 5);
        let mut detector = StormDetector::default();
        for (n, resource) in ["p1", "p1", "p2", "p3"].into_iter().enumerate() {
            let t = at(n as u64 * 30);
            assert_eq!(
                decide(&mut detector, n as u64, resource, &s, t),
                Decision::Individual
            );
        }
        assert_eq!(
            decide(&mut detector, 4, "p4", &s, at(119)),
            Decision::Buffered {
                key: key("prod", "A"),
                buffered: 1,
                storm_started: Some(StormType::Pattern),
            }
        );
    }

    #[test]
    fn distinct_resources_older_than_two_minutes_do_not_make_a_pattern_storm() {
        let s = settings(100, 3, 5);
        let mut detector = StormDetector::default();
        for (n, resource) in ["p1", "p2", "p3", "p4"].into_iter().enumerate() {
            let t = at(n as u64 * 40);
            assert_eq!(
                decide(&mut detector, n as u64, resource, &s, t),
                Decision::Individual,
                "p1 is 120 s old when p4 arrives"
            );
        }
    }

    #[test]
    fn buffering_then_one_aggregate_when_buffer_threshold_resources_are_buffered() {
        let s = settings(1, 100, 3);
        let mut detector = StormDetector::default();
        assert_eq!(
            decide(&mut detector, 0, "p0", &s, at(0)),
            Decision::Individual
        );
        let buffered = |n, started| Decision::Buffered {
            key: key("prod", "A"),
            buffered: n,
            storm_started: started,
        };
        assert_eq!(
            decide(&mut detector, 1, "p1", &s, at(1)),
            buffered(1, Some(StormType::Rate))
        );
        // Same resource again: one more signal buffered, still one distinct resource.
        assert_eq!(decide(&mut detector, 2, "p1", &s, at(2)), buffered(2, None));
        assert_eq!(decide(&mut detector, 3, "p2", &s, at(3)), buffered(3, None));
        assert_eq!(detector.buffered_signals(), 3);

        let Decision::CreateAggregate {
            aggregate,
            storm_started: None,
        } = decide(&mut detector, 4, "p3", &s, at(4))
        else {
            panic!("the third distinct resource creates the aggregate");
        };
        assert_eq!(aggregate.resources, pods(&["p1", "p2", "p3"]));
        assert_eq!(aggregate.alert_count, 4, "every buffered signal is counted");
        assert_eq!(aggregate.sampled_out, 0);
        assert_eq!(aggregate.opened_at, at(1));
        assert_eq!(aggregate.last_activity, at(4));
        assert_eq!(aggregate.closed_at, None);
        assert_eq!(aggregate.first_signal, signal(1, "A", "prod", "p1"));
        assert_eq!(aggregate.storm_type, StormType::Rate);
        assert_eq!(detector.buffered_signals(), 0);
    }

    #[test]
    fn buffer_threshold_of_one_creates_the_aggregate_on_the_opening_signal() {
        let s = settings(1, 100, 1);
        let mut detector = StormDetector::default();
        decide(&mut detector, 0, "p0", &s, at(0));
        let decision = decide(&mut detector, 1, "p1", &s, at(0));
        assert!(
            matches!(
                decision,
                Decision::CreateAggregate {
                    storm_started: Some(StormType::Rate),
                    ref aggregate,
                } if aggregate.alert_count == 1 && aggregate.resources == pods(&["p1"])
            ),
            "{decision:?}"
        );
    }

    #[test]
    fn joined_signals_extend_the_window_by_the_inactivity_timeout() {
        let s = timing(settings(1, 100, 1), 10, 300);
        let mut detector = with_aggregate(&s, at(0));
        for (n, t) in [(2, 8), (3, 16), (4, 24)] {
            let joined = aggregate_of(decide(&mut detector, n, "p2", &s, at(t)));
            assert_eq!(joined.last_activity, at(t));
        }
        assert_eq!(detector.expire(&s, at(33)), []);
        assert_eq!(detector.open_windows(), 1);
        let Decision::Joined { aggregate } = decide(&mut detector, 5, "p3", &s, at(33)) else {
            panic!("a signal before the deadline joins");
        };
        assert_eq!(aggregate.resources, pods(&["p1", "p2", "p3"]));
        assert_eq!(aggregate.alert_count, 5);
    }

    #[test]
    fn inactivity_closes_the_window_with_the_final_list_and_count() {
        let s = timing(settings(1, 100, 1), 10, 300);
        let mut detector = with_aggregate(&s, at(0));
        decide(&mut detector, 2, "p2", &s, at(5));
        decide(&mut detector, 3, "p2", &s, at(6));
        assert_eq!(detector.expire(&s, at(15)), []);
        let closed = detector.expire(&s, at(16));
        let [Closure::Aggregate(last)] = closed.as_slice() else {
            panic!("one final aggregate, got {closed:?}");
        };
        assert_eq!(last.closed_at, Some(at(16)));
        assert_eq!(last.resources, pods(&["p1", "p2"]));
        assert_eq!(last.alert_count, 3);
        assert_eq!(detector.open_windows(), 0);
    }

    #[test]
    fn a_buffer_below_threshold_is_flushed_after_inactivity_with_every_signal() {
        let s = timing(settings(1, 100, 5), 10, 300);
        let mut detector = StormDetector::default();
        decide(&mut detector, 0, "p0", &s, at(0));
        let held: Vec<Signal> = [(1, "p1"), (2, "p2"), (3, "p1")]
            .into_iter()
            .map(|(n, r)| signal(n, "A", "prod", r))
            .collect();
        for (t, sig) in held.iter().enumerate() {
            let o = detector.observe(sig, &s, at(t as u64 + 1));
            assert!(matches!(o.decision, Decision::Buffered { .. }), "{o:?}");
        }
        assert_eq!(detector.expire(&s, at(12)), []);
        assert_eq!(
            detector.expire(&s, at(13)),
            [Closure::Flush {
                key: key("prod", "A"),
                storm_type: StormType::Rate,
                signals: held,
            }]
        );
        assert_eq!(
            (detector.open_windows(), detector.buffered_signals()),
            (0, 0)
        );
    }

    #[test]
    fn max_window_duration_caps_a_constantly_active_window() {
        let s = timing(settings(1, 100, 1), 10, 30);
        let mut detector = with_aggregate(&s, at(0));
        for n in 1..6 {
            let decision = decide(&mut detector, n + 1, "p", &s, at(n * 5));
            assert!(matches!(decision, Decision::Joined { .. }), "{decision:?}");
        }
        // At the cap, the old window closes first and the signal (the storm goes on) opens a
        // new one.
        let o = detector.observe(&signal(7, "A", "prod", "p"), &s, at(30));
        let [Closure::Aggregate(last)] = o.closed.as_slice() else {
            panic!("the capped window closes, got {o:?}");
        };
        assert_eq!((last.opened_at, last.closed_at), (at(0), Some(at(30))));
        assert_eq!(last.alert_count, 6);
        let Decision::CreateAggregate {
            aggregate,
            storm_started: Some(StormType::Rate),
        } = o.decision
        else {
            panic!("a new window opens, got {:?}", o.decision);
        };
        assert_eq!(aggregate.opened_at, at(30));
    }

    #[test]
    fn expire_closes_a_capped_window_at_its_cap() {
        let s = timing(settings(1, 100, 1), 10, 30);
        let mut detector = with_aggregate(&s, at(0));
        for n in 1..6 {
            decide(&mut detector, n + 1, "p", &s, at(n * 5));
        }
        assert_eq!(detector.expire(&s, at(29)), []);
        let closed = detector.expire(&s, at(31));
        assert!(
            matches!(closed.as_slice(), [Closure::Aggregate(a)] if a.closed_at == Some(at(30))),
            "{closed:?}"
        );
    }

    #[test]
    fn sampling_keeps_about_the_sampling_rate_and_counts_the_rest() {
        // Capacity 100, sampling from 10 stored resources, one in four kept.
        let s = sampling(timing(settings(1, 1000, 1), 600, 600), 0.1, 0.25);
        let mut detector = StormDetector::new(WindowCapacity::new(100).unwrap());
        decide(&mut detector, 0, "q", &s, at(0));
        let mut last = None;
        for n in 1..=50 {
            last = Some(aggregate_of(decide(
                &mut detector,
                n,
                &format!("p{n}"),
                &s,
                at(1),
            )));
        }
        let last = last.unwrap();
        assert_eq!(last.alert_count, 50);
        assert_eq!(
            last.resources.len(),
            10 + 10,
            "10 before sampling, 40 / 4 after"
        );
        assert_eq!(last.sampled_out, 30);
        assert_eq!(
            last.alert_count,
            last.resources.len() as u64 + last.sampled_out,
            "each signal here had a new resource: stored or sampled out"
        );
    }

    #[test]
    fn at_full_capacity_new_resources_are_counted_as_sampled_out() {
        let s = sampling(settings(1, 1000, 1), 1.0, 1.0);
        let mut detector = StormDetector::new(WindowCapacity::new(2).unwrap());
        decide(&mut detector, 0, "q", &s, at(0));
        decide(&mut detector, 1, "p1", &s, at(0));
        decide(&mut detector, 2, "p2", &s, at(0));
        let Decision::SampledOut { aggregate } = decide(&mut detector, 3, "p3", &s, at(0)) else {
            panic!("no room for p3");
        };
        assert_eq!(aggregate.resources, pods(&["p1", "p2"]));
        assert_eq!((aggregate.alert_count, aggregate.sampled_out), (3, 1));
        let known = decide(&mut detector, 4, "p1", &s, at(0));
        assert!(matches!(known, Decision::Joined { .. }), "{known:?}");
    }

    #[test]
    fn the_buffer_threshold_is_capped_by_the_window_capacity() {
        let s = settings(1, 1000, 50);
        let mut detector = StormDetector::new(WindowCapacity::new(2).unwrap());
        decide(&mut detector, 0, "q", &s, at(0));
        decide(&mut detector, 1, "p1", &s, at(0));
        let decision = decide(&mut detector, 2, "p2", &s, at(0));
        assert!(
            matches!(decision, Decision::CreateAggregate { ref aggregate, .. } if aggregate.resources.len() == 2),
            "{decision:?}"
        );
    }

    #[test]
    fn an_expired_window_is_closed_when_its_next_signal_arrives() {
        let s = timing(settings(1, 100, 5), 10, 300);
        let mut detector = StormDetector::default();
        decide(&mut detector, 0, "p0", &s, at(0));
        decide(&mut detector, 1, "p1", &s, at(0));
        // Long after: the old buffer is flushed, and with the rate back under the threshold
        // the new signal is individual.
        let o = detector.observe(&signal(2, "A", "prod", "p2"), &s, at(100));
        assert_eq!(o.decision, Decision::Individual);
        assert_eq!(
            o.closed,
            [Closure::Flush {
                key: key("prod", "A"),
                storm_type: StormType::Rate,
                signals: vec![signal(1, "A", "prod", "p1")],
            }]
        );
    }

    #[test]
    fn changed_settings_apply_on_the_next_call() {
        let strict = Arc::new(settings(1, 100, 1));
        let lenient = Arc::new(settings(100, 100, 1));
        let mut config = MockConfigSource::new();
        config
            .expect_storm()
            .times(2)
            .return_const(Arc::clone(&lenient));
        config.expect_storm().times(1).return_const(strict);
        let mut clock = MockClock::new();
        clock.expect_now().return_const(at(0));

        let mut detector = StormDetector::default();
        for n in 0..2 {
            let o = detector.observe_with(&signal(n, "A", "prod", "p"), &config, &clock);
            assert_eq!(o.decision, Decision::Individual, "under the lenient rate");
        }
        let o = detector.observe_with(&signal(2, "A", "prod", "p"), &config, &clock);
        assert!(
            matches!(o.decision, Decision::CreateAggregate { .. }),
            "the reloaded threshold applies at once: {o:?}"
        );
    }

    #[test]
    fn a_shortened_inactivity_timeout_applies_to_open_windows() {
        let long = timing(settings(1, 100, 1), 60, 300);
        let short = timing(settings(1, 100, 1), 5, 300);
        let mut detector = with_aggregate(&long, at(0));
        assert_eq!(detector.expire(&long, at(10)), []);
        assert_eq!(detector.expire(&short, at(10)).len(), 1);
    }

    #[test]
    fn observe_with_reads_the_settings_and_the_time_from_the_ports() {
        let mut config = MockConfigSource::new();
        config
            .expect_storm()
            .times(1)
            .return_const(Arc::new(settings(1, 100, 1)));
        let mut clock = MockClock::new();
        clock.expect_now().times(1).return_const(at(42));
        let mut detector = with_aggregate(&settings(1, 100, 1), at(40));

        let o = detector.observe_with(&signal(9, "A", "prod", "p9"), &config, &clock);
        assert_eq!(aggregate_of(o.decision).last_activity, at(42));
    }

    #[test]
    fn a_window_goes_quiet_on_a_manual_clock() {
        let s = Arc::new(timing(settings(1, 100, 2), 10, 300));
        let mut config = MockConfigSource::new();
        config.expect_storm().return_const(Arc::clone(&s));
        let clock = ManualClock::starting_at(at(0));
        let mut detector = StormDetector::default();

        let observe = |n, detector: &mut StormDetector| {
            detector.observe_with(&signal(n, "A", "prod", &format!("p{n}")), &config, &clock)
        };
        assert_eq!(observe(0, &mut detector).decision, Decision::Individual);
        assert!(matches!(
            observe(1, &mut detector).decision,
            Decision::Buffered { .. }
        ));
        clock.advance(9);
        assert!(matches!(
            observe(2, &mut detector).decision,
            Decision::CreateAggregate { .. }
        ));
        clock.advance(10);
        assert_eq!(detector.expire(&s, clock.now()).len(), 1);
        assert_eq!(detector.open_windows(), 0);
    }

    #[test]
    fn drain_closes_every_window_at_now() {
        let s = timing(settings(1, 100, 2), 60, 300);
        let mut detector = StormDetector::default();
        for (n, namespace, resource) in [
            (0, "a", "p0"),
            (1, "a", "p1"),
            (2, "a", "p2"),
            (3, "b", "p3"),
        ] {
            detector.observe(&signal(n, "A", namespace, resource), &s, at(0));
        }
        assert_eq!(detector.open_windows(), 2);
        let closed = detector.drain(at(20));
        assert_eq!(closed.len(), 2);
        assert!(
            matches!(&closed[0], Closure::Aggregate(a) if a.closed_at == Some(at(20)) && a.alert_count == 2),
            "{closed:?}"
        );
        assert!(
            matches!(&closed[1], Closure::Flush { key, signals, .. } if key.namespace == "b" && signals.len() == 1),
            "{closed:?}"
        );
        assert_eq!(detector.open_windows(), 0);
        assert_eq!(detector.drain(at(21)), []);
    }

    #[test]
    fn a_slightly_late_receive_time_does_not_move_the_window_back() {
        let s = timing(settings(1, 100, 1), 10, 300);
        let mut detector = with_aggregate(&s, at(0));
        decide(&mut detector, 2, "p2", &s, at(8));
        let late = aggregate_of(decide(&mut detector, 3, "p3", &s, at(7)));
        assert_eq!(late.last_activity, at(8));
        assert_eq!(detector.expire(&s, at(17)), []);
    }

    #[test]
    fn history_of_quiet_alert_names_is_forgotten_on_expire() {
        let s = settings(5, 5, 5);
        let mut detector = StormDetector::default();
        decide(&mut detector, 0, "p", &s, at(0));
        detector.expire(&s, at(119));
        assert_eq!(detector.histories.len(), 1);
        detector.expire(&s, at(120) + Duration::from_millis(1));
        assert!(detector.histories.is_empty());
    }

    #[test]
    fn classify_says_rate_above_its_threshold_and_prefers_it_over_pattern() {
        let s = settings(10, 5, 5);
        let counts = |rate, distinct_resources| StormCounts {
            rate,
            distinct_resources,
        };
        assert_eq!(
            crate::classify(counts(10, 5), &s),
            None,
            "at the thresholds: no storm"
        );
        assert_eq!(crate::classify(counts(11, 1), &s), Some(StormType::Rate));
        assert_eq!(crate::classify(counts(2, 6), &s), Some(StormType::Pattern));
        assert_eq!(crate::classify(counts(11, 6), &s), Some(StormType::Rate));
    }

    #[test]
    fn shared_counts_open_a_window_this_replica_alone_would_not_have() {
        let s = settings(10, 5, 5);
        let mut detector = StormDetector::default();
        let shared = StormCounts {
            rate: 3,
            distinct_resources: 6,
        };
        let observation =
            detector.observe_counted(&signal(1, "A", "prod", "p1"), shared, &s, at(0));
        assert!(matches!(
            observation.decision,
            Decision::Buffered {
                storm_started: Some(StormType::Pattern),
                ..
            }
        ));
        let quiet = StormCounts {
            rate: 1,
            distinct_resources: 1,
        };
        let observation = detector.observe_counted(&signal(2, "B", "prod", "p1"), quiet, &s, at(0));
        assert_eq!(observation.decision, Decision::Individual);
    }
}
