//! Builders for tests of code that speaks the ports (feature `test-util`): signals, fingerprints,
//! resources, instants, settings, and a clock that moves only when told to.
//!
//! Every builder starts from defaults that make a valid value, so a test names only what it is
//! about. A value that would be invalid (a threshold of 0, a TTL under a second) panics at
//! `build` with the key and the reason: in a test that is a mistake in the setup, not a case to
//! handle. Together with the mocks (feature `mocks`), a crate's tests need:
//!
//! ```toml
//! [dev-dependencies]
//! gateway-ports = { workspace = true, features = ["mocks", "test-util"] }
//! ```
//!
//! ```
//! use std::time::Duration;
//!
//! use gateway_ports::test_util::{ManualClock, at, dedup_settings, fingerprint, signal};
//! use gateway_ports::{Clock, SignalStatus};
//!
//! let alert = signal("KubePodCrashLooping")
//!     .namespace("prod")
//!     .pod("api-0")
//!     .resolved()
//!     .at(at(30))
//!     .build();
//! assert_eq!(alert.status, SignalStatus::Resolved);
//! assert_eq!(alert.resource.to_string(), "prod/Pod/api-0");
//! assert_eq!(alert.received_time, at(30));
//!
//! let other = signal("KubePodCrashLooping").pod("api-1").build();
//! assert_ne!(alert.fingerprint, other.fingerprint, "another pod, another fingerprint");
//! assert_eq!(fingerprint(7).as_str(), format!("{:064x}", 7));
//!
//! let settings = dedup_settings().ttl(Duration::from_secs(60)).build();
//! assert_eq!(settings.ttl.get(), Duration::from_secs(60));
//!
//! let clock = ManualClock::new(at(0));
//! let handed_out = clock.clone(); // the same clock: moving one moves both
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(handed_out.now(), at(5));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::settings::{RawDedupSettings, RawRetrySettings, RawSecuritySettings, RawStormSettings};
use crate::{
    Clock, DedupSettings, Fingerprint, InvalidSettings, ResourceRef, RetrySettings,
    SecuritySettings, Severity, Signal, SignalSource, SignalStatus, StormSettings, Timestamp,
};

// ---- Instants ----

/// The instant tests count from: 2025-11-25T17:00:00Z.
///
/// An instant long after the epoch, so that arithmetic that should not go below it would show.
pub const T0: Timestamp = Timestamp::from_secs(1_764_090_000);

/// `secs` seconds after [`T0`].
///
/// ```
/// use gateway_ports::test_util::{T0, at};
///
/// assert_eq!(at(0), T0);
/// assert_eq!(at(90).to_rfc3339(), "2025-11-25T17:01:30.000Z");
/// ```
pub fn at(secs: u64) -> Timestamp {
    T0 + Duration::from_secs(secs)
}

/// `millis` milliseconds after [`T0`].
///
/// ```
/// use gateway_ports::test_util::{at, at_millis};
///
/// assert_eq!(at_millis(1_500), at(1) + std::time::Duration::from_millis(500));
/// ```
pub fn at_millis(millis: u64) -> Timestamp {
    T0 + Duration::from_millis(millis)
}

// ---- Fingerprints and resources ----

/// Fingerprint number `n`: `n` in hex, zero-padded to 64 digits.
///
/// Distinct numbers give distinct fingerprints, and the digits are easy to read in a failure.
///
/// ```
/// use gateway_ports::test_util::fingerprint;
///
/// assert_eq!(fingerprint(0xab).as_str(), format!("{}ab", "0".repeat(62)));
/// assert_ne!(fingerprint(1), fingerprint(2));
/// ```
pub fn fingerprint(n: u64) -> Fingerprint {
    Fingerprint::from_hex(&format!("{n:064x}"))
        .expect("64 lowercase hex digits are a valid fingerprint")
}

/// A fingerprint named by `name`: the same name always gives the same fingerprint, different
/// names different ones.
///
/// Not the gateway's fingerprint of an alert (that is a SHA-256, computed by `gateway-signal`);
/// a fast, stable hash, good for telling test values apart.
///
/// ```
/// use gateway_ports::test_util::fingerprint_of;
///
/// assert_eq!(fingerprint_of("disk-full"), fingerprint_of("disk-full"));
/// assert_ne!(fingerprint_of("disk-full"), fingerprint_of("disk-fuller"));
/// ```
pub fn fingerprint_of(name: &str) -> Fingerprint {
    // FNV-1a over the bytes, then four SplitMix64 outputs from it: 256 well-mixed bits.
    let mut state = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut hex = String::with_capacity(64);
    for _ in 0..4 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        hex.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    Fingerprint::from_hex(&hex).expect("64 lowercase hex digits are a valid fingerprint")
}

/// The pod `name` in `namespace`.
///
/// ```
/// use gateway_ports::test_util::pod;
///
/// let p = pod("prod", "api-0");
/// assert_eq!((p.kind.as_str(), p.name.as_str(), p.namespace.as_str()), ("Pod", "api-0", "prod"));
/// ```
pub fn pod(namespace: &str, name: &str) -> ResourceRef {
    resource(namespace, "Pod", name)
}

/// The object `kind`/`name` in `namespace` (empty for a cluster-scoped object), the arguments in
/// the order of its display form `namespace/Kind/name`.
///
/// ```
/// use gateway_ports::test_util::resource;
///
/// assert_eq!(resource("prod", "Deployment", "api").to_string(), "prod/Deployment/api");
/// assert_eq!(resource("", "Node", "worker-1").to_string(), "Node/worker-1");
/// ```
pub fn resource(namespace: &str, kind: &str, name: &str) -> ResourceRef {
    ResourceRef {
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

// ---- Signals ----

/// A [`SignalBuilder`] for the alert (or event reason) `name`.
///
/// ```
/// use gateway_ports::test_util::{at, signal};
/// use gateway_ports::{Severity, SignalSource, SignalStatus};
///
/// let s = signal("KubePodCrashLooping").build();
/// assert_eq!(s.name, "KubePodCrashLooping");
/// assert_eq!(s.resource.to_string(), "prod/Pod/api-0");
/// assert_eq!(
///     (s.severity, s.status, s.source),
///     (Severity::Critical, SignalStatus::Firing, SignalSource::Prometheus)
/// );
/// assert_eq!((s.firing_time, s.received_time), (at(0), at(0)));
/// assert_eq!(s.labels["alertname"], "KubePodCrashLooping");
/// ```
pub fn signal(name: &str) -> SignalBuilder {
    SignalBuilder::new(name)
}

/// Builds a [`Signal`]; every field can be set.
///
/// Defaults: namespace `prod`; the affected object pod `api-0` in the signal's namespace;
/// [`Severity::Critical`], [`SignalStatus::Firing`], [`SignalSource::Prometheus`]; fired and
/// received at [`at(0)`](at); the one label `alertname` = the name; no annotations; the
/// fingerprint derived from (name, namespace, kind, resource name), as the gateway's is — the
/// same inputs give the same fingerprint, different ones a different fingerprint (but not the
/// gateway's digits: see [`fingerprint_of`]).
///
/// ```
/// use gateway_ports::test_util::{at, fingerprint, resource, signal};
/// use gateway_ports::{Severity, SignalSource};
///
/// let event = signal("BackOff")
///     .fingerprint(fingerprint(3))
///     .namespace("payments")
///     .object("Deployment", "api")
///     .severity(Severity::Warning)
///     .source(SignalSource::KubernetesEvent)
///     .firing_time(at(0))
///     .received_time(at(2))
///     .label("event_type", "Warning")
///     .annotation("message", "Back-off restarting failed container")
///     .build();
/// assert_eq!(event.fingerprint, fingerprint(3));
/// assert_eq!(event.resource, resource("payments", "Deployment", "api"));
/// assert_eq!(event.labels.len(), 2);
///
/// let node = signal("NodeNotReady")
///     .namespace("")
///     .resource(resource("", "Node", "worker-1"))
///     .build();
/// assert_eq!(node.resource.to_string(), "Node/worker-1");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build`"]
pub struct SignalBuilder {
    fingerprint: Option<Fingerprint>,
    name: String,
    namespace: String,
    target: Target,
    severity: Severity,
    status: SignalStatus,
    source: SignalSource,
    firing_time: Timestamp,
    received_time: Timestamp,
    alertname_label: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The affected object: in the signal's namespace (whatever it is when built), or exactly given.
#[derive(Debug, Clone)]
enum Target {
    InNamespace { kind: String, name: String },
    Exact(ResourceRef),
}

impl SignalBuilder {
    /// The defaults (see the type's docs) for the alert `name`.
    pub fn new(name: &str) -> Self {
        SignalBuilder {
            fingerprint: None,
            name: name.to_owned(),
            namespace: "prod".to_owned(),
            target: Target::InNamespace {
                kind: "Pod".to_owned(),
                name: "api-0".to_owned(),
            },
            severity: Severity::Critical,
            status: SignalStatus::Firing,
            source: SignalSource::Prometheus,
            firing_time: at(0),
            received_time: at(0),
            alertname_label: true,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// This fingerprint instead of the derived one.
    pub fn fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// Another name (alert name or event reason).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The namespace the signal concerns; also the affected object's, unless that was given
    /// whole with [`resource`](Self::resource).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    /// The affected object is the pod `name` (in the signal's namespace).
    pub fn pod(self, name: &str) -> Self {
        self.object("Pod", name)
    }

    /// The affected object is `kind`/`name` (in the signal's namespace).
    pub fn object(mut self, kind: &str, name: &str) -> Self {
        self.target = Target::InNamespace {
            kind: kind.to_owned(),
            name: name.to_owned(),
        };
        self
    }

    /// The affected object exactly as given, whatever the signal's namespace.
    pub fn resource(mut self, resource: ResourceRef) -> Self {
        self.target = Target::Exact(resource);
        self
    }

    /// The severity.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// The status.
    pub fn status(mut self, status: SignalStatus) -> Self {
        self.status = status;
        self
    }

    /// [`SignalStatus::Firing`] (the default).
    pub fn firing(self) -> Self {
        self.status(SignalStatus::Firing)
    }

    /// [`SignalStatus::Resolved`].
    pub fn resolved(self) -> Self {
        self.status(SignalStatus::Resolved)
    }

    /// Where the signal came from.
    pub fn source(mut self, source: SignalSource) -> Self {
        self.source = source;
        self
    }

    /// Fired and received at `t`.
    pub fn at(self, t: Timestamp) -> Self {
        self.firing_time(t).received_time(t)
    }

    /// When the condition started.
    pub fn firing_time(mut self, t: Timestamp) -> Self {
        self.firing_time = t;
        self
    }

    /// When the gateway received it.
    pub fn received_time(mut self, t: Timestamp) -> Self {
        self.received_time = t;
        self
    }

    /// Adds (or replaces) one label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Exactly these labels (no `alertname` unless among them).
    pub fn labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.alertname_label = false;
        self.labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Adds (or replaces) one annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Exactly these annotations.
    pub fn annotations<K: Into<String>, V: Into<String>>(
        mut self,
        annotations: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.annotations = annotations
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// The signal.
    pub fn build(self) -> Signal {
        let resource = match self.target {
            Target::InNamespace { kind, name } => resource(&self.namespace, &kind, &name),
            Target::Exact(resource) => resource,
        };
        let fingerprint = self.fingerprint.unwrap_or_else(|| {
            fingerprint_of(&format!(
                "{}\0{}\0{}\0{}",
                self.name, self.namespace, resource.kind, resource.name
            ))
        });
        let mut labels = self.labels;
        if self.alertname_label {
            labels
                .entry("alertname".to_owned())
                .or_insert_with(|| self.name.clone());
        }
        Signal {
            fingerprint,
            name: self.name,
            namespace: self.namespace,
            resource,
            severity: self.severity,
            status: self.status,
            source: self.source,
            firing_time: self.firing_time,
            received_time: self.received_time,
            labels,
            annotations: self.annotations,
        }
    }
}

impl From<SignalBuilder> for Signal {
    fn from(builder: SignalBuilder) -> Signal {
        builder.build()
    }
}

// ---- Settings ----

#[track_caller]
fn valid<T>(what: &str, result: Result<T, InvalidSettings>) -> T {
    result.unwrap_or_else(|e| panic!("invalid {what} in a test: {e}"))
}

/// A [`StormSettingsBuilder`] starting from the `storm.yaml` defaults.
///
/// ```
/// use std::time::Duration;
///
/// use gateway_ports::test_util::storm_settings;
///
/// let s = storm_settings()
///     .rate_threshold(3)
///     .buffer_threshold(2)
///     .inactivity_timeout(Duration::from_secs(10))
///     .max_window_duration(Duration::from_secs(30))
///     .build();
/// assert_eq!((s.rate_threshold.get(), s.pattern_threshold.get()), (3, 5));
/// ```
///
/// An invalid value panics when built, naming the key:
///
/// ```should_panic
/// # use gateway_ports::test_util::storm_settings;
/// // "invalid StormSettings in a test: rate_threshold: must be at least 1, got 0"
/// storm_settings().rate_threshold(0).build();
/// ```
pub fn storm_settings() -> StormSettingsBuilder {
    StormSettingsBuilder::default()
}

/// Builds [`StormSettings`] from plain numbers and durations (each method sets the key of
/// `storm.yaml` it is named after); [`build`](Self::build) validates them as a file would be.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build`"]
pub struct StormSettingsBuilder(RawStormSettings);

impl StormSettingsBuilder {
    /// Signals of one alert name per minute above which it is a rate storm (≥ 1).
    pub fn rate_threshold(mut self, n: u32) -> Self {
        self.0.rate_threshold = n;
        self
    }
    /// Distinct resources per alert name within two minutes above which it is a pattern storm
    /// (≥ 1).
    pub fn pattern_threshold(mut self, n: u32) -> Self {
        self.0.pattern_threshold = n;
        self
    }
    /// Buffered resources at which one aggregate is created (≥ 1).
    pub fn buffer_threshold(mut self, n: u32) -> Self {
        self.0.buffer_threshold = n;
        self
    }
    /// Quiet time after which a window closes (> 0).
    pub fn inactivity_timeout(mut self, d: Duration) -> Self {
        self.0.inactivity_timeout = d;
        self
    }
    /// The longest a window lives (≥ the inactivity timeout).
    pub fn max_window_duration(mut self, d: Duration) -> Self {
        self.0.max_window_duration = d;
        self
    }
    /// Fill ratio past which storm signals are sampled, in (0, 1].
    pub fn sampling_threshold(mut self, r: f64) -> Self {
        self.0.sampling_threshold = r;
        self
    }
    /// Fraction of storm signals kept once sampling is on, in (0, 1].
    pub fn sampling_rate(mut self, r: f64) -> Self {
        self.0.sampling_rate = r;
        self
    }
    /// The settings; panics, naming every invalid key, if they are not valid.
    #[track_caller]
    pub fn build(self) -> StormSettings {
        valid("StormSettings", self.0.validate())
    }
}

/// A [`DedupSettingsBuilder`] starting from the `dedup.yaml` defaults.
///
/// ```
/// use std::time::Duration;
///
/// use gateway_ports::test_util::dedup_settings;
///
/// assert_eq!(dedup_settings().build().ttl.get(), Duration::from_secs(300));
/// let one_minute = dedup_settings().ttl(Duration::from_secs(60)).build();
/// assert_eq!(one_minute.ttl.get(), Duration::from_secs(60));
/// ```
pub fn dedup_settings() -> DedupSettingsBuilder {
    DedupSettingsBuilder::default()
}

/// Builds [`DedupSettings`]; [`build`](Self::build) validates them as a file would be.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build`"]
pub struct DedupSettingsBuilder(RawDedupSettings);

impl DedupSettingsBuilder {
    /// How long a fingerprint's window lasts (≥ 1 s).
    pub fn ttl(mut self, d: Duration) -> Self {
        self.0.ttl = d;
        self
    }
    /// The settings; panics, naming the key, if they are not valid.
    #[track_caller]
    pub fn build(self) -> DedupSettings {
        valid("DedupSettings", self.0.validate())
    }
}

/// A [`RetrySettingsBuilder`] starting from the `retry.yaml` defaults.
///
/// ```
/// use std::time::Duration;
///
/// use gateway_ports::test_util::retry_settings;
///
/// let r = retry_settings()
///     .max_attempts(5)
///     .initial_backoff(Duration::from_millis(10))
///     .max_backoff(Duration::from_millis(80))
///     .build();
/// assert_eq!((r.max_attempts, r.max_backoff), (5, Duration::from_millis(80)));
/// ```
pub fn retry_settings() -> RetrySettingsBuilder {
    RetrySettingsBuilder::default()
}

/// Builds [`RetrySettings`]; [`build`](Self::build) validates them as a file would be.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build`"]
pub struct RetrySettingsBuilder(RawRetrySettings);

impl RetrySettingsBuilder {
    /// Attempts in all, the first included (1 ≤ n ≤ [`RetrySettings::MAX_ATTEMPTS`]).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.0.max_attempts = n;
        self
    }
    /// The delay before the second attempt (> 0).
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.0.initial_backoff = d;
        self
    }
    /// The longest delay between two attempts (≥ the initial backoff).
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.0.max_backoff = d;
        self
    }
    /// The settings; panics, naming every invalid key, if they are not valid.
    #[track_caller]
    pub fn build(self) -> RetrySettings {
        valid("RetrySettings", self.0.validate())
    }
}

/// A [`SecuritySettingsBuilder`] starting from the `security.yaml` defaults (every namespace).
///
/// ```
/// use gateway_ports::test_util::security_settings;
///
/// assert!(security_settings().build().allowed_namespaces.allows("anything"));
/// let teams = security_settings().allowed_namespaces(["team-*"]).build();
/// assert!(teams.allowed_namespaces.allows("team-a"));
/// assert!(!teams.allowed_namespaces.allows("default"));
/// ```
pub fn security_settings() -> SecuritySettingsBuilder {
    SecuritySettingsBuilder::default()
}

/// Builds [`SecuritySettings`]; [`build`](Self::build) validates them as a file would be.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build`"]
pub struct SecuritySettingsBuilder(RawSecuritySettings);

impl SecuritySettingsBuilder {
    /// The namespace patterns signals may target (`[]` allows none).
    pub fn allowed_namespaces<S: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.0.allowed_namespaces = patterns.into_iter().map(Into::into).collect();
        self
    }
    /// The settings; panics, naming every invalid pattern, if they are not valid.
    #[track_caller]
    pub fn build(self) -> SecuritySettings {
        valid("SecuritySettings", self.0.validate())
    }
}

// ---- Time ----

/// A clock that moves only when told to: for tests of time-dependent behaviour (TTLs, storm
/// windows) without sleeping.
///
/// Clones share one time: hand a clone (or an `Arc<dyn Clock>` of one) to the code under test
/// and move the original.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use gateway_ports::Clock;
/// use gateway_ports::test_util::{ManualClock, at};
///
/// let clock = ManualClock::default(); // at(0)
/// let port: Arc<dyn Clock> = Arc::new(clock.clone());
/// clock.advance(Duration::from_millis(1_500));
/// assert_eq!(port.now(), at(0) + Duration::from_millis(1_500));
/// clock.set(at(60));
/// assert_eq!(port.now(), at(60));
/// ```
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicU64::new(t.as_millis())))
    }
    /// Moves the clock (and every clone) forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock (and every clone) to `t`, forward or back.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }
}

/// A clock standing at [`T0`].
impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new(T0)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_signal_is_in_its_namespace_unless_its_resource_was_given_whole() {
        let s = signal("A").pod("api-0").namespace("staging").build();
        assert_eq!(s.resource, pod("staging", "api-0"));
        let s = signal("A")
            .resource(pod("prod", "api-0"))
            .namespace("staging")
            .build();
        assert_eq!(s.resource, pod("prod", "api-0"));
        assert_eq!(s.namespace, "staging");
    }

    #[test]
    fn the_derived_fingerprint_follows_name_namespace_kind_and_resource_name() {
        let base = signal("A").build().fingerprint;
        assert_eq!(signal("A").resolved().at(at(9)).build().fingerprint, base);
        for other in [
            signal("B"),
            signal("A").namespace("staging"),
            signal("A").object("Deployment", "api-0"),
            signal("A").pod("api-1"),
        ] {
            assert_ne!(other.build().fingerprint, base);
        }
    }

    #[test]
    fn the_alertname_label_follows_the_name_unless_the_labels_were_replaced() {
        let s = signal("A").name("B").label("team", "x").build();
        assert_eq!(
            s.labels,
            BTreeMap::from([
                ("alertname".to_owned(), "B".to_owned()),
                ("team".to_owned(), "x".to_owned())
            ])
        );
        let s = signal("A").labels([("team", "x")]).build();
        assert_eq!(
            s.labels,
            BTreeMap::from([("team".to_owned(), "x".to_owned())])
        );
    }

    #[test]
    fn invalid_settings_panic_with_every_key() {
        let err = std::panic::catch_unwind(|| {
            retry_settings()
                .max_attempts(0)
                .initial_backoff(Duration::ZERO)
                .build()
        })
        .unwrap_err();
        let message = err.downcast_ref::<String>().unwrap();
        assert!(
            message.starts_with("invalid RetrySettings in a test: max_attempts: must be between")
                && message.contains("initial_backoff: must be greater than 0"),
            "{message}"
        );
        let err =
            std::panic::catch_unwind(|| dedup_settings().ttl(Duration::ZERO).build()).unwrap_err();
        let message = err.downcast_ref::<String>().unwrap();
        assert_eq!(
            message,
            "invalid DedupSettings in a test: ttl: must be at least 1s, got 0s"
        );
    }

    #[test]
    fn a_clock_moved_from_another_thread_is_seen_by_its_clones() {
        let clock = ManualClock::new(at(0));
        let mover = clock.clone();
        std::thread::spawn(move || mover.advance(Duration::from_secs(3)))
            .join()
            .unwrap();
        assert_eq!(clock.now(), at(3));
        assert_eq!(format!("{clock:?}"), format!("ManualClock({:?})", at(3)));
    }
}
