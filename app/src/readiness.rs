//! Readiness: the gateway accepts signals, and the dedup store and the sink are usable now.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gateway_ports::{DedupStore, RemediationWriter};

/// Whether the gateway should receive traffic.
#[derive(Debug)]
pub struct Readiness {
    accepting: AtomicBool,
    checked: (Arc<dyn DedupStore>, Arc<dyn RemediationWriter>),
}

impl Readiness {
    /// Ready while accepting and while the dedup store and the sink pass their checks.
    pub fn new(dedup: Arc<dyn DedupStore>, sink: Arc<dyn RemediationWriter>) -> Self {
        Readiness {
            accepting: AtomicBool::new(true),
            checked: (dedup, sink),
        }
    }

    /// Checks now; the problems, in words safe to show, when not ready.
    pub async fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.is_accepting() {
            problems.push("shutting down".to_owned());
        }
        let (dedup, sink) = &self.checked;
        if let Err(e) = dedup.check().await {
            problems.push(e.to_string());
        }
        if let Err(e) = sink.check().await {
            problems.push(e.to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Whether shutdown has not begun.
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Stops accepting (shutdown has begun).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }
}
