//! Where the hot-reloadable settings come from (`--config-source`):
//! - `file` (the default): the files of `--config-dir` (the ConfigMap mounted as a volume),
//!   watched with notify; the kubelet takes up to 90 s to update them;
//! - `configmap:NAMESPACE/NAME`: the ConfigMap itself, read and watched through the Kubernetes
//!   API (a change applies in about a second). Its `storm.yaml`, `dedup.yaml` and `retry.yaml`
//!   keys are judged exactly as the files are (the same [`FileConfigSource`], fed with
//!   [`Documents`]): the same validation, audit lines, reload records, metrics and `/config`,
//!   with origins reading `configmap NAMESPACE/NAME: storm.yaml`.
//!
//! For the ConfigMap: at start-up one `get` (invalid settings: the gateway refuses to start; no
//! ConfigMap: built-in defaults with a warning), then the kube runtime watcher (`list` + `watch`
//! by field selector) feeds every change to the source; a key removed or the ConfigMap deleted is
//! rejected and the settings in force stay. `POST /-/reload` reads the ConfigMap again (a `get`,
//! bounded by `--kube-timeout`) and judges what it holds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gateway_adapter_file_config::{Documents, FileConfigSource, WatchHandle, WatchOptions};
use gateway_adapter_kube::ClientOptions;
use gateway_adapter_kube::configmap::{self, ConfigMapWatch};
use gateway_ports::Clock;

use crate::cli::{ConfigSourceArg, ServeArgs};

/// The longest wait for the ConfigMap at start-up.
pub const STARTUP_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings source `--config-source` names, loaded, and how to watch it.
pub struct ConfigSetup {
    /// The settings in force, reloadable (`ConfigSource` and `ConfigControl`).
    pub source: Arc<FileConfigSource>,
    watched: Watched,
}

enum Watched {
    Dir,
    ConfigMap {
        client: gateway_adapter_kube::Client,
        namespace: String,
        name: String,
    },
}

impl std::fmt::Debug for ConfigSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSetup")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Keeps the settings source watched; dropping it stops the watch.
#[derive(Debug)]
pub enum Watching {
    /// The config directory, with notify.
    Dir(WatchHandle),
    /// The ConfigMap, through the Kubernetes API.
    ConfigMap(ConfigMapWatch),
}

impl ConfigSetup {
    /// Starts watching the source on the current tokio runtime: the directory with `options`,
    /// or the ConfigMap through the API (`options` do not apply: the API says when it changes).
    pub fn watch(&self, options: WatchOptions) -> Watching {
        match &self.watched {
            Watched::Dir => Watching::Dir(self.source.watch(options)),
            Watched::ConfigMap {
                client,
                namespace,
                name,
            } => {
                let source = self.source.clone();
                Watching::ConfigMap(configmap::watch(
                    client.clone(),
                    namespace,
                    name,
                    move |data| {
                        source.apply_documents(&Documents::from(data.as_ref()));
                    },
                ))
            }
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
    let client = gateway_adapter_kube::client(&ClientOptions {
        kubeconfig: args.kubeconfig.clone(),
    })
    .await
    .context("--config-source configmap needs the Kubernetes API")?;
    let label = format!("configmap {namespace}/{name}");
    let data = tokio::time::timeout(
        STARTUP_FETCH_TIMEOUT,
        configmap::fetch(&client, namespace, name),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {STARTUP_FETCH_TIMEOUT:?}"))
    .and_then(|fetched| fetched.map_err(anyhow::Error::from))
    .with_context(|| format!("cannot read the {label} (the settings source)"))?;
    let refresh = refresh(
        client.clone(),
        namespace.clone(),
        name.clone(),
        args.kube_timeout,
    );
    let source =
        FileConfigSource::from_documents(label.clone(), &Documents::from(data.as_ref()), clock)
            .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?
            .with_refresh(refresh);
    for warning in source.warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(config_source = %label, "settings from the ConfigMap, watched through the Kubernetes API");
    Ok(ConfigSetup {
        source: Arc::new(source),
        watched: Watched::ConfigMap {
            client,
            namespace: namespace.clone(),
            name: name.clone(),
        },
    })
}

/// The settings of `--config-dir` (`--config-source file`): no API to ask, so no runtime needed.
pub fn file_source(args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<ConfigSetup> {
    anyhow::ensure!(
        args.config_source == ConfigSourceArg::File,
        "--config-source {:?} is read through the Kubernetes API: use config_source",
        args.config_source
    );
    let source = FileConfigSource::load(&args.config_dir, clock)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    for warning in source
        .warnings()
        .iter()
        .chain(source.layout_warning().as_ref())
    {
        tracing::warn!("{warning}");
    }
    tracing::info!(config_source = "file", config_dir = %args.config_dir.display(), "settings from the config directory, watched for changes");
    Ok(ConfigSetup {
        source: Arc::new(source),
        watched: Watched::Dir,
    })
}

/// `reload_now` of the ConfigMap source: one `get`, run on the runtime the source was made on
/// and waited for by the calling thread (`reload_now` runs off the runtime's threads, as
/// `POST /-/reload` calls it).
fn refresh(
    client: gateway_adapter_kube::Client,
    namespace: String,
    name: String,
    timeout: Duration,
) -> impl Fn() -> Result<Documents, String> + Send + Sync + 'static {
    let runtime = tokio::runtime::Handle::current();
    move || {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (client, namespace, name) = (client.clone(), namespace.clone(), name.clone());
        runtime.spawn(async move {
            let fetched =
                tokio::time::timeout(timeout, configmap::fetch(&client, &namespace, &name)).await;
            let _ = tx.send(fetched);
        });
        // The fetch is bounded by its own timeout; this one only guards against a runtime that
        // cannot run it (shutting down, or this thread being its only worker).
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(Ok(Ok(data))) => Ok(Documents::from(data.as_ref())),
            Ok(Ok(Err(e))) => Err(format!("cannot read the ConfigMap: {e}")),
            Ok(Err(_)) => Err(format!(
                "no answer from the Kubernetes API within {timeout:?}"
            )),
            Err(_) => Err("the ConfigMap read did not run".to_owned()),
        }
    }
}
