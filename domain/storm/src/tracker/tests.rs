//! The storm domain over real in-memory stores (the embedded adapters), on a manual clock:
//! detection, buffering, aggregation, expiry, sampling, reloads, and replicas sharing stores.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gateway_adapter_memory::{MemoryStormCounter, MemoryWindowStore};
use gateway_ports::test_util::ManualClock;
use gateway_ports::{
    MockClock, MockConfigSource, ResourceRef, Signal, StoredWindow, StormSettings,
};

use super::*;
use crate::test_support::{at, pod, sampling, settings, signal, timing};
use crate::{Aggregate, Decision, StormType};

type Memory = StormTracker<MemoryStormCounter, MemoryWindowStore>;

/// A tracker over fresh in-memory stores.
fn tracker() -> Memory {
    with_capacity(WindowCapacity::default())
}

fn with_capacity(capacity: WindowCapacity) -> Memory {
    // The stores' own clock only ages stored windows (TTLs of an hour and more): it stands
    // still at the tests' origin.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at(0)));
    StormTracker::new(
        Arc::new(MemoryStormCounter::default()),
        Arc::new(MemoryWindowStore::new(clock)),
        capacity,
    )
}

/// Observes a signal, which must succeed.
async fn observe<C, W>(
    tracker: &StormTracker<C, W>,
    s: &Signal,
    settings: &StormSettings,
    t: Timestamp,
) -> Observation
where
    C: StormCounter + ?Sized,
    W: WindowStore + ?Sized,
{
    tracker
        .observe(s, settings, t)
        .await
        .expect("stores answer")
}

/// Observes a signal for pod `resource` of alert `A` in `prod`, expecting no closure.
async fn decide(
    tracker: &Memory,
    n: u64,
    resource: &str,
    s: &StormSettings,
    t: Timestamp,
) -> Decision {
    let observation = observe(tracker, &signal(n, "A", "prod", resource), s, t).await;
    assert_eq!(observation.closed, None, "signal {n}");
    observation.decision
}

async fn expire(tracker: &Memory, s: &StormSettings, t: Timestamp) -> Vec<Closure> {
    tracker.expire(s, t).await.expect("stores answer").closed
}

/// (windows open, signals buffered): an expiry check at the epoch closes nothing and counts.
async fn census(tracker: &Memory) -> (usize, usize) {
    let expired = tracker
        .expire(&StormSettings::default(), Timestamp::EPOCH)
        .await
        .expect("stores answer");
    assert!(expired.closed.is_empty());
    (expired.open, expired.buffered)
}

/// Observes signal `n` (pod `p<n>` of alert `A` in `prod`) with the settings and time the ports
/// give.
async fn decide_with(
    tracker: &Memory,
    n: u64,
    config: &dyn gateway_ports::ConfigSource,
    clock: &dyn Clock,
) -> Decision {
    let s = signal(n, "A", "prod", &format!("p{n}"));
    tracker
        .observe_with(&s, config, clock)
        .await
        .expect("stores answer")
        .decision
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
/// creates its aggregate at once.
async fn with_aggregate(s: &StormSettings, start: Timestamp) -> Memory {
    let tracker = tracker();
    assert_eq!(
        decide(&tracker, 0, "p0", s, start).await,
        Decision::Individual
    );
    let opened = decide(&tracker, 1, "p1", s, start).await;
    assert!(
        matches!(opened, Decision::CreateAggregate { .. }),
        "{opened:?}"
    );
    tracker
}

#[tokio::test]
async fn no_storm_under_the_thresholds() {
    let s = settings(3, 3, 2);
    let tracker = tracker();
    for n in 0..3 {
        let resource = format!("p{n}");
        assert_eq!(
            decide(&tracker, n, &resource, &s, at(n)).await,
            Decision::Individual
        );
    }
    assert_eq!(census(&tracker).await, (0, 0));
}

#[tokio::test]
async fn rate_storm_at_rate_threshold_plus_one_signals_within_a_minute() {
    let s = settings(3, 100, 5);
    let tracker = tracker();
    for n in 0..3 {
        assert_eq!(
            decide(&tracker, n, "p", &s, at(n * 19)).await,
            Decision::Individual
        );
    }
    assert_eq!(
        decide(&tracker, 3, "p", &s, at(59)).await,
        Decision::Buffered {
            key: key("prod", "A"),
            buffered: 1,
            storm_started: Some(StormType::Rate),
        }
    );
}

#[tokio::test]
async fn signals_spread_over_more_than_a_minute_are_no_rate_storm() {
    let s = settings(3, 100, 5);
    let tracker = tracker();
    // Signal 0 is exactly 60 s old when signal 3 arrives: out of the window.
    for n in 0..6 {
        assert_eq!(
            decide(&tracker, n, "p", &s, at(n * 20)).await,
            Decision::Individual
        );
    }
}

#[tokio::test]
async fn rate_is_counted_per_alert_name_across_namespaces() {
    let s = settings(2, 100, 5);
    let tracker = tracker();
    for (n, namespace) in ["a", "b"].into_iter().enumerate() {
        let o = observe(&tracker, &signal(n as u64, "A", namespace, "p"), &s, at(0)).await;
        assert_eq!(o.decision, Decision::Individual);
    }
    let other_alert = observe(&tracker, &signal(2, "B", "a", "p"), &s, at(0)).await;
    assert_eq!(other_alert.decision, Decision::Individual);
    let third = observe(&tracker, &signal(3, "A", "c", "p"), &s, at(0)).await;
    assert!(
        matches!(third.decision, Decision::Buffered { ref key, .. } if key.namespace == "c"),
        "{third:?}"
    );
}

#[tokio::test]
async fn pattern_storm_at_pattern_threshold_plus_one_distinct_resources_within_two_minutes() {
    let s = settings(100, 3, 5);
    let tracker = tracker();
    for (n, resource) in ["p1", "p1", "p2", "p3"].into_iter().enumerate() {
        let t = at(n as u64 * 30);
        assert_eq!(
            decide(&tracker, n as u64, resource, &s, t).await,
            Decision::Individual
        );
    }
    assert_eq!(
        decide(&tracker, 4, "p4", &s, at(119)).await,
        Decision::Buffered {
            key: key("prod", "A"),
            buffered: 1,
            storm_started: Some(StormType::Pattern),
        }
    );
}

#[tokio::test]
async fn distinct_resources_older_than_two_minutes_do_not_make_a_pattern_storm() {
    let s = settings(100, 3, 5);
    let tracker = tracker();
    for (n, resource) in ["p1", "p2", "p3", "p4"].into_iter().enumerate() {
        let t = at(n as u64 * 40);
        assert_eq!(
            decide(&tracker, n as u64, resource, &s, t).await,
            Decision::Individual,
            "p1 is 120 s old when p4 arrives"
        );
    }
}

#[tokio::test]
async fn buffering_then_one_aggregate_when_buffer_threshold_resources_are_buffered() {
    let s = settings(1, 100, 3);
    let tracker = tracker();
    assert_eq!(
        decide(&tracker, 0, "p0", &s, at(0)).await,
        Decision::Individual
    );
    let buffered = |n, started| Decision::Buffered {
        key: key("prod", "A"),
        buffered: n,
        storm_started: started,
    };
    assert_eq!(
        decide(&tracker, 1, "p1", &s, at(1)).await,
        buffered(1, Some(StormType::Rate))
    );
    // Same resource again: one more signal buffered, still one distinct resource.
    assert_eq!(
        decide(&tracker, 2, "p1", &s, at(2)).await,
        buffered(2, None)
    );
    assert_eq!(
        decide(&tracker, 3, "p2", &s, at(3)).await,
        buffered(3, None)
    );
    assert_eq!(census(&tracker).await.1, 3);

    let Decision::CreateAggregate {
        aggregate,
        storm_started: None,
    } = decide(&tracker, 4, "p3", &s, at(4)).await
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
    assert_eq!(census(&tracker).await.1, 0);
}

#[tokio::test]
async fn buffer_threshold_of_one_creates_the_aggregate_on_the_opening_signal() {
    let s = settings(1, 100, 1);
    let tracker = tracker();
    decide(&tracker, 0, "p0", &s, at(0)).await;
    let decision = decide(&tracker, 1, "p1", &s, at(0)).await;
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

#[tokio::test]
async fn joined_signals_extend_the_window_by_the_inactivity_timeout() {
    let s = timing(settings(1, 100, 1), 10, 300);
    let tracker = with_aggregate(&s, at(0)).await;
    for (n, t) in [(2, 8), (3, 16), (4, 24)] {
        let joined = aggregate_of(decide(&tracker, n, "p2", &s, at(t)).await);
        assert_eq!(joined.last_activity, at(t));
    }
    assert_eq!(expire(&tracker, &s, at(33)).await, []);
    assert_eq!(census(&tracker).await.0, 1);
    let Decision::Joined { aggregate } = decide(&tracker, 5, "p3", &s, at(33)).await else {
        panic!("a signal before the deadline joins");
    };
    assert_eq!(aggregate.resources, pods(&["p1", "p2", "p3"]));
    assert_eq!(aggregate.alert_count, 5);
}

#[tokio::test]
async fn inactivity_closes_the_window_with_the_final_list_and_count() {
    let s = timing(settings(1, 100, 1), 10, 300);
    let tracker = with_aggregate(&s, at(0)).await;
    decide(&tracker, 2, "p2", &s, at(5)).await;
    decide(&tracker, 3, "p2", &s, at(6)).await;
    assert_eq!(expire(&tracker, &s, at(15)).await, []);
    let closed = expire(&tracker, &s, at(16)).await;
    let [Closure::Aggregate(last)] = closed.as_slice() else {
        panic!("one final aggregate, got {closed:?}");
    };
    assert_eq!(last.closed_at, Some(at(16)));
    assert_eq!(last.resources, pods(&["p1", "p2"]));
    assert_eq!(last.alert_count, 3);
    assert_eq!(census(&tracker).await.0, 0);
}

#[tokio::test]
async fn a_buffer_below_threshold_is_flushed_after_inactivity_with_every_signal() {
    let s = timing(settings(1, 100, 5), 10, 300);
    let tracker = tracker();
    decide(&tracker, 0, "p0", &s, at(0)).await;
    let held: Vec<Signal> = [(1, "p1"), (2, "p2"), (3, "p1")]
        .into_iter()
        .map(|(n, r)| signal(n, "A", "prod", r))
        .collect();
    for (t, sig) in held.iter().enumerate() {
        let o = observe(&tracker, sig, &s, at(t as u64 + 1)).await;
        assert!(matches!(o.decision, Decision::Buffered { .. }), "{o:?}");
    }
    assert_eq!(expire(&tracker, &s, at(12)).await, []);
    assert_eq!(
        expire(&tracker, &s, at(13)).await,
        [Closure::Flush {
            key: key("prod", "A"),
            storm_type: StormType::Rate,
            signals: held,
        }]
    );
    assert_eq!(census(&tracker).await, (0, 0));
}

#[tokio::test]
async fn max_window_duration_caps_a_constantly_active_window() {
    let s = timing(settings(1, 100, 1), 10, 30);
    let tracker = with_aggregate(&s, at(0)).await;
    for n in 1..6 {
        let decision = decide(&tracker, n + 1, "p", &s, at(n * 5)).await;
        assert!(matches!(decision, Decision::Joined { .. }), "{decision:?}");
    }
    // At the cap, the old window closes first and the signal (the storm goes on) opens a
    // new one.
    let o = observe(&tracker, &signal(7, "A", "prod", "p"), &s, at(30)).await;
    let Some(Closure::Aggregate(last)) = &o.closed else {
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

#[tokio::test]
async fn expire_closes_a_capped_window_at_its_cap() {
    let s = timing(settings(1, 100, 1), 10, 30);
    let tracker = with_aggregate(&s, at(0)).await;
    for n in 1..6 {
        decide(&tracker, n + 1, "p", &s, at(n * 5)).await;
    }
    assert_eq!(expire(&tracker, &s, at(29)).await, []);
    let closed = expire(&tracker, &s, at(31)).await;
    assert!(
        matches!(closed.as_slice(), [Closure::Aggregate(a)] if a.closed_at == Some(at(30))),
        "{closed:?}"
    );
}

#[tokio::test]
async fn sampling_keeps_about_the_sampling_rate_and_counts_the_rest() {
    // Capacity 100, sampling from 10 stored resources, one in four kept.
    let s = sampling(timing(settings(1, 1000, 1), 600, 600), 0.1, 0.25);
    let tracker = with_capacity(WindowCapacity::new(100).unwrap());
    decide(&tracker, 0, "q", &s, at(0)).await;
    let mut last = None;
    for n in 1..=50 {
        let resource = format!("p{n}");
        last = Some(aggregate_of(
            decide(&tracker, n, &resource, &s, at(1)).await,
        ));
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

#[tokio::test]
async fn at_full_capacity_new_resources_are_counted_as_sampled_out() {
    let s = sampling(settings(1, 1000, 1), 1.0, 1.0);
    let tracker = with_capacity(WindowCapacity::new(2).unwrap());
    decide(&tracker, 0, "q", &s, at(0)).await;
    decide(&tracker, 1, "p1", &s, at(0)).await;
    decide(&tracker, 2, "p2", &s, at(0)).await;
    let Decision::SampledOut { aggregate } = decide(&tracker, 3, "p3", &s, at(0)).await else {
        panic!("no room for p3");
    };
    assert_eq!(aggregate.resources, pods(&["p1", "p2"]));
    assert_eq!((aggregate.alert_count, aggregate.sampled_out), (3, 1));
    let known = decide(&tracker, 4, "p1", &s, at(0)).await;
    assert!(matches!(known, Decision::Joined { .. }), "{known:?}");
}

#[tokio::test]
async fn the_buffer_threshold_is_capped_by_the_window_capacity() {
    let s = settings(1, 1000, 50);
    let tracker = with_capacity(WindowCapacity::new(2).unwrap());
    decide(&tracker, 0, "q", &s, at(0)).await;
    decide(&tracker, 1, "p1", &s, at(0)).await;
    let decision = decide(&tracker, 2, "p2", &s, at(0)).await;
    assert!(
        matches!(decision, Decision::CreateAggregate { ref aggregate, .. } if aggregate.resources.len() == 2),
        "{decision:?}"
    );
}

#[tokio::test]
async fn an_expired_window_is_closed_when_its_next_signal_arrives() {
    let s = timing(settings(1, 100, 5), 10, 300);
    let tracker = tracker();
    decide(&tracker, 0, "p0", &s, at(0)).await;
    decide(&tracker, 1, "p1", &s, at(0)).await;
    // Long after: the old buffer is flushed, and with the rate back under the threshold
    // the new signal is individual.
    let o = observe(&tracker, &signal(2, "A", "prod", "p2"), &s, at(100)).await;
    assert_eq!(o.decision, Decision::Individual);
    assert_eq!(
        o.closed,
        Some(Closure::Flush {
            key: key("prod", "A"),
            storm_type: StormType::Rate,
            signals: vec![signal(1, "A", "prod", "p1")],
        })
    );
}

#[tokio::test]
async fn changed_settings_apply_on_the_next_call() {
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

    let tracker = tracker();
    for n in 0..2 {
        let o = tracker
            .observe_with(&signal(n, "A", "prod", "p"), &config, &clock)
            .await
            .unwrap();
        assert_eq!(o.decision, Decision::Individual, "under the lenient rate");
    }
    let o = tracker
        .observe_with(&signal(2, "A", "prod", "p"), &config, &clock)
        .await
        .unwrap();
    assert!(
        matches!(o.decision, Decision::CreateAggregate { .. }),
        "the reloaded threshold applies at once: {o:?}"
    );
}

#[tokio::test]
async fn a_storm_yaml_reloaded_mid_storm_applies_to_the_next_signal_and_the_open_window() {
    use gateway_adapter_file_config::MemorySource;
    use gateway_ports::{ConfigKind, ReloadResult};

    // The settings come from a real hot-reloadable source (documents judged, swapped
    // atomically): the domain reads whatever is in force at each call.
    let clock = ManualClock::new(at(0));
    let config = MemorySource::new(Arc::new(clock.clone()));
    let applied = |records: Vec<gateway_ports::ReloadRecord>| {
        assert!(
            records.iter().all(|r| r.result == ReloadResult::Applied),
            "{records:?}"
        );
    };
    applied(config.set(
        ConfigKind::Storm,
        "rate_threshold: 100\nbuffer_threshold: 1\ninactivity_timeout: 60s\n",
    ));
    let tracker = tracker();
    let observe = |n| decide_with(&tracker, n, &config, &clock);
    assert_eq!(observe(0).await, Decision::Individual);
    assert_eq!(observe(1).await, Decision::Individual);
    // Mid-incident, the rate threshold is lowered: the next signal is a storm.
    applied(config.set(
        ConfigKind::Storm,
        "rate_threshold: 2\nbuffer_threshold: 1\ninactivity_timeout: 60s\n",
    ));
    assert!(matches!(observe(2).await, Decision::CreateAggregate { .. }));
    // An invalid change is rejected: the settings in force stay, and so does the window.
    let rejected = config.set(ConfigKind::Storm, "rate_threshold: 0\n");
    assert!(matches!(rejected[0].result, ReloadResult::Rejected(_)));
    assert!(matches!(observe(3).await, Decision::Joined { .. }));
    // A shorter inactivity timeout closes the open window at the next check.
    clock.advance(Duration::from_secs(10));
    assert_eq!(expire(&tracker, &config.storm(), clock.now()).await, []);
    applied(config.set(
        ConfigKind::Storm,
        "rate_threshold: 2\nbuffer_threshold: 1\ninactivity_timeout: 5s\n",
    ));
    assert_eq!(
        expire(&tracker, &config.storm(), clock.now()).await.len(),
        1
    );
}

#[tokio::test]
async fn a_shortened_inactivity_timeout_applies_to_open_windows() {
    let long = timing(settings(1, 100, 1), 60, 300);
    let short = timing(settings(1, 100, 1), 5, 300);
    let tracker = with_aggregate(&long, at(0)).await;
    assert_eq!(expire(&tracker, &long, at(10)).await, []);
    assert_eq!(expire(&tracker, &short, at(10)).await.len(), 1);
}

#[tokio::test]
async fn observe_with_reads_the_settings_and_the_time_from_the_ports() {
    let mut config = MockConfigSource::new();
    config
        .expect_storm()
        .times(1)
        .return_const(Arc::new(settings(1, 100, 1)));
    let mut clock = MockClock::new();
    clock.expect_now().times(1).return_const(at(42));
    let tracker = with_aggregate(&settings(1, 100, 1), at(40)).await;

    let o = tracker
        .observe_with(&signal(9, "A", "prod", "p9"), &config, &clock)
        .await
        .unwrap();
    assert_eq!(aggregate_of(o.decision).last_activity, at(42));
}

#[tokio::test]
async fn a_window_goes_quiet_on_a_manual_clock() {
    let s = Arc::new(timing(settings(1, 100, 2), 10, 300));
    let mut config = MockConfigSource::new();
    config.expect_storm().return_const(Arc::clone(&s));
    let clock = ManualClock::new(at(0));
    let tracker = tracker();

    let observe = |n| decide_with(&tracker, n, &config, &clock);
    assert_eq!(observe(0).await, Decision::Individual);
    assert!(matches!(observe(1).await, Decision::Buffered { .. }));
    clock.advance(Duration::from_secs(9));
    assert!(matches!(observe(2).await, Decision::CreateAggregate { .. }));
    clock.advance(Duration::from_secs(10));
    assert_eq!(expire(&tracker, &s, clock.now()).await.len(), 1);
    assert_eq!(census(&tracker).await.0, 0);
}

#[tokio::test]
async fn drain_closes_every_window_at_now() {
    let s = timing(settings(1, 100, 2), 60, 300);
    let tracker = tracker();
    for (n, namespace, resource) in [
        (0, "a", "p0"),
        (1, "a", "p1"),
        (2, "a", "p2"),
        (3, "b", "p3"),
    ] {
        observe(&tracker, &signal(n, "A", namespace, resource), &s, at(0)).await;
    }
    assert_eq!(census(&tracker).await.0, 2);
    let mut closed = tracker.drain(at(20)).await.unwrap();
    closed.sort_by_key(|c| match c {
        Closure::Aggregate(a) => a.key.clone(),
        Closure::Flush { key, .. } => key.clone(),
    });
    assert_eq!(closed.len(), 2);
    assert!(
        matches!(&closed[0], Closure::Aggregate(a) if a.closed_at == Some(at(20)) && a.alert_count == 2),
        "{closed:?}"
    );
    assert!(
        matches!(&closed[1], Closure::Flush { key, signals, .. } if key.namespace == "b" && signals.len() == 1),
        "{closed:?}"
    );
    assert_eq!(census(&tracker).await.0, 0);
    assert_eq!(tracker.drain(at(21)).await.unwrap(), []);
}

#[tokio::test]
async fn a_slightly_late_receive_time_does_not_move_the_window_back() {
    let s = timing(settings(1, 100, 1), 10, 300);
    let tracker = with_aggregate(&s, at(0)).await;
    decide(&tracker, 2, "p2", &s, at(8)).await;
    let late = aggregate_of(decide(&tracker, 3, "p3", &s, at(7)).await);
    assert_eq!(late.last_activity, at(8));
    assert_eq!(expire(&tracker, &s, at(17)).await, []);
}

// ---- Replicas sharing the stores ----

/// Two trackers (two replicas) over the same stores.
fn replicas() -> (Memory, Memory) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at(0)));
    let counter = Arc::new(MemoryStormCounter::default());
    let windows = Arc::new(MemoryWindowStore::new(clock));
    let replica = || StormTracker::new(counter.clone(), windows.clone(), WindowCapacity::default());
    (replica(), replica())
}

#[tokio::test]
async fn shared_counts_open_a_window_this_replica_alone_would_not_have() {
    let s = settings(10, 2, 5);
    let (a, b) = replicas();
    for n in 0..2 {
        let pod = format!("p{n}");
        let o = observe(&a, &signal(n, "A", "prod", &pod), &s, at(n)).await;
        assert_eq!(o.decision, Decision::Individual);
    }
    // b has seen nothing itself: the third distinct pod counted by the replicas together is a
    // pattern storm.
    let o = observe(&b, &signal(2, "A", "prod", "p2"), &s, at(2)).await;
    assert!(matches!(
        o.decision,
        Decision::Buffered {
            storm_started: Some(StormType::Pattern),
            ..
        }
    ));
}

#[tokio::test]
async fn two_replicas_fill_one_window_and_one_aggregate_lists_every_resource() {
    let (a, b) = replicas();
    let s = settings(10, 1, 4);
    let mut decisions = Vec::new();
    // A pattern storm from the second distinct pod on.
    observe(&a, &signal(99, "A", "prod", "p-first"), &s, at(0)).await;
    for n in 0..6u64 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let pod = format!("p{n}");
        decisions.push(
            observe(replica, &signal(n, "A", "prod", &pod), &s, at(n))
                .await
                .decision,
        );
    }
    assert!(matches!(
        decisions[0],
        Decision::Buffered {
            storm_started: Some(StormType::Pattern),
            ..
        }
    ));
    assert!(
        matches!(
            decisions[1],
            Decision::Buffered {
                storm_started: None,
                ..
            }
        ),
        "b joined a's window"
    );
    let Decision::CreateAggregate { aggregate, .. } = &decisions[3] else {
        panic!("{decisions:?}")
    };
    assert_eq!(aggregate.resources.len(), 4);
    let Decision::Joined { aggregate } = &decisions[5] else {
        panic!("{decisions:?}")
    };
    assert_eq!((aggregate.resources.len(), aggregate.alert_count), (6, 6));
}

/// A window store that makes its next `n` replacements lose a race, then delegates.
#[derive(Debug)]
struct Racy {
    inner: MemoryWindowStore,
    lose: std::sync::Mutex<u32>,
}

#[async_trait]
impl WindowStore for Racy {
    async fn load(&self, key: &str) -> Result<Option<StoredWindow>, StoreError> {
        self.inner.load(key).await
    }
    async fn replace(
        &self,
        key: &str,
        expected: Option<u64>,
        state: Option<Vec<u8>>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        {
            let mut lose = self.lose.lock().unwrap();
            if *lose > 0 {
                *lose -= 1;
                return Ok(false);
            }
        }
        self.inner.replace(key, expected, state, ttl).await
    }
    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.inner.keys().await
    }
}

#[tokio::test]
async fn a_lost_race_is_retried_and_no_signal_is_lost() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at(0)));
    let store = Arc::new(Racy {
        inner: MemoryWindowStore::new(clock),
        lose: std::sync::Mutex::new(0),
    });
    let tracker = StormTracker::new(
        Arc::new(MemoryStormCounter::default()),
        store.clone(),
        WindowCapacity::default(),
    );
    let s = settings(1, 100, 100);
    observe(&tracker, &signal(0, "A", "prod", "p0"), &s, at(0)).await;
    observe(&tracker, &signal(1, "A", "prod", "p1"), &s, at(0)).await;
    *store.lose.lock().unwrap() = 3;
    let decision = observe(&tracker, &signal(2, "A", "prod", "p2"), &s, at(1))
        .await
        .decision;
    assert!(
        matches!(decision, Decision::Buffered { buffered: 2, .. }),
        "{decision:?}"
    );
    // A race lost every time is refused, so that the signal is resent.
    *store.lose.lock().unwrap() = u32::MAX;
    let refused = tracker
        .observe(&signal(3, "A", "prod", "p3"), &s, at(2))
        .await;
    assert!(
        matches!(refused, Err(StormError::Windows(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn each_window_is_closed_by_exactly_one_replica() {
    let (a, b) = replicas();
    let s = timing(settings(1, 100, 100), 60, 300);
    observe(&a, &signal(0, "A", "prod", "p0"), &s, at(0)).await;
    observe(&a, &signal(1, "A", "prod", "p1"), &s, at(0)).await;
    observe(&b, &signal(2, "A", "prod", "p2"), &s, at(1)).await;
    assert!(expire(&a, &s, at(30)).await.is_empty(), "not due yet");
    let first = expire(&a, &s, at(61)).await;
    let second = expire(&b, &s, at(61)).await;
    assert!(second.is_empty());
    let [Closure::Flush { signals, .. }] = first.as_slice() else {
        panic!("{first:?}")
    };
    assert_eq!(signals.len(), 2, "both replicas' signals come back");
}

#[tokio::test]
async fn a_signal_after_the_deadline_closes_the_window_and_opens_a_new_one() {
    let tracker = tracker();
    // A pattern storm from the second distinct pod, lasting: pods stay counted for 2 minutes.
    let s = timing(settings(100, 1, 100), 60, 300);
    observe(&tracker, &signal(0, "A", "prod", "p0"), &s, at(0)).await;
    observe(&tracker, &signal(1, "A", "prod", "p1"), &s, at(0)).await;
    let observation = observe(&tracker, &signal(2, "A", "prod", "p2"), &s, at(100)).await;
    assert!(
        matches!(observation.closed, Some(Closure::Flush { ref signals, .. }) if signals.len() == 1),
        "{observation:?}"
    );
    assert!(matches!(
        observation.decision,
        Decision::Buffered {
            storm_started: Some(StormType::Pattern),
            buffered: 1,
            ..
        }
    ));
}

#[tokio::test]
async fn a_counter_that_fails_is_named_and_nothing_is_stored() {
    let mut counter = gateway_ports::MockStormCounter::new();
    counter.expect_count().returning(|_, _, _, _| {
        Err(StoreError::Unavailable {
            reason: "down".into(),
            source: None,
        })
    });
    let windows = Arc::new(MemoryWindowStore::new(Arc::new(ManualClock::new(at(0)))));
    let tracker = StormTracker::new(
        Arc::new(counter),
        windows.clone(),
        WindowCapacity::default(),
    );
    let result = tracker
        .observe(&signal(0, "A", "prod", "p0"), &settings(1, 1, 1), at(0))
        .await;
    assert!(matches!(result, Err(StormError::Counter(_))), "{result:?}");
    assert!(windows.keys().await.unwrap().is_empty());
}

mod window_names {
    use proptest::prelude::*;

    use super::super::{key_of, name_of};
    use super::key;

    #[test]
    fn a_slash_in_the_alert_name_cannot_make_two_windows_share_a_name() {
        assert_ne!(name_of(&key("a", "b/c")), name_of(&key("a/b", "c")));
        assert_eq!(key_of(&name_of(&key("a", "b/c"))), Some(key("a", "b/c")));
        assert_eq!(key_of("a/b"), None, "a name this store did not make");
    }

    proptest! {
        #[test]
        fn names_are_injective_and_read_back(
            a in (".{0,12}", ".{0,12}"),
            b in (".{0,12}", ".{0,12}"),
        ) {
            let (ka, kb) = (key(&a.0, &a.1), key(&b.0, &b.1));
            prop_assert_eq!(key_of(&name_of(&ka)), Some(ka.clone()));
            prop_assert_eq!(name_of(&ka) == name_of(&kb), ka == kb);
        }
    }
}
