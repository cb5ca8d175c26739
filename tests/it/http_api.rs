//! The HTTP contract, through the router without a socket: every bad-input case answers its
//! status with an `application/problem+json` body that names the problem.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use gateway_tests::{SAMPLE_EVENT, SAMPLE_WEBHOOK, TestGateway, alert, webhook};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Value,
    pub text: String,
}

pub async fn send(
    router: axum::Router,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    let response = router
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let header_of = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let content_type = header_of(header::CONTENT_TYPE).unwrap_or_default();
    let retry_after = header_of(header::RETRY_AFTER);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        retry_after,
        body,
        text,
    }
}

pub async fn post_json(router: axum::Router, uri: &str, body: impl Into<Body>) -> Answer {
    send(router, Method::POST, uri, Some("application/json"), body).await
}

const PROM: &str = "/api/v1/signals/prometheus";
const EVENTS: &str = "/api/v1/signals/kubernetes-event";

fn assert_problem(answer: &Answer, status: StatusCode, detail_contains: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(
        answer.content_type, "application/problem+json",
        "{}",
        answer.text
    );
    assert_eq!(answer.body["status"], status.as_u16(), "{}", answer.text);
    assert!(answer.body["title"].is_string(), "{}", answer.text);
    assert!(
        answer.body["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://"),
        "{}",
        answer.text
    );
    let detail = answer.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(detail_contains),
        "detail {detail:?} should mention {detail_contains:?}"
    );
}

#[tokio::test]
async fn malformed_json_is_400_with_line_and_column() {
    let gw = TestGateway::new();
    let answer = post_json(gw.router(), PROM, "{\"alerts\": [").await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, "line 1");
}

#[tokio::test]
async fn a_wrong_type_is_400_naming_its_path() {
    let gw = TestGateway::new();
    let mut body = webhook(vec![alert("A", "ns", "p", "firing")]);
    body["alerts"][0]["labels"] = json!(["not", "a", "map"]);
    let answer = post_json(gw.router(), PROM, body.to_string()).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, "alerts[0].labels");
    assert_eq!(answer.body["path"], "alerts[0].labels");
}

#[tokio::test]
async fn a_missing_alertname_is_400_naming_which_alert() {
    let gw = TestGateway::new();
    let mut body = webhook(vec![
        alert("A", "ns", "p", "firing"),
        alert("B", "ns", "q", "firing"),
    ]);
    body["alerts"][1]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("alertname");
    let answer = post_json(gw.router(), PROM, body.to_string()).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, "alerts[1]");
    assert!(
        gw.remediations().is_empty(),
        "a rejected batch creates nothing"
    );
}

#[tokio::test]
async fn a_missing_alerts_array_and_an_empty_one_are_400() {
    let gw = TestGateway::new();
    let answer = post_json(gw.router(), PROM, json!({"version": "4"}).to_string()).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, "alerts");
    let answer = post_json(gw.router(), PROM, webhook(vec![]).to_string()).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, "alerts");
}

#[tokio::test]
async fn an_event_missing_its_involved_object_name_is_400() {
    let gw = TestGateway::new();
    let mut event: Value = serde_json::from_slice(SAMPLE_EVENT).unwrap();
    event["involvedObject"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let answer = post_json(gw.router(), EVENTS, event.to_string()).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, "involvedObject");
}

#[tokio::test]
async fn a_non_json_content_type_is_415() {
    let gw = TestGateway::new();
    let answer = send(
        gw.router(),
        Method::POST,
        PROM,
        Some("text/plain"),
        SAMPLE_WEBHOOK,
    )
    .await;
    assert_problem(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );
    let answer = send(gw.router(), Method::POST, EVENTS, None, SAMPLE_EVENT).await;
    assert_problem(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );
}

#[tokio::test]
async fn json_with_a_charset_parameter_is_accepted() {
    let gw = TestGateway::new();
    let answer = send(
        gw.router(),
        Method::POST,
        PROM,
        Some("application/json; charset=utf-8"),
        SAMPLE_WEBHOOK,
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let gw = TestGateway::new();
    let limits = gateway::http::RequestLimits {
        max_body_bytes: 1024,
        ..Default::default()
    };
    let router = gateway::http::router(gw.state(), &limits);
    let big = webhook(
        (0..50)
            .map(|i| alert("Big", "ns", &format!("pod-{i}"), "firing"))
            .collect(),
    );
    let answer = post_json(router, PROM, big.to_string()).await;
    assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE, "limit");
}

#[tokio::test]
async fn a_wrong_method_is_405_and_an_unknown_path_404() {
    let gw = TestGateway::new();
    let answer = send(gw.router(), Method::GET, PROM, None, Body::empty()).await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED, "method");
    let answer = send(
        gw.router(),
        Method::POST,
        "/healthz",
        Some("application/json"),
        "{}",
    )
    .await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED, "method");
    let answer = send(
        gw.router(),
        Method::GET,
        "/api/v2/nothing",
        None,
        Body::empty(),
    )
    .await;
    assert_problem(&answer, StatusCode::NOT_FOUND, "endpoint");
}

#[tokio::test]
async fn arbitrary_garbage_never_yields_a_5xx() {
    let gw = TestGateway::new();
    let inputs: [&[u8]; 8] = [
        b"",
        b"null",
        b"[]",
        b"42",
        b"\"x\"",
        b"{\"alerts\":null}",
        b"\xff\xfe\x00",
        b"{\"alerts\":[{\"status\":\"firing\",\"labels\":{\"alertname\":7}}]}",
    ];
    for input in inputs {
        for uri in [PROM, EVENTS] {
            let answer = post_json(gw.router(), uri, input).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{uri} {:?}: {}",
                String::from_utf8_lossy(input),
                answer.text
            );
            assert_eq!(answer.content_type, "application/problem+json");
        }
    }
}

#[tokio::test]
async fn a_normal_event_is_accepted_and_ignored() {
    let gw = TestGateway::new();
    let mut event: Value = serde_json::from_slice(SAMPLE_EVENT).unwrap();
    event["type"] = json!("Normal");
    let answer = post_json(gw.router(), EVENTS, event.to_string()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["outcomes"][0]["outcome"], "ignored");
    assert!(gw.remediations().is_empty());
}

#[tokio::test]
async fn a_warning_event_creates_a_remediation() {
    let gw = TestGateway::new();
    let answer = post_json(gw.router(), EVENTS, SAMPLE_EVENT).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let docs = gw.remediations();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["spec"]["signalType"], "kubernetes-event");
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let gw = TestGateway::new();
    let answer = send(gw.router(), Method::GET, "/healthz", None, Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = send(gw.router(), Method::GET, "/readyz", None, Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    post_json(gw.router(), PROM, SAMPLE_WEBHOOK).await;
    let answer = send(gw.router(), Method::GET, "/metrics", None, Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.content_type.starts_with("text/plain"));
    for name in [
        "gateway_signals_received_total{severity=\"critical\",source=\"prometheus\"}",
        "gateway_remediation_requests_created_total",
        "gateway_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/signals/prometheus\",status=\"201\"",
        "gateway_signal_outcomes_total{outcome=\"created\"}",
        "gateway_build_info",
    ] {
        assert!(
            answer.text.contains(name),
            "metrics lack {name}:\n{}",
            answer.text
        );
    }
}

#[tokio::test]
async fn readiness_fails_once_shutdown_begins() {
    let gw = TestGateway::new();
    gw.gateway.stop_accepting();
    let answer = send(gw.router(), Method::GET, "/readyz", None, Body::empty()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["problems"][0], "shutting down");
}
