//! The gateway's background round, about once a second: close the storm windows whose time is
//! up, and make the writes no request waits on (aggregates' growth and closing, flushed
//! buffers, coalesced occurrence counts). At shutdown, the same with everything.

use std::sync::Arc;

use gateway_ports::{Settings, Timestamp};
use gateway_storm::{Closing, Closure};

use crate::backlog::Backlog;
use crate::intake::Storms;
use crate::metrics::Metrics;

/// The background round.
#[derive(Debug)]
pub struct Ticker {
    pub(crate) storms: Arc<Storms>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) metrics: Metrics,
    /// The storm windows live in this process only: close them all at shutdown. (Windows in a
    /// store shared by replicas stay there for the others, or the next start.)
    pub(crate) windows_die_with_process: bool,
    /// Whether what a previous process left in the outbox was read: until then every round
    /// tries again (a state backend may not answer at start, as Redis while connecting).
    pub(crate) recovered: std::sync::atomic::AtomicBool,
}

impl Ticker {
    /// One round at `now` under the settings in force: closes quiet storm windows, then writes
    /// what is due.
    ///
    /// A window is deleted only after what it leaves is in the outbox: a crash in between finds
    /// the window again at the next start, never neither of the two.
    pub async fn tick(&self, settings: &Settings, now: Timestamp) {
        if !self.recovered.load(std::sync::atomic::Ordering::SeqCst) {
            self.recover_logged().await;
        }
        match self.storms.due(&settings.storm, now).await {
            Ok(due) => {
                self.metrics.storm_windows(due.open, due.buffered);
                for closing in due.closing {
                    self.close(closing, settings).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the storm windows; trying again next tick");
            }
        }
        self.write(now, false).await;
    }

    /// Hands a due window's closure over, then deletes the window; a window whose closure the
    /// outbox could not take stays, to be closed again next round.
    async fn close(&self, closing: Closing, settings: &Settings) {
        let ttl = settings.dedup.ttl.get();
        if let Err(e) = self.backlog.hand_over(closing.closure.clone(), ttl).await {
            tracing::warn!(error = %e, "a closing storm window stays stored until the outbox takes what it leaves");
            return;
        }
        if let Err(e) = self.storms.close(&closing, &settings.storm).await {
            // Its writes are queued; the next round finds it again and hands the same over.
            tracing::warn!(error = %e, "cannot delete a closed storm window; trying again next tick");
        }
    }

    /// The last round (graceful shutdown): closes every window this process holds and writes
    /// everything waiting, due or not.
    pub async fn drain(&self, settings: &Settings, now: Timestamp) {
        if self.windows_die_with_process {
            match self.storms.drain(now).await {
                Ok(closed) => {
                    self.hand_over(closed, settings).await;
                    self.metrics.storm_windows(0, 0);
                }
                Err(e) => tracing::error!(error = %e, "cannot close the storm windows"),
            }
        }
        self.write(now, true).await;
        let left = self.pending_writes();
        if left > 0 {
            tracing::error!(
                pending = left,
                "shutting down with RemediationRequest writes that could not be made"
            );
        }
    }

    async fn hand_over(&self, closed: Vec<Closure>, settings: &Settings) {
        for closure in closed {
            // The windows die with the process: memory is all there is.
            let _ = self
                .backlog
                .hand_over(closure, settings.dedup.ttl.get())
                .await;
        }
    }

    /// Writes what is due (everything with `everything`).
    async fn write(&self, now: Timestamp, everything: bool) {
        self.backlog.flush(now, everything).await;
        self.metrics.pending_writes(self.backlog.len());
    }

    /// Queues again what a previous process left in the outbox; how many writes. Once it has
    /// succeeded, rounds stop trying.
    async fn recover(&self) -> Result<usize, gateway_ports::StoreError> {
        let recovered = self.backlog.pending.recover().await?;
        self.recovered
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.metrics.pending_writes(self.backlog.len());
        Ok(recovered)
    }

    /// [`Ticker::recover`], its outcome logged: in every round until it succeeds (the first
    /// round runs at start).
    async fn recover_logged(&self) {
        match self.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                writes = n,
                "recovered writes a previous process left pending: making them"
            ),
            // Info, not a warning: at start Redis is commonly still connecting (its own
            // unavailability is logged and gauged by the store).
            Err(e) => tracing::info!(
                error = %e,
                "cannot read the pending writes a previous process left yet; trying again next round"
            ),
        }
    }

    /// Writes waiting to be made by a later round.
    pub fn pending_writes(&self) -> usize {
        self.backlog.len()
    }
}
