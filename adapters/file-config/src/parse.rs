//! One settings document's text → validated settings, through figment.
//!
//! Layers, later ones winning: built-in defaults ← the document ← environment overrides
//! (`GATEWAY_SETTINGS_STORM_RATE_THRESHOLD=3`, `GATEWAY_SETTINGS_DEDUP_TTL=10m`,
//! `GATEWAY_SETTINGS_RETRY_MAX_ATTEMPTS=5`, …). A fresh figment is built for every parse, since
//! figment reads its providers when it is built.

use figment::Figment;
use figment::providers::{Env, Format, Serialized};
use gateway_ports::settings::{
    RawDedupSettings, RawRetrySettings, RawSecuritySettings, RawStormSettings,
};
use gateway_ports::{
    ConfigKind, DedupSettings, InvalidSettings, RetrySettings, SecuritySettings, StormSettings,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::DocumentProblem;

/// YAML through `serde_norway`, the maintained fork of `serde_yaml` (figment's own `yaml` feature
/// pulls in the deprecated crate).
struct Yaml;

impl Format for Yaml {
    type Error = serde_norway::Error;
    const NAME: &'static str = "YAML";

    fn from_str<T: DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        serde_norway::from_str(string)
    }
}

/// The start of every environment override's name.
pub const ENV_BASE: &str = "GATEWAY_SETTINGS_";

/// The environment prefix of a settings type's overrides (`GATEWAY_SETTINGS_STORM_`).
pub fn env_prefix(kind: ConfigKind) -> String {
    prefix_under(ENV_BASE, kind)
}

fn prefix_under(base: &str, kind: ConfigKind) -> String {
    format!("{base}{}_", kind.as_str().to_ascii_uppercase())
}

/// Validated settings of one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `storm.yaml`
    Storm(StormSettings),
    /// `dedup.yaml`
    Dedup(DedupSettings),
    /// `retry.yaml`
    Retry(RetrySettings),
    /// `security.yaml`
    Security(SecuritySettings),
}

fn problem(document: &str, key: Option<String>, reason: impl Into<String>) -> DocumentProblem {
    DocumentProblem {
        document: document.to_owned(),
        key,
        reason: reason.into(),
    }
}

fn extract<R: Serialize + DeserializeOwned + Default>(
    kind: ConfigKind,
    document: &str,
    text: &str,
    env_base: &str,
) -> Result<R, Vec<DocumentProblem>> {
    let prefix = prefix_under(env_base, kind);
    Figment::from(Serialized::defaults(R::default()))
        .merge(Yaml::string(text))
        .merge(Env::prefixed(&prefix))
        .extract::<R>()
        .map_err(|error| {
            error
                .into_iter()
                .map(|e| {
                    let from_env = e
                        .metadata
                        .as_ref()
                        .is_some_and(|m| m.name.contains("environment"));
                    let key = match &e.kind {
                        figment::error::Kind::UnknownField(field, _) => Some(field.clone()),
                        _ if !e.path.is_empty() => Some(e.path.join(".")),
                        _ => None,
                    };
                    let mut reason = e.kind.to_string();
                    if from_env {
                        reason.push_str(&format!(
                            " (set by the environment, prefix {})",
                            env_prefix(kind)
                        ));
                    }
                    problem(document, key, reason)
                })
                .collect()
        })
}

fn invalid(document: &str, invalid: InvalidSettings) -> Vec<DocumentProblem> {
    invalid
        .errors
        .into_iter()
        .map(|e| problem(document, Some(e.key), e.reason))
        .collect()
}

/// Parses and validates one document's content, as every source's documents are judged: YAML,
/// defaults ← document ← environment, then `validate`. `document` names it in errors.
///
/// Any bytes give settings or the problems found, never a panic (fuzzed: `fuzz/`).
pub fn parse(
    kind: ConfigKind,
    document: &str,
    bytes: &[u8],
) -> Result<Parsed, Vec<DocumentProblem>> {
    parse_with_env(kind, document, bytes, ENV_BASE)
}

/// [`parse`], with environment overrides read under `env_base` instead of [`ENV_BASE`].
fn parse_with_env(
    kind: ConfigKind,
    document: &str,
    bytes: &[u8],
    env_base: &str,
) -> Result<Parsed, Vec<DocumentProblem>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| vec![problem(document, None, format!("not UTF-8 text: {e}"))])?;
    if text.trim().is_empty() {
        return Err(vec![problem(
            document,
            None,
            "the file is empty; leave out only the keys you want defaulted",
        )]);
    }
    match kind {
        ConfigKind::Storm => extract::<RawStormSettings>(kind, document, text, env_base)?
            .validate()
            .map(Parsed::Storm)
            .map_err(|e| invalid(document, e)),
        ConfigKind::Dedup => extract::<RawDedupSettings>(kind, document, text, env_base)?
            .validate()
            .map(Parsed::Dedup)
            .map_err(|e| invalid(document, e)),
        ConfigKind::Retry => extract::<RawRetrySettings>(kind, document, text, env_base)?
            .validate()
            .map(Parsed::Retry)
            .map_err(|e| invalid(document, e)),
        ConfigKind::Security => extract::<RawSecuritySettings>(kind, document, text, env_base)?
            .validate()
            .map(Parsed::Security)
            .map_err(|e| invalid(document, e)),
    }
}

/// The settings as the key → value map of their file form (for audit diffs and `/config`).
pub fn as_map<R: Serialize>(raw: &R) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(raw) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

impl Parsed {
    /// The file form of these settings, as a map.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match self {
            Parsed::Storm(s) => as_map(&RawStormSettings::from(s)),
            Parsed::Dedup(s) => as_map(&RawDedupSettings::from(s)),
            Parsed::Retry(s) => as_map(&RawRetrySettings::from(s)),
            Parsed::Security(s) => as_map(&RawSecuritySettings::from(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn storm(text: &str) -> Result<Parsed, Vec<DocumentProblem>> {
        parse(ConfigKind::Storm, "storm.yaml", text.as_bytes())
    }

    #[test]
    fn left_out_keys_take_their_defaults() {
        let Ok(Parsed::Storm(s)) = storm("rate_threshold: 3\n") else {
            panic!()
        };
        assert_eq!(s.rate_threshold.get(), 3);
        assert_eq!(s.max_window_duration, Duration::from_secs(300));
    }

    #[test]
    fn errors_name_the_key() {
        let e = storm("rate_threshold: lots\n").unwrap_err();
        assert_eq!(e[0].key.as_deref(), Some("rate_threshold"), "{}", e[0]);
        let e = storm("rate_treshold: 3\n").unwrap_err();
        assert_eq!(e[0].key.as_deref(), Some("rate_treshold"), "{}", e[0]);
        let e = storm("rate_threshold: 0\nsampling_rate: 7\n").unwrap_err();
        assert_eq!(e.len(), 2);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's signature
    fn the_environment_overrides_the_file_and_its_errors_say_so() {
        // A prefix of its own, so tests running in parallel never see these variables.
        let storm = |text: &str| {
            parse_with_env(
                ConfigKind::Storm,
                "storm.yaml",
                text.as_bytes(),
                "ENV_OVERRIDE_TEST_",
            )
        };
        figment::Jail::expect_with(|jail| {
            jail.set_env("ENV_OVERRIDE_TEST_STORM_RATE_THRESHOLD", 42);
            let Ok(Parsed::Storm(s)) = storm("rate_threshold: 3\npattern_threshold: 7\n") else {
                panic!()
            };
            assert_eq!((s.rate_threshold.get(), s.pattern_threshold.get()), (42, 7));
            jail.set_env("ENV_OVERRIDE_TEST_STORM_RATE_THRESHOLD", "many");
            let e = storm("rate_threshold: 3\n").unwrap_err();
            assert_eq!(e[0].key.as_deref(), Some("rate_threshold"), "{}", e[0]);
            assert!(e[0].reason.contains("environment"), "{}", e[0]);
            Ok(())
        });
    }

    #[test]
    fn a_namespace_list_replaces_the_default_and_a_null_one_is_refused() {
        let security = |text: &str| parse(ConfigKind::Security, "security.yaml", text.as_bytes());
        let Ok(Parsed::Security(s)) = security("allowed_namespaces: [team-a]\n") else {
            panic!()
        };
        assert_eq!(
            s.allowed_namespaces.patterns().len(),
            1,
            "not appended to `*`"
        );
        assert!(!s.allowed_namespaces.allows("default"));
        let Ok(Parsed::Security(s)) = security("allowed_namespaces: []\n") else {
            panic!()
        };
        assert!(s.allowed_namespaces.patterns().is_empty());
        let e = security("allowed_namespaces:\n").unwrap_err();
        assert_eq!(e[0].key.as_deref(), Some("allowed_namespaces"), "{}", e[0]);
        let e = security("allowed_namespaces: team-a\n").unwrap_err();
        assert_eq!(e[0].key.as_deref(), Some("allowed_namespaces"), "{}", e[0]);
    }

    #[test]
    fn broken_yaml_empty_and_binary_files_are_refused() {
        let e = storm("rate_threshold: [1\n").unwrap_err();
        assert!(e[0].reason.contains("line"), "{}", e[0]);
        assert!(storm("  \n").unwrap_err()[0].reason.contains("empty"));
        assert!(parse(ConfigKind::Storm, "storm.yaml", b"\xff\xfe").is_err());
    }
}
