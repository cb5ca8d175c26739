//! The ConfigMap of `--config-source configmap:NAMESPACE/NAME`, read and watched through the
//! Kubernetes API: a change reaches the gateway in about a second, instead of the up to 90 s the
//! kubelet takes to update a mounted volume.
//!
//! This module only reads: [`fetch`] (one `get`) and [`watch`] (the kube runtime watcher: `list`
//! and `watch`, by field selector on the name). What the `data` means (the settings documents,
//! their validation, the audit lines) is for whoever is given it; `binaryData` is ignored.
//!
//! | call | API requests |
//! |---|---|
//! | [`fetch`] | `GET /api/v1/namespaces/NS/configmaps/NAME` |
//! | [`watch`] | `GET /api/v1/namespaces/NS/configmaps?fieldSelector=metadata.name=NAME` (list), then the same with `watch=true`, again after every error (kube's default backoff) or expired watch |

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

/// A ConfigMap's `data`: key → text. `None` where there is no ConfigMap.
pub type Data = BTreeMap<String, String>;

/// Reads the ConfigMap `namespace/name` (one `get`): its `data` (empty when it has none), or
/// `None` when it does not exist. Any other failure (no answer, forbidden) is an error.
pub async fn fetch(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Data>, kube::Error> {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map(|found| found.map(data))
}

/// The `data` of a ConfigMap; `binaryData` is not settings.
fn data(configmap: ConfigMap) -> Data {
    configmap.data.unwrap_or_default()
}

/// Stops the watch when dropped.
#[derive(Debug)]
pub struct ConfigMapWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigMapWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the ConfigMap `namespace/name` on the current tokio runtime until the handle is
/// dropped, calling `on_change` with its `data` whenever the watcher reports it (`None`: it was
/// deleted, or is not there when the watch (re)starts).
///
/// `on_change` is called from the watch task, in order, once per added or modified object, and
/// once after each (re)list with the state the list found — so after every reconnection it hears
/// the current state even when it did not change: it must skip content it has seen (the settings
/// source does, by hash). Errors (the API unreachable, a watch refused) are logged and retried
/// with kube's default backoff; the last state delivered stays in force meanwhile.
pub fn watch(
    client: Client,
    namespace: &str,
    name: &str,
    on_change: impl Fn(Option<Data>) + Send + Sync + 'static,
) -> ConfigMapWatch {
    let api = Api::<ConfigMap>::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        let mut tracker = Tracker::new(name.clone());
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if let Some(change) = tracker.observe(event) {
                        tracing::debug!(%namespace, %name, exists = change.is_some(), "ConfigMap changed");
                        on_change(change);
                    }
                }
                Err(e) => {
                    tracing::warn!(%namespace, %name, error = %e, "watching the config ConfigMap failed; retrying (the settings in force stay)");
                }
            }
        }
        // The backoff never ends the stream; should it end, the settings in force stay.
        tracing::warn!(%namespace, %name, "the config ConfigMap watch ended");
    });
    ConfigMapWatch { task }
}

/// Turns the watcher's events into what `on_change` hears: a (re)list is buffered until it is
/// complete, then delivered as one state.
#[derive(Debug)]
struct Tracker {
    name: String,
    /// During a (re)list: what it found so far.
    listing: Option<Option<Data>>,
}

impl Tracker {
    fn new(name: String) -> Self {
        Tracker {
            name,
            listing: None,
        }
    }

    /// What to deliver for `event`, if anything.
    fn observe(&mut self, event: watcher::Event<ConfigMap>) -> Option<Option<Data>> {
        use watcher::Event;
        match event {
            Event::Init => {
                self.listing = Some(None);
                None
            }
            Event::InitApply(configmap) => {
                if self.is_ours(&configmap) {
                    self.listing = Some(Some(data(configmap)));
                }
                None
            }
            // Listed nothing: it does not exist (deleted while the watch was down, perhaps).
            Event::InitDone => Some(self.listing.take().flatten()),
            Event::Apply(configmap) if self.is_ours(&configmap) => Some(Some(data(configmap))),
            Event::Delete(configmap) if self.is_ours(&configmap) => Some(None),
            // The field selector keeps others out; a server that ignores it must not confuse us.
            Event::Apply(_) | Event::Delete(_) => None,
        }
    }

    fn is_ours(&self, configmap: &ConfigMap) -> bool {
        configmap.metadata.name.as_deref() == Some(self.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;
    use watcher::Event;

    use super::*;

    fn configmap(name: &str, entries: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("kubernaut-system".to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    fn one(key: &str, value: &str) -> Option<Data> {
        Some(Data::from([(key.to_owned(), value.to_owned())]))
    }

    #[test]
    fn data_is_the_text_entries_and_binary_data_is_ignored() {
        let mut cm = configmap("cfg", &[("storm.yaml", "rate_threshold: 3\n")]);
        cm.binary_data = Some(BTreeMap::from([(
            "dedup.yaml".to_owned(),
            ByteString(b"ttl: 1m\n".to_vec()),
        )]));
        assert_eq!(Some(data(cm)), one("storm.yaml", "rate_threshold: 3\n"));
        let empty = ConfigMap {
            data: None,
            ..configmap("cfg", &[])
        };
        assert_eq!(data(empty), Data::new(), "no data: every key missing");
    }

    #[test]
    fn a_list_is_delivered_once_complete() {
        let mut t = Tracker::new("cfg".to_owned());
        assert_eq!(t.observe(Event::Init), None);
        assert_eq!(
            t.observe(Event::InitApply(configmap("cfg", &[("a", "1")]))),
            None
        );
        assert_eq!(t.observe(Event::InitDone), Some(one("a", "1")));
        // A relist that finds nothing: it is gone.
        assert_eq!(t.observe(Event::Init), None);
        assert_eq!(t.observe(Event::InitDone), Some(None));
    }

    #[test]
    fn changes_and_deletion_are_delivered_as_they_come() {
        let mut t = Tracker::new("cfg".to_owned());
        assert_eq!(
            t.observe(Event::Apply(configmap("cfg", &[("a", "2")]))),
            Some(one("a", "2"))
        );
        assert_eq!(
            t.observe(Event::Delete(configmap("cfg", &[("a", "2")]))),
            Some(None)
        );
    }

    #[test]
    fn other_configmaps_are_ignored() {
        let mut t = Tracker::new("cfg".to_owned());
        assert_eq!(
            t.observe(Event::Apply(configmap("other", &[("a", "1")]))),
            None
        );
        assert_eq!(
            t.observe(Event::Delete(configmap("other", &[("a", "1")]))),
            None
        );
        t.observe(Event::Init);
        t.observe(Event::InitApply(configmap("other", &[("a", "1")])));
        assert_eq!(t.observe(Event::InitDone), Some(None));
    }
}
