//! Properties over arbitrary input: the parsers never panic, and well-formed batches keep
//! every alert.

use gateway_ports::{SignalStatus, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{EventOutcome, parse_alertmanager, parse_kubernetes_event};

const RECEIVED: Timestamp = Timestamp::from_secs(1_764_090_300);

/// Keys the parsers look for, so that random documents reach past the first type check.
const KEYS: [&str; 16] = [
    "version",
    "alerts",
    "status",
    "labels",
    "annotations",
    "startsAt",
    "alertname",
    "namespace",
    "pod",
    "node",
    "severity",
    "type",
    "reason",
    "involvedObject",
    "kind",
    "name",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("4".to_owned()),
            Just("firing".to_owned()),
            Just("resolved".to_owned()),
            Just("Warning".to_owned()),
            Just("Normal".to_owned()),
            Just("0001-01-01T00:00:00Z".to_owned()),
            Just("2025-11-25T17:00:00Z".to_owned()),
            ".*",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(&KEYS[..]).prop_map(str::to_owned),
                        ".*"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn label_value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_./-]{0,12}"
}

prop_compose! {
    fn well_formed_alert()(
        name in "[A-Za-z][A-Za-z0-9]{0,15}",
        resolved in any::<bool>(),
        extra in prop::collection::btree_map("[a-z_]{1,10}", label_value(), 0..6),
        namespace in prop::option::of(label_value()),
        pod in prop::option::of(label_value()),
        severity in prop::option::of("(?i)critical|warning|info|page|[a-z]{0,6}"),
        starts_at in prop_oneof![
            Just("2025-11-25T17:00:00Z".to_owned()),
            Just("0001-01-01T00:00:00Z".to_owned()),
            ".{0,20}",
        ],
    ) -> Value {
        let mut labels = serde_json::Map::new();
        for (key, value) in extra {
            labels.insert(key, Value::String(value));
        }
        labels.insert("alertname".to_owned(), json!(name));
        for (key, value) in [("namespace", namespace), ("pod", pod), ("severity", severity)] {
            if let Some(value) = value {
                labels.insert(key.to_owned(), json!(value));
            }
        }
        json!({
            "status": if resolved { "resolved" } else { "firing" },
            "labels": labels,
            "annotations": {"summary": "generated"},
            "startsAt": starts_at,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "0123456789abcdef",
        })
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_alertmanager(&body, RECEIVED);
        let _ = parse_kubernetes_event(&body, RECEIVED);
    }

    #[test]
    fn json_ish_strings_never_panic(body in r#"[\[\]{}":,0-9a-zA-Z .\\-]{0,200}"#) {
        let _ = parse_alertmanager(body.as_bytes(), RECEIVED);
        let _ = parse_kubernetes_event(body.as_bytes(), RECEIVED);
    }

    #[test]
    fn arbitrary_json_documents_never_panic(doc in json_value()) {
        let body = doc.to_string();
        let _ = parse_alertmanager(body.as_bytes(), RECEIVED);
        let _ = parse_kubernetes_event(body.as_bytes(), RECEIVED);
        let _ = parse_alertmanager(json!({"version": "4", "alerts": [doc.clone()]}).to_string().as_bytes(), RECEIVED);
        let _ = parse_kubernetes_event(
            json!({"type": "Warning", "reason": "R", "involvedObject": doc}).to_string().as_bytes(),
            RECEIVED,
        );
    }

    #[test]
    fn a_well_formed_webhook_of_n_alerts_gives_n_signals_in_order(
        alerts in prop::collection::vec(well_formed_alert(), 1..20),
    ) {
        let body = json!({"version": "4", "status": "firing", "receiver": "gw", "alerts": alerts});
        let signals = parse_alertmanager(body.to_string().as_bytes(), RECEIVED)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(signals.len(), alerts.len());
        for (signal, alert) in signals.iter().zip(&alerts) {
            prop_assert_eq!(Some(signal.name.as_str()), alert["labels"]["alertname"].as_str());
            let resolved = alert["status"] == "resolved";
            prop_assert_eq!(signal.status == SignalStatus::Resolved, resolved);
            prop_assert_eq!(signal.fingerprint.as_str().len(), 64);
        }
    }

    #[test]
    fn well_formed_warning_events_give_a_signal(
        reason in "[A-Za-z]{1,12}",
        kind in "[A-Z][a-z]{0,10}",
        name in "[a-z0-9-]{1,20}",
        namespace in prop::option::of("[a-z0-9-]{0,10}"),
    ) {
        let event = json!({
            "type": "Warning", "reason": reason,
            "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
        });
        let outcome = parse_kubernetes_event(event.to_string().as_bytes(), RECEIVED)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let is_signal = matches!(outcome, EventOutcome::Signal(_));
        prop_assert!(is_signal);
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000);
    for body in [
        deep.clone(),
        format!(r#"{{"alerts":[{{"status":"firing","x":{deep}"#),
        format!(r#"{{"involvedObject":{{"extra":{deep}"#),
    ] {
        assert!(parse_alertmanager(body.as_bytes(), RECEIVED).is_err());
        assert!(parse_kubernetes_event(body.as_bytes(), RECEIVED).is_err());
    }
}
