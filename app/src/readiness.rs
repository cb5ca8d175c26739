//! Readiness: the gateway accepts signals, and the dedup store and the sink are usable now.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gateway_ports::{DedupStore, RemediationWriter};

use crate::metrics::Metrics;

/// Whether the gateway should receive traffic.
pub struct Readiness {
    accepting: AtomicBool,
    dedup: Arc<dyn DedupStore>,
    writer: Arc<dyn RemediationWriter>,
    metrics: Metrics,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("accepting", &self.accepting)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// Ready while accepting and while `dedup` and `writer` pass their checks.
    pub fn new(
        dedup: Arc<dyn DedupStore>,
        writer: Arc<dyn RemediationWriter>,
        metrics: Metrics,
    ) -> Self {
        Readiness {
            accepting: AtomicBool::new(true),
            dedup,
            writer,
            metrics,
        }
    }

    /// Checks now; the problems, in words safe to show, when not ready.
    pub async fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.accepting.load(Ordering::SeqCst) {
            problems.push("shutting down".to_owned());
        }
        if let Err(e) = self.dedup.check().await {
            problems.push(e.to_string());
        }
        if let Err(e) = self.writer.check().await {
            problems.push(e.to_string());
        }
        self.metrics.ready(problems.is_empty());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Serving has begun.
    pub fn serving(&self) {
        self.metrics.ready(self.accepting.load(Ordering::SeqCst));
    }

    /// Stops reporting ready (shutdown has begun).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        self.metrics.ready(false);
    }
}
