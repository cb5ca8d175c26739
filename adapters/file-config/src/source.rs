//! [`FileConfigSource`]: the settings of a config directory, reloaded on demand or by the watcher;
//! or the settings of documents fed from elsewhere (a ConfigMap read through the Kubernetes API),
//! judged by the same code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use gateway_ports::settings::{RawDedupSettings, RawRetrySettings, RawStormSettings};
use gateway_ports::{
    ChangeListener, Clock, ConfigControl, ConfigKind, ConfigSource, ConfigStatus, DedupSettings,
    ReloadRecord, ReloadResult, RetrySettings, SettingsCell, StormSettings,
};

use crate::parse::{Parsed, as_map, parse};
use crate::read::{Content, Documents, MISSING, index, mounted_as_directory, read_dir};
use crate::{ConfigErrors, FileProblem};

type Observer = Box<dyn Fn(&ReloadRecord) + Send + Sync>;
type Refresh = Box<dyn Fn() -> Result<Documents, String> + Send + Sync>;

/// Where the documents come from.
#[derive(Debug, Clone)]
enum Origin {
    /// A config directory, read by the source itself.
    Dir(PathBuf),
    /// Documents fed by someone else; the label names their container in origins, problems and
    /// audit lines (`configmap kubernaut-system/kubernaut-gateway-config`).
    Fed(String),
}

#[derive(Debug, Clone)]
struct KindState {
    /// Hash of the content last judged, valid or not: the same content is not judged twice, and
    /// reverting to the last good content after a rejected change *is* a change.
    attempted: String,
    /// Hash of the content in force (`missing` for built-in defaults).
    in_force: String,
    /// The file the settings in force came from, or `built-in defaults`.
    origin: String,
    last: Option<ReloadRecord>,
}

/// Everything a reload reads and writes, under one lock.
struct State {
    kinds: [KindState; 3],
    /// The documents last fed (a fed source only).
    latest: Option<Documents>,
    /// How many times documents were fed: a refresh that raced with a feed defers to it.
    fed: u64,
}

/// The hot-reloadable settings of one config directory, or of settings documents fed from
/// elsewhere.
///
/// Reads never block (they go to an arc-swap cell); a reload validates each file on its own and
/// swaps in the valid ones, one atomic replacement per settings type.
///
/// A directory source ([`FileConfigSource::load`]) reads its directory on
/// [`reload_now`](ConfigControl::reload_now) and is watched by [`FileConfigSource::watch`]. A fed
/// source ([`FileConfigSource::from_documents`]) is given its documents by its feeder through
/// [`FileConfigSource::apply_documents`]; its `reload_now` asks the feeder for them again when
/// one was given with [`FileConfigSource::with_refresh`], and otherwise judges the documents last
/// fed. Both judge with the same rules and report the same records, status and audit lines.
pub struct FileConfigSource {
    origin: Origin,
    cell: SettingsCell,
    clock: Arc<dyn Clock>,
    /// Held for a whole judgement, so the watcher (or feeder) and `POST /-/reload` never
    /// interleave.
    state: Mutex<State>,
    observers: Mutex<Vec<Observer>>,
    warnings: Vec<String>,
    refresh: Option<Refresh>,
}

impl std::fmt::Debug for FileConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConfigSource")
            .field("origin", &self.origin)
            .field("cell", &self.cell)
            .finish_non_exhaustive()
    }
}

const DEFAULTS: &str = "built-in defaults";

impl FileConfigSource {
    /// Loads `dir` at start-up. Missing directory or files: the built-in defaults, with a warning.
    /// Any invalid file: an error naming file, key and reason of every problem.
    pub fn load(dir: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> Result<Self, ConfigErrors> {
        let dir = dir.into();
        let documents = read_dir(&dir).map_err(|e| {
            ConfigErrors(vec![FileProblem {
                file: dir.clone(),
                key: None,
                reason: format!("cannot read: {e}"),
            }])
        })?;
        Self::start(Origin::Dir(dir), &documents, clock)
    }

    /// Loads documents fed from elsewhere at start-up, with the rules of [`FileConfigSource::load`]:
    /// documents absent altogether or one missing, the built-in defaults with a warning; any
    /// invalid document, an error naming every problem. `origin_label` names their container
    /// (`configmap kubernaut-system/kubernaut-gateway-config`): origins, problems and audit lines
    /// read `configmap kubernaut-system/kubernaut-gateway-config: storm.yaml`.
    ///
    /// Changes are fed with [`FileConfigSource::apply_documents`]; [`FileConfigSource::watch`]
    /// does nothing for such a source.
    pub fn from_documents(
        origin_label: String,
        documents: &Documents,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigErrors> {
        let source = Self::start(Origin::Fed(origin_label), documents, clock)?;
        source.lock().latest = Some(documents.clone());
        Ok(source)
    }

    /// Has [`reload_now`](ConfigControl::reload_now) call `refresh` (blocking) for the documents
    /// as they are now, and judge those: `POST /-/reload` re-reads the source rather than
    /// re-judging the documents last fed. A refresh that fails is logged and changes nothing;
    /// one that raced with [`FileConfigSource::apply_documents`] yields to the documents fed
    /// meanwhile (they may be newer).
    #[must_use]
    pub fn with_refresh(
        mut self,
        refresh: impl Fn() -> Result<Documents, String> + Send + Sync + 'static,
    ) -> Self {
        self.refresh = Some(Box::new(refresh));
        self
    }

    fn start(
        origin: Origin,
        documents: &Documents,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigErrors> {
        let mut warnings = Vec::new();
        if !documents.is_present() {
            warnings.push(match &origin {
                Origin::Dir(dir) => format!(
                    "config directory {} does not exist: using built-in defaults for all settings",
                    dir.display()
                ),
                Origin::Fed(label) => {
                    format!("{label} does not exist: using built-in defaults for all settings")
                }
            });
        }
        let mut problems = Vec::new();
        let mut storm = StormSettings::default();
        let mut dedup = DedupSettings::default();
        let mut retry = RetrySettings::default();
        let mut states = ConfigKind::ALL.map(|_| KindState {
            attempted: MISSING.to_owned(),
            in_force: MISSING.to_owned(),
            origin: DEFAULTS.to_owned(),
            last: None,
        });
        for kind in ConfigKind::ALL {
            let file = document_name(&origin, kind);
            let content = documents.content(kind);
            let Content::Bytes(bytes) = content else {
                if documents.is_present() {
                    warnings.push(format!(
                        "{} not found: using built-in {kind} defaults",
                        file.display()
                    ));
                }
                continue;
            };
            match parse(kind, &file, bytes) {
                Ok(Parsed::Storm(s)) => storm = s,
                Ok(Parsed::Dedup(s)) => dedup = s,
                Ok(Parsed::Retry(s)) => retry = s,
                Err(mut p) => problems.append(&mut p),
            }
            let state = &mut states[index(kind)];
            state.attempted = content.hash();
            state.in_force = content.hash();
            state.origin = file.display().to_string();
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(FileConfigSource {
            origin,
            cell: SettingsCell::new(storm, dedup, retry),
            clock,
            state: Mutex::new(State {
                kinds: states,
                latest: None,
                fed: 0,
            }),
            observers: Mutex::new(Vec::new()),
            warnings,
            refresh: None,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the operator should know about the start-up load (missing files, a subPath mount).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// A warning when the config files are not symlinks through `..data`: in Kubernetes that is
    /// a `subPath` mount, which is never updated. (On a laptop, plain files are fine.)
    /// A fed source has no files, and no such warning.
    pub fn layout_warning(&self) -> Option<String> {
        let dir = self.dir()?;
        (mounted_as_directory(dir) == Some(false)).then(|| {
            format!(
                "the config files in {} are not symlinks through ..data: if this is a Kubernetes ConfigMap \
                 mounted with subPath, Kubernetes will never update it; mount the ConfigMap as a directory",
                dir.display()
            )
        })
    }

    /// The config directory, for a directory source; `None` for a fed source.
    pub fn dir(&self) -> Option<&Path> {
        match &self.origin {
            Origin::Dir(dir) => Some(dir),
            Origin::Fed(_) => None,
        }
    }

    /// Where the documents come from, in words: the directory's path, or the label of a fed
    /// source (`configmap kubernaut-system/kubernaut-gateway-config`).
    pub fn origin(&self) -> String {
        match &self.origin {
            Origin::Dir(dir) => dir.display().to_string(),
            Origin::Fed(label) => label.clone(),
        }
    }

    fn current_map(&self, kind: ConfigKind) -> serde_json::Map<String, serde_json::Value> {
        match kind {
            ConfigKind::Storm => as_map(&RawStormSettings::from(&*self.cell.storm())),
            ConfigKind::Dedup => as_map(&RawDedupSettings::from(&*self.cell.dedup())),
            ConfigKind::Retry => as_map(&RawRetrySettings::from(&*self.cell.retry())),
        }
    }

    /// The settings in force of `kind`, as the key → value map of its file.
    pub fn settings_map(&self, kind: ConfigKind) -> serde_json::Map<String, serde_json::Value> {
        self.current_map(kind)
    }

    fn judge(
        &self,
        kind: ConfigKind,
        documents: &Documents,
        state: &mut KindState,
    ) -> Option<ReloadRecord> {
        let content = documents.content(kind);
        let hash = content.hash();
        if hash == state.attempted {
            return None;
        }
        state.attempted = hash.clone();
        #[allow(clippy::disallowed_methods)] // a duration metric, not a domain decision
        let started = Instant::now();
        let file = document_name(&self.origin, kind);
        let outcome = match content {
            Content::Missing => Err(vec![FileProblem {
                file: file.clone(),
                key: None,
                reason: match &self.origin {
                    Origin::Dir(_) => "the file is gone; keeping the settings in force".to_owned(),
                    Origin::Fed(_) if documents.is_present() => {
                        "the key is gone; keeping the settings in force".to_owned()
                    }
                    Origin::Fed(label) => {
                        format!("{label} is gone; keeping the settings in force")
                    }
                },
            }]),
            Content::Bytes(bytes) => parse(kind, &file, bytes),
        };
        let (result, changes) = match outcome {
            Ok(parsed) => {
                let before = self.current_map(kind);
                let after = parsed.to_map();
                match parsed {
                    Parsed::Storm(s) => self.cell.set_storm(s),
                    Parsed::Dedup(s) => self.cell.set_dedup(s),
                    Parsed::Retry(s) => self.cell.set_retry(s),
                }
                state.in_force = hash.clone();
                state.origin = file.display().to_string();
                (ReloadResult::Applied, diff(&before, &after))
            }
            Err(problems) => (
                ReloadResult::Rejected(problems.iter().map(ToString::to_string).collect()),
                String::new(),
            ),
        };
        let record = ReloadRecord {
            kind,
            result,
            duration: started.elapsed(),
            hash,
            generation: self.cell.generation(kind),
            at: self.clock.now(),
        };
        audit(&record, &file, &changes);
        state.last = Some(record.clone());
        Some(record)
    }

    /// Judges every settings type of `documents`, then tells the observers (outside the lock).
    fn judge_all(
        &self,
        mut state: MutexGuard<'_, State>,
        documents: &Documents,
    ) -> Vec<ReloadRecord> {
        let records: Vec<ReloadRecord> = ConfigKind::ALL
            .iter()
            .filter_map(|kind| self.judge(*kind, documents, &mut state.kinds[index(*kind)]))
            .collect();
        drop(state);
        let observers = self.observers.lock().unwrap_or_else(|p| p.into_inner());
        for record in &records {
            for observer in observers.iter() {
                observer(record);
            }
        }
        records
    }

    /// Judges documents fed from elsewhere as a reload does: each settings type whose content
    /// changed since its last attempt is validated and swapped in, or rejected with the settings
    /// in force kept (a missing document, or [`Documents::absent`], is rejected like a vanished
    /// file); observers registered with [`on_reload`](ConfigControl::on_reload) see every
    /// record. Returns one record per type judged.
    pub fn apply_documents(&self, documents: &Documents) -> Vec<ReloadRecord> {
        let mut state = self.lock();
        state.fed += 1;
        state.latest = Some(documents.clone());
        self.judge_all(state, documents)
    }

    /// A fed source's `reload_now`: refresh, or the documents last fed.
    fn reload_fed(&self, label: &str) -> Vec<ReloadRecord> {
        let Some(refresh) = &self.refresh else {
            let state = self.lock();
            let Some(documents) = state.latest.clone() else {
                return Vec::new();
            };
            return self.judge_all(state, &documents);
        };
        let fed_before = self.lock().fed;
        let fresh = match refresh() {
            Ok(documents) => documents,
            Err(e) => {
                tracing::warn!(source = label, error = %e, "cannot read the settings documents; keeping the settings in force");
                return Vec::new();
            }
        };
        let mut state = self.lock();
        let documents = if state.fed == fed_before {
            state.fed += 1;
            state.latest = Some(fresh.clone());
            fresh
        } else {
            // Documents were fed while we read: they may be newer than ours, and the feeder
            // delivers every later change anyway.
            tracing::debug!(source = label, "documents fed during a refresh win over it");
            match state.latest.clone() {
                Some(latest) => latest,
                None => return Vec::new(),
            }
        };
        self.judge_all(state, &documents)
    }
}

/// The name of `kind`'s document in problems, origins and audit lines: its file, or
/// `<label>: storm.yaml`.
fn document_name(origin: &Origin, kind: ConfigKind) -> PathBuf {
    match origin {
        Origin::Dir(dir) => dir.join(kind.file_name()),
        Origin::Fed(label) => PathBuf::from(format!("{label}: {}", kind.file_name())),
    }
}

/// `key: old → new` for each key whose value changed.
fn diff(
    before: &serde_json::Map<String, serde_json::Value>,
    after: &serde_json::Map<String, serde_json::Value>,
) -> String {
    after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(*value))
        .map(|(key, value)| {
            let old = before
                .get(key)
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            format!("{key}: {old} → {value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one audit line of a reload attempt.
fn audit(record: &ReloadRecord, file: &Path, changes: &str) {
    let file = file.display().to_string();
    match &record.result {
        ReloadResult::Applied => tracing::info!(
            audit = true,
            config_type = record.kind.as_str(),
            file,
            changes,
            hash = record.hash,
            generation = record.generation,
            result = "success",
            "configuration reloaded"
        ),
        ReloadResult::Rejected(errors) => tracing::warn!(
            audit = true,
            config_type = record.kind.as_str(),
            file,
            hash = record.hash,
            generation = record.generation,
            result = "error",
            errors = errors.join("; "),
            "configuration change rejected; the previous settings stay in force"
        ),
    }
}

impl ConfigSource for FileConfigSource {
    fn storm(&self) -> Arc<StormSettings> {
        self.cell.storm()
    }
    fn dedup(&self) -> Arc<DedupSettings> {
        self.cell.dedup()
    }
    fn retry(&self) -> Arc<RetrySettings> {
        self.cell.retry()
    }
    fn generation(&self, kind: ConfigKind) -> u64 {
        self.cell.generation(kind)
    }
    fn on_change(&self, listener: ChangeListener) {
        self.cell.on_change(listener);
    }
}

impl ConfigControl for FileConfigSource {
    fn status(&self) -> Vec<ConfigStatus> {
        let states = self.lock();
        ConfigKind::ALL
            .iter()
            .map(|kind| {
                let state = &states.kinds[index(*kind)];
                ConfigStatus {
                    kind: *kind,
                    origin: state.origin.clone(),
                    hash: if state.in_force == MISSING {
                        String::new()
                    } else {
                        state.in_force.clone()
                    },
                    generation: self.cell.generation(*kind),
                    last_reload: state.last.clone(),
                }
            })
            .collect()
    }

    fn reload_now(&self) -> Vec<ReloadRecord> {
        let dir = match &self.origin {
            Origin::Dir(dir) => dir,
            Origin::Fed(label) => return self.reload_fed(label),
        };
        let state = self.lock();
        let documents = match read_dir(dir) {
            Ok(documents) => documents,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the config directory; keeping the settings in force");
                return Vec::new();
            }
        };
        self.judge_all(state, &documents)
    }

    fn on_reload(&self, observer: Box<dyn Fn(&ReloadRecord) + Send + Sync>) {
        self.observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    const LABEL: &str = "configmap kubernaut-system/kubernaut-gateway-config";

    fn data(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn seed() -> BTreeMap<String, String> {
        data(&[
            ("storm.yaml", "rate_threshold: 7\n"),
            ("dedup.yaml", "ttl: 10m\n"),
            ("retry.yaml", "max_attempts: 3\n"),
        ])
    }

    fn fed(documents: &Documents) -> Result<FileConfigSource, ConfigErrors> {
        FileConfigSource::from_documents(LABEL.to_owned(), documents, Arc::new(crate::NoClock))
    }

    /// A fed source on the seed documents, counting the records its observers see.
    fn started() -> (Arc<FileConfigSource>, Arc<AtomicUsize>) {
        let source = Arc::new(fed(&Documents::from_data(&seed())).unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        source.on_reload(Box::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        (source, seen)
    }

    fn status(source: &FileConfigSource, kind: ConfigKind) -> ConfigStatus {
        source
            .status()
            .into_iter()
            .find(|s| s.kind == kind)
            .unwrap()
    }

    fn errors(record: &ReloadRecord) -> &[String] {
        match &record.result {
            ReloadResult::Rejected(errors) => errors,
            ReloadResult::Applied => panic!("expected a rejection: {record:?}"),
        }
    }

    #[test]
    fn fed_documents_load_with_their_origin_label() {
        let (source, _) = started();
        assert_eq!(source.storm().rate_threshold.get(), 7);
        assert_eq!(source.dedup().ttl.get(), Duration::from_secs(600));
        assert_eq!(source.retry().max_attempts, 3);
        assert!(source.warnings().is_empty(), "{:?}", source.warnings());
        assert_eq!(source.layout_warning(), None);
        assert_eq!(source.dir(), None);
        assert_eq!(source.origin(), LABEL);
        let storm = status(&source, ConfigKind::Storm);
        assert_eq!(storm.origin, format!("{LABEL}: storm.yaml"));
        assert_eq!(storm.hash.len(), 64);
        assert_eq!(storm.generation, 0);
    }

    #[test]
    fn a_missing_key_or_container_gives_defaults_with_a_warning() {
        let source = fed(&Documents::from_data(&data(&[("dedup.yaml", "ttl: 1m\n")]))).unwrap();
        assert_eq!(*source.storm(), StormSettings::default());
        assert_eq!(source.dedup().ttl.get(), Duration::from_secs(60));
        let warnings = source.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("{LABEL}: storm.yaml not found")),
            "{warnings:?}"
        );
        assert_eq!(status(&source, ConfigKind::Storm).origin, DEFAULTS);
        assert_eq!(status(&source, ConfigKind::Storm).hash, "");

        let source = fed(&Documents::absent()).unwrap();
        assert_eq!(
            source.warnings(),
            [format!(
                "{LABEL} does not exist: using built-in defaults for all settings"
            )]
        );
        let source = fed(&Documents::from(None)).unwrap();
        assert_eq!(source.warnings().len(), 1);
    }

    #[test]
    fn invalid_documents_at_start_up_report_every_problem_with_the_label() {
        let mut bad = seed();
        bad.insert(
            "storm.yaml".into(),
            "rate_threshold: 0\nsampling_rate: 2\n".into(),
        );
        bad.insert("retry.yaml".into(), String::new());
        let errors = fed(&Documents::from_data(&bad)).unwrap_err();
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!("{LABEL}: storm.yaml: rate_threshold: ")),
            "{lines:?}"
        );
        assert!(lines[1].contains("sampling_rate"), "{lines:?}");
        assert!(
            lines[2].starts_with(&format!("{LABEL}: retry.yaml: ")) && lines[2].contains("empty"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_valid_change_is_applied_and_observed() {
        let (source, seen) = started();
        let mut changed = seed();
        changed.insert("dedup.yaml".into(), "ttl: 2m\n".into());
        let records = source.apply_documents(&Documents::from_data(&changed));
        assert_eq!(records.len(), 1, "only dedup changed: {records:?}");
        assert_eq!(records[0].kind, ConfigKind::Dedup);
        assert_eq!(records[0].result, ReloadResult::Applied);
        assert_eq!(records[0].generation, 1);
        assert_eq!(source.dedup().ttl.get(), Duration::from_secs(120));
        assert_eq!(source.generation(ConfigKind::Dedup), 1);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        let dedup = status(&source, ConfigKind::Dedup);
        assert_eq!(dedup.last_reload.as_ref(), Some(&records[0]));
        assert_eq!(dedup.hash, records[0].hash);
        assert_eq!(dedup.origin, format!("{LABEL}: dedup.yaml"));
    }

    #[test]
    fn an_invalid_change_is_rejected_and_the_settings_in_force_stay() {
        let (source, seen) = started();
        let before = status(&source, ConfigKind::Storm);
        let mut bad = seed();
        bad.insert("storm.yaml".into(), "rate_threshold: 0\n".into());
        let records = source.apply_documents(&Documents::from_data(&bad));
        assert_eq!(records.len(), 1, "{records:?}");
        let lines = errors(&records[0]);
        assert!(
            lines[0].starts_with(&format!("{LABEL}: storm.yaml: rate_threshold: ")),
            "{lines:?}"
        );
        assert_eq!(source.storm().rate_threshold.get(), 7);
        assert_eq!(source.generation(ConfigKind::Storm), 0);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "a rejection is observed too"
        );
        let after = status(&source, ConfigKind::Storm);
        assert_eq!(after.hash, before.hash, "the hash in force is the old one");
        assert_eq!(after.last_reload.as_ref(), Some(&records[0]));

        // Still invalid: not judged again. Back to the good content: a change, applied.
        assert!(
            source
                .apply_documents(&Documents::from_data(&bad))
                .is_empty()
        );
        let records = source.apply_documents(&Documents::from_data(&seed()));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].result, ReloadResult::Applied);
    }

    #[test]
    fn a_removed_key_or_a_deleted_container_is_rejected() {
        let (source, _) = started();
        let mut fewer = seed();
        fewer.remove("retry.yaml");
        let records = source.apply_documents(&Documents::from_data(&fewer));
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].kind, ConfigKind::Retry);
        assert_eq!(
            errors(&records[0]),
            [format!(
                "{LABEL}: retry.yaml: the key is gone; keeping the settings in force"
            )]
        );
        assert_eq!(source.retry().max_attempts, 3);

        let records = source.apply_documents(&Documents::absent());
        assert_eq!(
            records.iter().map(|r| r.kind).collect::<Vec<_>>(),
            [ConfigKind::Storm, ConfigKind::Dedup],
            "retry was already judged missing"
        );
        assert_eq!(
            errors(&records[0]),
            [format!(
                "{LABEL}: storm.yaml: {LABEL} is gone; keeping the settings in force"
            )]
        );
        assert_eq!(source.storm().rate_threshold.get(), 7);
        assert_eq!(source.dedup().ttl.get(), Duration::from_secs(600));
        assert!(
            ConfigKind::ALL
                .iter()
                .all(|kind| source.generation(*kind) == 0)
        );
    }

    #[test]
    fn identical_content_and_other_keys_are_not_judged() {
        let (source, seen) = started();
        assert!(
            source
                .apply_documents(&Documents::from_data(&seed()))
                .is_empty()
        );
        let mut more = seed();
        more.insert("README".into(), "not settings".into());
        assert!(
            source
                .apply_documents(&Documents::from_data(&more))
                .is_empty()
        );
        assert_eq!(seen.load(Ordering::SeqCst), 0);
        assert!(source.reload_now().is_empty(), "the latest documents again");
    }

    #[test]
    fn reload_now_refreshes_when_told_how() {
        let current = Arc::new(Mutex::new(Ok(Documents::from_data(&seed()))));
        let served = current.clone();
        let source = fed(&Documents::from_data(&seed()))
            .unwrap()
            .with_refresh(move || served.lock().unwrap().clone());
        assert!(source.reload_now().is_empty());

        let mut changed = seed();
        changed.insert("storm.yaml".into(), "rate_threshold: 9\n".into());
        *current.lock().unwrap() = Ok(Documents::from_data(&changed));
        let records = source.reload_now();
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(source.storm().rate_threshold.get(), 9);

        *current.lock().unwrap() = Err("connection refused".to_owned());
        assert!(
            source.reload_now().is_empty(),
            "a failed read changes nothing"
        );
        assert_eq!(source.storm().rate_threshold.get(), 9);
        assert!(
            source.reload_now().is_empty(),
            "and is not an attempt either"
        );
    }

    #[test]
    fn a_refresh_that_races_with_a_feed_yields_to_it() {
        // The feed delivers newer documents while the refresh reads older ones.
        let slot: Arc<Mutex<Option<Arc<FileConfigSource>>>> = Arc::new(Mutex::new(None));
        let feeder = slot.clone();
        let mut newer = seed();
        newer.insert("storm.yaml".into(), "rate_threshold: 11\n".into());
        let mut older = seed();
        older.insert("storm.yaml".into(), "rate_threshold: 10\n".into());
        let source = Arc::new(fed(&Documents::from_data(&seed())).unwrap().with_refresh(
            move || {
                let source = feeder.lock().unwrap().clone().unwrap();
                source.apply_documents(&Documents::from_data(&newer));
                Ok(Documents::from_data(&older))
            },
        ));
        *slot.lock().unwrap() = Some(source.clone());
        assert!(
            source.reload_now().is_empty(),
            "the fed documents were judged by the feed"
        );
        assert_eq!(source.storm().rate_threshold.get(), 11);
        assert_eq!(source.generation(ConfigKind::Storm), 1);
    }

    #[tokio::test]
    async fn a_fed_source_has_nothing_to_watch() {
        let (source, _) = started();
        let _handle = source.watch(crate::WatchOptions::default());
        tokio::task::yield_now().await;
        assert_eq!(source.generation(ConfigKind::Storm), 0);
    }
}
