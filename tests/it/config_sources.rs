//! The behaviour every settings source shares, as one suite ([`suite`]) run against each: the
//! config directory (real files, swapped the way the kubelet swaps them: [`KubeletDir`]), the
//! ConfigMap read and watched through the Kubernetes API (the API-server emulator, changed
//! through the kube client as `kubectl` would), and documents held in memory.
//!
//! Each case starts a fresh source on the same documents, changes them the way the source's world
//! does, and waits (polling, with a deadline) for the reload records it expects; then it checks
//! what every source must show for them: one audit line per record (the tracing output,
//! captured) and the app's reload metrics (`Metrics::config_reloaded`, fed by `on_reload`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use gateway::config_source::{
    ConfigMapDocuments, ConfigMapWatching, configmap_source, watch_configmap,
};
use gateway::metrics::Metrics;
use gateway_adapter_file_config::{
    DirSource, DocumentNames, Documents, MemorySource, WatchHandle, WatchOptions,
};
use gateway_adapter_memory::SystemClock;
use gateway_ports::{
    ConfigControl, ConfigKind, ConfigSource, ConfigStatus, ReloadRecord, ReloadResult,
};
use gateway_tests::apiserver::{ApiServer, Resource};
use gateway_tests::kubelet::KubeletDir;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long a case waits for what it expects before it fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long a case waits to show that nothing happens.
const QUIET: Duration = Duration::from_millis(1500);

const STORM: &str = "rate_threshold: 7\n";
const DEDUP: &str = "ttl: 10m\n";
const RETRY: &str = "max_attempts: 3\n";
const SECURITY: &str = "allowed_namespaces: [team-*, production]\n";

/// The documents every case starts from.
fn seed() -> Vec<(ConfigKind, String)> {
    with_storm(STORM)
}

fn with_storm(storm: &str) -> Vec<(ConfigKind, String)> {
    vec![
        (ConfigKind::Storm, storm.to_owned()),
        (ConfigKind::Dedup, DEDUP.to_owned()),
        (ConfigKind::Retry, RETRY.to_owned()),
        (ConfigKind::Security, SECURITY.to_owned()),
    ]
}

fn with_security(security: &str) -> Vec<(ConfigKind, String)> {
    let mut documents = seed();
    documents.retain(|(k, _)| *k != ConfigKind::Security);
    documents.push((ConfigKind::Security, security.to_owned()));
    documents
}

fn without(kind: ConfigKind) -> Vec<(ConfigKind, String)> {
    seed().into_iter().filter(|(k, _)| *k != kind).collect()
}

/// A name no other test's source uses: audit lines are told apart by their document names.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

// --- the suite ----------------------------------------------------------------------------------

/// The world around one source: how its documents change there.
#[async_trait]
trait World: Send + Sync {
    /// The documents become exactly `documents` (the others are removed); a container removed
    /// by [`World::remove_all`] comes back.
    async fn put(&self, documents: &[(ConfigKind, String)]);
    /// The documents are written again with identical content, as this world can do it.
    async fn rewrite_identically(&self);
    /// The container (directory, ConfigMap, the documents held) goes away.
    async fn remove_all(&self);
}

/// A source under test, its world, and what it reported.
struct Rig {
    settings: Arc<dyn ConfigSource>,
    control: Arc<dyn ConfigControl>,
    names: DocumentNames,
    world: Box<dyn World>,
    metrics: Metrics,
    records: Arc<Mutex<Vec<ReloadRecord>>>,
    /// The status at start-up.
    initial: Vec<ConfigStatus>,
}

impl Rig {
    /// Observes `source` as the app does: metrics from its status and every reload record.
    fn new<S: ConfigSource + ConfigControl + 'static>(
        source: Arc<S>,
        names: DocumentNames,
        world: impl World + 'static,
    ) -> Rig {
        let metrics = Metrics::new();
        let initial = source.status();
        metrics.config_loaded(&initial);
        let observed = metrics.clone();
        source.on_reload(Box::new(move |record| observed.config_reloaded(record)));
        let records = Arc::new(Mutex::new(Vec::new()));
        let seen = records.clone();
        source.on_reload(Box::new(move |record| {
            seen.lock().unwrap().push(record.clone())
        }));
        Rig {
            settings: source.clone(),
            control: source,
            names,
            world: Box::new(world),
            metrics,
            records,
            initial,
        }
    }

    fn rate(&self) -> u32 {
        self.settings.storm().rate_threshold.get()
    }

    fn generations(&self) -> [u64; 4] {
        ConfigKind::ALL.map(|kind| self.settings.generation(kind))
    }

    fn status(&self, kind: ConfigKind) -> ConfigStatus {
        let status = self.control.status().into_iter().find(|s| s.kind == kind);
        status.expect("a status for every kind")
    }

    fn initial(&self, kind: ConfigKind) -> &ConfigStatus {
        let status = self.initial.iter().find(|s| s.kind == kind);
        status.expect("a status for every kind")
    }

    fn all_records(&self) -> Vec<ReloadRecord> {
        self.records.lock().unwrap().clone()
    }

    fn records(&self, kind: ConfigKind) -> Vec<ReloadRecord> {
        let records = self.all_records();
        records.into_iter().filter(|r| r.kind == kind).collect()
    }

    fn rejected(&self, kind: ConfigKind) -> Vec<Vec<String>> {
        self.records(kind)
            .into_iter()
            .filter_map(|r| match r.result {
                ReloadResult::Rejected(lines) => Some(lines),
                ReloadResult::Applied => None,
            })
            .collect()
    }

    fn applied(&self, kind: ConfigKind) -> usize {
        let records = self.records(kind);
        records
            .iter()
            .filter(|r| r.result == ReloadResult::Applied)
            .count()
    }

    /// Waits until `done` holds; fails with what was expected and what the source reported.
    async fn until(&self, what: &str, done: impl Fn(&Rig) -> bool) {
        let reached = tokio::time::timeout(DEADLINE, async {
            while !done(self) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if reached.is_err() {
            panic!(
                "{}: not within {DEADLINE:?}: {what}\nrate_threshold = {}, generations = {:?}\nrecords = {:#?}",
                self.names.container(),
                self.rate(),
                self.generations(),
                self.all_records()
            );
        }
    }

    /// Every record has its one audit line, in order, saying what the record says; and the
    /// metrics count every record.
    fn check_audit_and_metrics(&self) {
        let records = self.all_records();
        let lines = audit::lines(&self.names);
        assert_eq!(
            lines.len(),
            records.len(),
            "one audit line per attempt:\n{lines:#?}\n{records:#?}"
        );
        for (line, record) in lines.iter().zip(&records) {
            let field = |name: &str| line.get(name).map(String::as_str);
            assert_eq!(field("audit"), Some("true"), "{line:?}");
            assert_eq!(field("config_type"), Some(record.kind.as_str()), "{line:?}");
            assert_eq!(
                field("file"),
                Some(self.names.document(record.kind)),
                "{line:?}"
            );
            assert_eq!(field("hash"), Some(record.hash.as_str()), "{line:?}");
            assert_eq!(
                field("generation"),
                Some(record.generation.to_string().as_str()),
                "{line:?}"
            );
            match &record.result {
                ReloadResult::Applied => {
                    assert_eq!(field("result"), Some("success"), "{line:?}");
                    assert!(field("changes").is_some(), "{line:?}");
                }
                ReloadResult::Rejected(errors) => {
                    assert_eq!(field("result"), Some("error"), "{line:?}");
                    assert_eq!(
                        field("errors"),
                        Some(errors.join("; ").as_str()),
                        "{line:?}"
                    );
                }
            }
        }

        let metrics = self.metrics.render();
        for kind in ConfigKind::ALL {
            let rejected = self.rejected(kind).len();
            let applied = self.applied(kind);
            let name = kind.as_str();
            for line in [
                format!(
                    "gateway_config_reload_total{{config_type=\"{name}\",result=\"success\"}} {applied}"
                ),
                format!(
                    "gateway_config_reload_total{{config_type=\"{name}\",result=\"error\"}} {rejected}"
                ),
                format!(
                    "gateway_config_generation{{config_type=\"{name}\"}} {}",
                    self.settings.generation(kind)
                ),
            ] {
                assert!(
                    metrics.lines().any(|l| l == line),
                    "missing {line}:\n{metrics}"
                );
            }
        }
    }
}

/// The suite. `fresh` starts a source on the documents given, in its world, watched.
async fn suite<F, Fut>(fresh: F)
where
    F: Fn(Vec<(ConfigKind, String)>) -> Fut,
    Fut: std::future::Future<Output = Rig>,
{
    audit::install();
    for case in [
        Case::InvalidRejected,
        Case::RevertApplied,
        Case::UnchangedSkipped,
        Case::RemovedRejected,
        Case::Security,
    ] {
        let rig = fresh(seed()).await;
        assert!(rig.all_records().is_empty(), "{:?}", rig.all_records());
        assert_eq!(rig.generations(), [0, 0, 0, 0]);
        match case {
            Case::InvalidRejected => {
                an_invalid_document_is_rejected_and_the_settings_stay(&rig).await
            }
            Case::RevertApplied => reverting_after_a_rejection_is_applied(&rig).await,
            Case::UnchangedSkipped => unchanged_documents_are_not_judged(&rig).await,
            Case::RemovedRejected => a_removed_document_or_container_is_rejected(&rig).await,
            Case::Security => {
                security_yaml_is_rejected_when_invalid_and_applied_when_valid(&rig).await
            }
        }
        rig.check_audit_and_metrics();
    }
}

#[derive(Debug, Clone, Copy)]
enum Case {
    InvalidRejected,
    RevertApplied,
    UnchangedSkipped,
    RemovedRejected,
    Security,
}

async fn security_yaml_is_rejected_when_invalid_and_applied_when_valid(rig: &Rig) {
    let allows = |rig: &Rig, ns: &str| rig.settings.security().allowed_namespaces.allows(ns);
    assert!(allows(rig, "team-a") && !allows(rig, "default"));
    rig.world
        .put(&with_security("allowed_namespaces: [team-*, Default]\n"))
        .await;
    rig.until("security.yaml rejected", |rig| {
        !rig.rejected(ConfigKind::Security).is_empty()
    })
    .await;
    let lines = rig.rejected(ConfigKind::Security).remove(0);
    let security = rig.names.document(ConfigKind::Security);
    assert!(
        lines[0].starts_with(&format!(
            "{security}: allowed_namespaces: entry 2 \"Default\" has 'D'"
        )),
        "the line names document, key and entry: {lines:?}"
    );
    assert!(
        allows(rig, "team-a") && !allows(rig, "default"),
        "the settings in force stay"
    );
    assert_eq!(rig.generations(), [0, 0, 0, 0]);

    rig.world
        .put(&with_security("allowed_namespaces: [team-*, default]\n"))
        .await;
    rig.until("the fixed security.yaml applied", |rig| {
        rig.applied(ConfigKind::Security) == 1
    })
    .await;
    assert!(allows(rig, "default") && allows(rig, "team-b"));
    assert_eq!(rig.generations(), [0, 0, 0, 1]);
    assert_eq!(rig.status(ConfigKind::Security).origin, security);
}

async fn an_invalid_document_is_rejected_and_the_settings_stay(rig: &Rig) {
    rig.world.put(&with_storm("rate_threshold: 0\n")).await;
    rig.until("storm.yaml rejected", |rig| {
        !rig.rejected(ConfigKind::Storm).is_empty()
    })
    .await;
    assert_eq!(rig.rate(), 7, "the settings in force stay");
    assert_eq!(rig.generations(), [0, 0, 0, 0]);
    let record = rig.records(ConfigKind::Storm).remove(0);
    assert_eq!(record.generation, 0, "{record:?}");
    let lines = rig.rejected(ConfigKind::Storm).remove(0);
    let storm = rig.names.document(ConfigKind::Storm);
    assert!(
        lines[0].starts_with(&format!("{storm}: rate_threshold: ")),
        "the line names document and key: {lines:?}"
    );
    let status = rig.status(ConfigKind::Storm);
    assert_eq!(status.last_reload, Some(record));
    assert_eq!(
        status.hash,
        rig.initial(ConfigKind::Storm).hash,
        "the content in force is the old one"
    );
    assert_eq!(status.origin, storm);
    assert!(
        rig.records(ConfigKind::Dedup).is_empty() && rig.records(ConfigKind::Retry).is_empty(),
        "the others did not change: {:?}",
        rig.all_records()
    );
    // Still invalid: reading it again is no new attempt.
    assert!(rig.control.reload_now().await.is_empty());
    assert_eq!(rig.records(ConfigKind::Storm).len(), 1);
}

async fn reverting_after_a_rejection_is_applied(rig: &Rig) {
    rig.world.put(&with_storm("rate_threshold: 0\n")).await;
    rig.until("storm.yaml rejected", |rig| {
        !rig.rejected(ConfigKind::Storm).is_empty()
    })
    .await;
    // The very content in force: no change from the settings, but one from the last attempt.
    rig.world.put(&seed()).await;
    rig.until("the reverted storm.yaml applied", |rig| {
        rig.applied(ConfigKind::Storm) == 1
    })
    .await;
    let records = rig.records(ConfigKind::Storm);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1].result, ReloadResult::Applied);
    assert_eq!(records[1].generation, 1);
    assert_eq!(rig.rate(), 7);
    assert_eq!(rig.generations(), [1, 0, 0, 0]);
    let status = rig.status(ConfigKind::Storm);
    assert_eq!(status.hash, records[1].hash);
    assert_eq!(status.hash, rig.initial(ConfigKind::Storm).hash);
}

async fn unchanged_documents_are_not_judged(rig: &Rig) {
    rig.world.rewrite_identically().await;
    rig.world.rewrite_identically().await;
    assert!(rig.control.reload_now().await.is_empty());
    tokio::time::sleep(QUIET).await;
    assert!(rig.all_records().is_empty(), "{:?}", rig.all_records());
    assert_eq!(rig.generations(), [0, 0, 0, 0]);

    // The source was listening all along: a real change right after is applied.
    rig.world.put(&with_storm("rate_threshold: 8\n")).await;
    // The settings are swapped before the reload is recorded: wait for both.
    rig.until("rate_threshold 8 applied and recorded", |rig| {
        rig.rate() == 8 && !rig.all_records().is_empty()
    })
    .await;
    assert_eq!(rig.all_records().len(), 1, "{:?}", rig.all_records());
    assert_eq!(rig.generations(), [1, 0, 0, 0]);
    let line = audit::lines(&rig.names).pop().unwrap();
    assert_eq!(
        line.get("changes").map(String::as_str),
        Some("rate_threshold: 7 → 8"),
        "{line:?}"
    );
}

async fn a_removed_document_or_container_is_rejected(rig: &Rig) {
    let retry = rig.names.document(ConfigKind::Retry);
    rig.world.put(&without(ConfigKind::Retry)).await;
    rig.until("the removed retry.yaml rejected", |rig| {
        !rig.rejected(ConfigKind::Retry).is_empty()
    })
    .await;
    assert_eq!(
        rig.rejected(ConfigKind::Retry)[0],
        [format!(
            "{retry}: the {} is gone; keeping the settings in force",
            rig.names.item()
        )]
    );
    assert_eq!(rig.settings.retry().max_attempts, 3);

    rig.world.remove_all().await;
    rig.until("storm.yaml and dedup.yaml rejected", |rig| {
        !rig.rejected(ConfigKind::Storm).is_empty() && !rig.rejected(ConfigKind::Dedup).is_empty()
    })
    .await;
    assert_eq!(
        rig.rejected(ConfigKind::Storm)[0],
        [format!(
            "{}: {} is gone; keeping the settings in force",
            rig.names.document(ConfigKind::Storm),
            rig.names.container()
        )]
    );
    assert_eq!(
        rig.records(ConfigKind::Retry).len(),
        1,
        "retry.yaml was already judged missing"
    );
    assert_eq!(rig.rate(), 7);
    assert_eq!(rig.settings.dedup().ttl.get(), Duration::from_secs(600));
    assert_eq!(rig.settings.retry().max_attempts, 3);
    assert_eq!(rig.generations(), [0, 0, 0, 0]);

    // Back, with a change: every type applied (each differs from its last attempt).
    rig.world.put(&with_storm("rate_threshold: 9\n")).await;
    rig.until("every type applied again", |rig| {
        ConfigKind::ALL.iter().all(|kind| rig.applied(*kind) == 1)
    })
    .await;
    assert_eq!(rig.rate(), 9);
    assert_eq!(rig.generations(), [1, 1, 1, 1]);
}

// --- the config directory -----------------------------------------------------------------------

struct DirWorld {
    kubelet: KubeletDir,
    _watch: WatchHandle,
    _root: tempfile::TempDir,
}

fn files(documents: &[(ConfigKind, String)]) -> Vec<(&'static str, &str)> {
    documents
        .iter()
        .map(|(kind, text)| (kind.file_name(), text.as_str()))
        .collect()
}

#[async_trait]
impl World for DirWorld {
    async fn put(&self, documents: &[(ConfigKind, String)]) {
        if self.kubelet.path().is_dir() {
            assert!(self.kubelet.swap(&files(documents)).unwrap());
        } else {
            self.kubelet.recreate(&files(documents)).unwrap();
        }
    }
    async fn rewrite_identically(&self) {
        self.kubelet.swap_with_identical_content().unwrap();
    }
    async fn remove_all(&self) {
        self.kubelet.remove_dir_all().unwrap();
    }
}

async fn dir_rig(documents: Vec<(ConfigKind, String)>) -> Rig {
    let root = tempfile::tempdir().unwrap();
    let kubelet =
        KubeletDir::create(root.path().join(unique("config")), &files(&documents)).unwrap();
    let source = Arc::new(DirSource::load(kubelet.path(), Arc::new(SystemClock)).unwrap());
    assert!(source.warnings().is_empty(), "{:?}", source.warnings());
    let names = source.names().clone();
    let watch = source.watch(WatchOptions {
        debounce: Duration::from_millis(50),
        resync: Duration::from_secs(3600),
        dir_poll: Duration::from_millis(50),
    });
    let world = DirWorld {
        kubelet,
        _watch: watch,
        _root: root,
    };
    Rig::new(source, names, world)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_directory_behaves_as_every_source() {
    suite(dir_rig).await;
}

// --- the ConfigMap, through the API -------------------------------------------------------------

const NAMESPACE: &str = "kubernaut-system";

struct ConfigMapWorld {
    server: ApiServer,
    name: String,
    _watching: ConfigMapWatching,
}

fn data(documents: &[(ConfigKind, String)]) -> serde_json::Map<String, Value> {
    documents
        .iter()
        .map(|(kind, text)| (kind.file_name().to_owned(), json!(text)))
        .collect()
}

impl ConfigMapWorld {
    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.server.client(), NAMESPACE)
    }

    async fn patch(&self, patch: Value) {
        self.api()
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
}

#[async_trait]
impl World for ConfigMapWorld {
    async fn put(&self, documents: &[(ConfigKind, String)]) {
        if self
            .server
            .object(Resource::ConfigMaps, NAMESPACE, &self.name)
            .is_none()
        {
            let configmap = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": { "name": self.name, "namespace": NAMESPACE },
                "data": data(documents),
            });
            self.api()
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(configmap).unwrap(),
                )
                .await
                .unwrap();
            return;
        }
        // A merge patch: the keys not given are removed (`null`).
        let mut keys: serde_json::Map<String, Value> = ConfigKind::ALL
            .iter()
            .map(|kind| (kind.file_name().to_owned(), Value::Null))
            .collect();
        keys.extend(data(documents));
        self.patch(json!({ "data": keys })).await;
    }
    async fn rewrite_identically(&self) {
        // A real change of the ConfigMap, with the same settings documents.
        self.patch(json!({ "data": { "README": unique("unrelated") } }))
            .await;
    }
    async fn remove_all(&self) {
        self.api()
            .delete(&self.name, &DeleteParams::default())
            .await
            .unwrap();
    }
}

async fn configmap_rig(documents: Vec<(ConfigKind, String)>) -> Rig {
    let server = ApiServer::start().await;
    let name = unique("settings");
    server.put_object(
        Resource::ConfigMaps,
        json!({ "metadata": { "name": name, "namespace": NAMESPACE }, "data": data(&documents) }),
    );
    let reader = ConfigMapDocuments::new(server.client(), NAMESPACE, &name, Duration::from_secs(2));
    let source = configmap_source(reader, Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(source.warnings().is_empty(), "{:?}", source.warnings());
    let names = source.names().clone();
    assert_eq!(
        names.document(ConfigKind::Storm),
        format!("configmap {NAMESPACE}/{name}: storm.yaml")
    );
    let watching = watch_configmap(&source);
    // Changes are to be seen by the watch, not by its first list.
    let started = std::time::Instant::now();
    while server.open_watches() == 0 {
        assert!(started.elapsed() < DEADLINE, "the source never watched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let world = ConfigMapWorld {
        server,
        name,
        _watching: watching,
    };
    Rig::new(source, names, world)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_through_the_api_behaves_as_every_source() {
    suite(configmap_rig).await;
}

// --- in memory ----------------------------------------------------------------------------------

struct MemoryWorld(Arc<MemorySource>);

#[async_trait]
impl World for MemoryWorld {
    async fn put(&self, documents: &[(ConfigKind, String)]) {
        for kind in ConfigKind::ALL {
            match documents.iter().find(|(k, _)| *k == kind) {
                Some((_, text)) => self.0.set(kind, text.as_str()),
                None => self.0.remove(kind),
            };
        }
    }
    async fn rewrite_identically(&self) {
        for (kind, text) in seed() {
            assert!(self.0.set(kind, text).is_empty());
        }
    }
    async fn remove_all(&self) {
        self.0.remove_all();
    }
}

async fn memory_rig(documents: Vec<(ConfigKind, String)>) -> Rig {
    let mut held = Documents::empty();
    for (kind, text) in documents {
        held.set(kind, text);
    }
    let source =
        Arc::new(MemorySource::start(unique("memory"), &held, Arc::new(SystemClock)).unwrap());
    assert!(source.warnings().is_empty(), "{:?}", source.warnings());
    let names = source.names().clone();
    Rig::new(source.clone(), names, MemoryWorld(source))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_in_memory_behave_as_every_source() {
    suite(memory_rig).await;
}

// --- the audit lines, captured -----------------------------------------------------------------

mod audit {
    use super::*;

    use tracing::field::{Field, Visit};
    use tracing::subscriber::Interest;
    use tracing::{Event, Metadata, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    /// One audit line: its fields, as text.
    pub type Line = BTreeMap<String, String>;

    static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());

    /// Captures the audit lines of every test in this binary (told apart by document names):
    /// they may be written on any thread (a watcher, a feed task), so a thread's own subscriber
    /// would miss some.
    pub fn install() {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
                .expect("no other global tracing subscriber in the test binary");
        });
    }

    /// The audit lines about `names`' documents, oldest first.
    pub fn lines(names: &DocumentNames) -> Vec<Line> {
        let ours: Vec<&str> = ConfigKind::ALL.iter().map(|k| names.document(*k)).collect();
        LINES
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.get("file").is_some_and(|f| ours.contains(&f.as_str())))
            .cloned()
            .collect()
    }

    struct Capture;

    fn is_audit(metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && metadata.target().starts_with("gateway_adapter_file_config")
            && metadata.fields().field("audit").is_some()
    }

    impl<S: Subscriber> Layer<S> for Capture {
        fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
            if is_audit(metadata) {
                Interest::always()
            } else {
                Interest::never()
            }
        }

        fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
            is_audit(metadata)
        }

        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut fields = Fields(Line::new());
            event.record(&mut fields);
            LINES.lock().unwrap().push(fields.0);
        }
    }

    struct Fields(Line);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}
