//! Shorthands for this crate's tests, over `gateway_ports::test_util`: signal number `n` of an
//! alert on a pod, storm settings from three thresholds, instants in seconds.

use std::time::Duration;

use gateway_ports::test_util::{self, storm_settings};
use gateway_ports::{ResourceRef, Signal, StormSettings, Timestamp};

/// `secs` seconds after the tests' origin.
pub(crate) fn at(secs: u64) -> Timestamp {
    test_util::at(secs)
}

/// A pod in namespace `prod`.
pub(crate) fn pod(name: &str) -> ResourceRef {
    test_util::pod("prod", name)
}

/// Signal number `n` (its fingerprint) of `alert` in `namespace`, about pod `resource`.
pub(crate) fn signal(n: u64, alert: &str, namespace: &str, resource: &str) -> Signal {
    test_util::signal(alert)
        .fingerprint(test_util::fingerprint(n))
        .namespace(namespace)
        .pod(resource)
        .build()
}

/// The default storm settings with these thresholds.
pub(crate) fn settings(rate: u32, pattern: u32, buffer: u32) -> StormSettings {
    storm_settings()
        .rate_threshold(rate)
        .pattern_threshold(pattern)
        .buffer_threshold(buffer)
        .build()
}

/// `settings` with sampling set.
pub(crate) fn sampling(mut s: StormSettings, threshold: f64, rate: f64) -> StormSettings {
    let with = storm_settings()
        .sampling_threshold(threshold)
        .sampling_rate(rate)
        .build();
    s.sampling_threshold = with.sampling_threshold;
    s.sampling_rate = with.sampling_rate;
    s
}

/// `settings` with the window timings set, in seconds.
pub(crate) fn timing(mut s: StormSettings, inactivity: u64, max_window: u64) -> StormSettings {
    s.inactivity_timeout = Duration::from_secs(inactivity);
    s.max_window_duration = Duration::from_secs(max_window);
    s
}
