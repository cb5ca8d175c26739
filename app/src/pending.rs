//! Writes no request waits on (the signals of a storm buffer that went quiet), queued until the
//! ticker makes them: one queued write per resource name, the latest version of it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use gateway_ports::RemediationRequest;

use crate::writer::{Op, RetryingWriter};

/// How many background writes run at once.
const CONCURRENCY: usize = 16;

/// The queue of background writes.
#[derive(Debug)]
pub struct PendingWrites {
    writer: Arc<RetryingWriter>,
    queued: Mutex<BTreeMap<String, (Op, RemediationRequest)>>,
}

impl PendingWrites {
    /// An empty queue writing through `writer`.
    pub fn new(writer: Arc<RetryingWriter>) -> Self {
        PendingWrites {
            writer,
            queued: Mutex::new(BTreeMap::new()),
        }
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Op, RemediationRequest)>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a write, replacing an older version of the same resource.
    pub fn queue(&self, op: Op, request: RemediationRequest) {
        let mut queued = self.queued();
        let op = match queued.get(&request.name) {
            // A queued update followed by a create: the update creates when absent anyway.
            Some((Op::Update, _)) => Op::Update,
            _ => op,
        };
        queued.insert(request.name.clone(), (op, request));
    }

    /// Makes every queued write (each with the full retry policy, several at once); what fails
    /// stays queued for the next round, unless a newer version was queued meanwhile.
    pub async fn flush(&self) {
        let batch: Vec<(Op, RemediationRequest)> =
            std::mem::take(&mut *self.queued()).into_values().collect();
        if batch.is_empty() {
            return;
        }
        let failed: Vec<(Op, RemediationRequest)> = futures::stream::iter(batch)
            .map(|(op, request)| async move {
                match self.writer.write(op, &request, None).await {
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "RemediationRequest write kept for the next tick");
                        Some((op, request))
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let mut queued = self.queued();
        for (op, request) in failed {
            queued.entry(request.name.clone()).or_insert((op, request));
        }
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
