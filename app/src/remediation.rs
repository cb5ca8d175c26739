//! Turning signals and storm aggregates into `RemediationRequest`s, with deterministic names.
//!
//! Names are derived from what identifies the work, never from a random source, so the same work
//! written twice (a retry, a second replica) meets `AlreadyExists` instead of creating a twin:
//! - one signal: `rr-<first 16 hex of the fingerprint>-<window start, ms, hex>`;
//! - a storm aggregate: `rr-storm-<first 12 hex of the opening signal's fingerprint>-<window open, ms, hex>`.

use std::collections::BTreeMap;

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
}

/// The name of the RemediationRequest for one signal whose dedup window started at `window_start`.
pub fn signal_name(signal: &Signal, window_start: Timestamp) -> String {
    format!(
        "rr-{}-{:x}",
        signal.fingerprint.short(16),
        window_start.as_millis()
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

/// The namespace a signal's RemediationRequest goes to: the signal's, or `fallback` for
/// cluster-scoped targets and signals without one.
pub fn namespace_of(signal: &Signal, fallback: &str) -> String {
    if signal.namespace.is_empty() {
        fallback.to_owned()
    } else {
        signal.namespace.clone()
    }
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
    RemediationRequest {
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
    }
}

/// The RemediationRequest for one new signal.
pub fn for_signal(
    signal: &Signal,
    window_start: Timestamp,
    fallback_namespace: &str,
) -> RemediationRequest {
    base(
        signal,
        signal_name(signal, window_start),
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
