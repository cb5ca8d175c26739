//! The store's own behaviour: what survives a reopen, how opening fails, the bounds and sweeps
//! that keep the file from growing, and commits shared by concurrent callers. The ports'
//! contracts are checked by the conformance suites in the tests crate; a real crash (SIGKILL) by
//! `tests/crash.rs`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use gateway_ports::test_util::{ManualClock, at, fingerprint};
use gateway_ports::{
    Counting, DedupStore, Outbox, ResourceRef, Seen, StormCounter, StormCounts, WindowStore,
};

use super::*;

const TTL: Duration = Duration::from_secs(300);

const COUNTING: Counting = Counting {
    rate_window: Duration::from_secs(60),
    pattern_window: Duration::from_secs(120),
    max_tracked: 1_000,
};

fn pod(name: &str) -> ResourceRef {
    ResourceRef {
        kind: "Pod".into(),
        name: name.into(),
        namespace: "prod".into(),
    }
}

fn open_with(dir: &Path, clock: &ManualClock, options: EmbeddedOptions) -> EmbeddedStore {
    EmbeddedStore::open(dir, Arc::new(clock.clone()), options).unwrap()
}

fn open(dir: &Path, clock: &ManualClock) -> EmbeddedStore {
    open_with(dir, clock, EmbeddedOptions::default())
}

fn options(dedup_capacity: usize, max_alert_names: usize) -> EmbeddedOptions {
    EmbeddedOptions {
        dedup_capacity: NonZeroUsize::new(dedup_capacity).unwrap(),
        max_alert_names: NonZeroUsize::new(max_alert_names).unwrap(),
        ..EmbeddedOptions::default()
    }
}

#[tokio::test]
async fn reopening_keeps_dedup_records_counts_windows_and_outbox_entries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    {
        let store = open(dir.path(), &clock);
        store.record(&fingerprint(1), TTL, at(0)).await.unwrap();
        store.settle(&fingerprint(1)).await.unwrap();
        store
            .count("Disk", &pod("a"), at(0), COUNTING)
            .await
            .unwrap();
        assert!(
            store
                .replace("prod/Disk", None, Some(b"w".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert!(
            store
                .replace("prod/Gone", None, Some(b"g".to_vec()), TTL)
                .await
                .unwrap()
        );
        assert!(
            store
                .replace("prod/Gone", Some(1), None, TTL)
                .await
                .unwrap()
        );
        assert_eq!(store.put("rr-1", b"entry".to_vec()).await.unwrap(), 1);
        assert_eq!(store.put("rr-2", b"other".to_vec()).await.unwrap(), 2);
        store.remove("rr-2", 2).await.unwrap();
    }
    let store = open(dir.path(), &clock);
    assert_eq!(
        store.record(&fingerprint(1), TTL, at(1)).await.unwrap(),
        Seen::Duplicate {
            window_start: at(0),
            count: 2
        }
    );
    assert_eq!(
        store
            .count("Disk", &pod("b"), at(1), COUNTING)
            .await
            .unwrap(),
        StormCounts {
            rate: 2,
            distinct_resources: 2
        }
    );
    assert_eq!(
        store
            .load("prod/Disk")
            .await
            .unwrap()
            .map(|w| (w.version, w.state)),
        Some((1, b"w".to_vec()))
    );
    assert_eq!(store.keys().await.unwrap(), ["prod/Disk"]);
    assert!(
        store
            .replace("prod/Gone", None, Some(b"again".to_vec()), TTL)
            .await
            .unwrap()
    );
    assert_eq!(
        store.load("prod/Gone").await.unwrap().map(|w| w.version),
        Some(3),
        "a deleted window's version survives the reopen"
    );
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].version), ("rr-1", 1));
    assert_eq!(listed[0].entry, b"entry");
    assert_eq!(
        store.put("rr-2", b"new".to_vec()).await.unwrap(),
        3,
        "versions never repeat, across removals and restarts"
    );
}

#[tokio::test]
async fn a_second_store_on_one_directory_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let first = open(dir.path(), &clock);
    let second = EmbeddedStore::open(
        dir.path(),
        Arc::new(clock.clone()),
        EmbeddedOptions::default(),
    );
    let error = second.unwrap_err();
    assert!(matches!(error, OpenError::Locked { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&first.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("--state-dir"), "{message}");
    drop(first);
    open(dir.path(), &clock);
}

#[tokio::test]
async fn a_file_that_is_no_database_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    for garbage in [&b"not a database"[..], &[0xAB; 8192][..]] {
        std::fs::write(dir.path().join(DATABASE_FILE), garbage).unwrap();
        let error = EmbeddedStore::open(
            dir.path(),
            Arc::new(clock.clone()),
            EmbeddedOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(error, OpenError::Corrupt { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(DATABASE_FILE), "{message}");
        assert!(message.contains("move it aside"), "{message}");
    }
}

#[tokio::test]
async fn a_state_dir_that_cannot_be_created_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let error = EmbeddedStore::open(
        &file.join("state"),
        Arc::new(ManualClock::new(at(0))),
        EmbeddedOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(error, OpenError::CreateDir { .. }), "{error:?}");
}

/// Runs `f(0)`, …, `f(n - 1)` concurrently (so they share commits) and waits for all.
async fn together<Fut>(n: u64, f: impl Fn(u64) -> Fut)
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn dedup_records_are_bounded_oldest_window_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_with(
        dir.path(),
        &ManualClock::new(at(0)),
        options(100, 10),
    ));
    for n in 0..100 {
        store.record(&fingerprint(n), TTL, at(0)).await.unwrap();
    }
    together(900, |n| {
        let store = store.clone();
        async move {
            store
                .record(&fingerprint(100 + n), TTL, at(1))
                .await
                .unwrap();
        }
    })
    .await;
    assert_eq!(store.dedup_evicted(), 900);
    assert!(
        matches!(
            store.record(&fingerprint(0), TTL, at(2)).await.unwrap(),
            Seen::First { .. }
        ),
        "an evicted fingerprint reads as First"
    );
    assert_eq!(held(&store, codec::DEDUP), 100);
    assert_eq!(held(&store, codec::DEDUP_ORDER), 100);
}

#[tokio::test]
async fn the_oldest_window_is_evicted_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), &ManualClock::new(at(0)), options(2, 10));
    store.record(&fingerprint(1), TTL, at(0)).await.unwrap();
    store.record(&fingerprint(2), TTL, at(1)).await.unwrap();
    store.record(&fingerprint(1), TTL, at(2)).await.unwrap();
    store.record(&fingerprint(3), TTL, at(3)).await.unwrap();
    assert!(
        matches!(
            store.record(&fingerprint(2), TTL, at(4)).await.unwrap(),
            Seen::Claimed { count: 2, .. }
        ),
        "a repeat does not move a window: fingerprint 1, opened first, went"
    );
    assert!(matches!(
        store.record(&fingerprint(1), TTL, at(5)).await.unwrap(),
        Seen::First { .. }
    ));
}

#[tokio::test]
async fn expired_state_is_swept_so_the_tables_stay_small() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = Arc::new(open(dir.path(), &clock));
    let short = Duration::from_secs(1);
    together(200, |n| {
        let store = store.clone();
        async move {
            store.record(&fingerprint(n), short, at(0)).await.unwrap();
            let name = format!("Alert{n}");
            store
                .count(&name, &pod("a"), at(0), COUNTING)
                .await
                .unwrap();
            let key = format!("w{n}");
            assert!(
                store
                    .replace(&key, None, Some(vec![1]), short)
                    .await
                    .unwrap()
            );
            assert!(store.replace(&key, Some(1), None, short).await.unwrap());
        }
    })
    .await;
    clock.advance(Duration::from_secs(200));
    together(300, |n| {
        let store = store.clone();
        async move {
            let later = at(200);
            store
                .record(&fingerprint(10_000 + n % 10), TTL, later)
                .await
                .unwrap();
            store
                .count("Live", &pod("a"), later, COUNTING)
                .await
                .unwrap();
            let key = format!("live{n}");
            assert!(store.replace(&key, None, Some(vec![2]), TTL).await.unwrap());
        }
    })
    .await;
    assert_eq!(held(&store, codec::DEDUP), 10);
    assert_eq!(held(&store, codec::DEDUP_ORDER), 10);
    assert_eq!(held(&store, codec::STORM), 1);
    assert_eq!(held(&store, codec::STORM_ORDER), 1);
    assert_eq!(held(&store, codec::WINDOWS), 300);
}

#[tokio::test]
async fn alert_names_are_bounded_least_recently_counted_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), &ManualClock::new(at(0)), options(10, 3));
    for name in ["A", "B", "C"] {
        store.count(name, &pod("a"), at(0), COUNTING).await.unwrap();
    }
    store.count("A", &pod("a"), at(1), COUNTING).await.unwrap();
    store.count("D", &pod("a"), at(2), COUNTING).await.unwrap();
    assert_eq!(store.names_evicted(), 1);
    assert_eq!(
        store
            .count("A", &pod("a"), at(3), COUNTING)
            .await
            .unwrap()
            .rate,
        3,
        "A was counted recently, so B went"
    );
    assert_eq!(
        store
            .count("B", &pod("a"), at(4), COUNTING)
            .await
            .unwrap()
            .rate,
        1,
        "B restarts from zero"
    );
    assert_eq!(held(&store, codec::STORM), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), &ManualClock::new(at(0))));
    let tasks: Vec<_> = (0..400)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.put(&format!("rr-{n}"), vec![1]).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.len().await.unwrap(), 400);
    let commits = store.commits();
    assert!(commits < 400, "{commits} commits for 400 concurrent puts");
}

#[tokio::test]
async fn a_dropped_store_lets_its_directory_be_opened_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    for n in 0..5 {
        let store = open(dir.path(), &clock);
        store.put("k", vec![n]).await.unwrap();
    }
    let store = open(dir.path(), &clock);
    assert_eq!(store.list().await.unwrap()[0].version, 5);
}

/// Rows in `table`, read directly.
fn held<K: redb::Key + 'static, V: redb::Value + 'static>(
    store: &EmbeddedStore,
    table: redb::TableDefinition<'static, K, V>,
) -> u64 {
    use redb::ReadableTableMetadata;
    store
        .database
        .begin_read()
        .unwrap()
        .open_table(table)
        .unwrap()
        .len()
        .unwrap()
}
