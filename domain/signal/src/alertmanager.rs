//! Alertmanager webhook (version 4) → signals.

use gateway_ports::{ResourceRef, Severity, Signal, SignalSource, SignalStatus, Timestamp};
use serde::Deserialize;

use crate::error::{ECHO_CHARS, Object, PayloadError, UniqueMap, decode, truncated};
use crate::fingerprint::fingerprint;
use crate::{is_cluster_scoped, usable_time};

/// The fields of a webhook the gateway reads; serde skips the rest, which is how fields
/// Alertmanager adds later are ignored.
#[derive(Deserialize)]
struct Webhook {
    version: Option<String>,
    alerts: Option<Vec<Object<Alert>>>,
}

/// Everything optional so that a missing field is reported by `validate` with its exact path,
/// not by serde as "missing field" at the enclosing object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: Option<String>,
    labels: Option<UniqueMap<String>>,
    annotations: Option<UniqueMap<String>>,
    starts_at: Option<String>,
}

/// Label → kind, in order of precedence: the most specific object a label names wins.
///
/// `persistentvolumeclaim` comes before `node` and `service` because those two are often
/// labels of the scrape target (e.g. `service="kubelet"` on every kubelet metric) rather than
/// of the object the alert is about.
const RESOURCE_LABELS: [(&str, &str); 10] = [
    ("pod", "Pod"),
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("replicaset", "ReplicaSet"),
    // `job` is Prometheus's scrape job; kube-state-metrics names the Job in `job_name`.
    ("job_name", "Job"),
    ("cronjob", "CronJob"),
    ("persistentvolumeclaim", "PersistentVolumeClaim"),
    ("node", "Node"),
    ("service", "Service"),
];

/// Every alert of an Alertmanager webhook (version `"4"`), firing and resolved, in order.
///
/// `received` is when the gateway got the body; it becomes each signal's `received_time`, and
/// its `firing_time` when the alert's `startsAt` is unusable. See the crate documentation for
/// how each field is derived.
///
/// # Errors
/// A [`PayloadError`] naming the path of the first problem: malformed JSON (with line and
/// column), a wrong type, a `version` other than `"4"`, a missing or empty `alerts`, an alert
/// whose `status` is not `firing`/`resolved`, or whose `labels.alertname` is missing or empty.
/// One bad alert rejects the whole batch, so that Alertmanager's retry resends all of it.
pub fn parse_alertmanager(body: &[u8], received: Timestamp) -> Result<Vec<Signal>, PayloadError> {
    let webhook: Webhook = decode(body)?;
    if let Some(version) = webhook.version.as_deref()
        && version != "4"
    {
        return Err(PayloadError::at(
            "version",
            format!(
                "unsupported webhook version {:?}, expected \"4\"",
                truncated(version, ECHO_CHARS)
            ),
        ));
    }
    let alerts = webhook
        .alerts
        .ok_or_else(|| PayloadError::at("alerts", "missing: a webhook carries an alerts array"))?;
    if alerts.is_empty() {
        return Err(PayloadError::at("alerts", "no alerts"));
    }
    alerts
        .into_iter()
        .enumerate()
        .map(|(index, Object(alert))| to_signal(index, alert, received))
        .collect()
}

fn to_signal(index: usize, alert: Alert, received: Timestamp) -> Result<Signal, PayloadError> {
    let status = match alert.status.as_deref() {
        Some("firing") => SignalStatus::Firing,
        Some("resolved") => SignalStatus::Resolved,
        other => {
            let got = other.map_or_else(
                || "nothing".to_owned(),
                |s| format!("{:?}", truncated(s, ECHO_CHARS)),
            );
            return Err(PayloadError::at(
                format!("alerts[{index}].status"),
                format!("must be \"firing\" or \"resolved\", got {got}"),
            ));
        }
    };
    let labels = alert.labels.map(|m| m.0).unwrap_or_default();
    let name = match labels.get("alertname") {
        Some(name) if !name.trim().is_empty() => name.clone(),
        _ => {
            return Err(PayloadError::at(
                format!("alerts[{index}].labels.alertname"),
                "missing or empty: every alert needs a name",
            ));
        }
    };

    let label = |key: &str| labels.get(key).filter(|v| !v.is_empty());
    let namespace = label("namespace")
        .or_else(|| label("exported_namespace"))
        .cloned()
        .unwrap_or_default();
    let resource = RESOURCE_LABELS
        .iter()
        .find_map(|(key, kind)| {
            label(key).map(|value| ResourceRef {
                kind: (*kind).to_owned(),
                name: value.clone(),
                namespace: if is_cluster_scoped(kind) {
                    String::new()
                } else {
                    namespace.clone()
                },
            })
        })
        .unwrap_or_else(|| ResourceRef {
            kind: "Unknown".to_owned(),
            name: String::new(),
            namespace: namespace.clone(),
        });
    let severity = severity(labels.get("severity").map(String::as_str));

    Ok(Signal {
        fingerprint: fingerprint(&name, &namespace, &resource.kind, &resource.name),
        name,
        namespace,
        resource,
        severity,
        status,
        source: SignalSource::Prometheus,
        firing_time: usable_time(alert.starts_at.as_deref()).unwrap_or(received),
        received_time: received,
        labels,
        annotations: alert.annotations.map(|m| m.0).unwrap_or_default(),
    })
}

/// Teams spell severities many ways; these are the spellings seen in the wild, and anything
/// unrecognised is Info so that a typo never escalates.
fn severity(label: Option<&str>) -> Severity {
    let Some(label) = label else {
        return Severity::Info;
    };
    match label.trim().to_ascii_lowercase().as_str() {
        "critical" | "page" | "high" => Severity::Critical,
        "warning" | "warn" | "medium" => Severity::Warning,
        _ => Severity::Info,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SAMPLE: &[u8] = include_bytes!("../testdata/alertmanager-webhook.json");
    const RECEIVED: Timestamp = Timestamp::from_secs(1_764_090_300);

    fn webhook(alerts: Value) -> Vec<u8> {
        json!({"version": "4", "status": "firing", "receiver": "gw", "alerts": alerts})
            .to_string()
            .into_bytes()
    }

    fn alert(labels: Value) -> Value {
        json!({"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2025-11-25T17:00:00Z"})
    }

    fn one(alert: Value) -> Signal {
        let mut signals = parse_alertmanager(&webhook(json!([alert])), RECEIVED).unwrap();
        assert_eq!(signals.len(), 1);
        signals.remove(0)
    }

    fn error(body: &[u8]) -> PayloadError {
        parse_alertmanager(body, RECEIVED).unwrap_err()
    }

    #[test]
    fn the_sample_webhook_gives_every_alert_firing_and_resolved_in_order() {
        let signals = parse_alertmanager(SAMPLE, RECEIVED).unwrap();
        let summary: Vec<_> = signals
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.status,
                    s.resource.kind.as_str(),
                    s.resource.name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "KubePodCrashLooping",
                    SignalStatus::Firing,
                    "Pod",
                    "payments-api-7d9f8c6b5-x2x9q"
                ),
                (
                    "KubePersistentVolumeFillingUp",
                    SignalStatus::Firing,
                    "PersistentVolumeClaim",
                    "data-payments-db-0"
                ),
                (
                    "KubeDeploymentReplicasMismatch",
                    SignalStatus::Resolved,
                    "Deployment",
                    "payments-worker"
                ),
            ]
        );
    }

    #[test]
    fn the_sample_webhook_is_normalised_field_by_field() {
        let first = parse_alertmanager(SAMPLE, RECEIVED).unwrap().remove(0);
        assert_eq!(
            first.fingerprint.as_str(),
            "4737d08755f6951f17ded3bafca36b579cd6a3ef800d2e99076069014e9fe6db"
        );
        assert_eq!(first.namespace, "payments");
        assert_eq!(first.resource.namespace, "payments");
        assert_eq!(first.severity, Severity::Warning);
        assert_eq!(first.source, SignalSource::Prometheus);
        assert_eq!(first.firing_time, Timestamp::from_millis(1_764_089_910_123));
        assert_eq!(first.received_time, RECEIVED);
        assert_eq!(first.labels["container"], "api");
        assert_eq!(first.annotations["summary"], "Pod is crash looping.");
    }

    #[test]
    fn a_batch_of_alerts_gives_one_signal_per_alert_in_order() {
        let alerts = json!([
            alert(json!({"alertname": "A"})),
            {"status": "resolved", "labels": {"alertname": "B"}},
            alert(json!({"alertname": "C"})),
        ]);
        let signals = parse_alertmanager(&webhook(alerts), RECEIVED).unwrap();
        let got: Vec<_> = signals
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        assert_eq!(
            got,
            [
                ("A", SignalStatus::Firing),
                ("B", SignalStatus::Resolved),
                ("C", SignalStatus::Firing)
            ]
        );
    }

    #[test]
    fn unknown_fields_are_ignored_at_every_level() {
        let body = json!({
            "version": "4", "newTopLevelField": {"x": [1, 2]}, "truncatedAlerts": 3,
            "alerts": [{
                "status": "firing", "labels": {"alertname": "A"}, "annotations": {},
                "startsAt": "2025-11-25T17:00:00Z", "somethingNew": true, "fingerprint": 42
            }]
        });
        let signals = parse_alertmanager(body.to_string().as_bytes(), RECEIVED).unwrap();
        assert_eq!(signals.len(), 1);
    }

    #[test]
    fn a_missing_version_is_accepted() {
        let body = json!({"alerts": [alert(json!({"alertname": "A"}))]});
        assert!(parse_alertmanager(body.to_string().as_bytes(), RECEIVED).is_ok());
    }

    #[test]
    fn a_missing_alertname_is_reported_at_its_exact_path() {
        let err = error(&webhook(json!([
            alert(json!({"alertname": "A"})),
            alert(json!({"severity": "critical"})),
        ])));
        assert_eq!(err.path, "alerts[1].labels.alertname");
    }

    #[test]
    fn an_empty_alertname_is_rejected() {
        let err = error(&webhook(json!([alert(json!({"alertname": " "}))])));
        assert_eq!(err.path, "alerts[0].labels.alertname");
    }

    #[test]
    fn missing_labels_are_reported_as_a_missing_alertname() {
        let err = error(&webhook(json!([{"status": "firing"}])));
        assert_eq!(err.path, "alerts[0].labels.alertname");
    }

    #[test]
    fn labels_as_an_array_is_a_type_error_at_its_path() {
        let err = error(&webhook(json!([
            alert(json!({"alertname": "A"})),
            {"status": "firing", "labels": ["alertname", "B"]},
        ])));
        assert_eq!(err.path, "alerts[1].labels");
        assert!(err.reason.contains("invalid type"), "{err}");
    }

    #[test]
    fn a_label_value_that_is_not_a_string_is_a_type_error_at_its_path() {
        let err = error(&webhook(json!([alert(
            json!({"alertname": "A", "replicas": 3})
        )])));
        assert_eq!(err.path, "alerts[0].labels.replicas");
    }

    #[test]
    fn malformed_json_is_reported_with_line_and_column() {
        let err = error(b"{\n  \"alerts\": [\n    {\"status\": \"firing\",,}\n  ]\n}");
        assert!(err.reason.contains("line 3 column"), "{err}");
    }

    #[test]
    fn an_empty_body_is_malformed_json() {
        let err = error(b"");
        assert_eq!(err.path, "");
        assert!(err.reason.contains("line 1 column 0"), "{err}");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_rejected() {
        let positional = json!([null, [alert(json!({"alertname": "A"}))]]);
        let err = error(positional.to_string().as_bytes());
        assert_eq!(err.path, "");
        assert!(err.reason.contains("expected a JSON object"), "{err}");
    }

    #[test]
    fn an_alert_that_is_not_an_object_is_rejected_at_its_path() {
        let err = error(&webhook(json!([
            alert(json!({"alertname": "A"})),
            ["firing"]
        ])));
        assert_eq!(err.path, "alerts[1]");
    }

    #[test]
    fn version_3_is_rejected() {
        let body = json!({"version": "3", "alerts": [alert(json!({"alertname": "A"}))]});
        let err = error(body.to_string().as_bytes());
        assert_eq!(err.path, "version");
        assert!(err.reason.contains("\"3\""), "{err}");
    }

    #[test]
    fn an_empty_alerts_array_is_rejected() {
        let err = error(&webhook(json!([])));
        assert_eq!(err, PayloadError::at("alerts", "no alerts"));
    }

    #[test]
    fn a_missing_alerts_array_is_rejected() {
        let err = error(br#"{"version": "4"}"#);
        assert_eq!(err.path, "alerts");
    }

    #[test]
    fn an_alert_status_other_than_firing_or_resolved_is_rejected_at_its_path() {
        let mut bad = alert(json!({"alertname": "A"}));
        bad["status"] = json!("pending");
        let err = error(&webhook(json!([alert(json!({"alertname": "A"})), bad])));
        assert_eq!(err.path, "alerts[1].status");
        assert!(err.reason.contains("\"pending\""), "{err}");

        let mut missing = alert(json!({"alertname": "A"}));
        missing.as_object_mut().unwrap().remove("status");
        assert_eq!(error(&webhook(json!([missing]))).path, "alerts[0].status");
    }

    #[test]
    fn severity_labels_map_case_insensitively_and_default_to_info() {
        let cases = [
            (Some("critical"), Severity::Critical),
            (Some("PAGE"), Severity::Critical),
            (Some("High"), Severity::Critical),
            (Some("warning"), Severity::Warning),
            (Some("Warn"), Severity::Warning),
            (Some("medium"), Severity::Warning),
            (Some("info"), Severity::Info),
            (Some("none"), Severity::Info),
            (Some(""), Severity::Info),
            (None, Severity::Info),
        ];
        for (label, expected) in cases {
            let mut labels = json!({"alertname": "A"});
            if let Some(value) = label {
                labels["severity"] = json!(value);
            }
            assert_eq!(one(alert(labels)).severity, expected, "{label:?}");
        }
    }

    #[test]
    fn resource_labels_map_to_kinds() {
        let cases = [
            ("pod", "Pod"),
            ("deployment", "Deployment"),
            ("statefulset", "StatefulSet"),
            ("daemonset", "DaemonSet"),
            ("replicaset", "ReplicaSet"),
            ("job_name", "Job"),
            ("cronjob", "CronJob"),
            ("node", "Node"),
            ("service", "Service"),
            ("persistentvolumeclaim", "PersistentVolumeClaim"),
        ];
        for (label, kind) in cases {
            let mut labels = json!({"alertname": "A", "namespace": "ns"});
            labels[label] = json!("obj");
            let signal = one(alert(labels));
            assert_eq!(
                (signal.resource.kind.as_str(), signal.resource.name.as_str()),
                (kind, "obj")
            );
        }
    }

    #[test]
    fn the_most_specific_resource_label_wins() {
        let signal = one(alert(json!({
            "alertname": "A", "namespace": "ns", "service": "kubelet", "node": "worker-1",
            "persistentvolumeclaim": "data", "pod": "api-0"
        })));
        assert_eq!(signal.resource.kind, "Pod");
        let signal = one(alert(json!({
            "alertname": "A", "namespace": "ns", "service": "kubelet", "node": "worker-1",
            "persistentvolumeclaim": "data"
        })));
        assert_eq!(signal.resource.kind, "PersistentVolumeClaim");
    }

    #[test]
    fn the_scrape_job_label_is_not_a_kubernetes_job() {
        let signal = one(alert(
            json!({"alertname": "A", "job": "kube-state-metrics"}),
        ));
        assert_eq!(signal.resource.kind, "Unknown");
    }

    #[test]
    fn without_resource_labels_the_resource_is_unknown() {
        let signal = one(alert(json!({"alertname": "A", "namespace": "ns"})));
        assert_eq!(
            signal.resource,
            ResourceRef {
                kind: "Unknown".into(),
                name: String::new(),
                namespace: "ns".into()
            }
        );
    }

    #[test]
    fn empty_labels_count_as_absent() {
        let signal = one(alert(json!({
            "alertname": "A", "namespace": "", "exported_namespace": "prod", "pod": "", "node": "n1"
        })));
        assert_eq!(signal.namespace, "prod");
        assert_eq!(signal.resource.kind, "Node");
    }

    #[test]
    fn namespace_falls_back_to_exported_namespace_then_empty() {
        let signal = one(alert(
            json!({"alertname": "A", "namespace": "a", "exported_namespace": "b"}),
        ));
        assert_eq!(signal.namespace, "a");
        let signal = one(alert(json!({"alertname": "A", "exported_namespace": "b"})));
        assert_eq!(signal.namespace, "b");
        let signal = one(alert(json!({"alertname": "A"})));
        assert_eq!(signal.namespace, "");
    }

    #[test]
    fn a_node_has_no_namespace_but_the_signal_keeps_it() {
        let signal = one(alert(json!({
            "alertname": "KubeNodeNotReady", "namespace": "monitoring", "node": "worker-2"
        })));
        assert_eq!(signal.namespace, "monitoring");
        assert_eq!(signal.resource.namespace, "");
        // The documented vector: the signal's namespace, not the resource's, enters it.
        assert_eq!(
            signal.fingerprint.as_str(),
            "858b5542be5a7c179cf66b4ee3a7d7e629ce47dc235e771107f2601d98393bf2"
        );
    }

    #[test]
    fn zero_invalid_or_missing_starts_at_falls_back_to_the_receive_time() {
        for starts_at in [json!("0001-01-01T00:00:00Z"), json!("soon"), json!(null)] {
            let mut a = alert(json!({"alertname": "A"}));
            a["startsAt"] = starts_at.clone();
            assert_eq!(one(a).firing_time, RECEIVED, "{starts_at}");
        }
        let mut a = alert(json!({"alertname": "A"}));
        a.as_object_mut().unwrap().remove("startsAt");
        assert_eq!(one(a).firing_time, RECEIVED);
    }

    #[test]
    fn a_valid_starts_at_is_the_firing_time() {
        let signal = one(alert(json!({"alertname": "A"})));
        assert_eq!(signal.firing_time, Timestamp::from_secs(1_764_090_000));
        assert_eq!(signal.received_time, RECEIVED);
    }

    #[test]
    fn label_order_annotations_status_and_times_do_not_change_the_fingerprint() {
        let a = br#"{"version":"4","receiver":"r1","alerts":[{"status":"firing",
            "labels":{"alertname":"A","namespace":"ns","pod":"p","severity":"critical"},
            "annotations":{"summary":"one"},"startsAt":"2025-11-25T17:00:00Z"}]}"#;
        let b = br#"{"version":"4","receiver":"r2","alerts":[{"status":"resolved",
            "labels":{"severity":"warning","pod":"p","namespace":"ns","alertname":"A","replica":"b"},
            "annotations":{"summary":"two","extra":"x"},"startsAt":"2025-11-25T18:00:00Z"}]}"#;
        let a = parse_alertmanager(a, RECEIVED).unwrap().remove(0);
        let b = parse_alertmanager(b, Timestamp::from_secs(9))
            .unwrap()
            .remove(0);
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn a_different_namespace_gives_a_different_fingerprint() {
        let a = one(alert(
            json!({"alertname": "A", "namespace": "a", "pod": "p"}),
        ));
        let b = one(alert(
            json!({"alertname": "A", "namespace": "b", "pod": "p"}),
        ));
        assert_ne!(a.fingerprint, b.fingerprint);
    }
}
