//! Input hygiene through the router: a repeated JSON key is a 400 naming it, values echoed in
//! error bodies are truncated, and `POST /-/reload` is single-flight.

use gateway_tests::served::app_state;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use gateway::config_source::SettingsSource;
use gateway::http::{AppState, RequestLimits, router};
use gateway_adapter_file_config::{
    DocumentNames, DocumentSource, Documents, ReadDocuments, ReadError,
};
use gateway_adapter_memory::SystemClock;

use crate::http_api::send;

/// Every read is a new version of `storm.yaml`, so every reload is an attempt (identical content
/// would not be), and takes a while, so that concurrent reloads overlap.
struct NewEachRead(AtomicU32);

#[async_trait]
impl ReadDocuments for NewEachRead {
    async fn read(&self) -> Result<Documents, ReadError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 2;
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok(documents(n))
    }
}

fn documents(rate_threshold: u32) -> Documents {
    Documents::from_data(&BTreeMap::from([
        (
            "storm.yaml".to_owned(),
            format!("rate_threshold: {rate_threshold}\n"),
        ),
        ("dedup.yaml".to_owned(), "ttl: 5m\n".to_owned()),
        ("retry.yaml".to_owned(), "max_attempts: 3\n".to_owned()),
    ]))
}

/// A gateway (memory state, directory sink) whose settings come from `source`.
async fn state_over(source: Option<Arc<SettingsSource>>) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().to_str().unwrap().to_owned();
    let remediation_dir = dir.path().join("out");
    let state = app_state(
        &[
            "--config-dir",
            &config_dir,
            "--remediation-dir",
            remediation_dir.to_str().unwrap(),
        ],
        source,
    )
    .await;
    (state, dir)
}

fn reloads_counted(metrics: &str, kind: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("gateway_config_reload_total{") && l.contains(kind))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_reloads_share_at_most_two_reads_of_the_source() {
    let reader = DocumentSource::start(
        NewEachRead(AtomicU32::new(0)),
        DocumentNames::labelled("test source", "key"),
        &documents(1),
        Arc::new(SystemClock),
    )
    .unwrap();
    let source = Arc::new(SettingsSource::new(Arc::new(reader), "test source"));
    let (state, _dir) = state_over(Some(source)).await;
    let limits = RequestLimits::default();
    let metrics = send(
        router(state.clone(), &limits),
        Method::GET,
        "/metrics",
        None,
        Body::empty(),
    )
    .await
    .text;
    let before = reloads_counted(&metrics, "config_type=\"storm\"");

    // Fifty requests in flight at once (polled together; each reload's read sleeps).
    let answers = futures::future::join_all((0..50).map(|_| {
        let app = router(state.clone(), &limits);
        send(app, Method::POST, "/-/reload", None, Body::empty())
    }))
    .await;
    let mut generations = Vec::new();
    for answer in answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.body["storm"]["result"], "success", "{}", answer.text);
        generations.push(answer.body["storm"]["generation"].as_u64().unwrap());
    }
    generations.sort_unstable();
    generations.dedup();

    let metrics = send(
        router(state.clone(), &limits),
        Method::GET,
        "/metrics",
        None,
        Body::empty(),
    )
    .await
    .text;
    let grown = reloads_counted(&metrics, "config_type=\"storm\"") - before;
    assert!(
        (1..=2).contains(&grown),
        "50 concurrent reloads made {grown} attempts"
    );
    assert!(generations.len() <= 2, "{generations:?}");
}

fn webhook(alert: &serde_json::Value) -> String {
    serde_json::json!({ "version": "4", "alerts": [alert] }).to_string()
}

async fn post_webhook(state: &AppState, body: String) -> crate::http_api::Answer {
    send(
        router(state.clone(), &RequestLimits::default()),
        Method::POST,
        "/api/v1/signals/prometheus",
        Some("application/json"),
        body,
    )
    .await
}

#[tokio::test]
async fn a_repeated_label_key_is_a_400_naming_it() {
    let (state, _dir) = state_over(None).await;
    let body = r#"{"version":"4","alerts":[{"status":"firing",
        "labels":{"alertname":"A","namespace":"ns","namespace":"kube-system"}}]}"#;
    let answer = post_webhook(&state, body.to_owned()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.body["path"], "alerts[0].labels.namespace");
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(detail.contains(r#"duplicate key "namespace""#), "{detail}");

    let body = r#"{"version":"4","alerts":[{"status":"firing","status":"resolved",
        "labels":{"alertname":"A"}}]}"#;
    let answer = post_webhook(&state, body.to_owned()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.body["path"], "alerts[0].status");
}

#[tokio::test]
async fn a_megabyte_value_is_echoed_truncated() {
    let (state, _dir) = state_over(None).await;
    let huge = "x".repeat(1_000_000);
    for alert in [
        serde_json::json!({ "status": huge, "labels": { "alertname": "A" } }),
        // serde echoes a string where an object belongs.
        serde_json::json!({ "status": "firing", "labels": huge }),
    ] {
        let answer = post_webhook(&state, webhook(&alert)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.status);
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains("xxx…"), "{detail}");
        assert!(answer.text.len() < 1024, "{} bytes", answer.text.len());
    }
    let content_type = format!("text/{}", "y".repeat(8000));
    let answer = send(
        router(state.clone(), &RequestLimits::default()),
        Method::POST,
        "/api/v1/signals/prometheus",
        Some(&content_type),
        "{}",
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.text.len() < 1024, "{} bytes", answer.text.len());
}
