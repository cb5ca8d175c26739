//! [`SingleFlight`]: concurrent callers of one operation share runs of it.
//!
//! A caller never gets the result of a run that started before it asked (a reload must read what
//! is there *after* its request), yet N concurrent callers cause at most two runs: the one in
//! progress when they arrive, and the next, which all of them share.

use std::sync::{Arc, Mutex, OnceLock};

/// One run, from the moment its first caller asked until it has a result.
#[derive(Debug)]
struct Flight<T> {
    result: OnceLock<T>,
}

/// Runs of one operation shared by the callers that ask while none of them has started.
///
/// Semantics: a caller joins the *pending* flight (opening one if there is none) and waits for
/// its turn; the first of a flight's callers to get the turn closes the flight to newcomers and
/// runs the operation; the others take its result. Runs never overlap. A caller arriving while
/// a run is in progress therefore waits for the next run, shared by everyone who arrives
/// meanwhile. If the caller running a flight is cancelled, the next of its callers runs it.
#[derive(Debug)]
pub struct SingleFlight<T> {
    /// The flight that has not started yet, which newcomers join.
    pending: Mutex<Option<Arc<Flight<T>>>>,
    /// One run at a time, callers served in the order they asked.
    turn: tokio::sync::Mutex<()>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            pending: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T: Clone> SingleFlight<T> {
    /// The result of a run of `operation` that started after this call, shared with every caller
    /// that joined the same flight.
    pub async fn run<F, Fut>(&self, operation: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let flight = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| {
                Arc::new(Flight {
                    result: OnceLock::new(),
                })
            })
            .clone();
        let _turn = self.turn.lock().await;
        if let Some(result) = flight.result.get() {
            return result.clone();
        }
        {
            // Close the flight: whoever asks from now on waits for the next run.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.as_ref().is_some_and(|p| Arc::ptr_eq(p, &flight)) {
                *pending = None;
            }
        }
        let result = operation().await;
        let _ = flight.result.set(result.clone());
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_cause_at_most_two_runs_and_share_the_result() {
        let flights = Arc::new(SingleFlight::default());
        let runs = Arc::new(AtomicU32::new(0));
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (flights, runs) = (flights.clone(), runs.clone());
                tokio::spawn(async move {
                    flights
                        .run(|| async {
                            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            n
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for caller in callers {
            results.push(caller.await.unwrap());
        }
        let ran = runs.load(Ordering::SeqCst);
        assert!((1..=2).contains(&ran), "{ran} runs");
        assert!(results.iter().all(|r| *r <= ran), "{results:?}");
    }

    #[tokio::test]
    async fn a_caller_arriving_during_a_run_gets_the_next_run() {
        let flights = Arc::new(SingleFlight::default());
        let release = Arc::new(tokio::sync::Notify::new());
        let runs = Arc::new(AtomicU32::new(0));
        let first = {
            let (flights, release, runs) = (flights.clone(), release.clone(), runs.clone());
            tokio::spawn(async move {
                flights
                    .run(|| async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        1
                    })
                    .await
            })
        };
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<_> = (0..3)
            .map(|_| {
                let (flights, runs) = (flights.clone(), runs.clone());
                tokio::spawn(async move {
                    flights
                        .run(|| async { runs.fetch_add(1, Ordering::SeqCst) + 1 })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.notify_one();
        assert_eq!(first.await.unwrap(), 1);
        for caller in later {
            assert_eq!(
                caller.await.unwrap(),
                2,
                "the run after the one in progress"
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Nothing in progress: a new caller runs at once.
        assert_eq!(flights.run(|| async { 3 }).await, 3);
    }

    #[tokio::test]
    async fn a_cancelled_runner_hands_the_flight_to_the_next_caller() {
        let flights = Arc::new(SingleFlight::<u32>::default());
        let cancelled = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(std::future::pending).await })
        };
        tokio::task::yield_now().await;
        let waiting = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(|| async { 7 }).await })
        };
        tokio::task::yield_now().await;
        cancelled.abort();
        assert_eq!(waiting.await.unwrap(), 7);
    }
}
