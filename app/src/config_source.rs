//! Where the hot-reloadable settings come from (`--config-source`):
//! - `file` (the default): the files of `--config-dir` (the ConfigMap mounted as a volume),
//!   the file-config adapter's [`DirSource`], watched with notify; the kubelet takes up to 90 s
//!   to update them;
//! - `configmap:NAMESPACE/NAME`: the ConfigMap itself, read and watched through the Kubernetes
//!   API (a change applies in about a second): [`ConfigMapSource`], the file-config adapter's
//!   [`DocumentSource`] reading with the kube adapter's [`configmap::fetch`] and fed by its
//!   [`configmap::watch`]. The app bridges the two adapters (they never depend on each other);
//!   the judging is the file-config adapter's, so validation, audit lines, reload records,
//!   metrics and `/config` are the same, with documents named `configmap NAMESPACE/NAME: storm.yaml`.
//!
//! For the ConfigMap: at start-up one `get` (invalid settings: the gateway refuses to start; no
//! ConfigMap: built-in defaults with a warning), then the kube runtime watcher (`list` + `watch`
//! by field selector) feeds every change to the source, in order; a key removed or the ConfigMap
//! deleted is rejected and the settings in force stay. `POST /-/reload` reads the ConfigMap again
//! (a `get`, bounded by `--kube-timeout`) and judges what it holds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use gateway_adapter_file_config::{
    DirSource, DocumentNames, DocumentSource, Documents, ReadDocuments, ReadError, WatchHandle,
    WatchOptions,
};
use gateway_adapter_kube::Client;
use gateway_adapter_kube::configmap::{self, ConfigMapWatch};
use gateway_ports::{
    ChangeListener, Clock, ConfigControl, ConfigKind, ConfigSource, ConfigStatus, DedupSettings,
    ReloadRecord, RetrySettings, SecuritySettings, StormSettings,
};

use crate::cli::{ConfigSourceArg, ServeArgs};
use crate::single_flight::SingleFlight;

/// The longest wait for the ConfigMap at start-up.
pub const STARTUP_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings source in force, whichever `--config-source` named: the pipeline reads it
/// ([`ConfigSource`]), `/config` and `/-/reload` control it ([`ConfigControl`]).
#[derive(Debug, Clone)]
pub struct SettingsSource {
    settings: Arc<dyn ConfigSource>,
    control: Arc<dyn ConfigControl>,
    origin: String,
    /// `POST /-/reload` is single-flight: concurrent callers share one reload (of every source).
    reloads: Arc<SingleFlight<Vec<ReloadRecord>>>,
}

impl SettingsSource {
    /// `source`, described as `origin` (`config directory /etc/kubernaut/config`).
    pub fn new<S: ConfigSource + ConfigControl + 'static>(
        source: Arc<S>,
        origin: impl Into<String>,
    ) -> Self {
        SettingsSource {
            settings: source.clone(),
            control: source,
            origin: origin.into(),
            reloads: Arc::default(),
        }
    }

    /// Where the settings come from, in words.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl ConfigSource for SettingsSource {
    fn storm(&self) -> Arc<StormSettings> {
        self.settings.storm()
    }
    fn dedup(&self) -> Arc<DedupSettings> {
        self.settings.dedup()
    }
    fn retry(&self) -> Arc<RetrySettings> {
        self.settings.retry()
    }
    fn security(&self) -> Arc<SecuritySettings> {
        self.settings.security()
    }
    fn generation(&self, kind: ConfigKind) -> u64 {
        self.settings.generation(kind)
    }
    fn on_change(&self, listener: ChangeListener) {
        self.settings.on_change(listener);
    }
}

#[async_trait]
impl ConfigControl for SettingsSource {
    fn status(&self) -> Vec<ConfigStatus> {
        self.control.status()
    }
    /// A reload that starts after this call, shared with every caller asking meanwhile (see
    /// [`SingleFlight`]): a burst of requests costs at most two reads of the source.
    async fn reload_now(&self) -> Vec<ReloadRecord> {
        self.reloads.run(|| self.control.reload_now()).await
    }
    fn on_reload(&self, observer: Box<dyn Fn(&ReloadRecord) + Send + Sync>) {
        self.control.on_reload(observer);
    }
}

/// The settings source `--config-source` names, loaded, and how to watch it.
#[derive(Debug)]
pub struct ConfigSetup {
    /// The settings in force, reloadable.
    pub source: Arc<SettingsSource>,
    watched: Watched,
}

#[derive(Debug)]
enum Watched {
    Dir(Arc<DirSource>),
    ConfigMap(Arc<ConfigMapSource>),
}

/// Keeps the settings source watched; dropping it stops the watch.
#[derive(Debug)]
pub enum Watching {
    /// The config directory, with notify.
    Dir(WatchHandle),
    /// The ConfigMap, through the Kubernetes API.
    ConfigMap(ConfigMapWatching),
}

impl ConfigSetup {
    /// Starts watching the source on the current tokio runtime: the directory with `options`,
    /// or the ConfigMap through the API (`options` do not apply: the API says when it changes).
    pub fn watch(&self, options: WatchOptions) -> Watching {
        match &self.watched {
            Watched::Dir(source) => Watching::Dir(source.watch(options)),
            Watched::ConfigMap(source) => Watching::ConfigMap(watch_configmap(source)),
        }
    }
}

/// Loads the settings from the source `--config-source` names (see the module docs). Fails on
/// invalid settings, and for the ConfigMap when the API cannot be asked (no kubeconfig, no
/// answer, forbidden).
pub async fn config_source(args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<ConfigSetup> {
    let ConfigSourceArg::ConfigMap { namespace, name } = &args.config_source else {
        return file_source(args, clock);
    };
    let client = crate::serve::kube_client(args)
        .await
        .context("--config-source configmap needs the Kubernetes API")?;
    let reader = ConfigMapDocuments::new(client, namespace, name, args.kube_timeout);
    let source = configmap_source(reader, clock).await?;
    let label = source.names().container().to_owned();
    tracing::info!(config_source = %label, "settings from the ConfigMap, watched through the Kubernetes API");
    Ok(ConfigSetup {
        source: Arc::new(SettingsSource::new(source.clone(), label)),
        watched: Watched::ConfigMap(source),
    })
}

/// The settings of `--config-dir` (`--config-source file`): no API to ask, so no runtime needed.
pub fn file_source(args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<ConfigSetup> {
    anyhow::ensure!(
        args.config_source == ConfigSourceArg::File,
        "--config-source {:?} is read through the Kubernetes API: use config_source",
        args.config_source
    );
    let source = DirSource::load(&args.config_dir, clock)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    for warning in source
        .warnings()
        .iter()
        .chain(source.layout_warning().as_ref())
    {
        tracing::warn!("{warning}");
    }
    tracing::info!(config_source = "file", config_dir = %args.config_dir.display(), "settings from the config directory, watched for changes");
    let source = Arc::new(source);
    Ok(ConfigSetup {
        source: Arc::new(SettingsSource::new(
            source.clone(),
            source.names().container(),
        )),
        watched: Watched::Dir(source),
    })
}

/// The settings of a ConfigMap read through the Kubernetes API (`--config-source configmap:…`).
pub type ConfigMapSource = DocumentSource<ConfigMapDocuments>;

/// Reads one ConfigMap's settings documents through the Kubernetes API: its `storm.yaml`,
/// `dedup.yaml`, `retry.yaml` and `security.yaml` keys, with one `get` bounded by a timeout
/// (`--kube-timeout`).
#[derive(Clone)]
pub struct ConfigMapDocuments {
    client: Client,
    namespace: String,
    name: String,
    timeout: Duration,
}

impl std::fmt::Debug for ConfigMapDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapDocuments")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ConfigMapDocuments {
    /// The ConfigMap `namespace/name`, each read waiting at most `timeout`.
    pub fn new(client: Client, namespace: &str, name: &str, timeout: Duration) -> Self {
        ConfigMapDocuments {
            client,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            timeout,
        }
    }

    /// What its documents are named after: `configmap NAMESPACE/NAME`.
    pub fn label(&self) -> String {
        format!("configmap {}/{}", self.namespace, self.name)
    }

    async fn fetch(&self, timeout: Duration) -> Result<Documents, ReadError> {
        let fetch = configmap::fetch(&self.client, &self.namespace, &self.name);
        match tokio::time::timeout(timeout, fetch).await {
            Ok(Ok(data)) => Ok(Documents::from(data.as_ref())),
            Ok(Err(e)) => Err(Box::new(e)),
            Err(_) => Err(format!("no answer from the Kubernetes API within {timeout:?}").into()),
        }
    }
}

#[async_trait]
impl ReadDocuments for ConfigMapDocuments {
    /// One `get`, bounded by the timeout.
    async fn read(&self) -> Result<Documents, ReadError> {
        self.fetch(self.timeout).await
    }
}

/// Loads the ConfigMap `reader` reads at start-up (one `get`, waiting at most
/// [`STARTUP_FETCH_TIMEOUT`]): invalid settings are an error naming every problem; no ConfigMap
/// means the built-in defaults, with a warning (logged).
pub async fn configmap_source(
    reader: ConfigMapDocuments,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<ConfigMapSource>> {
    let label = reader.label();
    let documents = reader
        .fetch(STARTUP_FETCH_TIMEOUT)
        .await
        .map_err(anyhow::Error::from_boxed)
        .with_context(|| format!("cannot read the {label} (the settings source)"))?;
    let names = DocumentNames::labelled(label, "key");
    let source = DocumentSource::start(reader, names, &documents, clock)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    for warning in source.warnings() {
        tracing::warn!("{warning}");
    }
    Ok(Arc::new(source))
}

/// Keeps a ConfigMap watched; dropping it stops the watch.
#[derive(Debug)]
pub struct ConfigMapWatching {
    _watch: ConfigMapWatch,
    feeder: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigMapWatching {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

/// Watches `source`'s ConfigMap through the API on the current tokio runtime, feeding every
/// state the watch reports to the source, in the order reported (a channel to one task: the
/// watch's callback cannot wait for a judgement in progress).
pub fn watch_configmap(source: &Arc<ConfigMapSource>) -> ConfigMapWatching {
    let reader = source.reader();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = configmap::watch(
        reader.client.clone(),
        &reader.namespace,
        &reader.name,
        move |data| {
            // Only fails once the feeder is gone, and then the watch is being dropped too.
            let _ = tx.send(data);
        },
    );
    let source = source.clone();
    let feeder = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            source.feed(&Documents::from(data.as_ref())).await;
        }
    });
    ConfigMapWatching {
        _watch: watch,
        feeder,
    }
}
