//! How long to wait before a retry: exponential backoff with equal jitter.

use std::time::Duration;

use gateway_ports::RetrySettings;

/// A source of uniformly distributed numbers in `[0, 1)`, used to spread retries out.
///
/// The gateway seeds one from its clock; tests seed one with a constant so delays are
/// reproducible.
pub trait Jitter {
    /// The next number, in `[0, 1)`.
    fn next_unit(&mut self) -> f64;
}

/// The SplitMix64 generator: tiny, fast and deterministic for a given seed.
///
/// Not cryptographic, nor meant to be: it only has to keep replicas from retrying in lockstep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Jitter for SplitMix64 {
    fn next_unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly, so every value is < 1.
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }
}

/// The un-jittered wait before retry `retry` (`retry` ≥ 1: the wait after the `retry`-th failed
/// attempt): `initial_backoff · 2^(retry-1)`, capped at `max_backoff`.
///
/// Saturates instead of overflowing for any `retry`; `0` is treated as `1`.
pub fn base_delay(settings: &RetrySettings, retry: u32) -> Duration {
    let max = settings.max_backoff;
    let mut delay = settings.initial_backoff.min(max);
    // Doubling stops at the cap (or at zero, which never grows), so this runs at most ~95 times
    // even for `retry == u32::MAX`.
    for _ in 1..retry {
        if delay >= max || delay.is_zero() {
            break;
        }
        delay = delay.saturating_mul(2).min(max);
    }
    delay
}

/// "Equal jitter": half of `base` fixed, the other half scaled by `unit`, so the result lies in
/// `[base / 2, base]`.
///
/// The fixed half keeps a retry from firing almost at once; the random half de-synchronises
/// replicas. A `unit` outside `[0, 1]` (a faulty [`Jitter`]) is clamped, so the result never
/// exceeds `base`.
pub fn equal_jitter(base: Duration, unit: f64) -> Duration {
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    let fixed = base / 2;
    let span = base.saturating_sub(fixed);
    // Float rounding can land a few nanoseconds past `span`; the `min` keeps `base` a hard bound.
    let random = Duration::try_from_secs_f64(span.as_secs_f64() * unit)
        .unwrap_or(span)
        .min(span);
    fixed.saturating_add(random)
}

#[cfg(test)]
mod tests {
    use gateway_ports::test_util::retry_settings;
    use proptest::prelude::*;

    use super::*;

    fn settings(initial: Duration, max: Duration) -> RetrySettings {
        retry_settings()
            .max_attempts(3)
            .initial_backoff(initial)
            .max_backoff(max)
            .build()
    }

    #[test]
    fn the_delay_doubles_from_initial_backoff() {
        let s = settings(Duration::from_millis(100), Duration::from_secs(5));
        let delays: Vec<_> = (1..=5).map(|n| base_delay(&s, n)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600].map(Duration::from_millis)
        );
    }

    #[test]
    fn the_delay_is_capped_at_max_backoff() {
        let s = settings(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(base_delay(&s, 6), Duration::from_millis(3200));
        assert_eq!(base_delay(&s, 7), Duration::from_secs(5));
        assert_eq!(base_delay(&s, 20), Duration::from_secs(5));
    }

    #[test]
    fn huge_retry_numbers_saturate_instead_of_overflowing() {
        // Past what `validate` accepts: base_delay saturates whatever settings it is given.
        let s = RetrySettings {
            max_attempts: 3,
            initial_backoff: Duration::from_nanos(1),
            max_backoff: Duration::MAX,
        };
        assert_eq!(base_delay(&s, u32::MAX), Duration::MAX);
        assert_eq!(base_delay(&s, 64), Duration::from_nanos(1 << 63));
    }

    #[test]
    fn retry_zero_waits_like_the_first_retry() {
        let s = settings(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(base_delay(&s, 0), base_delay(&s, 1));
    }

    #[test]
    fn equal_jitter_spans_the_upper_half_of_the_base() {
        let base = Duration::from_millis(1000);
        assert_eq!(equal_jitter(base, 0.0), Duration::from_millis(500));
        assert_eq!(equal_jitter(base, 0.5), Duration::from_millis(750));
        assert_eq!(equal_jitter(base, 1.0), base);
    }

    #[test]
    fn a_faulty_jitter_value_cannot_push_the_delay_out_of_bounds() {
        let base = Duration::from_millis(1000);
        assert_eq!(equal_jitter(base, 7.0), base);
        assert_eq!(equal_jitter(base, -1.0), Duration::from_millis(500));
        assert_eq!(equal_jitter(base, f64::NAN), Duration::from_millis(500));
        assert_eq!(equal_jitter(Duration::MAX, 1.0), Duration::MAX);
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        let mut g = SplitMix64::new(0);
        let first: Vec<u64> = (0..3).map(|_| g.next_u64()).collect();
        assert_eq!(
            first,
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F
            ]
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_jitter() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let mut c = SplitMix64::new(43);
        let xs: Vec<f64> = (0..16).map(|_| a.next_unit()).collect();
        let ys: Vec<f64> = (0..16).map(|_| b.next_unit()).collect();
        let zs: Vec<f64> = (0..16).map(|_| c.next_unit()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    fn valid_settings() -> impl Strategy<Value = RetrySettings> {
        (
            1..=RetrySettings::MAX_ATTEMPTS,
            1u64..10_000_000_000,
            0u64..100_000_000_000,
        )
            .prop_map(|(max_attempts, initial, extra)| {
                retry_settings()
                    .max_attempts(max_attempts)
                    .initial_backoff(Duration::from_nanos(initial))
                    .max_backoff(Duration::from_nanos(initial + extra))
                    .build()
            })
    }

    proptest! {
        #[test]
        fn base_delay_stays_between_initial_and_max_backoff(
            s in valid_settings(),
            n in any::<u32>(),
        ) {
            let d = base_delay(&s, n);
            prop_assert!(d <= s.max_backoff);
            prop_assert!(d >= s.initial_backoff.min(s.max_backoff));
        }

        #[test]
        fn base_delay_never_shrinks_as_retries_go_on(s in valid_settings(), n in 1u32..200) {
            prop_assert!(base_delay(&s, n) <= base_delay(&s, n + 1));
        }

        #[test]
        fn the_jittered_delay_lies_in_the_upper_half_of_the_base(
            base_nanos in any::<u64>(),
            base_secs in 0u64..1_000_000,
            seed in any::<u64>(),
        ) {
            let base = Duration::from_secs(base_secs) + Duration::from_nanos(base_nanos);
            let mut jitter = SplitMix64::new(seed);
            for _ in 0..8 {
                let unit = jitter.next_unit();
                prop_assert!((0.0..1.0).contains(&unit));
                let d = equal_jitter(base, unit);
                prop_assert!(d >= base / 2 && d <= base, "{d:?} for base {base:?}");
            }
        }
    }
}
