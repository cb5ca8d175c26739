//! Writing RemediationRequests: the retry policy of the retry domain around the writer port,
//! and a background queue for writes no request is waiting on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_ports::{ConfigSource, RemediationRequest, RemediationWriter, WriteError, Written};
use gateway_retry::{Budget, GiveUpReason, Jitter, RetryDecision, RetryState, SplitMix64};

use crate::metrics::Metrics;

/// Create (if absent) or update (replace, or create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `RemediationWriter::create`.
    Create,
    /// `RemediationWriter::update`.
    Update,
}

/// The time a webhook request may spend writing, retries included: its answer must reach the
/// sender before the sender gives up (Alertmanager's notification timeout is never below 10 s).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    total: Duration,
}

impl Deadline {
    /// A deadline `total` from now.
    pub fn after(total: Duration) -> Self {
        #[allow(clippy::disallowed_methods)] // the sender's clock is the real one
        let started = Instant::now();
        Deadline { started, total }
    }

    fn budget(&self, attempt: Duration) -> Budget {
        Budget {
            elapsed: self.started.elapsed(),
            total: self.total,
            attempt,
        }
    }
}

/// A write that failed for good.
#[derive(Debug, thiserror::Error)]
#[error("writing RemediationRequest {name} failed after {attempts} attempt(s): {last}")]
pub struct WriteFailed {
    /// The resource name.
    pub name: String,
    /// Attempts made.
    pub attempts: u32,
    /// Whether more attempts could have helped (exhausted) or not (permanent).
    pub permanent: bool,
    /// The last error.
    #[source]
    pub last: WriteError,
}

/// The writer port with the gateway's retry policy: exponential backoff with jitter, at most
/// `max_attempts`, `Retry-After` honoured, `AlreadyExists` a success. Retry settings are read
/// before every retry, so a hot-reloaded `retry.yaml` applies to the next attempt.
pub struct RetryingWriter {
    inner: Arc<dyn RemediationWriter>,
    config: Arc<dyn ConfigSource>,
    jitter: Mutex<SplitMix64>,
    metrics: Metrics,
    /// The longest one attempt takes (the sink's own timeout), for deadline arithmetic.
    attempt_timeout: Duration,
    /// Writes that failed in the background, by resource name: the latest version of each.
    pending: Mutex<BTreeMap<String, (Op, RemediationRequest)>>,
}

impl std::fmt::Debug for RetryingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryingWriter").finish_non_exhaustive()
    }
}

impl RetryingWriter {
    /// Wraps `inner`; `seed` seeds the jitter.
    pub fn new(
        inner: Arc<dyn RemediationWriter>,
        config: Arc<dyn ConfigSource>,
        metrics: Metrics,
        seed: u64,
    ) -> Self {
        RetryingWriter {
            inner,
            config,
            jitter: Mutex::new(SplitMix64::new(seed)),
            metrics,
            attempt_timeout: Duration::from_secs(1),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// The longest one attempt of the sink can take (the Kubernetes sink's per-call timeout);
    /// a retry under a [`Deadline`] is made only if its wait plus one such attempt fits.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The writer behind the policy (readiness checks).
    pub fn inner(&self) -> &Arc<dyn RemediationWriter> {
        &self.inner
    }

    /// Writes `request`, retrying transient failures (in the background: no deadline).
    pub async fn write(
        &self,
        op: Op,
        request: &RemediationRequest,
    ) -> Result<Written, WriteFailed> {
        self.write_within(op, request, None).await
    }

    /// Writes `request`, retrying transient failures while `deadline` allows.
    pub async fn write_within(
        &self,
        op: Op,
        request: &RemediationRequest,
        deadline: Option<Deadline>,
    ) -> Result<Written, WriteFailed> {
        #[allow(clippy::disallowed_methods)] // a latency metric, not a domain decision
        let started = Instant::now();
        let mut state = RetryState::new();
        let result = loop {
            let attempt = match op {
                Op::Create => self.inner.create(request).await,
                Op::Update => self.inner.update(request).await,
            };
            let error = match attempt {
                Ok(written) => break Ok(written),
                Err(e) => e,
            };
            self.metrics.observe_attempt_failure(&error.failure);
            let settings = self.config.retry();
            let decision = {
                let mut jitter = self.jitter.lock().unwrap_or_else(|p| p.into_inner());
                let jitter = &mut *jitter as &mut dyn Jitter;
                match deadline {
                    Some(deadline) => state.on_failure_within(
                        &error.failure,
                        &settings,
                        jitter,
                        &deadline.budget(self.attempt_timeout),
                    ),
                    None => state.on_failure(&error.failure, &settings, jitter),
                }
            };
            match decision {
                RetryDecision::RetryAfter(delay) => {
                    tracing::debug!(name = %request.name, attempt = state.attempts(), ?delay, error = %error, "retrying RemediationRequest write");
                    self.metrics.remediation_write_retries.inc();
                    tokio::time::sleep(delay).await;
                }
                RetryDecision::AlreadyDone => break Ok(Written::AlreadyExisted),
                RetryDecision::GiveUp(reason) => {
                    let permanent = matches!(reason, GiveUpReason::Permanent);
                    let label = if permanent { "permanent" } else { "exhausted" };
                    self.metrics
                        .remediation_write_errors
                        .with_label_values(&[label])
                        .inc();
                    break Err(WriteFailed {
                        name: request.name.clone(),
                        attempts: state.attempts(),
                        permanent,
                        last: error,
                    });
                }
            }
        };
        self.metrics
            .remediation_write_duration
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(Written::Created) => self.metrics.remediations_created.inc(),
            Ok(Written::Updated) => self.metrics.remediations_updated.inc(),
            Ok(Written::AlreadyExisted) => self.metrics.remediations_already_existed.inc(),
            Err(_) => {}
        }
        result
    }

    /// Writes in the background's name: on failure the write is queued (replacing an older
    /// version of the same resource) and retried by [`RetryingWriter::retry_pending`].
    pub async fn write_or_queue(&self, op: Op, request: RemediationRequest) -> Option<Written> {
        match self.write(op, &request).await {
            Ok(written) => {
                // An older queued version must not overwrite this one later.
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                if pending.remove(&request.name).is_some() {
                    self.metrics
                        .remediation_pending_writes
                        .set(pending.len() as i64);
                }
                Some(written)
            }
            Err(e) => {
                tracing::warn!(error = %e, "RemediationRequest write queued for retry");
                self.queue(op, request);
                None
            }
        }
    }

    fn queue(&self, op: Op, request: RemediationRequest) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let op = match pending.get(&request.name) {
            // A queued create followed by an update: the update creates when absent anyway.
            Some((Op::Update, _)) => Op::Update,
            _ => op,
        };
        pending.insert(request.name.clone(), (op, request));
        self.metrics
            .remediation_pending_writes
            .set(pending.len() as i64);
    }

    /// Tries every queued write once more (each with the full retry policy).
    pub async fn retry_pending(&self) {
        let queued: Vec<(Op, RemediationRequest)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *pending).into_values().collect()
        };
        self.metrics.remediation_pending_writes.set(0);
        for (op, request) in queued {
            let newer_queued = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&request.name);
            if !newer_queued {
                self.write_or_queue(op, request).await;
            }
        }
    }

    /// Writes still waiting.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
