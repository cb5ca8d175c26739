//! Writes no request waits on — the signals of a storm buffer that went quiet, a closed storm
//! aggregate — queued until the ticker makes them: one queued write per resource name, the
//! latest version of it.
//!
//! Invariant: a write is in the [`Outbox`] (the configured state backend: the embedded store,
//! Redis) before [`PendingWrites::queue`] returns, and leaves it only when it was made or given
//! up for good (dead-lettered); [`PendingWrites::recover`] queues again, at start-up, what a
//! previous process left there. Transient failures stay queued; permanent ones are never retried.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use gateway_ports::{Outbox, RemediationRequest, StoreError, Timestamp};
use gateway_retry::GiveUpReason;
use serde::{Deserialize, Serialize};

use crate::dead_letters::DeadLetters;
use crate::placement::{NotPlaced, Placement};
use crate::writer::Op;

/// How many background writes run at once.
const CONCURRENCY: usize = 16;

/// A write as the outbox stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    op: Op,
    request: RemediationRequest,
}

/// A queued write and the outbox version that holds it (`None`: the outbox could not take it;
/// it lives in memory only).
#[derive(Debug)]
struct Queued {
    entry: Entry,
    version: Option<u64>,
}

/// The queue of background writes.
#[derive(Debug)]
pub struct PendingWrites {
    placement: Arc<Placement>,
    outbox: Arc<dyn Outbox>,
    dead_letters: Arc<DeadLetters>,
    queued: Mutex<BTreeMap<String, Queued>>,
}

/// What became of one write of a flush.
enum Made {
    /// Written, or given up for good: its outbox entry goes.
    Done,
    /// To try again next round.
    Again,
}

impl PendingWrites {
    /// An empty queue writing through `placement`, durable in `outbox`, giving up into
    /// `dead_letters`.
    pub fn new(
        placement: Arc<Placement>,
        outbox: Arc<dyn Outbox>,
        dead_letters: Arc<DeadLetters>,
    ) -> Self {
        PendingWrites {
            placement,
            outbox,
            dead_letters,
            queued: Mutex::new(BTreeMap::new()),
        }
    }

    fn queued(&self) -> MutexGuard<'_, BTreeMap<String, Queued>> {
        // Each update is one insert or remove: consistent even if a holder panicked.
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a write, durably, replacing an older version of the same resource. When the
    /// outbox cannot take it, the write is queued in memory all the same (and said loudly), and
    /// the error returned: a caller that can keep the write elsewhere until the outbox is back
    /// (the ticker keeps the storm window) does.
    pub async fn queue(&self, op: Op, request: RemediationRequest) -> Result<(), StoreError> {
        let op = match self.queued().get(&request.name) {
            // A queued update followed by a create: the update creates when absent anyway.
            Some(queued) if queued.entry.op == Op::Update => Op::Update,
            _ => op,
        };
        let entry = Entry { op, request };
        let stored = match serde_json::to_vec(&entry) {
            Ok(bytes) => self.outbox.put(&entry.request.name, bytes).await,
            Err(e) => Err(StoreError::Backend {
                reason: format!("a background write could not be serialised: {e}"),
                source: None,
            }),
        };
        let version = match &stored {
            Ok(version) => Some(*version),
            Err(e) => {
                tracing::error!(error = %e, name = %entry.request.name,
                    "the outbox cannot take a background write: it is kept in memory only");
                None
            }
        };
        self.insert(Queued { entry, version });
        stored.map(|_| ())
    }

    /// Inserts `queued` unless a newer version of the same resource is queued already.
    fn insert(&self, queued: Queued) {
        let mut all = self.queued();
        let newer = all
            .get(&queued.entry.request.name)
            .is_some_and(|held| held.version.is_some() && held.version > queued.version);
        if !newer {
            all.insert(queued.entry.request.name.clone(), queued);
        }
    }

    /// Queues every write a previous process left in the outbox; how many.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let stored = self.outbox.list().await?;
        let mut recovered = 0;
        for stored in stored {
            match serde_json::from_slice::<Entry>(&stored.entry) {
                Ok(entry) => {
                    self.insert(Queued {
                        entry,
                        version: Some(stored.version),
                    });
                    recovered += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, key = %stored.key, "an outbox entry cannot be read: dropped");
                    self.outbox.remove(&stored.key, stored.version).await?;
                }
            }
        }
        Ok(recovered)
    }

    /// Makes every queued write (each with the full retry policy, several at once): what was
    /// made, or refused for good (dead-lettered), leaves the outbox; what failed for now stays
    /// queued for the next round, unless a newer version was queued meanwhile.
    pub async fn flush(&self, now: Timestamp) {
        let batch: Vec<Queued> = std::mem::take(&mut *self.queued()).into_values().collect();
        if batch.is_empty() {
            return;
        }
        let again: Vec<Queued> = futures::stream::iter(batch)
            .map(|queued| async move {
                match self.make(&queued.entry, now).await {
                    Made::Done => {
                        self.forget(&queued).await;
                        None
                    }
                    Made::Again => Some(queued),
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        for queued in again {
            self.insert_if_absent(queued);
        }
    }

    async fn make(&self, entry: &Entry, now: Timestamp) -> Made {
        match self.placement.write(entry.op, &entry.request, None).await {
            Ok(_) => Made::Done,
            Err(NotPlaced::Rejected { detail, .. }) => {
                self.dead_letters.record(&entry.request, &detail, now);
                Made::Done
            }
            Err(NotPlaced::Failed(e)) if e.reason == GiveUpReason::Permanent => {
                self.dead_letters
                    .record(&entry.request, &e.last.message, now);
                Made::Done
            }
            Err(NotPlaced::Failed(e)) => {
                tracing::warn!(error = %e, "RemediationRequest write kept for the next tick");
                Made::Again
            }
        }
    }

    /// Removes a finished write's outbox entry (only that version: a newer one stays).
    async fn forget(&self, queued: &Queued) {
        if let Some(version) = queued.version
            && let Err(e) = self
                .outbox
                .remove(&queued.entry.request.name, version)
                .await
        {
            // The entry stays: the write is made again after a restart, which is safe.
            tracing::warn!(error = %e, name = %queued.entry.request.name, "a finished write stays in the outbox");
        }
    }

    fn insert_if_absent(&self, queued: Queued) {
        self.queued()
            .entry(queued.entry.request.name.clone())
            .or_insert(queued);
    }

    /// Writes waiting.
    pub fn len(&self) -> usize {
        self.queued().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
