//! What callers tell the metrics: one method per thing that happened, labels from typed values.

use std::time::Duration;

use gateway_ports::{
    ConfigKind, ConfigStatus, ReloadRecord, ReloadResult, Signal, WriteFailure, Written,
};
use gateway_retry::GiveUpReason;
use gateway_storm::StormType;

use super::{HttpMethod, Metrics, Shed, gauge_value, gave_up_label, hash_label};
use crate::occurrences::OccurrenceUpdate;
use crate::outcome::{NotRecorded, Outcome, Rejected};

impl Metrics {
    /// One signal arrived.
    pub fn signal_received(&self, signal: &Signal) {
        self.signals_received
            .with_label_values(&[signal.source.as_str(), signal.severity.as_str()])
            .inc();
    }

    /// One signal was answered `outcome`.
    pub fn outcome(&self, outcome: Outcome) {
        self.signal_outcomes
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// One signal was a duplicate within its TTL window.
    pub fn deduplicated(&self) {
        self.signals_deduplicated.inc();
    }

    /// A storm was detected: an aggregation window opened.
    pub fn storm_detected(&self, storm_type: StormType) {
        self.storms_detected
            .with_label_values(&[storm_type.as_str()])
            .inc();
    }

    /// Storms detected so far of `storm_type` (what `gateway replay` reports).
    pub fn storms_detected(&self, storm_type: StormType) -> u64 {
        self.storms_detected
            .with_label_values(&[storm_type.as_str()])
            .get()
    }

    /// One storm signal was sampled out.
    pub fn sampled_out(&self) {
        self.storm_sampled_out.inc();
    }

    /// The storm windows open now, and the signals their buffers hold.
    pub fn storm_windows(&self, open: usize, buffered: usize) {
        self.storm_windows_open.set(gauge_value(open));
        self.storm_buffered_signals.set(gauge_value(buffered));
    }

    /// One write succeeded after `elapsed`, retries included.
    pub fn written(&self, written: Written, elapsed: Duration) {
        self.remediation_write_duration
            .observe(elapsed.as_secs_f64());
        match written {
            Written::Created => self.remediations_created.inc(),
            Written::Updated => self.remediations_updated.inc(),
            Written::AlreadyExisted => self.remediations_already_existed.inc(),
            // Left as it was: a later snapshot was there first. Nothing was written.
            Written::Superseded => {}
        }
    }

    /// One write failed for good after `elapsed`.
    pub fn write_failed(&self, reason: GiveUpReason, elapsed: Duration) {
        self.remediation_write_duration
            .observe(elapsed.as_secs_f64());
        self.remediation_write_errors
            .with_label_values(&[gave_up_label(reason)])
            .inc();
    }

    /// One write attempt failed (retried or not).
    pub fn attempt_failed(&self, failure: &WriteFailure) {
        self.remediation_attempt_failures
            .with_label_values(&[failure.as_str()])
            .inc();
    }

    /// A failed write attempt is tried again.
    pub fn write_retried(&self) {
        self.remediation_write_retries.inc();
    }

    /// Background writes waiting to be retried now.
    pub fn pending_writes(&self, pending: usize) {
        self.remediation_pending_writes.set(gauge_value(pending));
    }

    /// What became of one occurrence-count update.
    pub fn occurrence_update(&self, update: OccurrenceUpdate) {
        self.remediation_occurrence_updates
            .with_label_values(&[update.as_str()])
            .inc();
    }

    /// A signal was answered 503 so that the sender resends it.
    pub fn unrecorded(&self, reason: NotRecorded) {
        self.signals_unrecorded
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// A signal was answered `rejected`.
    pub fn rejected(&self, reason: Rejected) {
        self.signals_rejected
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// A background write was given up for good.
    pub fn dead_lettered(&self) {
        self.dead_letters.inc();
    }

    /// A request's processing panicked.
    pub fn request_panicked(&self) {
        self.request_panics.inc();
    }

    /// The dedup store failed a call.
    pub fn dedup_store_failed(&self) {
        self.dedup_store_errors.inc();
    }

    /// Redis answered (or stopped answering) its health check.
    pub fn redis_available(&self, up: bool) {
        self.redis_available.set(i64::from(up));
    }

    /// One Kubernetes API request: its RBAC verb, its status code (`timeout`, `connection` when
    /// none) and how long it took.
    pub fn kube_api_call(&self, verb: &str, code: &str, elapsed: Duration) {
        self.kube_api_requests
            .with_label_values(&[verb, code])
            .inc();
        self.kube_api_request_duration
            .with_label_values(&[verb])
            .observe(elapsed.as_secs_f64());
    }

    /// One HTTP request: `route` is the matched route (`unmatched` for unknown paths), never
    /// the raw path, so that unknown paths do not grow the label set.
    pub fn http_request(&self, method: HttpMethod, route: &str, status: u16, elapsed: Duration) {
        self.http_request_duration
            .with_label_values(&[method.as_str(), route, &status.to_string()])
            .observe(elapsed.as_secs_f64());
    }

    /// A request or connection was answered `503` for load.
    pub fn http_shed(&self, reason: Shed) {
        self.http_shed.with_label_values(&[reason.as_str()]).inc();
    }

    /// The HTTP connections open now.
    pub fn http_connections_open(&self, open: usize) {
        self.http_connections_open.set(gauge_value(open));
    }

    /// An idle connection was closed to make room for a new one.
    pub fn http_connection_evicted(&self) {
        self.http_connections_evicted.inc();
    }

    /// A background round panicked; the ticker carries on.
    pub fn ticker_restarted(&self) {
        self.ticker_restarts.inc();
    }

    /// Whether the gateway reports ready.
    pub fn ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Shows the settings in force at start-up (generation and content hash per type).
    pub fn config_loaded(&self, statuses: &[ConfigStatus]) {
        for status in statuses {
            let kind = status.kind.as_str();
            self.config_generation
                .with_label_values(&[kind])
                .set(gauge_value(status.generation));
            self.set_hash(status.kind, &status.hash);
            for result in ["success", "error"] {
                self.config_reload_total.with_label_values(&[kind, result]);
            }
        }
    }

    /// Counts one reload attempt.
    pub fn config_reloaded(&self, record: &ReloadRecord) {
        let kind = record.kind.as_str();
        self.config_reload_duration
            .with_label_values(&[kind])
            .observe(record.duration.as_secs_f64());
        match record.result {
            ReloadResult::Applied => {
                self.config_reload_total
                    .with_label_values(&[kind, "success"])
                    .inc();
                self.config_reload_last_success
                    .with_label_values(&[kind])
                    .set(record.at.as_millis() as f64 / 1000.0);
                self.config_generation
                    .with_label_values(&[kind])
                    .set(gauge_value(record.generation));
                self.set_hash(record.kind, &record.hash);
            }
            ReloadResult::Rejected(_) => self
                .config_reload_total
                .with_label_values(&[kind, "error"])
                .inc(),
        }
    }

    fn set_hash(&self, kind: ConfigKind, hash: &str) {
        let label = hash_label(hash).to_owned();
        let mut hashes = self.config_hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = hashes.insert(kind, label.clone()) {
            let _ = self.config_info.remove_label_values(&[kind.as_str(), &old]);
        }
        self.config_info
            .with_label_values(&[kind.as_str(), &label])
            .set(1);
    }
}
