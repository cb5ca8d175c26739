//! Hot-reload figures that criterion cannot take, printed as a small report.
//!
//! 1. Reload latency: from just before the kubelet-style swap of `..data` to the new storm
//!    settings in force (seen by an `on_change` listener), over 200 swaps, with the default
//!    200 ms debounce and with a 20 ms one. p50 and p99.
//! 2. Request throughput of the running gateway (real socket, 4 concurrent clients) while the
//!    settings are swapped every 100 ms, against the same load with no swapping, in the same
//!    run: phases alternate quiet / reloading / quiet / reloading and the ratio is reported.
//!
//! Run: `cargo bench -p gateway-tests --bench hot_reload`.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gateway_adapter_file_config::{DirSource, WatchOptions};
use gateway_adapter_memory::SystemClock;
use gateway_ports::ConfigSource;
use gateway_tests::kubelet::KubeletDir;
use gateway_tests::served::ServedGateway;
use gateway_tests::{alert, webhook};

fn storm(rate: u32) -> String {
    format!("rate_threshold: {rate}\npattern_threshold: 1000\n")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn latency(debounce: Duration) {
    let root = tempfile::tempdir().unwrap();
    let mount =
        KubeletDir::create(root.path().join("config"), &[("storm.yaml", &storm(1))]).unwrap();
    let source = Arc::new(DirSource::load(mount.path(), Arc::new(SystemClock)).unwrap());
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    source.on_change(Box::new(move |_| {
        let _ = tx.lock().unwrap().send(Instant::now());
    }));
    let _watching = source.watch(WatchOptions {
        debounce,
        ..WatchOptions::default()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut samples = Vec::with_capacity(200);
    for n in 2..202 {
        let started = Instant::now();
        mount.swap(&[("storm.yaml", &storm(n))]).unwrap();
        let applied =
            tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(10))).unwrap();
        assert_eq!(source.storm().rate_threshold.get(), n);
        samples.push(applied - started);
    }
    samples.sort();
    println!(
        "reload latency, debounce {debounce:?}, 200 swaps: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

async fn throughput() {
    let root = tempfile::tempdir().unwrap();
    let mount =
        KubeletDir::create(root.path().join("config"), &[("storm.yaml", &storm(1000))]).unwrap();
    let out = root.path().join("out");
    let flags = [
        "--config-dir",
        mount.path().to_str().unwrap(),
        "--remediation-dir",
        out.to_str().unwrap(),
    ];
    let served = ServedGateway::start(&flags, Some(WatchOptions::default())).await;
    let url = served.prometheus_url();
    let client = reqwest::Client::new();
    let phase = Duration::from_secs(4);
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..4 {
        let reloading = round % 2 == 1;
        let running = Arc::new(AtomicBool::new(true));
        let done = Arc::new(AtomicU64::new(0));
        let senders: Vec<_> = (0..4)
            .map(|s| {
                let (running, done, client, url) =
                    (running.clone(), done.clone(), client.clone(), url.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while running.load(Ordering::Relaxed) {
                        let body = webhook(vec![alert(
                            &format!("Bench{s}"),
                            "bench",
                            &format!("pod-{}", i % 50),
                            "firing",
                        )])
                        .to_string();
                        let r = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success());
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < phase {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if reloading {
                n += 1;
                mount.swap(&[("storm.yaml", &storm(1000 - n % 2))]).unwrap();
            }
        }
        running.store(false, Ordering::Relaxed);
        for sender in senders {
            sender.await.unwrap();
        }
        let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        rates[usize::from(reloading)].push(rate);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (quiet, reloading) = (mean(&rates[0]), mean(&rates[1]));
    println!(
        "throughput, 4 clients, phases of {phase:?}: quiet {quiet:.0} req/s {:?}, reloading every 100ms {reloading:.0} req/s {:?}, ratio {:.3}",
        rates[0].iter().map(|r| r.round()).collect::<Vec<_>>(),
        rates[1].iter().map(|r| r.round()).collect::<Vec<_>>(),
        reloading / quiet
    );
    served.stop().await;
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so keep it quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("hot_reload: run with `cargo bench -p gateway-tests --bench hot_reload`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        latency(Duration::from_millis(200)).await;
        latency(Duration::from_millis(20)).await;
        throughput().await;
    });
}
