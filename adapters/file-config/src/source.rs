//! [`FileConfigSource`]: the settings of a config directory, reloaded on demand or by the watcher.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gateway_ports::settings::{RawDedupSettings, RawRetrySettings, RawStormSettings};
use gateway_ports::{
    ChangeListener, Clock, ConfigControl, ConfigKind, ConfigSource, ConfigStatus, DedupSettings,
    ReloadRecord, ReloadResult, RetrySettings, SettingsCell, StormSettings,
};

use crate::parse::{Parsed, as_map, parse};
use crate::read::{Content, DirSnapshot, MISSING, index, mounted_as_directory, read_dir};
use crate::{ConfigErrors, FileProblem};

type Observer = Box<dyn Fn(&ReloadRecord) + Send + Sync>;

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

/// The hot-reloadable settings of one config directory.
///
/// Reads never block (they go to an arc-swap cell); a reload validates each file on its own and
/// swaps in the valid ones, one atomic replacement per settings type.
pub struct FileConfigSource {
    dir: PathBuf,
    cell: SettingsCell,
    clock: Arc<dyn Clock>,
    /// Held for a whole reload, so the watcher and `POST /-/reload` never interleave.
    state: Mutex<[KindState; 3]>,
    observers: Mutex<Vec<Observer>>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for FileConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConfigSource")
            .field("dir", &self.dir)
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
        let snapshot = read_dir(&dir).map_err(|e| {
            ConfigErrors(vec![FileProblem {
                file: dir.clone(),
                key: None,
                reason: format!("cannot read: {e}"),
            }])
        })?;
        let mut warnings = Vec::new();
        if !dir.is_dir() {
            warnings.push(format!(
                "config directory {} does not exist: using built-in defaults for all settings",
                dir.display()
            ));
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
            let file = dir.join(kind.file_name());
            let content = snapshot.content(kind);
            let Content::Bytes(bytes) = content else {
                if dir.is_dir() {
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
            dir,
            cell: SettingsCell::new(storm, dedup, retry),
            clock,
            state: Mutex::new(states),
            observers: Mutex::new(Vec::new()),
            warnings,
        })
    }

    /// What the operator should know about the start-up load (missing files, a subPath mount).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// A warning when the config files are not symlinks through `..data`: in Kubernetes that is
    /// a `subPath` mount, which is never updated. (On a laptop, plain files are fine.)
    pub fn layout_warning(&self) -> Option<String> {
        (mounted_as_directory(&self.dir) == Some(false)).then(|| {
            format!(
                "the config files in {} are not symlinks through ..data: if this is a Kubernetes ConfigMap \
                 mounted with subPath, Kubernetes will never update it; mount the ConfigMap as a directory",
                self.dir.display()
            )
        })
    }

    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        snapshot: &DirSnapshot,
        state: &mut KindState,
    ) -> Option<ReloadRecord> {
        let content = snapshot.content(kind);
        let hash = content.hash();
        if hash == state.attempted {
            return None;
        }
        state.attempted = hash.clone();
        #[allow(clippy::disallowed_methods)] // a duration metric, not a domain decision
        let started = Instant::now();
        let file = self.dir.join(kind.file_name());
        let outcome = match content {
            Content::Missing => Err(vec![FileProblem {
                file: file.clone(),
                key: None,
                reason: "the file is gone; keeping the settings in force".to_owned(),
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
        let states = self.state.lock().unwrap_or_else(|p| p.into_inner());
        ConfigKind::ALL
            .iter()
            .map(|kind| {
                let state = &states[index(*kind)];
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
        let mut states = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = match read_dir(&self.dir) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the config directory; keeping the settings in force");
                return Vec::new();
            }
        };
        let records: Vec<ReloadRecord> = ConfigKind::ALL
            .iter()
            .filter_map(|kind| self.judge(*kind, &snapshot, &mut states[index(*kind)]))
            .collect();
        drop(states);
        let observers = self.observers.lock().unwrap_or_else(|p| p.into_inner());
        for record in &records {
            for observer in observers.iter() {
                observer(record);
            }
        }
        records
    }

    fn on_reload(&self, observer: Box<dyn Fn(&ReloadRecord) + Send + Sync>) {
        self.observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }
}
