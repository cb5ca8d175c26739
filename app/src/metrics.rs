//! The gateway's Prometheus metrics, in a registry of their own (tests build as many as they like).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gateway_ports::{ConfigKind, ConfigStatus, ReloadRecord, ReloadResult};
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the gateway exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Signals received, by source and severity.
    pub signals_received: IntCounterVec,
    /// Signals found to be duplicates within their TTL window.
    pub signals_deduplicated: IntCounter,
    /// Outcomes given to signals (created, duplicate, buffered, aggregated, sampled_out, …).
    pub signal_outcomes: IntCounterVec,
    /// Storms detected (aggregation windows opened), by storm type.
    pub storms_detected: IntCounterVec,
    /// Storm signals sampled out: counted in their aggregate, resource not listed.
    pub storm_sampled_out: IntCounter,
    /// Aggregation windows open now.
    pub storm_windows_open: IntGauge,
    /// Signals held in storm buffers now.
    pub storm_buffered_signals: IntGauge,
    /// RemediationRequests created.
    pub remediations_created: IntCounter,
    /// RemediationRequests brought up to date (aggregates growing or closing).
    pub remediations_updated: IntCounter,
    /// Writes that found their resource already there (a second line of dedup).
    pub remediations_already_existed: IntCounter,
    /// Writes that failed for good, by reason (`permanent`, `exhausted`: attempts or time used up).
    pub remediation_write_errors: IntCounterVec,
    /// Failed write attempts, by class (`WriteFailure::as_str`: `throttled`, `unavailable`, `timeout`,
    /// `connection`, …): every attempt, retried or not.
    pub remediation_attempt_failures: IntCounterVec,
    /// Occurrence-count updates of existing resources, by result (`written`, `coalesced`: folded
    /// into a later write, `absent`: no such resource, `failed`: kept for the next flush).
    pub remediation_occurrence_updates: IntCounterVec,
    /// Kubernetes API requests, by verb and status code (`timeout`, `connection` when none).
    pub kube_api_requests: IntCounterVec,
    /// Kubernetes API request latency, by verb.
    pub kube_api_request_duration: HistogramVec,
    /// Retries of RemediationRequest writes.
    pub remediation_write_retries: IntCounter,
    /// Writes waiting to be retried in the background (aggregates, flushed buffers).
    pub remediation_pending_writes: IntGauge,
    /// Dedup store failures.
    pub dedup_store_errors: IntCounter,
    /// Signals answered 503 (not recorded: the sender resends), by reason.
    pub signals_unrecorded: IntCounterVec,
    /// 1 while Redis answers its health check (0 without Redis configured, or during an outage).
    pub redis_available: IntGauge,
    /// HTTP request durations, by method, route and status.
    pub http_request_duration: HistogramVec,
    /// Time spent writing one RemediationRequest, retries included.
    pub remediation_write_duration: Histogram,
    /// Configuration reload attempts, by settings type and result (`success`, `error`).
    pub config_reload_total: IntCounterVec,
    /// Duration of reload attempts, by settings type.
    pub config_reload_duration: HistogramVec,
    /// Unix time of the last successful reload, by settings type.
    pub config_reload_last_success: GaugeVec,
    /// Replacements of each settings type since start.
    pub config_generation: IntGaugeVec,
    /// 1 for the content hash in force of each settings type.
    pub config_info: IntGaugeVec,
    /// The hash label set in `config_info`, per type, so a change can retire the old one.
    config_hashes: Arc<Mutex<HashMap<ConfigKind, String>>>,
    /// 1 while the gateway reports ready.
    pub ready: IntGauge,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric name");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric name");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    /// A fresh registry holding every gateway metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "gateway_http_request_duration_seconds",
                "HTTP request duration, by method, route and status",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        r.register(Box::new(http_request_duration.clone()))
            .expect("metric registered once");
        let remediation_write_duration = Histogram::with_opts(
            HistogramOpts::new(
                "gateway_remediation_write_duration_seconds",
                "Time to write one RemediationRequest, retries included",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(remediation_write_duration.clone()))
            .expect("metric registered once");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "gateway_build_info",
                "Build information of the running gateway",
            ),
            &["version"],
        )
        .expect("valid metric");
        r.register(Box::new(build_info.clone()))
            .expect("metric registered once");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let kube_api_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "gateway_kube_api_request_duration_seconds",
                "Kubernetes API request latency, by verb",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["verb"],
        )
        .expect("valid metric");
        r.register(Box::new(kube_api_request_duration.clone()))
            .expect("metric registered once");
        let config_reload_duration = HistogramVec::new(
            HistogramOpts::new(
                "gateway_config_reload_duration_seconds",
                "Duration of configuration reload operations",
            )
            .buckets(vec![0.001, 0.01, 0.1, 1.0]),
            &["config_type"],
        )
        .expect("valid metric");
        r.register(Box::new(config_reload_duration.clone()))
            .expect("metric registered once");
        let config_reload_last_success = GaugeVec::new(
            Opts::new(
                "gateway_config_reload_last_success_timestamp",
                "Timestamp of last successful config reload",
            ),
            &["config_type"],
        )
        .expect("valid metric");
        r.register(Box::new(config_reload_last_success.clone()))
            .expect("metric registered once");
        let config_generation = IntGaugeVec::new(
            Opts::new(
                "gateway_config_generation",
                "Replacements of each settings type since start",
            ),
            &["config_type"],
        )
        .expect("valid metric");
        r.register(Box::new(config_generation.clone()))
            .expect("metric registered once");
        let config_info = IntGaugeVec::new(
            Opts::new(
                "gateway_config_info",
                "1 for the content hash in force of each settings type",
            ),
            &["config_type", "hash"],
        )
        .expect("valid metric");
        r.register(Box::new(config_info.clone()))
            .expect("metric registered once");

        let metrics = Metrics {
            config_reload_total: counter_vec(
                &r,
                "gateway_config_reload_total",
                "Total number of configuration reloads",
                &["config_type", "result"],
            ),
            config_reload_duration,
            config_reload_last_success,
            config_generation,
            config_info,
            config_hashes: Arc::default(),
            signals_received: counter_vec(
                &r,
                "gateway_signals_received_total",
                "Signals received, by source and severity",
                &["source", "severity"],
            ),
            signals_deduplicated: counter(
                &r,
                "gateway_signals_deduplicated_total",
                "Signals found to be duplicates within their TTL window",
            ),
            signal_outcomes: counter_vec(
                &r,
                "gateway_signal_outcomes_total",
                "Outcomes given to signals",
                &["outcome"],
            ),
            storms_detected: counter_vec(
                &r,
                "gateway_signal_storms_detected_total",
                "Alert storms detected (aggregation windows opened), by storm type",
                &["storm_type"],
            ),
            storm_sampled_out: counter(
                &r,
                "gateway_storm_signals_sampled_out_total",
                "Storm signals sampled out: counted in their aggregate, resource not listed",
            ),
            storm_windows_open: gauge(
                &r,
                "gateway_storm_windows_open",
                "Storm aggregation windows open now",
            ),
            storm_buffered_signals: gauge(
                &r,
                "gateway_storm_buffered_signals",
                "Signals held in storm buffers now",
            ),
            remediations_created: counter(
                &r,
                "gateway_remediation_requests_created_total",
                "RemediationRequests created",
            ),
            remediations_updated: counter(
                &r,
                "gateway_remediation_requests_updated_total",
                "RemediationRequests brought up to date (aggregates growing or closing)",
            ),
            remediations_already_existed: counter(
                &r,
                "gateway_remediation_requests_already_existed_total",
                "Creates that found their RemediationRequest already there",
            ),
            remediation_write_errors: counter_vec(
                &r,
                "gateway_remediation_write_errors_total",
                "RemediationRequest writes that failed for good, by reason",
                &["reason"],
            ),
            remediation_write_retries: counter(
                &r,
                "gateway_remediation_write_retries_total",
                "Retries of RemediationRequest writes",
            ),
            remediation_pending_writes: gauge(
                &r,
                "gateway_remediation_pending_writes",
                "RemediationRequest writes waiting to be retried in the background",
            ),
            signals_unrecorded: counter_vec(
                &r,
                "gateway_signals_unrecorded_total",
                "Signals answered 503 so that the sender resends them, by reason",
                &["reason"],
            ),
            redis_available: gauge(
                &r,
                "gateway_redis_available",
                "1 while Redis answers its health check",
            ),
            remediation_attempt_failures: counter_vec(
                &r,
                "gateway_remediation_write_attempt_failures_total",
                "Failed RemediationRequest write attempts, by class",
                &["class"],
            ),
            remediation_occurrence_updates: counter_vec(
                &r,
                "gateway_remediation_occurrence_updates_total",
                "Occurrence-count updates of existing RemediationRequests, by result",
                &["result"],
            ),
            kube_api_requests: counter_vec(
                &r,
                "gateway_kube_api_requests_total",
                "Kubernetes API requests, by verb and status code",
                &["verb", "code"],
            ),
            kube_api_request_duration,
            dedup_store_errors: counter(
                &r,
                "gateway_dedup_store_errors_total",
                "Dedup store failures",
            ),
            http_request_duration,
            remediation_write_duration,
            ready: gauge(&r, "gateway_ready", "1 while the gateway reports ready"),
            build_info,
            registry: r,
        };
        // Series that alerts compute rates of exist from the start, at zero.
        for reason in ["permanent", "exhausted"] {
            metrics
                .remediation_write_errors
                .with_label_values(&[reason]);
        }
        for class in FAILURE_CLASSES {
            metrics
                .remediation_attempt_failures
                .with_label_values(&[class]);
        }
        metrics
    }

    /// Counts one failed write attempt.
    pub fn observe_attempt_failure(&self, failure: &gateway_ports::WriteFailure) {
        self.remediation_attempt_failures
            .with_label_values(&[failure_class(failure)])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Shows the settings in force at start-up (generation and content hash per type).
    pub fn init_config(&self, statuses: &[ConfigStatus]) {
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
    pub fn observe_reload(&self, record: &ReloadRecord) {
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

    /// The registry, for adapters that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

const FAILURE_CLASSES: [&str; 8] = gateway_ports::WriteFailure::LABELS;

/// The metric class of a failed attempt.
fn failure_class(failure: &gateway_ports::WriteFailure) -> &'static str {
    failure.as_str()
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The hash label: a prefix is enough to tell versions apart; empty means the built-in defaults.
fn hash_label(hash: &str) -> &str {
    if hash.is_empty() {
        "defaults"
    } else {
        &hash[..hash.len().min(16)]
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
