//! Chaos accounting (issue 10): a known set of alerts (plain, duplicates, a storm, resolved) sent
//! under load to the real `gateway` binary while, in turn, the process is `kill -9`ed, Redis is
//! restarted, the API server fails 30 % of writes and lacks a namespace, the config is swapped
//! 1,000 times, and the process is stopped with SIGTERM. Afterwards every firing alert is in a
//! RemediationRequest, listed or counted in a storm aggregate, or answered `rejected`; the
//! sender resent whatever was not answered 2xx. Lost = 0 in every scenario; each prints its row
//! of the table (`cargo test -p gateway-tests --test it chaos -- --nocapture`).

use std::time::Duration;

use gateway_tests::apiserver::{ApiServer, Fault, Filter, Resource};
use gateway_tests::chaos::alerts::{AlertSet, Shape};
use gateway_tests::chaos::sender::Load;
use gateway_tests::chaos::{Chaos, settings, verdict};
use gateway_tests::kubelet::KubeletDir;
use gateway_tests::redis::TestRedis;

/// Where in the load (fraction of webhooks finished) the faults strike.
const STRIKES: [f64; 2] = [0.3, 0.6];

fn owned(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_twice_with_the_embedded_store_loses_nothing() {
    let mut chaos = Chaos::new(&owned(&["--state", "embedded"]));
    let set = AlertSet::generate(Shape::default());
    chaos.start().await;
    let sending = chaos.send(&set, Load::default());
    for strike in STRIKES {
        sending.reached(strike).await;
        chaos.kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        chaos.start().await;
    }
    let deliveries = sending.finish().await;
    chaos.settle().await;
    verdict(
        "kill -9 x2 (embedded)",
        &set,
        &deliveries,
        &chaos.remediations(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_twice_loses_nothing() {
    // Persisting (AOF, fsync always), as a Redis holding the gateway's state must: a Redis that
    // forgets on restart loses open storm windows whatever the gateway does.
    let redis = TestRedis::start_durable().await;
    let mut chaos = Chaos::new(&owned(&["--redis-url", &redis.url]));
    let set = AlertSet::generate(Shape::default());
    chaos.start().await;
    let sending = chaos.send(&set, Load::default());
    for strike in STRIKES {
        sending.reached(strike).await;
        redis.stop().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.start_again().await;
    }
    let deliveries = sending.finish().await;
    chaos.settle().await;
    verdict("redis restart x2", &set, &deliveries, &chaos.remediations());
}

/// The namespace the emulated cluster does not have.
const MISSING_NAMESPACE: &str = "chaos-gone";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_failing_30_percent_and_a_missing_namespace_loses_nothing() {
    let api = ApiServer::start().await;
    api.remove_namespace(MISSING_NAMESPACE);
    let kubeconfig = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(kubeconfig.path());
    let mut chaos = Chaos::new(&owned(&[
        "--sink",
        "kubernetes",
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "--fallback-namespace",
        "kubernaut-system",
    ]));
    let set = AlertSet::generate(Shape {
        extra_namespace: Some((MISSING_NAMESPACE, 10)),
        ..Shape::default()
    });
    chaos.start().await;
    api.faults().set_rate(
        0.3,
        vec![
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
            Fault::Status(500),
            Fault::Status(503),
            Fault::Slow(Duration::from_millis(300)),
            Fault::Slow(Duration::from_millis(1500)), // past --kube-timeout
            Fault::Drop,
        ],
        Filter::resource("remediationrequests"),
        0x5eed,
    );
    let deliveries = chaos.send(&set, Load::default()).finish().await;
    let injected = api.faults().injected();
    // The closing writes of the storm window are not under test here: the API heals.
    api.faults().clear();
    chaos.settle().await;
    println!("  {injected} API faults injected");
    let rrs = api.objects(Resource::RemediationRequests);
    verdict("API faults 30% + ns gone", &set, &deliveries, &rrs);
}

/// Config swaps of the reload scenario.
const SWAPS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_config_swaps_a_third_invalid_lose_nothing() {
    let mut chaos = Chaos::new(&[]);
    let set = AlertSet::generate(Shape::default());
    chaos.start().await;
    let sending = chaos.send(&set, Load::default());
    let mount = chaos.config.path().to_owned();
    let swapping = tokio::task::spawn_blocking(move || {
        // A second writer handle on the same mount; this one is the only writer while it runs.
        let baseline = settings::baseline();
        let kubelet = KubeletDir::create(&mount, &pairs(&baseline)).unwrap();
        for i in 0..SWAPS {
            kubelet.swap(&pairs(&settings::swap(i))).unwrap();
            // Swaps 5 ms apart never go quiet for the watcher's debounce (200 ms): now and then
            // one stays long enough to be judged, in turn an invalid one (i ≡ 2 mod 3) and a
            // valid one, so both verdicts are certain to be seen.
            let judged = i % 60 == 2 || i % 60 == 30;
            std::thread::sleep(Duration::from_millis(if judged { 400 } else { 5 }));
        }
        kubelet.swap(&pairs(&baseline)).unwrap();
    });
    tokio::time::timeout(Duration::from_secs(60), swapping)
        .await
        .expect("the swaps end in time")
        .unwrap();
    let deliveries = sending.finish().await;
    let reloads = reload_counts(&chaos.base()).await;
    chaos.settle().await;
    for line in &reloads {
        println!("  {line}");
    }
    assert!(
        reloads
            .iter()
            .any(|l| l.contains("result=\"error\"") && !l.ends_with(" 0")),
        "invalid swaps were judged: {reloads:?}"
    );
    verdict(
        "1000 config swaps",
        &set,
        &deliveries,
        &chaos.remediations(),
    );
}

fn pairs<'a>(files: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    files.iter().map(|(f, c)| (*f, c.as_str())).collect()
}

/// The `gateway_config_reload_total` series of the gateway's metrics.
async fn reload_counts(base: &str) -> Vec<String> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("gateway_config_reload_total{"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_then_restart_loses_nothing() {
    let mut chaos = Chaos::new(&[]);
    let set = AlertSet::generate(Shape::default());
    chaos.start().await;
    let sending = chaos.send(&set, Load::default());
    sending.reached(0.5).await;
    chaos.terminate().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    chaos.start().await;
    let deliveries = sending.finish().await;
    chaos.settle().await;
    verdict(
        "SIGTERM + restart",
        &set,
        &deliveries,
        &chaos.remediations(),
    );
}
