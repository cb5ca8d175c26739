//! The intake of signals: for each signal of a request, in order, against one settings
//! snapshot, the domain decides (dedup, then storm) and this carries the decision out.
//!
//! The one rule above all: a signal answered 2xx is recorded. Each signal of a request gets its
//! own outcome, and one signal's failure never stops the others: when a signal's
//! RemediationRequest cannot be written, or the storm state cannot take it, its dedup window is
//! released and it is `not_recorded` (the request is answered 503, so the sender resends and the
//! resend is new for it, a duplicate for the others); a RemediationRequest the sink refuses for
//! good is `rejected` (answered, never resent). Every write a request waits on runs under the
//! request's deadline, and a signal whose turn comes after it is `not_recorded` untried; storm
//! windows' growth and closing are written by the ticker, never by a waiting request.
//!
//! Before anything is recorded, a signal's target namespace is checked against the
//! `allowed_namespaces` of `security.yaml` ([`SignalIntake::out_of_scope`]): one outside them is
//! `rejected` there and then — no dedup record, no storm count, nothing written — and counted
//! (`gateway_signals_rejected_total{reason="namespace_not_allowed"}`).
//!
//! A dedup record is held by a [`Recording`] until the signal's outcome is settled: if the
//! processing is abandoned half-way (a panic), the record is released, so nothing stays marked
//! as seen without a RemediationRequest behind it.

use std::sync::Arc;
use std::time::Duration;

use gateway_dedup::{DedupOutcome, Deduplicator};
use gateway_ports::{
    ConfigSource, ConfigSourceExt, DedupStore, RetrySettings, SecuritySettings, Settings, Signal,
    StormCounter, Timestamp, WindowStore, Written, truncated,
};
use gateway_storm::{Aggregate, Decision, StormError, StormTracker};

use crate::backlog::Backlog;
use crate::metrics::Metrics;
use crate::outcome::{AlertOutcome, NotRecorded, Outcome, Rejected, Unrecorded};
use crate::placement::{NotPlaced, Placement};
use crate::releases::PendingReleases;
use crate::remediation;
use crate::window_locks::WindowLocks;
use crate::writer::{Deadline, Op};

/// The most characters of a refused namespace repeated in the answer and the log: a namespace
/// has at most 63, a sender may write anything.
const NAMESPACE_SHOWN: usize = 64;

/// Storm detection over whichever stores the gateway was built with.
pub type Storms = StormTracker<dyn StormCounter, dyn WindowStore>;

/// Dedup → storm → write, for each signal of a request.
#[derive(Debug)]
pub struct SignalIntake {
    pub(crate) config: Arc<dyn ConfigSource>,
    pub(crate) dedup: Arc<Deduplicator<dyn DedupStore>>,
    pub(crate) storms: Arc<Storms>,
    /// One signal of a storm window at a time in this process.
    pub(crate) window_locks: WindowLocks,
    pub(crate) placement: Arc<Placement>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) metrics: Metrics,
    pub(crate) fallback_namespace: String,
    pub(crate) write_deadline: Duration,
    /// Releases that failed with the store, tried again every round.
    pub(crate) releases: Arc<PendingReleases>,
}

/// What became of a request's signals.
#[derive(Debug)]
pub struct Processed {
    /// One per signal, in order.
    pub outcomes: Vec<AlertOutcome>,
    /// The first signal that was not recorded, if any: the request is answered 503.
    pub unrecorded: Option<Unrecorded>,
}

/// A dedup record a request holds until its signal's outcome is settled. Dropped unsettled —
/// the processing panicked — it releases the record (in a task of its own: a drop cannot wait).
struct Recording<'a> {
    dedup: &'a Arc<Deduplicator<dyn DedupStore>>,
    releases: &'a Arc<PendingReleases>,
    fingerprint: Option<gateway_ports::Fingerprint>,
    /// When the record was made: the claim the release names.
    claimed_at: Timestamp,
}

impl Recording<'_> {
    /// The outcome is settled: the record stays (or was released on purpose).
    fn settle(mut self) {
        self.fingerprint = None;
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        let Some(fingerprint) = self.fingerprint.take() else {
            return;
        };
        tracing::error!(%fingerprint, "signal processing abandoned: releasing its dedup record");
        let (dedup, releases, claimed_at) =
            (self.dedup.clone(), self.releases.clone(), self.claimed_at);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = dedup.release(&fingerprint, claimed_at).await {
                    tracing::error!(error = %e, %fingerprint, "could not release the dedup record of an abandoned signal; trying again every round");
                    releases.add(fingerprint, claimed_at);
                }
            });
        }
    }
}

impl SignalIntake {
    /// Processes every signal of one request, in order, against one settings snapshot, within
    /// the write deadline: each gets its own outcome (see the module docs).
    pub async fn process(&self, signals: Vec<Signal>) -> Processed {
        let settings = self.config.snapshot();
        let deadline = Deadline::after(self.write_deadline);
        let mut outcomes = Vec::with_capacity(signals.len());
        let mut unrecorded = None;
        for signal in signals {
            self.metrics.signal_received(&signal);
            // Refused before the deadline is even looked at: it costs no IO, and a refusal is
            // the same answer however late it comes.
            let result = if let Some(refused) = self.out_of_scope(&signal, &settings.security) {
                Ok(refused)
            } else if deadline.remaining().is_zero() {
                self.metrics.unrecorded(NotRecorded::Deadline);
                Err(Unrecorded::new(
                    &signal,
                    NotRecorded::Deadline,
                    &settings.retry,
                ))
            } else {
                self.one(&signal, &settings, deadline).await
            };
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(e) => {
                    let outcome = AlertOutcome::not_recorded(&signal, e.reason);
                    unrecorded.get_or_insert(e);
                    outcome
                }
            };
            self.metrics.outcome(outcome.outcome);
            outcomes.push(outcome);
        }
        Processed {
            outcomes,
            unrecorded,
        }
    }

    /// `Some(rejected)` when `signal` targets a namespace `security.yaml` does not allow. The
    /// namespace checked is the signal's, verbatim; a signal without one (a cluster-scoped
    /// target) is checked as the `--fallback-namespace` its RemediationRequest would land in.
    fn out_of_scope(&self, signal: &Signal, security: &SecuritySettings) -> Option<AlertOutcome> {
        let (namespace, whose) = if signal.namespace.is_empty() {
            (self.fallback_namespace.as_str(), "fallback namespace")
        } else {
            (signal.namespace.as_str(), "namespace")
        };
        if security.allowed_namespaces.allows(namespace) {
            return None;
        }
        let namespace = truncated(namespace, NAMESPACE_SHOWN);
        tracing::info!(alert = %truncated(&signal.name, NAMESPACE_SHOWN), %namespace,
            "signal refused: its namespace is not in security.yaml's allowed_namespaces");
        self.metrics.rejected(Rejected::NamespaceNotAllowed);
        Some(AlertOutcome::rejected(
            signal,
            format!("{whose} {namespace:?} is not allowed (security.yaml allowed_namespaces)"),
        ))
    }

    async fn one(
        &self,
        signal: &Signal,
        settings: &Settings,
        deadline: Deadline,
    ) -> Result<AlertOutcome, Unrecorded> {
        let seen = self
            .dedup
            .observe(signal, &settings.dedup, signal.received_time)
            .await;
        let seen = match seen {
            Ok(seen) => seen,
            Err(e) => {
                self.metrics.dedup_store_failed();
                tracing::error!(error = %e, alert = %signal.name, "dedup store failed");
                self.metrics.unrecorded(NotRecorded::DedupStore);
                return Err(Unrecorded::new(
                    signal,
                    NotRecorded::DedupStore,
                    &settings.retry,
                ));
            }
        };
        match seen {
            DedupOutcome::Resolved => Ok(AlertOutcome::of(signal, Outcome::Resolved)),
            DedupOutcome::Duplicate {
                count,
                window_start,
            } => {
                self.metrics.deduplicated();
                self.backlog.occurrences.record(
                    signal,
                    window_start,
                    settings.dedup.ttl.get(),
                    count,
                );
                let mut outcome = AlertOutcome::of(signal, Outcome::Duplicate);
                outcome.occurrences = Some(count);
                Ok(outcome)
            }
            DedupOutcome::New { window_start } => {
                let recording = Recording {
                    dedup: &self.dedup,
                    releases: &self.releases,
                    fingerprint: Some(signal.fingerprint.clone()),
                    claimed_at: signal.received_time,
                };
                let outcome = self
                    .new_signal(signal, window_start, settings, deadline)
                    .await;
                if outcome.is_ok()
                    && let Err(e) = self.dedup.settle(&signal.fingerprint).await
                {
                    // Its repeats read as claimed (answered 503) until the claim is taken over.
                    tracing::warn!(error = %e, fingerprint = %signal.fingerprint, "could not settle a recorded signal's dedup claim");
                }
                recording.settle();
                outcome
            }
            DedupOutcome::Claimed { .. } => {
                // Not ours to release: another request holds it, or a crashed one left it.
                self.metrics.unrecorded(NotRecorded::Claimed);
                Err(Unrecorded::new(
                    signal,
                    NotRecorded::Claimed,
                    &settings.retry,
                ))
            }
        }
    }

    /// A new, firing signal: the storm domain decides, then the decision is carried out.
    async fn new_signal(
        &self,
        signal: &Signal,
        window_start: Timestamp,
        settings: &Settings,
        deadline: Deadline,
    ) -> Result<AlertOutcome, Unrecorded> {
        let now = signal.received_time;
        // The window's turn, held while the storm domain decides (not while writing).
        let Some(turn) = self.window_locks.lock(signal, deadline).await else {
            return Err(self
                .unrecorded(signal, NotRecorded::Deadline, &settings.retry)
                .await);
        };
        let observed = self.storms.observe(signal, &settings.storm, now).await;
        drop(turn);
        let observation = match observed {
            Ok(observation) => observation,
            Err(e) => {
                let reason = match e {
                    StormError::Counter(_) => NotRecorded::StormCounter,
                    StormError::Windows(_) => NotRecorded::StormWindows,
                };
                tracing::error!(error = %e, alert = %signal.name, "storm state failed");
                return Err(self.unrecorded(signal, reason, &settings.retry).await);
            }
        };
        if let Some(closed) = observation.closed {
            // Already deleted by the compare-and-set that placed this signal: the outbox is
            // where it lives now (an error was logged, and it is queued in memory).
            let _ = self
                .backlog
                .hand_over(closed, settings.dedup.ttl.get())
                .await;
        }
        match observation.decision {
            Decision::Individual => {
                let request = remediation::for_signal(
                    signal,
                    window_start,
                    settings.dedup.ttl.get(),
                    &self.fallback_namespace,
                );
                match self
                    .placement
                    .write(Op::Create, &request, Some(deadline))
                    .await
                {
                    Ok(written) => {
                        let kind = if written == Written::Created {
                            Outcome::Created
                        } else {
                            Outcome::AlreadyExists
                        };
                        let mut outcome = AlertOutcome::of(signal, kind);
                        outcome.remediation = Some(request.name);
                        Ok(outcome)
                    }
                    Err(NotPlaced::Rejected { detail, .. }) => {
                        // Kept in dedup: its repeats within the TTL are duplicates, not new
                        // refusals.
                        tracing::error!(alert = %signal.name, namespace = %signal.namespace, reason = %detail,
                            "RemediationRequest refused for good: answering `rejected`");
                        self.metrics.rejected(Rejected::SinkRejected);
                        Ok(AlertOutcome::rejected(signal, detail))
                    }
                    Err(NotPlaced::Failed(e)) => {
                        tracing::error!(error = %e, alert = %signal.name, "RemediationRequest not written; answering 503 so the sender retries");
                        Err(self
                            .unrecorded(signal, NotRecorded::Write, &settings.retry)
                            .await)
                    }
                }
            }
            Decision::Buffered { storm_started, .. } => {
                if let Some(storm_type) = storm_started {
                    self.storm_started(signal, storm_type);
                }
                let mut outcome = AlertOutcome::of(signal, Outcome::Buffered);
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
                let mut outcome = aggregated(signal, &aggregate, Outcome::Aggregated);
                let written = self
                    .backlog
                    .aggregates
                    .create(aggregate, deadline, now)
                    .await;
                outcome.created = written == Some(Written::Created);
                Ok(outcome)
            }
            Decision::Joined { aggregate } => {
                let outcome = aggregated(signal, &aggregate, Outcome::Aggregated);
                self.backlog.aggregates.update(aggregate);
                Ok(outcome)
            }
            Decision::SampledOut { aggregate } => {
                self.metrics.sampled_out();
                let outcome = aggregated(signal, &aggregate, Outcome::SampledOut);
                self.backlog.aggregates.update(aggregate);
                Ok(outcome)
            }
        }
    }

    /// A new signal that could not be recorded: its dedup window is released, so that the
    /// sender's resend is new, and the request fails.
    async fn unrecorded(
        &self,
        signal: &Signal,
        reason: NotRecorded,
        retry: &RetrySettings,
    ) -> Unrecorded {
        self.metrics.unrecorded(reason);
        // The claim was made when the signal was observed (`one`: at its received time).
        let claimed_at = signal.received_time;
        if let Err(release) = self.dedup.release(&signal.fingerprint, claimed_at).await {
            // Until it is made, the resend reads as claimed (503); tried again every round.
            tracing::error!(error = %release, fingerprint = %signal.fingerprint, "could not release the dedup window of an unrecorded signal; trying again every round");
            self.releases.add(signal.fingerprint.clone(), claimed_at);
        }
        Unrecorded::new(signal, reason, retry)
    }

    fn storm_started(&self, signal: &Signal, storm_type: gateway_storm::StormType) {
        self.metrics.storm_detected(storm_type);
        tracing::warn!(alert = %signal.name, namespace = %signal.namespace, storm_type = storm_type.as_str(), "alert storm detected: aggregating");
    }
}

/// The outcome of a signal that went into `aggregate`.
fn aggregated(signal: &Signal, aggregate: &Aggregate, kind: Outcome) -> AlertOutcome {
    let mut outcome = AlertOutcome::of(signal, kind);
    outcome.remediation = Some(remediation::aggregate_name(aggregate));
    outcome.storm_type = Some(aggregate.storm_type.as_str());
    outcome
}
