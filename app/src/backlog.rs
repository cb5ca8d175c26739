//! The writes that outlive a request: storm aggregates (created beside the request whose signal
//! completed them, then grown later), closed windows (a final aggregate, or the signals of a
//! storm buffer that went quiet), and the occurrence counts of duplicates. Requests and the
//! ticker hand work over here; the ticker's [`Backlog::flush`] writes what is due. No request
//! waits for a window's closing.
//!
//! Durability: an open window lives in the window store; when it closes, what it leaves is
//! queued in [`PendingWrites`], which keeps it in the outbox until written. Growth snapshots of
//! open aggregates need no copy (the window holds them); occurrence counts of duplicates are
//! bookkeeping and live in memory only.

use std::time::Duration;

use gateway_ports::{StoreError, Timestamp};
use gateway_storm::Closure;

use crate::aggregates::AggregateWriter;
use crate::occurrences::OccurrenceFlusher;
use crate::pending::PendingWrites;
use crate::remediation;
use crate::writer::Op;

/// The three queues of writes no request waits on.
#[derive(Debug)]
pub struct Backlog {
    /// Storm aggregates: created at once, then written coalesced.
    pub aggregates: AggregateWriter,
    /// Occurrence counts of duplicates, coalesced.
    pub occurrences: OccurrenceFlusher,
    /// What closed windows leave (final aggregates, flushed buffers), durable in the outbox.
    pub pending: PendingWrites,
    /// Namespace for RemediationRequests of cluster-scoped signals.
    pub fallback_namespace: String,
}

impl Backlog {
    /// Takes over a closed window (found by the ticker's expiry check, or by a request whose
    /// signal met its window past its deadline): its final aggregate, or the signals of its
    /// buffer, one RemediationRequest each. `ttl` is the dedup TTL in force, which names them.
    ///
    /// `Err` when the outbox could not take all of it (the writes are queued in memory anyway).
    pub async fn hand_over(&self, closure: Closure, ttl: Duration) -> Result<(), StoreError> {
        match closure {
            Closure::Aggregate(aggregate) => {
                tracing::info!(
                    alert = %aggregate.key.alert_name, namespace = %aggregate.key.namespace,
                    resources = aggregate.resources.len(), alerts = aggregate.alert_count,
                    sampled_out = aggregate.sampled_out, "storm window closed");
                // The sinks never move a resource backwards, so this final snapshot and a growth
                // snapshot still waiting in the aggregate writer can land in either order.
                let request = remediation::for_aggregate(&aggregate, &self.fallback_namespace);
                self.pending.queue(Op::Update, request).await
            }
            Closure::Flush { key, signals, .. } => {
                tracing::info!(alert = %key.alert_name, namespace = %key.namespace, signals = signals.len(),
                    "storm buffer went quiet below the buffer threshold: creating its signals individually");
                let mut stored = Ok(());
                for signal in signals {
                    let request = remediation::for_signal(
                        &signal,
                        signal.received_time,
                        ttl,
                        &self.fallback_namespace,
                    );
                    let queued = self.pending.queue(Op::Create, request).await;
                    stored = stored.and(queued);
                }
                stored
            }
        }
    }

    /// Writes what is due at `now` (everything with `everything`, at shutdown): the three
    /// queues side by side.
    pub async fn flush(&self, now: Timestamp, everything: bool) {
        tokio::join!(
            self.aggregates.flush(now, everything),
            self.pending.flush(now),
            self.occurrences.flush(now, everything),
        );
    }

    /// Writes waiting for a later round (coalesced occurrence counts aside: they are
    /// bookkeeping, never the alert itself).
    pub fn len(&self) -> usize {
        self.aggregates.unwritten() + self.pending.len()
    }

    /// Whether no write waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
