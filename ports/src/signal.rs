//! A normalised signal: what the gateway knows of one alert or event, whatever its source.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The identity of a signal for deduplication: 64 lowercase hex digits (a SHA-256).
///
/// How it is computed is the signal domain's business (`gateway-signal`); this type only
/// guarantees the form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint is 64 lowercase hex digits, got {0:?}")]
pub struct InvalidFingerprint(String);

impl Fingerprint {
    /// Accepts exactly 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, InvalidFingerprint> {
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Fingerprint(hex.to_owned()))
        } else {
            Err(InvalidFingerprint(hex.to_owned()))
        }
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first `n` hex digits, for names and logs.
    pub fn short(&self, n: usize) -> &str {
        &self.0[..n.min(self.0.len())]
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = InvalidFingerprint;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Fingerprint::from_hex(&s)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string of the form [`Fingerprint::from_hex`] accepts.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Fingerprint {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Fingerprint".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
        })
    }
}

/// Where a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalSource {
    /// An Alertmanager webhook.
    Prometheus,
    /// A core/v1 Event.
    KubernetesEvent,
}

impl SignalSource {
    /// The metric label and `signalSource` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalSource::Prometheus => "prometheus",
            SignalSource::KubernetesEvent => "kubernetes-event",
        }
    }
}

/// Whether the condition is still present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalStatus {
    /// The condition holds.
    Firing,
    /// The condition has ended.
    Resolved,
}

/// Normalised severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs a human or a remediation now.
    Critical,
    /// Degradation.
    Warning,
    /// Everything else.
    Info,
}

impl Severity {
    /// The metric label and CRD value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// The Kubernetes object a signal is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResourceRef {
    /// `Pod`, `Deployment`, `Node`, … (`Unknown` when the signal names none).
    pub kind: String,
    /// The object's name (empty when the signal names none).
    pub name: String,
    /// The object's namespace (empty for cluster-scoped objects).
    // Optional in the schema with `""` as its default, as the CRD has always had it: the API
    // server fills it in, so a resource read back always carries it.
    #[cfg_attr(feature = "schema", schemars(default))]
    pub namespace: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
        }
    }
}

/// One normalised signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Dedup identity.
    pub fingerprint: Fingerprint,
    /// Alert name (Prometheus) or event reason (Kubernetes).
    pub name: String,
    /// Namespace the signal concerns (empty when cluster-scoped).
    pub namespace: String,
    /// The affected object.
    pub resource: ResourceRef,
    /// Normalised severity.
    pub severity: Severity,
    /// Firing or resolved.
    pub status: SignalStatus,
    /// Where it came from.
    pub source: SignalSource,
    /// When the condition started, as the source says (receive time if it says nothing usable).
    pub firing_time: Timestamp,
    /// When the gateway received it.
    pub received_time: Timestamp,
    /// The source's labels.
    pub labels: BTreeMap<String, String>,
    /// The source's annotations (for events: the message).
    pub annotations: BTreeMap<String, String>,
}

#[cfg(all(test, feature = "schema"))]
mod schema_tests {
    use super::*;

    #[test]
    fn the_schemas_say_what_the_types_accept() {
        let fingerprint = schemars::schema_for!(Fingerprint);
        assert_eq!(fingerprint.get("type"), Some(&"string".into()));
        assert_eq!(fingerprint.get("pattern"), Some(&"^[0-9a-f]{64}$".into()));

        let severity = schemars::schema_for!(Severity);
        let values: Vec<serde_json::Value> =
            [Severity::Critical, Severity::Warning, Severity::Info]
                .iter()
                .map(|s| s.as_str().into())
                .collect();
        // One `const` per (documented) variant; the kube adapter's CRD turns them into an `enum`.
        let consts: Vec<_> = severity
            .get("oneOf")
            .and_then(|o| o.as_array())
            .into_iter()
            .flatten()
            .filter_map(|variant| variant.get("const").cloned())
            .collect();
        assert_eq!(consts, values);

        let resource = schemars::schema_for!(ResourceRef);
        assert_eq!(
            resource.get("required"),
            Some(&vec!["kind", "name"].into()),
            "namespace is optional in the schema, defaulted to \"\""
        );
    }
}
