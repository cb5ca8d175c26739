//! Writing one RemediationRequest: the retry policy of the retry domain around the writer port,
//! under the deadline of the request waiting for it (if one is).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_ports::{
    ConfigSource, Occurrences, RemediationRequest, RemediationWriter, WriteError, WriteFailure,
    Written,
};
use gateway_retry::{Budget, GiveUpReason, Jitter, RetryDecision, RetryState, SplitMix64};

use crate::metrics::Metrics;

/// Create (if absent) or update (replace, or create).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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

    /// The time left.
    pub fn remaining(&self) -> Duration {
        self.total.saturating_sub(self.started.elapsed())
    }
}

/// A write that failed for good.
#[derive(Debug, thiserror::Error)]
#[error("writing RemediationRequest {name} failed after {attempts} attempt(s): {last}")]
pub struct WriteFailed {
    /// The resource name.
    pub name: String,
    /// Attempts made (0: the deadline left no time for one).
    pub attempts: u32,
    /// Why the retries stopped.
    pub reason: GiveUpReason,
    /// The last error.
    #[source]
    pub last: WriteError,
}

/// The writer port with the gateway's retry policy: exponential backoff with jitter, at most
/// `max_attempts`, `Retry-After` honoured, `AlreadyExists` a success. Retry settings are read
/// before every retry, so a hot-reloaded `retry.yaml` applies to the next attempt.
///
/// Under a [`Deadline`] no attempt is started that could not end in time (its wait plus one
/// attempt of the sink's own timeout), and each attempt is cut at the deadline: the request
/// waiting for the write is answered in time whatever the sink does.
#[derive(Debug)]
pub struct RetryingWriter {
    inner: Arc<dyn RemediationWriter>,
    config: Arc<dyn ConfigSource>,
    jitter: Mutex<SplitMix64>,
    metrics: Metrics,
    /// The longest one attempt takes (the sink's own timeout), for deadline arithmetic.
    attempt_timeout: Duration,
}

impl RetryingWriter {
    /// Wraps `inner`; `seed` seeds the jitter; `attempt_timeout` is the longest one attempt of
    /// the sink can take (the Kubernetes sink's per-call timeout).
    pub fn new(
        inner: Arc<dyn RemediationWriter>,
        config: Arc<dyn ConfigSource>,
        metrics: Metrics,
        seed: u64,
        attempt_timeout: Duration,
    ) -> Self {
        RetryingWriter {
            inner,
            config,
            jitter: Mutex::new(SplitMix64::new(seed)),
            metrics,
            attempt_timeout,
        }
    }

    /// Writes `request`, retrying transient failures while `deadline` allows (no deadline: the
    /// attempt count alone bounds it).
    pub async fn write(
        &self,
        op: Op,
        request: &RemediationRequest,
        deadline: Option<Deadline>,
    ) -> Result<Written, WriteFailed> {
        #[allow(clippy::disallowed_methods)] // a latency metric, not a domain decision
        let started = Instant::now();
        let result = self.retrying(op, request, deadline).await;
        match &result {
            Ok(written) => self.metrics.written(*written, started.elapsed()),
            Err(failed) => self.metrics.write_failed(failed.reason, started.elapsed()),
        }
        result
    }

    async fn retrying(
        &self,
        op: Op,
        request: &RemediationRequest,
        deadline: Option<Deadline>,
    ) -> Result<Written, WriteFailed> {
        let mut state = RetryState::new();
        if let Some(deadline) = deadline
            && !deadline.budget(self.attempt_timeout).allows(Duration::ZERO)
        {
            return Err(WriteFailed {
                name: request.name.clone(),
                attempts: 0,
                reason: GiveUpReason::OutOfTime { attempts: 0 },
                last: WriteError::new(
                    WriteFailure::Timeout,
                    "no time left within the write deadline for an attempt",
                ),
            });
        }
        loop {
            let error = match self.attempt(op, request, deadline).await {
                Ok(written) => return Ok(written),
                Err(e) => e,
            };
            self.metrics.attempt_failed(&error.failure);
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
                    self.metrics.write_retried();
                    tokio::time::sleep(delay).await;
                }
                RetryDecision::AlreadyDone => return Ok(Written::AlreadyExisted),
                RetryDecision::GiveUp(reason) => {
                    return Err(WriteFailed {
                        name: request.name.clone(),
                        attempts: state.attempts(),
                        reason,
                        last: error,
                    });
                }
            }
        }
    }

    /// One attempt, cut at the deadline.
    async fn attempt(
        &self,
        op: Op,
        request: &RemediationRequest,
        deadline: Option<Deadline>,
    ) -> Result<Written, WriteError> {
        let call = async {
            match op {
                Op::Create => self.inner.create(request).await,
                Op::Update => self.inner.update(request).await,
            }
        };
        let Some(deadline) = deadline else {
            return call.await;
        };
        tokio::time::timeout(deadline.remaining(), call)
            .await
            .unwrap_or_else(|_| {
                Err(WriteError::new(
                    WriteFailure::Timeout,
                    "the write deadline passed during the attempt",
                ))
            })
    }

    /// Records occurrences on an existing resource: one attempt (the caller keeps what failed
    /// for its next round).
    pub async fn record_occurrences(
        &self,
        occurrences: &Occurrences,
    ) -> Result<Written, WriteError> {
        let result = self.inner.record_occurrences(occurrences).await;
        if let Err(e) = &result {
            self.metrics.attempt_failed(&e.failure);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use gateway_ports::test_util::signal;
    use gateway_ports::{SettingsCell, Timestamp};

    use super::*;
    use crate::remediation;

    /// A sink whose every call takes `delay`, counting the calls.
    #[derive(Debug)]
    struct Slow {
        delay: Duration,
        calls: AtomicU32,
    }

    #[async_trait]
    impl RemediationWriter for Slow {
        async fn create(&self, _: &RemediationRequest) -> Result<Written, WriteError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Ok(Written::Created)
        }
        async fn update(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
            self.create(request).await
        }
        async fn record_occurrences(&self, _: &Occurrences) -> Result<Written, WriteError> {
            Ok(Written::Updated)
        }
        async fn check(&self) -> Result<(), WriteError> {
            Ok(())
        }
    }

    fn writer(sink: &Arc<Slow>, attempt_timeout: Duration) -> RetryingWriter {
        RetryingWriter::new(
            sink.clone(),
            Arc::new(SettingsCell::default()),
            Metrics::new(),
            7,
            attempt_timeout,
        )
    }

    fn request() -> RemediationRequest {
        let s = signal("Down").build();
        remediation::for_signal(&s, Timestamp::EPOCH, Duration::from_secs(60), "default")
    }

    #[tokio::test]
    async fn an_attempt_is_cut_at_the_deadline() {
        let sink = Arc::new(Slow {
            delay: Duration::from_secs(30),
            calls: AtomicU32::new(0),
        });
        let deadline = Deadline::after(Duration::from_millis(1500));
        let failed = writer(&sink, Duration::from_secs(1))
            .write(Op::Create, &request(), Some(deadline))
            .await
            .unwrap_err();
        assert!(
            deadline.started.elapsed() < Duration::from_millis(2500),
            "answered in time, not after the sink's 30 s: {:?}",
            deadline.started.elapsed()
        );
        assert_eq!(failed.last.failure, WriteFailure::Timeout);
        assert_eq!(sink.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_attempt_starts_that_could_not_end_within_the_deadline() {
        let sink = Arc::new(Slow {
            delay: Duration::ZERO,
            calls: AtomicU32::new(0),
        });
        let failed = writer(&sink, Duration::from_secs(2))
            .write(
                Op::Create,
                &request(),
                Some(Deadline::after(Duration::from_secs(1))),
            )
            .await
            .unwrap_err();
        assert_eq!(failed.attempts, 0);
        assert!(matches!(
            failed.reason,
            GiveUpReason::OutOfTime { attempts: 0 }
        ));
        assert_eq!(
            sink.calls.load(Ordering::SeqCst),
            0,
            "the sink was not called"
        );
        // Without a deadline (a background write) the attempt is made.
        assert!(
            writer(&sink, Duration::from_secs(2))
                .write(Op::Create, &request(), None)
                .await
                .is_ok()
        );
    }
}
