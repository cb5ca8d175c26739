//! The [`RemediationWriter`] port and the `RemediationRequest` it writes.
//!
//! The model *is* the CRD's spec (group `remediation.kubernaut.io`, version `v1alpha1`): field
//! names serialise in camelCase, the directory sink writes it as it is, and the Kubernetes
//! adapter's CRD schema is generated from it (the `schema` feature derives `schemars::JsonSchema`
//! on the spec and every type it holds), so both sinks write the same document and a field added
//! here is a field of the CRD.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::signal::{Fingerprint, ResourceRef, Severity};
use crate::time::Timestamp;

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {text:?}")))
    }
}

/// A resource the remediation concerns (the target, or one of a storm's affected resources).
pub type AffectedResource = ResourceRef;

/// Deduplication bookkeeping of the signal (or storm) behind a remediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeduplicationInfo {
    /// First occurrence in the current window.
    pub first_occurrence: Timestamp,
    /// Latest occurrence the gateway has recorded.
    pub last_occurrence: Timestamp,
    /// Occurrences in the window, this resource's first included.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub occurrence_count: u64,
}

/// The storm part of an aggregated remediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StormInfo {
    /// `rate` (too many signals of one alert name per minute) or `pattern` (too many distinct
    /// resources hit within two minutes).
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["rate", "pattern"])))]
    pub storm_type: String,
    /// How long the aggregation window has been open (closed: its whole length), in words
    /// (`2m 30s`).
    pub storm_window: String,
    /// When the aggregation window opened.
    pub storm_window_start: Timestamp,
    /// When it closed (absent while it is open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_window_end: Option<Timestamp>,
    /// Every signal the window took in, sampled-out ones included.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub storm_alert_count: u64,
    /// Of those, how many were sampled out (counted, not stored as resources).
    pub storm_sampled_out_count: u64,
    /// The distinct resources the storm hit.
    pub affected_resources: Vec<AffectedResource>,
}

/// The spec of a `RemediationRequest`: a remediation the gateway asks the platform to carry out,
/// for one signal or one storm.
// One paragraph: with the `schema` feature this doc is the CRD's description of `spec` (and the
// field docs below are its fields' descriptions, as `kubectl explain` shows them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RemediationRequestSpec {
    /// SHA-256 of (alert name, namespace, target kind, target name), 64 lowercase hex digits. For
    /// a storm aggregate, the fingerprint of the signal that opened the window.
    pub signal_fingerprint: Fingerprint,
    /// Alert name (Prometheus) or event reason (Kubernetes).
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub signal_name: String,
    /// Normalised severity.
    pub severity: Severity,
    /// `prometheus-alert` or `kubernetes-event`.
    pub signal_type: String,
    /// The gateway adapter that received the signal (`prometheus`, `kubernetes-event`).
    pub signal_source: String,
    /// What kind of target this is (`kubernetes`).
    pub target_type: String,
    /// The object to remediate.
    pub target_resource: ResourceRef,
    /// When the condition started.
    pub firing_time: Timestamp,
    /// When the gateway received the signal.
    pub received_time: Timestamp,
    /// The signal's labels.
    #[serde(default)]
    pub signal_labels: BTreeMap<String, String>,
    /// The signal's annotations.
    #[serde(default)]
    pub signal_annotations: BTreeMap<String, String>,
    /// True when this resource aggregates an alert storm.
    #[serde(default)]
    pub is_storm: bool,
    /// The storm part, for aggregates: its fields sit beside the others (`stormType`, …).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormInfo>,
    /// Deduplication bookkeeping.
    pub deduplication: DeduplicationInfo,
}

/// How far the content of a resource has got, so that writers never move it backwards: for a
/// storm aggregate, the alerts its window took in, then whether the window is closed; for one
/// signal, the occurrences counted. Ordered: a later snapshot is greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Progress {
    /// Alerts (aggregate) or occurrences (one signal) counted.
    pub count: u64,
    /// The storm window is closed (final).
    pub closed: bool,
}

impl RemediationRequestSpec {
    /// How far this content has got (see [`Progress`]).
    pub fn progress(&self) -> Progress {
        match &self.storm {
            Some(storm) => Progress {
                count: storm.storm_alert_count,
                closed: storm.storm_window_end.is_some(),
            },
            None => Progress {
                count: self.deduplication.occurrence_count,
                closed: false,
            },
        }
    }
}

/// A `RemediationRequest` to be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationRequest {
    /// Deterministic name (derived from the fingerprint and window), so a second write of the
    /// same work meets `AlreadyExists` instead of creating a twin.
    pub name: String,
    /// Namespace the resource lives in.
    pub namespace: String,
    /// Labels for selection (fingerprint, severity, storm).
    pub labels: BTreeMap<String, String>,
    /// The spec.
    pub spec: RemediationRequestSpec,
}

/// Later occurrences of the signal behind an existing resource, to be recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrences {
    /// The resource's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The latest occurrence.
    pub last_occurrence: Timestamp,
    /// Occurrences in the window so far (the dedup store's count: absolute, not an increment).
    pub occurrence_count: u64,
}

/// What a successful write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A new resource exists.
    Created,
    /// A resource with that name was already there: the work exists, which is success.
    AlreadyExisted,
    /// An existing resource was brought up to date.
    Updated,
    /// The stored resource was as far along already (another writer came first with a later
    /// snapshot): it was left as it is.
    Superseded,
}

/// Why a write failed, in the gateway's terms: what happened, not how the sink said it. Adapters
/// translate their own errors (HTTP statuses, `io::ErrorKind`s) at their edge; the retry domain
/// (`gateway_retry::classify`) and the metrics read these and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// The named resource does not exist (or the place it would live in does not: a namespace).
    NotFound,
    /// A resource with this name exists already.
    AlreadyExists,
    /// The resource changed while it was being written (another writer came first): read it
    /// again and retry.
    Conflict,
    /// The sink asks the gateway to slow down.
    Throttled {
        /// How long the sink asked the gateway to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The sink cannot serve now (an API server error, a full disk) but may later.
    Unavailable {
        /// How long the sink asked the gateway to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// No answer within the sink's timeout (or the write deadline).
    Timeout,
    /// The sink could not be reached, or the connection broke.
    Connection,
    /// The sink refuses this write and would refuse it again.
    Rejected {
        /// Why.
        reason: Rejection,
    },
}

/// Why a sink refuses a write for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The resource itself is not acceptable (schema, name, size).
    Invalid,
    /// The sink does not know who the gateway is.
    Unauthorized,
    /// The gateway may not write there.
    Forbidden,
    /// The sink does not serve this kind of write (the CRD is not installed, a method it lacks).
    Unsupported,
}

impl WriteFailure {
    /// The metric label and log word: `not_found`, `already_exists`, `conflict`, `throttled`,
    /// `unavailable`, `timeout`, `connection`, `rejected`.
    pub const fn as_str(self) -> &'static str {
        match self {
            WriteFailure::NotFound => "not_found",
            WriteFailure::AlreadyExists => "already_exists",
            WriteFailure::Conflict => "conflict",
            WriteFailure::Throttled { .. } => "throttled",
            WriteFailure::Unavailable { .. } => "unavailable",
            WriteFailure::Timeout => "timeout",
            WriteFailure::Connection => "connection",
            WriteFailure::Rejected { .. } => "rejected",
        }
    }

    /// Every label [`WriteFailure::as_str`] gives, so that metric series exist from the start.
    pub const LABELS: [&'static str; 8] = [
        "not_found",
        "already_exists",
        "conflict",
        "throttled",
        "unavailable",
        "timeout",
        "connection",
        "rejected",
    ];
}

/// A failed write.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WriteError {
    /// The classifiable part.
    pub failure: WriteFailure,
    /// A short description, safe to show and log.
    pub message: String,
    /// The vendor error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl WriteError {
    /// An error without a vendor source.
    pub fn new(failure: WriteFailure, message: impl fmt::Display) -> Self {
        WriteError {
            failure,
            message: message.to_string(),
            source: None,
        }
    }
}

/// Writes `RemediationRequest`s somewhere downstream controllers find them.
///
/// Contract:
/// - one attempt per call: retrying is the caller's policy (the retry domain), not the adapter's;
/// - [`RemediationWriter::create`] on a name that already exists returns
///   `Ok(Written::AlreadyExisted)`: the work is there; its spec stays as it is, but this
///   occurrence is counted on it (`deduplication.occurrenceCount` + 1, `lastOccurrence`), since
///   `AlreadyExists` is a second line of deduplication;
/// - [`RemediationWriter::update`] replaces the spec and labels of the named resource, creating it
///   when it is missing (`Ok(Written::Created)`) — unless the stored spec is as far along
///   already ([`RemediationRequestSpec::progress`]): then it is left as it is
///   (`Ok(Written::Superseded)`), so that writers racing with snapshots of one aggregate
///   (replicas sharing a storm window) never move it backwards;
/// - [`RemediationWriter::record_occurrences`] sets the occurrence count and last occurrence of
///   an existing resource (`Ok(Written::Updated)`); a missing one fails with
///   [`WriteFailure::NotFound`], never created (there is nothing to count on);
/// - failures are reported as [`WriteFailure`]s, in the gateway's terms: the adapter translates
///   its sink's errors, so the caller can tell transient from permanent without knowing the sink.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RemediationWriter: Send + Sync + fmt::Debug {
    /// Creates the resource unless one with its name exists.
    async fn create(&self, request: &RemediationRequest) -> Result<Written, WriteError>;
    /// Brings the named resource up to date (or creates it).
    async fn update(&self, request: &RemediationRequest) -> Result<Written, WriteError>;
    /// Records later occurrences on an existing resource.
    async fn record_occurrences(&self, occurrences: &Occurrences) -> Result<Written, WriteError>;
    /// Succeeds when writes can be attempted now (readiness).
    async fn check(&self) -> Result<(), WriteError>;
}
