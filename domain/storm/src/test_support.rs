//! Builders for tests: signals, resources, settings and instants.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_ports::{
    Fingerprint, Ratio, ResourceRef, Severity, Signal, SignalSource, SignalStatus, StormSettings,
    Threshold, Timestamp,
};

/// `secs` seconds after an arbitrary origin.
pub(crate) fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(1_000_000) + Duration::from_secs(secs)
}

/// A pod in namespace `prod`.
pub(crate) fn pod(name: &str) -> ResourceRef {
    ResourceRef {
        kind: "Pod".to_owned(),
        name: name.to_owned(),
        namespace: "prod".to_owned(),
    }
}

/// Signal number `n` (its fingerprint) of `alert` in `namespace`, about pod `resource`.
pub(crate) fn signal(n: u64, alert: &str, namespace: &str, resource: &str) -> Signal {
    Signal {
        fingerprint: Fingerprint::from_hex(&format!("{n:064x}")).unwrap(),
        name: alert.to_owned(),
        namespace: namespace.to_owned(),
        resource: ResourceRef {
            namespace: namespace.to_owned(),
            ..pod(resource)
        },
        severity: Severity::Critical,
        status: SignalStatus::Firing,
        source: SignalSource::Prometheus,
        firing_time: Timestamp::EPOCH,
        received_time: Timestamp::EPOCH,
        labels: BTreeMap::from([("alertname".to_owned(), alert.to_owned())]),
        annotations: BTreeMap::new(),
    }
}

/// The default storm settings with these thresholds.
pub(crate) fn settings(rate: u32, pattern: u32, buffer: u32) -> StormSettings {
    StormSettings {
        rate_threshold: Threshold::new(rate).unwrap(),
        pattern_threshold: Threshold::new(pattern).unwrap(),
        buffer_threshold: Threshold::new(buffer).unwrap(),
        ..StormSettings::default()
    }
}

/// `settings` with sampling set.
pub(crate) fn sampling(mut s: StormSettings, threshold: f64, rate: f64) -> StormSettings {
    s.sampling_threshold = Ratio::new(threshold).unwrap();
    s.sampling_rate = Ratio::new(rate).unwrap();
    s
}

/// `settings` with the window timings set, in seconds.
pub(crate) fn timing(mut s: StormSettings, inactivity: u64, max_window: u64) -> StormSettings {
    s.inactivity_timeout = Duration::from_secs(inactivity);
    s.max_window_duration = Duration::from_secs(max_window);
    s
}
