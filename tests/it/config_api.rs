//! `GET /config`, `POST /-/reload` and the reload metrics, on the real file config source.

use gateway_tests::served::app_state;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use gateway::http::{AppState, RequestLimits, router};

use crate::http_api::send;

struct Served {
    dir: tempfile::TempDir,
    state: AppState,
}

async fn served() -> Served {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("storm.yaml"), "rate_threshold: 10\n").unwrap();
    std::fs::write(dir.path().join("dedup.yaml"), "ttl: 5m\n").unwrap();
    let config_dir = dir.path().to_str().unwrap().to_owned();
    let remediation_dir = dir.path().join("out");
    let state = app_state(
        &[
            "--config-dir",
            &config_dir,
            "--remediation-dir",
            remediation_dir.to_str().unwrap(),
        ],
        None,
    )
    .await;
    Served { dir, state }
}

async fn get(s: &Served, uri: &str) -> crate::http_api::Answer {
    send(
        router(s.state.clone(), &RequestLimits::default()),
        Method::GET,
        uri,
        None,
        Body::empty(),
    )
    .await
}

async fn reload(s: &Served) -> crate::http_api::Answer {
    send(
        router(s.state.clone(), &RequestLimits::default()),
        Method::POST,
        "/-/reload",
        None,
        Body::empty(),
    )
    .await
}

#[tokio::test]
async fn config_shows_the_settings_in_force_with_origin_hash_and_generation() {
    let s = served().await;
    let answer = get(&s, "/config").await;
    assert_eq!(answer.status, StatusCode::OK);
    let storm = &answer.body["storm"];
    assert_eq!(storm["settings"]["rate_threshold"], 10);
    assert_eq!(storm["settings"]["inactivity_timeout"], "1m");
    assert_eq!(storm["generation"], 0);
    assert_eq!(storm["hash"].as_str().unwrap().len(), 64);
    assert!(storm["origin"].as_str().unwrap().ends_with("storm.yaml"));
    assert_eq!(answer.body["retry"]["origin"], "built-in defaults");
}

#[tokio::test]
async fn reload_applies_a_valid_change_and_reports_a_rejected_one_with_500() {
    let s = served().await;
    std::fs::write(s.dir.path().join("storm.yaml"), "rate_threshold: 3\n").unwrap();
    let answer = reload(&s).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["storm"]["result"], "success");
    assert_eq!(answer.body["storm"]["changed"], true);
    assert_eq!(answer.body["dedup"]["changed"], false);
    assert_eq!(
        get(&s, "/config").await.body["storm"]["settings"]["rate_threshold"],
        3
    );

    std::fs::write(s.dir.path().join("storm.yaml"), "rate_threshold: 0\n").unwrap();
    let answer = reload(&s).await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.text
    );
    let error = answer.body["storm"]["errors"][0].as_str().unwrap();
    assert!(
        error.contains("storm.yaml") && error.contains("rate_threshold"),
        "{error}"
    );
    assert_eq!(
        get(&s, "/config").await.body["storm"]["settings"]["rate_threshold"],
        3,
        "old settings stay"
    );

    let again = reload(&s).await;
    assert_eq!(
        again.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a file still invalid is still an error"
    );
    assert_eq!(again.body["storm"]["changed"], false);

    let metrics = get(&s, "/metrics").await.text;
    for line in [
        "gateway_config_reload_total{config_type=\"storm\",result=\"success\"} 1",
        "gateway_config_reload_total{config_type=\"storm\",result=\"error\"} 1",
        "gateway_config_generation{config_type=\"storm\"} 1",
        "gateway_config_reload_duration_seconds_bucket{config_type=\"storm\",le=\"0.001\"}",
        "gateway_config_reload_last_success_timestamp{config_type=\"storm\"}",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
}
