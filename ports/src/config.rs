//! The [`ConfigSource`] port: where the hot-reloadable settings come from.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;

use crate::settings::{DedupSettings, RetrySettings, SecuritySettings, StormSettings};

/// The independently reloadable settings types, one per ConfigMap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigKind {
    /// `storm.yaml`
    Storm,
    /// `dedup.yaml`
    Dedup,
    /// `retry.yaml`
    Retry,
    /// `security.yaml`
    Security,
}

impl ConfigKind {
    /// All kinds, in a stable order.
    pub const ALL: [ConfigKind; 4] = [
        ConfigKind::Storm,
        ConfigKind::Dedup,
        ConfigKind::Retry,
        ConfigKind::Security,
    ];

    /// The position of this kind in [`ConfigKind::ALL`]: an index for per-kind arrays.
    pub const fn index(self) -> usize {
        match self {
            ConfigKind::Storm => 0,
            ConfigKind::Dedup => 1,
            ConfigKind::Retry => 2,
            ConfigKind::Security => 3,
        }
    }

    /// The metric label value (`storm`, `dedup`, `retry`, `security`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ConfigKind::Storm => "storm",
            ConfigKind::Dedup => "dedup",
            ConfigKind::Retry => "retry",
            ConfigKind::Security => "security",
        }
    }

    /// The file name inside the config directory (`storm.yaml`, …).
    pub const fn file_name(self) -> &'static str {
        match self {
            ConfigKind::Storm => "storm.yaml",
            ConfigKind::Dedup => "dedup.yaml",
            ConfigKind::Retry => "retry.yaml",
            ConfigKind::Security => "security.yaml",
        }
    }
}

impl fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One consistent view of all settings: what a single request works with from start to end.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Storm detection settings.
    pub storm: Arc<StormSettings>,
    /// Deduplication settings.
    pub dedup: Arc<DedupSettings>,
    /// Retry settings.
    pub retry: Arc<RetrySettings>,
    /// Security settings (the namespaces signals may target).
    pub security: Arc<SecuritySettings>,
}

/// Called after a settings type has been replaced.
pub type ChangeListener = Box<dyn Fn(ConfigKind) + Send + Sync>;

/// The source of the current, valid settings.
///
/// Contract:
/// - every value returned has passed validation; an invalid change never becomes visible;
/// - reads never block on a writer and are cheap enough for the request path (an atomic load);
/// - a value, once returned, never changes: a reload replaces it with a new `Arc`, so a caller that
///   holds one sees one consistent snapshot of that type;
/// - [`ConfigSource::generation`] rises by one each time a type's settings are replaced, and the
///   listeners registered with [`ConfigSource::on_change`] are called after the new value is visible.
///
/// One snapshot of every type is [`ConfigSourceExt::snapshot`], which every source has.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait ConfigSource: Send + Sync + fmt::Debug {
    /// The storm settings in force.
    fn storm(&self) -> Arc<StormSettings>;
    /// The dedup settings in force.
    fn dedup(&self) -> Arc<DedupSettings>;
    /// The retry settings in force.
    fn retry(&self) -> Arc<RetrySettings>;
    /// The security settings in force.
    fn security(&self) -> Arc<SecuritySettings>;
    /// How many times `kind` has been replaced since start (0 = the initial value).
    fn generation(&self, kind: ConfigKind) -> u64;
    /// Registers a listener, called with the kind after each replacement.
    fn on_change(&self, listener: ChangeListener);
}

/// What every [`ConfigSource`] offers on top of its accessors.
///
/// An extension rather than a provided method of `ConfigSource`, so that there is one definition
/// (a source cannot override it) and a mock of `ConfigSource` (`MockConfigSource`) mocks only the
/// accessors: `snapshot` on a mock calls the mocked `storm`, `dedup`, `retry` and `security`.
pub trait ConfigSourceExt: ConfigSource {
    /// One snapshot of every type: what a request works with from start to end.
    ///
    /// Each type is read once (one atomic load each); the reads are not one step, so a
    /// reload between them gives a snapshot whose types come from different generations, each
    /// of them valid.
    fn snapshot(&self) -> Settings;
}

impl<C: ConfigSource + ?Sized> ConfigSourceExt for C {
    fn snapshot(&self) -> Settings {
        Settings {
            storm: self.storm(),
            dedup: self.dedup(),
            retry: self.retry(),
            security: self.security(),
        }
    }
}

/// The storage every [`ConfigSource`] adapter shares: lock-free reads (`arc-swap`), atomic
/// replacement per type, generations and change listeners.
///
/// Readers call `load_full`, which never blocks; writers replace a whole value at once.
pub struct SettingsCell {
    storm: ArcSwap<StormSettings>,
    dedup: ArcSwap<DedupSettings>,
    retry: ArcSwap<RetrySettings>,
    security: ArcSwap<SecuritySettings>,
    generations: [AtomicU64; ConfigKind::ALL.len()],
    listeners: Mutex<Vec<ChangeListener>>,
}

impl fmt::Debug for SettingsCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingsCell")
            .field("storm", &self.storm.load())
            .field("dedup", &self.dedup.load())
            .field("retry", &self.retry.load())
            .field("security", &self.security.load())
            .finish_non_exhaustive()
    }
}

impl Default for SettingsCell {
    fn default() -> Self {
        Self::new(
            StormSettings::default(),
            DedupSettings::default(),
            RetrySettings::default(),
            SecuritySettings::default(),
        )
    }
}

impl SettingsCell {
    /// A cell holding these initial values (generation 0).
    pub fn new(
        storm: StormSettings,
        dedup: DedupSettings,
        retry: RetrySettings,
        security: SecuritySettings,
    ) -> Self {
        SettingsCell {
            storm: ArcSwap::from_pointee(storm),
            dedup: ArcSwap::from_pointee(dedup),
            retry: ArcSwap::from_pointee(retry),
            security: ArcSwap::from_pointee(security),
            generations: Default::default(),
            listeners: Mutex::new(Vec::new()),
        }
    }

    fn bump(&self, kind: ConfigKind) {
        self.generations[kind.index()].fetch_add(1, Ordering::AcqRel);
        // A listener that panicked poisoned the lock; the list itself is still sound.
        let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        for listener in listeners.iter() {
            listener(kind);
        }
    }

    /// Replaces the storm settings in one atomic step.
    pub fn set_storm(&self, s: StormSettings) {
        self.storm.store(Arc::new(s));
        self.bump(ConfigKind::Storm);
    }
    /// Replaces the dedup settings in one atomic step.
    pub fn set_dedup(&self, s: DedupSettings) {
        self.dedup.store(Arc::new(s));
        self.bump(ConfigKind::Dedup);
    }
    /// Replaces the retry settings in one atomic step.
    pub fn set_retry(&self, s: RetrySettings) {
        self.retry.store(Arc::new(s));
        self.bump(ConfigKind::Retry);
    }
    /// Replaces the security settings in one atomic step.
    pub fn set_security(&self, s: SecuritySettings) {
        self.security.store(Arc::new(s));
        self.bump(ConfigKind::Security);
    }
}

impl ConfigSource for SettingsCell {
    fn storm(&self) -> Arc<StormSettings> {
        self.storm.load_full()
    }
    fn dedup(&self) -> Arc<DedupSettings> {
        self.dedup.load_full()
    }
    fn retry(&self) -> Arc<RetrySettings> {
        self.retry.load_full()
    }
    fn security(&self) -> Arc<SecuritySettings> {
        self.security.load_full()
    }
    fn generation(&self, kind: ConfigKind) -> u64 {
        self.generations[kind.index()].load(Ordering::Acquire)
    }
    fn on_change(&self, listener: ChangeListener) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }
}

/// What one reload attempt of one settings type came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new settings are in force.
    Applied,
    /// The change was refused; the previous settings stay in force. One line per problem, each
    /// naming the file and the key.
    Rejected(Vec<String>),
}

/// The record of one reload attempt (a change was seen and judged): what metrics and audit logs
/// are made of. Content identical to the last attempt is not an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRecord {
    /// Which settings type.
    pub kind: ConfigKind,
    /// Applied or rejected (with why).
    pub result: ReloadResult,
    /// Time spent reading, parsing, validating and applying.
    pub duration: std::time::Duration,
    /// SHA-256 (hex) of the content judged.
    pub hash: String,
    /// The generation in force after the attempt.
    pub generation: u64,
    /// When the attempt ended.
    pub at: crate::Timestamp,
}

/// The state of one settings type, for `GET /config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigStatus {
    /// Which settings type.
    pub kind: ConfigKind,
    /// Where its settings come from (a file path, or `built-in defaults`).
    pub origin: String,
    /// SHA-256 (hex) of the content in force (empty for the built-in defaults).
    pub hash: String,
    /// Replacements since start.
    pub generation: u64,
    /// The last reload attempt, if any.
    pub last_reload: Option<ReloadRecord>,
}

/// The control side of a reloadable [`ConfigSource`]: status, reload on demand, and a record of
/// every reload attempt. The domain never sees it; the app uses it for metrics, audit logs and
/// its `/config` and `/-/reload` endpoints.
///
/// Contract:
/// - `reload_now` reads the source afresh and returns one record per settings type whose content
///   changed since the last attempt (unchanged types are skipped); a source that cannot be read
///   changes nothing and returns no record;
/// - reloads never interleave: `reload_now` and the source's own watching judge one at a time,
///   each reading and judging in one turn, so a reload that read older documents is never
///   judged after one that read newer ones;
/// - observers registered with `on_reload` see every record, from `reload_now` and from the
///   source's own watching alike, in the order the attempts were judged.
#[async_trait]
pub trait ConfigControl: Send + Sync + fmt::Debug {
    /// The state of every settings type.
    fn status(&self) -> Vec<ConfigStatus>;
    /// Re-reads the source now and judges what it holds (any blocking IO happens off the async
    /// runtime's threads).
    async fn reload_now(&self) -> Vec<ReloadRecord>;
    /// Registers an observer of reload attempts.
    fn on_reload(&self, observer: Box<dyn Fn(&ReloadRecord) + Send + Sync>);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::settings::RawDedupSettings;

    #[test]
    fn a_held_snapshot_does_not_change_when_the_cell_is_replaced() {
        let cell = SettingsCell::default();
        let before = cell.snapshot();
        let ttl = RawDedupSettings {
            ttl: Duration::from_secs(7),
        }
        .validate()
        .unwrap();
        cell.set_dedup(ttl.clone());
        assert_eq!(before.dedup.ttl.get(), Duration::from_secs(300));
        assert_eq!(*cell.dedup(), ttl);
        assert_eq!(cell.generation(ConfigKind::Dedup), 1);
        assert_eq!(cell.generation(ConfigKind::Storm), 0);
    }

    #[test]
    fn every_kind_has_its_index_and_file() {
        for (i, kind) in ConfigKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(kind.file_name(), format!("{}.yaml", kind.as_str()));
        }
    }

    #[test]
    fn a_security_replacement_bumps_only_its_generation() {
        let cell = SettingsCell::default();
        let before = cell.snapshot();
        let none = crate::settings::RawSecuritySettings {
            allowed_namespaces: Vec::new(),
        }
        .validate()
        .unwrap();
        cell.set_security(none.clone());
        assert!(before.security.allowed_namespaces.allows("default"));
        assert_eq!(*cell.snapshot().security, none);
        assert_eq!(ConfigKind::ALL.map(|k| cell.generation(k)), [0, 0, 0, 1]);
    }

    #[test]
    fn listeners_hear_each_replacement_with_its_kind() {
        let cell = SettingsCell::default();
        let heard = Arc::new(AtomicUsize::new(0));
        let h = heard.clone();
        cell.on_change(Box::new(move |kind| {
            assert_eq!(kind, ConfigKind::Retry);
            h.fetch_add(1, Ordering::SeqCst);
        }));
        cell.set_retry(RetrySettings::default());
        cell.set_retry(RetrySettings::default());
        assert_eq!(heard.load(Ordering::SeqCst), 2);
    }

    #[cfg(feature = "mocks")]
    #[test]
    fn a_snapshot_of_a_mock_reads_its_mocked_accessors_once_each() {
        let dedup = RawDedupSettings {
            ttl: Duration::from_secs(42),
        }
        .validate()
        .unwrap();
        let mut config = MockConfigSource::new();
        config
            .expect_storm()
            .times(1)
            .return_const(Arc::new(StormSettings::default()));
        config
            .expect_dedup()
            .times(1)
            .return_const(Arc::new(dedup.clone()));
        config
            .expect_retry()
            .times(1)
            .return_const(Arc::new(RetrySettings::default()));
        config
            .expect_security()
            .times(1)
            .return_const(Arc::new(SecuritySettings::default()));
        let source: &dyn ConfigSource = &config;
        assert_eq!(*source.snapshot().dedup, dedup);
    }
}
