//! The [`ConfigSource`] port over the settings documents, one per settings type (`storm.yaml`,
//! `dedup.yaml`, `retry.yaml`, `security.yaml`), hot-reloaded: one judge, any number of sources.
//!
//! What a document means, whichever source holds it:
//! - at start-up, a missing container (directory, ConfigMap) or document: the built-in defaults
//!   for that type, with a warning (a gateway without its ConfigMap still runs, and says so);
//! - an empty document, invalid YAML, an unknown key, a wrong type or a value out of range: an
//!   error naming the document, the key and the reason; at start-up the gateway refuses to run
//!   with it, on a reload the change is rejected and the settings in force stay;
//! - a key left out: its default; an environment override (`GATEWAY_SETTINGS_STORM_RATE_THRESHOLD`,
//!   …) wins over the document;
//! - a document that disappears after start-up (or its whole container): rejected (counted as an
//!   error), the settings in force stay: an accidentally emptied ConfigMap must not silently
//!   reset thresholds mid-incident.
//!
//! The judging is one type, [`Judge`] (`judge`): validation (`parse`: a fresh figment per
//! document, defaults ← document ← environment, YAML by `serde_norway`), comparison with the
//! last *attempted* content hash, one atomic swap per settings type, one audit line per attempt,
//! [`ReloadRecord`](gateway_ports::ReloadRecord)s to observers, the status `/config` shows.
//!
//! Sources only hand it [`Documents`] and say how they are named ([`DocumentNames`]):
//! - [`DirSource`] (`dir`, `watch`): the config directory, read through `..data` as one set and
//!   watched with notify (the kubelet swaps a `..data` symlink; it never writes the visible
//!   files), debounced, re-read periodically as a safety net; files read
//!   `/etc/kubernaut/config/storm.yaml`;
//! - [`DocumentSource`] (`source`) over any [`ReadDocuments`]: what `DirSource` is made of, and
//!   what the app makes of the ConfigMap read through the Kubernetes API (read with `get`, fed by
//!   the watch with [`DocumentSource::feed`]); keys read `configmap NAMESPACE/NAME: storm.yaml`;
//! - [`MemorySource`] (`memory`): documents set and removed by the program, for tests; they read
//!   `memory: storm.yaml`.
//!
//! Every source serialises its reloads (its watcher or feed, and `POST /-/reload`), and judges
//! documents in the order it read them.

mod dir;
mod documents;
mod judge;
mod memory;
mod parse;
mod source;
mod tokens;
mod watch;

pub use dir::{ConfigDir, DirSource};
pub use documents::{DocumentNames, Documents};
pub use judge::{Judge, ReloadObserver};
pub use memory::{MEMORY, MemorySource};
pub use parse::{ENV_BASE, Parsed, env_prefix, parse};
pub use source::{DocumentSource, ReadDocuments, ReadError};
pub use tokens::{MIN_TOKEN_CHARS, TokenAuthenticator, TokenFile, TokenFileError, TokenReload};
pub use watch::{WatchHandle, WatchOptions, Watched, watch};

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use gateway_ports::{
    Clock, ConfigSource, DedupSettings, RetrySettings, SecuritySettings, StormSettings,
};

/// One problem with a settings document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentProblem {
    /// The document, as its source names it (`/etc/kubernaut/config/storm.yaml`,
    /// `configmap NAMESPACE/NAME: storm.yaml`).
    pub document: String,
    /// The key concerned, when there is one (`rate_threshold`).
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for DocumentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {key}: {}", self.document, self.reason),
            None => write!(f, "{}: {}", self.document, self.reason),
        }
    }
}

/// Every problem found in a set of settings documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<DocumentProblem>);

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
    /// `security.yaml`, or the defaults (every namespace allowed).
    pub security: SecuritySettings,
    /// Files that were missing (defaults used), in words.
    pub warnings: Vec<String>,
}

/// Validates the config files of `dir` (as `gateway config check` does), reporting every problem
/// of every file at once.
pub fn load_dir(dir: &Path) -> Result<Loaded, ConfigErrors> {
    let source = DirSource::load(dir, Arc::new(NoClock))?;
    Ok(Loaded {
        storm: (*source.storm()).clone(),
        dedup: (*source.dedup()).clone(),
        retry: (*source.retry()).clone(),
        security: (*source.security()).clone(),
        warnings: source.warnings().to_vec(),
    })
}

/// A start-up load never stamps a reload record, so it needs no clock.
#[derive(Debug)]
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
        write(
            dir.path(),
            "security.yaml",
            "allowed_namespaces:\n  - team-*\n  - production\n",
        );
        let loaded = load_dir(dir.path()).unwrap();
        assert_eq!(loaded.storm.rate_threshold.get(), 3);
        assert!(loaded.security.allowed_namespaces.allows("team-a"));
        assert!(!loaded.security.allowed_namespaces.allows("default"));
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
            3,
            "storm.yaml, retry.yaml and security.yaml: {:?}",
            loaded.warnings
        );
        assert!(
            loaded.warnings[2]
                .ends_with("security.yaml not found: using built-in security defaults"),
            "{:?}",
            loaded.warnings
        );
        assert!(loaded.security.allowed_namespaces.allows("any-namespace"));
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
        write(
            dir.path(),
            "security.yaml",
            "allowed_namespaces: [ok, Team-A]\n",
        );
        let errors = load_dir(dir.path()).unwrap_err().0;
        let summary: Vec<(String, Option<String>)> = errors
            .iter()
            .map(|p| {
                (
                    Path::new(&p.document)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
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
                ("security.yaml".into(), Some("allowed_namespaces".into())),
            ]
        );
        assert!(
            errors[4].reason.starts_with("entry 2 \"Team-A\" has 'T'"),
            "{}",
            errors[4]
        );
        assert!(
            errors[2].reason.contains("invalid duration"),
            "{}",
            errors[2]
        );
        assert!(errors[3].reason.contains("empty"), "{}", errors[3]);
    }
}
