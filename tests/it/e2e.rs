//! The gateway over a real socket (port 0): HTTP/1.1 clients, graceful shutdown.

use std::time::Duration;

use clap::Parser;
use gateway::cli::Cli;
use gateway_tests::{SAMPLE_WEBHOOK, TestGateway};
use tokio::net::TcpListener;

fn args(extra: &[&str]) -> gateway::cli::ServeArgs {
    let mut argv = vec!["gateway"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap().serve
}

#[tokio::test]
async fn sigterm_fails_readiness_first_and_lets_in_flight_requests_finish() {
    let gw = TestGateway::new();
    gw.faults.delay(Duration::from_millis(600));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve_args = args(&["--shutdown-delay", "300ms"]);
    let server = tokio::spawn({
        let state = gw.state();
        async move {
            gateway::serve::serve(state, listener, &serve_args, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A request that takes 600 ms to write its RemediationRequest…
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/api/v1/signals/prometheus");
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(SAMPLE_WEBHOOK)
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // …is under way when shutdown begins.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        503,
        "readiness fails during the shutdown delay"
    );

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 201);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert!(!gw.remediations().is_empty());
}

#[tokio::test]
async fn concurrent_clients_over_a_socket_all_get_answers() {
    let gw = TestGateway::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/v1/signals/prometheus",
        listener.local_addr().unwrap()
    );
    let serve_args = args(&["--shutdown-delay", "0s"]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let state = gw.state();
        async move {
            gateway::serve::serve(state, listener, &serve_args, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(SAMPLE_WEBHOOK)
                    .send()
                    .await
                    .unwrap();
                (
                    response.status(),
                    response.json::<serde_json::Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut created = 0;
    for request in requests {
        let (status, body) = request.await.unwrap();
        // 503: an alert whose first occurrence another client was still recording (the
        // sender resends; see the next request).
        assert!(status == 201 || status == 202 || status == 503, "{status}");
        let outcomes = body["outcomes"].as_array().unwrap();
        created += outcomes
            .iter()
            .filter(|o| o["outcome"] == "created")
            .count();
    }
    let firing =
        gateway_signal::parse_alertmanager(SAMPLE_WEBHOOK, gateway_ports::Timestamp::EPOCH)
            .unwrap()
            .iter()
            .filter(|s| s.status == gateway_ports::SignalStatus::Firing)
            .count();
    assert_eq!(
        created, firing,
        "each firing alert is created once across 50 concurrent senders"
    );
    let resend = client
        .post(&url)
        .header("content-type", "application/json")
        .body(SAMPLE_WEBHOOK)
        .send()
        .await
        .unwrap();
    assert_eq!(resend.status(), 202, "every alert is recorded: duplicates");
    assert_eq!(gw.remediations().len(), firing);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
