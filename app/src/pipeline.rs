//! The per-signal pipeline: dedup → storm detection → RemediationRequest, with every decision
//! taken by the domain and carried out here.
//!
//! The one rule above all: a signal answered 2xx is recorded. When a RemediationRequest cannot be
//! written, the signal's dedup window is released and the request fails with 503, so the sender's
//! retry is treated as new. Signals held in storm windows (answered 202) are written when their
//! window closes; a write that fails then is queued and retried until it succeeds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_dedup::{DedupOutcome, Deduplicator};
use gateway_ports::ConfigSourceExt;
use gateway_ports::{
    Clock, ConfigSource, DedupStore, Occurrences, Settings, Signal, StoreError, StormCounter,
    Timestamp, WindowStore, WriteFailure, Written,
};
use gateway_storm::{
    Aggregate, COUNTING, Closure, Decision, SharedWindows, StormDetector, WindowCapacity, classify,
};
use serde::Serialize;

use crate::coalesce::{Coalescer, Recorded};
use crate::metrics::Metrics;
use crate::remediation;
use crate::writer::{Deadline, Op, RetryingWriter};

/// What happened to one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A RemediationRequest was created for it.
    Created,
    /// Its RemediationRequest already existed (written earlier, or by another replica).
    AlreadyExists,
    /// Seen before within the dedup TTL: counted, nothing created.
    Duplicate,
    /// A resolved alert: nothing created; its dedup window is closed.
    Resolved,
    /// Held in a storm buffer; written when the buffer fills or goes quiet.
    Buffered,
    /// Part of a storm aggregate, which was created or brought up to date.
    Aggregated,
    /// Part of a storm past its sampling threshold: counted in the aggregate, resource not listed.
    SampledOut,
    /// Not a signal the gateway acts on (a `Normal` Kubernetes event).
    Ignored,
}

impl Outcome {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::AlreadyExists => "already_exists",
            Outcome::Duplicate => "duplicate",
            Outcome::Resolved => "resolved",
            Outcome::Buffered => "buffered",
            Outcome::Aggregated => "aggregated",
            Outcome::SampledOut => "sampled_out",
            Outcome::Ignored => "ignored",
        }
    }
}

/// The outcome of one signal, as answered to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertOutcome {
    /// Alert name or event reason.
    pub alert: String,
    /// The signal's namespace.
    pub namespace: String,
    /// The affected resource (`kind/name`).
    pub resource: String,
    /// The dedup fingerprint.
    pub fingerprint: String,
    /// What happened.
    pub outcome: Outcome,
    /// The RemediationRequest concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Occurrences in the dedup window (duplicates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<u64>,
    /// The storm type, for storm outcomes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm_type: Option<&'static str>,
    /// Why, for outcomes that need a word of explanation (ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Whether a resource was created while handling this signal (drives 201 vs 202).
    #[serde(skip)]
    pub created: bool,
}

impl AlertOutcome {
    fn new(signal: &Signal, outcome: Outcome) -> Self {
        AlertOutcome {
            alert: signal.name.clone(),
            namespace: signal.namespace.clone(),
            resource: format!("{}/{}", signal.resource.kind, signal.resource.name),
            fingerprint: signal.fingerprint.to_string(),
            outcome,
            remediation: None,
            occurrences: None,
            storm_type: None,
            detail: None,
            created: outcome == Outcome::Created,
        }
    }
}

/// A signal that could not be recorded: the sender must send it again.
#[derive(Debug, thiserror::Error)]
#[error("signal {alert} could not be recorded: {reason}")]
pub struct Unrecorded {
    /// The alert concerned.
    pub alert: String,
    /// Why, in words safe to show.
    pub reason: String,
    /// When to try again.
    pub retry_after: Duration,
}

/// The gateway's pipeline and the state it keeps between requests.
pub struct Gateway {
    config: Arc<dyn ConfigSource>,
    clock: Arc<dyn Clock>,
    dedup: Deduplicator<dyn DedupStore>,
    storms: Mutex<StormDetector>,
    shared: Option<(Arc<dyn StormCounter>, SharedWindows<dyn WindowStore>)>,
    writer: RetryingWriter,
    metrics: Metrics,
    fallback_namespace: String,
    /// Per aggregate name, the newest version written. Writes of older snapshots (two requests
    /// racing) are skipped, so an aggregate never goes backwards.
    aggregate_versions: tokio::sync::Mutex<HashMap<String, AggregateWritten>>,
    /// Aggregates whose alert count grew without new resources: written once per interval.
    aggregate_updates: Mutex<HashMap<String, Aggregate>>,
    /// Occurrence counts of duplicates, written once per resource per interval (the interval
    /// deferred aggregate counts wait too).
    occurrences: Coalescer,
    write_deadline: Duration,
    accepting: AtomicBool,
}

/// What was last written of an aggregate.
#[derive(Debug, Clone, Copy)]
struct AggregateWritten {
    alert_count: u64,
    resources: usize,
    at: Timestamp,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("fallback_namespace", &self.fallback_namespace)
            .finish_non_exhaustive()
    }
}

/// Storm counts and aggregation windows kept where every replica sees them.
#[allow(missing_debug_implementations)] // trait objects
pub struct SharedStorms {
    /// Counts per alert name.
    pub counter: Arc<dyn StormCounter>,
    /// Open aggregation windows.
    pub windows: Arc<dyn WindowStore>,
    /// Distinct resources one window stores at most.
    pub capacity: WindowCapacity,
}

/// What the pipeline is built from.
#[allow(missing_debug_implementations)] // trait objects all the way down
pub struct Parts {
    /// Hot-reloadable settings.
    pub config: Arc<dyn ConfigSource>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The dedup store.
    pub dedup_store: Arc<dyn DedupStore>,
    /// The RemediationRequest sink.
    pub writer: Arc<dyn gateway_ports::RemediationWriter>,
    /// The storm detector (its window capacity chosen by the caller).
    pub storms: StormDetector,
    /// Storm state shared by every replica (Redis); `None`: each replica keeps its own.
    pub shared_storms: Option<SharedStorms>,
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
    /// At most one occurrence-count update per resource per this interval.
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

impl Gateway {
    /// Assembles the pipeline.
    pub fn new(parts: Parts) -> Self {
        let seed = parts.clock.now().as_millis() ^ u64::from(std::process::id()).rotate_left(32);
        Gateway {
            writer: RetryingWriter::new(
                parts.writer,
                parts.config.clone(),
                parts.metrics.clone(),
                seed,
            )
            .with_attempt_timeout(parts.timing.attempt_timeout),
            config: parts.config,
            clock: parts.clock,
            dedup: Deduplicator::new(parts.dedup_store),
            storms: Mutex::new(parts.storms),
            shared: parts
                .shared_storms
                .map(|s| (s.counter, SharedWindows::new(s.windows, s.capacity))),
            metrics: parts.metrics,
            fallback_namespace: parts.fallback_namespace,
            aggregate_versions: tokio::sync::Mutex::new(HashMap::new()),
            aggregate_updates: Mutex::new(HashMap::new()),
            occurrences: Coalescer::new(parts.timing.update_interval),
            write_deadline: parts.timing.deadline,
            accepting: AtomicBool::new(true),
        }
    }

    /// The clock signals are stamped with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The settings source.
    pub fn config(&self) -> &Arc<dyn ConfigSource> {
        &self.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Processes every signal of one request, in order, against one settings snapshot.
    ///
    /// Stops at the first signal that cannot be recorded: the signals before it are recorded
    /// (a resend makes them duplicates), it and the ones after are not.
    pub async fn process(&self, signals: Vec<Signal>) -> Result<Vec<AlertOutcome>, Unrecorded> {
        let settings = self.config.snapshot();
        let deadline = Deadline::after(self.write_deadline);
        let mut outcomes = Vec::with_capacity(signals.len());
        for signal in signals {
            let outcome = self.process_one(&signal, &settings, deadline).await?;
            self.metrics
                .signal_outcomes
                .with_label_values(&[outcome.outcome.as_str()])
                .inc();
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Records the outcome of a payload that is valid but not a signal (a `Normal` event).
    pub fn ignored(&self, reason: String) -> AlertOutcome {
        self.metrics
            .signal_outcomes
            .with_label_values(&[Outcome::Ignored.as_str()])
            .inc();
        AlertOutcome {
            alert: String::new(),
            namespace: String::new(),
            resource: String::new(),
            fingerprint: String::new(),
            outcome: Outcome::Ignored,
            remediation: None,
            occurrences: None,
            storm_type: None,
            detail: Some(reason),
            created: false,
        }
    }

    async fn process_one(
        &self,
        signal: &Signal,
        settings: &Settings,
        deadline: Deadline,
    ) -> Result<AlertOutcome, Unrecorded> {
        self.metrics
            .signals_received
            .with_label_values(&[signal.source.as_str(), signal.severity.as_str()])
            .inc();
        let seen = self
            .dedup
            .observe(signal, &settings.dedup, signal.received_time)
            .await
            .map_err(|e| {
                self.metrics.dedup_store_errors.inc();
                self.metrics
                    .signals_unrecorded
                    .with_label_values(&["dedup_store"])
                    .inc();
                tracing::error!(error = %e, alert = %signal.name, "dedup store failed");
                Unrecorded {
                    alert: signal.name.clone(),
                    reason: "dedup store unavailable".to_owned(),
                    retry_after: Duration::from_secs(5),
                }
            })?;
        match seen {
            DedupOutcome::Resolved => Ok(AlertOutcome::new(signal, Outcome::Resolved)),
            DedupOutcome::Duplicate {
                count,
                window_start,
            } => {
                self.metrics.signals_deduplicated.inc();
                self.record_occurrences(signal, window_start, settings.dedup.ttl.get(), count);
                let mut outcome = AlertOutcome::new(signal, Outcome::Duplicate);
                outcome.occurrences = Some(count);
                Ok(outcome)
            }
            DedupOutcome::New { window_start } => {
                self.storm_step(signal, window_start, settings, deadline)
                    .await
            }
        }
    }

    /// Queues the occurrence count of a duplicate for its resource (coalesced: written on a tick).
    fn record_occurrences(
        &self,
        signal: &Signal,
        window_start: Timestamp,
        ttl: Duration,
        count: u64,
    ) {
        let occurrences = Occurrences {
            name: remediation::signal_name(signal, window_start, ttl),
            namespace: remediation::namespace_of(signal, &self.fallback_namespace),
            last_occurrence: signal.received_time,
            occurrence_count: count,
        };
        let result = match self.occurrences.record(occurrences, signal.received_time) {
            Recorded::Queued => None,
            Recorded::Coalesced => Some("coalesced"),
            Recorded::Absent => Some("absent"),
            Recorded::Dropped => Some("dropped"),
        };
        if let Some(result) = result {
            self.metrics
                .remediation_occurrence_updates
                .with_label_values(&[result])
                .inc();
        }
    }

    async fn storm_step(
        &self,
        signal: &Signal,
        window_start: Timestamp,
        settings: &Settings,
        deadline: Deadline,
    ) -> Result<AlertOutcome, Unrecorded> {
        let now = signal.received_time;
        let observation = match &self.shared {
            Some((counter, windows)) => {
                let counts = counter
                    .count(&signal.name, &signal.resource, now, COUNTING)
                    .await;
                let counts = match counts {
                    Ok(counts) => counts,
                    Err(e) => {
                        return Err(self.unrecorded(signal, settings, "storm_counter", &e).await);
                    }
                };
                let storm = classify(counts, &settings.storm);
                match windows.observe(signal, storm, &settings.storm, now).await {
                    Ok(observation) => observation,
                    Err(e) => {
                        return Err(self.unrecorded(signal, settings, "storm_windows", &e).await);
                    }
                }
            }
            None => {
                let mut storms = self.storms.lock().unwrap_or_else(|p| p.into_inner());
                let observation = storms.observe(signal, &settings.storm, now);
                self.update_storm_gauges(&storms);
                observation
            }
        };
        self.carry_out(observation.closed).await;
        match observation.decision {
            Decision::Individual => {
                let request = remediation::for_signal(
                    signal,
                    window_start,
                    settings.dedup.ttl.get(),
                    &self.fallback_namespace,
                );
                match self
                    .writer
                    .write_within(Op::Create, &request, Some(deadline))
                    .await
                {
                    Ok(written) => {
                        let kind = if written == Written::Created {
                            Outcome::Created
                        } else {
                            Outcome::AlreadyExists
                        };
                        let mut outcome = AlertOutcome::new(signal, kind);
                        outcome.remediation = Some(request.name);
                        Ok(outcome)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, alert = %signal.name, "RemediationRequest not written; answering 503 so the sender retries");
                        self.metrics
                            .signals_unrecorded
                            .with_label_values(&["write"])
                            .inc();
                        if let Err(release) = self.dedup.release(&signal.fingerprint).await {
                            // The resend will read as a duplicate until the TTL ends; say so loudly.
                            tracing::error!(error = %release, fingerprint = %signal.fingerprint, "could not release the dedup window of an unwritten signal");
                        }
                        Err(Unrecorded {
                            alert: signal.name.clone(),
                            reason: "RemediationRequest could not be written".to_owned(),
                            retry_after: settings.retry.max_backoff.max(Duration::from_secs(1)),
                        })
                    }
                }
            }
            Decision::Buffered { storm_started, .. } => {
                if let Some(storm_type) = storm_started {
                    self.storm_started(signal, storm_type);
                }
                let mut outcome = AlertOutcome::new(signal, Outcome::Buffered);
                outcome.storm_type = storm_started.map(|t| t.as_str());
                Ok(outcome)
            }
            Decision::CreateAggregate {
                aggregate,
                storm_started,
            } => {
                if let Some(storm_type) = storm_started {
                    self.storm_started(signal, storm_type);
                }
                Ok(self.aggregated(signal, &aggregate).await)
            }
            Decision::Joined { aggregate } => Ok(self.aggregated(signal, &aggregate).await),
            Decision::SampledOut { aggregate } => {
                self.metrics.storm_sampled_out.inc();
                Ok(self.aggregate_outcome(signal, &aggregate, Outcome::SampledOut, false))
            }
        }
    }

    /// A signal the shared storm state could not take: its dedup window is released and the
    /// request fails, so the resend is treated as new.
    async fn unrecorded(
        &self,
        signal: &Signal,
        settings: &Settings,
        what: &'static str,
        e: &StoreError,
    ) -> Unrecorded {
        tracing::error!(error = %e, alert = %signal.name, "{what} failed");
        self.metrics
            .signals_unrecorded
            .with_label_values(&[what])
            .inc();
        if let Err(release) = self.dedup.release(&signal.fingerprint).await {
            tracing::error!(error = %release, fingerprint = %signal.fingerprint, "could not release the dedup window of an unrecorded signal");
        }
        Unrecorded {
            alert: signal.name.clone(),
            reason: format!("{} unavailable", what.replace('_', " ")),
            retry_after: settings.retry.max_backoff.max(Duration::from_secs(1)),
        }
    }

    fn storm_started(&self, signal: &Signal, storm_type: gateway_storm::StormType) {
        self.metrics
            .storms_detected
            .with_label_values(&[storm_type.as_str()])
            .inc();
        tracing::warn!(alert = %signal.name, namespace = %signal.namespace, storm_type = storm_type.as_str(), "alert storm detected: aggregating");
    }

    /// Writes the aggregate the signal went into and answers `aggregated`.
    async fn aggregated(&self, signal: &Signal, aggregate: &Aggregate) -> AlertOutcome {
        let written = self.write_aggregate(aggregate).await;
        self.aggregate_outcome(
            signal,
            aggregate,
            Outcome::Aggregated,
            written == Some(Written::Created),
        )
    }

    fn aggregate_outcome(
        &self,
        signal: &Signal,
        aggregate: &Aggregate,
        kind: Outcome,
        created: bool,
    ) -> AlertOutcome {
        let mut outcome = AlertOutcome::new(signal, kind);
        outcome.remediation = Some(remediation::aggregate_name(aggregate));
        outcome.storm_type = Some(aggregate.storm_type.as_str());
        outcome.created = created;
        outcome
    }

    fn update_storm_gauges(&self, storms: &StormDetector) {
        self.metrics
            .storm_windows_open
            .set(i64::try_from(storms.open_windows()).unwrap_or(i64::MAX));
        self.metrics
            .storm_buffered_signals
            .set(i64::try_from(storms.buffered_signals()).unwrap_or(i64::MAX));
    }

    /// Writes an aggregate snapshot unless a newer one was written already. A snapshot that
    /// only counts more alerts (no new resource, still open) waits for the next interval; new
    /// resources and the closing are written at once. A failed write is queued, since the window
    /// (and so the signals) live on in the detector or the queue.
    async fn write_aggregate(&self, aggregate: &Aggregate) -> Option<Written> {
        let request = remediation::for_aggregate(aggregate, &self.fallback_namespace);
        let closed = aggregate.closed_at.is_some();
        let mut versions = self.aggregate_versions.lock().await;
        let previous = versions.get(&request.name).copied();
        if let Some(previous) = previous {
            if previous.alert_count >= aggregate.alert_count && !closed {
                return None;
            }
            if !closed && previous.resources >= aggregate.resources.len() {
                self.defer_aggregate(&request.name, aggregate);
                return None;
            }
        }
        let name = request.name.clone();
        self.aggregate_updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        let written = self.writer.write_or_queue(Op::Update, request).await;
        if closed {
            versions.remove(&name);
        } else {
            versions.insert(
                name,
                AggregateWritten {
                    alert_count: aggregate.alert_count,
                    resources: aggregate.resources.len(),
                    at: self.clock.now(),
                },
            );
        }
        written
    }

    fn defer_aggregate(&self, name: &str, aggregate: &Aggregate) {
        let mut deferred = self
            .aggregate_updates
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let newer = deferred
            .get(name)
            .is_none_or(|queued| queued.alert_count < aggregate.alert_count);
        if newer {
            deferred.insert(name.to_owned(), aggregate.clone());
        }
        self.metrics
            .remediation_occurrence_updates
            .with_label_values(&["coalesced"])
            .inc();
    }

    /// Writes the deferred aggregate counts whose interval has passed (all at shutdown).
    async fn flush_aggregates(&self, everything: bool) {
        let now = self.clock.now();
        let due: Vec<Aggregate> = {
            let versions = self.aggregate_versions.lock().await;
            let mut deferred = self
                .aggregate_updates
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let names: Vec<String> = deferred
                .keys()
                .filter(|name| {
                    everything
                        || versions.get(*name).is_none_or(|written| {
                            now.saturating_since(written.at) >= self.occurrences.interval()
                        })
                })
                .cloned()
                .collect();
            names
                .iter()
                .filter_map(|name| deferred.remove(name))
                .collect()
        };
        for aggregate in due {
            let request = remediation::for_aggregate(&aggregate, &self.fallback_namespace);
            let name = request.name.clone();
            let mut versions = self.aggregate_versions.lock().await;
            if versions
                .get(&name)
                .is_some_and(|written| written.alert_count >= aggregate.alert_count)
            {
                continue;
            }
            self.writer.write_or_queue(Op::Update, request).await;
            versions.insert(
                name,
                AggregateWritten {
                    alert_count: aggregate.alert_count,
                    resources: aggregate.resources.len(),
                    at: now,
                },
            );
        }
    }

    /// Writes the occurrence counts whose interval has passed (all at shutdown): one API call
    /// per resource, however many duplicates it had.
    async fn flush_occurrences(&self, everything: bool) {
        let now = self.clock.now();
        for occurrences in self.occurrences.due(now, everything) {
            let result = match self.writer.inner().record_occurrences(&occurrences).await {
                Ok(_) => "written",
                Err(e) if e.failure == WriteFailure::NotFound => {
                    self.occurrences.absent(&occurrences, now);
                    "absent"
                }
                Err(e) => {
                    self.metrics.observe_attempt_failure(&e.failure);
                    let retryable = matches!(
                        gateway_retry::classify(&e.failure),
                        gateway_retry::Class::Retryable { .. }
                    );
                    tracing::debug!(error = %e, retryable, "occurrence count not written");
                    if retryable && !everything {
                        self.occurrences.retry_later(occurrences);
                    }
                    "failed"
                }
            };
            self.metrics
                .remediation_occurrence_updates
                .with_label_values(&[result])
                .inc();
        }
    }

    /// Carries out the closing of storm windows.
    async fn carry_out(&self, closures: Vec<Closure>) {
        for closure in closures {
            match closure {
                Closure::Aggregate(aggregate) => {
                    tracing::info!(
                        alert = %aggregate.key.alert_name, namespace = %aggregate.key.namespace,
                        resources = aggregate.resources.len(), alerts = aggregate.alert_count,
                        sampled_out = aggregate.sampled_out, "storm window closed");
                    self.write_aggregate(&aggregate).await;
                }
                Closure::Flush { key, signals, .. } => {
                    tracing::info!(alert = %key.alert_name, namespace = %key.namespace, signals = signals.len(),
                        "storm buffer went quiet below the buffer threshold: creating its signals individually");
                    let ttl = self.config.dedup().ttl.get();
                    for signal in signals {
                        let request = remediation::for_signal(
                            &signal,
                            signal.received_time,
                            ttl,
                            &self.fallback_namespace,
                        );
                        self.writer.write_or_queue(Op::Create, request).await;
                    }
                }
            }
        }
    }

    /// Closes storm windows whose time is up and retries queued writes; run about once a second.
    pub async fn tick(&self) {
        let (settings, now) = (self.config.storm(), self.clock.now());
        let closures = match &self.shared {
            Some((_, windows)) => {
                if let Ok(open) = windows.open_windows().await {
                    self.metrics
                        .storm_windows_open
                        .set(i64::try_from(open).unwrap_or(i64::MAX));
                }
                windows.expire(&settings, now).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot check the shared storm windows; trying again next tick");
                    Vec::new()
                })
            }
            None => {
                let mut storms = self.storms.lock().unwrap_or_else(|p| p.into_inner());
                let closures = storms.expire(&settings, now);
                self.update_storm_gauges(&storms);
                closures
            }
        };
        self.carry_out(closures).await;
        self.flush_aggregates(false).await;
        self.flush_occurrences(false).await;
        self.writer.retry_pending().await;
    }

    /// Closes every storm window this process holds and writes everything queued (graceful
    /// shutdown). Shared windows stay in the store for the other replicas (or the next start).
    pub async fn drain(&self) {
        let closures = {
            let mut storms = self.storms.lock().unwrap_or_else(|p| p.into_inner());
            let closures = storms.drain(self.clock.now());
            self.update_storm_gauges(&storms);
            closures
        };
        self.carry_out(closures).await;
        self.flush_aggregates(true).await;
        self.flush_occurrences(true).await;
        self.writer.retry_pending().await;
        let left = self.writer.pending();
        if left > 0 {
            tracing::error!(
                pending = left,
                "shutting down with RemediationRequest writes that could not be made"
            );
        }
    }

    /// Writes still queued for retry.
    pub fn pending_writes(&self) -> usize {
        self.writer.pending()
    }

    /// Stops reporting ready (shutdown has begun).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        self.metrics.ready.set(0);
    }

    /// Readiness: accepting, and the dedup store and the writer usable now.
    pub async fn readiness(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.accepting.load(Ordering::SeqCst) {
            problems.push("shutting down".to_owned());
        }
        if let Err(e) = self.dedup.store().check().await {
            problems.push(e.to_string());
        }
        if let Err(e) = self.writer.inner().check().await {
            problems.push(e.to_string());
        }
        self.metrics.ready.set(i64::from(problems.is_empty()));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
