//! The attempt counter and the decision taken after each failed attempt.

use std::time::Duration;

use gateway_ports::{RetrySettings, WriteFailure};

use crate::backoff::{Jitter, base_delay, equal_jitter};
use crate::class::{Class, classify};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then make the next attempt.
    RetryAfter(Duration),
    /// The resource already exists: treat the write as done, do not retry.
    AlreadyDone,
    /// Stop; the write failed.
    GiveUp(GiveUpReason),
}

/// Why the policy stopped retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The failure is not transient; another attempt would fail the same way.
    Permanent,
    /// Every allowed attempt was made and failed transiently.
    Exhausted {
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// Waiting and making another attempt would overrun the time the caller has left (the
    /// sender's webhook timeout): better to answer "not recorded, send again" in time.
    OutOfTime {
        /// Attempts made, the first included.
        attempts: u32,
    },
}

/// The time a write may take, retries included: the caller must answer its sender before the
/// sender gives up, so a retry is only made when the wait plus one more attempt still fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Time already spent on this write (or on the request it belongs to).
    pub elapsed: Duration,
    /// The whole time allowed.
    pub total: Duration,
    /// The longest one attempt can take (its timeout).
    pub attempt: Duration,
}

impl Budget {
    /// Whether waiting `wait` and then making one more attempt ends within the total.
    pub fn allows(&self, wait: Duration) -> bool {
        self.elapsed
            .saturating_add(wait)
            .saturating_add(self.attempt)
            <= self.total
    }
}

/// The retry bookkeeping of one write: how many attempts have been made so far.
///
/// Make an attempt; on failure, report it with [`RetryState::on_failure`] and follow the decision.
///
/// ```
/// use std::time::Duration;
///
/// use gateway_ports::{RetrySettings, WriteFailure};
/// use gateway_retry::{GiveUpReason, RetryDecision, RetryState, SplitMix64};
///
/// let settings = RetrySettings::default(); // 3 attempts, 100ms doubling up to 5s
/// let mut jitter = SplitMix64::new(7);
/// let mut state = RetryState::new();
/// let mut waits = Vec::new();
/// let outcome = loop {
///     // … attempt the write here; say it keeps timing out:
///     match state.on_failure(&WriteFailure::Timeout, &settings, &mut jitter) {
///         RetryDecision::RetryAfter(wait) => waits.push(wait), // sleep `wait`, then go again
///         other => break other,
///     }
/// };
/// assert_eq!(waits.len(), 2);
/// assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
/// assert_eq!(outcome, RetryDecision::GiveUp(GiveUpReason::Exhausted { attempts: 3 }));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryState {
    attempts: u32,
}

impl RetryState {
    /// The state before the first attempt.
    pub const fn new() -> Self {
        RetryState { attempts: 0 }
    }

    /// Attempts made so far (each reported through [`RetryState::on_failure`]).
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records one failed attempt and decides what comes next.
    ///
    /// `settings` are the ones in force now: a reload between attempts applies from this
    /// decision on (a lowered `max_attempts` already reached ends the retries at once). A
    /// `Retry-After` replaces the backoff, capped at `max_backoff` and not jittered, since the
    /// server already chose when it can serve us.
    pub fn on_failure(
        &mut self,
        failure: &WriteFailure,
        settings: &RetrySettings,
        jitter: &mut dyn Jitter,
    ) -> RetryDecision {
        self.attempts = self.attempts.saturating_add(1);
        match classify(failure) {
            Class::AlreadyExists => RetryDecision::AlreadyDone,
            Class::Permanent => RetryDecision::GiveUp(GiveUpReason::Permanent),
            Class::Retryable { .. } if self.attempts >= settings.max_attempts => {
                RetryDecision::GiveUp(GiveUpReason::Exhausted {
                    attempts: self.attempts,
                })
            }
            Class::Retryable {
                retry_after: Some(wait),
            } => RetryDecision::RetryAfter(wait.min(settings.max_backoff)),
            Class::Retryable { retry_after: None } => RetryDecision::RetryAfter(equal_jitter(
                base_delay(settings, self.attempts),
                jitter.next_unit(),
            )),
        }
    }

    /// [`RetryState::on_failure`] under a time [`Budget`]: a retry whose wait plus one more
    /// attempt would not end within the budget becomes
    /// [`GiveUp(OutOfTime)`](GiveUpReason::OutOfTime).
    pub fn on_failure_within(
        &mut self,
        failure: &WriteFailure,
        settings: &RetrySettings,
        jitter: &mut dyn Jitter,
        budget: &Budget,
    ) -> RetryDecision {
        match self.on_failure(failure, settings, jitter) {
            RetryDecision::RetryAfter(wait) if !budget.allows(wait) => {
                RetryDecision::GiveUp(GiveUpReason::OutOfTime {
                    attempts: self.attempts,
                })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gateway_ports::test_util::retry_settings;
    use gateway_ports::{ConfigSource, MockConfigSource, Rejection};
    use mockall::Sequence;
    use proptest::prelude::*;

    use super::*;
    use crate::backoff::SplitMix64;

    /// Always answers the same number, so tests can predict the jitter exactly.
    struct FixedJitter(f64);

    impl Jitter for FixedJitter {
        fn next_unit(&mut self) -> f64 {
            self.0
        }
    }

    fn settings(max_attempts: u32, initial_ms: u64, max_ms: u64) -> RetrySettings {
        retry_settings()
            .max_attempts(max_attempts)
            .initial_backoff(Duration::from_millis(initial_ms))
            .max_backoff(Duration::from_millis(max_ms))
            .build()
    }

    const UNAVAILABLE: WriteFailure = WriteFailure::Unavailable { retry_after: None };

    fn ms(n: u64) -> RetryDecision {
        RetryDecision::RetryAfter(Duration::from_millis(n))
    }

    #[test]
    fn a_retry_that_would_overrun_the_budget_gives_up_in_time() {
        let settings = settings(10, 1000, 4000);
        let mut state = RetryState::new();
        let mut jitter = FixedJitter(1.0);
        let budget = |elapsed_ms| Budget {
            elapsed: Duration::from_millis(elapsed_ms),
            total: Duration::from_millis(8000),
            attempt: Duration::from_millis(2000),
        };
        // 1 s wait + 2 s attempt after 2 s spent: 5 s ≤ 8 s.
        assert_eq!(
            state.on_failure_within(&UNAVAILABLE, &settings, &mut jitter, &budget(2000)),
            ms(1000)
        );
        // 2 s wait + 2 s attempt after 5 s spent: 9 s > 8 s.
        assert_eq!(
            state.on_failure_within(&UNAVAILABLE, &settings, &mut jitter, &budget(5000)),
            RetryDecision::GiveUp(GiveUpReason::OutOfTime { attempts: 2 })
        );
        // A permanent failure stays permanent whatever the budget.
        let mut state = RetryState::new();
        let forbidden = WriteFailure::Rejected {
            reason: Rejection::Forbidden,
        };
        assert_eq!(
            state.on_failure_within(&forbidden, &settings, &mut jitter, &budget(0)),
            RetryDecision::GiveUp(GiveUpReason::Permanent)
        );
    }

    #[test]
    fn a_transient_failure_is_retried_after_the_jittered_backoff() {
        let s = settings(5, 100, 5_000);
        let mut state = RetryState::new();
        let mut top = FixedJitter(1.0);
        assert_eq!(state.on_failure(&UNAVAILABLE, &s, &mut top), ms(100));
        assert_eq!(state.on_failure(&UNAVAILABLE, &s, &mut top), ms(200));
        let mut bottom = FixedJitter(0.0);
        assert_eq!(state.on_failure(&UNAVAILABLE, &s, &mut bottom), ms(200));
        assert_eq!(state.attempts(), 3);
    }

    #[test]
    fn every_retryable_kind_of_failure_is_retried() {
        let s = settings(2, 100, 5_000);
        for failure in [
            WriteFailure::Throttled { retry_after: None },
            WriteFailure::Unavailable { retry_after: None },
            WriteFailure::Unavailable { retry_after: None },
            UNAVAILABLE,
            WriteFailure::Unavailable { retry_after: None },
            WriteFailure::Timeout,
            WriteFailure::Connection,
            WriteFailure::Conflict,
        ] {
            let decision = RetryState::new().on_failure(&failure, &s, &mut FixedJitter(1.0));
            assert_eq!(decision, ms(100), "{failure:?}");
        }
    }

    #[test]
    fn already_exists_ends_the_write_as_done_not_as_an_error() {
        let mut state = RetryState::new();
        let exists = WriteFailure::AlreadyExists;
        let decision = state.on_failure(&exists, &settings(3, 100, 5_000), &mut FixedJitter(0.5));
        assert_eq!(decision, RetryDecision::AlreadyDone);
    }

    #[test]
    fn already_exists_is_done_even_on_the_last_allowed_attempt() {
        let s = settings(2, 100, 5_000);
        let mut state = RetryState::new();
        let exists = WriteFailure::AlreadyExists;
        state.on_failure(&UNAVAILABLE, &s, &mut FixedJitter(0.5));
        assert_eq!(
            state.on_failure(&exists, &s, &mut FixedJitter(0.5)),
            RetryDecision::AlreadyDone
        );
    }

    #[test]
    fn a_permanent_failure_gives_up_at_once() {
        for failure in [
            WriteFailure::Rejected {
                reason: Rejection::Invalid,
            },
            WriteFailure::Rejected {
                reason: Rejection::Unauthorized,
            },
            WriteFailure::Rejected {
                reason: Rejection::Forbidden,
            },
            WriteFailure::NotFound,
            WriteFailure::Rejected {
                reason: Rejection::Unsupported,
            },
        ] {
            let mut state = RetryState::new();
            let decision =
                state.on_failure(&failure, &settings(3, 100, 5_000), &mut FixedJitter(0.5));
            assert_eq!(
                decision,
                RetryDecision::GiveUp(GiveUpReason::Permanent),
                "{failure:?}"
            );
            assert_eq!(state.attempts(), 1);
        }
    }

    #[test]
    fn retries_are_exhausted_exactly_at_max_attempts() {
        let s = settings(3, 100, 5_000);
        let mut state = RetryState::new();
        let mut jitter = SplitMix64::new(0x5EED);
        assert!(matches!(
            state.on_failure(&UNAVAILABLE, &s, &mut jitter),
            RetryDecision::RetryAfter(_)
        ));
        assert!(matches!(
            state.on_failure(&UNAVAILABLE, &s, &mut jitter),
            RetryDecision::RetryAfter(_)
        ));
        assert_eq!(
            state.on_failure(&UNAVAILABLE, &s, &mut jitter),
            RetryDecision::GiveUp(GiveUpReason::Exhausted { attempts: 3 })
        );
    }

    #[test]
    fn a_single_allowed_attempt_is_never_retried() {
        let mut state = RetryState::new();
        assert_eq!(
            state.on_failure(
                &WriteFailure::Timeout,
                &settings(1, 100, 5_000),
                &mut FixedJitter(0.5)
            ),
            RetryDecision::GiveUp(GiveUpReason::Exhausted { attempts: 1 })
        );
    }

    #[test]
    fn retry_after_replaces_the_backoff_without_jitter() {
        let throttled = WriteFailure::Throttled {
            retry_after: Some(Duration::from_secs(2)),
        };
        let mut state = RetryState::new();
        assert_eq!(
            state.on_failure(&throttled, &settings(3, 100, 5_000), &mut FixedJitter(0.0)),
            ms(2_000)
        );
    }

    #[test]
    fn retry_after_is_capped_at_max_backoff() {
        let throttled = WriteFailure::Unavailable {
            retry_after: Some(Duration::from_secs(120)),
        };
        let mut state = RetryState::new();
        assert_eq!(
            state.on_failure(&throttled, &settings(3, 100, 5_000), &mut FixedJitter(0.0)),
            ms(5_000)
        );
    }

    #[test]
    fn retry_after_does_not_buy_an_attempt_beyond_max_attempts() {
        let throttled = WriteFailure::Throttled {
            retry_after: Some(Duration::from_secs(1)),
        };
        let s = settings(2, 100, 5_000);
        let mut state = RetryState::new();
        state.on_failure(&throttled, &s, &mut FixedJitter(0.0));
        assert_eq!(
            state.on_failure(&throttled, &s, &mut FixedJitter(0.0)),
            RetryDecision::GiveUp(GiveUpReason::Exhausted { attempts: 2 })
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let s = settings(10, 100, 60_000);
        let run = |seed| {
            let mut state = RetryState::new();
            let mut jitter = SplitMix64::new(seed);
            (0..9)
                .map(|_| state.on_failure(&UNAVAILABLE, &s, &mut jitter))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    /// Reads the settings from the config source before each decision, as the app does.
    fn fail_once(state: &mut RetryState, config: &dyn ConfigSource) -> RetryDecision {
        state.on_failure(&UNAVAILABLE, &config.retry(), &mut FixedJitter(1.0))
    }

    #[test]
    fn a_settings_reload_between_attempts_applies_to_the_next_decision() {
        let mut config = MockConfigSource::new();
        let mut order = Sequence::new();
        for s in [settings(5, 100, 5_000), settings(5, 1_000, 1_500)] {
            config
                .expect_retry()
                .times(1)
                .in_sequence(&mut order)
                .return_const(Arc::new(s));
        }
        let mut state = RetryState::new();
        assert_eq!(fail_once(&mut state, &config), ms(100));
        // Retry 2 under the new settings: 1000 ms · 2, capped at the new 1500 ms.
        assert_eq!(fail_once(&mut state, &config), ms(1_500));
    }

    #[test]
    fn lowering_max_attempts_below_the_attempts_made_stops_at_once() {
        let mut config = MockConfigSource::new();
        let mut order = Sequence::new();
        config
            .expect_retry()
            .times(2)
            .in_sequence(&mut order)
            .return_const(Arc::new(settings(10, 100, 5_000)));
        config
            .expect_retry()
            .times(1)
            .in_sequence(&mut order)
            .return_const(Arc::new(settings(2, 100, 5_000)));
        let mut state = RetryState::new();
        assert_eq!(fail_once(&mut state, &config), ms(100));
        assert_eq!(fail_once(&mut state, &config), ms(200));
        assert_eq!(
            fail_once(&mut state, &config),
            RetryDecision::GiveUp(GiveUpReason::Exhausted { attempts: 3 })
        );
    }

    #[test]
    fn raising_max_attempts_mid_write_allows_more_retries() {
        let mut config = MockConfigSource::new();
        let mut order = Sequence::new();
        config
            .expect_retry()
            .times(1)
            .in_sequence(&mut order)
            .return_const(Arc::new(settings(2, 100, 5_000)));
        config
            .expect_retry()
            .times(1)
            .in_sequence(&mut order)
            .return_const(Arc::new(settings(4, 100, 5_000)));
        let mut state = RetryState::new();
        assert_eq!(fail_once(&mut state, &config), ms(100));
        assert_eq!(fail_once(&mut state, &config), ms(200));
    }

    fn valid_settings() -> impl Strategy<Value = RetrySettings> {
        (1..=RetrySettings::MAX_ATTEMPTS, 1u64..10_000, 0u64..100_000).prop_map(
            |(max_attempts, initial, extra)| settings(max_attempts, initial, initial + extra),
        )
    }

    proptest! {
        #[test]
        fn an_always_retryable_failure_is_retried_exactly_max_attempts_minus_one_times(
            s in valid_settings(),
            seed in any::<u64>(),
            retry_after in proptest::option::of(0u64..200_000),
        ) {
            let failure = WriteFailure::Unavailable { retry_after: retry_after.map(Duration::from_millis) };
            let mut state = RetryState::new();
            let mut jitter = SplitMix64::new(seed);
            let mut retries = 0;
            let reason = loop {
                match state.on_failure(&failure, &s, &mut jitter) {
                    RetryDecision::RetryAfter(d) => {
                        prop_assert!(d <= s.max_backoff);
                        retries += 1;
                        prop_assert!(retries < s.max_attempts, "retried past max_attempts");
                    }
                    RetryDecision::GiveUp(reason) => break reason,
                    RetryDecision::AlreadyDone => prop_assert!(false, "503 is not a conflict"),
                }
            };
            prop_assert_eq!(retries, s.max_attempts - 1);
            prop_assert_eq!(reason, GiveUpReason::Exhausted { attempts: s.max_attempts });
            prop_assert_eq!(state.attempts(), s.max_attempts);
        }

        #[test]
        fn every_jittered_retry_waits_between_half_and_all_of_its_base(
            s in valid_settings(),
            seed in any::<u64>(),
        ) {
            let mut state = RetryState::new();
            let mut jitter = SplitMix64::new(seed);
            while let RetryDecision::RetryAfter(d) = state.on_failure(&UNAVAILABLE, &s, &mut jitter) {
                let base = base_delay(&s, state.attempts());
                prop_assert!(d >= base / 2 && d <= base);
            }
        }
    }
}
