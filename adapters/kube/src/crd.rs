//! The `RemediationRequest` custom resource (`remediation.kubernaut.io/v1alpha1`), defined here with
//! kube's `CustomResource` derive and schemars; `gateway crd` prints it and `deploy/crd.yaml` is a
//! generated copy (a test fails when the two drift).
//!
//! The spec has the same JSON shape as [`gateway_ports::remediation::RemediationRequestSpec`]:
//! [`to_resource`] converts through `serde_json`, and a test checks that every field the ports
//! model writes is one the schema declares, so the directory sink and the API write the same
//! document.

use std::collections::BTreeMap;

use gateway_ports::RemediationRequest as PortRequest;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use kube::api::ObjectMeta;
use kube::core::crd::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "remediation.kubernaut.io";
/// API version of the resource.
pub const VERSION: &str = "v1alpha1";
/// Plural resource name (the URL path segment, and the RBAC resource).
pub const PLURAL: &str = "remediationrequests";

/// A remediation the gateway asks the platform to carry out, for one signal or one storm.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "remediation.kubernaut.io",
    version = "v1alpha1",
    kind = "RemediationRequest",
    plural = "remediationrequests",
    shortname = "rr",
    namespaced,
    status = "RemediationRequestStatus",
    printcolumn = r#"{"name":"Signal","type":"string","jsonPath":".spec.signalName"}"#,
    printcolumn = r#"{"name":"Severity","type":"string","jsonPath":".spec.severity"}"#,
    printcolumn = r#"{"name":"Storm","type":"boolean","jsonPath":".spec.isStorm"}"#,
    printcolumn = r#"{"name":"Occurrences","type":"integer","jsonPath":".spec.deduplication.occurrenceCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RemediationRequestSpec {
    /// SHA-256 of (alert name, namespace, target kind, target name), 64 lowercase hex digits. For
    /// a storm aggregate, the fingerprint of the signal that opened the window.
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub signal_fingerprint: String,
    /// Alert name (Prometheus) or event reason (Kubernetes).
    #[schemars(length(min = 1))]
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
    /// When the condition started (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub firing_time: String,
    /// When the gateway received the signal (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub received_time: String,
    /// The signal's labels.
    #[serde(default)]
    pub signal_labels: BTreeMap<String, String>,
    /// The signal's annotations.
    #[serde(default)]
    pub signal_annotations: BTreeMap<String, String>,
    /// True when this resource aggregates an alert storm.
    #[serde(default)]
    pub is_storm: bool,
    /// `rate` (too many signals of one alert name per minute) or `pattern` (too many distinct
    /// resources hit within two minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_type: Option<StormType>,
    /// How long the aggregation window has been open (closed: its whole length), e.g. `2m 30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_window: Option<String>,
    /// When the aggregation window opened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub storm_window_start: Option<String>,
    /// When it closed (absent while it is open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub storm_window_end: Option<String>,
    /// Every signal the window took in, sampled-out ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub storm_alert_count: Option<u64>,
    /// Of those, how many were sampled out (counted, not listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_sampled_out_count: Option<u64>,
    /// The distinct resources the storm hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_resources: Option<Vec<ResourceRef>>,
    /// Deduplication bookkeeping.
    pub deduplication: Deduplication,
}

/// Normalised severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs a human or a remediation now.
    Critical,
    /// Degradation.
    Warning,
    /// Everything else.
    Info,
}

/// The kind of storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StormType {
    /// Too many signals of one alert name in a minute.
    Rate,
    /// Too many distinct resources hit by one alert name in two minutes.
    Pattern,
}

/// A Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRef {
    /// `Pod`, `Deployment`, `Node`, … (`Unknown` when the signal names none).
    pub kind: String,
    /// The object's name (empty when the signal names none).
    pub name: String,
    /// The object's namespace (empty for cluster-scoped objects).
    #[serde(default)]
    pub namespace: String,
}

/// Deduplication bookkeeping of the signal (or storm) behind the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deduplication {
    /// First occurrence in the current window (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub first_occurrence: String,
    /// Latest occurrence the gateway has recorded (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_occurrence: String,
    /// Occurrences in the window, this resource's first included.
    #[schemars(range(min = 1))]
    pub occurrence_count: u64,
}

/// Written by the controllers that act on the request; the gateway never writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationRequestStatus {
    /// Where the remediation is (`Pending`, `Processing`, `Completed`, `Failed`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// A human-readable note on the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The ports model does not have the CRD's JSON shape (it cannot, being vendor-free).
#[derive(Debug, thiserror::Error)]
#[error("the RemediationRequest {name} does not fit the CRD: {source}")]
pub struct ShapeError {
    name: String,
    #[source]
    source: serde_json::Error,
}

/// The custom resource for a ports-model request.
pub fn to_resource(request: &PortRequest) -> Result<RemediationRequest, ShapeError> {
    let shape = |source| ShapeError {
        name: request.name.clone(),
        source,
    };
    let spec: RemediationRequestSpec =
        serde_json::from_value(serde_json::to_value(&request.spec).map_err(shape)?)
            .map_err(shape)?;
    Ok(RemediationRequest {
        metadata: ObjectMeta {
            name: Some(request.name.clone()),
            namespace: Some(request.namespace.clone()),
            labels: Some(request.labels.clone()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

/// The CustomResourceDefinition object.
pub fn definition() -> CustomResourceDefinition {
    RemediationRequest::crd()
}

/// The CustomResourceDefinition as the YAML `kubectl apply` takes (what `gateway crd` prints).
pub fn definition_yaml() -> String {
    let header =
        "# Generated by `gateway crd` from adapters/kube/src/crd.rs: do not edit by hand.\n";
    match serde_norway::to_string(&definition()) {
        Ok(yaml) => format!("{header}{yaml}"),
        // A CRD object always serialises; keep the signature honest rather than panic.
        Err(e) => format!("{header}# error: {e}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_ports::remediation::{
        DeduplicationInfo, RemediationRequestSpec as PortSpec, StormInfo,
    };
    use gateway_ports::{Fingerprint, ResourceRef as PortRef, Severity as PortSeverity, Timestamp};

    fn port_request(storm: bool) -> PortRequest {
        let resource = PortRef {
            kind: "Pod".into(),
            name: "api-1".into(),
            namespace: "prod".into(),
        };
        let t = Timestamp::from_millis(1_760_000_000_000);
        PortRequest {
            name: "rr-0123456789abcdef-1".into(),
            namespace: "prod".into(),
            labels: BTreeMap::from([("kubernaut.io/storm".into(), storm.to_string())]),
            spec: PortSpec {
                signal_fingerprint: Fingerprint::from_hex(&"ab".repeat(32)).expect("valid"),
                signal_name: "HighMemory".into(),
                severity: PortSeverity::Critical,
                signal_type: "prometheus-alert".into(),
                signal_source: "prometheus".into(),
                target_type: "kubernetes".into(),
                target_resource: resource.clone(),
                firing_time: t,
                received_time: t,
                signal_labels: BTreeMap::from([("team".into(), "a".into())]),
                signal_annotations: BTreeMap::new(),
                is_storm: storm,
                storm: storm.then(|| StormInfo {
                    storm_type: "pattern".into(),
                    storm_window: "1m 30s".into(),
                    storm_window_start: t,
                    storm_window_end: Some(t),
                    storm_alert_count: 12,
                    storm_sampled_out_count: 2,
                    affected_resources: vec![resource.clone()],
                }),
                deduplication: DeduplicationInfo {
                    first_occurrence: t,
                    last_occurrence: t,
                    occurrence_count: 3,
                },
            },
        }
    }

    #[test]
    fn the_generated_copy_in_deploy_matches_the_code() {
        let committed = include_str!("../../../deploy/crd.yaml");
        assert!(
            committed == definition_yaml(),
            "deploy/crd.yaml drifted from adapters/kube/src/crd.rs: run `cargo run -p gateway -- crd > deploy/crd.yaml`"
        );
    }

    #[test]
    fn every_field_of_the_ports_model_round_trips_through_the_crd_spec() {
        for storm in [false, true] {
            let request = port_request(storm);
            let resource = to_resource(&request).expect("fits");
            assert_eq!(
                serde_json::to_value(&resource.spec).expect("json"),
                serde_json::to_value(&request.spec).expect("json"),
                "the CRD spec must carry exactly the ports model's fields"
            );
            assert_eq!(
                resource.metadata.name.as_deref(),
                Some(request.name.as_str())
            );
        }
    }

    #[test]
    fn the_definition_is_namespaced_with_a_status_subresource_and_a_structural_schema() {
        let crd = definition();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.plural, PLURAL);
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, VERSION);
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        );
        let schema = serde_json::to_value(&version.schema).expect("json");
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["properties"]["signalFingerprint"]["pattern"],
            "^[0-9a-f]{64}$"
        );
        assert_eq!(
            spec["properties"]["severity"]["enum"],
            serde_json::json!(["critical", "warning", "info"])
        );
        let yaml = definition_yaml();
        assert!(yaml.starts_with("# Generated by `gateway crd`"));
        assert!(yaml.contains("kind: CustomResourceDefinition"));
    }
}
