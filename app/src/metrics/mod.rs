//! The gateway's Prometheus metrics, in a registry of their own (tests build as many as they
//! like). Callers say what happened (`metrics.unrecorded(NotRecorded::DedupStore)`); every label
//! value comes from a typed enum, so the label sets are closed and spelled in one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gateway_ports::{ConfigKind, WriteFailure};
use gateway_retry::GiveUpReason;
use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::outcome::{NotRecorded, Rejected};

mod auth;
mod record;
mod tls;

pub use tls::{HandshakeFailure, TlsReload};

pub use auth::{AUTH_MODES, TokenFileRole};

/// An HTTP method as a label: the methods the gateway serves, every other one `other`, so a
/// client cannot grow the label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `HEAD`
    Head,
    /// Any other method.
    Other,
}

impl HttpMethod {
    /// The label of `method`.
    pub fn of(method: &axum::http::Method) -> Self {
        match *method {
            axum::http::Method::GET => HttpMethod::Get,
            axum::http::Method::POST => HttpMethod::Post,
            axum::http::Method::HEAD => HttpMethod::Head,
            _ => HttpMethod::Other,
        }
    }

    const fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Head => "HEAD",
            HttpMethod::Other => "other",
        }
    }
}

/// Why the server answered `503` for load, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// A signal request beyond `--max-concurrent-requests` (`concurrency`).
    Concurrency,
    /// A request not answered within `--request-timeout` (`request_timeout`).
    Timeout,
    /// A connection beyond `--max-connections` with every open one busy (`connections`).
    Connections,
}

impl Shed {
    /// Every reason, so that each series exists from the start.
    pub const ALL: [Shed; 3] = [Shed::Concurrency, Shed::Timeout, Shed::Connections];

    const fn as_str(self) -> &'static str {
        match self {
            Shed::Concurrency => "concurrency",
            Shed::Timeout => "request_timeout",
            Shed::Connections => "connections",
        }
    }
}

/// Why a write stopped being retried, as a label: `permanent`, or `exhausted` (attempts or time
/// used up).
const fn gave_up_label(reason: GiveUpReason) -> &'static str {
    match reason {
        GiveUpReason::Permanent => "permanent",
        GiveUpReason::Exhausted { .. } | GiveUpReason::OutOfTime { .. } => "exhausted",
    }
}

/// Every metric the gateway exports. Cheap to clone (one reference count; the connection and
/// request paths clone it): clones share the series.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Instruments>);

impl std::ops::Deref for Metrics {
    type Target = Instruments;
    fn deref(&self) -> &Instruments {
        &self.0
    }
}

/// The metrics themselves, behind [`Metrics`].
#[derive(Debug)]
pub struct Instruments {
    registry: Registry,
    signals_received: IntCounterVec,
    signals_deduplicated: IntCounter,
    signal_outcomes: IntCounterVec,
    storms_detected: IntCounterVec,
    storm_sampled_out: IntCounter,
    storm_windows_open: IntGauge,
    storm_buffered_signals: IntGauge,
    remediations_created: IntCounter,
    remediations_updated: IntCounter,
    remediations_already_existed: IntCounter,
    remediation_write_errors: IntCounterVec,
    remediation_attempt_failures: IntCounterVec,
    remediation_occurrence_updates: IntCounterVec,
    remediation_write_retries: IntCounter,
    remediation_pending_writes: IntGauge,
    remediation_write_duration: Histogram,
    kube_api_requests: IntCounterVec,
    kube_api_request_duration: HistogramVec,
    dedup_store_errors: IntCounter,
    signals_unrecorded: IntCounterVec,
    signals_rejected: IntCounterVec,
    dead_letters: IntCounter,
    request_panics: IntCounter,
    redis_available: IntGauge,
    http_request_duration: HistogramVec,
    config_reload_total: IntCounterVec,
    config_reload_duration: HistogramVec,
    config_reload_last_success: GaugeVec,
    config_generation: IntGaugeVec,
    config_info: IntGaugeVec,
    /// The hash label set in `config_info`, per type, so a change can retire the old one.
    config_hashes: Arc<Mutex<HashMap<ConfigKind, String>>>,
    ready: IntGauge,
    http_shed: IntCounterVec,
    http_connections_open: IntGauge,
    http_connections_evicted: IntCounter,
    ticker_restarts: IntCounter,
    auth: auth::AuthMetrics,
    tls: tls::TlsMetrics,
}

/// Registers a new metric and hands it back: the one way a metric is made. Names, help texts and
/// labels are constants of this module, so a failure here is a programming error that every test
/// building a `Metrics` catches.
#[allow(clippy::expect_used)]
fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.expect("a valid metric name, help and labels");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

impl Metrics {
    /// A fresh registry holding every gateway metric, the series that alerts compute rates of
    /// present from the start at zero.
    pub fn new() -> Self {
        let r = Registry::new();
        let build_info = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "gateway_build_info",
                    "Build information of the running gateway",
                ),
                &["version"],
            ),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let metrics = Instruments {
            signals_received: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_signals_received_total",
                        "Signals received, by source and severity",
                    ),
                    &["source", "severity"],
                ),
            ),
            signals_deduplicated: register(
                &r,
                IntCounter::new(
                    "gateway_signals_deduplicated_total",
                    "Signals found to be duplicates within their TTL window",
                ),
            ),
            signal_outcomes: register(
                &r,
                IntCounterVec::new(
                    Opts::new("gateway_signal_outcomes_total", "Outcomes given to signals"),
                    &["outcome"],
                ),
            ),
            storms_detected: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_signal_storms_detected_total",
                        "Alert storms detected (aggregation windows opened), by storm type",
                    ),
                    &["storm_type"],
                ),
            ),
            storm_sampled_out: register(
                &r,
                IntCounter::new(
                    "gateway_storm_signals_sampled_out_total",
                    "Storm signals sampled out: counted in their aggregate, resource not listed",
                ),
            ),
            storm_windows_open: register(
                &r,
                IntGauge::new(
                    "gateway_storm_windows_open",
                    "Storm aggregation windows open now",
                ),
            ),
            storm_buffered_signals: register(
                &r,
                IntGauge::new(
                    "gateway_storm_buffered_signals",
                    "Signals held in storm buffers now",
                ),
            ),
            remediations_created: register(
                &r,
                IntCounter::new(
                    "gateway_remediation_requests_created_total",
                    "RemediationRequests created",
                ),
            ),
            remediations_updated: register(
                &r,
                IntCounter::new(
                    "gateway_remediation_requests_updated_total",
                    "RemediationRequests brought up to date (aggregates growing or closing)",
                ),
            ),
            remediations_already_existed: register(
                &r,
                IntCounter::new(
                    "gateway_remediation_requests_already_existed_total",
                    "Creates that found their RemediationRequest already there",
                ),
            ),
            remediation_write_errors: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_remediation_write_errors_total",
                        "RemediationRequest writes that failed for good, by reason",
                    ),
                    &["reason"],
                ),
            ),
            remediation_attempt_failures: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_remediation_write_attempt_failures_total",
                        "Failed RemediationRequest write attempts, by class",
                    ),
                    &["class"],
                ),
            ),
            remediation_occurrence_updates: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_remediation_occurrence_updates_total",
                        "Occurrence-count updates of existing RemediationRequests, by result",
                    ),
                    &["result"],
                ),
            ),
            remediation_write_retries: register(
                &r,
                IntCounter::new(
                    "gateway_remediation_write_retries_total",
                    "Retries of RemediationRequest writes",
                ),
            ),
            remediation_pending_writes: register(
                &r,
                IntGauge::new(
                    "gateway_remediation_pending_writes",
                    "RemediationRequest writes waiting to be retried in the background",
                ),
            ),
            remediation_write_duration: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "gateway_remediation_write_duration_seconds",
                        "Time to write one RemediationRequest, retries included",
                    )
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0,
                    ]),
                ),
            ),
            kube_api_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_kube_api_requests_total",
                        "Kubernetes API requests, by verb and status code",
                    ),
                    &["verb", "code"],
                ),
            ),
            kube_api_request_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gateway_kube_api_request_duration_seconds",
                        "Kubernetes API request latency, by verb",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                    &["verb"],
                ),
            ),
            dedup_store_errors: register(
                &r,
                IntCounter::new("gateway_dedup_store_errors_total", "Dedup store failures"),
            ),
            signals_rejected: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_signals_rejected_total",
                        "Signals answered `rejected` (refused for good, not to be resent), by reason",
                    ),
                    &["reason"],
                ),
            ),
            dead_letters: register(
                &r,
                IntCounter::new(
                    "gateway_dead_letters_total",
                    "Background RemediationRequest writes given up for good (see /debug/dead-letters)",
                ),
            ),
            request_panics: register(
                &r,
                IntCounter::new(
                    "gateway_request_panics_total",
                    "Requests whose processing panicked (answered 500, their dedup records released)",
                ),
            ),
            signals_unrecorded: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_signals_unrecorded_total",
                        "Signals answered 503 so that the sender resends them, by reason",
                    ),
                    &["reason"],
                ),
            ),
            redis_available: register(
                &r,
                IntGauge::new(
                    "gateway_redis_available",
                    "1 while Redis answers its health check",
                ),
            ),
            http_request_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gateway_http_request_duration_seconds",
                        "HTTP request duration, by method, route and status",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ]),
                    &["method", "route", "status"],
                ),
            ),
            config_reload_total: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_config_reload_total",
                        "Total number of configuration reloads",
                    ),
                    &["config_type", "result"],
                ),
            ),
            config_reload_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gateway_config_reload_duration_seconds",
                        "Duration of configuration reload operations",
                    )
                    .buckets(vec![0.001, 0.01, 0.1, 1.0]),
                    &["config_type"],
                ),
            ),
            config_reload_last_success: register(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "gateway_config_reload_last_success_timestamp",
                        "Timestamp of last successful config reload",
                    ),
                    &["config_type"],
                ),
            ),
            config_generation: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "gateway_config_generation",
                        "Replacements of each settings type since start",
                    ),
                    &["config_type"],
                ),
            ),
            config_info: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "gateway_config_info",
                        "1 for the content hash in force of each settings type",
                    ),
                    &["config_type", "hash"],
                ),
            ),
            config_hashes: Arc::default(),
            ready: register(
                &r,
                IntGauge::new("gateway_ready", "1 while the gateway reports ready"),
            ),
            http_shed: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_http_shed_total",
                        "Requests and connections answered 503 for load (so that the sender \
                         resends), by reason",
                    ),
                    &["reason"],
                ),
            ),
            http_connections_open: register(
                &r,
                IntGauge::new("gateway_http_connections_open", "HTTP connections open now"),
            ),
            http_connections_evicted: register(
                &r,
                IntCounter::new(
                    "gateway_http_connections_evicted_total",
                    "Idle HTTP connections closed to make room for a new one at --max-connections",
                ),
            ),
            ticker_restarts: register(
                &r,
                IntCounter::new(
                    "gateway_ticker_restarts_total",
                    "Background rounds that panicked (the ticker carries on with the next)",
                ),
            ),
            auth: auth::AuthMetrics::new(&r),
            tls: tls::TlsMetrics::register(&r),
            registry: r,
        };
        for reason in [
            GiveUpReason::Permanent,
            GiveUpReason::Exhausted { attempts: 0 },
        ] {
            metrics
                .remediation_write_errors
                .with_label_values(&[gave_up_label(reason)]);
        }
        for class in WriteFailure::LABELS {
            metrics
                .remediation_attempt_failures
                .with_label_values(&[class]);
        }
        for reason in NotRecorded::ALL {
            metrics
                .signals_unrecorded
                .with_label_values(&[reason.as_str()]);
        }
        for reason in Rejected::ALL {
            metrics
                .signals_rejected
                .with_label_values(&[reason.as_str()]);
        }
        for reason in Shed::ALL {
            metrics.http_shed.with_label_values(&[reason.as_str()]);
        }
        Metrics(Arc::new(metrics))
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn gauge_value(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
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
