//! The `Outbox` contract (see its rustdoc in `ports/src/outbox.rs`), as one suite every adapter
//! runs: in memory, embedded (redb), and Redis (a real one, in a container from the locally built
//! image). Replicas, as in `storm_conformance`: one store shared for memory and embedded,
//! separate connections under one key prefix for Redis.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gateway_adapter_memory::{MemoryOutbox, SystemClock};
use gateway_adapter_redis::RedisStore;
use gateway_ports::{Outbox, OutboxEntry};
use gateway_tests::redis::TestRedis;

use crate::dedup_conformance::embedded_stores;
use crate::redis_store::{connected_as, fresh_prefix};

/// The longest a suite may take, Redis container start included.
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

/// Handles on one fresh, shared outbox.
pub type OutboxReplicas = Vec<Arc<dyn Outbox>>;

/// The suite. `replicas(n)` gives `n` handles on one fresh, empty outbox.
pub async fn outbox_conformance<F, Fut>(replicas: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = OutboxReplicas>,
{
    let one = || async { replicas(1).await.remove(0) };
    a_put_is_listed_and_counted(&*one().await).await;
    a_put_replaces_the_entry_under_a_greater_version(&*one().await).await;
    remove_names_a_version(&*one().await).await;
    a_key_put_again_after_its_removal_gets_a_greater_version(&*one().await).await;
    list_returns_every_entry_in_key_order_byte_for_byte(&*one().await).await;
    concurrent_puts_each_get_their_own_version(replicas(4).await).await;
}

fn entry(key: &str, version: u64, bytes: &[u8]) -> OutboxEntry {
    OutboxEntry {
        key: key.to_owned(),
        version,
        entry: bytes.to_vec(),
    }
}

async fn a_put_is_listed_and_counted(outbox: &dyn Outbox) {
    assert_eq!(outbox.len().await.unwrap(), 0);
    assert!(outbox.list().await.unwrap().is_empty());
    let version = outbox.put("rr-a", b"a".to_vec()).await.unwrap();
    assert!(version > 0);
    assert_eq!(outbox.len().await.unwrap(), 1);
    assert_eq!(outbox.list().await.unwrap(), [entry("rr-a", version, b"a")]);
}

async fn a_put_replaces_the_entry_under_a_greater_version(outbox: &dyn Outbox) {
    let first = outbox.put("rr-a", b"first".to_vec()).await.unwrap();
    let second = outbox.put("rr-a", b"second".to_vec()).await.unwrap();
    assert!(second > first, "{second} after {first}");
    assert_eq!(
        outbox.list().await.unwrap(),
        [entry("rr-a", second, b"second")]
    );
    assert_eq!(outbox.len().await.unwrap(), 1);
}

/// A write that finished must not delete a newer entry put meanwhile.
async fn remove_names_a_version(outbox: &dyn Outbox) {
    let written = outbox.put("rr-a", b"old".to_vec()).await.unwrap();
    let newer = outbox.put("rr-a", b"new".to_vec()).await.unwrap();
    outbox.remove("rr-a", written).await.unwrap();
    assert_eq!(
        outbox.list().await.unwrap(),
        [entry("rr-a", newer, b"new")],
        "removing the older version leaves the newer entry"
    );
    outbox.remove("rr-a", newer + 1).await.unwrap();
    assert_eq!(
        outbox.len().await.unwrap(),
        1,
        "a version never given out names nothing"
    );
    outbox.remove("rr-a", newer).await.unwrap();
    assert_eq!(outbox.len().await.unwrap(), 0);
    outbox
        .remove("rr-a", newer)
        .await
        .expect("removing a missing entry is Ok");
    outbox
        .remove("never-put", 1)
        .await
        .expect("removing a key never put is Ok");
}

async fn a_key_put_again_after_its_removal_gets_a_greater_version(outbox: &dyn Outbox) {
    let first = outbox.put("rr-a", b"1".to_vec()).await.unwrap();
    outbox.remove("rr-a", first).await.unwrap();
    let again = outbox.put("rr-a", b"2".to_vec()).await.unwrap();
    assert!(again > first, "{again} after {first}");
    outbox.remove("rr-a", first).await.unwrap();
    assert_eq!(
        outbox.list().await.unwrap(),
        [entry("rr-a", again, b"2")],
        "the removed entry's version does not name the new one"
    );
}

async fn list_returns_every_entry_in_key_order_byte_for_byte(outbox: &dyn Outbox) {
    let every_byte: Vec<u8> = (0..=255).collect();
    let large = vec![b':'; 256 * 1024];
    let entries: [(&str, &[u8]); 6] = [
        ("rr-b", b""),
        ("rr-a", &every_byte),
        ("rr-{tag}:x", b"12:not a version"),
        ("rr-\nnewline", b"\n"),
        ("rr-c", &large),
        ("", b"empty key"),
    ];
    let mut expected = BTreeMap::new();
    for (key, bytes) in entries {
        let version = outbox.put(key, bytes.to_vec()).await.unwrap();
        expected.insert(key.to_owned(), entry(key, version, bytes));
    }
    let expected: Vec<OutboxEntry> = expected.into_values().collect();
    assert_eq!(outbox.list().await.unwrap(), expected);
    assert_eq!(outbox.len().await.unwrap(), entries.len());
}

async fn concurrent_puts_each_get_their_own_version(replicas: OutboxReplicas) {
    const PUTS: usize = 200;
    let tasks: Vec<_> = (0..PUTS)
        .map(|n| {
            let outbox = replicas[n % replicas.len()].clone();
            tokio::spawn(async move {
                // Half the puts go to one key, the others to a key each.
                let key = if n % 2 == 0 {
                    "shared".to_owned()
                } else {
                    format!("own-{n:03}")
                };
                let bytes = n.to_string().into_bytes();
                let version = outbox.put(&key, bytes.clone()).await.unwrap();
                (key, version, bytes)
            })
        })
        .collect();
    let mut puts = Vec::new();
    for task in tasks {
        puts.push(task.await.unwrap());
    }
    let mut versions: Vec<u64> = puts.iter().map(|(_, v, _)| *v).collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), PUTS, "no version was given out twice");

    let listed = replicas[0].list().await.unwrap();
    assert_eq!(listed.len(), PUTS / 2 + 1);
    let last_shared = puts
        .iter()
        .filter(|(key, _, _)| key == "shared")
        .max_by_key(|(_, version, _)| *version)
        .unwrap();
    let shared = listed.iter().find(|e| e.key == "shared").unwrap();
    assert_eq!(
        (shared.version, &shared.entry),
        (last_shared.1, &last_shared.2),
        "the put with the greatest version is the one stored"
    );
    for (key, version, bytes) in puts.iter().filter(|(key, _, _)| key != "shared") {
        assert!(
            listed.contains(&entry(key, *version, bytes)),
            "{key} v{version} is listed"
        );
    }
}

async fn bounded(suite: impl Future<Output = ()>) {
    tokio::time::timeout(SUITE_TIMEOUT, suite)
        .await
        .expect("the suite finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_outbox_honours_the_outbox_contract() {
    bounded(outbox_conformance(|n| async move {
        let outbox: Arc<dyn Outbox> = Arc::new(MemoryOutbox::new());
        vec![outbox; n]
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_honours_the_outbox_contract() {
    let root = tempfile::tempdir().unwrap();
    let fresh = embedded_stores(root.path(), Arc::new(SystemClock));
    bounded(outbox_conformance(|n| {
        let outbox: Arc<dyn Outbox> = Arc::new(fresh());
        std::future::ready(vec![outbox; n])
    }))
    .await;
}

/// The outbox suite on the Redis at `url` (one server, a Cluster or a Sentinel set): replicas are
/// stores under one key prefix.
pub(crate) async fn redis_outbox_suite(url: &str) {
    outbox_conformance(|n| async move {
        let prefix = fresh_prefix();
        let mut replicas: OutboxReplicas = Vec::new();
        for _ in 0..n {
            let store: Arc<RedisStore> = Arc::new(connected_as(url, &prefix).await);
            replicas.push(store);
        }
        replicas
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_honours_the_outbox_contract() {
    bounded(async {
        let redis = TestRedis::start().await;
        redis_outbox_suite(&redis.url).await;
    })
    .await;
}
