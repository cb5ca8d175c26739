//! The [`ConfigSource`](gateway_ports::ConfigSource) port over a config directory: the mounted
//! ConfigMap `kubernaut-gateway-config`, one file per settings type (`storm.yaml`, `dedup.yaml`,
//! `retry.yaml`).
//!
//! What a file means:
//! - a missing directory or file: the built-in defaults for that type, with a warning (a gateway
//!   without its ConfigMap still runs, and says so);
//! - an empty file, invalid YAML, an unknown key, a wrong type or a value out of range: an error
//!   naming the file, the key and the reason; every problem of a file is reported at once;
//! - a key left out: its default.
//!
//! Loading happens at start-up here; hot reload (watching the directory) builds on the same parse.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use gateway_ports::settings::{RawDedupSettings, RawRetrySettings, RawStormSettings};
use gateway_ports::{
    ConfigKind, DedupSettings, InvalidSettings, RetrySettings, SettingsCell, StormSettings,
};
use serde::de::DeserializeOwned;

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

impl Loaded {
    /// A `ConfigSource` holding these settings.
    pub fn into_source(self) -> SettingsCell {
        SettingsCell::new(self.storm, self.dedup, self.retry)
    }
}

fn problems_of(file: &Path, invalid: InvalidSettings) -> Vec<FileProblem> {
    invalid
        .errors
        .into_iter()
        .map(|e| FileProblem {
            file: file.to_owned(),
            key: Some(e.key),
            reason: e.reason,
        })
        .collect()
}

/// Parses one file's text into its raw form: YAML, every key optional, unknown keys refused.
fn parse_raw<R: DeserializeOwned>(file: &Path, text: &str) -> Result<R, Vec<FileProblem>> {
    let problem = |key: Option<String>, reason: String| {
        vec![FileProblem {
            file: file.to_owned(),
            key,
            reason,
        }]
    };
    if text.trim().is_empty() {
        return Err(problem(
            None,
            "the file is empty; leave out only the keys you want defaulted".to_owned(),
        ));
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let key = (path != ".").then_some(path);
        problem(key, e.into_inner().to_string())
    })
}

/// Parses and validates `storm.yaml` text.
pub fn parse_storm(file: &Path, text: &str) -> Result<StormSettings, Vec<FileProblem>> {
    parse_raw::<RawStormSettings>(file, text)?
        .validate()
        .map_err(|e| problems_of(file, e))
}

/// Parses and validates `dedup.yaml` text.
pub fn parse_dedup(file: &Path, text: &str) -> Result<DedupSettings, Vec<FileProblem>> {
    parse_raw::<RawDedupSettings>(file, text)?
        .validate()
        .map_err(|e| problems_of(file, e))
}

/// Parses and validates `retry.yaml` text.
pub fn parse_retry(file: &Path, text: &str) -> Result<RetrySettings, Vec<FileProblem>> {
    parse_raw::<RawRetrySettings>(file, text)?
        .validate()
        .map_err(|e| problems_of(file, e))
}

/// Reads one file: `Ok(None)` when it does not exist.
fn read(file: &Path) -> Result<Option<String>, Vec<FileProblem>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(vec![FileProblem {
            file: file.to_owned(),
            key: None,
            reason: format!("cannot read: {e}"),
        }]),
    }
}

/// Loads all three settings types from `dir`, reporting every problem of every file at once.
pub fn load_dir(dir: &Path) -> Result<Loaded, ConfigErrors> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if !dir.is_dir() {
        warnings.push(format!(
            "config directory {} does not exist: using built-in defaults for all settings",
            dir.display()
        ));
    }
    let mut load = |kind: ConfigKind| -> Option<String> {
        let file = dir.join(kind.file_name());
        match read(&file) {
            Ok(Some(text)) => Some(text),
            Ok(None) => {
                if dir.is_dir() {
                    warnings.push(format!(
                        "{} not found: using built-in {kind} defaults",
                        file.display()
                    ));
                }
                None
            }
            Err(mut p) => {
                problems.append(&mut p);
                None
            }
        }
    };
    let (storm_text, dedup_text, retry_text) = (
        load(ConfigKind::Storm),
        load(ConfigKind::Dedup),
        load(ConfigKind::Retry),
    );

    fn settle<T: Default>(
        r: Option<Result<T, Vec<FileProblem>>>,
        problems: &mut Vec<FileProblem>,
    ) -> T {
        match r {
            Some(Ok(v)) => v,
            Some(Err(mut p)) => {
                problems.append(&mut p);
                T::default()
            }
            None => T::default(),
        }
    }
    let storm = settle(
        storm_text.map(|t| parse_storm(&dir.join(ConfigKind::Storm.file_name()), &t)),
        &mut problems,
    );
    let dedup = settle(
        dedup_text.map(|t| parse_dedup(&dir.join(ConfigKind::Dedup.file_name()), &t)),
        &mut problems,
    );
    let retry = settle(
        retry_text.map(|t| parse_retry(&dir.join(ConfigKind::Retry.file_name()), &t)),
        &mut problems,
    );
    if problems.is_empty() {
        Ok(Loaded {
            storm,
            dedup,
            retry,
            warnings,
        })
    } else {
        Err(ConfigErrors(problems))
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

    #[test]
    fn wrong_types_unknown_keys_and_bad_yaml_name_the_problem() {
        let f = Path::new("storm.yaml");
        let e = parse_storm(f, "rate_threshold: lots\n").unwrap_err();
        assert_eq!(e[0].key.as_deref(), Some("rate_threshold"), "{}", e[0]);
        let e = parse_storm(f, "rate_treshold: 3\n").unwrap_err();
        assert!(
            e[0].reason.contains("unknown field `rate_treshold`"),
            "{}",
            e[0]
        );
        let e = parse_storm(f, "rate_threshold: [1\n").unwrap_err();
        assert!(e[0].reason.contains("line"), "{}", e[0]);
        let e = parse_storm(f, "- 1\n- 2\n").unwrap_err();
        assert_eq!(e[0].key, None, "{}", e[0]);
    }
}
