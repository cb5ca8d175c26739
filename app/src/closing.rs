//! Carrying out closed storm windows: whoever closed one (the ticker's expiry check, or a request
//! whose signal found its window past its deadline) hands it over here, and the writers' queues
//! take it; the ticker writes them. No request waits for a window's closing.

use std::sync::Arc;
use std::time::Duration;

use gateway_storm::Closure;

use crate::aggregates::AggregateWriter;
use crate::pending::PendingWrites;
use crate::remediation;
use crate::writer::Op;

/// Hands closed windows to the writers.
#[derive(Debug)]
pub struct WindowCloser {
    aggregates: Arc<AggregateWriter>,
    pending: Arc<PendingWrites>,
    fallback_namespace: String,
}

impl WindowCloser {
    /// Closures go to `aggregates` (final snapshots) and `pending` (flushed buffers).
    pub fn new(
        aggregates: Arc<AggregateWriter>,
        pending: Arc<PendingWrites>,
        fallback_namespace: String,
    ) -> Self {
        WindowCloser {
            aggregates,
            pending,
            fallback_namespace,
        }
    }

    /// Queues what `closure` asks to be written. `ttl` is the dedup TTL in force, which names
    /// the RemediationRequests of flushed signals.
    pub fn hand_over(&self, closure: Closure, ttl: Duration) {
        match closure {
            Closure::Aggregate(aggregate) => {
                tracing::info!(
                    alert = %aggregate.key.alert_name, namespace = %aggregate.key.namespace,
                    resources = aggregate.resources.len(), alerts = aggregate.alert_count,
                    sampled_out = aggregate.sampled_out, "storm window closed");
                self.aggregates.update(aggregate);
            }
            Closure::Flush { key, signals, .. } => {
                tracing::info!(alert = %key.alert_name, namespace = %key.namespace, signals = signals.len(),
                    "storm buffer went quiet below the buffer threshold: creating its signals individually");
                for signal in signals {
                    let request = remediation::for_signal(
                        &signal,
                        signal.received_time,
                        ttl,
                        &self.fallback_namespace,
                    );
                    self.pending.queue(Op::Create, request);
                }
            }
        }
    }
}
