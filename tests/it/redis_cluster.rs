//! The gateway on a real Redis Cluster and a real Sentinel set (Debian's `redis-server` on
//! loopback, `tests/src/redis_topology.rs`): the state contracts on three primaries, three gateway
//! replicas sharing a Cluster, a primary killed under load (Cluster: its replica promoted;
//! Sentinel: a new master elected) with every alert accounted for, and slots moved under load.

use std::time::{Duration, Instant};

use gateway_tests::alert_load::{AlertLoad, LoadReport};
use gateway_tests::read_remediations;
use gateway_tests::redis_topology::{RedisCluster, RedisSentinels};
use gateway_tests::served::ServedGateway;

use crate::dedup_conformance::conformance;
use crate::outbox_conformance::redis_outbox_suite;
use crate::redis_store::connected;
use crate::storm_conformance::{redis_storm_counter_suite, redis_window_suite};

/// The longest one of these tests may take, topology start included.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// The password the protected topologies require.
const PASSWORD: &str = "cluster-s3cret";

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test ends in time");
}

/// `count` gateway replicas on `url`, writing into one directory; the password, if any, from a
/// mounted file as in a pod.
async fn replicas(
    count: usize,
    url: &str,
    password: Option<&str>,
    extra: &[&str],
    root: &std::path::Path,
) -> Vec<ServedGateway> {
    let out = root.join("out");
    let password_file = root.join("redis-password");
    // The shipped settings, but a buffer gone quiet for 5 s (not 60) is written out: a signal
    // resent often enough during an outage counts as a rate storm of its own, and is buffered.
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    for file in ["dedup.yaml", "retry.yaml", "security.yaml", "storm.yaml"] {
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/config")
                .join(file),
        )
        .unwrap();
        let text = shipped.replace("inactivity_timeout: 60s", "inactivity_timeout: 5s");
        std::fs::write(config.join(file), text).unwrap();
    }
    let mut flags = vec![
        "--config-dir".to_owned(),
        config.display().to_string(),
        "--remediation-dir".to_owned(),
        out.display().to_string(),
        "--redis-url".to_owned(),
        url.to_owned(),
    ];
    if let Some(password) = password {
        std::fs::write(&password_file, password).unwrap();
        flags.push("--redis-password-file".to_owned());
        flags.push(password_file.display().to_string());
    }
    flags.extend(extra.iter().map(|flag| (*flag).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut started = Vec::new();
    for _ in 0..count {
        let replica = ServedGateway::start(&flags, None).await;
        wait_ready(&replica.base).await;
        started.push(replica);
    }
    started
}

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < until, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every answered signal is in a RemediationRequest in `out` (an aggregate's growth
/// is written by a replica's tick, a buffer once it has been quiet for 5 s), then returns the
/// accounting.
async fn accounted(
    report: &LoadReport,
    out: &std::path::Path,
) -> gateway_tests::alert_load::Accounting {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let accounting = report.account(&read_remediations(out));
        if accounting.lost.is_empty() || Instant::now() > until {
            return accounting;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn load(individual: usize) -> AlertLoad {
    AlertLoad {
        individual,
        storm_pods: 30,
        senders: 4,
        pause: Duration::from_millis(5),
        resend_after: Duration::from_millis(50),
        give_up_after: Duration::from_secs(60),
    }
}

/// Defaults: a pattern storm is more than 5 distinct pods of one alert name in 2 minutes, so the
/// first 5 pods are created one by one and the rest aggregated.
const CREATED_BEFORE_STORM: usize = 5;

async fn stop(replicas: Vec<ServedGateway>) {
    for replica in replicas {
        replica.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_contracts_hold_on_a_three_primary_cluster() {
    bounded(async {
        let cluster = RedisCluster::start_with_password(3, 0, PASSWORD).await;
        // The password in the URL's user-info this time (the replicas' tests give it in a file).
        let url = cluster
            .url()
            .replacen("://", &format!("://:{PASSWORD}@"), 1);
        conformance(|| connected(&url)).await;
        redis_storm_counter_suite(&url).await;
        redis_window_suite(&url).await;
        redis_outbox_suite(&url).await;
        // The suites' keys spread over every primary: the Cluster did share the work.
        let sizes = cluster.run_on_all_primaries(&["DBSIZE"]).await;
        assert_eq!(sizes.len(), 3);
        for size in sizes {
            assert!(
                redis::from_redis_value::<u64>(size.clone()).unwrap() > 0,
                "{size:?}"
            );
        }
    })
    .await;
}

/// `rediss+cluster://`: the Cluster over TLS (its bus too), the client told the TLS ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_reached_over_tls_with_rediss_cluster_urls() {
    bounded(async {
        let cluster = RedisCluster::start_with_tls(3).await;
        let url = cluster.tls_url().unwrap();
        conformance(|| connected(&url)).await;
        let root = tempfile::tempdir().unwrap();
        let gateways = replicas(1, &url, None, &[], root.path()).await;
        let load = AlertLoad {
            individual: 20,
            storm_pods: 0,
            ..load(0)
        };
        let report = load.send(&[gateways[0].base.clone()]).await;
        assert!(
            report.refusals.is_empty(),
            "{:?}",
            report.refusal_statuses()
        );
        let accounting = accounted(&report, &root.path().join("out")).await;
        assert_eq!(accounting.created, 20);
        stop(gateways).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_a_cluster_create_one_remediation_per_alert_and_one_aggregate_per_storm()
{
    bounded(async {
        let cluster = RedisCluster::start_with_password(3, 0, PASSWORD).await;
        let root = tempfile::tempdir().unwrap();
        let gateways = replicas(3, &cluster.url(), Some(PASSWORD), &[], root.path()).await;
        let bases: Vec<String> = gateways.iter().map(|g| g.base.clone()).collect();
        let load = load(120);
        let report = load.send(&bases).await;
        assert!(
            report.refusals.is_empty(),
            "{:?}",
            report.refusal_statuses()
        );
        let accounting = accounted(&report, &root.path().join("out")).await;
        assert!(accounting.lost.is_empty(), "lost: {:?}", accounting.lost);
        assert_eq!(accounting.created, load.individual + CREATED_BEFORE_STORM);
        assert_eq!(
            accounting.aggregated,
            load.storm_pods - CREATED_BEFORE_STORM
        );
        assert_eq!(accounting.aggregates, 1, "one aggregate per storm");
        assert_eq!(
            accounting.extra_remediations, 0,
            "one RemediationRequest per alert"
        );
        stop(gateways).await;
    })
    .await;
}

/// Runs `load` against `bases` while `incident` happens `after` the load starts; returns the
/// report and when the incident began.
async fn under_load(
    load: &AlertLoad,
    bases: &[String],
    after: Duration,
    incident: impl Future<Output = ()>,
) -> (LoadReport, Instant) {
    let sending = {
        let (load, bases) = (load.clone(), bases.to_vec());
        tokio::spawn(async move { load.send(&bases).await })
    };
    tokio::time::sleep(after).await;
    let began = Instant::now();
    incident.await;
    eprintln!("the incident took {:?}", began.elapsed());
    assert!(
        !sending.is_finished(),
        "the load ended before the incident did"
    );
    (sending.await.expect("the load panicked"), began)
}

/// Checks a failover's accounting and prints what it cost.
fn report_failover(
    what: &str,
    report: &LoadReport,
    killed: Instant,
    accounting: &gateway_tests::alert_load::Accounting,
    load: &AlertLoad,
) {
    let outage = report.outage_after(killed);
    eprintln!(
        "{what}: {} signals, {} refusals {:?}, {accounting:?}, outage {outage:?}",
        report.answered.len(),
        report.refusals.len(),
        report.refusal_statuses()
    );
    assert_eq!(report.answered.len(), load.individual + load.storm_pods);
    assert!(
        accounting.lost.is_empty(),
        "{what}: lost {:?}",
        accounting.lost
    );
    assert_eq!(
        accounting.created + accounting.aggregated,
        report.answered.len(),
        "every alert accounted for"
    );
    assert_eq!(accounting.aggregates, 1, "one aggregate for the storm");
    assert_eq!(
        report.without_retry_after, 0,
        "every 503 says when to send again"
    );
    let outage = outage.expect("the primary's loss was felt: some signals were refused");
    assert!(outage.refused_signals > 0);
}

/// Three replicas on `url` with `--redis-replica-acks 1`, the load, and `kill` (which says what
/// it did) a second in: every alert accounted for, the outage printed.
async fn failover_under_load(
    what: &str,
    url: &str,
    password: Option<&str>,
    kill: impl Future<Output = String>,
) {
    let root = tempfile::tempdir().unwrap();
    let extra = ["--redis-replica-acks", "1"];
    let gateways = replicas(3, url, password, &extra, root.path()).await;
    let bases: Vec<String> = gateways.iter().map(|g| g.base.clone()).collect();
    let load = load(1500);
    let watching = Watch::start(&gateways[0]);
    let (report, killed) = under_load(&load, &bases, Duration::from_secs(1), async {
        let done = kill.await;
        eprintln!("{what}: {done}");
    })
    .await;
    let accounting = accounted(&report, &root.path().join("out")).await;
    report_failover(what, &report, killed, &accounting, &load);
    // Readiness and the gauge told the truth: down after the kill, up again by themselves.
    let seen = watching.stop().await;
    let after_kill: Vec<&(Instant, u16, bool)> =
        seen.iter().filter(|(t, ..)| *t > killed).collect();
    let mut changes: Vec<(Duration, u16, bool)> = Vec::new();
    for (t, ready, up) in &after_kill {
        if changes.last().is_none_or(|(_, r, u)| (r, u) != (ready, up)) {
            changes.push((*t - killed, *ready, *up));
        }
    }
    eprintln!("{what}: readiness and gauge after the kill: {changes:?}");
    assert!(
        after_kill
            .iter()
            .any(|(_, ready, up)| *ready == 503 && !*up),
        "{what}: readiness and the gauge never reported the primary's loss"
    );
    assert!(
        after_kill
            .last()
            .is_some_and(|(_, ready, up)| *ready == 200 && *up),
        "{what}: readiness or the gauge did not recover: {:?}",
        after_kill.last()
    );
    stop(gateways).await;
}

/// `/readyz` and `gateway_redis_available` of one replica, every 50 ms.
struct Watch {
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Instant, u16, bool)>>,
}

impl Watch {
    fn start(replica: &ServedGateway) -> Watch {
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (base, gateway, going) = (
            replica.base.clone(),
            replica.gateway.clone(),
            running.clone(),
        );
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = Vec::new();
            while going.load(std::sync::atomic::Ordering::SeqCst) {
                let ready = client.get(format!("{base}/readyz")).send().await;
                let status = ready.map_or(0, |r| r.status().as_u16());
                let up = (gateway.metrics_text().lines())
                    .any(|line| line == "gateway_redis_available 1");
                seen.push((Instant::now(), status, up));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        });
        Watch { running, task }
    }

    async fn stop(self) -> Vec<(Instant, u16, bool)> {
        self.running
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_killed_under_load_loses_no_alert() {
    bounded(async {
        let mut cluster = RedisCluster::start(3, 2).await;
        let (url, victim) = (cluster.url(), cluster.primaries().await[0]);
        failover_under_load("cluster failover", &url, None, async {
            cluster.kill(victim);
            let promoted = cluster
                .wait_for_promotion(victim, Duration::from_secs(30))
                .await;
            format!("primary {victim} killed, replica {promoted} promoted")
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_primary_killed_under_load_loses_no_alert() {
    bounded(async {
        let mut sentinels = RedisSentinels::start_with_password(2, PASSWORD).await;
        let (url, victim) = (sentinels.url(), sentinels.master_port().await);
        failover_under_load("sentinel failover", &url, Some(PASSWORD), async {
            sentinels.kill(victim);
            let elected = sentinels
                .wait_for_new_master(victim, Duration::from_secs(30))
                .await;
            format!("master {victim} killed, {elected} elected")
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_slots_under_load_changes_nothing_visible() {
    bounded(async {
        let cluster = RedisCluster::start(3, 0).await;
        let root = tempfile::tempdir().unwrap();
        let gateways = replicas(3, &cluster.url(), None, &[], root.path()).await;
        let bases: Vec<String> = gateways.iter().map(|g| g.base.clone()).collect();
        let load = load(1500);
        let primaries = cluster.primaries().await;
        let watching = Watch::start(&gateways[0]);
        let (report, _) = under_load(&load, &bases, Duration::from_millis(500), async {
            // The 150 fullest slots of one primary to the next, then on to the third, keys and all.
            cluster.move_slots(primaries[0], primaries[1], 150).await;
            cluster.move_slots(primaries[1], primaries[2], 150).await;
        })
        .await;
        eprintln!(
            "resharding: {} signals, refusals {:?}",
            report.answered.len(),
            report.refusal_statuses()
        );
        let seen = watching.stop().await;
        assert!(
            seen.iter().all(|(_, ready, up)| *ready == 200 && *up),
            "readiness or the gauge wavered while slots moved"
        );
        assert!(
            report.refusals.is_empty(),
            "moving slots was visible: {:?}",
            report.refusal_statuses()
        );
        let accounting = accounted(&report, &root.path().join("out")).await;
        assert!(accounting.lost.is_empty(), "lost: {:?}", accounting.lost);
        assert_eq!(accounting.created, load.individual + CREATED_BEFORE_STORM);
        assert_eq!(
            accounting.aggregated,
            load.storm_pods - CREATED_BEFORE_STORM
        );
        assert_eq!(accounting.aggregates, 1);
        assert_eq!(accounting.extra_remediations, 0);
        stop(gateways).await;
    })
    .await;
}
