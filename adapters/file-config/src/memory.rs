//! [`MemorySource`]: settings documents held in memory, set and removed by the program — a real
//! hot-reloadable settings source for tests (the app's, other crates'), judged like any other.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use gateway_ports::{
    ChangeListener, Clock, ConfigControl, ConfigKind, ConfigSource, ConfigStatus, DedupSettings,
    ReloadRecord, RetrySettings, SecuritySettings, StormSettings,
};

use crate::ConfigErrors;
use crate::documents::{DocumentNames, Documents};
use crate::judge::{Judge, ReloadObserver};

/// The label of a [`MemorySource`] made by [`MemorySource::new`]: its documents read
/// `memory: storm.yaml`.
pub const MEMORY: &str = "memory";

/// Settings documents held in memory: each change ([`MemorySource::set`],
/// [`MemorySource::remove`], [`MemorySource::remove_all`]) is judged at once, by the same
/// [`Judge`] as the config directory's files and the ConfigMap's keys, with the same records,
/// audit lines and status; [`reload_now`](ConfigControl::reload_now) judges the documents held.
///
/// ```
/// # use std::sync::Arc;
/// # use gateway_adapter_file_config::MemorySource;
/// # use gateway_ports::{Clock, ConfigKind, ConfigSource, Timestamp, ReloadResult};
/// # #[derive(Debug)]
/// # struct Epoch;
/// # impl Clock for Epoch { fn now(&self) -> Timestamp { Timestamp::EPOCH } }
/// let source = MemorySource::new(Arc::new(Epoch));
/// let records = source.set(ConfigKind::Storm, "rate_threshold: 3\n");
/// assert_eq!(records[0].result, ReloadResult::Applied);
/// assert_eq!(source.storm().rate_threshold.get(), 3);
/// let records = source.set(ConfigKind::Storm, "rate_threshold: 0\n");
/// assert!(matches!(records[0].result, ReloadResult::Rejected(_)));
/// assert_eq!(source.storm().rate_threshold.get(), 3, "the settings in force stay");
/// ```
pub struct MemorySource {
    judge: Judge,
    /// The documents held. Locked for a change and its judgement together: changes are judged
    /// one at a time, in the order they were made.
    documents: Mutex<Documents>,
}

impl std::fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySource")
            .field("judge", &self.judge)
            .finish_non_exhaustive()
    }
}

impl MemorySource {
    /// No documents yet: the built-in defaults (with a warning per type), documents named
    /// `memory: storm.yaml`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::start(MEMORY, &Documents::empty(), clock)
            .unwrap_or_else(|_| unreachable!("no documents, no problems"))
    }

    /// Starts on `documents` with [`Judge::start`]'s rules, documents named `<label>: storm.yaml`.
    pub fn start(
        label: impl Into<String>,
        documents: &Documents,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigErrors> {
        Ok(MemorySource {
            judge: Judge::start(DocumentNames::labelled(label, "document"), documents, clock)?,
            documents: Mutex::new(documents.clone()),
        })
    }

    fn change(&self, change: impl FnOnce(&mut Documents)) -> Vec<ReloadRecord> {
        let mut documents = self.lock();
        change(&mut documents);
        self.judge.judge(&documents)
    }

    fn lock(&self) -> MutexGuard<'_, Documents> {
        self.documents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `kind`'s document to `text` and judges it: the record of the attempt, or none when
    /// the text is the one last judged.
    pub fn set(&self, kind: ConfigKind, text: impl Into<Vec<u8>>) -> Vec<ReloadRecord> {
        self.change(|documents| documents.set(kind, text))
    }

    /// Removes `kind`'s document: rejected like a key removed from a ConfigMap, the settings in
    /// force stay.
    pub fn remove(&self, kind: ConfigKind) -> Vec<ReloadRecord> {
        self.change(|documents| documents.remove(kind))
    }

    /// Removes every document and their container: rejected like a deleted ConfigMap.
    pub fn remove_all(&self) -> Vec<ReloadRecord> {
        self.change(|documents| *documents = Documents::absent())
    }

    /// What the operator would be told about the start-up documents (missing ones).
    pub fn warnings(&self) -> &[String] {
        self.judge.warnings()
    }

    /// How the documents are named.
    pub fn names(&self) -> &DocumentNames {
        self.judge.names()
    }
}

impl ConfigSource for MemorySource {
    fn storm(&self) -> Arc<StormSettings> {
        self.judge.storm()
    }
    fn dedup(&self) -> Arc<DedupSettings> {
        self.judge.dedup()
    }
    fn retry(&self) -> Arc<RetrySettings> {
        self.judge.retry()
    }
    fn security(&self) -> Arc<SecuritySettings> {
        self.judge.security()
    }
    fn generation(&self, kind: ConfigKind) -> u64 {
        self.judge.generation(kind)
    }
    fn on_change(&self, listener: ChangeListener) {
        self.judge.on_change(listener);
    }
}

#[async_trait]
impl ConfigControl for MemorySource {
    fn status(&self) -> Vec<ConfigStatus> {
        self.judge.status()
    }

    /// Judges the documents held (nothing to read: only what was never judged is an attempt).
    async fn reload_now(&self) -> Vec<ReloadRecord> {
        self.change(|_| {})
    }

    fn on_reload(&self, observer: ReloadObserver) {
        self.judge.on_reload(observer);
    }
}

#[cfg(test)]
mod tests {
    use gateway_ports::ReloadResult;

    use super::*;

    fn errors(records: &[ReloadRecord]) -> Vec<String> {
        records
            .iter()
            .flat_map(|r| match &r.result {
                ReloadResult::Rejected(errors) => errors.clone(),
                ReloadResult::Applied => panic!("expected a rejection: {r:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn documents_set_and_removed_in_memory_are_judged_at_once() {
        let source = MemorySource::new(Arc::new(crate::NoClock));
        assert_eq!(source.warnings().len(), 4, "{:?}", source.warnings());
        assert_eq!(
            source.warnings()[0],
            "memory: storm.yaml not found: using built-in storm defaults"
        );
        assert_eq!(source.set(ConfigKind::Dedup, "ttl: 1m\n").len(), 1);
        assert!(source.set(ConfigKind::Dedup, "ttl: 1m\n").is_empty());
        assert!(source.reload_now().await.is_empty());
        assert_eq!(source.generation(ConfigKind::Dedup), 1);
        let dedup = source
            .status()
            .into_iter()
            .find(|s| s.kind == ConfigKind::Dedup);
        assert_eq!(dedup.unwrap().origin, "memory: dedup.yaml");

        assert_eq!(
            errors(&source.remove(ConfigKind::Dedup)),
            ["memory: dedup.yaml: the document is gone; keeping the settings in force"]
        );
        assert_eq!(source.dedup().ttl.get(), std::time::Duration::from_secs(60));
        source.set(ConfigKind::Storm, "rate_threshold: 2\n");
        assert_eq!(
            errors(&source.remove_all()),
            ["memory: storm.yaml: memory is gone; keeping the settings in force"]
        );
        assert_eq!(source.storm().rate_threshold.get(), 2);
    }

    #[test]
    fn invalid_documents_at_start_up_are_refused() {
        let mut documents = Documents::empty();
        documents.set(ConfigKind::Retry, "max_attempts: 0\n");
        let errors = MemorySource::start("test", &documents, Arc::new(crate::NoClock))
            .unwrap_err()
            .to_string();
        assert!(
            errors.starts_with("test: retry.yaml: max_attempts: "),
            "{errors}"
        );
    }
}
