//! The gateway's background round, about once a second: close the storm windows whose time is
//! up, and make the writes no request waits on (aggregates' growth and closing, flushed
//! buffers, coalesced occurrence counts). At shutdown, the same with everything.

use std::sync::Arc;

use gateway_ports::{Clock, ConfigSource};

use crate::aggregates::AggregateWriter;
use crate::closing::WindowCloser;
use crate::intake::Storms;
use crate::metrics::Metrics;
use crate::occurrences::OccurrenceFlusher;
use crate::pending::PendingWrites;

/// The background round.
pub struct Ticker {
    pub(crate) config: Arc<dyn ConfigSource>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) storms: Arc<Storms>,
    pub(crate) closer: Arc<WindowCloser>,
    pub(crate) aggregates: Arc<AggregateWriter>,
    pub(crate) pending: Arc<PendingWrites>,
    pub(crate) occurrences: Arc<OccurrenceFlusher>,
    pub(crate) metrics: Metrics,
    /// The storm windows live in this process only: close them all at shutdown. (Windows in a
    /// store shared by replicas stay there for the others, or the next start.)
    pub(crate) windows_die_with_process: bool,
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("windows_die_with_process", &self.windows_die_with_process)
            .finish_non_exhaustive()
    }
}

impl Ticker {
    /// One round: closes quiet storm windows, then writes what is due.
    pub async fn tick(&self) {
        let (settings, now) = (self.config.storm(), self.clock.now());
        match self.storms.expire(&settings, now).await {
            Ok(expired) => {
                self.metrics.storm_windows(expired.open, expired.buffered);
                let ttl = self.config.dedup().ttl.get();
                for closure in expired.closed {
                    self.closer.hand_over(closure, ttl);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the storm windows; trying again next tick");
            }
        }
        self.write(false).await;
    }

    /// The last round (graceful shutdown): closes every window this process holds and writes
    /// everything waiting, due or not.
    pub async fn drain(&self) {
        if self.windows_die_with_process {
            match self.storms.drain(self.clock.now()).await {
                Ok(closed) => {
                    let ttl = self.config.dedup().ttl.get();
                    for closure in closed {
                        self.closer.hand_over(closure, ttl);
                    }
                    self.metrics.storm_windows(0, 0);
                }
                Err(e) => tracing::error!(error = %e, "cannot close the storm windows"),
            }
        }
        self.write(true).await;
        let left = self.pending_writes();
        if left > 0 {
            tracing::error!(
                pending = left,
                "shutting down with RemediationRequest writes that could not be made"
            );
        }
    }

    /// Writes what is due (everything with `everything`): the three queues side by side.
    async fn write(&self, everything: bool) {
        let now = self.clock.now();
        tokio::join!(
            self.aggregates.flush(now, everything),
            self.pending.flush(),
            self.occurrences.flush(now, everything),
        );
        self.metrics.pending_writes(self.pending_writes());
    }

    /// Writes waiting to be made by a later round.
    pub fn pending_writes(&self) -> usize {
        self.aggregates.unwritten() + self.pending.len()
    }
}
