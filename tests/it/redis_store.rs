//! The Redis store against a real Redis (testcontainers): the `DedupStore` contract, TTLs from
//! hot-reloaded settings, the keys the storm ports leave, replicas sharing one Redis, and an outage
//! under load. The storm ports' contracts are in `storm_conformance`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway_adapter_redis::{RedisOptions, RedisStore};
use gateway_ports::{ConfigControl, ConfigKind, ConfigSource, DedupStore, Fingerprint, Timestamp};
use gateway_tests::redis::TestRedis;
use gateway_tests::served::ServedGateway;
use gateway_tests::{alert, read_remediations, webhook};
use serde_json::Value;

use crate::dedup_conformance::conformance;

/// A key prefix no other store of this test binary uses.
pub(crate) fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("test{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A store on `url` under its own key prefix, once it is connected.
pub(crate) async fn connected(url: &str) -> RedisStore {
    connected_as(url, &fresh_prefix()).await
}

/// A store on `url` under `prefix`, once it is connected: stores made with one prefix share their
/// state, as replicas do.
pub(crate) async fn connected_as(url: &str, prefix: &str) -> RedisStore {
    let store = RedisStore::new(RedisOptions {
        key_prefix: prefix.to_owned(),
        ..RedisOptions::new(url)
    })
    .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while store.check().await.is_err() {
        assert!(Instant::now() < until, "Redis at {url} not reachable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_honours_the_dedup_store_contract() {
    let redis = TestRedis::start().await;
    conformance(|| connected(&redis.url)).await;
}

/// A replica: a real gateway on Redis, with its config directory and output directory.
async fn replica(
    redis_url: &str,
    config_dir: &std::path::Path,
    out: &std::path::Path,
) -> ServedGateway {
    let flags = [
        "--config-dir",
        config_dir.to_str().unwrap(),
        "--remediation-dir",
        out.to_str().unwrap(),
        "--redis-url",
        redis_url,
    ];
    ServedGateway::start(&flags, None).await
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
) -> reqwest::Result<(reqwest::StatusCode, Value)> {
    let (status, answer) = gateway_tests::alert_load::post(client, base, body).await?;
    Ok((reqwest::StatusCode::from_u16(status).unwrap(), answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sharing_redis_create_one_remediation_per_alert_burst() {
    let redis = TestRedis::start().await;
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&redis.url, &root.path().join("no-config"), &out).await);
    }
    // Two Alertmanager replicas × three gateways: the same alert, 30 times, to all of them at once.
    let client = reqwest::Client::new();
    let body = webhook(vec![alert(
        "KubePodCrashLooping",
        "prod",
        "api-0",
        "firing",
    )]);
    let mut sends = Vec::new();
    for i in 0..30 {
        let (client, base, body) = (client.clone(), replicas[i % 3].base.clone(), body.clone());
        sends.push(tokio::spawn(async move {
            // As Alertmanager does: a 503 (the alert's first occurrence still being recorded
            // by another replica: `claimed`) is sent again.
            for _ in 0..50 {
                let (status, answer) = post(&client, &base, &body).await.unwrap();
                if status != 503 {
                    return (status, answer);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("still 503 after 50 tries")
        }));
    }
    let mut created = 0;
    for send in sends {
        let (status, body) = send.await.unwrap();
        assert!(status.is_success(), "{status} {body}");
        created += usize::from(body["outcomes"][0]["outcome"] == "created");
    }
    assert_eq!(created, 1, "exactly one replica created it");
    assert_eq!(read_remediations(&out).len(), 1);
    for replica in replicas {
        replica.stop().await;
    }
}

/// Sends one alert per pod, in order, round-robin over `replicas`; returns each outcome.
async fn storm_outcomes(client: &reqwest::Client, replicas: &[&str], pods: usize) -> Vec<String> {
    let mut outcomes = Vec::new();
    for i in 0..pods {
        let body = webhook(vec![alert(
            "SharedStorm",
            "prod",
            &format!("web-{i}"),
            "firing",
        )]);
        let (status, body) = post(client, replicas[i % replicas.len()], &body)
            .await
            .unwrap();
        assert!(status.is_success(), "{status} {body}");
        outcomes.push(body["outcomes"][0]["outcome"].as_str().unwrap().to_owned());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_see_a_storm_and_aggregate_it_exactly_as_one_does() {
    let client = reqwest::Client::new();
    let mut runs = Vec::new();
    for replica_count in [1, 3] {
        let redis = TestRedis::start().await;
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let mut replicas = Vec::new();
        for _ in 0..replica_count {
            replicas.push(replica(&redis.url, &root.path().join("no-config"), &out).await);
        }
        let urls: Vec<&str> = replicas.iter().map(|r| r.base.as_str()).collect();
        // Defaults: a pattern storm is more than 5 distinct pods of one alert name in 2 minutes,
        // and its aggregate is created when 5 pods are buffered.
        let outcomes = storm_outcomes(&client, &urls, 14).await;
        // The aggregate's growth is written once per update interval, by a replica's tick.
        let until = Instant::now() + Duration::from_secs(20);
        let documents = loop {
            let documents = read_remediations(&out);
            let listed = documents
                .iter()
                .filter(|d| d["spec"]["isStorm"] == true)
                .map(|d| d["spec"]["affectedResources"].as_array().unwrap().len())
                .max();
            if listed == Some(9) || Instant::now() > until {
                break documents;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let aggregates: Vec<&Value> = documents
            .iter()
            .filter(|d| d["spec"]["isStorm"] == true)
            .collect();
        assert_eq!(
            aggregates.len(),
            1,
            "one aggregate, whichever replica took which signal"
        );
        assert_eq!(
            aggregates[0]["spec"]["affectedResources"]
                .as_array()
                .unwrap()
                .len(),
            9
        );
        assert_eq!(
            documents.len(),
            6,
            "5 pods before the storm, then the aggregate"
        );
        runs.push(outcomes);
        for replica in replicas {
            replica.stop().await;
        }
    }
    let expected: Vec<&str> = [
        vec!["created"; 5],
        vec!["buffered"; 4],
        vec!["aggregated"; 5],
    ]
    .concat();
    assert_eq!(runs[0], expected);
    assert_eq!(runs[1], runs[0], "three replicas decide exactly as one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_ttl_changed_by_hot_reload_applies_to_keys_written_after_it() {
    let redis = TestRedis::start().await;
    let root = tempfile::tempdir().unwrap();
    let config_dir = root.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("dedup.yaml"), "ttl: 5m\n").unwrap();
    let replica = replica(&redis.url, &config_dir, &root.path().join("out")).await;
    let client = reqwest::Client::new();
    post(
        &client,
        &replica.base,
        &webhook(vec![alert("Before", "prod", "p", "firing")]),
    )
    .await
    .unwrap();

    std::fs::write(config_dir.join("dedup.yaml"), "ttl: 42s\n").unwrap();
    let records = replica.config.reload_now().await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(replica.config.dedup().ttl.get(), Duration::from_secs(42));
    post(
        &client,
        &replica.base,
        &webhook(vec![alert("After", "prod", "p", "firing")]),
    )
    .await
    .unwrap();

    let mut connection = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl_of = |name: &str| {
        let fp = gateway_signal::fingerprint(name, "prod", "Pod", "p");
        format!("kubernaut:gateway:dedup:{{64:{}}}", fp.as_str())
    };
    let before: i64 = redis::cmd("PTTL")
        .arg(ttl_of("Before"))
        .query_async(&mut connection)
        .await
        .unwrap();
    let after: i64 = redis::cmd("PTTL")
        .arg(ttl_of("After"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        before > 290_000,
        "the key written before keeps its 5m TTL: {before}"
    );
    assert!(
        (40_000..=42_000).contains(&after),
        "the key written after has the new 42s TTL: {after}"
    );
    assert_eq!(replica.gateway.generation(ConfigKind::Dedup), 1);
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_load_loses_no_accepted_alert_and_heals_by_itself() {
    let redis = TestRedis::start().await;
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let replica = replica(&redis.url, &root.path().join("no-config"), &out).await;
    let client = reqwest::Client::new();

    // Senders post unique alerts; each one answered 2xx must end up as a RemediationRequest.
    let running = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..2)
        .map(|s| {
            let (running, accepted, refused, client, base) = (
                running.clone(),
                accepted.clone(),
                refused.clone(),
                client.clone(),
                replica.base.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while running.load(Ordering::SeqCst) {
                    let name = format!("Outage{s}x{i}");
                    match post(
                        &client,
                        &base,
                        &webhook(vec![alert(&name, "prod", "p", "firing")]),
                    )
                    .await
                    {
                        Ok((status, _)) if status.is_success() => {
                            accepted.lock().unwrap().push(name)
                        }
                        Ok((status, _)) => {
                            assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("transport error: {e}"),
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    let metric = |gateway: &gateway::gateway::Gateway| {
        gateway
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("gateway_redis_available "))
            .map(str::to_owned)
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metric(&replica.gateway).as_deref(),
        Some("gateway_redis_available 1")
    );

    // Readiness and the gauge must tell the truth during the outage, and heal by themselves.
    let reports =
        |status: reqwest::StatusCode, gauge: &'static str, within: Duration, why: &'static str| {
            let (client, replica) = (&client, &replica);
            async move {
                let until = Instant::now() + within;
                loop {
                    let ready = client
                        .get(format!("{}/readyz", replica.base))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if ready == status && metric(&replica.gateway).as_deref() == Some(gauge) {
                        return;
                    }
                    assert!(Instant::now() < until, "{why}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
    redis.stop().await;
    let unavailable = reqwest::StatusCode::SERVICE_UNAVAILABLE;
    reports(
        unavailable,
        "gateway_redis_available 0",
        Duration::from_secs(10),
        "the outage is reported",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again().await;
    let ok = reqwest::StatusCode::OK;
    reports(
        ok,
        "gateway_redis_available 1",
        Duration::from_secs(15),
        "the gateway recovers by itself",
    )
    .await;
    let refused_during = refused.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(
        refused_during > 0,
        "the outage was felt: requests were answered 503"
    );
    let written: std::collections::BTreeSet<String> = read_remediations(&out)
        .iter()
        .map(|d| d["spec"]["signalName"].as_str().unwrap().to_owned())
        .collect();
    let accepted = accepted.lock().unwrap().clone();
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|name| !written.contains(*name))
        .collect();
    assert!(lost.is_empty(), "accepted but not written: {lost:?}");
    eprintln!(
        "{} accepted, {} refused with 503 during the outage",
        accepted.len(),
        refused.load(Ordering::SeqCst)
    );
    let metrics = replica.gateway.metrics_text();
    assert!(
        metrics.contains("gateway_signals_unrecorded_total{reason=\"dedup_store\"}"),
        "{metrics}"
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_key_lives_in_one_hash_slot_and_always_has_a_ttl() {
    let redis = TestRedis::start().await;
    let store = connected(&redis.url).await;
    let fp = Fingerprint::from_hex(&"b".repeat(64)).unwrap();
    for _ in 0..3 {
        store
            .record(&fp, Duration::from_secs(60), Timestamp::from_secs(1))
            .await
            .unwrap();
    }
    let mut connection = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].ends_with(&format!(":dedup:{{64:{}}}", "b".repeat(64))),
        "{keys:?}"
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    let count: u64 = redis::cmd("HGET")
        .arg(&keys[0])
        .arg("c")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(count, 3);
}

/// Storm counting with windows short enough to read TTLs against: 10 s and 20 s.
const SHORT_COUNTING: gateway_ports::Counting = gateway_ports::Counting {
    rate_window: Duration::from_secs(10),
    pattern_window: Duration::from_secs(20),
    max_tracked: 100,
};

fn a_pod() -> gateway_ports::ResourceRef {
    gateway_ports::ResourceRef {
        kind: "Pod".into(),
        name: "p".into(),
        namespace: "prod".into(),
    }
}

/// What the storm ports leave in Redis: the keys the crate docs name, every one with a TTL no
/// longer than the window it serves (so an alert name gone quiet, and a closed window, leave
/// nothing behind for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_keys_are_the_documented_ones_and_each_has_a_ttl_within_its_window() {
    use gateway_ports::{StormCounter, WindowStore};

    let redis = TestRedis::start().await;
    let prefix = fresh_prefix();
    let store = connected_as(&redis.url, &prefix).await;
    let (counting, pod) = (SHORT_COUNTING, a_pod());
    store
        .count("Disk", &pod, Timestamp::from_secs(1_764_090_000), counting)
        .await
        .unwrap();
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .replace("prod/Open", None, Some(vec![1]), ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .replace("prod/Closed", None, Some(vec![1]), ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .replace("prod/Closed", Some(1), None, ttl)
            .await
            .unwrap()
    );

    let mut connection = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.sort();
    // A window and the index listing it share a shard's tag (FNV-1a of the name, mod 16).
    let expected = [
        ("storm:window:{w01}:prod/Closed", 30_000),
        ("storm:window:{w13}:prod/Open", 30_000),
        ("storm:windows:{w13}", 30_000),
        ("storm:{4:Disk}:resources", 20_000),
        ("storm:{4:Disk}:signals", 10_000),
    ];
    let names: Vec<String> = expected
        .iter()
        .map(|(key, _)| format!("{prefix}:{key}"))
        .collect();
    assert_eq!(
        keys, names,
        "the closed window keeps its version until its TTL ends"
    );
    for (key, limit) in names.iter().zip(expected.map(|(_, limit)| limit)) {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= limit, "{key}: {ttl} ms");
    }
    let index: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:storm:windows:{{w13}}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(index, ["prod/Open"]);
}

/// The hash tag Redis Cluster hashes a key by: the text between the first `{` and the first `}`
/// after it, if not empty; else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let open = key.iter().position(|&b| b == b'{');
    let tag = open.and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .map(|close| &rest[..close])
    });
    tag.filter(|tag| !tag.is_empty()).unwrap_or(key)
}

/// Names that hold `{`, `}`, `:`, `/` or newlines, and 10 KB names, give keys that are distinct
/// for distinct names, with the keys of each script in one hash slot; the outbox's keys share one
/// too. (Whether the storm ports keep such names apart is in `storm_conformance`, for every
/// adapter.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_adversarial_names_are_distinct_and_each_scripts_keys_share_a_slot() {
    use gateway_ports::{Outbox, StormCounter, WindowStore};

    let redis = TestRedis::start().await;
    let prefix = fresh_prefix();
    let store = connected_as(&redis.url, &prefix).await;
    let (counting, pod) = (SHORT_COUNTING, a_pod());
    let long = "N".repeat(10 * 1024);
    let names = [
        "a/b/c".to_owned(),
        "a/b}".to_owned(),
        "{a/b".to_owned(),
        "}:signals".to_owned(),
        "1:a}".to_owned(),
        "a\nb".to_owned(),
        "}".to_owned(),
        String::new(),
        long.clone(),
        format!("{long}}}"),
    ];
    for name in &names {
        let counts = store
            .count(name, &pod, Timestamp::from_secs(1_764_090_000), counting)
            .await
            .unwrap();
        assert_eq!(counts.rate, 1, "{name:.40?}");
        assert!(
            store
                .replace(
                    name,
                    None,
                    Some(name.as_bytes().to_vec()),
                    Duration::from_secs(30)
                )
                .await
                .unwrap(),
            "{name:.40?}"
        );
    }
    store.put("rr", b"entry".to_vec()).await.unwrap();

    let mut connection = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    // Two sets and a window per name, the indexes of windows, the outbox's hash and counter;
    // every window in the slot of an index that lists it.
    let starting = |start: String| -> Vec<&Vec<u8>> {
        keys.iter()
            .filter(|key| key.starts_with(start.as_bytes()))
            .collect()
    };
    let windows = starting(format!("{prefix}:storm:window:{{"));
    let indexes = starting(format!("{prefix}:storm:windows:{{"));
    assert_eq!(windows.len(), names.len());
    assert_eq!(
        keys.len(),
        3 * names.len() + indexes.len() + 2,
        "one key per thing, none shared"
    );
    for window in windows {
        let tag = hash_tag(window);
        assert!(
            indexes.iter().any(|index| hash_tag(index) == tag),
            "{:.60?}",
            String::from_utf8_lossy(window)
        );
    }
    for name in &names {
        let base = format!("{prefix}:storm:{{{}:{name}}}", name.len()).into_bytes();
        let signals = [base.as_slice(), b":signals"].concat();
        let resources = [base.as_slice(), b":resources"].concat();
        assert!(
            keys.contains(&signals) && keys.contains(&resources),
            "{name:.40?}"
        );
        assert_eq!(hash_tag(&signals), hash_tag(&resources), "{name:.40?}");
        assert_ne!(hash_tag(&signals), signals.as_slice(), "{name:.40?}: a tag");
    }
    let outbox: Vec<&Vec<u8>> = keys
        .iter()
        .filter(|key| key.starts_with(format!("{prefix}:{{outbox}}").as_bytes()))
        .collect();
    assert_eq!(outbox.len(), 2);
    assert_eq!(hash_tag(outbox[0]), hash_tag(outbox[1]));
}

#[tokio::test]
async fn a_key_prefix_holding_a_brace_is_refused() {
    let refused = RedisStore::new(RedisOptions {
        key_prefix: "gateway{a}".to_owned(),
        ..RedisOptions::new("redis://127.0.0.1:1")
    });
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_window_gone_quiet_is_closed_once_by_some_replica() {
    let redis = TestRedis::start().await;
    let root = tempfile::tempdir().unwrap();
    let config_dir = root.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("storm.yaml"),
        "pattern_threshold: 1\nbuffer_threshold: 2\ninactivity_timeout: 1s\nmax_window_duration: 30s\n",
    )
    .unwrap();
    let out = root.path().join("out");
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&redis.url, &config_dir, &out).await);
    }
    let urls: Vec<&str> = replicas.iter().map(|r| r.base.as_str()).collect();
    let client = reqwest::Client::new();
    let outcomes = storm_outcomes(&client, &urls, 4).await;
    assert_eq!(
        outcomes,
        ["created", "buffered", "aggregated", "aggregated"]
    );

    let until = Instant::now() + Duration::from_secs(15);
    let aggregate = loop {
        let documents = read_remediations(&out);
        let closed: Vec<Value> = documents
            .into_iter()
            .filter(|d| d["spec"]["isStorm"] == true && d["spec"]["stormWindowEnd"].is_string())
            .collect();
        if let [aggregate] = closed.as_slice() {
            break aggregate.clone();
        }
        assert!(closed.len() <= 1, "closed twice: {closed:#?}");
        assert!(Instant::now() < until, "no replica closed the quiet window");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(aggregate["spec"]["stormAlertCount"], 3);
    assert_eq!(
        aggregate["spec"]["affectedResources"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let index: Vec<String> = {
        let mut connection = redis::Client::open(redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("SMEMBERS")
            .arg("kubernaut:gateway:storm:windows")
            .query_async(&mut connection)
            .await
            .unwrap()
    };
    assert!(
        index.is_empty(),
        "the closed window left the index: {index:?}"
    );
    for replica in replicas {
        replica.stop().await;
    }
}

/// A `redis-server` (Debian's, as in the test image) started on loopback with TLS only, and the
/// self-signed certificate it serves; killed on drop.
struct TlsRedis {
    process: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn tls_redis() -> TlsRedis {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let process = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-port",
        ])
        .arg(port.to_string())
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .args(["--tls-auth-clients", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (tests/images/redis/build.sh installs it)");
    TlsRedis {
        process,
        port,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_speak_tls() {
    let server = tls_redis();
    let store = connected(&format!("rediss://127.0.0.1:{}/#insecure", server.port)).await;
    let fp = Fingerprint::from_hex(&"c".repeat(64)).unwrap();
    let seen = store
        .record(&fp, Duration::from_secs(60), Timestamp::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        seen,
        gateway_ports::Seen::First {
            window_start: Timestamp::from_secs(5)
        }
    );
    // The plain protocol on the TLS port gets nowhere: the store really spoke TLS.
    let plain = RedisStore::new(RedisOptions::new(format!(
        "redis://127.0.0.1:{}",
        server.port
    )))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(plain.check().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unix_urls_reach_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let mut process = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocket",
        ])
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (tests/images/redis/build.sh installs it)");
    let store = connected(&format!("redis+unix://{}", socket.display())).await;
    let fp = Fingerprint::from_hex(&"d".repeat(64)).unwrap();
    assert!(
        store
            .record(&fp, Duration::from_secs(60), Timestamp::from_secs(5))
            .await
            .is_ok()
    );
    let _ = process.kill();
    let _ = process.wait();
}

/// A window stored by a version before Cluster support (`…:storm:window:{<len>:<name>}`, listed
/// in `…:storm:windows`) is moved to its shard's keys by the ticker's `keys`, so an upgrade during
/// a storm loses none of its buffered signals; while a window of its name is open in the new
/// layout it waits, and moves once that one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_the_layout_before_cluster_support_is_moved_not_lost() {
    use gateway_ports::{StoredWindow, WindowStore};

    let redis = TestRedis::start().await;
    let prefix = fresh_prefix();
    let store = connected_as(&redis.url, &prefix).await;
    let mut connection = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let legacy = |name: &str| format!("{prefix}:storm:window:{{{}:{name}}}", name.len());
    for (name, version, state) in [("prod/Old", 3, "old state"), ("prod/Both", 7, "waits")] {
        redis::pipe()
            .cmd("HSET")
            .arg(legacy(name))
            .arg("v")
            .arg(version)
            .arg("s")
            .arg(state)
            .cmd("PEXPIRE")
            .arg(legacy(name))
            .arg(30_000)
            .cmd("SADD")
            .arg(format!("{prefix}:storm:windows"))
            .arg(name)
            .exec_async(&mut connection)
            .await
            .unwrap();
    }
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .replace("prod/Both", None, Some(b"new".to_vec()), ttl)
            .await
            .unwrap()
    );

    let mut listed = store.keys().await.unwrap();
    listed.sort();
    assert_eq!(listed, ["prod/Both", "prod/Old"]);
    assert_eq!(
        store.load("prod/Old").await.unwrap(),
        Some(StoredWindow {
            version: 4,
            state: b"old state".to_vec()
        }),
        "moved, its version past the old one"
    );
    assert_eq!(
        store.load("prod/Both").await.unwrap().unwrap().state,
        b"new",
        "the open window of the new layout is left as it is"
    );

    // The new one closes; the old one moves in on the next look.
    assert!(
        store
            .replace("prod/Both", Some(1), None, ttl)
            .await
            .unwrap()
    );
    assert_eq!(store.keys().await.unwrap().len(), 2);
    let moved = store.load("prod/Both").await.unwrap().unwrap();
    assert_eq!(moved.state, b"waits");
    assert!(moved.version > 7, "{}", moved.version);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:storm:window*:{{[0-9]*}}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(left.is_empty(), "old-layout keys left: {left:?}");
    let old_index: u64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}:storm:windows"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(old_index, 0);
}

/// A write a previous process left in the Redis outbox (what a closed storm window leaves) is
/// made by the next gateway, although Redis answers it only a moment after it starts: reading
/// the outbox is tried again every round until it answers, not once at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_left_in_the_redis_outbox_is_made_by_the_next_gateway() {
    use gateway_ports::Outbox;

    let redis = TestRedis::start().await;
    // The gateway's own key prefix: the outbox a previous gateway process would have left.
    let store = connected_as(&redis.url, "kubernaut:gateway").await;
    let request = crate::kube_sink::sample_request("rr-left-behind");
    let entry = serde_json::json!({ "op": "create", "request": request });
    store
        .put("rr-left-behind", serde_json::to_vec(&entry).unwrap())
        .await
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let replica = replica(&redis.url, &root.path().join("no-config"), &out).await;
    let until = Instant::now() + Duration::from_secs(10);
    while !out.join("rr-left-behind.yaml").exists() {
        assert!(
            Instant::now() < until,
            "the write left in the outbox was never made"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let until = Instant::now() + Duration::from_secs(5);
    while store.len().await.unwrap() > 0 {
        assert!(Instant::now() < until, "the outbox entry stayed once made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica.stop().await;
}
