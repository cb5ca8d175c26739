//! The pipeline end to end through the router: real in-memory dedup, real storm detector, real
//! directory sink, a manual clock.

use std::time::Duration;

use axum::http::StatusCode;
use gateway_adapter_memory::StaticConfigSource;
use gateway_ports::settings::{RawRetrySettings, RawStormSettings};
use gateway_ports::{Rejection, WriteFailure};
use gateway_tests::{SAMPLE_WEBHOOK, TestGateway, alert, webhook};
use serde_json::Value;

use crate::http_api::post_json;

const PROM: &str = "/api/v1/signals/prometheus";

fn outcomes(body: &Value) -> Vec<String> {
    body["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["outcome"].as_str().unwrap().to_owned())
        .collect()
}

fn fast_retries() -> StaticConfigSource {
    let config = StaticConfigSource::default();
    config.set_retry(
        RawRetrySettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
        .validate()
        .unwrap(),
    );
    config
}

#[tokio::test]
async fn the_sample_posted_twice_gives_one_remediation_and_duplicate_outcomes() {
    let gw = TestGateway::new();
    let first = post_json(gw.router(), PROM, SAMPLE_WEBHOOK).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let created = gw.remediations().len();
    assert!(created >= 1);
    let second = post_json(gw.router(), PROM, SAMPLE_WEBHOOK).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.text);
    assert!(
        outcomes(&second.body)
            .iter()
            .all(|o| o == "duplicate" || o == "resolved"),
        "{}",
        second.text
    );
    assert_eq!(
        gw.remediations().len(),
        created,
        "no second RemediationRequest"
    );
}

#[tokio::test]
async fn every_alert_of_a_batch_is_processed() {
    let gw = TestGateway::new();
    let alerts = (0..4)
        .map(|i| alert(&format!("Alert{i}"), "prod", "api-0", "firing"))
        .collect();
    let answer = post_json(gw.router(), PROM, webhook(alerts).to_string()).await;
    assert_eq!(outcomes(&answer.body), ["created"; 4]);
    assert_eq!(gw.remediations().len(), 4);
}

#[tokio::test]
async fn a_resolved_alert_creates_nothing_and_ends_the_window() {
    let gw = TestGateway::new();
    let firing = webhook(vec![alert("Down", "prod", "api-0", "firing")]).to_string();
    let resolved = webhook(vec![alert("Down", "prod", "api-0", "resolved")]).to_string();
    assert_eq!(
        outcomes(&post_json(gw.router(), PROM, firing.clone()).await.body),
        ["created"]
    );
    assert_eq!(
        outcomes(&post_json(gw.router(), PROM, resolved).await.body),
        ["resolved"]
    );
    assert_eq!(gw.remediations().len(), 1);
    gw.clock.advance(Duration::from_secs(1));
    // A new firing (Prometheus gives it a new startsAt) is new: a second RemediationRequest.
    let episode = |status: &str| {
        let mut a = alert("Down", "prod", "api-0", status);
        a["startsAt"] = "2025-11-25T17:30:00Z".into();
        webhook(vec![a]).to_string()
    };
    assert_eq!(
        outcomes(&post_json(gw.router(), PROM, episode("firing")).await.body),
        ["created"],
        "firing again after resolved is new"
    );
    assert_eq!(gw.remediations().len(), 2);
    // The first firing's alert again (same startsAt: the same episode, say from an Alertmanager
    // that missed the resolution): new to dedup, but its resource exists, so it is counted there.
    gw.clock.advance(Duration::from_secs(1));
    post_json(gw.router(), PROM, episode("resolved")).await;
    assert_eq!(
        outcomes(&post_json(gw.router(), PROM, firing).await.body),
        ["already_exists"]
    );
    assert_eq!(gw.remediations().len(), 2);
}

#[tokio::test]
async fn duplicates_count_occurrences_and_the_ttl_ends_the_window() {
    let gw = TestGateway::new();
    let firing = webhook(vec![alert("Down", "prod", "api-0", "firing")]).to_string();
    post_json(gw.router(), PROM, firing.clone()).await;
    let answer = post_json(gw.router(), PROM, firing.clone()).await;
    assert_eq!(answer.body["outcomes"][0]["occurrences"], 2);
    gw.clock.advance(Duration::from_secs(301));
    assert_eq!(
        outcomes(&post_json(gw.router(), PROM, firing).await.body),
        ["created"]
    );
}

#[tokio::test]
async fn a_burst_across_many_pods_gives_one_aggregate_listing_them() {
    let gw = TestGateway::new();
    // Defaults: pattern storm above 5 distinct pods in 2 min, aggregate at 5 buffered.
    for i in 0..30 {
        let body = webhook(vec![alert(
            "PodCrashLooping",
            "prod",
            &format!("api-{i}"),
            "firing",
        )])
        .to_string();
        let answer = post_json(gw.router(), PROM, body).await;
        assert!(answer.status.is_success(), "{}", answer.text);
        gw.clock.advance(Duration::from_millis(100));
    }
    // The aggregate's growth is written once per update interval (5 s by default), by the tick.
    gw.clock.advance(Duration::from_secs(5));
    gw.gateway.tick().await;
    let docs = gw.remediations();
    let aggregates: Vec<&Value> = docs
        .iter()
        .filter(|d| d["spec"]["isStorm"] == true)
        .collect();
    assert_eq!(aggregates.len(), 1, "one aggregate: {docs:#?}");
    let individual = docs.len() - 1;
    assert_eq!(
        individual, 5,
        "the first 5 pods come before the storm is detected"
    );
    let aggregate = aggregates[0];
    assert_eq!(aggregate["spec"]["stormType"], "pattern");
    assert_eq!(
        aggregate["spec"]["affectedResources"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
    assert_eq!(aggregate["spec"]["stormAlertCount"], 25);
    assert!(
        aggregate["spec"].get("stormWindowEnd").is_none(),
        "still open"
    );

    // Quiet for the inactivity timeout: the window closes and the aggregate says so.
    gw.clock.advance(Duration::from_secs(61));
    gw.gateway.tick().await;
    let docs = gw.remediations();
    let aggregate = docs.iter().find(|d| d["spec"]["isStorm"] == true).unwrap();
    assert!(
        aggregate["spec"]["stormWindowEnd"].is_string(),
        "{aggregate:#}"
    );
    assert_eq!(aggregate["spec"]["stormAlertCount"], 25);
}

/// A gateway whose storms start past 2 pods of one alert name and buffer up to 10 resources.
fn buffering() -> TestGateway {
    let config = StaticConfigSource::default();
    config.set_storm(
        RawStormSettings {
            pattern_threshold: 2,
            buffer_threshold: 10,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    TestGateway::with_config(config)
}

/// `NodeNotReady` on pods `p0`… `p{n-1}`, one webhook each.
async fn node_not_ready(gw: &TestGateway, n: usize) {
    for i in 0..n {
        let body = webhook(vec![alert(
            "NodeNotReady",
            "prod",
            &format!("p{i}"),
            "firing",
        )]);
        post_json(gw.router(), PROM, body.to_string()).await;
    }
}

#[tokio::test]
async fn a_storm_buffer_that_goes_quiet_below_its_threshold_is_created_individually() {
    let gw = buffering();
    node_not_ready(&gw, 5).await;
    assert_eq!(
        gw.remediations().len(),
        2,
        "3 signals buffered after the storm began"
    );
    gw.clock.advance(Duration::from_secs(61));
    gw.gateway.tick().await;
    assert_eq!(gw.remediations().len(), 5, "nothing buffered is dropped");
}

#[tokio::test]
async fn a_background_write_refused_for_good_is_dead_lettered_not_retried_forever() {
    let gw = buffering();
    node_not_ready(&gw, 3).await;
    assert_eq!(gw.remediations().len(), 2, "one signal buffered");
    // The buffer goes quiet; its one signal's write is refused for good.
    gw.faults.fail_next(
        1,
        WriteFailure::Rejected {
            reason: Rejection::Invalid,
        },
    );
    gw.clock.advance(Duration::from_secs(61));
    gw.gateway.tick().await;
    assert_eq!(gw.gateway.pending_writes(), 0, "not queued again");
    let letters = gw.gateway.dead_letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].alert, "NodeNotReady");
    assert!(
        gw.gateway
            .metrics_text()
            .contains("gateway_dead_letters_total 1")
    );
    let answer = crate::http_api::send(
        gw.router(),
        axum::http::Method::GET,
        "/debug/dead-letters",
        None,
        axum::body::Body::empty(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["dead_letters"][0]["alert"], "NodeNotReady");
    gw.gateway.tick().await;
    assert_eq!(gw.remediations().len(), 2, "never retried");
}

#[tokio::test]
async fn a_lowered_threshold_applies_without_restart() {
    let gw = TestGateway::new();
    let send_burst = |prefix: &'static str| {
        let router = gw.router();
        async move {
            let alerts = (0..4)
                .map(|i| alert("HighLatency", "prod", &format!("{prefix}-{i}"), "firing"))
                .collect();
            post_json(router, PROM, webhook(alerts).to_string()).await
        }
    };
    assert_eq!(
        outcomes(&send_burst("a").await.body),
        ["created"; 4],
        "no storm at the defaults"
    );
    gw.config.set_storm(
        RawStormSettings {
            pattern_threshold: 2,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    let answer = send_burst("b").await;
    assert!(
        outcomes(&answer.body).contains(&"buffered".to_owned()),
        "{}",
        answer.text
    );
    assert_eq!(answer.body["outcomes"][0]["storm_type"], "pattern");
}

#[tokio::test]
async fn a_transient_write_failure_is_retried_within_the_request() {
    let gw = TestGateway::with_config(fast_retries());
    gw.faults
        .fail_next(2, WriteFailure::Unavailable { retry_after: None });
    let answer = post_json(
        gw.router(),
        PROM,
        webhook(vec![alert("Down", "prod", "api-0", "firing")]).to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(gw.remediations().len(), 1);
}

#[tokio::test]
async fn an_unwritable_signal_is_503_and_its_resend_is_not_lost() {
    let gw = TestGateway::with_config(fast_retries());
    let body = webhook(vec![alert("Down", "prod", "api-0", "firing")]).to_string();
    gw.faults.fail_next(3, WriteFailure::Timeout);
    let answer = post_json(gw.router(), PROM, body.clone()).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text
    );
    assert_eq!(answer.content_type, "application/problem+json");
    assert!(
        answer.retry_after.is_some(),
        "Retry-After tells Alertmanager when to resend"
    );
    assert!(gw.remediations().is_empty());
    let resend = post_json(gw.router(), PROM, body).await;
    assert_eq!(
        resend.status,
        StatusCode::CREATED,
        "the resend is new, not a duplicate: {}",
        resend.text
    );
    assert_eq!(gw.remediations().len(), 1);
}

#[tokio::test]
async fn a_permanent_write_failure_is_not_retried() {
    let gw = TestGateway::with_config(fast_retries());
    gw.faults.fail_next(
        1,
        WriteFailure::Rejected {
            reason: Rejection::Invalid,
        },
    );
    let answer = post_json(
        gw.router(),
        PROM,
        webhook(vec![alert("Down", "prod", "api-0", "firing")]).to_string(),
    )
    .await;
    // Refused for good: answered (not resent), counted.
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.body["outcomes"][0]["outcome"], "rejected");
    let metrics = gw.gateway.metrics_text();
    assert!(
        metrics.contains("gateway_remediation_write_errors_total{reason=\"permanent\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_signals_rejected_total{reason=\"sink_rejected\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_remediation_write_retries_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn aggregate_writes_that_fail_are_queued_and_retried_not_lost() {
    let config = fast_retries();
    config.set_storm(
        RawStormSettings {
            pattern_threshold: 1,
            buffer_threshold: 1,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    let gw = TestGateway::with_config(config);
    post_json(
        gw.router(),
        PROM,
        webhook(vec![alert("Disk", "prod", "p0", "firing")]).to_string(),
    )
    .await;
    gw.faults.fail_next(3, WriteFailure::Connection);
    let answer = post_json(
        gw.router(),
        PROM,
        webhook(vec![alert("Disk", "prod", "p1", "firing")]).to_string(),
    )
    .await;
    assert_eq!(outcomes(&answer.body), ["aggregated"]);
    assert_eq!(gw.gateway.pending_writes(), 1);
    gw.gateway.tick().await;
    assert_eq!(gw.gateway.pending_writes(), 0);
    assert!(
        gw.remediations()
            .iter()
            .any(|d| d["spec"]["isStorm"] == true)
    );
}

#[tokio::test]
async fn drain_writes_every_open_window() {
    let config = StaticConfigSource::default();
    config.set_storm(
        RawStormSettings {
            pattern_threshold: 1,
            buffer_threshold: 10,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    let gw = TestGateway::with_config(config);
    for i in 0..4 {
        post_json(
            gw.router(),
            PROM,
            webhook(vec![alert("X", "prod", &format!("p{i}"), "firing")]).to_string(),
        )
        .await;
    }
    assert_eq!(gw.remediations().len(), 1);
    gw.gateway.drain().await;
    assert_eq!(
        gw.remediations().len(),
        4,
        "buffered signals are written on shutdown"
    );
}

#[tokio::test]
async fn duplicates_update_the_occurrence_count_once_per_interval() {
    let gw = TestGateway::new();
    let firing = webhook(vec![alert("Down", "prod", "api-0", "firing")]).to_string();
    assert_eq!(
        post_json(gw.router(), PROM, firing.clone()).await.status,
        StatusCode::CREATED
    );
    for _ in 0..5 {
        gw.clock.advance(Duration::from_millis(100));
        post_json(gw.router(), PROM, firing.clone()).await;
    }
    let count = |gw: &TestGateway| {
        gw.remediations()[0]["spec"]["deduplication"]["occurrenceCount"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(&gw), 1, "duplicates wait for the tick");
    gw.gateway.tick().await;
    assert_eq!(count(&gw), 6, "one write carries every duplicate so far");
    let metrics = gw.gateway.metrics_text();
    assert!(
        metrics.contains("gateway_remediation_occurrence_updates_total{result=\"coalesced\"} 4"),
        "{metrics}"
    );
    // Within the interval (5 s by default) another duplicate waits, then is written.
    post_json(gw.router(), PROM, firing.clone()).await;
    gw.gateway.tick().await;
    assert_eq!(count(&gw), 6);
    gw.clock.advance(Duration::from_secs(6));
    gw.gateway.tick().await;
    assert_eq!(count(&gw), 7);
}

#[tokio::test]
async fn a_panic_while_processing_answers_500_and_releases_what_it_recorded() {
    let gw = TestGateway::new();
    gw.faults.panic_next(1);
    let body = webhook(vec![alert("Down", "prod", "api-0", "firing")]).to_string();
    let answer = post_json(gw.router(), PROM, body.clone()).await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.text
    );
    assert!(
        gw.gateway
            .metrics_text()
            .contains("gateway_request_panics_total 1")
    );
    // The dedup record is released by a task of its own: the resend is new, not claimed.
    let mut resend = post_json(gw.router(), PROM, body.clone()).await;
    for _ in 0..50 {
        if resend.status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        resend = post_json(gw.router(), PROM, body.clone()).await;
    }
    assert_eq!(resend.status, StatusCode::CREATED, "{}", resend.text);
    assert_eq!(gw.remediations().len(), 1);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_batch_does_not_stop_its_processing() {
    let gw = TestGateway::new();
    gw.faults.delay(Duration::from_millis(200));
    let body = webhook(vec![
        alert("Down", "prod", "api-0", "firing"),
        alert("Down", "prod", "api-1", "firing"),
        alert("Down", "prod", "api-2", "firing"),
    ])
    .to_string();
    // The client gives up (drops the request) while the first write is under way.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        post_json(gw.router(), PROM, body.clone()),
    )
    .await;
    assert!(gave_up.is_err(), "the client left before the answer");
    // The processing goes on to its end: every alert of the batch is written and settled.
    for _ in 0..100 {
        if gw.remediations().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.remediations().len(), 3);
    let resend = post_json(gw.router(), PROM, body).await;
    assert_eq!(resend.status, StatusCode::ACCEPTED, "{}", resend.text);
    assert_eq!(
        outcomes(&resend.body),
        ["duplicate", "duplicate", "duplicate"]
    );
}
