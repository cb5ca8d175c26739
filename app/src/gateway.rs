//! The gateway as the HTTP layer sees it: one façade over the collaborators that do the work —
//! the [`SignalIntake`] (a request's signals), the [`Ticker`] (the background round), the
//! [`Readiness`] check — and the metrics they report to.

use std::sync::Arc;
use std::time::Duration;

use gateway_dedup::Deduplicator;
use gateway_ports::{
    Clock, ConfigKind, ConfigSource, ConfigSourceExt, DedupStore, RemediationWriter, Settings,
    StormCounter, WindowStore,
};
use gateway_signal::{EventOutcome, PayloadError};
use gateway_storm::{StormTracker, WindowCapacity};

use crate::aggregates::AggregateWriter;
use crate::closing::WindowCloser;
use crate::intake::SignalIntake;
use crate::metrics::{HttpMethod, Metrics};
use crate::occurrences::OccurrenceFlusher;
use crate::outcome::{AlertOutcome, Outcome, Unrecorded};
use crate::pending::PendingWrites;
use crate::readiness::Readiness;
use crate::ticker::Ticker;
use crate::writer::RetryingWriter;

/// Where storm counts and aggregation windows are kept.
#[allow(missing_debug_implementations)] // trait objects
pub struct StormStores {
    /// Counts per alert name.
    pub counter: Arc<dyn StormCounter>,
    /// Open aggregation windows.
    pub windows: Arc<dyn WindowStore>,
    /// Distinct resources one window stores at most.
    pub capacity: WindowCapacity,
    /// Whether the windows outlive this process (a store shared by replicas): if not, they
    /// are closed and written at shutdown.
    pub shared: bool,
}

/// What the gateway is built from.
#[allow(missing_debug_implementations)] // trait objects all the way down
pub struct Parts {
    /// Hot-reloadable settings.
    pub config: Arc<dyn ConfigSource>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The dedup store.
    pub dedup_store: Arc<dyn DedupStore>,
    /// The RemediationRequest sink.
    pub writer: Arc<dyn RemediationWriter>,
    /// Storm counts and windows.
    pub storms: StormStores,
    /// Metrics.
    pub metrics: Metrics,
    /// Namespace for RemediationRequests of cluster-scoped signals.
    pub fallback_namespace: String,
    /// Timing of RemediationRequest writes.
    pub timing: WriteTiming,
}

/// Timing of RemediationRequest writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteTiming {
    /// The longest a webhook request may spend writing, retries included (below the sender's
    /// timeout).
    pub deadline: Duration,
    /// The longest one attempt of the sink takes (its own timeout).
    pub attempt_timeout: Duration,
    /// At most one update per RemediationRequest per this interval (occurrence counts of
    /// duplicates, growing aggregates).
    pub update_interval: Duration,
}

impl Default for WriteTiming {
    fn default() -> Self {
        WriteTiming {
            deadline: Duration::from_secs(8),
            attempt_timeout: Duration::from_secs(2),
            update_interval: Duration::from_secs(5),
        }
    }
}

/// Why a request's signals were refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The payload is not a webhook or event the gateway understands (4xx: do not resend).
    #[error(transparent)]
    Invalid(#[from] PayloadError),
    /// A signal could not be recorded (503: send again).
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
}

/// The gateway.
pub struct Gateway {
    intake: SignalIntake,
    ticker: Ticker,
    readiness: Readiness,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    config: Arc<dyn ConfigSource>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("intake", &self.intake)
            .field("ticker", &self.ticker)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Assembles the collaborators.
    pub fn new(parts: Parts) -> Self {
        let Parts {
            config,
            clock,
            dedup_store,
            writer: sink,
            storms,
            metrics,
            fallback_namespace,
            timing,
        } = parts;
        let seed = clock.now().as_millis() ^ u64::from(std::process::id()).rotate_left(32);
        let writer = Arc::new(RetryingWriter::new(
            sink.clone(),
            config.clone(),
            metrics.clone(),
            seed,
            timing.attempt_timeout,
        ));
        let aggregates = Arc::new(AggregateWriter::new(
            writer.clone(),
            metrics.clone(),
            fallback_namespace.clone(),
            timing.update_interval,
        ));
        let pending = Arc::new(PendingWrites::new(writer.clone()));
        let occurrences = Arc::new(OccurrenceFlusher::new(
            timing.update_interval,
            writer.clone(),
            metrics.clone(),
            fallback_namespace.clone(),
        ));
        let closer = Arc::new(WindowCloser::new(
            aggregates.clone(),
            pending.clone(),
            fallback_namespace.clone(),
        ));
        let tracker = Arc::new(StormTracker::new(
            storms.counter,
            storms.windows,
            storms.capacity,
        ));
        Gateway {
            intake: SignalIntake {
                config: config.clone(),
                dedup: Deduplicator::new(dedup_store.clone()),
                storms: tracker.clone(),
                writer,
                aggregates: aggregates.clone(),
                occurrences: occurrences.clone(),
                closer: closer.clone(),
                metrics: metrics.clone(),
                fallback_namespace,
                write_deadline: timing.deadline,
            },
            ticker: Ticker {
                config: config.clone(),
                clock: clock.clone(),
                storms: tracker,
                closer,
                aggregates,
                pending,
                occurrences,
                metrics: metrics.clone(),
                windows_die_with_process: !storms.shared,
            },
            readiness: Readiness::new(dedup_store, sink, metrics.clone()),
            metrics,
            clock,
            config,
        }
    }

    /// An Alertmanager webhook (version 4): every alert of the batch, in order.
    pub async fn alertmanager(&self, body: &[u8]) -> Result<Vec<AlertOutcome>, Refused> {
        let signals = gateway_signal::parse_alertmanager(body, self.clock.now())?;
        Ok(self.intake.process(signals).await?)
    }

    /// A core/v1 Event: `Warning` events are signals, `Normal` ones are ignored.
    pub async fn kubernetes_event(&self, body: &[u8]) -> Result<Vec<AlertOutcome>, Refused> {
        match gateway_signal::parse_kubernetes_event(body, self.clock.now())? {
            EventOutcome::Signal(signal) => Ok(self.intake.process(vec![signal]).await?),
            EventOutcome::Ignored { reason } => {
                self.metrics.outcome(Outcome::Ignored);
                Ok(vec![AlertOutcome::ignored(reason)])
            }
        }
    }

    /// The background round (see [`Ticker::tick`]); run about once a second.
    pub async fn tick(&self) {
        self.ticker.tick().await;
    }

    /// The last round, at shutdown (see [`Ticker::drain`]).
    pub async fn drain(&self) {
        self.ticker.drain().await;
    }

    /// Writes waiting for a later round.
    pub fn pending_writes(&self) -> usize {
        self.ticker.pending_writes()
    }

    /// Readiness: accepting, and the dedup store and the sink usable now.
    pub async fn readiness(&self) -> Result<(), Vec<String>> {
        self.readiness.check().await
    }

    /// Serving has begun: report ready.
    pub fn serving(&self) {
        self.readiness.serving();
    }

    /// Shutdown has begun: stop reporting ready.
    pub fn stop_accepting(&self) {
        self.readiness.stop_accepting();
    }

    /// The settings in force, one consistent snapshot.
    pub fn settings(&self) -> Settings {
        self.config.snapshot()
    }

    /// How many times `kind`'s settings were replaced since start.
    pub fn generation(&self, kind: ConfigKind) -> u64 {
        self.config.generation(kind)
    }

    /// The metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Records one HTTP request.
    pub fn observe_http(&self, method: HttpMethod, route: &str, status: u16, elapsed: Duration) {
        self.metrics.http_request(method, route, status, elapsed);
    }
}
