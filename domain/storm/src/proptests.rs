//! Properties of storm detection over random signal sequences, through the one path the gateway
//! takes (the tracker over the embedded stores): accounting, window lifetime, bounds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gateway_adapter_memory::{MemoryStormCounter, MemoryWindowStore};
use gateway_ports::test_util::ManualClock;
use gateway_ports::{Ratio, StormSettings, Threshold, Timestamp};
use proptest::prelude::*;

use crate::test_support::signal;
use crate::{Aggregate, Closure, Decision, StormTracker, WindowCapacity};

/// One arrival: which alert, namespace and pod, after how long, and what the caller does around it.
#[derive(Debug, Clone)]
struct Step {
    alert: u8,
    namespace: u8,
    resource: u8,
    gap_ms: u64,
    /// Call `expire` after the signal.
    expire: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u8..3,
        0u8..2,
        0u8..6,
        prop_oneof![0u64..500, 0u64..40_000],
        any::<bool>(),
    )
        .prop_map(|(alert, namespace, resource, gap_ms, expire)| Step {
            alert,
            namespace,
            resource,
            gap_ms,
            expire,
        })
}

fn storm_settings() -> impl Strategy<Value = StormSettings> {
    (
        (1u32..5, 1u32..5, 1u32..5),
        (1_000u64..20_000, 0u64..40_000),
        (0.05f64..=1.0, 0.05f64..=1.0),
    )
        .prop_map(
            |(
                (rate, pattern, buffer),
                (inactivity, extra),
                (sampling_threshold, sampling_rate),
            )| {
                StormSettings {
                    rate_threshold: Threshold::new(rate).unwrap(),
                    pattern_threshold: Threshold::new(pattern).unwrap(),
                    buffer_threshold: Threshold::new(buffer).unwrap(),
                    inactivity_timeout: Duration::from_millis(inactivity),
                    max_window_duration: Duration::from_millis(inactivity + extra),
                    sampling_threshold: Ratio::new(sampling_threshold).unwrap(),
                    sampling_rate: Ratio::new(sampling_rate).unwrap(),
                }
            },
        )
}

/// Everything a run produced that the caller would write, with the time of each decision.
struct Run {
    signals: u64,
    decisions: Vec<(Timestamp, Decision)>,
    /// Closures handed to the writer.
    written: Vec<Closure>,
}

impl Run {
    /// Every aggregate snapshot: in decisions and in final closures.
    fn aggregates(&self) -> impl Iterator<Item = &Aggregate> {
        let in_decisions = self.decisions.iter().filter_map(|(_, d)| match d {
            Decision::CreateAggregate { aggregate, .. }
            | Decision::Joined { aggregate }
            | Decision::SampledOut { aggregate } => Some(aggregate),
            Decision::Individual | Decision::Buffered { .. } => None,
        });
        in_decisions.chain(self.finals())
    }

    fn finals(&self) -> impl Iterator<Item = &Aggregate> {
        self.written.iter().filter_map(|c| match c {
            Closure::Aggregate(a) => Some(a),
            Closure::Flush { .. } => None,
        })
    }
}

const NAMES: [&str; 3] = ["KubePodCrashLooping", "NodeDown", "HighLatency"];
const NAMESPACES: [&str; 2] = ["prod", "staging"];

/// Feeds `steps` to a tracker over in-memory stores, expiring as they say, then drains it.
fn run(settings: &StormSettings, capacity: WindowCapacity, steps: &[Step]) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let start = Timestamp::from_secs(1_000_000);
        let windows = Arc::new(MemoryWindowStore::new(Arc::new(ManualClock::new(start))));
        let tracker = StormTracker::new(Arc::new(MemoryStormCounter::default()), windows, capacity);
        let mut out = Run {
            signals: steps.len() as u64,
            decisions: Vec::new(),
            written: Vec::new(),
        };
        let mut now = start;
        for (n, step) in steps.iter().enumerate() {
            now = now + Duration::from_millis(step.gap_ms);
            let s = signal(
                n as u64,
                NAMES[usize::from(step.alert)],
                NAMESPACES[usize::from(step.namespace)],
                &format!("pod-{}", step.resource),
            );
            let observation = tracker.observe(&s, settings, now).await.expect("in memory");
            out.decisions.push((now, observation.decision));
            out.written.extend(observation.closed);
            if step.expire {
                out.written.extend(
                    tracker
                        .expire(settings, now)
                        .await
                        .expect("in memory")
                        .closed,
                );
            }
        }
        out.written.extend(
            tracker
                .drain(now + Duration::from_secs(3600))
                .await
                .expect("in memory"),
        );
        let left = tracker
            .expire(settings, Timestamp::EPOCH)
            .await
            .expect("in memory");
        assert_eq!((left.open, left.buffered), (0, 0));
        out
    })
}

proptest! {
    #[test]
    fn every_signal_is_accounted_exactly_once(
        settings in storm_settings(),
        capacity in 1u32..6,
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let run = run(&settings, WindowCapacity::new(capacity).unwrap(), &steps);
        let individual = run
            .decisions
            .iter()
            .filter(|(_, d)| *d == Decision::Individual)
            .count() as u64;
        let flushed: u64 = run
            .written
            .iter()
            .map(|c| match c {
                Closure::Flush { signals, .. } => signals.len() as u64,
                Closure::Aggregate(_) => 0,
            })
            .sum();
        let aggregated: u64 = run.finals().map(|a| a.alert_count).sum();
        prop_assert_eq!(individual + flushed + aggregated, run.signals);
    }

    #[test]
    fn no_window_outlives_max_window_duration(
        settings in storm_settings(),
        capacity in 1u32..6,
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let cap = settings.max_window_duration;
        let run = run(&settings, WindowCapacity::new(capacity).unwrap(), &steps);
        for a in run.finals() {
            let closed_at = a.closed_at.unwrap();
            prop_assert!(closed_at >= a.opened_at, "{a:?}");
            prop_assert!(closed_at.saturating_since(a.opened_at) <= cap, "{a:?}");
        }
        for (now, decision) in &run.decisions {
            if let Decision::Joined { aggregate } | Decision::SampledOut { aggregate } = decision {
                prop_assert!(*now < aggregate.opened_at + cap, "joined at {now:?}: {aggregate:?}");
                prop_assert_eq!(aggregate.closed_at, None);
            }
        }
    }

    #[test]
    fn aggregates_stay_within_their_bounds(
        settings in storm_settings(),
        capacity in 1u32..6,
        steps in prop::collection::vec(step(), 1..150),
    ) {
        let run = run(&settings, WindowCapacity::new(capacity).unwrap(), &steps);
        for a in run.aggregates() {
            prop_assert!(a.sampled_out <= a.alert_count, "{a:?}");
            prop_assert!(a.resources.len() as u64 <= a.alert_count, "{a:?}");
            prop_assert!(a.resources.len() <= capacity as usize, "{a:?}");
            let distinct: HashSet<_> = a.resources.iter().collect();
            prop_assert_eq!(distinct.len(), a.resources.len(), "resources are distinct");
        }
    }
}
