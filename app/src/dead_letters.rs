//! Background writes that can never succeed: kept as a bounded record (the newest
//! `--max-dead-letters`), counted, logged once each, and shown at `GET /debug/dead-letters`, so
//! an operator sees what the platform did not get — instead of the gateway retrying them forever.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use gateway_ports::{RemediationRequest, Timestamp};
use serde::Serialize;

use crate::metrics::Metrics;

/// One write given up for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The RemediationRequest's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The alert behind it.
    pub alert: String,
    /// Why it was given up (the sink's words).
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// The bounded record of dead letters.
#[derive(Debug)]
pub struct DeadLetters {
    capacity: usize,
    metrics: Metrics,
    entries: Mutex<VecDeque<DeadLetter>>,
}

impl DeadLetters {
    /// An empty record keeping the newest `capacity` letters.
    pub fn new(capacity: usize, metrics: Metrics) -> Self {
        DeadLetters {
            capacity,
            metrics,
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, VecDeque<DeadLetter>> {
        // One push or pop at a time: consistent even if a holder panicked.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives `request` up: counted, logged, recorded (the oldest letter goes when full).
    pub fn record(&self, request: &RemediationRequest, reason: &str, now: Timestamp) {
        self.metrics.dead_lettered();
        tracing::error!(
            name = %request.name, namespace = %request.namespace,
            alert = %request.spec.signal_name, reason,
            "RemediationRequest given up for good: recorded at /debug/dead-letters");
        let mut entries = self.entries();
        if self.capacity == 0 {
            return;
        }
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(DeadLetter {
            name: request.name.clone(),
            namespace: request.namespace.clone(),
            alert: request.spec.signal_name.clone(),
            reason: reason.to_owned(),
            at: now.to_rfc3339(),
        });
    }

    /// The letters kept, oldest first.
    pub fn list(&self) -> Vec<DeadLetter> {
        self.entries().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use gateway_ports::test_util;

    use super::*;
    use crate::remediation;

    #[test]
    fn only_the_newest_letters_are_kept() {
        let letters = DeadLetters::new(2, Metrics::new());
        for name in ["A", "B", "C"] {
            let signal = test_util::signal(name).build();
            let request = remediation::for_signal(
                &signal,
                signal.received_time,
                std::time::Duration::from_secs(60),
                "fallback",
            );
            letters.record(&request, "422 Invalid", signal.received_time);
        }
        let kept: Vec<String> = letters.list().into_iter().map(|l| l.alert).collect();
        assert_eq!(kept, ["B", "C"]);
    }
}
