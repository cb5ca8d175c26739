//! Readiness: the gateway accepts signals, the dedup store and the sink are usable now, and the
//! background round is running.
//!
//! `/readyz` is open to anyone who reaches the port, so what it shows is fixed words naming what
//! is not ready ([`Problem`]); the details — a back end's error text, which may name a server or
//! echo what it was sent — go to the log (through its secret filter), once per change.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gateway_ports::{DedupStore, RemediationWriter, Timestamp};

/// Whether the gateway should receive traffic.
#[derive(Debug)]
pub struct Readiness {
    accepting: AtomicBool,
    checked: (Arc<dyn DedupStore>, Arc<dyn RemediationWriter>),
    ticker: TickerWatch,
    /// The details last logged, so that a probe every few seconds logs an outage once.
    logged: std::sync::Mutex<Vec<String>>,
}

/// What is not ready, in fixed words safe to show to anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Shutdown has begun.
    ShuttingDown,
    /// A background round panicked and none has completed since.
    RoundPanicked,
    /// No background round has completed for longer than the stall bound.
    RoundStalled,
    /// The dedup store (Redis, the embedded database) does not answer.
    DedupStore,
    /// The sink (the Kubernetes API, the directory) is not usable.
    Sink,
}

impl Problem {
    /// The words `/readyz` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::ShuttingDown => "shutting down",
            Problem::RoundPanicked => "background round panicked",
            Problem::RoundStalled => "background round stalled",
            Problem::DedupStore => "dedup store unavailable",
            Problem::Sink => "sink unavailable",
        }
    }
}

/// The background round as readiness sees it, once [`Readiness::watch_ticker`] has begun.
#[derive(Debug, Default)]
struct TickerWatch {
    /// The stall bound in milliseconds; 0 while the ticker is not watched (no server runs it).
    stall_after_ms: AtomicU64,
    /// When the last round completed (or watching began), milliseconds since the epoch.
    last_round_ms: AtomicU64,
    /// A round panicked and none has completed since.
    down: AtomicBool,
}

impl Readiness {
    /// Ready while accepting and while the dedup store and the sink pass their checks (and,
    /// once watched, while the background round runs).
    pub fn new(dedup: Arc<dyn DedupStore>, sink: Arc<dyn RemediationWriter>) -> Self {
        Readiness {
            accepting: AtomicBool::new(true),
            checked: (dedup, sink),
            ticker: TickerWatch::default(),
            logged: std::sync::Mutex::default(),
        }
    }

    /// Checks at `now`; what is not ready, in fixed words, when not ready. The details are
    /// logged (a warning each time they change).
    pub async fn check(&self, now: Timestamp) -> Result<(), Vec<&'static str>> {
        let found = self.diagnose(now).await;
        let details: Vec<String> = found
            .iter()
            .map(|(problem, detail)| format!("{}: {detail}", problem.as_str()))
            .collect();
        {
            let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
            if *logged != details {
                if !details.is_empty() {
                    tracing::warn!(problems = ?details, "not ready");
                }
                *logged = details;
            }
        }
        if found.is_empty() {
            Ok(())
        } else {
            Err(found.iter().map(|(problem, _)| problem.as_str()).collect())
        }
    }

    /// What is not ready at `now`, each with its detail (for the log only).
    async fn diagnose(&self, now: Timestamp) -> Vec<(Problem, String)> {
        let mut problems = Vec::new();
        if !self.is_accepting() {
            problems.push((Problem::ShuttingDown, "shutdown has begun".to_owned()));
        }
        problems.extend(self.ticker_problem(now));
        let (dedup, sink) = &self.checked;
        if let Err(e) = dedup.check().await {
            problems.push((Problem::DedupStore, e.to_string()));
        }
        if let Err(e) = sink.check().await {
            problems.push((Problem::Sink, e.to_string()));
        }
        problems
    }

    /// Whether shutdown has not begun.
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Stops accepting (shutdown has begun).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    /// From `now` on, not ready while a round has panicked and none completed since, or while
    /// no round has completed for longer than `stall_after`.
    pub fn watch_ticker(&self, stall_after: Duration, now: Timestamp) {
        let ms = u64::try_from(stall_after.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.ticker
            .last_round_ms
            .store(now.as_millis(), Ordering::SeqCst);
        self.ticker.stall_after_ms.store(ms, Ordering::SeqCst);
    }

    /// A background round completed at `now`.
    pub fn round_completed(&self, now: Timestamp) {
        self.ticker
            .last_round_ms
            .store(now.as_millis(), Ordering::SeqCst);
        self.ticker.down.store(false, Ordering::SeqCst);
    }

    /// A background round panicked: not ready until one completes.
    pub fn round_panicked(&self) {
        self.ticker.down.store(true, Ordering::SeqCst);
    }

    fn ticker_problem(&self, now: Timestamp) -> Option<(Problem, String)> {
        let stall_after = self.ticker.stall_after_ms.load(Ordering::SeqCst);
        if stall_after == 0 {
            return None;
        }
        if self.ticker.down.load(Ordering::SeqCst) {
            return Some((
                Problem::RoundPanicked,
                "the background round (closing storm windows, writing aggregates) panicked \
                 and has not completed since"
                    .to_owned(),
            ));
        }
        let last = Timestamp::from_millis(self.ticker.last_round_ms.load(Ordering::SeqCst));
        let idle = now.saturating_since(last);
        (idle.as_millis() > u128::from(stall_after)).then(|| {
            (
                Problem::RoundStalled,
                format!(
                    "the background round (closing storm windows, writing aggregates) has not \
                     completed for {}s (bound {}s)",
                    idle.as_secs(),
                    Duration::from_millis(stall_after).as_secs_f64()
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use gateway_adapter_directory::DirectoryWriter;
    use gateway_adapter_memory::MemoryDedupStore;

    use super::*;

    fn readiness(dir: &std::path::Path) -> Readiness {
        Readiness::new(
            Arc::new(MemoryDedupStore::new(
                std::num::NonZeroUsize::new(10).unwrap(),
            )),
            Arc::new(DirectoryWriter::new(dir).unwrap()),
        )
    }

    #[tokio::test]
    async fn a_stalled_or_panicked_ticker_fails_readiness_until_a_round_completes() {
        let dir = tempfile::tempdir().unwrap();
        let r = readiness(dir.path());
        let t0 = Timestamp::from_secs(1000);
        // Not watched: no server runs the ticker (router tests).
        assert!(r.check(t0 + Duration::from_secs(3600)).await.is_ok());
        r.watch_ticker(Duration::from_secs(30), t0);
        assert!(r.check(t0 + Duration::from_secs(30)).await.is_ok());
        let stalled = r.check(t0 + Duration::from_secs(31)).await.unwrap_err();
        assert_eq!(stalled, ["background round stalled"]);
        let detail = r.diagnose(t0 + Duration::from_secs(31)).await;
        assert!(
            detail[0].1.contains("has not completed for 31s"),
            "{detail:?}"
        );
        r.round_completed(t0 + Duration::from_secs(31));
        assert!(r.check(t0 + Duration::from_secs(31)).await.is_ok());
        r.round_panicked();
        let down = r.check(t0 + Duration::from_secs(32)).await.unwrap_err();
        assert_eq!(down, ["background round panicked"]);
        r.round_completed(t0 + Duration::from_secs(33));
        assert!(r.check(t0 + Duration::from_secs(33)).await.is_ok());
    }

    /// A dedup store whose error text carries what a careless back end might echo.
    #[derive(Debug)]
    struct Leaky;

    fn leaked() -> gateway_ports::StoreError {
        gateway_ports::StoreError::Unavailable {
            reason: "redis://:hunter2@10.0.0.7:6379: connection refused".to_owned(),
            source: None,
        }
    }

    #[async_trait::async_trait]
    impl DedupStore for Leaky {
        async fn record(
            &self,
            _: &gateway_ports::Fingerprint,
            _: Duration,
            _: Timestamp,
        ) -> Result<gateway_ports::Seen, gateway_ports::StoreError> {
            Err(leaked())
        }
        async fn forget(
            &self,
            _: &gateway_ports::Fingerprint,
        ) -> Result<(), gateway_ports::StoreError> {
            Err(leaked())
        }
        async fn release(
            &self,
            _: &gateway_ports::Fingerprint,
            _: Timestamp,
        ) -> Result<(), gateway_ports::StoreError> {
            Err(leaked())
        }
        async fn settle(
            &self,
            _: &gateway_ports::Fingerprint,
        ) -> Result<(), gateway_ports::StoreError> {
            Err(leaked())
        }
        async fn check(&self) -> Result<(), gateway_ports::StoreError> {
            Err(leaked())
        }
    }

    #[tokio::test]
    async fn readiness_names_what_is_down_in_fixed_words_only() {
        let dir = tempfile::tempdir().unwrap();
        let r = Readiness::new(
            Arc::new(Leaky),
            Arc::new(DirectoryWriter::new(dir.path()).unwrap()),
        );
        r.stop_accepting();
        let problems = r.check(Timestamp::from_secs(1)).await.unwrap_err();
        assert_eq!(problems, ["shutting down", "dedup store unavailable"]);
    }
}
