//! Namespace scoping (`security.yaml`'s `allowed_namespaces`), through the whole request path:
//! the real file config source, the router, the intake, the directory sink.
//!
//! A refused signal is answered `rejected` (2xx: the sender must not resend it), counted, and
//! leaves nothing behind — no RemediationRequest, no dedup record — so that once the list is
//! widened, the same alert sent again is new.

use gateway_tests::served::app_state;
use std::path::Path;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use gateway::http::{AppState, RequestLimits, router};
use gateway_tests::{alert, webhook};
use serde_json::{Value, json};

use crate::http_api::{Answer, post_json, send};

const PROM: &str = "/api/v1/signals/prometheus";
const REFUSED: &str = "gateway_signals_rejected_total{reason=\"namespace_not_allowed\"}";

struct Served {
    dir: tempfile::TempDir,
    state: AppState,
}

impl Served {
    /// A gateway on a config directory whose `security.yaml` is `security`, in-memory state,
    /// RemediationRequests written as files.
    async fn start(security: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        std::fs::write(config.join("security.yaml"), security).unwrap();
        let out = dir.path().join("out");
        let state = app_state(
            &[
                "--config-dir",
                config.to_str().unwrap(),
                "--remediation-dir",
                out.to_str().unwrap(),
                "--fallback-namespace",
                "kubernaut-system",
            ],
            None,
        )
        .await;
        Served { dir, state }
    }

    fn router(&self) -> axum::Router {
        router(self.state.clone(), &RequestLimits::default())
    }

    async fn post(&self, body: &Value) -> Answer {
        post_json(self.router(), PROM, body.to_string()).await
    }

    async fn reload_with(&self, security: &str) -> Answer {
        let path = self.dir.path().join("config/security.yaml");
        std::fs::write(path, security).unwrap();
        send(
            self.router(),
            Method::POST,
            "/-/reload",
            None,
            Body::empty(),
        )
        .await
    }

    async fn metrics(&self) -> String {
        send(self.router(), Method::GET, "/metrics", None, Body::empty())
            .await
            .text
    }

    /// The RemediationRequests written, as (namespace, alert name), sorted.
    fn written(&self) -> Vec<(String, String)> {
        let out = self.dir.path().join("out");
        let mut written: Vec<(String, String)> = files(&out)
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap();
                let doc: Value = serde_norway::from_str(&text).unwrap();
                (
                    doc["metadata"]["namespace"].as_str().unwrap().to_owned(),
                    doc["spec"]["signalName"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        written.sort();
        written
    }
}

/// Every visible `.yaml` file under `dir`, at any depth.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            found.extend(files(&path));
        } else if name.ends_with(".yaml") && !name.starts_with('.') {
            found.push(path);
        }
    }
    found
}

/// A firing alert on a cluster-scoped target (a node): no namespace.
fn node_alert(name: &str) -> Value {
    json!({
        "status": "firing",
        "labels": { "alertname": name, "node": "worker-1", "severity": "critical" },
        "annotations": {},
        "startsAt": "2025-11-25T17:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "0123456789abcdef"
    })
}

fn outcome(answer: &Answer, i: usize) -> (&str, &str) {
    let o = &answer.body["outcomes"][i];
    (o["alert"].as_str().unwrap(), o["outcome"].as_str().unwrap())
}

fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn signals_outside_the_allowed_namespaces_are_rejected_one_by_one_and_leave_nothing() {
    let s = Served::start("allowed_namespaces: [team-*]\n").await;
    let batch = webhook(vec![
        alert("TeamDown", "team-a", "api-1", "firing"),
        alert("DefaultDown", "default", "web-1", "firing"),
        node_alert("NodeDown"),
        alert("TeamToo", "team-b", "api-2", "firing"),
    ]);
    let answer = s.post(&batch).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert!(
        answer.retry_after.is_none(),
        "not to be resent: {}",
        answer.text
    );
    assert_eq!(outcome(&answer, 0), ("TeamDown", "created"));
    assert_eq!(outcome(&answer, 1), ("DefaultDown", "rejected"));
    assert_eq!(outcome(&answer, 2), ("NodeDown", "rejected"));
    assert_eq!(outcome(&answer, 3), ("TeamToo", "created"));
    assert_eq!(
        answer.body["outcomes"][1]["detail"],
        "namespace \"default\" is not allowed (security.yaml allowed_namespaces)"
    );
    assert_eq!(
        answer.body["outcomes"][2]["detail"],
        "fallback namespace \"kubernaut-system\" is not allowed (security.yaml allowed_namespaces)",
        "a cluster-scoped target is checked as the namespace it would land in"
    );
    assert_eq!(
        s.written(),
        [
            ("team-a".to_owned(), "TeamDown".to_owned()),
            ("team-b".to_owned(), "TeamToo".to_owned())
        ]
    );
    let metrics = s.metrics().await;
    assert_eq!(metric(&metrics, REFUSED), Some(2.0), "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "gateway_signals_rejected_total{reason=\"sink_rejected\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "gateway_signal_outcomes_total{outcome=\"rejected\"}"
        ),
        Some(2.0)
    );

    // Refused again, not a duplicate: nothing was recorded for them.
    let again = s.post(&batch).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    assert_eq!(outcome(&again, 0), ("TeamDown", "duplicate"));
    assert_eq!(outcome(&again, 1), ("DefaultDown", "rejected"));
    assert_eq!(outcome(&again, 2), ("NodeDown", "rejected"));
    assert_eq!(metric(&s.metrics().await, REFUSED), Some(4.0));

    // Widened by a reload: the very same alerts are new now, and created.
    let reloaded = s
        .reload_with("allowed_namespaces: [team-*, default, kubernaut-system]\n")
        .await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text);
    assert_eq!(reloaded.body["security"]["changed"], true);
    let widened = s.post(&batch).await;
    assert_eq!(widened.status, StatusCode::CREATED, "{}", widened.text);
    assert_eq!(outcome(&widened, 0), ("TeamDown", "duplicate"));
    assert_eq!(outcome(&widened, 1), ("DefaultDown", "created"));
    assert_eq!(outcome(&widened, 2), ("NodeDown", "created"));
    assert_eq!(outcome(&widened, 3), ("TeamToo", "duplicate"));
    assert_eq!(s.written().len(), 4, "{:?}", s.written());
    assert!(
        s.written()
            .contains(&("kubernaut-system".to_owned(), "NodeDown".to_owned()))
    );
    assert_eq!(metric(&s.metrics().await, REFUSED), Some(4.0));
}

#[tokio::test]
async fn an_empty_list_refuses_every_signal_and_an_invalid_reload_keeps_the_list_in_force() {
    let s = Served::start("allowed_namespaces: []\n").await;
    let batch = webhook(vec![alert("Down", "team-a", "api-1", "firing")]);
    let answer = s.post(&batch).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(outcome(&answer, 0), ("Down", "rejected"));
    assert!(s.written().is_empty());

    let refused = s.reload_with("allowed_namespaces: [Team-A]\n").await;
    assert_eq!(
        refused.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        refused.text
    );
    let error = refused.body["security"]["errors"][0].as_str().unwrap();
    assert!(
        error.contains("security.yaml: allowed_namespaces: entry 1 \"Team-A\""),
        "{error}"
    );
    assert_eq!(outcome(&s.post(&batch).await, 0), ("Down", "rejected"));
    let config = send(s.router(), Method::GET, "/config", None, Body::empty()).await;
    assert_eq!(
        config.body["security"]["settings"]["allowed_namespaces"],
        json!([]),
        "{}",
        config.text
    );
    assert_eq!(config.body["security"]["generation"], 0);
    let metrics = s.metrics().await;
    for line in [
        "gateway_config_reload_total{config_type=\"security\",result=\"error\"} 1",
        "gateway_config_reload_total{config_type=\"security\",result=\"success\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }

    let applied = s.reload_with("allowed_namespaces: [\"team-?\"]\n").await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.text);
    assert_eq!(outcome(&s.post(&batch).await, 0), ("Down", "created"));
    assert!(
        s.metrics()
            .await
            .contains("gateway_config_generation{config_type=\"security\"} 1")
    );
}
