//! The hot-reloadable operational settings: storm detection, deduplication TTL, retry, and the
//! namespaces signals may target.
//!
//! Each settings type has exactly the keys of the gateway's ConfigMap files (`storm.yaml`,
//! `dedup.yaml`, `retry.yaml`, `security.yaml`). Durations are written the human way (`100ms`,
//! `60s`, `5m`).
//!
//! A settings value is valid by construction: it is built from its `Raw…` twin (what a file says,
//! every key optional, unknown keys rejected) by `validate`, which reports **every** problem with
//! the key it concerns, so an operator fixes a file in one round trip.
//!
//! Every value has an upper bound as well as a lower one (a named constant each:
//! [`Threshold::MAX`], [`StormSettings::MAX_WINDOW`], [`Ttl::MAX`], [`RetrySettings::MAX_ATTEMPTS`],
//! [`RetrySettings::MAX_BACKOFF`], [`NamespaceGlobs::MAX_PATTERNS`], [`NamespaceGlob::MAX_LEN`]).
//! The bounds are far above any sensible setting and far below anything that could overflow: a
//! timestamp plus any valid duration, doubled and summed as the domain does, stays a few hours
//! from the instant it started at, so no reload can make the
//! arithmetic on settings overflow, saturate into nonsense, or leave the representable calendar.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod security;

pub use security::{NamespaceGlob, NamespaceGlobs, RawSecuritySettings, SecuritySettings};

/// A count threshold, between 1 and [`Threshold::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u32);

impl Threshold {
    /// The largest threshold accepted: a million signals (or resources) of one alert name is
    /// already "never" for a storm, and the counts compared with it stay far from overflowing.
    pub const MAX: u32 = 1_000_000;

    /// `Some` when `1 ≤ n ≤ MAX`.
    pub const fn new(n: u32) -> Option<Self> {
        if n >= 1 && n <= Self::MAX {
            Some(Threshold(n))
        } else {
            None
        }
    }
    /// The threshold as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A ratio in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Ratio(f64);

impl Ratio {
    /// `Some` when `0 < r ≤ 1`.
    pub fn new(r: f64) -> Option<Self> {
        if r > 0.0 && r <= 1.0 {
            Some(Ratio(r))
        } else {
            None
        }
    }
    /// The ratio as a number.
    pub const fn get(self) -> f64 {
        self.0
    }
}

/// A deduplication window, between [`Ttl::MIN`] and [`Ttl::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(Duration);

impl Ttl {
    /// The shortest TTL accepted.
    pub const MIN: Duration = Duration::from_secs(1);
    /// The longest TTL accepted: seven days. An alert still firing after a week deserves a new
    /// RemediationRequest, and every store keeps a key no longer than this.
    pub const MAX: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    /// `Some` when `MIN ≤ d ≤ MAX`.
    pub const fn new(d: Duration) -> Option<Self> {
        if d.as_millis() >= Self::MIN.as_millis() && d.as_millis() <= Self::MAX.as_millis() {
            Some(Ttl(d))
        } else {
            None
        }
    }
    /// The TTL as a duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

/// One problem found in a settings file: the key it concerns and why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingError {
    /// The key, as written in the file (`rate_threshold`).
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Every problem found while validating one settings type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSettings {
    /// The problems, in key order of the file format; never empty.
    pub errors: Vec<SettingError>,
}

impl fmt::Display for InvalidSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Default)]
struct Problems(Vec<SettingError>);

impl Problems {
    fn push(&mut self, key: &str, reason: impl Into<String>) {
        self.0.push(SettingError {
            key: key.to_owned(),
            reason: reason.into(),
        });
    }
    fn threshold(&mut self, key: &str, n: u32) -> Threshold {
        Threshold::new(n).unwrap_or_else(|| {
            if n == 0 {
                self.push(key, format!("must be at least 1, got {n}"));
            } else {
                self.push(key, format!("must be at most {}, got {n}", Threshold::MAX));
            }
            Threshold(1)
        })
    }
    /// Reports `d` when it exceeds `max`; `key` names it.
    fn at_most(&mut self, key: &str, d: Duration, max: Duration) {
        if d > max {
            self.push(
                key,
                format!(
                    "must be at most {}, got {}",
                    humantime::format_duration(max),
                    humantime::format_duration(d)
                ),
            );
        }
    }
    fn ratio(&mut self, key: &str, r: f64) -> Ratio {
        Ratio::new(r).unwrap_or_else(|| {
            self.push(
                key,
                format!("must be greater than 0 and at most 1, got {r}"),
            );
            Ratio(1.0)
        })
    }
    fn finish<T>(self, value: T) -> Result<T, InvalidSettings> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(InvalidSettings { errors: self.0 })
        }
    }
}

/// Serde helpers for durations written as `100ms`, `60s`, `5m`, `1h 30m`.
pub mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes as humantime text (`5m`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Deserializes humantime text; a bare number is rejected because its unit would be a guess.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            D::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it with a unit, like 100ms, 60s or 5m"
            ))
        })
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Serializes `Some` as humantime text, `None` as null.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Deserializes humantime text.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] Duration);
            Option::<Wrap>::deserialize(d).map(|w| w.map(|Wrap(d)| d))
        }
    }
}

/// Storm detection and aggregation settings (`storm.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct StormSettings {
    /// A rate storm: more than this many signals of one alert name within one minute.
    /// Every threshold lies in 1 ..= [`Threshold::MAX`].
    pub rate_threshold: Threshold,
    /// A pattern storm: more than this many distinct resources hit by one alert name within two minutes.
    pub pattern_threshold: Threshold,
    /// Buffered resources at which one aggregated RemediationRequest is created.
    pub buffer_threshold: Threshold,
    /// A window (or buffer) that receives no signal for this long closes (or is flushed);
    /// greater than zero, at most [`StormSettings::MAX_WINDOW`].
    pub inactivity_timeout: Duration,
    /// No window lives longer than this, however active; at least `inactivity_timeout`, at most
    /// [`StormSettings::MAX_WINDOW`].
    pub max_window_duration: Duration,
    /// Fill ratio of a window's capacity past which storm signals are sampled.
    pub sampling_threshold: Ratio,
    /// Fraction of storm signals kept once sampling is on; the others are counted, not stored.
    pub sampling_rate: Ratio,
}

/// `storm.yaml` as written: every key optional (defaults fill the gaps), unknown keys rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStormSettings {
    pub rate_threshold: u32,
    pub pattern_threshold: u32,
    pub buffer_threshold: u32,
    #[serde(with = "human_duration")]
    pub inactivity_timeout: Duration,
    #[serde(with = "human_duration")]
    pub max_window_duration: Duration,
    pub sampling_threshold: f64,
    pub sampling_rate: f64,
}

impl Default for RawStormSettings {
    fn default() -> Self {
        RawStormSettings {
            rate_threshold: 10,
            pattern_threshold: 5,
            buffer_threshold: 5,
            inactivity_timeout: Duration::from_secs(60),
            max_window_duration: Duration::from_secs(5 * 60),
            sampling_threshold: 0.95,
            sampling_rate: 0.5,
        }
    }
}

impl RawStormSettings {
    /// Checks every key; returns all problems at once.
    pub fn validate(&self) -> Result<StormSettings, InvalidSettings> {
        let mut p = Problems::default();
        let settings = StormSettings {
            rate_threshold: p.threshold("rate_threshold", self.rate_threshold),
            pattern_threshold: p.threshold("pattern_threshold", self.pattern_threshold),
            buffer_threshold: p.threshold("buffer_threshold", self.buffer_threshold),
            inactivity_timeout: self.inactivity_timeout,
            max_window_duration: self.max_window_duration,
            sampling_threshold: p.ratio("sampling_threshold", self.sampling_threshold),
            sampling_rate: p.ratio("sampling_rate", self.sampling_rate),
        };
        if self.inactivity_timeout.is_zero() {
            p.push("inactivity_timeout", "must be greater than 0");
        }
        p.at_most(
            "inactivity_timeout",
            self.inactivity_timeout,
            StormSettings::MAX_WINDOW,
        );
        p.at_most(
            "max_window_duration",
            self.max_window_duration,
            StormSettings::MAX_WINDOW,
        );
        if self.max_window_duration < self.inactivity_timeout {
            p.push(
                "max_window_duration",
                format!(
                    "must be at least inactivity_timeout ({}), got {}",
                    humantime::format_duration(self.inactivity_timeout),
                    humantime::format_duration(self.max_window_duration)
                ),
            );
        }
        // Keep the file's key order: the cross-key checks above were pushed last.
        p.0.sort_by_key(|e| Self::KEYS.iter().position(|k| *k == e.key));
        p.finish(settings)
    }

    /// The keys of `storm.yaml`, in file order.
    pub const KEYS: [&'static str; 7] = [
        "rate_threshold",
        "pattern_threshold",
        "buffer_threshold",
        "inactivity_timeout",
        "max_window_duration",
        "sampling_threshold",
        "sampling_rate",
    ];
}

impl From<&StormSettings> for RawStormSettings {
    fn from(s: &StormSettings) -> Self {
        RawStormSettings {
            rate_threshold: s.rate_threshold.get(),
            pattern_threshold: s.pattern_threshold.get(),
            buffer_threshold: s.buffer_threshold.get(),
            inactivity_timeout: s.inactivity_timeout,
            max_window_duration: s.max_window_duration,
            sampling_threshold: s.sampling_threshold.get(),
            sampling_rate: s.sampling_rate.get(),
        }
    }
}

impl StormSettings {
    /// The longest `inactivity_timeout` and `max_window_duration` accepted: one hour. A storm
    /// aggregate is written when its window closes; a window held open longer would keep its
    /// RemediationRequest from being complete for too long.
    pub const MAX_WINDOW: Duration = Duration::from_secs(60 * 60);
}

impl Default for StormSettings {
    fn default() -> Self {
        RawStormSettings::default()
            .validate()
            .expect("the built-in storm defaults are valid")
    }
}

/// Deduplication settings (`dedup.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct DedupSettings {
    /// How long after its first occurrence a fingerprint counts as a duplicate.
    pub ttl: Ttl,
}

/// `dedup.yaml` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDedupSettings {
    #[serde(with = "human_duration")]
    pub ttl: Duration,
}

impl Default for RawDedupSettings {
    fn default() -> Self {
        RawDedupSettings {
            ttl: Duration::from_secs(5 * 60),
        }
    }
}

impl RawDedupSettings {
    /// Checks every key; returns all problems at once.
    pub fn validate(&self) -> Result<DedupSettings, InvalidSettings> {
        let mut p = Problems::default();
        let ttl = Ttl::new(self.ttl).unwrap_or_else(|| {
            if self.ttl < Ttl::MIN {
                p.push(
                    "ttl",
                    format!(
                        "must be at least 1s, got {}",
                        humantime::format_duration(self.ttl)
                    ),
                );
            } else {
                p.at_most("ttl", self.ttl, Ttl::MAX);
            }
            Ttl(Ttl::MIN)
        });
        p.finish(DedupSettings { ttl })
    }
}

impl From<&DedupSettings> for RawDedupSettings {
    fn from(s: &DedupSettings) -> Self {
        RawDedupSettings { ttl: s.ttl.get() }
    }
}

impl Default for DedupSettings {
    fn default() -> Self {
        RawDedupSettings::default()
            .validate()
            .expect("the built-in dedup defaults are valid")
    }
}

/// Retry settings for Kubernetes API writes (`retry.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Attempts in all, the first included: 1 ≤ n ≤ [`RetrySettings::MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// The delay before the second attempt; it doubles each time. Greater than zero, at most
    /// [`RetrySettings::MAX_BACKOFF`].
    pub initial_backoff: Duration,
    /// The longest delay between two attempts (also caps `Retry-After`); at least
    /// `initial_backoff`, at most [`RetrySettings::MAX_BACKOFF`].
    pub max_backoff: Duration,
}

impl RetrySettings {
    /// The most attempts a configuration may ask for.
    pub const MAX_ATTEMPTS: u32 = 20;
    /// The longest `initial_backoff` and `max_backoff` accepted: five minutes. A wait longer
    /// than that outlives any request's write deadline, and `Retry-After` is capped by it.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
}

/// `retry.yaml` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRetrySettings {
    pub max_attempts: u32,
    #[serde(with = "human_duration")]
    pub initial_backoff: Duration,
    #[serde(with = "human_duration")]
    pub max_backoff: Duration,
}

impl Default for RawRetrySettings {
    fn default() -> Self {
        RawRetrySettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RawRetrySettings {
    /// Checks every key; returns all problems at once.
    pub fn validate(&self) -> Result<RetrySettings, InvalidSettings> {
        let mut p = Problems::default();
        if !(1..=RetrySettings::MAX_ATTEMPTS).contains(&self.max_attempts) {
            p.push(
                "max_attempts",
                format!(
                    "must be between 1 and {}, got {}",
                    RetrySettings::MAX_ATTEMPTS,
                    self.max_attempts
                ),
            );
        }
        if self.initial_backoff.is_zero() {
            p.push("initial_backoff", "must be greater than 0");
        }
        p.at_most(
            "initial_backoff",
            self.initial_backoff,
            RetrySettings::MAX_BACKOFF,
        );
        p.at_most("max_backoff", self.max_backoff, RetrySettings::MAX_BACKOFF);
        if self.initial_backoff > self.max_backoff {
            p.push(
                "max_backoff",
                format!(
                    "must be at least initial_backoff ({}), got {}",
                    humantime::format_duration(self.initial_backoff),
                    humantime::format_duration(self.max_backoff)
                ),
            );
        }
        p.finish(RetrySettings {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        })
    }
}

impl From<&RetrySettings> for RawRetrySettings {
    fn from(s: &RetrySettings) -> Self {
        RawRetrySettings {
            max_attempts: s.max_attempts,
            initial_backoff: s.initial_backoff,
            max_backoff: s.max_backoff,
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        RawRetrySettings::default()
            .validate()
            .expect("the built-in retry defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn keys(e: &InvalidSettings) -> Vec<&str> {
        e.errors.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn defaults_are_the_seed_values() {
        let s = StormSettings::default();
        assert_eq!(s.rate_threshold.get(), 10);
        assert_eq!(s.pattern_threshold.get(), 5);
        assert_eq!(s.buffer_threshold.get(), 5);
        assert_eq!(s.inactivity_timeout, Duration::from_secs(60));
        assert_eq!(s.max_window_duration, Duration::from_secs(300));
        assert_eq!(s.sampling_threshold.get(), 0.95);
        assert_eq!(s.sampling_rate.get(), 0.5);
        assert_eq!(DedupSettings::default().ttl.get(), Duration::from_secs(300));
        let r = RetrySettings::default();
        assert_eq!(
            (r.max_attempts, r.initial_backoff, r.max_backoff),
            (3, Duration::from_millis(100), Duration::from_secs(5))
        );
    }

    #[test]
    fn storm_validation_reports_every_problem_with_its_key() {
        let raw = RawStormSettings {
            rate_threshold: 0,
            pattern_threshold: 0,
            buffer_threshold: 0,
            inactivity_timeout: Duration::from_secs(120),
            max_window_duration: Duration::from_secs(60),
            sampling_threshold: 0.0,
            sampling_rate: 1.5,
        };
        let err = raw.validate().unwrap_err();
        assert_eq!(
            keys(&err),
            [
                "rate_threshold",
                "pattern_threshold",
                "buffer_threshold",
                "max_window_duration",
                "sampling_threshold",
                "sampling_rate"
            ]
        );
        assert!(
            err.to_string()
                .contains("must be at least inactivity_timeout (2m), got 1m")
        );
    }

    #[test]
    fn ratio_of_exactly_one_is_valid_and_zero_is_not() {
        assert!(Ratio::new(1.0).is_some());
        assert!(Ratio::new(0.0).is_none());
        assert!(Ratio::new(f64::NAN).is_none());
    }

    #[test]
    fn dedup_ttl_below_one_second_is_rejected() {
        let err = RawDedupSettings {
            ttl: Duration::from_millis(999),
        }
        .validate()
        .unwrap_err();
        assert_eq!(keys(&err), ["ttl"]);
        assert!(
            RawDedupSettings {
                ttl: Duration::from_secs(1)
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn retry_validation_reports_every_problem() {
        let raw = RawRetrySettings {
            max_attempts: 21,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        };
        assert_eq!(
            keys(&raw.validate().unwrap_err()),
            ["max_attempts", "initial_backoff"]
        );
        let raw = RawRetrySettings {
            max_attempts: 0,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(
            keys(&raw.validate().unwrap_err()),
            ["max_attempts", "max_backoff"]
        );
    }

    #[test]
    fn durations_are_written_with_units() {
        let raw: RawRetrySettings =
            serde_json::from_str(r#"{"initial_backoff":"250ms","max_backoff":"1m"}"#).unwrap();
        assert_eq!(raw.initial_backoff, Duration::from_millis(250));
        assert_eq!(raw.max_backoff, Duration::from_secs(60));
        assert_eq!(raw.max_attempts, 3, "missing keys take the defaults");
        let err = serde_json::from_str::<RawDedupSettings>(r#"{"ttl":"5"}"#).unwrap_err();
        assert!(err.to_string().contains("write it with a unit"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected_so_typos_are_not_silently_ignored() {
        let err = serde_json::from_str::<RawStormSettings>(r#"{"rate_treshold":3}"#).unwrap_err();
        assert!(err.to_string().contains("rate_treshold"), "{err}");
    }

    /// The one error of `result`, as `key: reason`.
    pub(super) fn only_error<T: fmt::Debug>(result: Result<T, InvalidSettings>) -> String {
        let err = result.unwrap_err();
        assert_eq!(err.errors.len(), 1, "{err}");
        err.to_string()
    }

    #[test]
    fn thresholds_above_the_bound_are_rejected_naming_key_value_and_bound() {
        for key in ["rate_threshold", "pattern_threshold", "buffer_threshold"] {
            let mut raw = serde_json::to_value(RawStormSettings::default()).unwrap();
            raw[key] = (Threshold::MAX + 1).into();
            let raw: RawStormSettings = serde_json::from_value(raw.clone()).unwrap();
            assert_eq!(
                only_error(raw.validate()),
                format!("{key}: must be at most 1000000, got 1000001")
            );
        }
        let at_bound = RawStormSettings {
            rate_threshold: Threshold::MAX,
            pattern_threshold: Threshold::MAX,
            buffer_threshold: Threshold::MAX,
            ..Default::default()
        };
        assert!(at_bound.validate().is_ok());
        assert_eq!(Threshold::new(u32::MAX), None);
    }

    #[test]
    fn storm_windows_above_an_hour_are_rejected_naming_key_value_and_bound() {
        let hour = StormSettings::MAX_WINDOW;
        let raw = RawStormSettings {
            max_window_duration: hour + Duration::from_millis(1),
            ..Default::default()
        };
        assert_eq!(
            only_error(raw.validate()),
            "max_window_duration: must be at most 1h, got 1h 1ms"
        );
        // The issue's value: both keys out of range, each reported once, in file order.
        let huge = humantime::parse_duration("300000000000y").unwrap();
        let raw = RawStormSettings {
            inactivity_timeout: huge,
            max_window_duration: huge,
            ..Default::default()
        };
        let err = raw.validate().unwrap_err();
        assert_eq!(keys(&err), ["inactivity_timeout", "max_window_duration"]);
        assert!(
            err.errors[0]
                .reason
                .starts_with("must be at most 1h, got 300000000000years"),
            "{err}"
        );
        let at_bound = RawStormSettings {
            inactivity_timeout: hour,
            max_window_duration: hour,
            ..Default::default()
        };
        assert!(at_bound.validate().is_ok());
    }

    #[test]
    fn a_dedup_ttl_above_seven_days_is_rejected_naming_value_and_bound() {
        let raw = RawDedupSettings {
            ttl: Ttl::MAX + Duration::from_secs(1),
        };
        assert_eq!(
            only_error(raw.validate()),
            "ttl: must be at most 7days, got 7days 1s"
        );
        assert!(RawDedupSettings { ttl: Ttl::MAX }.validate().is_ok());
        assert_eq!(Ttl::new(Duration::MAX), None);
    }

    #[test]
    fn backoffs_above_five_minutes_are_rejected_naming_key_value_and_bound() {
        let raw = RawRetrySettings {
            max_backoff: Duration::from_secs(301),
            ..Default::default()
        };
        assert_eq!(
            only_error(raw.validate()),
            "max_backoff: must be at most 5m, got 5m 1s"
        );
        let raw = RawRetrySettings {
            initial_backoff: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(3600),
            ..Default::default()
        };
        assert_eq!(
            keys(&raw.validate().unwrap_err()),
            ["initial_backoff", "max_backoff"]
        );
        let at_bound = RawRetrySettings {
            max_attempts: RetrySettings::MAX_ATTEMPTS,
            initial_backoff: RetrySettings::MAX_BACKOFF,
            max_backoff: RetrySettings::MAX_BACKOFF,
        };
        assert!(at_bound.validate().is_ok());
    }

    /// Any duration, biased towards the interesting ones: around the bounds, and huge.
    fn any_duration() -> impl proptest::strategy::Strategy<Value = Duration> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..=8 * 24 * 3_600_000).prop_map(Duration::from_millis),
            any::<u64>().prop_map(Duration::from_secs),
            Just(Duration::MAX),
        ]
    }

    /// The latest instant the gateway renders (RFC 3339 has four-digit years).
    const LAST_RENDERABLE: crate::Timestamp = crate::Timestamp::from_millis(253_402_300_799_999);

    proptest::proptest! {
        /// Valid settings fit even unchecked arithmetic: an instant up to the year 9000 plus any
        /// valid duration, doubled and summed with the others as the domain does (window TTLs
        /// are twice the window plus an hour; a retry budget sums every backoff), neither
        /// overflows nor leaves the calendar the gateway renders.
        #[test]
        fn arithmetic_on_valid_settings_never_overflows(
            rate in proptest::prelude::any::<u32>(),
            inactivity in any_duration(),
            window in any_duration(),
            ttl in any_duration(),
            attempts in 0u32..100,
            initial in any_duration(),
            max in any_duration(),
            now_ms in 0u64..220_000_000_000_000,
        ) {
            let storm = RawStormSettings {
                rate_threshold: rate,
                pattern_threshold: rate,
                buffer_threshold: rate,
                inactivity_timeout: inactivity,
                max_window_duration: window,
                ..Default::default()
            }
            .validate();
            let dedup = RawDedupSettings { ttl }.validate();
            let retry = RawRetrySettings {
                max_attempts: attempts,
                initial_backoff: initial,
                max_backoff: max,
            }
            .validate();
            let now = crate::Timestamp::from_millis(now_ms);
            let mut longest = Vec::new();
            if let Ok(s) = &storm {
                proptest::prop_assert!(u64::from(s.rate_threshold.get()) * 2 < u64::from(u32::MAX));
                let window_ttl = s.max_window_duration * 2 + Duration::from_secs(3600);
                longest.extend([s.inactivity_timeout + s.max_window_duration, window_ttl]);
            }
            if let Ok(s) = &dedup {
                longest.push(s.ttl.get() * 2);
            }
            if let Ok(s) = &retry {
                longest.push(s.max_backoff * s.max_attempts + s.initial_backoff);
            }
            for d in longest {
                let end = now + d;
                proptest::prop_assert!(end.as_millis() == now_ms + u64::try_from(d.as_millis()).unwrap());
                proptest::prop_assert!(end <= LAST_RENDERABLE, "{end:?}");
                proptest::prop_assert!(end.to_rfc3339().len() == 24);
            }
        }

        #[test]
        fn validated_retry_settings_always_satisfy_their_invariants(
            attempts in 0u32..30, initial in 0u64..10_000, max in 0u64..10_000,
        ) {
            let raw = RawRetrySettings {
                max_attempts: attempts,
                initial_backoff: Duration::from_millis(initial),
                max_backoff: Duration::from_millis(max),
            };
            if let Ok(s) = raw.validate() {
                proptest::prop_assert!((1..=20).contains(&s.max_attempts));
                proptest::prop_assert!(!s.initial_backoff.is_zero());
                proptest::prop_assert!(s.initial_backoff <= s.max_backoff);
            }
        }
    }
}
