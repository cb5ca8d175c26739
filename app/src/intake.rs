//! The intake of signals: for each signal of a request, in order, against one settings
//! snapshot, the domain decides (dedup, then storm) and this carries the decision out.
//!
//! The one rule above all: a signal answered 2xx is recorded. When its RemediationRequest cannot
//! be written, or the storm state cannot take it, the signal's dedup window is released and the
//! request fails with 503, so the sender's retry is treated as new. Every write a request waits
//! on runs under the request's deadline; storm windows' growth and closing are written by the
//! ticker, never by a waiting request.

use std::sync::Arc;
use std::time::Duration;

use gateway_dedup::{DedupOutcome, Deduplicator};
use gateway_ports::{
    ConfigSource, ConfigSourceExt, DedupStore, RetrySettings, Settings, Signal, StormCounter,
    Timestamp, WindowStore, Written,
};
use gateway_storm::{Aggregate, Decision, StormError, StormTracker};

use crate::backlog::Backlog;
use crate::metrics::Metrics;
use crate::outcome::{AlertOutcome, NotRecorded, Outcome, Unrecorded};
use crate::remediation;
use crate::writer::{Deadline, Op, RetryingWriter};

/// Storm detection over whichever stores the gateway was built with.
pub type Storms = StormTracker<dyn StormCounter, dyn WindowStore>;

/// Dedup → storm → write, for each signal of a request.
#[derive(Debug)]
pub struct SignalIntake {
    pub(crate) config: Arc<dyn ConfigSource>,
    pub(crate) dedup: Deduplicator<dyn DedupStore>,
    pub(crate) storms: Arc<Storms>,
    pub(crate) writer: Arc<RetryingWriter>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) metrics: Metrics,
    pub(crate) fallback_namespace: String,
    pub(crate) write_deadline: Duration,
}

impl SignalIntake {
    /// Processes every signal of one request, in order, against one settings snapshot, within
    /// the write deadline.
    ///
    /// Stops at the first signal that cannot be recorded: the signals before it are recorded
    /// (a resend makes them duplicates), it and the ones after are not.
    pub async fn process(&self, signals: Vec<Signal>) -> Result<Vec<AlertOutcome>, Unrecorded> {
        let settings = self.config.snapshot();
        let deadline = Deadline::after(self.write_deadline);
        let mut outcomes = Vec::with_capacity(signals.len());
        for signal in signals {
            self.metrics.signal_received(&signal);
            let outcome = self.one(&signal, &settings, deadline).await?;
            self.metrics.outcome(outcome.outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
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
                self.new_signal(signal, window_start, settings, deadline)
                    .await
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
        let observation = match self.storms.observe(signal, &settings.storm, now).await {
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
            self.backlog.hand_over(closed, settings.dedup.ttl.get());
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
                    .writer
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
                    Err(e) => {
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
        if let Err(release) = self.dedup.release(&signal.fingerprint).await {
            // The resend will read as a duplicate until the TTL ends; say so loudly.
            tracing::error!(error = %release, fingerprint = %signal.fingerprint, "could not release the dedup window of an unrecorded signal");
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
