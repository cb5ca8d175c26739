//! What one fuzz input goes through, per target: the libFuzzer targets (`fuzz_targets/`) and the
//! corpus replay of `cargo test` (`tests/it/fuzz_corpus.rs`, which includes this file) call the
//! same functions, so the committed corpus is replayed on stable exactly as it was fuzzed.
//!
//! Each function panics only when the code under test does: that is a finding.

use gateway_adapter_file_config::{Parsed, parse};
use gateway_ports::{ConfigKind, Timestamp};
use gateway_signal::EventOutcome;

/// The receive time every input is parsed at.
const RECEIVED: Timestamp = Timestamp::from_secs(1_764_090_300);

/// An Alertmanager webhook body: signals or a `PayloadError`; every signal's time renders.
pub fn alertmanager(body: &[u8]) {
    if let Ok(signals) = gateway_signal::parse_alertmanager(body, RECEIVED) {
        for signal in signals {
            let _ = signal.firing_time.to_rfc3339();
        }
    }
}

/// A Kubernetes Event body: an outcome or a `PayloadError`; a signal's time renders.
pub fn kubernetes_event(body: &[u8]) {
    if let Ok(EventOutcome::Signal(signal)) = gateway_signal::parse_kubernetes_event(body, RECEIVED)
    {
        let _ = signal.firing_time.to_rfc3339();
    }
}

/// A settings document as a config file goes through it (YAML, figment: defaults ← document,
/// `validate`); the first byte picks the type (storm, dedup, retry, security), the rest is the
/// document.
/// Valid settings then go through what the gateway does with them: the audit map, and every
/// duration added to now (deadlines, expiries), doubled as window TTLs are, and rendered.
pub fn settings(data: &[u8]) {
    let Some((&selector, document)) = data.split_first() else {
        return;
    };
    let kind = ConfigKind::ALL[usize::from(selector) % ConfigKind::ALL.len()];
    let Ok(parsed) = parse(kind, "fuzz.yaml", document) else {
        return;
    };
    let _ = parsed.to_map();
    let durations = match &parsed {
        Parsed::Storm(s) => vec![s.inactivity_timeout, s.max_window_duration],
        Parsed::Dedup(s) => vec![s.ttl.get()],
        Parsed::Retry(s) => vec![s.initial_backoff, s.max_backoff * s.max_attempts],
        Parsed::Security(s) => {
            // Every valid pattern list is matched against, with its patterns' own text too.
            let globs = &s.allowed_namespaces;
            let _ = globs.allows("kubernaut-system");
            for glob in globs.patterns() {
                let _ = globs.allows(glob.as_str());
            }
            Vec::new()
        }
    };
    for d in durations {
        let _ = (RECEIVED + d * 2).to_rfc3339();
    }
}
