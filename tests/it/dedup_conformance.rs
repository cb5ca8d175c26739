//! The `DedupStore` contract, as one suite every adapter runs (in-memory and embedded here; Redis
//! joins it in `redis_store`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_adapter_embedded::{EmbeddedOptions, EmbeddedStore};
use gateway_adapter_memory::{MemoryDedupStore, SystemClock};
use gateway_ports::Clock;
use gateway_ports::{DedupStore, Fingerprint, Seen, Timestamp};

fn fp(n: u64) -> Fingerprint {
    Fingerprint::from_hex(&format!("{n:064x}")).unwrap()
}

const TTL: Duration = Duration::from_secs(300);
const T0: Timestamp = Timestamp::from_secs(1_764_090_000);

/// The suite. `fresh` builds an empty, ready store for each case.
pub async fn conformance<S, F>(fresh: impl Fn() -> F)
where
    S: DedupStore + 'static,
    F: std::future::Future<Output = S>,
{
    first_then_duplicates_with_rising_counts(&fresh().await).await;
    forget_ends_the_window(&fresh().await).await;
    exactly_one_first_among_concurrent_callers(Arc::new(fresh().await)).await;
    a_window_ends_after_its_ttl(&fresh().await).await;
    fingerprints_are_independent(&fresh().await).await;
    a_claim_holds_until_settled_or_taken_over(&fresh().await).await;
    a_release_ends_only_the_claim_it_names(&fresh().await).await;
}

async fn first_then_duplicates_with_rising_counts(store: &dyn DedupStore) {
    assert_eq!(
        store.record(&fp(1), TTL, T0).await.unwrap(),
        Seen::First { window_start: T0 }
    );
    store.settle(&fp(1)).await.unwrap();
    for count in 2..=5 {
        let seen = store
            .record(&fp(1), TTL, T0 + Duration::from_secs(count))
            .await
            .unwrap();
        assert_eq!(
            seen,
            Seen::Duplicate {
                window_start: T0,
                count
            }
        );
    }
}

async fn forget_ends_the_window(store: &dyn DedupStore) {
    store.record(&fp(2), TTL, T0).await.unwrap();
    store.forget(&fp(2)).await.unwrap();
    let later = T0 + Duration::from_secs(1);
    assert_eq!(
        store.record(&fp(2), TTL, later).await.unwrap(),
        Seen::First {
            window_start: later
        }
    );
    store
        .forget(&fp(999))
        .await
        .expect("forgetting an unknown fingerprint is fine");
}

async fn exactly_one_first_among_concurrent_callers(store: Arc<dyn DedupStore>) {
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record(&fp(3), TTL, T0).await.unwrap() })
        })
        .collect();
    let mut firsts = 0;
    let mut counts = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Seen::First { .. } => firsts += 1,
            // The first is never settled here: every other caller finds it claimed.
            Seen::Claimed { count, .. } => counts.push(count),
            Seen::Duplicate { count, .. } => panic!("a duplicate ({count}) of an unsettled first"),
        }
    }
    assert_eq!(firsts, 1);
    counts.sort_unstable();
    assert_eq!(
        counts,
        (2..=200).collect::<Vec<u64>>(),
        "every duplicate got its own count"
    );
}

async fn a_window_ends_after_its_ttl(store: &dyn DedupStore) {
    // Real time passes too, for stores that expire keys themselves.
    let ttl = Duration::from_secs(1);
    store.record(&fp(4), ttl, T0).await.unwrap();
    store.settle(&fp(4)).await.unwrap();
    assert!(matches!(
        store
            .record(&fp(4), ttl, T0 + Duration::from_millis(500))
            .await
            .unwrap(),
        Seen::Duplicate { .. }
    ));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let after = T0 + Duration::from_millis(1_100);
    assert_eq!(
        store.record(&fp(4), ttl, after).await.unwrap(),
        Seen::First {
            window_start: after
        }
    );
}

async fn fingerprints_are_independent(store: &dyn DedupStore) {
    assert!(matches!(
        store.record(&fp(5), TTL, T0).await.unwrap(),
        Seen::First { .. }
    ));
    assert!(matches!(
        store.record(&fp(6), TTL, T0).await.unwrap(),
        Seen::First { .. }
    ));
    assert!(store.check().await.is_ok());
}

async fn a_claim_holds_until_settled_or_taken_over(store: &dyn DedupStore) {
    let claim = gateway_ports::DedupWindow::CLAIM;
    store.record(&fp(7), TTL, T0).await.unwrap();
    let second = T0 + Duration::from_secs(1);
    assert_eq!(
        store.record(&fp(7), TTL, second).await.unwrap(),
        Seen::Claimed {
            window_start: T0,
            count: 2
        },
        "the first occurrence is not settled yet"
    );
    // Its caller crashed: once the claim is old, the next occurrence takes it over.
    assert_eq!(
        store.record(&fp(7), TTL, T0 + claim).await.unwrap(),
        Seen::First { window_start: T0 }
    );
    assert!(
        matches!(
            store
                .record(&fp(7), TTL, T0 + claim + Duration::from_secs(1))
                .await
                .unwrap(),
            Seen::Claimed { count: 4, .. }
        ),
        "the claim was renewed by the take-over"
    );
    store.settle(&fp(7)).await.unwrap();
    assert_eq!(
        store
            .record(&fp(7), TTL, T0 + claim + Duration::from_secs(2))
            .await
            .unwrap(),
        Seen::Duplicate {
            window_start: T0,
            count: 5
        }
    );
    store
        .settle(&fp(998))
        .await
        .expect("settling an unknown fingerprint is fine");
}

async fn a_release_ends_only_the_claim_it_names(store: &dyn DedupStore) {
    let claim = gateway_ports::DedupWindow::CLAIM;
    let later = |secs| T0 + Duration::from_secs(secs);
    // Its write failed: the release names the claim, and the resend is new.
    store.record(&fp(8), TTL, T0).await.unwrap();
    store.release(&fp(8), T0).await.unwrap();
    assert_eq!(
        store.record(&fp(8), TTL, later(1)).await.unwrap(),
        Seen::First {
            window_start: later(1)
        }
    );
    // A release naming another claim (one made late, after a take-over) changes nothing.
    store.release(&fp(8), T0).await.unwrap();
    assert!(matches!(
        store.record(&fp(8), TTL, later(2)).await.unwrap(),
        Seen::Claimed { count: 2, .. }
    ));
    let taken_over = later(1) + claim;
    assert_eq!(
        store.record(&fp(8), TTL, taken_over).await.unwrap(),
        Seen::First {
            window_start: later(1)
        }
    );
    store.release(&fp(8), later(1)).await.unwrap();
    assert!(
        matches!(
            store
                .record(&fp(8), TTL, taken_over + Duration::from_secs(1))
                .await
                .unwrap(),
            Seen::Claimed { .. }
        ),
        "the old claim's release left the take-over's window"
    );
    // Nor a settled one.
    store.settle(&fp(8)).await.unwrap();
    store.release(&fp(8), taken_over).await.unwrap();
    assert!(matches!(
        store
            .record(&fp(8), TTL, taken_over + Duration::from_secs(2))
            .await
            .unwrap(),
        Seen::Duplicate { .. }
    ));
    store
        .release(&fp(997), T0)
        .await
        .expect("releasing an unknown fingerprint is fine");
}

#[tokio::test]
async fn the_memory_store_honours_the_dedup_store_contract() {
    conformance(|| async { MemoryDedupStore::new(10_000.try_into().unwrap()) }).await;
}

/// Fresh embedded stores, each in its own directory under `root` (removed with it).
pub(crate) fn embedded_stores(
    root: &Path,
    clock: Arc<dyn Clock>,
) -> impl Fn() -> EmbeddedStore + use<'_> {
    let next = AtomicU64::new(0);
    move || {
        let dir = root.join(next.fetch_add(1, Ordering::SeqCst).to_string());
        EmbeddedStore::open(&dir, clock.clone(), EmbeddedOptions::default()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_honours_the_dedup_store_contract() {
    let root = tempfile::tempdir().unwrap();
    let fresh = embedded_stores(root.path(), Arc::new(SystemClock));
    conformance(|| std::future::ready(fresh())).await;
}
