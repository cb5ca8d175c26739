//! Support for the integration tests: building a gateway on real adapters in a temporary
//! directory, payload builders, and fault-injecting wrappers around real adapters.

#![allow(missing_debug_implementations)] // test support holding trait objects

pub mod alert_load;
pub mod alertmanager;
pub mod apiserver;
pub mod certs;
pub mod chaos;
pub mod kubelet;
pub mod prometheus;
pub mod redis;
pub mod redis_topology;
pub mod served;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gateway::gateway::{Gateway, Parts, StormStores, WriteTiming};
use gateway::metrics::Metrics;
use gateway_adapter_directory::DirectoryWriter;
use gateway_adapter_memory::{
    MemoryDedupStore, MemoryStormCounter, MemoryWindowStore, StaticConfigSource,
};
use gateway_ports::test_util::{self, ManualClock};
use gateway_ports::{
    Clock, ConfigSource, DedupStore, RemediationRequest, RemediationWriter, WriteError,
    WriteFailure, Written,
};
use gateway_storm::WindowCapacity;
use serde_json::{Value, json};

/// A gateway on the embedded adapters, writing into a temporary directory, on a manual clock.
pub struct TestGateway {
    /// The pipeline.
    pub gateway: Arc<Gateway>,
    /// The clock, to move time without sleeping.
    pub clock: Arc<ManualClock>,
    /// The settings, to change them as a reload would.
    pub config: Arc<StaticConfigSource>,
    /// Where RemediationRequests are written.
    pub dir: tempfile::TempDir,
    /// The writer's fault switch.
    pub faults: Arc<FaultyWriter>,
}

impl TestGateway {
    /// Default settings, 1 MiB body limit.
    pub fn new() -> Self {
        Self::with_config(StaticConfigSource::default())
    }

    /// The given settings.
    pub fn with_config(config: StaticConfigSource) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(test_util::T0));
        let config = Arc::new(config);
        let faults = Arc::new(FaultyWriter::new(Arc::new(
            DirectoryWriter::new(dir.path()).expect("dir writer"),
        )));
        let store: Arc<dyn DedupStore> =
            Arc::new(MemoryDedupStore::new(100_000.try_into().expect("nonzero")));
        let gateway = Arc::new(Gateway::new(Parts {
            config: config.clone() as Arc<dyn ConfigSource>,
            clock: clock.clone() as Arc<dyn Clock>,
            dedup_store: store,
            writer: faults.clone() as Arc<dyn RemediationWriter>,
            storms: StormStores {
                counter: Arc::new(MemoryStormCounter::default()),
                windows: Arc::new(MemoryWindowStore::new(clock.clone() as Arc<dyn Clock>)),
                capacity: WindowCapacity::default(),
                max_buffer_bytes: gateway_storm::StormDetector::DEFAULT_MAX_BUFFER_BYTES,
                shared: false,
            },
            outbox: Arc::new(gateway_adapter_memory::MemoryOutbox::default()),
            max_dead_letters: 100,
            limits: gateway::input_limits::InputLimits::default(),
            metrics: Metrics::new(),
            fallback_namespace: "kubernaut-system".to_owned(),
            timing: WriteTiming::default(),
        }));
        TestGateway {
            gateway,
            clock,
            config,
            dir,
            faults,
        }
    }

    /// The HTTP state over this gateway (its settings are not reloadable; `--auth none`).
    pub fn state(&self) -> gateway::http::AppState {
        gateway::http::AppState {
            gateway: self.gateway.clone(),
            control: None,
            auth: gateway::auth::Auth::none(self.gateway.metrics()),
        }
    }

    /// The router over this gateway.
    pub fn router(&self) -> axum::Router {
        gateway::http::router(self.state(), &gateway::http::RequestLimits::default())
    }

    /// The RemediationRequest documents written, parsed, sorted by name.
    pub fn remediations(&self) -> Vec<Value> {
        read_remediations(self.dir.path())
    }
}

impl Default for TestGateway {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses every `*.yaml` in `dir` (sorted by file name).
pub fn read_remediations(dir: &Path) -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    paths.sort();
    paths
        .iter()
        .map(|p| {
            serde_norway::from_str(&std::fs::read_to_string(p).expect("readable"))
                .expect("valid YAML")
        })
        .collect()
}

/// A writer that fails its next `n` calls with a chosen failure, then delegates to a real one.
#[derive(Debug)]
pub struct FaultyWriter {
    inner: Arc<dyn RemediationWriter>,
    failures_left: AtomicU32,
    failure: std::sync::Mutex<WriteFailure>,
    delay_ms: AtomicU32,
    panics_left: AtomicU32,
}

impl FaultyWriter {
    /// Delegates to `inner` until told to fail.
    pub fn new(inner: Arc<dyn RemediationWriter>) -> Self {
        FaultyWriter {
            inner,
            failures_left: AtomicU32::new(0),
            failure: std::sync::Mutex::new(WriteFailure::Unavailable { retry_after: None }),
            delay_ms: AtomicU32::new(0),
            panics_left: AtomicU32::new(0),
        }
    }

    /// Panics in the next `n` calls (a bug in a sink, as the gateway must survive one).
    pub fn panic_next(&self, n: u32) {
        self.panics_left.store(n, Ordering::SeqCst);
    }

    /// Fails the next `n` calls with `failure`.
    pub fn fail_next(&self, n: u32, failure: WriteFailure) {
        *self.failure.lock().expect("lock") = failure;
        self.failures_left.store(n, Ordering::SeqCst);
    }

    /// Makes every call take `d` first.
    pub fn delay(&self, d: Duration) {
        self.delay_ms.store(
            u32::try_from(d.as_millis()).unwrap_or(u32::MAX),
            Ordering::SeqCst,
        );
    }

    async fn gate(&self) -> Result<(), WriteError> {
        let panicking = self
            .panics_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        assert!(!panicking, "injected panic in the sink");
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            let failure = *self.failure.lock().expect("lock");
            return Err(WriteError::new(failure, "injected failure"));
        }
        Ok(())
    }
}

#[async_trait]
impl RemediationWriter for FaultyWriter {
    async fn create(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
        self.gate().await?;
        self.inner.create(request).await
    }
    async fn update(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
        self.gate().await?;
        self.inner.update(request).await
    }
    async fn record_occurrences(
        &self,
        occurrences: &gateway_ports::Occurrences,
    ) -> Result<Written, WriteError> {
        self.gate().await?;
        self.inner.record_occurrences(occurrences).await
    }
    async fn check(&self) -> Result<(), WriteError> {
        self.inner.check().await
    }
}

/// One Alertmanager alert.
pub fn alert(name: &str, namespace: &str, pod: &str, status: &str) -> Value {
    json!({
        "status": status,
        "labels": { "alertname": name, "namespace": namespace, "pod": pod, "severity": "critical" },
        "annotations": { "summary": format!("{name} on {pod}") },
        "startsAt": "2025-11-25T17:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "0123456789abcdef"
    })
}

/// An Alertmanager webhook (version 4) carrying `alerts`.
pub fn webhook(alerts: Vec<Value>) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"x\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "kubernaut",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts
    })
}

/// The sample webhook shipped with the signal crate (also used by the README).
pub const SAMPLE_WEBHOOK: &[u8] =
    include_bytes!("../../domain/signal/testdata/alertmanager-webhook.json");
/// The sample Kubernetes event shipped with the signal crate.
pub const SAMPLE_EVENT: &[u8] =
    include_bytes!("../../domain/signal/testdata/kubernetes-event.json");
