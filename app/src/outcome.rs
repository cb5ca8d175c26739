//! What the sender is told about each signal: its outcome, or that it was not recorded and must
//! be sent again.

use std::time::Duration;

use gateway_ports::{RetrySettings, Signal};
use gateway_signal::{ECHO_CHARS, truncated};
use serde::Serialize;

/// What happened to one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A RemediationRequest was created for it.
    Created,
    /// Its RemediationRequest already existed (written earlier, or by another replica).
    AlreadyExists,
    /// Seen before within the dedup TTL: counted, nothing created.
    Duplicate,
    /// A resolved alert: nothing created; its dedup window is closed.
    Resolved,
    /// Held in a storm buffer; written when the buffer fills or goes quiet.
    Buffered,
    /// Part of a storm aggregate, which was created or will be brought up to date.
    Aggregated,
    /// Part of a storm past its sampling threshold: counted in the aggregate, resource not listed.
    SampledOut,
    /// Not a signal the gateway acts on (a `Normal` Kubernetes event).
    Ignored,
    /// Refused for good (its target namespace is not allowed by `security.yaml`, or the sink
    /// refuses its RemediationRequest in any namespace): answered so that the sender does not
    /// resend what can never succeed; `detail` says why.
    Rejected,
    /// Not recorded (a store or the sink failed, or the request's time ran out): the request is
    /// answered 503 and the sender resends it; `detail` says why.
    NotRecorded,
}

impl Outcome {
    /// Every outcome, for metric series that exist from the start.
    pub const ALL: [Outcome; 10] = [
        Outcome::Created,
        Outcome::AlreadyExists,
        Outcome::Duplicate,
        Outcome::Resolved,
        Outcome::Buffered,
        Outcome::Aggregated,
        Outcome::SampledOut,
        Outcome::Ignored,
        Outcome::Rejected,
        Outcome::NotRecorded,
    ];

    /// The metric label and JSON value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::AlreadyExists => "already_exists",
            Outcome::Duplicate => "duplicate",
            Outcome::Resolved => "resolved",
            Outcome::Buffered => "buffered",
            Outcome::Aggregated => "aggregated",
            Outcome::SampledOut => "sampled_out",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
            Outcome::NotRecorded => "not_recorded",
        }
    }
}

/// A value of the request as an answer repeats it: at most [`ECHO_CHARS`] characters.
fn echo(value: &str) -> String {
    truncated(value, ECHO_CHARS).into_owned()
}

/// The outcome of one signal, as answered to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertOutcome {
    /// Alert name or event reason.
    pub alert: String,
    /// The signal's namespace.
    pub namespace: String,
    /// The affected resource (`kind/name`).
    pub resource: String,
    /// The dedup fingerprint.
    pub fingerprint: String,
    /// What happened.
    pub outcome: Outcome,
    /// The RemediationRequest concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Occurrences in the dedup window (duplicates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<u64>,
    /// The storm type, for storm outcomes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm_type: Option<&'static str>,
    /// Why, for outcomes that need a word of explanation (ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Whether a resource was created while handling this signal (drives 201 vs 202).
    #[serde(skip)]
    pub created: bool,
}

impl AlertOutcome {
    /// The outcome of `signal`; `created` follows the outcome.
    pub fn of(signal: &Signal, outcome: Outcome) -> Self {
        AlertOutcome {
            // Echoes of the request: bounded like every echo.
            alert: echo(&signal.name),
            namespace: echo(&signal.namespace),
            resource: echo(&format!(
                "{}/{}",
                signal.resource.kind, signal.resource.name
            )),
            fingerprint: signal.fingerprint.to_string(),
            outcome,
            remediation: None,
            occurrences: None,
            storm_type: None,
            detail: None,
            created: outcome == Outcome::Created,
        }
    }

    /// A payload that is valid but not a signal (a `Normal` event), and why.
    pub fn ignored(reason: String) -> Self {
        AlertOutcome {
            alert: String::new(),
            namespace: String::new(),
            resource: String::new(),
            fingerprint: String::new(),
            outcome: Outcome::Ignored,
            remediation: None,
            occurrences: None,
            storm_type: None,
            detail: Some(reason),
            created: false,
        }
    }
}

impl AlertOutcome {
    /// `signal` refused for good, and why.
    pub fn rejected(signal: &Signal, detail: String) -> Self {
        let mut outcome = AlertOutcome::of(signal, Outcome::Rejected);
        outcome.detail = Some(detail);
        outcome
    }

    /// `signal` not recorded (the sender must resend it), and why.
    pub fn not_recorded(signal: &Signal, reason: NotRecorded) -> Self {
        let mut outcome = AlertOutcome::of(signal, Outcome::NotRecorded);
        outcome.detail = Some(reason.describe().to_owned());
        outcome
    }
}

/// Why a signal was refused for good (the `reason` of `gateway_signals_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The sink refuses its RemediationRequest in any namespace (schema, name, size).
    SinkRejected,
    /// Its target namespace matches none of `security.yaml`'s `allowed_namespaces`.
    NamespaceNotAllowed,
}

impl Rejected {
    /// Every reason, for metric series that exist from the start.
    pub const ALL: [Rejected; 2] = [Rejected::SinkRejected, Rejected::NamespaceNotAllowed];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rejected::SinkRejected => "sink_rejected",
            Rejected::NamespaceNotAllowed => "namespace_not_allowed",
        }
    }
}

/// Why a signal could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRecorded {
    /// The dedup store failed.
    DedupStore,
    /// The storm counts could not be taken.
    StormCounter,
    /// The storm windows could not be read or written.
    StormWindows,
    /// The RemediationRequest could not be written.
    Write,
    /// The request's write deadline passed before this signal's turn.
    Deadline,
    /// An earlier occurrence is still being recorded (or was abandoned by a crash: its claim
    /// is taken over after a while).
    Claimed,
}

impl NotRecorded {
    /// Every reason, for metric series that exist from the start.
    pub const ALL: [NotRecorded; 6] = [
        NotRecorded::DedupStore,
        NotRecorded::StormCounter,
        NotRecorded::StormWindows,
        NotRecorded::Write,
        NotRecorded::Deadline,
        NotRecorded::Claimed,
    ];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotRecorded::DedupStore => "dedup_store",
            NotRecorded::StormCounter => "storm_counter",
            NotRecorded::StormWindows => "storm_windows",
            NotRecorded::Write => "write",
            NotRecorded::Deadline => "deadline",
            NotRecorded::Claimed => "claimed",
        }
    }

    /// The reason in words safe to show the sender.
    pub const fn describe(self) -> &'static str {
        match self {
            NotRecorded::DedupStore => "dedup store unavailable",
            NotRecorded::StormCounter => "storm counter unavailable",
            NotRecorded::StormWindows => "storm windows unavailable",
            NotRecorded::Write => "RemediationRequest could not be written",
            NotRecorded::Deadline => "no time left within the request's deadline",
            NotRecorded::Claimed => "an earlier occurrence is still being recorded",
        }
    }
}

/// A signal that could not be recorded: the sender must send it again.
#[derive(Debug, thiserror::Error)]
#[error("signal {} could not be recorded: {}", echo(.alert), .reason.describe())]
pub struct Unrecorded {
    /// The alert concerned.
    pub alert: String,
    /// Why.
    pub reason: NotRecorded,
    /// When to try again.
    pub retry_after: Duration,
}

impl Unrecorded {
    /// The one way an `Unrecorded` is made: the sender is asked to wait the longest backoff of
    /// the retry settings in force (at least a second), by when a transient failure has
    /// usually passed.
    pub fn new(signal: &Signal, reason: NotRecorded, retry: &RetrySettings) -> Self {
        Unrecorded {
            alert: signal.name.clone(),
            reason,
            retry_after: retry.max_backoff.max(Duration::from_secs(1)),
        }
    }
}
