//! The `StormCounter` and `WindowStore` contracts (see their rustdoc in `ports/src/storm.rs`), as
//! one suite each that every adapter runs: the in-memory adapters here, and Redis (a real one, in
//! a container from the locally built image).
//!
//! Each suite gets *replicas*: handles on one shared state, as gateway replicas have. For the
//! in-memory and embedded adapters that is one store shared (two embedded stores cannot open one
//! file); for Redis, separate stores (separate connections) under one key prefix.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_adapter_memory::{MemoryStormCounter, MemoryWindowStore, SystemClock};
use gateway_adapter_redis::RedisStore;
use gateway_ports::{
    Clock, Counting, ResourceRef, StoredWindow, StormCounter, StormCounts, Timestamp, WindowStore,
};
use gateway_tests::redis::TestRedis;

use crate::dedup_conformance::embedded_stores;
use crate::redis_store::{connected_as, fresh_prefix};

const T0: Timestamp = Timestamp::from_secs(1_764_090_000);

/// Small windows, so boundaries are easy to read: a rate window of 10 s, a pattern window of 20 s.
const COUNTING: Counting = Counting {
    rate_window: Duration::from_secs(10),
    pattern_window: Duration::from_secs(20),
    max_tracked: 1_000,
};

/// The longest a suite may take, Redis container start included.
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

fn pod(name: &str) -> ResourceRef {
    ResourceRef {
        kind: "Pod".into(),
        name: name.into(),
        namespace: "prod".into(),
    }
}

fn counts(rate: u64, distinct_resources: u64) -> StormCounts {
    StormCounts {
        rate,
        distinct_resources,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// StormCounter
// ---------------------------------------------------------------------------------------------

/// Handles on one fresh, shared storm-counter state.
pub type CounterReplicas = Vec<Arc<dyn StormCounter>>;

/// The `StormCounter` suite. `replicas(n)` gives `n` handles on one fresh, empty state.
pub async fn storm_counter_conformance<F, Fut>(replicas: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = CounterReplicas>,
{
    let one = || async { replicas(1).await.remove(0) };
    counts_include_the_signal(&*one().await).await;
    a_signal_exactly_rate_window_old_no_longer_counts(&*one().await).await;
    a_resource_hit_exactly_pattern_window_ago_no_longer_counts(&*one().await).await;
    distinct_resources_are_counted_once_each(&*one().await).await;
    alert_names_are_counted_apart(&*one().await).await;
    names_holding_separators_are_counted_apart(&*one().await).await;
    at_most_max_tracked_signals_are_kept(&*one().await).await;
    at_most_max_tracked_resources_are_kept_the_most_recent(&*one().await).await;
    a_name_gone_quiet_starts_again_from_nothing(&*one().await).await;
    the_domain_counting_windows(&*one().await).await;
    every_count_is_one_atomic_step_across_replicas(replicas(4).await).await;
}

async fn counts_include_the_signal(counter: &dyn StormCounter) {
    let first = counter
        .count("Disk", &pod("a"), T0, COUNTING)
        .await
        .unwrap();
    assert_eq!(first, counts(1, 1), "the first signal counts itself");
}

async fn a_signal_exactly_rate_window_old_no_longer_counts(counter: &dyn StormCounter) {
    let a = pod("a");
    let count = |t: Duration| counter.count("Rate", &a, T0 + t, COUNTING);
    assert_eq!(count(ms(0)).await.unwrap(), counts(1, 1));
    assert_eq!(count(ms(5_000)).await.unwrap(), counts(2, 1));
    assert_eq!(
        count(ms(9_999)).await.unwrap(),
        counts(3, 1),
        "1 ms short of the window, the first signal still counts"
    );
    assert_eq!(
        count(ms(10_000)).await.unwrap(),
        counts(3, 1),
        "exactly 10 s old, the first signal is out (the three others are in)"
    );
    assert_eq!(
        count(ms(15_000)).await.unwrap(),
        counts(3, 1),
        "the signal at 5 s is out too"
    );
}

async fn a_resource_hit_exactly_pattern_window_ago_no_longer_counts(counter: &dyn StormCounter) {
    let count = |r: &str, t: Duration| {
        let r = pod(r);
        async move {
            counter
                .count("Pattern", &r, T0 + t, COUNTING)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("a", ms(0)).await, counts(1, 1));
    assert_eq!(count("b", ms(1_000)).await.distinct_resources, 2);
    // a hit again: its last hit is now 12 s.
    assert_eq!(count("a", ms(12_000)).await.distinct_resources, 2);
    assert_eq!(
        count("c", ms(20_999)).await.distinct_resources,
        3,
        "b, hit 19.999 s ago, still counts"
    );
    assert_eq!(
        count("c", ms(21_000)).await.distinct_resources,
        2,
        "b, hit exactly 20 s ago, is out; a (12 s) and c are in"
    );
    assert_eq!(
        count("d", ms(32_000)).await.distinct_resources,
        2,
        "a, last hit exactly 20 s ago, is out; c and d are in"
    );
}

async fn distinct_resources_are_counted_once_each(counter: &dyn StormCounter) {
    let count = |r: ResourceRef| async move {
        counter
            .count("Distinct", &r, T0 + ms(1), COUNTING)
            .await
            .unwrap()
    };
    for n in 1..=5 {
        assert_eq!(
            count(pod("a")).await,
            counts(n, 1),
            "one pod, hit {n} times"
        );
    }
    let in_staging = ResourceRef {
        namespace: "staging".into(),
        ..pod("a")
    };
    let a_deployment = ResourceRef {
        kind: "Deployment".into(),
        ..pod("a")
    };
    assert_eq!(
        count(in_staging).await,
        counts(6, 2),
        "another namespace, another resource"
    );
    assert_eq!(
        count(a_deployment).await,
        counts(7, 3),
        "another kind, another resource"
    );
}

async fn alert_names_are_counted_apart(counter: &dyn StormCounter) {
    for n in 0..3 {
        counter
            .count("Apart", &pod(&n.to_string()), T0, COUNTING)
            .await
            .unwrap();
    }
    assert_eq!(
        counter
            .count("Other", &pod("0"), T0, COUNTING)
            .await
            .unwrap(),
        counts(1, 1)
    );
    assert_eq!(
        counter
            .count("Apart", &pod("0"), T0, COUNTING)
            .await
            .unwrap(),
        counts(4, 3)
    );
}

/// Names that hold what a key's separators might (`{`, `}`, `:`, `/`, a newline), and a 10 KB
/// name: each is counted apart from every other; so are resources whose parts differ only in
/// where a `/` falls.
async fn names_holding_separators_are_counted_apart(counter: &dyn StormCounter) {
    let long = "L".repeat(10 * 1024);
    let names = [
        "x",
        "x}",
        "{x",
        "{x}",
        "x}:signals",
        "1:x",
        "x:",
        "x\ny",
        "a/b",
        "}",
        "",
        &long,
    ];
    for name in names {
        assert_eq!(
            counter.count(name, &pod("a"), T0, COUNTING).await.unwrap(),
            counts(1, 1),
            "{name:.40?} shares no state with the names before it"
        );
    }
    let resource = |namespace: &str, name: &str| ResourceRef {
        kind: "Pod".into(),
        name: name.into(),
        namespace: namespace.into(),
    };
    let count = |r: ResourceRef| async move {
        counter
            .count("Paths", &r, T0, COUNTING)
            .await
            .unwrap()
            .distinct_resources
    };
    assert_eq!(count(resource("a", "b/c")).await, 1);
    assert_eq!(
        count(resource("a/b", "c")).await,
        2,
        "namespace a + b/c and namespace a/b + c are two resources"
    );
    assert_eq!(count(resource("a/Pod/b", "c")).await, 3);
}

async fn at_most_max_tracked_signals_are_kept(counter: &dyn StormCounter) {
    let counting = Counting {
        max_tracked: 5,
        ..COUNTING
    };
    for n in 1..=12 {
        let seen = counter
            .count("Capped", &pod("a"), T0 + ms(n), counting)
            .await
            .unwrap();
        assert_eq!(seen.rate, n.min(5), "signal {n}");
    }
}

async fn at_most_max_tracked_resources_are_kept_the_most_recent(counter: &dyn StormCounter) {
    let counting = Counting {
        max_tracked: 3,
        ..COUNTING
    };
    let count = |r: &str, t: u64| {
        let r = pod(r);
        async move {
            counter
                .count("Wide", &r, T0 + ms(t), counting)
                .await
                .unwrap()
                .distinct_resources
        }
    };
    assert_eq!(count("a", 0).await, 1);
    assert_eq!(count("b", 1).await, 2);
    assert_eq!(count("c", 2).await, 3);
    assert_eq!(count("a", 3).await, 3, "a hit again: now the most recent");
    assert_eq!(count("d", 4).await, 3, "b, the least recent, goes");
    assert_eq!(count("a", 5).await, 3, "a was kept");
    assert_eq!(count("c", 6).await, 3, "c was kept");
    assert_eq!(count("b", 7).await, 3, "b is new again; d goes");
    assert_eq!(count("d", 8).await, 3, "d is new again; a goes");
}

async fn a_name_gone_quiet_starts_again_from_nothing(counter: &dyn StormCounter) {
    for n in 0..4 {
        counter
            .count("Quiet", &pod(&n.to_string()), T0, COUNTING)
            .await
            .unwrap();
    }
    let after = T0 + COUNTING.pattern_window;
    assert_eq!(
        counter
            .count("Quiet", &pod("0"), after, COUNTING)
            .await
            .unwrap(),
        counts(1, 1)
    );
}

/// The windows the storm domain counts over (60 s, 120 s), as the gateway uses them.
async fn the_domain_counting_windows(counter: &dyn StormCounter) {
    use gateway_storm::COUNTING;
    let count = |r: &str, at: Timestamp| {
        let r = pod(r);
        async move { counter.count("Disk", &r, at, COUNTING).await.unwrap() }
    };
    let s = Duration::from_secs;
    assert_eq!(count("a", T0).await, counts(1, 1));
    assert_eq!(count("a", T0 + s(1)).await, counts(2, 1));
    assert_eq!(count("b", T0 + s(2)).await, counts(3, 2));
    // Exactly 60 s after the first signal: it no longer counts for the rate; the pod still does.
    assert_eq!(count("c", T0 + s(60)).await, counts(3, 3));
    // 120 s after pod a's last signal: pod a has left the pattern window.
    assert_eq!(count("d", T0 + s(121)).await, counts(1, 3));
}

/// Concurrent signals of one alert name from every replica, at one instant: each count is one
/// atomic step, so the answers are 1, 2, …, n in some order, and nothing is counted twice or lost.
async fn every_count_is_one_atomic_step_across_replicas(replicas: CounterReplicas) {
    const SIGNALS: u64 = 200;
    let tasks: Vec<_> = (0..SIGNALS)
        .map(|n| {
            let counter = replicas[n as usize % replicas.len()].clone();
            tokio::spawn(async move {
                counter
                    .count("Burst", &pod(&n.to_string()), T0, COUNTING)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut rates = Vec::new();
    let mut distinct = Vec::new();
    for task in tasks {
        let seen = task.await.unwrap();
        rates.push(seen.rate);
        distinct.push(seen.distinct_resources);
    }
    rates.sort_unstable();
    distinct.sort_unstable();
    let expected: Vec<u64> = (1..=SIGNALS).collect();
    assert_eq!(rates, expected, "every signal saw its own rate");
    assert_eq!(distinct, expected, "every new pod saw its own count");
}

// ---------------------------------------------------------------------------------------------
// WindowStore
// ---------------------------------------------------------------------------------------------

/// Lets time pass for a store: a manual clock moved, or real time slept.
pub type Pass = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Handles on one fresh, shared window state, and how time passes for it.
pub struct WindowRig {
    /// Replicas: handles on one state.
    pub stores: Vec<Arc<dyn WindowStore>>,
    /// Lets time pass for the store.
    pub pass: Pass,
    /// A TTL short enough to wait out with `pass`.
    pub short_ttl: Duration,
}

/// A TTL no case outlives.
const TTL: Duration = Duration::from_secs(300);

/// The `WindowStore` suite. `rig(n)` gives `n` handles on one fresh, empty state.
pub async fn window_store_conformance<F, Fut>(rig: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = WindowRig>,
{
    let one = || async { rig(1).await.stores.remove(0) };
    a_window_is_created_only_where_none_is_stored(&*one().await).await;
    versions_rise_by_one_and_a_stale_version_is_refused(&*one().await).await;
    state_is_stored_byte_for_byte(&*one().await).await;
    a_deletion_is_a_compare_and_set_too(&*one().await).await;
    a_writer_holding_a_deleted_windows_version_cannot_overwrite_a_new_one(&*one().await).await;
    keys_lists_every_stored_window(&*one().await).await;
    keys_holding_separators_are_kept_apart(&*one().await).await;
    exactly_one_concurrent_writer_wins_each_version(rig(4).await.stores).await;
    writers_that_retry_lose_no_update(rig(4).await.stores).await;
    a_window_expires_ttl_after_its_last_replacement(rig(1).await).await;
}

fn stored(version: u64, state: &[u8]) -> Option<StoredWindow> {
    Some(StoredWindow {
        version,
        state: state.to_vec(),
    })
}

fn bytes(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

async fn a_window_is_created_only_where_none_is_stored(store: &dyn WindowStore) {
    let key = "prod/Create";
    assert_eq!(store.load(key).await.unwrap(), None);
    assert!(
        !store.replace(key, Some(1), bytes("x"), TTL).await.unwrap(),
        "no window stored: no version matches"
    );
    assert_eq!(store.load(key).await.unwrap(), None);
    assert!(store.replace(key, None, bytes("a"), TTL).await.unwrap());
    assert_eq!(
        store.load(key).await.unwrap(),
        stored(1, b"a"),
        "versions start at 1"
    );
    assert!(
        !store.replace(key, None, bytes("x"), TTL).await.unwrap(),
        "a second creation is refused"
    );
    assert_eq!(store.load(key).await.unwrap(), stored(1, b"a"));
}

async fn versions_rise_by_one_and_a_stale_version_is_refused(store: &dyn WindowStore) {
    let key = "prod/Versions";
    assert!(store.replace(key, None, bytes("v1"), TTL).await.unwrap());
    for version in 1..=5 {
        let next = format!("v{}", version + 1);
        assert!(
            !store
                .replace(key, Some(version + 1), bytes("x"), TTL)
                .await
                .unwrap(),
            "a version ahead of the stored one is refused"
        );
        assert!(
            store
                .replace(key, Some(version), bytes(&next), TTL)
                .await
                .unwrap()
        );
        assert!(
            !store
                .replace(key, Some(version), bytes("x"), TTL)
                .await
                .unwrap(),
            "the version just replaced is stale"
        );
        assert_eq!(
            store.load(key).await.unwrap(),
            stored(version + 1, next.as_bytes())
        );
    }
}

async fn state_is_stored_byte_for_byte(store: &dyn WindowStore) {
    let every_byte: Vec<u8> = (0..=255).collect();
    assert!(
        store
            .replace("prod/Bytes", None, Some(every_byte.clone()), TTL)
            .await
            .unwrap()
    );
    assert_eq!(
        store.load("prod/Bytes").await.unwrap(),
        stored(1, &every_byte)
    );
    assert!(
        store
            .replace("prod/Empty", None, Some(Vec::new()), TTL)
            .await
            .unwrap()
    );
    assert_eq!(
        store.load("prod/Empty").await.unwrap(),
        stored(1, b""),
        "an empty state is a state, not a deletion"
    );
    assert!(store.keys().await.unwrap().contains(&"prod/Empty".into()));
}

async fn a_deletion_is_a_compare_and_set_too(store: &dyn WindowStore) {
    let key = "prod/Delete";
    assert!(
        store.replace(key, None, None, TTL).await.unwrap(),
        "deleting where nothing is stored, expecting nothing, is done"
    );
    assert!(store.replace(key, None, bytes("a"), TTL).await.unwrap());
    assert!(store.replace(key, Some(1), bytes("b"), TTL).await.unwrap());
    assert!(
        !store.replace(key, Some(1), None, TTL).await.unwrap(),
        "a stale deletion is refused"
    );
    assert!(!store.replace(key, None, None, TTL).await.unwrap());
    assert_eq!(store.load(key).await.unwrap(), stored(2, b"b"));
    assert!(store.replace(key, Some(2), None, TTL).await.unwrap());
    assert_eq!(store.load(key).await.unwrap(), None);
    assert!(!store.keys().await.unwrap().contains(&key.to_owned()));
    assert!(
        !store.replace(key, Some(2), bytes("x"), TTL).await.unwrap(),
        "the deleted window's version names nothing stored"
    );
    assert!(
        store.replace(key, None, bytes("c"), TTL).await.unwrap(),
        "a window can be created again"
    );
    assert_eq!(store.load(key).await.unwrap().map(|w| w.state), bytes("c"));
}

/// The lost update compare-and-set exists to prevent, across a deletion: replica A loads window
/// W1 at version v; B closes W1 (deletes it); C opens W2 under the same key. A's replacement,
/// meant for W1, must not overwrite W2 — which it would if W2's version could be v again.
async fn a_writer_holding_a_deleted_windows_version_cannot_overwrite_a_new_one(
    store: &dyn WindowStore,
) {
    let key = "prod/Reopened";
    assert!(store.replace(key, None, bytes("w1"), TTL).await.unwrap());
    let held_by_a = store.load(key).await.unwrap().unwrap().version;
    assert!(
        store
            .replace(key, Some(held_by_a), None, TTL)
            .await
            .unwrap(),
        "B closes W1"
    );
    assert!(
        store.replace(key, None, bytes("w2"), TTL).await.unwrap(),
        "C opens W2"
    );
    assert!(
        !store
            .replace(key, Some(held_by_a), bytes("w1 + a"), TTL)
            .await
            .unwrap(),
        "A's write, meant for W1, is refused"
    );
    assert_eq!(store.load(key).await.unwrap().map(|w| w.state), bytes("w2"));
}

async fn keys_lists_every_stored_window(store: &dyn WindowStore) {
    let listed = || async {
        let mut keys = store.keys().await.unwrap();
        keys.sort();
        keys
    };
    assert!(listed().await.is_empty());
    let names = ["prod/Listed", "prod/Other{tag}:x", "staging/Listed"];
    for name in names {
        assert!(store.replace(name, None, bytes(name), TTL).await.unwrap());
    }
    assert_eq!(listed().await, names);
    for name in names {
        assert_eq!(
            store.load(name).await.unwrap().map(|w| w.state),
            bytes(name),
            "windows are kept apart"
        );
    }
    assert!(store.replace(names[0], Some(1), None, TTL).await.unwrap());
    assert_eq!(listed().await, names[1..], "a deleted window is not listed");
}

/// Window names that hold what a key's separators might, and a 10 KB name: each is its own
/// window.
async fn keys_holding_separators_are_kept_apart(store: &dyn WindowStore) {
    let long = format!("prod/{}", "W".repeat(10 * 1024));
    let names = [
        "a/b/c", "a/b}", "{a/b", "a}:x", "3:a/b", "a\nb", "a:b", "}", "", &long,
    ];
    for name in names {
        assert!(
            store.replace(name, None, bytes(name), TTL).await.unwrap(),
            "{name:.40?}: no window was stored under it"
        );
    }
    for name in names {
        assert_eq!(store.load(name).await.unwrap(), stored(1, name.as_bytes()));
    }
    let mut listed = store.keys().await.unwrap();
    listed.sort();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

async fn exactly_one_concurrent_writer_wins_each_version(stores: Vec<Arc<dyn WindowStore>>) {
    const WRITERS: usize = 40;
    let key = "prod/Race";
    assert!(stores[0].replace(key, None, bytes("0"), TTL).await.unwrap());
    for version in 1..=3_u64 {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|n| {
                let store = stores[n % stores.len()].clone();
                tokio::spawn(async move {
                    let mine = format!("{version}:{n}");
                    let won = store
                        .replace(key, Some(version), bytes(&mine), TTL)
                        .await
                        .unwrap();
                    won.then_some(mine)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            winners.extend(task.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "version {version}: {winners:?}");
        assert_eq!(
            stores[0].load(key).await.unwrap(),
            stored(version + 1, winners[0].as_bytes()),
            "the winner's state is stored"
        );
    }
}

async fn writers_that_retry_lose_no_update(stores: Vec<Arc<dyn WindowStore>>) {
    const WRITERS: usize = 16;
    const UPDATES: usize = 5;
    let key = "prod/Retry";
    let tasks: Vec<_> = (0..WRITERS)
        .map(|n| {
            let store = stores[n % stores.len()].clone();
            tokio::spawn(async move {
                let mut refused = 0_u32;
                for update in 0..UPDATES {
                    loop {
                        let current = store.load(key).await.unwrap();
                        let version = current.as_ref().map(|w| w.version);
                        let mut state = current.map(|w| w.state).unwrap_or_default();
                        state.extend_from_slice(format!("{n}.{update};").as_bytes());
                        if store.replace(key, version, Some(state), TTL).await.unwrap() {
                            break;
                        }
                        refused += 1;
                        assert!(refused < 10_000, "writer {n} starved");
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let last = stores[0].load(key).await.unwrap().unwrap();
    let text = String::from_utf8(last.state).unwrap();
    let mut updates: Vec<&str> = text.split_terminator(';').collect();
    updates.sort_unstable();
    let mut expected: Vec<String> = (0..WRITERS)
        .flat_map(|n| (0..UPDATES).map(move |u| format!("{n}.{u}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(updates, expected, "every update is in, once");
    assert_eq!(
        last.version,
        (WRITERS * UPDATES) as u64,
        "one version per update"
    );
}

async fn a_window_expires_ttl_after_its_last_replacement(rig: WindowRig) {
    let (store, pass, ttl) = (&rig.stores[0], &rig.pass, rig.short_ttl);
    let key = "prod/Expiring";
    let part = ttl.mul_f64(0.6);
    assert!(store.replace(key, None, bytes("a"), ttl).await.unwrap());
    pass(part).await;
    assert_eq!(store.load(key).await.unwrap(), stored(1, b"a"));
    assert!(store.replace(key, Some(1), bytes("b"), ttl).await.unwrap());
    pass(part).await;
    assert_eq!(
        store.load(key).await.unwrap(),
        stored(2, b"b"),
        "a replacement starts the TTL again"
    );
    pass(part).await;
    assert_eq!(store.load(key).await.unwrap(), None, "expired");
    assert!(
        !store.keys().await.unwrap().contains(&key.to_owned()),
        "an expired window that loaded as None is no longer listed"
    );
    assert!(
        !store.replace(key, Some(2), bytes("x"), ttl).await.unwrap(),
        "an expired window cannot be replaced"
    );
    assert!(
        store.replace(key, None, bytes("c"), ttl).await.unwrap(),
        "a window can be created where one expired"
    );
}

// ---------------------------------------------------------------------------------------------
// The adapters
// ---------------------------------------------------------------------------------------------

/// A clock for the in-memory window store, moved by the suite.
#[derive(Debug)]
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

async fn bounded(suite: impl Future<Output = ()>) {
    tokio::time::timeout(SUITE_TIMEOUT, suite)
        .await
        .expect("the suite finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_storm_counter_honours_the_storm_counter_contract() {
    bounded(storm_counter_conformance(|n| async move {
        let counter: Arc<dyn StormCounter> = Arc::new(MemoryStormCounter::default());
        vec![counter; n]
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_window_store_honours_the_window_store_contract() {
    bounded(window_store_conformance(|n| async move {
        let clock = Arc::new(TestClock(AtomicU64::new(T0.as_millis())));
        let store: Arc<dyn WindowStore> = Arc::new(MemoryWindowStore::new(clock.clone()));
        let pass: Pass = Arc::new(move |d: Duration| {
            clock
                .0
                .fetch_add(u64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
            Box::pin(async {})
        });
        WindowRig {
            stores: vec![store; n],
            pass,
            short_ttl: Duration::from_secs(60),
        }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_honours_the_storm_counter_contract() {
    let root = tempfile::tempdir().unwrap();
    let fresh = embedded_stores(root.path(), Arc::new(SystemClock));
    bounded(storm_counter_conformance(|n| {
        let counter: Arc<dyn StormCounter> = Arc::new(fresh());
        std::future::ready(vec![counter; n])
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_honours_the_window_store_contract() {
    let root = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(T0.as_millis())));
    let fresh = embedded_stores(root.path(), clock.clone());
    bounded(window_store_conformance(|n| {
        let store: Arc<dyn WindowStore> = Arc::new(fresh());
        let clock = clock.clone();
        let pass: Pass = Arc::new(move |d: Duration| {
            clock
                .0
                .fetch_add(u64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
            Box::pin(async {})
        });
        std::future::ready(WindowRig {
            stores: vec![store; n],
            pass,
            short_ttl: Duration::from_secs(60),
        })
    }))
    .await;
}

/// `n` stores on `url` under one fresh key prefix: replicas sharing one Redis.
async fn redis_replicas(url: &str, n: usize) -> Vec<Arc<RedisStore>> {
    let prefix = fresh_prefix();
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(Arc::new(connected_as(url, &prefix).await));
    }
    stores
}

/// The storm-counter suite on the Redis at `url` (one server, a Cluster or a Sentinel set).
pub(crate) async fn redis_storm_counter_suite(url: &str) {
    storm_counter_conformance(|n| async move {
        redis_replicas(url, n)
            .await
            .into_iter()
            .map(|s| s as Arc<dyn StormCounter>)
            .collect()
    })
    .await;
}

/// The window-store suite on the Redis at `url` (one server, a Cluster or a Sentinel set).
pub(crate) async fn redis_window_suite(url: &str) {
    window_store_conformance(|n| async move {
        let pass: Pass = Arc::new(|d: Duration| Box::pin(tokio::time::sleep(d)));
        WindowRig {
            stores: redis_replicas(url, n)
                .await
                .into_iter()
                .map(|s| s as Arc<dyn WindowStore>)
                .collect(),
            pass,
            // Long enough that a loaded machine's late wake-up (0.8 s of slack) does not
            // expire a window early.
            short_ttl: Duration::from_secs(2),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_honours_the_storm_counter_contract() {
    bounded(async {
        let redis = TestRedis::start().await;
        redis_storm_counter_suite(&redis.url).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_honours_the_window_store_contract() {
    bounded(async {
        let redis = TestRedis::start().await;
        redis_window_suite(&redis.url).await;
    })
    .await;
}
