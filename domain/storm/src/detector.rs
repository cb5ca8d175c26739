//! The detector: the one pure step from (a window's state, a signal, the storm counts) to a
//! decision and the window's next state. The [`StormTracker`](crate::StormTracker) runs it over
//! whatever stores the ports name; tests and tools can run it on their own.

use gateway_ports::{Signal, StormCounts, StormSettings, Timestamp};

use crate::window::OpenWindow;
use crate::{Closure, Decision, WindowCapacity, WindowKey, classify};

/// Decides what happens to each new signal of an alert name, window by window.
///
/// It holds no state and performs no IO: the window's current state, the counts, the settings
/// in force and the time are all arguments, so every decision is reproducible.
///
/// # Settings are read at every call (hot reload)
/// Nothing about the settings is remembered between calls, so a reloaded `storm.yaml` applies
/// from the next call on, to open windows too:
/// - `rate_threshold` and `pattern_threshold` decide whether a signal *with no open window*
///   opens one; an open window takes every signal of its (namespace, alert name) until it
///   closes, whatever the thresholds say now — the storm belongs to the window;
/// - `inactivity_timeout` and `max_window_duration` are applied to open windows at the next
///   signal or expiry check: lengthen them and an open window lives longer, shorten them and it
///   closes at the next check (never later than `opened_at + max_window_duration` under the
///   settings of that check);
/// - `buffer_threshold` applies to the next signal a buffering window takes; `sampling_threshold`
///   and `sampling_rate` to the next signal a window with an aggregate takes.
///
/// ```
/// use std::time::Duration;
///
/// use gateway_ports::test_util::{at, signal, storm_settings};
/// use gateway_ports::StormCounts;
/// use gateway_storm::{Decision, StormDetector, WindowCapacity, WindowKey};
///
/// let detector = StormDetector::new(WindowCapacity::DEFAULT);
/// let strict = storm_settings().rate_threshold(2).buffer_threshold(1).build();
/// let lenient = storm_settings().rate_threshold(100).buffer_threshold(1).build();
/// let counts = |rate| StormCounts { rate, distinct_resources: 1 };
/// let pod = |name: &str| signal("KubePodCrashLooping").namespace("prod").pod(name).build();
///
/// // Three signals in the rate window: a storm under the strict settings, none under the
/// // lenient ones — whichever are in force at the call.
/// let quiet = detector.observe(None, &pod("api-0"), counts(3), &lenient, at(0));
/// assert_eq!(quiet.decision, Decision::Individual);
/// let storm = detector.observe(None, &pod("api-0"), counts(3), &strict, at(0));
/// assert!(matches!(storm.decision, Decision::CreateAggregate { .. }));
/// let window = storm.window.expect("a window opened");
///
/// // Back to lenient thresholds: the open window still takes the alert name's signals.
/// let joined = detector.observe(Some(window), &pod("api-1"), counts(1), &lenient, at(10));
/// assert!(matches!(joined.decision, Decision::Joined { .. }));
/// let window = joined.window.expect("still open");
///
/// // A shorter inactivity timeout applies to the open window at the next check.
/// let key = WindowKey { namespace: "prod".into(), alert_name: "KubePodCrashLooping".into() };
/// let mut short = lenient.clone();
/// short.inactivity_timeout = Duration::from_secs(5);
/// assert!(detector.expire(window.clone(), key.clone(), &lenient, at(20)).is_none());
/// assert!(detector.expire(window, key, &short, at(20)).is_some(), "closed at once");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormDetector {
    capacity: WindowCapacity,
    max_buffer_bytes: u64,
}

impl Default for StormDetector {
    fn default() -> Self {
        StormDetector::new(WindowCapacity::default())
    }
}

/// What one signal did to its window.
#[derive(Debug, Clone)]
pub struct Step {
    /// What the caller does with the signal.
    pub decision: Decision,
    /// The window's state after the signal; `None` when no window is open (nothing to store).
    pub window: Option<OpenWindow>,
    /// The window that was open past its deadline: closed before the signal was placed, so the
    /// signal may open a new one in its place.
    pub closed: Option<Closure>,
}

impl StormDetector {
    /// The bytes a window's buffer holds at most when none is configured (1 MiB).
    pub const DEFAULT_MAX_BUFFER_BYTES: u64 = 1024 * 1024;

    /// A detector whose windows store at most `capacity` distinct resources each, and buffer at
    /// most [`StormDetector::DEFAULT_MAX_BUFFER_BYTES`].
    pub const fn new(capacity: WindowCapacity) -> Self {
        StormDetector {
            capacity,
            max_buffer_bytes: Self::DEFAULT_MAX_BUFFER_BYTES,
        }
    }

    /// The same detector with windows buffering at most `bytes` of signals
    /// ([`signal_bytes`](crate::signal_bytes)): past it, the buffer becomes an aggregate
    /// at once, as a full one does, so a storm of large alerts holds no more than this per window.
    pub const fn with_max_buffer_bytes(self, bytes: u64) -> Self {
        StormDetector {
            max_buffer_bytes: bytes,
            ..self
        }
    }

    /// Decides what to do with one new, firing, non-duplicate signal arriving at `now`.
    ///
    /// `window` is the state of the signal's window (its namespace and alert name) as stored,
    /// `None` when none is open; `counts` are the alert name's storm counts with this signal
    /// included (the `StormCounter` port). A window past its deadline is closed first
    /// ([`Step::closed`]) and the signal treated afresh.
    pub fn observe(
        &self,
        window: Option<OpenWindow>,
        signal: &Signal,
        counts: StormCounts,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Step {
        let key = WindowKey::of(signal);
        let mut closed = None;
        let window = match window {
            Some(open) if now >= open.deadline(settings) => {
                let deadline = open.deadline(settings);
                closed = Some(open.close(key.clone(), deadline));
                None
            }
            other => other,
        };
        // An open window takes the signal whether or not the storm still holds: the storm is
        // the window's, not the single signal's.
        let (decision, window) = match (window, classify(counts, settings)) {
            (Some(mut open), _) => (
                open.take(key, signal, settings, now, None, self.max_buffer_bytes),
                Some(open),
            ),
            (None, Some(storm_type)) => {
                let mut open = OpenWindow::open(signal, storm_type, self.capacity, settings, now);
                let decision = open.take(
                    key,
                    signal,
                    settings,
                    now,
                    Some(storm_type),
                    self.max_buffer_bytes,
                );
                (decision, Some(open))
            }
            (None, None) => (Decision::Individual, None),
        };
        Step {
            decision,
            window,
            closed,
        }
    }

    /// Closes `window` when its deadline under `settings` is at or before `now`: its final
    /// aggregate (`closed_at` = the deadline) or its buffer to flush. `None`: still open.
    pub fn expire(
        &self,
        window: OpenWindow,
        key: WindowKey,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Option<Closure> {
        let deadline = window.deadline(settings);
        (deadline <= now).then(|| window.close(key, deadline))
    }

    /// Closes `window` now, whatever its deadline (shutdown of a process whose windows die with
    /// it). `closed_at` is `now`, or the window's deadline under the settings of its last signal
    /// if that passed unchecked: no aggregate claims to outlive `max_window_duration`.
    pub fn close_now(&self, window: OpenWindow, key: WindowKey, now: Timestamp) -> Closure {
        let closed_at = window.last_deadline().min(now);
        window.close(key, closed_at)
    }
}

#[cfg(test)]
mod tests {
    use gateway_ports::StormCounts;

    use super::*;
    use crate::StormType;
    use crate::test_support::{at, settings, signal, timing};

    fn counts(rate: u64, distinct_resources: u64) -> StormCounts {
        StormCounts {
            rate,
            distinct_resources,
        }
    }

    #[test]
    fn classify_says_rate_above_its_threshold_and_prefers_it_over_pattern() {
        let s = settings(10, 5, 5);
        assert_eq!(
            classify(counts(10, 5), &s),
            None,
            "at the thresholds: no storm"
        );
        assert_eq!(classify(counts(11, 1), &s), Some(StormType::Rate));
        assert_eq!(classify(counts(2, 6), &s), Some(StormType::Pattern));
        assert_eq!(classify(counts(11, 6), &s), Some(StormType::Rate));
    }

    #[test]
    fn no_window_and_no_storm_is_individual_and_stores_nothing() {
        let step = StormDetector::default().observe(
            None,
            &signal(1, "A", "prod", "p"),
            counts(3, 3),
            &settings(3, 3, 2),
            at(0),
        );
        assert_eq!(step.decision, Decision::Individual);
        assert!(step.window.is_none() && step.closed.is_none());
    }

    #[test]
    fn counts_over_a_threshold_open_a_window_that_remembers_the_signal() {
        let detector = StormDetector::default();
        let step = detector.observe(
            None,
            &signal(1, "A", "prod", "p1"),
            counts(1, 6),
            &settings(10, 5, 3),
            at(0),
        );
        assert!(matches!(
            step.decision,
            Decision::Buffered {
                buffered: 1,
                storm_started: Some(StormType::Pattern),
                ..
            }
        ));
        let window = step.window.expect("opened");
        assert_eq!(window.buffered(), 1);
        let bytes = window.to_bytes();
        let back = OpenWindow::from_bytes(&bytes).expect("round trip");
        assert_eq!(back.to_bytes(), bytes);
        assert!(OpenWindow::from_bytes(b"not a window").is_none());
    }

    #[test]
    fn a_window_past_its_deadline_closes_before_the_signal_is_placed() {
        let detector = StormDetector::default();
        let s = timing(settings(1, 100, 5), 10, 300);
        let opened = detector.observe(None, &signal(1, "A", "prod", "p1"), counts(2, 1), &s, at(0));
        let late = detector.observe(
            opened.window,
            &signal(2, "A", "prod", "p2"),
            counts(1, 1),
            &s,
            at(100),
        );
        assert_eq!(late.decision, Decision::Individual, "the storm is over");
        assert!(late.window.is_none());
        assert!(
            matches!(late.closed, Some(Closure::Flush { ref signals, .. }) if signals.len() == 1),
            "{:?}",
            late.closed
        );
    }

    #[test]
    fn expire_closes_at_the_deadline_and_close_now_never_claims_more() {
        let detector = StormDetector::default();
        let s = timing(settings(1, 100, 1), 10, 300);
        let step = detector.observe(None, &signal(1, "A", "prod", "p1"), counts(2, 1), &s, at(0));
        let window = step.window.expect("opened");
        let key = WindowKey::of(&signal(1, "A", "prod", "p1"));
        assert!(
            detector
                .expire(window.clone(), key.clone(), &s, at(9))
                .is_none()
        );
        let Some(Closure::Aggregate(last)) =
            detector.expire(window.clone(), key.clone(), &s, at(10))
        else {
            panic!("closed at the deadline")
        };
        assert_eq!(last.closed_at, Some(at(10)));
        let Closure::Aggregate(drained) = detector.close_now(window.clone(), key.clone(), at(3))
        else {
            panic!("an aggregate")
        };
        assert_eq!(drained.closed_at, Some(at(3)));
        let Closure::Aggregate(late) = detector.close_now(window, key, at(500)) else {
            panic!("an aggregate")
        };
        assert_eq!(late.closed_at, Some(at(10)), "never past the deadline");
    }

    #[test]
    fn a_buffer_over_its_byte_budget_becomes_an_aggregate_at_once() {
        let big = |n: u64, pod: &str| {
            let mut s = signal(n, "A", "prod", pod);
            s.annotations
                .insert("description".to_owned(), "x".repeat(600));
            s
        };
        // A buffer threshold of 10 resources, but room for one big signal only.
        let detector = StormDetector::default().with_max_buffer_bytes(1000);
        let s = settings(1, 100, 10);
        let first = detector.observe(None, &big(1, "p1"), counts(2, 1), &s, at(0));
        assert!(matches!(
            first.decision,
            Decision::Buffered { buffered: 1, .. }
        ));
        let second = detector.observe(first.window, &big(2, "p2"), counts(3, 2), &s, at(1));
        let Decision::CreateAggregate { aggregate, .. } = second.decision else {
            panic!("promoted: {:?}", second.decision)
        };
        assert_eq!(
            aggregate.resources.len(),
            2,
            "both buffered signals are in it"
        );
        assert_eq!(second.window.expect("open").buffered(), 0);
    }
}
