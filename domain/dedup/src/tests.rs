//! Unit tests: the calls made to the store (mocks), and whole sequences against a model store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::test_util::{at, dedup_settings, fingerprint, signal};
use gateway_ports::{DedupWindow, MockClock, MockConfigSource, MockDedupStore};
use mockall::Sequence;
use mockall::predicate::eq;
use proptest::prelude::*;

use super::*;

/// Signal `n` (its fingerprint is `fingerprint(n)`), firing.
fn firing(n: u64) -> Signal {
    signal("KubePodCrashLooping")
        .fingerprint(fingerprint(n))
        .build()
}

/// Signal `n`, resolved.
fn resolved(n: u64) -> Signal {
    signal("KubePodCrashLooping")
        .fingerprint(fingerprint(n))
        .resolved()
        .build()
}

fn ttl(secs: u64) -> DedupSettings {
    dedup_settings().ttl(Duration::from_secs(secs)).build()
}

fn unavailable() -> StoreError {
    StoreError::Unavailable {
        reason: "connection refused".to_owned(),
        source: None,
    }
}

fn over(store: MockDedupStore) -> Deduplicator<MockDedupStore> {
    Deduplicator::new(Arc::new(store))
}

// ---- The calls made to the store ----

#[tokio::test]
async fn a_firing_signal_is_recorded_with_the_ttl_in_force() {
    let mut store = MockDedupStore::new();
    store
        .expect_record()
        .with(eq(fingerprint(1)), eq(Duration::from_secs(300)), eq(at(0)))
        .times(1)
        .returning(|_, _, now| Ok(Seen::First { window_start: now }));
    let outcome = over(store)
        .observe(&firing(1), &ttl(300), at(0))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        DedupOutcome::New {
            window_start: at(0)
        }
    );
}

#[tokio::test]
async fn a_duplicate_reports_its_window_start_and_count() {
    let mut store = MockDedupStore::new();
    store.expect_record().times(1).returning(|_, _, _| {
        Ok(Seen::Duplicate {
            window_start: at(0),
            count: 4,
        })
    });
    let outcome = over(store)
        .observe(&firing(1), &ttl(300), at(10))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        DedupOutcome::Duplicate {
            window_start: at(0),
            count: 4
        }
    );
}

#[tokio::test]
async fn a_ttl_change_applies_to_the_next_record() {
    let mut config = MockConfigSource::new();
    let mut reload = Sequence::new();
    for secs in [300, 60] {
        config
            .expect_dedup()
            .times(1)
            .in_sequence(&mut reload)
            .return_const(Arc::new(ttl(secs)));
    }
    let mut clock = MockClock::new();
    let mut ticks = Sequence::new();
    for secs in [0, 5] {
        clock
            .expect_now()
            .times(1)
            .in_sequence(&mut ticks)
            .return_const(at(secs));
    }
    let mut store = MockDedupStore::new();
    let mut records = Sequence::new();
    store
        .expect_record()
        .with(eq(fingerprint(1)), eq(Duration::from_secs(300)), eq(at(0)))
        .times(1)
        .in_sequence(&mut records)
        .returning(|_, _, now| Ok(Seen::First { window_start: now }));
    store
        .expect_record()
        .with(eq(fingerprint(2)), eq(Duration::from_secs(60)), eq(at(5)))
        .times(1)
        .in_sequence(&mut records)
        .returning(|_, _, now| Ok(Seen::First { window_start: now }));

    let dedup = over(store);
    dedup
        .observe_with(&firing(1), &config, &clock)
        .await
        .unwrap();
    let outcome = dedup
        .observe_with(&firing(2), &config, &clock)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        DedupOutcome::New {
            window_start: at(5)
        }
    );
}

#[tokio::test]
async fn a_resolved_signal_forgets_its_window_and_is_never_recorded() {
    let mut store = MockDedupStore::new();
    store.expect_record().never();
    store
        .expect_forget()
        .with(eq(fingerprint(1)))
        .times(1)
        .returning(|_| Ok(()));
    let outcome = over(store)
        .observe(&resolved(1), &ttl(300), at(0))
        .await
        .unwrap();
    assert_eq!(outcome, DedupOutcome::Resolved);
}

#[tokio::test]
async fn release_releases_the_claim_it_names() {
    let mut store = MockDedupStore::new();
    store.expect_record().never();
    store.expect_forget().never();
    store
        .expect_release()
        .with(eq(fingerprint(1)), eq(at(7)))
        .times(1)
        .returning(|_, _| Ok(()));
    over(store).release(&fingerprint(1), at(7)).await.unwrap();
}

#[tokio::test]
async fn a_store_error_while_recording_is_passed_on() {
    let mut store = MockDedupStore::new();
    store
        .expect_record()
        .times(1)
        .returning(|_, _, _| Err(unavailable()));
    let err = over(store)
        .observe(&firing(1), &ttl(300), at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_store_error_while_resolving_is_passed_on() {
    let mut store = MockDedupStore::new();
    store.expect_forget().times(1).returning(|_| {
        Err(StoreError::Backend {
            reason: "unexpected reply".to_owned(),
            source: None,
        })
    });
    let err = over(store)
        .observe(&resolved(1), &ttl(300), at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
}

#[tokio::test]
async fn a_store_error_while_releasing_is_passed_on() {
    let mut store = MockDedupStore::new();
    store
        .expect_release()
        .times(1)
        .returning(|_, _| Err(unavailable()));
    let err = over(store)
        .release(&fingerprint(1), at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

#[test]
fn a_deduplicator_over_a_dyn_store_is_debug_clone_and_its_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let store: Arc<dyn DedupStore> = Arc::new(MockDedupStore::new());
    let dedup = Deduplicator::new(store);
    let (signal, settings, config, clock) = (
        firing(1),
        ttl(300),
        MockConfigSource::new(),
        MockClock::new(),
    );
    // Built, never polled: the mocks have no expectations because nothing is called.
    send(dedup.observe(&signal, &settings, at(0)));
    send(dedup.observe_with(&signal, &config, &clock));
    send(dedup.release(&signal.fingerprint, at(0)));
    assert!(Arc::ptr_eq(dedup.clone().store(), dedup.store()));
    assert_eq!(format!("{dedup:?}"), "Deduplicator { .. }");
}

// ---- Whole sequences against a model store ----

/// The port's reference semantics ([`DedupWindow`]) kept in a map: what every adapter must do.
#[derive(Debug, Default)]
struct ModelStore {
    windows: Mutex<HashMap<Fingerprint, DedupWindow>>,
}

#[async_trait]
impl DedupStore for ModelStore {
    async fn record(
        &self,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Seen, StoreError> {
        let mut windows = self.windows.lock().unwrap();
        let previous = windows.get(fingerprint).copied();
        let (window, seen) = DedupWindow::record(previous, now, ttl);
        windows.insert(fingerprint.clone(), window);
        Ok(seen)
    }

    async fn forget(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        self.windows.lock().unwrap().remove(fingerprint);
        Ok(())
    }

    async fn release(
        &self,
        fingerprint: &Fingerprint,
        claimed_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut windows = self.windows.lock().unwrap();
        if windows
            .get(fingerprint)
            .is_some_and(|w| w.claimed == Some(claimed_at))
        {
            windows.remove(fingerprint);
        }
        Ok(())
    }

    async fn settle(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        if let Some(w) = self.windows.lock().unwrap().get_mut(fingerprint) {
            *w = w.settled();
        }
        Ok(())
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn model() -> Deduplicator<ModelStore> {
    Deduplicator::new(Arc::new(ModelStore::default()))
}

/// Observes `signal` as the gateway does: a `New` occurrence is settled once its work is done
/// (here at once), so later ones are duplicates.
async fn settled(
    dedup: &Deduplicator<ModelStore>,
    signal: &Signal,
    settings: &DedupSettings,
    now: Timestamp,
) -> Result<DedupOutcome, StoreError> {
    let outcome = dedup.observe(signal, settings, now).await?;
    if let DedupOutcome::New { .. } = outcome {
        dedup.settle(&signal.fingerprint).await?;
    }
    Ok(outcome)
}

#[tokio::test]
async fn an_occurrence_while_the_first_is_unsettled_is_claimed_until_the_claim_is_old() {
    let dedup = model();
    let (s, a) = (ttl(300), firing(1));
    dedup.observe(&a, &s, at(0)).await.unwrap();
    assert_eq!(
        dedup.observe(&a, &s, at(1)).await.unwrap(),
        DedupOutcome::Claimed {
            window_start: at(0)
        }
    );
    // The first occurrence's caller crashed: after the claim's time the next one takes it over.
    assert_eq!(
        dedup
            .observe(&a, &s, at(0) + DedupWindow::CLAIM)
            .await
            .unwrap(),
        DedupOutcome::New {
            window_start: at(0)
        }
    );
}

#[tokio::test]
async fn new_then_counted_duplicates_then_resolved_then_new_again() {
    let dedup = model();
    let s = ttl(300);
    let a = firing(1);
    assert_eq!(
        settled(&dedup, &a, &s, at(0)).await.unwrap(),
        DedupOutcome::New {
            window_start: at(0)
        }
    );
    for (count, secs) in [(2, 10), (3, 20), (4, 299)] {
        assert_eq!(
            settled(&dedup, &a, &s, at(secs)).await.unwrap(),
            DedupOutcome::Duplicate {
                window_start: at(0),
                count
            }
        );
    }
    assert_eq!(
        settled(&dedup, &resolved(1), &s, at(100)).await.unwrap(),
        DedupOutcome::Resolved
    );
    assert_eq!(
        settled(&dedup, &a, &s, at(101)).await.unwrap(),
        DedupOutcome::New {
            window_start: at(101)
        }
    );
}

#[tokio::test]
async fn fingerprints_have_separate_windows() {
    let dedup = model();
    let s = ttl(300);
    settled(&dedup, &firing(1), &s, at(0)).await.unwrap();
    assert_eq!(
        settled(&dedup, &firing(2), &s, at(1)).await.unwrap(),
        DedupOutcome::New {
            window_start: at(1)
        }
    );
    settled(&dedup, &resolved(2), &s, at(2)).await.unwrap();
    assert!(matches!(
        settled(&dedup, &firing(1), &s, at(3)).await.unwrap(),
        DedupOutcome::Duplicate { count: 2, .. }
    ));
}

#[tokio::test]
async fn a_window_ends_exactly_one_ttl_after_it_opened() {
    let dedup = model();
    let s = ttl(60);
    let a = firing(1);
    settled(&dedup, &a, &s, at(0)).await.unwrap();
    let just_before = at(60) - Duration::from_millis(1);
    assert!(matches!(
        settled(&dedup, &a, &s, just_before).await.unwrap(),
        DedupOutcome::Duplicate { count: 2, .. }
    ));
    assert_eq!(
        settled(&dedup, &a, &s, at(60)).await.unwrap(),
        DedupOutcome::New {
            window_start: at(60)
        }
    );
}

#[tokio::test]
async fn a_ttl_reload_neither_stretches_nor_cuts_an_open_window() {
    let dedup = model();
    let a = firing(1);
    settled(&dedup, &a, &ttl(300), at(0)).await.unwrap();
    // Longer TTL now, but the window opened under 300 s still ends at 300 s.
    assert!(matches!(
        settled(&dedup, &a, &ttl(600), at(299)).await.unwrap(),
        DedupOutcome::Duplicate { .. }
    ));
    assert_eq!(
        settled(&dedup, &a, &ttl(600), at(300)).await.unwrap(),
        DedupOutcome::New {
            window_start: at(300)
        }
    );
    // The new window took the new TTL; a shorter one now does not cut it.
    assert!(matches!(
        settled(&dedup, &a, &ttl(60), at(899)).await.unwrap(),
        DedupOutcome::Duplicate { .. }
    ));
}

#[tokio::test]
async fn a_released_window_lets_the_senders_retry_count_as_new() {
    let dedup = model();
    let a = firing(1);
    let first = dedup.observe(&a, &ttl(300), at(0)).await.unwrap();
    assert!(matches!(first, DedupOutcome::New { .. }));
    // Creating the remediation failed; the gateway answered 5xx and releases the window.
    dedup.release(&a.fingerprint, at(0)).await.unwrap();
    assert_eq!(
        settled(&dedup, &a, &ttl(300), at(1)).await.unwrap(),
        DedupOutcome::New {
            window_start: at(1)
        }
    );
}

#[tokio::test]
async fn a_late_release_never_ends_a_window_someone_else_holds() {
    let dedup = model();
    let a = firing(1);
    // Recorded at 0; the write failed, and so did the release (the store was away).
    dedup.observe(&a, &ttl(300), at(0)).await.unwrap();
    // The claim is taken over at 31 s and that occurrence is written and settled.
    assert_eq!(
        settled(&dedup, &a, &ttl(300), at(31)).await.unwrap(),
        DedupOutcome::New {
            window_start: at(0)
        }
    );
    // The first release, tried again now, names the old claim: nothing happens.
    dedup.release(&a.fingerprint, at(0)).await.unwrap();
    assert!(matches!(
        settled(&dedup, &a, &ttl(300), at(32)).await.unwrap(),
        DedupOutcome::Duplicate { .. }
    ));
}

#[tokio::test]
async fn a_resolved_alert_without_an_open_window_is_still_resolved() {
    let dedup = model();
    assert_eq!(
        settled(&dedup, &resolved(1), &ttl(300), at(0))
            .await
            .unwrap(),
        DedupOutcome::Resolved
    );
}

/// One step of a generated sequence, `gap_ms` after the previous one.
#[derive(Debug, Clone)]
enum Step {
    Fire { gap_ms: u64, ttl_secs: u64 },
    Resolve { gap_ms: u64 },
    Release { gap_ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u64..120_000, 1u64..90).prop_map(|(gap_ms, ttl_secs)| Step::Fire { gap_ms, ttl_secs }),
        1 => (0u64..120_000).prop_map(|gap_ms| Step::Resolve { gap_ms }),
        1 => (0u64..120_000).prop_map(|gap_ms| Step::Release { gap_ms }),
    ]
}

/// The model's window, kept independently of `DedupWindow`: (start, ttl, count).
type Open = Option<(Timestamp, Duration, u64)>;

/// Checks an occurrence's `outcome` at `now` against the model (`ttl` if it opens a window):
/// the window after it, and whether the occurrence was new.
fn expect_occurrence(
    open: Open,
    now: Timestamp,
    ttl: Duration,
    outcome: DedupOutcome,
) -> Result<(Open, bool), TestCaseError> {
    match open {
        Some((start, window_ttl, count)) if now.saturating_since(start) < window_ttl => {
            prop_assert_eq!(
                outcome,
                DedupOutcome::Duplicate {
                    window_start: start,
                    count: count + 1
                }
            );
            Ok((Some((start, window_ttl, count + 1)), false))
        }
        _ => {
            prop_assert_eq!(outcome, DedupOutcome::New { window_start: now });
            Ok((Some((now, ttl, 1)), true))
        }
    }
}

proptest! {
    #[test]
    fn an_occurrence_is_a_duplicate_iff_it_falls_within_its_windows_ttl(
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let dedup = model();
            let a = firing(1);
            let mut open: Open = None;
            let mut now = at(0);
            for step in steps {
                match step {
                    Step::Fire { gap_ms, ttl_secs } => {
                        now = now + Duration::from_millis(gap_ms);
                        let outcome = settled(&dedup, &a, &ttl(ttl_secs), now).await.unwrap();
                        let ttl = Duration::from_secs(ttl_secs);
                        open = expect_occurrence(open, now, ttl, outcome)?.0;
                    }
                    Step::Resolve { gap_ms } => {
                        now = now + Duration::from_millis(gap_ms);
                        let outcome = settled(&dedup, &resolved(1), &ttl(60), now).await.unwrap();
                        prop_assert_eq!(outcome, DedupOutcome::Resolved);
                        open = None;
                    }
                    Step::Release { gap_ms } => {
                        // An occurrence whose remediation could not be written: a first one is
                        // released (never settled); a duplicate has nothing to release.
                        now = now + Duration::from_millis(gap_ms);
                        let outcome = dedup.observe(&a, &ttl(60), now).await.unwrap();
                        let ttl = Duration::from_secs(60);
                        let (after, new) = expect_occurrence(open, now, ttl, outcome)?;
                        open = after;
                        if new {
                            dedup.release(&a.fingerprint, now).await.unwrap();
                            open = None;
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}
