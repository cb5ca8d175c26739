//! Every setting has an upper bound (`ports/src/settings/`): a reload beyond one is rejected
//! by the real gateway and the settings in force stay; settings at every bound run a storm
//! through the pipeline, its windows and its ticks without a failure (issue 10: a
//! `max_window_duration: 300000000000y` once overflowed, answered 500 and killed the ticker).

use std::time::Duration;

use axum::http::StatusCode;
use gateway_adapter_memory::StaticConfigSource;
use gateway_ports::settings::{
    RawDedupSettings, RawRetrySettings, RawStormSettings, Threshold, Ttl,
};
use gateway_ports::{RetrySettings, StormSettings};
use gateway_tests::served::ServedGateway;
use gateway_tests::{TestGateway, alert, webhook};
use serde_json::Value;

use crate::http_api::post_json;

const HUGE: &str = "300000000000y";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_beyond_a_bound_is_rejected_naming_key_value_and_bound_and_the_gateway_keeps_serving()
 {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("storm.yaml"),
        "rate_threshold: 2\nbuffer_threshold: 1\n",
    )
    .unwrap();
    std::fs::write(config.join("dedup.yaml"), "ttl: 5m\n").unwrap();
    std::fs::write(config.join("retry.yaml"), "max_backoff: 5s\n").unwrap();
    let out = dir.path().join("out");
    let gw = ServedGateway::start(
        &[
            "--config-dir",
            config.to_str().unwrap(),
            "--remediation-dir",
            out.to_str().unwrap(),
        ],
        None,
    )
    .await;
    let client = reqwest::Client::new();
    let in_force = config_shown(&client, &gw).await;

    std::fs::write(
        config.join("storm.yaml"),
        format!("rate_threshold: 2\nbuffer_threshold: 1\ninactivity_timeout: {HUGE}\nmax_window_duration: {HUGE}\n"),
    )
    .unwrap();
    std::fs::write(config.join("dedup.yaml"), "ttl: 8d\n").unwrap();
    std::fs::write(config.join("retry.yaml"), "max_backoff: 10m\n").unwrap();
    let answer = client
        .post(format!("{}/-/reload", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let answer: Value = answer.json().await.unwrap();
    let errors = |kind: &str| -> Vec<String> {
        answer[kind]["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind} rejected: {answer}"))
            .iter()
            .map(|e| e.as_str().unwrap().to_owned())
            .collect()
    };
    let storm = errors("storm");
    assert_eq!(storm.len(), 2, "{storm:?}");
    for (line, key) in storm
        .iter()
        .zip(["inactivity_timeout", "max_window_duration"])
    {
        assert!(line.contains("storm.yaml"), "{line}");
        assert!(
            line.contains(&format!("{key}: must be at most 1h, got 300000000000years")),
            "{line}"
        );
    }
    assert!(
        errors("dedup")[0].contains("ttl: must be at most 7days, got 8days"),
        "{answer}"
    );
    assert!(
        errors("retry")[0].contains("max_backoff: must be at most 5m, got 10m"),
        "{answer}"
    );

    let now = config_shown(&client, &gw).await;
    for kind in ["storm", "dedup", "retry"] {
        assert_eq!(
            now[kind]["settings"], in_force[kind]["settings"],
            "{kind} kept"
        );
    }

    // A storm under the settings kept: answered, never a 500; the ticker lives on.
    for i in 0..5 {
        let answer = client
            .post(gw.prometheus_url())
            .header("content-type", "application/json")
            .body(storm_alert(i))
            .send()
            .await;
        let status = answer.unwrap().status();
        assert!(status.is_success(), "alert {i}: {status}");
    }
    gw.gateway.tick().await;
    gw.stop().await;
}

/// What `GET /config` shows.
async fn config_shown(client: &reqwest::Client, gw: &ServedGateway) -> Value {
    let answer = client.get(format!("{}/config", gw.base)).send().await;
    answer.unwrap().json().await.unwrap()
}

/// Settings at every bound at once (and thresholds at 1, so every alert is a storm).
fn at_the_bounds(threshold: u32) -> StaticConfigSource {
    let config = StaticConfigSource::default();
    config.set_storm(
        RawStormSettings {
            rate_threshold: threshold,
            pattern_threshold: threshold,
            buffer_threshold: threshold,
            inactivity_timeout: StormSettings::MAX_WINDOW,
            max_window_duration: StormSettings::MAX_WINDOW,
            sampling_threshold: f64::MIN_POSITIVE,
            sampling_rate: f64::MIN_POSITIVE,
        }
        .validate()
        .unwrap(),
    );
    config.set_dedup(RawDedupSettings { ttl: Ttl::MAX }.validate().unwrap());
    config.set_retry(
        RawRetrySettings {
            max_attempts: RetrySettings::MAX_ATTEMPTS,
            initial_backoff: RetrySettings::MAX_BACKOFF,
            max_backoff: RetrySettings::MAX_BACKOFF,
        }
        .validate()
        .unwrap(),
    );
    config
}

/// Alert `i` of one storm: one alert name, pod `pod-i`.
fn storm_alert(i: u32) -> String {
    let alert = alert("DiskFull", "prod", &format!("pod-{i}"), "firing");
    webhook(vec![alert]).to_string()
}

async fn post(gw: &TestGateway, pods: std::ops::Range<u32>) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in pods {
        let answer = post_json(gw.router(), "/api/v1/signals/prometheus", storm_alert(i)).await;
        statuses.push(answer.status);
    }
    statuses
}

#[tokio::test]
async fn a_storm_under_settings_at_every_bound_is_written_and_its_window_closes() {
    for threshold in [1, Threshold::MAX] {
        let gw = TestGateway::with_config(at_the_bounds(threshold));
        let statuses = post(&gw, 0..12).await;
        assert!(
            statuses.iter().all(|s| s.is_success()),
            "threshold {threshold}: {statuses:?}"
        );
        gw.gateway.tick().await;
        // The longest window and the longest TTL run out; the ticker closes what is open.
        gw.clock
            .advance(StormSettings::MAX_WINDOW + Duration::from_secs(1));
        gw.gateway.tick().await;
        gw.clock.advance(Ttl::MAX);
        gw.gateway.tick().await;
        let again = post(&gw, 0..3).await;
        assert!(again.iter().all(|s| s.is_success()), "{again:?}");
        gw.gateway.drain().await;
        let written = gw.remediations();
        assert!(
            !written.is_empty(),
            "threshold {threshold}: nothing written"
        );
        if threshold == 1 {
            let storms: Vec<&Value> = written
                .iter()
                .filter(|r| r["spec"]["isStorm"] == true)
                .collect();
            assert!(!storms.is_empty(), "a storm aggregate: {written:?}");
        }
    }
}
