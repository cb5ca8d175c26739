//! Kubernetes core/v1 Event → signal.

use std::collections::BTreeMap;

use gateway_ports::{ResourceRef, Severity, Signal, SignalSource, SignalStatus, Timestamp};
use serde::Deserialize;

use crate::error::{ECHO_CHARS, Object, PayloadError, decode, truncated};
use crate::fingerprint::fingerprint;
use crate::{is_cluster_scoped, usable_time};

/// What became of a Kubernetes event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventOutcome {
    /// A `Warning` event, normalised.
    Signal(Signal),
    /// A well-formed event that is not a signal (a `Normal` event); `reason` says why, for the
    /// sender and the logs.
    Ignored {
        /// Why it is not a signal.
        reason: String,
    },
}

/// The fields of a core/v1 Event the gateway reads; serde skips the rest. Everything optional
/// so that `parse_kubernetes_event` reports a missing field with its exact path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<Object<Metadata>>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    involved_object: Option<Object<ObjectReference>>,
    first_timestamp: Option<String>,
    event_time: Option<String>,
    source: Option<Object<EventSource>>,
    reporting_component: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct ObjectReference {
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct EventSource {
    component: Option<String>,
    host: Option<String>,
}

/// A Kubernetes core/v1 Event. Only `type: Warning` becomes a signal; `Normal` events are
/// [`EventOutcome::Ignored`].
///
/// `received` is when the gateway got the body; it is the `firing_time` when the event carries
/// neither `firstTimestamp` nor `eventTime`. See the crate documentation for how each field is
/// derived.
///
/// # Errors
/// A [`PayloadError`] naming the path of the first problem: malformed JSON (with line and
/// column), a wrong type, an `apiVersion` other than `v1` or a `kind` other than `Event` (when
/// given), a missing or empty `type`, `reason`, `involvedObject.kind` or `involvedObject.name`,
/// or a `type` other than `Warning`/`Normal`.
pub fn parse_kubernetes_event(
    body: &[u8],
    received: Timestamp,
) -> Result<EventOutcome, PayloadError> {
    let event: Event = decode(body)?;
    if let Some(api_version) = event.api_version.as_deref()
        && api_version != "v1"
    {
        // events.k8s.io/v1 names the fields differently (`regarding`, `note`); saying so beats
        // a puzzling "involvedObject: missing".
        return Err(PayloadError::at(
            "apiVersion",
            format!(
                "only core/v1 Events are accepted (apiVersion \"v1\"), got {:?}",
                truncated(api_version, ECHO_CHARS)
            ),
        ));
    }
    if let Some(kind) = event.kind.as_deref()
        && kind != "Event"
    {
        return Err(PayloadError::at(
            "kind",
            format!("expected \"Event\", got {:?}", truncated(kind, ECHO_CHARS)),
        ));
    }
    let event_type = required(event.event_type.as_deref(), "type")?;
    let reason = required(event.reason.as_deref(), "reason")?;
    let involved = event.involved_object.as_ref().map(|Object(o)| o);
    let kind = required(
        involved.and_then(|o| o.kind.as_deref()),
        "involvedObject.kind",
    )?;
    let resource_name = required(
        involved.and_then(|o| o.name.as_deref()),
        "involvedObject.name",
    )?;
    match event_type {
        "Warning" => {}
        "Normal" => {
            return Ok(EventOutcome::Ignored {
                reason: "a Normal event is informational; only Warning events become signals"
                    .to_owned(),
            });
        }
        // Kubernetes defines only these two; an unknown type is more likely a broken forwarder
        // than a signal, and dropping it silently would hide that.
        other => {
            return Err(PayloadError::at(
                "type",
                format!(
                    "must be \"Warning\" or \"Normal\", got {:?}",
                    truncated(other, ECHO_CHARS)
                ),
            ));
        }
    }

    let non_empty = |s: Option<&String>| s.filter(|s| !s.is_empty()).cloned();
    let namespace = non_empty(involved.and_then(|o| o.namespace.as_ref()))
        .or_else(|| {
            non_empty(
                event
                    .metadata
                    .as_ref()
                    .and_then(|Object(m)| m.namespace.as_ref()),
            )
        })
        .unwrap_or_default();
    let resource = ResourceRef {
        kind: kind.to_owned(),
        name: resource_name.to_owned(),
        namespace: if is_cluster_scoped(kind) {
            String::new()
        } else {
            namespace.clone()
        },
    };

    let mut labels = BTreeMap::from([
        ("event_type".to_owned(), event_type.to_owned()),
        ("involved_kind".to_owned(), kind.to_owned()),
        ("involved_name".to_owned(), resource_name.to_owned()),
    ]);
    let source = event.source.as_ref().map(|Object(s)| s);
    // Events written through events.k8s.io and read as core/v1 leave `source` empty and name
    // the writer in `reportingComponent` instead.
    if let Some(component) = non_empty(source.and_then(|s| s.component.as_ref()))
        .or_else(|| non_empty(event.reporting_component.as_ref()))
    {
        labels.insert("source_component".to_owned(), component);
    }
    if let Some(host) = non_empty(source.and_then(|s| s.host.as_ref())) {
        labels.insert("source_host".to_owned(), host);
    }
    let annotations = event
        .message
        .iter()
        .map(|message| ("message".to_owned(), message.clone()))
        .collect();

    let firing_time = usable_time(event.first_timestamp.as_deref())
        .or_else(|| usable_time(event.event_time.as_deref()))
        .unwrap_or(received);

    Ok(EventOutcome::Signal(Signal {
        fingerprint: fingerprint(reason, &namespace, kind, resource_name),
        name: reason.to_owned(),
        namespace,
        resource,
        severity: Severity::Warning,
        status: SignalStatus::Firing,
        source: SignalSource::KubernetesEvent,
        firing_time,
        received_time: received,
        labels,
        annotations,
    }))
}

fn required<'a>(value: Option<&'a str>, path: &str) -> Result<&'a str, PayloadError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| PayloadError::at(path, "missing or empty"))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SAMPLE: &[u8] = include_bytes!("../testdata/kubernetes-event.json");
    const RECEIVED: Timestamp = Timestamp::from_secs(1_764_090_300);

    fn parse(event: &Value) -> Result<EventOutcome, PayloadError> {
        parse_kubernetes_event(event.to_string().as_bytes(), RECEIVED)
    }

    fn signal(event: &Value) -> Signal {
        match parse(event).unwrap() {
            EventOutcome::Signal(signal) => signal,
            other => panic!("expected a signal, got {other:?}"),
        }
    }

    fn sample() -> Value {
        serde_json::from_slice(SAMPLE).unwrap()
    }

    fn without(mut event: Value, pointer: &str) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        event
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap()
            .remove(key);
        event
    }

    #[test]
    fn a_warning_event_becomes_a_signal() {
        let EventOutcome::Signal(signal) = parse_kubernetes_event(SAMPLE, RECEIVED).unwrap() else {
            panic!("the sample is a Warning event");
        };
        assert_eq!(signal.name, "BackOff");
        assert_eq!(signal.namespace, "payments");
        assert_eq!(
            signal.resource,
            ResourceRef {
                kind: "Pod".into(),
                name: "payments-api-7d9f8c6b5-x2x9q".into(),
                namespace: "payments".into(),
            }
        );
        assert_eq!(signal.severity, Severity::Warning);
        assert_eq!(signal.status, SignalStatus::Firing);
        assert_eq!(signal.source, SignalSource::KubernetesEvent);
        assert_eq!(signal.firing_time, Timestamp::from_secs(1_764_089_921));
        assert_eq!(signal.received_time, RECEIVED);
        assert_eq!(
            signal.fingerprint,
            fingerprint("BackOff", "payments", "Pod", "payments-api-7d9f8c6b5-x2x9q")
        );
        let labels: Vec<_> = signal
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("event_type", "Warning"),
                ("involved_kind", "Pod"),
                ("involved_name", "payments-api-7d9f8c6b5-x2x9q"),
                ("source_component", "kubelet"),
                ("source_host", "worker-2"),
            ]
        );
        assert!(signal.annotations["message"].starts_with("Back-off restarting failed container"));
    }

    #[test]
    fn a_normal_event_is_ignored_with_a_reason() {
        let mut event = sample();
        event["type"] = json!("Normal");
        let EventOutcome::Ignored { reason } = parse(&event).unwrap() else {
            panic!("a Normal event is not a signal");
        };
        assert!(reason.contains("Normal"), "{reason}");
    }

    #[test]
    fn an_unknown_event_type_is_rejected() {
        let mut event = sample();
        event["type"] = json!("warning");
        assert_eq!(parse(&event).unwrap_err().path, "type");
    }

    #[test]
    fn required_fields_are_reported_at_their_paths() {
        for pointer in [
            "/type",
            "/reason",
            "/involvedObject/kind",
            "/involvedObject/name",
        ] {
            let err = parse(&without(sample(), pointer)).unwrap_err();
            let path = pointer[1..].replace('/', ".");
            assert_eq!(err.path, path, "{pointer}");
        }
        let err = parse(&without(sample(), "/involvedObject")).unwrap_err();
        assert_eq!(err.path, "involvedObject.kind");
    }

    #[test]
    fn an_event_missing_involved_object_name_is_an_error_with_its_path() {
        let err = parse(&without(sample(), "/involvedObject/name")).unwrap_err();
        assert_eq!(
            err,
            PayloadError::at("involvedObject.name", "missing or empty")
        );
    }

    #[test]
    fn a_wrong_type_is_reported_at_its_path() {
        let mut event = sample();
        event["involvedObject"]["name"] = json!(["a"]);
        assert_eq!(parse(&event).unwrap_err().path, "involvedObject.name");
    }

    #[test]
    fn an_involved_object_that_is_not_an_object_is_rejected_at_its_path() {
        let mut event = sample();
        event["involvedObject"] = json!(["Pod", "p", "ns"]);
        assert_eq!(parse(&event).unwrap_err().path, "involvedObject");
    }

    #[test]
    fn malformed_json_is_reported_with_line_and_column() {
        let err = parse_kubernetes_event(b"{\"type\": Warning}", RECEIVED).unwrap_err();
        assert!(err.reason.contains("line 1 column"), "{err}");
    }

    #[test]
    fn events_k8s_io_events_are_rejected_with_a_clear_reason() {
        let event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "type": "Warning",
            "reason": "BackOff", "note": "…", "regarding": {"kind": "Pod", "name": "p"}
        });
        let err = parse(&event).unwrap_err();
        assert_eq!(err.path, "apiVersion");
        assert!(err.reason.contains("core/v1"), "{err}");
    }

    #[test]
    fn another_kind_is_rejected() {
        let mut event = sample();
        event["kind"] = json!("Pod");
        assert_eq!(parse(&event).unwrap_err().path, "kind");
    }

    #[test]
    fn api_version_and_kind_may_be_omitted() {
        let event = without(without(sample(), "/apiVersion"), "/kind");
        assert_eq!(signal(&event).name, "BackOff");
    }

    #[test]
    fn namespace_comes_from_the_involved_object_then_the_metadata() {
        let mut event = sample();
        event["involvedObject"]["namespace"] = json!("app");
        event["metadata"]["namespace"] = json!("meta");
        assert_eq!(signal(&event).namespace, "app");
        event["involvedObject"]["namespace"] = json!("");
        assert_eq!(signal(&event).namespace, "meta");
        let event = without(without(event, "/involvedObject/namespace"), "/metadata");
        assert_eq!(signal(&event).namespace, "");
    }

    #[test]
    fn a_node_event_has_a_cluster_scoped_resource() {
        let event = json!({
            "metadata": {"namespace": "default"}, "type": "Warning", "reason": "NodeNotReady",
            "involvedObject": {"kind": "Node", "name": "worker-2"}
        });
        let signal = signal(&event);
        assert_eq!(signal.namespace, "default");
        assert_eq!(signal.resource.namespace, "");
        assert!(signal.annotations.is_empty());
        assert!(!signal.labels.contains_key("source_component"));
    }

    #[test]
    fn firing_time_is_first_timestamp_then_event_time_then_received() {
        let mut event = sample();
        event["eventTime"] = json!("2025-11-25T16:00:00.123456Z");
        assert_eq!(
            signal(&event).firing_time,
            Timestamp::from_secs(1_764_089_921)
        );
        event["firstTimestamp"] = Value::Null;
        assert_eq!(
            signal(&event).firing_time,
            Timestamp::from_millis(1_764_086_400_123)
        );
        event["eventTime"] = json!("0001-01-01T00:00:00Z");
        assert_eq!(signal(&event).firing_time, RECEIVED);
    }

    #[test]
    fn the_reporting_component_stands_in_for_an_empty_source() {
        let mut event = sample();
        event["source"] = json!({});
        event["reportingComponent"] = json!("kubelet");
        let signal = signal(&event);
        assert_eq!(signal.labels["source_component"], "kubelet");
        assert!(!signal.labels.contains_key("source_host"));
    }

    #[test]
    fn count_and_last_timestamp_do_not_change_the_fingerprint() {
        let mut later = sample();
        later["count"] = json!(24);
        later["lastTimestamp"] = json!("2025-11-25T17:08:12Z");
        later["message"] = json!("something else");
        assert_eq!(signal(&sample()).fingerprint, signal(&later).fingerprint);
    }
}
