//! [`Judge`]: the one place settings documents are judged, whichever source they come from.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use gateway_ports::settings::{
    RawDedupSettings, RawRetrySettings, RawSecuritySettings, RawStormSettings,
};
use gateway_ports::{
    ChangeListener, Clock, ConfigKind, ConfigSource, ConfigStatus, DedupSettings, ReloadRecord,
    ReloadResult, RetrySettings, SecuritySettings, SettingsCell, StormSettings,
};

use crate::documents::{Content, DocumentNames, Documents, MISSING, index};
use crate::parse::{Parsed, as_map, parse};
use crate::{ConfigErrors, DocumentProblem};

/// An observer of reload attempts ([`Judge::on_reload`]).
pub type ReloadObserver = Box<dyn Fn(&ReloadRecord) + Send + Sync>;

/// What the origin of built-in defaults reads.
pub(crate) const DEFAULTS: &str = "built-in defaults";

#[derive(Debug, Clone)]
struct KindState {
    /// Hash of the content last judged, valid or not: the same content is not judged twice, and
    /// reverting to the last good content after a rejected change *is* a change.
    attempted: String,
    /// Hash of the content in force ([`MISSING`] for built-in defaults).
    in_force: String,
    /// The document the settings in force came from, or [`DEFAULTS`].
    origin: String,
    last: Option<ReloadRecord>,
}

/// Judges settings documents and keeps the settings that passed: validation (defaults ← document
/// ← environment, see the [crate docs](crate)), comparison with the last *attempted* content,
/// one atomic swap per settings type into its [`SettingsCell`], one audit line per attempt,
/// [`ReloadRecord`]s to observers, and the status `/config` shows.
///
/// Each settings type is judged on its own: an invalid `storm.yaml` does not hold back a valid
/// `dedup.yaml` of the same set. The judge does no IO and knows nothing of where documents come
/// from; a source reads them and names them ([`DocumentNames`]).
///
/// Judgements must come one at a time and in the order their documents were read: every source
/// of this crate serialises them (a judgement itself is synchronous and short), so observers hear
/// records in that order too.
pub struct Judge {
    names: DocumentNames,
    cell: SettingsCell,
    clock: Arc<dyn Clock>,
    /// Held for a whole judgement, so `status` never sees one half-done.
    kinds: Mutex<[KindState; ConfigKind::ALL.len()]>,
    observers: Mutex<Vec<ReloadObserver>>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge")
            .field("names", &self.names)
            .field("cell", &self.cell)
            .finish_non_exhaustive()
    }
}

impl Judge {
    /// Judges the documents a source holds at start-up. A container that does not exist, or a
    /// document missing from it: the built-in defaults for that type, with a warning
    /// ([`Judge::warnings`]). Any invalid document: an error naming document, key and reason of
    /// every problem.
    pub fn start(
        names: DocumentNames,
        documents: &Documents,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigErrors> {
        let mut warnings = Vec::new();
        if !documents.is_present() {
            warnings.push(format!(
                "{} does not exist: using built-in defaults for all settings",
                names.container()
            ));
        }
        let mut problems = Vec::new();
        let mut storm = StormSettings::default();
        let mut dedup = DedupSettings::default();
        let mut retry = RetrySettings::default();
        let mut security = SecuritySettings::default();
        let mut kinds = ConfigKind::ALL.map(|_| KindState {
            attempted: MISSING.to_owned(),
            in_force: MISSING.to_owned(),
            origin: DEFAULTS.to_owned(),
            last: None,
        });
        for kind in ConfigKind::ALL {
            let name = names.document(kind);
            let content = documents.content(kind);
            let Content::Bytes(bytes) = content else {
                if documents.is_present() {
                    warnings.push(format!("{name} not found: using built-in {kind} defaults"));
                }
                continue;
            };
            match parse(kind, name, bytes) {
                Ok(Parsed::Storm(s)) => storm = s,
                Ok(Parsed::Dedup(s)) => dedup = s,
                Ok(Parsed::Retry(s)) => retry = s,
                Ok(Parsed::Security(s)) => security = s,
                Err(mut p) => problems.append(&mut p),
            }
            let state = &mut kinds[index(kind)];
            state.attempted = content.hash();
            state.in_force = content.hash();
            state.origin = name.to_owned();
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(Judge {
            names,
            cell: SettingsCell::new(storm, dedup, retry, security),
            clock,
            kinds: Mutex::new(kinds),
            observers: Mutex::new(Vec::new()),
            warnings,
        })
    }

    /// What the operator should know about the start-up documents (missing ones).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How the documents are named.
    pub fn names(&self) -> &DocumentNames {
        &self.names
    }

    fn lock(&self) -> MutexGuard<'_, [KindState; ConfigKind::ALL.len()]> {
        self.kinds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Judges every settings type of `documents` as a reload: each type whose content changed
    /// since its last attempt is validated and swapped in, or rejected with the settings in
    /// force kept (a document missing after start-up, or a container gone, is rejected: an
    /// emptied ConfigMap must not silently reset thresholds); each attempt leaves one audit line
    /// and one record, which every observer then hears. Returns the records, in
    /// [`ConfigKind::ALL`] order; unchanged types have none.
    pub fn judge(&self, documents: &Documents) -> Vec<ReloadRecord> {
        let mut kinds = self.lock();
        let records: Vec<ReloadRecord> = ConfigKind::ALL
            .iter()
            .filter_map(|kind| self.judge_kind(*kind, documents, &mut kinds[index(*kind)]))
            .collect();
        // Observers may ask for the status: they are told outside the lock.
        drop(kinds);
        let observers = self.observers.lock().unwrap_or_else(|p| p.into_inner());
        for record in &records {
            for observer in observers.iter() {
                observer(record);
            }
        }
        records
    }

    fn judge_kind(
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
        let name = self.names.document(kind);
        let outcome = match content {
            Content::Missing => Err(vec![DocumentProblem {
                document: name.to_owned(),
                key: None,
                reason: if documents.is_present() {
                    format!(
                        "the {} is gone; keeping the settings in force",
                        self.names.item()
                    )
                } else {
                    format!(
                        "{} is gone; keeping the settings in force",
                        self.names.container()
                    )
                },
            }]),
            Content::Bytes(bytes) => parse(kind, name, bytes),
        };
        let (result, changes) = match outcome {
            Ok(parsed) => {
                let before = self.settings_map(kind);
                let after = parsed.to_map();
                match parsed {
                    Parsed::Storm(s) => self.cell.set_storm(s),
                    Parsed::Dedup(s) => self.cell.set_dedup(s),
                    Parsed::Retry(s) => self.cell.set_retry(s),
                    Parsed::Security(s) => self.cell.set_security(s),
                }
                state.in_force = hash.clone();
                state.origin = name.to_owned();
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
        audit(&record, name, &changes);
        state.last = Some(record.clone());
        Some(record)
    }

    /// The settings in force of `kind`, as the key → value map of its document.
    pub fn settings_map(&self, kind: ConfigKind) -> serde_json::Map<String, serde_json::Value> {
        match kind {
            ConfigKind::Storm => as_map(&RawStormSettings::from(&*self.cell.storm())),
            ConfigKind::Dedup => as_map(&RawDedupSettings::from(&*self.cell.dedup())),
            ConfigKind::Retry => as_map(&RawRetrySettings::from(&*self.cell.retry())),
            ConfigKind::Security => as_map(&RawSecuritySettings::from(&*self.cell.security())),
        }
    }

    /// The state of every settings type (what [`ConfigControl::status`] answers).
    ///
    /// [`ConfigControl::status`]: gateway_ports::ConfigControl::status
    pub fn status(&self) -> Vec<ConfigStatus> {
        let kinds = self.lock();
        ConfigKind::ALL
            .iter()
            .map(|kind| {
                let state = &kinds[index(*kind)];
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

    /// Registers an observer of every reload attempt.
    pub fn on_reload(&self, observer: ReloadObserver) {
        self.observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }
}

impl ConfigSource for Judge {
    fn storm(&self) -> Arc<StormSettings> {
        self.cell.storm()
    }
    fn dedup(&self) -> Arc<DedupSettings> {
        self.cell.dedup()
    }
    fn retry(&self) -> Arc<RetrySettings> {
        self.cell.retry()
    }
    fn security(&self) -> Arc<SecuritySettings> {
        self.cell.security()
    }
    fn generation(&self, kind: ConfigKind) -> u64 {
        self.cell.generation(kind)
    }
    fn on_change(&self, listener: ChangeListener) {
        self.cell.on_change(listener);
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
fn audit(record: &ReloadRecord, file: &str, changes: &str) {
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
            ("security.yaml", "allowed_namespaces: [team-*]\n"),
        ])
    }

    fn judge(documents: &Documents) -> Result<Judge, ConfigErrors> {
        Judge::start(
            DocumentNames::labelled(LABEL, "key"),
            documents,
            Arc::new(crate::NoClock),
        )
    }

    /// A judge of the seed documents, counting the records its observers see.
    fn started() -> (Judge, Arc<AtomicUsize>) {
        let judge = judge(&Documents::from_data(&seed())).unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        judge.on_reload(Box::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        (judge, seen)
    }

    fn status(judge: &Judge, kind: ConfigKind) -> ConfigStatus {
        judge.status().into_iter().find(|s| s.kind == kind).unwrap()
    }

    fn errors(record: &ReloadRecord) -> &[String] {
        match &record.result {
            ReloadResult::Rejected(errors) => errors,
            ReloadResult::Applied => panic!("expected a rejection: {record:?}"),
        }
    }

    #[test]
    fn documents_load_with_the_names_their_source_gives() {
        let (judge, _) = started();
        assert_eq!(judge.storm().rate_threshold.get(), 7);
        assert_eq!(judge.dedup().ttl.get(), Duration::from_secs(600));
        assert_eq!(judge.retry().max_attempts, 3);
        assert!(judge.warnings().is_empty(), "{:?}", judge.warnings());
        assert_eq!(judge.names().container(), LABEL);
        let storm = status(&judge, ConfigKind::Storm);
        assert_eq!(storm.origin, format!("{LABEL}: storm.yaml"));
        assert_eq!(storm.hash.len(), 64);
        assert_eq!(storm.generation, 0);
    }

    #[test]
    fn a_missing_key_or_container_gives_defaults_with_a_warning() {
        let judge = judge(&Documents::from_data(&data(&[("dedup.yaml", "ttl: 1m\n")]))).unwrap();
        assert_eq!(*judge.storm(), StormSettings::default());
        assert_eq!(judge.dedup().ttl.get(), Duration::from_secs(60));
        let warnings = judge.warnings();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("{LABEL}: storm.yaml not found")),
            "{warnings:?}"
        );
        assert_eq!(status(&judge, ConfigKind::Storm).origin, DEFAULTS);
        assert_eq!(status(&judge, ConfigKind::Storm).hash, "");

        let judge = self::judge(&Documents::absent()).unwrap();
        assert_eq!(
            judge.warnings(),
            [format!(
                "{LABEL} does not exist: using built-in defaults for all settings"
            )]
        );
        let judge = self::judge(&Documents::from(None)).unwrap();
        assert_eq!(judge.warnings().len(), 1);
    }

    #[test]
    fn invalid_documents_at_start_up_report_every_problem_with_the_label() {
        let mut bad = seed();
        bad.insert(
            "storm.yaml".into(),
            "rate_threshold: 0\nsampling_rate: 2\n".into(),
        );
        bad.insert("retry.yaml".into(), String::new());
        let errors = judge(&Documents::from_data(&bad)).unwrap_err();
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
        let (judge, seen) = started();
        let mut changed = seed();
        changed.insert("dedup.yaml".into(), "ttl: 2m\n".into());
        let records = judge.judge(&Documents::from_data(&changed));
        assert_eq!(records.len(), 1, "only dedup changed: {records:?}");
        assert_eq!(records[0].kind, ConfigKind::Dedup);
        assert_eq!(records[0].result, ReloadResult::Applied);
        assert_eq!(records[0].generation, 1);
        assert_eq!(judge.dedup().ttl.get(), Duration::from_secs(120));
        assert_eq!(judge.generation(ConfigKind::Dedup), 1);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        let dedup = status(&judge, ConfigKind::Dedup);
        assert_eq!(dedup.last_reload.as_ref(), Some(&records[0]));
        assert_eq!(dedup.hash, records[0].hash);
        assert_eq!(dedup.origin, format!("{LABEL}: dedup.yaml"));
    }

    #[test]
    fn an_invalid_change_is_rejected_and_the_settings_in_force_stay() {
        let (judge, seen) = started();
        let before = status(&judge, ConfigKind::Storm);
        let mut bad = seed();
        bad.insert("storm.yaml".into(), "rate_threshold: 0\n".into());
        let records = judge.judge(&Documents::from_data(&bad));
        assert_eq!(records.len(), 1, "{records:?}");
        let lines = errors(&records[0]);
        assert!(
            lines[0].starts_with(&format!("{LABEL}: storm.yaml: rate_threshold: ")),
            "{lines:?}"
        );
        assert_eq!(judge.storm().rate_threshold.get(), 7);
        assert_eq!(judge.generation(ConfigKind::Storm), 0);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "a rejection is observed too"
        );
        let after = status(&judge, ConfigKind::Storm);
        assert_eq!(after.hash, before.hash, "the hash in force is the old one");
        assert_eq!(after.last_reload.as_ref(), Some(&records[0]));

        // Still invalid: not judged again. Back to the good content: a change, applied.
        assert!(judge.judge(&Documents::from_data(&bad)).is_empty());
        let records = judge.judge(&Documents::from_data(&seed()));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].result, ReloadResult::Applied);
    }

    #[test]
    fn a_removed_key_or_a_deleted_container_is_rejected() {
        let (judge, _) = started();
        let mut fewer = seed();
        fewer.remove("retry.yaml");
        let records = judge.judge(&Documents::from_data(&fewer));
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].kind, ConfigKind::Retry);
        assert_eq!(
            errors(&records[0]),
            [format!(
                "{LABEL}: retry.yaml: the key is gone; keeping the settings in force"
            )]
        );
        assert_eq!(judge.retry().max_attempts, 3);

        let records = judge.judge(&Documents::absent());
        assert_eq!(
            records.iter().map(|r| r.kind).collect::<Vec<_>>(),
            [ConfigKind::Storm, ConfigKind::Dedup, ConfigKind::Security],
            "retry was already judged missing"
        );
        assert_eq!(
            errors(&records[0]),
            [format!(
                "{LABEL}: storm.yaml: {LABEL} is gone; keeping the settings in force"
            )]
        );
        assert_eq!(judge.storm().rate_threshold.get(), 7);
        assert_eq!(judge.dedup().ttl.get(), Duration::from_secs(600));
        assert!(
            ConfigKind::ALL
                .iter()
                .all(|kind| judge.generation(*kind) == 0)
        );
    }

    #[test]
    fn security_yaml_is_judged_like_the_others() {
        let (judge, seen) = started();
        let allowed = |judge: &Judge, ns: &str| judge.security().allowed_namespaces.allows(ns);
        assert!(allowed(&judge, "team-a") && !allowed(&judge, "default"));

        let mut wider = seed();
        wider.insert(
            "security.yaml".into(),
            "allowed_namespaces: [team-*, default]\n".into(),
        );
        let records = judge.judge(&Documents::from_data(&wider));
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].kind, ConfigKind::Security);
        assert_eq!(records[0].result, ReloadResult::Applied);
        assert!(allowed(&judge, "default"));
        assert_eq!(judge.generation(ConfigKind::Security), 1);
        assert_eq!(
            judge.settings_map(ConfigKind::Security)["allowed_namespaces"],
            serde_json::json!(["team-*", "default"])
        );

        let mut bad = seed();
        bad.insert(
            "security.yaml".into(),
            "allowed_namespaces: [team-*, Prod_1]\n".into(),
        );
        let records = judge.judge(&Documents::from_data(&bad));
        let lines = errors(&records[0]);
        assert!(
            lines[0].starts_with(&format!(
                "{LABEL}: security.yaml: allowed_namespaces: entry 2 \"Prod_1\""
            )),
            "{lines:?}"
        );
        assert!(allowed(&judge, "default"), "the settings in force stay");
        assert_eq!(judge.generation(ConfigKind::Security), 1);

        let mut none = seed();
        none.insert("security.yaml".into(), "allowed_namespaces: []\n".into());
        let records = judge.judge(&Documents::from_data(&none));
        assert_eq!(records[0].result, ReloadResult::Applied);
        assert!(
            !allowed(&judge, "team-a"),
            "an empty list allows no namespace"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn identical_content_and_other_keys_are_not_judged() {
        let (judge, seen) = started();
        assert!(judge.judge(&Documents::from_data(&seed())).is_empty());
        let mut more = seed();
        more.insert("README".into(), "not settings".into());
        assert!(judge.judge(&Documents::from_data(&more)).is_empty());
        assert_eq!(seen.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn files_of_a_directory_are_named_by_their_paths() {
        let names = DocumentNames::files_in(std::path::Path::new("/etc/kubernaut/config"));
        let judge = Judge::start(
            names,
            &Documents::from_data(&seed()),
            Arc::new(crate::NoClock),
        )
        .unwrap();
        assert_eq!(
            status(&judge, ConfigKind::Storm).origin,
            "/etc/kubernaut/config/storm.yaml"
        );
        let mut fewer = seed();
        fewer.remove("dedup.yaml");
        let records = judge.judge(&Documents::from_data(&fewer));
        assert_eq!(
            errors(&records[0]),
            ["/etc/kubernaut/config/dedup.yaml: the file is gone; keeping the settings in force"]
        );
        let records = judge.judge(&Documents::absent());
        assert_eq!(
            errors(&records[0]),
            [
                "/etc/kubernaut/config/storm.yaml: config directory /etc/kubernaut/config is gone; keeping the settings in force"
            ]
        );
    }
}
