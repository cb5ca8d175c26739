//! Turning signals and storm aggregates into `RemediationRequest`s, with deterministic names.
//!
//! Names are derived from what identifies the work, never from a random source, so the same work
//! written twice (a retry, a second replica) meets `AlreadyExists` instead of creating a twin:
//! - one signal: `rr-<first 16 hex of the fingerprint>-<firing time, ms, hex>-<n>`, where `n` counts
//!   the dedup TTLs between the firing time and the dedup window's start. Replicas that each keep
//!   their own dedup state (no Redis) and receive the same alert (two Alertmanagers, a load
//!   balancer) name it alike, so the second meets `AlreadyExists` and counts an occurrence
//!   instead of creating a twin; an alert still firing after its TTL opens window `n + 1`, a new
//!   resource, as a new occurrence should;
//! - a storm aggregate: `rr-storm-<first 12 hex of the opening signal's fingerprint>-<window open, ms, hex>`.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_ports::remediation::{DeduplicationInfo, RemediationRequestSpec, StormInfo};
use gateway_ports::{RemediationRequest, Signal, SignalSource, Timestamp};
use gateway_storm::Aggregate;

/// Label keys set on every RemediationRequest.
pub mod labels {
    /// A prefix of the fingerprint (label values are limited to 63 characters).
    pub const FINGERPRINT: &str = "kubernaut.io/signal-fingerprint";
    /// `critical`, `warning` or `info`.
    pub const SEVERITY: &str = "kubernaut.io/severity";
    /// `true` for storm aggregates.
    pub const STORM: &str = "kubernaut.io/storm";
    /// The namespace the signal named, on a RemediationRequest written to the fallback
    /// namespace instead (that one did not exist, or was not a valid name).
    pub const ORIGINAL_NAMESPACE: &str = "kubernaut.io/original-namespace";
}

/// The name of the RemediationRequest for one signal whose dedup window (of `ttl`) started at
/// `window_start`.
pub fn signal_name(signal: &Signal, window_start: Timestamp, ttl: Duration) -> String {
    let since_firing = window_start
        .saturating_since(signal.firing_time)
        .as_millis();
    let window = since_firing / ttl.as_millis().max(1);
    format!(
        "rr-{}-{:x}-{window}",
        signal.fingerprint.short(16),
        signal.firing_time.as_millis()
    )
}

/// The name of a storm aggregate.
pub fn aggregate_name(aggregate: &Aggregate) -> String {
    format!(
        "rr-storm-{}-{:x}",
        aggregate.first_signal.fingerprint.short(12),
        aggregate.opened_at.as_millis()
    )
}

/// The namespace a signal's RemediationRequest goes to: the signal's when it can name a
/// namespace (an RFC 1123 label), else `fallback` (cluster-scoped targets, signals without one,
/// and names such as `../..` or ones holding control characters, which are never written into
/// `metadata.namespace`).
pub fn namespace_of(signal: &Signal, fallback: &str) -> String {
    if is_namespace_name(&signal.namespace) {
        signal.namespace.clone()
    } else {
        fallback.to_owned()
    }
}

/// Whether `name` is a valid namespace name: an RFC 1123 label, 1 to 63 characters of `a-z`,
/// `0-9` and `-`, starting and ending with a letter or digit.
pub fn is_namespace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// Moves `request` to `fallback`, recording where it was meant to go: the original namespace
/// (verbatim) in `spec.signalLabels` under [`labels::ORIGINAL_NAMESPACE`], and as that label on
/// the resource when it is a valid label value. For a signal whose namespace does not exist, or
/// is not a valid name.
pub fn rehome(request: &mut RemediationRequest, original: &str, fallback: &str) {
    request
        .spec
        .signal_labels
        .insert(labels::ORIGINAL_NAMESPACE.to_owned(), original.to_owned());
    if is_namespace_name(original) {
        request
            .labels
            .insert(labels::ORIGINAL_NAMESPACE.to_owned(), original.to_owned());
    }
    fallback.clone_into(&mut request.namespace);
}

fn signal_type(source: SignalSource) -> &'static str {
    match source {
        SignalSource::Prometheus => "prometheus-alert",
        SignalSource::KubernetesEvent => "kubernetes-event",
    }
}

fn base(
    signal: &Signal,
    name: String,
    fallback_namespace: &str,
    storm: Option<StormInfo>,
) -> RemediationRequest {
    let is_storm = storm.is_some();
    let labels = BTreeMap::from([
        (
            labels::FINGERPRINT.to_owned(),
            signal.fingerprint.short(40).to_owned(),
        ),
        (
            labels::SEVERITY.to_owned(),
            signal.severity.as_str().to_owned(),
        ),
        (labels::STORM.to_owned(), is_storm.to_string()),
    ]);
    let mut request = RemediationRequest {
        name,
        namespace: namespace_of(signal, fallback_namespace),
        labels,
        spec: RemediationRequestSpec {
            signal_fingerprint: signal.fingerprint.clone(),
            signal_name: signal.name.clone(),
            severity: signal.severity,
            signal_type: signal_type(signal.source).to_owned(),
            signal_source: signal.source.as_str().to_owned(),
            target_type: "kubernetes".to_owned(),
            target_resource: signal.resource.clone(),
            firing_time: signal.firing_time,
            received_time: signal.received_time,
            signal_labels: signal.labels.clone(),
            signal_annotations: signal.annotations.clone(),
            is_storm,
            storm,
            deduplication: DeduplicationInfo {
                first_occurrence: signal.received_time,
                last_occurrence: signal.received_time,
                occurrence_count: 1,
            },
        },
    };
    if !signal.namespace.is_empty() && !is_namespace_name(&signal.namespace) {
        rehome(&mut request, &signal.namespace, fallback_namespace);
    }
    request
}

/// The RemediationRequest for one new signal whose dedup window (of `ttl`) started at
/// `window_start`.
pub fn for_signal(
    signal: &Signal,
    window_start: Timestamp,
    ttl: Duration,
    fallback_namespace: &str,
) -> RemediationRequest {
    base(
        signal,
        signal_name(signal, window_start, ttl),
        fallback_namespace,
        None,
    )
}

/// The RemediationRequest aggregating a storm window (open or closed).
pub fn for_aggregate(aggregate: &Aggregate, fallback_namespace: &str) -> RemediationRequest {
    let storm = StormInfo {
        storm_type: aggregate.storm_type.as_str().to_owned(),
        storm_window: humantime::format_duration(
            aggregate
                .closed_at
                .unwrap_or(aggregate.last_activity)
                .saturating_since(aggregate.opened_at),
        )
        .to_string(),
        storm_window_start: aggregate.opened_at,
        storm_window_end: aggregate.closed_at,
        storm_alert_count: aggregate.alert_count,
        storm_sampled_out_count: aggregate.sampled_out,
        affected_resources: aggregate.resources.clone(),
    };
    let mut request = base(
        &aggregate.first_signal,
        aggregate_name(aggregate),
        fallback_namespace,
        Some(storm),
    );
    request.spec.deduplication = DeduplicationInfo {
        first_occurrence: aggregate.opened_at,
        last_occurrence: aggregate.last_activity,
        occurrence_count: aggregate.alert_count,
    };
    request
}

#[cfg(test)]
mod tests {
    use gateway_ports::Fingerprint;
    use gateway_ports::test_util;

    use super::*;

    /// The alert `Down` (fingerprint `abab…`), fired `firing_s` seconds after the epoch.
    fn signal(firing_s: u64) -> Signal {
        test_util::signal("Down")
            .fingerprint(Fingerprint::from_hex(&"ab".repeat(32)).expect("hex"))
            .at(Timestamp::from_secs(firing_s))
            .build()
    }

    const T: u64 = 1_764_000_000;
    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn replicas_that_open_their_windows_apart_name_the_alert_alike() {
        let s = signal(T);
        let a = signal_name(&s, Timestamp::from_millis(T * 1000 + 30_000), TTL);
        let b = signal_name(&s, Timestamp::from_millis(T * 1000 + 30_250), TTL);
        assert_eq!(a, b);
        assert_eq!(a, format!("rr-abababababababab-{:x}-0", T * 1000));
    }

    #[test]
    fn a_new_window_after_the_ttl_or_a_new_firing_is_a_new_name() {
        let s = signal(T);
        let first = signal_name(&s, Timestamp::from_secs(T + 10), TTL);
        let after_ttl = signal_name(&s, Timestamp::from_secs(T + 10 + 600), TTL);
        assert_ne!(first, after_ttl);
        assert!(after_ttl.ends_with("-1"), "{after_ttl}");
        let refired = signal_name(&signal(T + 3600), Timestamp::from_secs(T + 3600), TTL);
        assert_ne!(first, refired);
        // A firing time ahead of the gateway's clock (skew) is window 0, never a panic.
        assert!(signal_name(&signal(T + 60), Timestamp::from_secs(T), TTL).ends_with("-0"));
    }

    #[test]
    fn only_rfc_1123_labels_name_a_namespace() {
        for good in ["a", "prod", "team-1", "0", &"a".repeat(63)] {
            assert!(is_namespace_name(good), "{good:?}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "../..",
            "a/b",
            "a\r\nb",
            "a\0",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_namespace_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_signal_naming_an_invalid_namespace_goes_to_the_fallback_with_the_original_recorded() {
        let mut s = signal(T);
        s.namespace = "../..\r\n".to_owned();
        let r = for_signal(&s, Timestamp::from_secs(T), TTL, "kubernaut-system");
        assert_eq!(r.namespace, "kubernaut-system");
        assert_eq!(
            r.spec.signal_labels.get(labels::ORIGINAL_NAMESPACE),
            Some(&s.namespace)
        );
        assert!(
            !r.labels.contains_key(labels::ORIGINAL_NAMESPACE),
            "not a label value"
        );

        let mut r = for_signal(&signal(T), Timestamp::from_secs(T), TTL, "kubernaut-system");
        let original = r.namespace.clone();
        rehome(&mut r, &original, "kubernaut-system");
        assert_eq!(r.labels.get(labels::ORIGINAL_NAMESPACE), Some(&original));
    }
}
