//! The gateway as the HTTP layer sees it: one façade over the collaborators that do the work —
//! the [`SignalIntake`] (a request's signals), the [`Ticker`] (the background round), the
//! [`Readiness`] check — and the metrics they report to.

use std::sync::Arc;
use std::time::Duration;

use gateway_dedup::Deduplicator;
use gateway_ports::{
    Clock, ConfigKind, ConfigSource, ConfigSourceExt, DedupStore, Outbox, RemediationWriter,
    Settings, StormCounter, WindowStore,
};
use gateway_signal::{EventOutcome, PayloadError};
use gateway_storm::{StormTracker, WindowCapacity};

use crate::aggregates::AggregateWriter;
use crate::backlog::Backlog;
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::input_limits::{InputLimits, OverLimit};
use crate::intake::{Processed, SignalIntake};
use crate::metrics::{HttpMethod, Metrics};
use crate::occurrences::OccurrenceFlusher;
use crate::outcome::{AlertOutcome, Outcome, Unrecorded};
use crate::pending::PendingWrites;
use crate::placement::Placement;
use crate::readiness::Readiness;
use crate::ticker::Ticker;
use crate::window_locks::WindowLocks;
use crate::writer::RetryingWriter;

/// Where storm counts and aggregation windows are kept.
#[derive(Debug)]
pub struct StormStores {
    /// Counts per alert name.
    pub counter: Arc<dyn StormCounter>,
    /// Open aggregation windows.
    pub windows: Arc<dyn WindowStore>,
    /// Distinct resources one window stores at most.
    pub capacity: WindowCapacity,
    /// Bytes of signals one window's buffer holds at most (`--max-window-buffer-bytes`).
    pub max_buffer_bytes: u64,
    /// Whether the windows outlive this process (a store shared by replicas): if not, they
    /// are closed and written at shutdown.
    pub shared: bool,
}

/// What the gateway is built from.
#[derive(Debug)]
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
    /// The pending-write queue: what closed storm windows leave, until written.
    pub outbox: Arc<dyn Outbox>,
    /// Background writes given up for good kept for `/debug/dead-letters` (the newest this many).
    pub max_dead_letters: usize,
    /// What one request may carry.
    pub limits: InputLimits,
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

/// What a request body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// An Alertmanager webhook (version 4).
    Alertmanager,
    /// A core/v1 Event.
    KubernetesEvent,
}

/// Why a request's signals were refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The payload is not a webhook or event the gateway understands (4xx: do not resend).
    #[error(transparent)]
    Invalid(#[from] PayloadError),
    /// The request carries more than the gateway's limits allow (4xx: do not resend as is).
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
    /// Some signals could not be recorded (503: send again); `outcomes` says which, one per
    /// signal.
    #[error("{first}")]
    Unrecorded {
        /// The first signal not recorded.
        first: Unrecorded,
        /// Every signal's outcome, in order.
        outcomes: Vec<AlertOutcome>,
    },
    /// The processing failed unexpectedly (a bug): what it recorded was released (500: send
    /// again).
    #[error("the gateway failed to process this request")]
    Panicked,
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway {
    intake: Arc<SignalIntake>,
    limits: InputLimits,
    dead_letters: Arc<DeadLetters>,
    ticker: Ticker,
    readiness: Readiness,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    config: Arc<dyn ConfigSource>,
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
            outbox,
            max_dead_letters,
            limits,
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
        let placement = Arc::new(Placement::new(writer.clone(), fallback_namespace.clone()));
        let dead_letters = Arc::new(DeadLetters::new(max_dead_letters, metrics.clone()));
        let backlog = Arc::new(Backlog {
            aggregates: AggregateWriter::new(
                placement.clone(),
                dead_letters.clone(),
                metrics.clone(),
                fallback_namespace.clone(),
                timing.update_interval,
            ),
            occurrences: OccurrenceFlusher::new(
                timing.update_interval,
                writer.clone(),
                metrics.clone(),
                fallback_namespace.clone(),
            ),
            pending: PendingWrites::new(placement.clone(), outbox, dead_letters.clone()),
            fallback_namespace: fallback_namespace.clone(),
        });
        let tracker = Arc::new(
            StormTracker::new(storms.counter, storms.windows, storms.capacity)
                .with_max_buffer_bytes(storms.max_buffer_bytes),
        );
        Gateway {
            intake: Arc::new(SignalIntake {
                config: config.clone(),
                dedup: Arc::new(Deduplicator::new(dedup_store.clone())),
                storms: tracker.clone(),
                window_locks: WindowLocks::default(),
                placement,
                backlog: backlog.clone(),
                metrics: metrics.clone(),
                fallback_namespace,
                write_deadline: timing.deadline,
                releases: Arc::default(),
            }),
            limits,
            dead_letters,
            ticker: Ticker {
                storms: tracker,
                backlog,
                metrics: metrics.clone(),
                windows_die_with_process: !storms.shared,
                recovered: std::sync::atomic::AtomicBool::new(false),
            },
            readiness: Readiness::new(dedup_store, sink),
            metrics,
            clock,
            config,
        }
    }

    /// The signals of one request body: every alert of an Alertmanager webhook (version 4), in
    /// order; or a core/v1 Event, whose `Warning`s are signals and `Normal`s are ignored.
    pub async fn receive(
        &self,
        payload: Payload,
        body: &[u8],
    ) -> Result<Vec<AlertOutcome>, Refused> {
        let received = self.clock.now();
        let signals = match payload {
            Payload::Alertmanager => gateway_signal::parse_alertmanager(body, received)?,
            Payload::KubernetesEvent => {
                match gateway_signal::parse_kubernetes_event(body, received)? {
                    EventOutcome::Signal(signal) => vec![signal],
                    EventOutcome::Ignored { reason } => {
                        self.metrics.outcome(Outcome::Ignored);
                        return Ok(vec![AlertOutcome::ignored(reason)]);
                    }
                }
            }
        };
        self.limits.check(&signals)?;
        // The processing runs in a task of its own, to its end even when the client goes away
        // (dropping this future): what was recorded is then carried out, not abandoned.
        let intake = self.intake.clone();
        let processing = tokio::spawn(async move { intake.process(signals).await });
        match processing.await {
            Ok(Processed {
                outcomes,
                unrecorded: None,
            }) => Ok(outcomes),
            Ok(Processed {
                outcomes,
                unrecorded: Some(first),
            }) => Err(Refused::Unrecorded { first, outcomes }),
            Err(failed) => {
                // The intake's dedup records were released as it unwound.
                self.metrics.request_panicked();
                tracing::error!(error = %failed, "processing a request failed unexpectedly: answering 500");
                Err(Refused::Panicked)
            }
        }
    }

    /// Background writes given up for good, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.list()
    }

    /// The background round (see [`Ticker::tick`]); run about once a second. Readiness hears
    /// when it completes.
    pub async fn tick(&self) {
        self.intake
            .releases
            .retry(&self.intake.dedup, self.clock.now())
            .await;
        self.ticker
            .tick(&self.config.snapshot(), self.clock.now())
            .await;
        self.readiness.round_completed(self.clock.now());
    }

    /// A background round panicked: counted, and not ready until a round completes.
    pub fn tick_panicked(&self) {
        self.metrics.ticker_restarted();
        self.readiness.round_panicked();
    }

    /// The last round, at shutdown (see [`Ticker::drain`]).
    pub async fn drain(&self) {
        self.ticker
            .drain(&self.config.snapshot(), self.clock.now())
            .await;
    }

    /// Writes waiting for a later round.
    pub fn pending_writes(&self) -> usize {
        self.ticker.pending_writes()
    }

    /// Readiness: accepting, and the dedup store and the sink usable now.
    pub async fn readiness(&self) -> Result<(), Vec<&'static str>> {
        let ready = self.readiness.check(self.clock.now()).await;
        self.metrics.ready(ready.is_ok());
        ready
    }

    /// Serving has begun, with the background round running: report ready, and not ready
    /// whenever no round has completed for `ticker_stall` (see [`Readiness::watch_ticker`]).
    pub fn serving(&self, ticker_stall: Duration) {
        self.readiness.watch_ticker(ticker_stall, self.clock.now());
        self.metrics.ready(self.readiness.is_accepting());
    }

    /// Shutdown has begun: stop reporting ready.
    pub fn stop_accepting(&self) {
        self.readiness.stop_accepting();
        self.metrics.ready(false);
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

    /// The metrics, for what the server itself observes (connections, load shed).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Records one HTTP request.
    pub fn observe_http(&self, method: HttpMethod, route: &str, status: u16, elapsed: Duration) {
        self.metrics.http_request(method, route, status, elapsed);
    }
}
