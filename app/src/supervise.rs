//! A background round supervised: run every period for ever, and a round that panics is
//! caught, reported and followed by the next one, so that the rounds never stop silently.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

/// Runs `round` once per `period` (a late round delays the next rather than bunching them) until
/// the returned future is dropped. A round that panics is abandoned where it stood, logged with
/// its message and reported to `on_panic`; the next round starts at the next period.
pub async fn every<R, F>(period: Duration, round: R, on_panic: impl Fn())
where
    R: Fn() -> F,
    F: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // The state a panicking round leaves behind is the backlog's and the stores', which
        // are built for rounds that stop half-way (as a crash would leave them).
        if let Err(panic) = AssertUnwindSafe(round()).catch_unwind().await {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".to_owned());
            tracing::error!(panic = %message, "a background round panicked; the next one runs as usual");
            on_panic();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_panicking_round_is_reported_and_the_rounds_go_on() {
        let rounds = Arc::new(AtomicU32::new(0));
        let panics = Arc::new(AtomicU32::new(0));
        let supervised = every(
            Duration::from_millis(10),
            || {
                let rounds = rounds.clone();
                async move {
                    let n = rounds.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    if n % 2 == 1 {
                        panic!("round {n} fails");
                    }
                }
            },
            {
                let panics = panics.clone();
                move || {
                    panics.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        let three_panics = async {
            while panics.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                () = supervised => unreachable!("the rounds never end"),
                () = three_panics => {}
            }
        })
        .await
        .expect("three rounds panicked");
        // Rounds 1, 3 and 5 panicked; the ones between ran, and the ticker went on.
        assert!(rounds.load(Ordering::SeqCst) >= 6);
    }
}
