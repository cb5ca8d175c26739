//! The [`ConfigSource`](gateway_ports::ConfigSource) port over the settings documents: a config
//! directory (the mounted ConfigMap `kubernaut-gateway-config`), or documents fed from elsewhere;
//! one document per settings type (`storm.yaml`, `dedup.yaml`, `retry.yaml`), hot-reloaded.
//!
//! What a file means:
//! - at start-up, a missing directory or file: the built-in defaults for that type, with a warning
//!   (a gateway without its ConfigMap still runs, and says so);
//! - an empty file, invalid YAML, an unknown key, a wrong type or a value out of range: an error
//!   naming the file, the key and the reason; at start-up the gateway refuses to run with it, on a
//!   reload the change is rejected and the settings in force stay;
//! - a key left out: its default; an environment override (`GATEWAY_SETTINGS_STORM_RATE_THRESHOLD`,
//!   …) wins over the file;
//! - a file that disappears after start-up: rejected (counted as an error), the settings in force
//!   stay: an accidentally emptied ConfigMap must not silently reset thresholds mid-incident.
//!
//! [`FileConfigSource::watch`] watches the directory (the kubelet swaps a `..data` symlink; it
//! never writes the visible files), debounces, skips content identical to the last attempt, and
//! re-reads periodically as a safety net.
//!
//! The same judging (figment with environment overrides, validation, skipping content identical
//! to the last attempt, atomic swap, audit line, reload records, status) also serves documents
//! fed from elsewhere: [`FileConfigSource::from_documents`] at start-up and
//! [`FileConfigSource::apply_documents`] for each change, with the rules above (a missing
//! document is a missing file; one that disappears after start-up is rejected; so is a deleted
//! container, [`Documents::absent`]). The app feeds the ConfigMap read through the Kubernetes API
//! this way; origins, problems and audit lines then name `configmap NAMESPACE/NAME: storm.yaml`.

mod parse;
mod read;
mod source;
mod watch;

pub use parse::{ENV_BASE, env_prefix};
pub use read::Documents;
pub use source::FileConfigSource;
pub use watch::{WatchHandle, WatchOptions};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_ports::{Clock, ConfigSource, DedupSettings, RetrySettings, StormSettings};

/// One problem with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file.
    pub file: PathBuf,
    /// The key concerned, when there is one (`rate_threshold`).
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {key}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// Every problem found in a config directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<FileProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// The settings read from a directory, and what the operator should know about them.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `storm.yaml`, or the defaults.
    pub storm: StormSettings,
    /// `dedup.yaml`, or the defaults.
    pub dedup: DedupSettings,
    /// `retry.yaml`, or the defaults.
    pub retry: RetrySettings,
    /// Files that were missing (defaults used), in words.
    pub warnings: Vec<String>,
}

/// Validates the config files of `dir` (as `gateway config check` does), reporting every problem
/// of every file at once.
pub fn load_dir(dir: &Path) -> Result<Loaded, ConfigErrors> {
    let clock: Arc<dyn Clock> = Arc::new(NoClock);
    let source = FileConfigSource::load(dir, clock)?;
    Ok(Loaded {
        storm: (*source.storm()).clone(),
        dedup: (*source.dedup()).clone(),
        retry: (*source.retry()).clone(),
        warnings: source.warnings(),
    })
}

/// A start-up load never stamps a reload record, so it needs no clock.
struct NoClock;

impl Clock for NoClock {
    fn now(&self) -> gateway_ports::Timestamp {
        gateway_ports::Timestamp::EPOCH
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn the_seed_configmap_files_load() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "storm.yaml",
            "rate_threshold: 3\npattern_threshold: 5\nbuffer_threshold: 5\ninactivity_timeout: 60s\nmax_window_duration: 5m\nsampling_threshold: 0.95\nsampling_rate: 0.5\n",
        );
        write(dir.path(), "dedup.yaml", "ttl: 10m\n");
        write(
            dir.path(),
            "retry.yaml",
            "max_attempts: 3\ninitial_backoff: 100ms\nmax_backoff: 5s\n",
        );
        let loaded = load_dir(dir.path()).unwrap();
        assert_eq!(loaded.storm.rate_threshold.get(), 3);
        assert_eq!(loaded.dedup.ttl.get(), Duration::from_secs(600));
        assert_eq!(loaded.retry.initial_backoff, Duration::from_millis(100));
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn missing_directory_and_files_give_defaults_with_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load_dir(&dir.path().join("absent")).unwrap();
        assert_eq!(loaded.storm, StormSettings::default());
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        write(dir.path(), "dedup.yaml", "ttl: 1m\n");
        let loaded = load_dir(dir.path()).unwrap();
        assert_eq!(
            loaded.warnings.len(),
            2,
            "storm.yaml and retry.yaml: {:?}",
            loaded.warnings
        );
    }

    #[test]
    fn every_problem_of_every_file_is_reported_with_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "storm.yaml",
            "rate_threshold: 0\nsampling_rate: 2\n",
        );
        write(dir.path(), "dedup.yaml", "ttl: soon\n");
        write(dir.path(), "retry.yaml", "");
        let errors = load_dir(dir.path()).unwrap_err().0;
        let summary: Vec<(String, Option<String>)> = errors
            .iter()
            .map(|p| {
                (
                    p.file.file_name().unwrap().to_string_lossy().into_owned(),
                    p.key.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("storm.yaml".into(), Some("rate_threshold".into())),
                ("storm.yaml".into(), Some("sampling_rate".into())),
                ("dedup.yaml".into(), Some("ttl".into())),
                ("retry.yaml".into(), None),
            ]
        );
        assert!(
            errors[2].reason.contains("invalid duration"),
            "{}",
            errors[2]
        );
        assert!(errors[3].reason.contains("empty"), "{}", errors[3]);
    }
}
