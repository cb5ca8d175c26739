//! Hot reload in the running gateway: settings swapped the kubelet's way every 50 ms for 10 s
//! under continuous HTTP load fail no request, and a lowered threshold changes behaviour with no
//! restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway_adapter_file_config::WatchOptions;
use gateway_ports::{ConfigKind, ConfigSource};
use gateway_tests::kubelet::KubeletDir;
use gateway_tests::served::ServedGateway;
use gateway_tests::{alert, webhook};
use serde_json::Value;

fn storm(rate: u32, pattern: u32) -> String {
    format!("rate_threshold: {rate}\npattern_threshold: {pattern}\nbuffer_threshold: 5\n")
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> Value {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

async fn wait_for(deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(
            Instant::now() < until,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_settings_every_50ms_under_load_fails_no_request_and_takes_effect() {
    let root = tempfile::tempdir().unwrap();
    let mount = KubeletDir::create(
        root.path().join("config"),
        &[
            ("storm.yaml", &storm(1000, 1000)),
            ("dedup.yaml", "ttl: 5m\n"),
            ("retry.yaml", "max_attempts: 3\n"),
        ],
    )
    .unwrap();
    let out = root.path().join("out");
    let flags = [
        "--config-dir",
        mount.path().to_str().unwrap(),
        "--remediation-dir",
        out.to_str().unwrap(),
    ];
    let watch = WatchOptions {
        debounce: Duration::from_millis(20),
        ..WatchOptions::default()
    };
    let served = ServedGateway::start(&flags, Some(watch)).await;
    let source = served.config.clone();
    let url = served.prometheus_url();

    // Load: 4 senders, each cycling over 50 pods of its own alert (mostly duplicates after the
    // first round), for as long as the swapping goes on.
    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = reqwest::Client::new();
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (running, ok, failed, client, url) = (
                running.clone(),
                ok.clone(),
                failed.clone(),
                client.clone(),
                url.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while running.load(Ordering::SeqCst) {
                    let body = webhook(vec![alert(
                        &format!("Load{sender}"),
                        "load",
                        &format!("pod-{}", i % 50),
                        "firing",
                    )]);
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(r) => {
                            eprintln!("failed request: {}", r.status());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("failed request: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    i += 1;
                }
            })
        })
        .collect();

    // Swap every 50 ms for 10 s, alternating two valid storm settings and two dedup TTLs.
    let started = Instant::now();
    let mut swaps = 0u32;
    while started.elapsed() < Duration::from_secs(10) {
        let rate = if swaps.is_multiple_of(2) { 999 } else { 1000 };
        let ttl = if swaps.is_multiple_of(2) {
            "ttl: 6m\n"
        } else {
            "ttl: 5m\n"
        };
        mount
            .swap(&[
                ("storm.yaml", &storm(rate, 1000)),
                ("dedup.yaml", ttl),
                ("retry.yaml", "max_attempts: 3\n"),
            ])
            .unwrap();
        swaps += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.store(false, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("{swaps} swaps, {ok} requests answered 2xx, {failed} failed");
    assert_eq!(failed, 0, "no request fails while settings are swapped");
    assert!(ok > 100, "the load was real: {ok} requests");
    wait_for(Duration::from_secs(10), || {
        source.storm().rate_threshold.get() == if swaps.is_multiple_of(2) { 1000 } else { 999 }
    })
    .await;
    assert!(
        source.generation(ConfigKind::Storm) >= 10,
        "the swaps were applied while under load"
    );

    // The same burst, before and after lowering the pattern threshold: a storm appears.
    let burst = |name: &str| {
        webhook(
            (0..4)
                .map(|i| alert(name, "prod", &format!("web-{i}"), "firing"))
                .collect(),
        )
        .to_string()
    };
    let before = post(&client, &url, burst("Before")).await;
    assert!(
        before["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["outcome"] == "created"),
        "{before}"
    );
    let generation = source.generation(ConfigKind::Storm);
    mount
        .swap(&[
            ("storm.yaml", &storm(1000, 2)),
            ("dedup.yaml", "ttl: 5m\n"),
            ("retry.yaml", "max_attempts: 3\n"),
        ])
        .unwrap();
    wait_for(Duration::from_secs(10), || {
        source.generation(ConfigKind::Storm) > generation
    })
    .await;
    let after = post(&client, &url, burst("After")).await;
    let outcomes: Vec<&str> = after["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["created", "created", "buffered", "buffered"],
        "{after}"
    );
    assert_eq!(after["outcomes"][2]["storm_type"], "pattern");

    served.stop().await;
}
