//! The domain tested from outside its crates, as a new engineer would write it: mockall mocks of
//! the ports (`gateway-ports` feature `mocks`) and the builders and clock of
//! `gateway_ports::test_util` (feature `test-util`); nothing copied from a crate's private tests.

use std::sync::Arc;
use std::time::Duration;

use gateway_dedup::{DedupOutcome, Deduplicator};
use gateway_ports::test_util::{
    ManualClock, at, dedup_settings, retry_settings, security_settings, signal, storm_settings,
};
use gateway_ports::{ConfigSourceExt, MockConfigSource, MockDedupStore, Seen};
use mockall::predicate::eq;

#[tokio::test]
async fn the_dedup_policy_records_a_firing_alert_with_the_ttl_in_force_at_the_clocks_time() {
    let alert = signal("KubePodCrashLooping")
        .namespace("prod")
        .pod("api-0")
        .build();
    let mut config = MockConfigSource::new();
    config.expect_dedup().return_const(Arc::new(
        dedup_settings().ttl(Duration::from_secs(60)).build(),
    ));
    let clock = ManualClock::new(at(0));
    let mut store = MockDedupStore::new();
    store
        .expect_record()
        .with(
            eq(alert.fingerprint.clone()),
            eq(Duration::from_secs(60)),
            eq(at(5)),
        )
        .times(1)
        .returning(|_, _, now| Ok(Seen::First { window_start: now }));
    let dedup = Deduplicator::new(Arc::new(store));

    clock.advance(Duration::from_secs(5));
    let outcome = dedup.observe_with(&alert, &config, &clock).await.unwrap();

    assert_eq!(
        outcome,
        DedupOutcome::New {
            window_start: at(5)
        }
    );
}

#[tokio::test]
async fn the_dedup_policy_ends_a_resolved_alerts_window_without_recording_it() {
    let alert = signal("KubePodCrashLooping").resolved().build();
    // The request path's way: one snapshot of the settings (a mock needs only its accessors).
    let mut config = MockConfigSource::new();
    config
        .expect_storm()
        .return_const(Arc::new(storm_settings().build()));
    config
        .expect_dedup()
        .return_const(Arc::new(dedup_settings().build()));
    config
        .expect_retry()
        .return_const(Arc::new(retry_settings().build()));
    config
        .expect_security()
        .return_const(Arc::new(security_settings().build()));
    let mut store = MockDedupStore::new();
    store.expect_record().never();
    store
        .expect_forget()
        .with(eq(alert.fingerprint.clone()))
        .times(1)
        .returning(|_| Ok(()));
    let dedup = Deduplicator::new(Arc::new(store));

    let settings = config.snapshot();
    let outcome = dedup.observe(&alert, &settings.dedup, at(0)).await.unwrap();

    assert_eq!(outcome, DedupOutcome::Resolved);
}

#[tokio::test]
async fn the_dedup_policy_releases_the_window_of_an_alert_that_could_not_be_written() {
    let alert = signal("KubePodCrashLooping").build();
    let mut store = MockDedupStore::new();
    store
        .expect_record()
        .times(1)
        .returning(|_, _, now| Ok(Seen::First { window_start: now }));
    // The release names the claim the record made (at 0), so a late one never ends a window
    // another caller holds.
    store
        .expect_release()
        .with(eq(alert.fingerprint.clone()), eq(at(0)))
        .times(1)
        .returning(|_, _| Ok(()));
    let dedup = Deduplicator::new(Arc::new(store));

    let settings = dedup_settings().build();
    dedup.observe(&alert, &settings, at(0)).await.unwrap();
    // Writing the RemediationRequest failed: the sender's retry must count as new.
    dedup.release(&alert.fingerprint, at(0)).await.unwrap();
}

#[tokio::test]
async fn storm_detection_over_mocked_ports_opens_a_window_when_the_shared_counts_say_storm() {
    use gateway_ports::{MockStormCounter, MockWindowStore, StormCounts};
    use gateway_storm::{Decision, StormTracker, StormType, WindowCapacity};

    let alert = signal("NodeNotReady")
        .namespace("prod")
        .pod("node-7")
        .build();
    let settings = storm_settings()
        .rate_threshold(10)
        .buffer_threshold(5)
        .build();
    // Other replicas have counted ten signals of this alert name in the last minute.
    let mut counter = MockStormCounter::new();
    counter
        .expect_count()
        .withf(|name, _, now, _| name == "NodeNotReady" && *now == at(3))
        .times(1)
        .returning(|_, _, _, _| {
            Ok(StormCounts {
                rate: 11,
                distinct_resources: 1,
            })
        });
    // No window is open: one is stored, created (no version expected).
    let mut windows = MockWindowStore::new();
    windows.expect_load().times(1).returning(|_| Ok(None));
    windows
        .expect_replace()
        .withf(|_, expected, state, _| expected.is_none() && state.is_some())
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    let storms = StormTracker::new(
        Arc::new(counter),
        Arc::new(windows),
        WindowCapacity::DEFAULT,
    );

    let observation = storms.observe(&alert, &settings, at(3)).await.unwrap();

    assert!(
        matches!(
            observation.decision,
            Decision::Buffered {
                buffered: 1,
                storm_started: Some(StormType::Rate),
                ..
            }
        ),
        "{observation:?}"
    );
}

#[test]
fn the_storm_step_is_a_pure_function_of_window_counts_settings_and_time() {
    use gateway_ports::StormCounts;
    use gateway_storm::{Decision, StormDetector, WindowCapacity};

    let detector = StormDetector::new(WindowCapacity::DEFAULT);
    let settings = storm_settings()
        .pattern_threshold(3)
        .buffer_threshold(1)
        .build();
    let alert = signal("DiskFull").pod("db-0").build();
    let counts = StormCounts {
        rate: 1,
        distinct_resources: 4,
    };

    let step = detector.observe(None, &alert, counts, &settings, at(0));

    assert!(matches!(step.decision, Decision::CreateAggregate { .. }));
    let window = step.window.expect("a window is open");
    assert_eq!(
        window.buffered(),
        0,
        "the aggregate exists: nothing buffered"
    );
}
