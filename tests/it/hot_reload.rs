//! Hot reload of the config directory, end to end: real files, the adapter's real watcher, and a
//! kubelet that updates the directory exactly as Kubernetes does ([`KubeletDir`]).
//!
//! Nothing here sleeps to let something happen: each test polls, with a generous deadline, for
//! the generation, value or reload record it expects. Sleeps appear only where a test shows that
//! something does *not* happen (they wait many times the debounce), and where a removed
//! directory stays away for a while before it comes back.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_adapter_file_config::{DirSource, WatchHandle, WatchOptions};
use gateway_adapter_memory::SystemClock;
use gateway_ports::{
    ConfigControl, ConfigKind, ConfigSource, ConfigStatus, ReloadRecord, ReloadResult,
};
use gateway_tests::kubelet::{DATA_DIR, DATA_DIR_TMP, KubeletDir};

/// How long a test waits for what it expects before it fails: far more than a reload takes, so a
/// loaded machine slows the test down rather than failing it.
const DEADLINE: Duration = Duration::from_secs(20);
/// The debounce of most tests.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long a test waits to show that nothing happens: the debounce many times over.
const QUIET: Duration = Duration::from_millis(1500);

const STORM: &str = "rate_threshold: 7\n";
const DEDUP: &str = "ttl: 10m\n";
const RETRY: &str = "max_attempts: 3\n";
const SECURITY: &str = "allowed_namespaces: [team-*]\n";

/// Fast reaction, and no periodic re-read within a test's life: what is applied was seen by
/// the watcher, not picked up by the safety net.
fn options() -> WatchOptions {
    WatchOptions {
        debounce: DEBOUNCE,
        resync: Duration::from_secs(3600),
        dir_poll: Duration::from_millis(50),
    }
}

fn storm(text: &str) -> [(&str, &str); 4] {
    [
        ("storm.yaml", text),
        ("dedup.yaml", DEDUP),
        ("retry.yaml", RETRY),
        ("security.yaml", SECURITY),
    ]
}

fn rate(n: u32) -> String {
    format!("rate_threshold: {n}\n")
}

/// A watched config directory and everything the source reported.
struct Rig {
    root: tempfile::TempDir,
    source: Arc<DirSource>,
    records: Arc<Mutex<Vec<ReloadRecord>>>,
    _watch: WatchHandle,
}

impl Rig {
    /// Where the config directory lives inside the rig's temporary root.
    fn dir_in(root: &tempfile::TempDir) -> PathBuf {
        root.path().join("config")
    }

    /// Loads the directory on the system clock, records every reload attempt, starts the watcher.
    fn start(root: tempfile::TempDir, options: WatchOptions) -> Self {
        let source = DirSource::load(Self::dir_in(&root), Arc::new(SystemClock))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(source.warnings().is_empty(), "{:?}", source.warnings());
        let source = Arc::new(source);
        let records = Arc::new(Mutex::new(Vec::new()));
        let seen = records.clone();
        source.on_reload(Box::new(move |r: &ReloadRecord| {
            seen.lock().unwrap().push(r.clone());
        }));
        let watch = source.watch(options);
        Rig {
            root,
            source,
            records,
            _watch: watch,
        }
    }

    /// A kubelet-managed volume holding `files`, watched.
    fn kubelet(files: &[(&str, &str)], options: WatchOptions) -> (Self, KubeletDir) {
        let root = tempfile::tempdir().unwrap();
        let kubelet = KubeletDir::create(Self::dir_in(&root), files).unwrap();
        (Self::start(root, options), kubelet)
    }

    /// A plain directory of regular files (a laptop, a hand-made mount), watched.
    fn plain(files: &[(&str, &str)], options: WatchOptions) -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = Self::dir_in(&root);
        fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
        Self::start(root, options)
    }

    fn dir(&self) -> PathBuf {
        Self::dir_in(&self.root)
    }

    fn status(&self, kind: ConfigKind) -> ConfigStatus {
        let status = self.source.status().into_iter().find(|s| s.kind == kind);
        status.expect("a status for every kind")
    }

    fn rate(&self) -> u32 {
        self.source.storm().rate_threshold.get()
    }

    fn generation(&self, kind: ConfigKind) -> u64 {
        self.source.generation(kind)
    }

    fn records(&self, kind: ConfigKind) -> Vec<ReloadRecord> {
        let records = self.records.lock().unwrap();
        records.iter().filter(|r| r.kind == kind).cloned().collect()
    }

    fn applied(&self, kind: ConfigKind) -> usize {
        self.records(kind)
            .iter()
            .filter(|r| r.result == ReloadResult::Applied)
            .count()
    }

    /// The lines of each rejected attempt of `kind`, oldest first: the error counter.
    fn rejected(&self, kind: ConfigKind) -> Vec<Vec<String>> {
        self.records(kind)
            .into_iter()
            .filter_map(|r| match r.result {
                ReloadResult::Rejected(lines) => Some(lines),
                ReloadResult::Applied => None,
            })
            .collect()
    }

    /// Waits until `done` holds; fails with what was expected and what the source reported.
    async fn until(&self, what: &str, done: impl Fn(&Rig) -> bool) {
        let reached = tokio::time::timeout(DEADLINE, async {
            while !done(self) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if reached.is_err() {
            panic!(
                "not within {DEADLINE:?}: {what}\nrate_threshold = {}, generations = {:?}\nrecords = {:#?}",
                self.rate(),
                ConfigKind::ALL.map(|k| self.generation(k)),
                self.records.lock().unwrap()
            );
        }
    }

    /// Waits until the storm settings in force have `rate_threshold == n` at generation `g`.
    async fn until_storm(&self, n: u32, g: u64) {
        self.until(
            &format!("storm.yaml applied: rate_threshold {n} at generation {g}"),
            |rig| rig.rate() == n && rig.generation(ConfigKind::Storm) == g,
        )
        .await;
    }

    /// Waits until `count` attempts of `kind` were rejected.
    async fn until_rejected(&self, kind: ConfigKind, count: usize) {
        self.until(&format!("{count} rejected {kind} reload(s)"), |rig| {
            rig.rejected(kind).len() >= count
        })
        .await;
    }
}

// --- the kubelet model ---------------------------------------------------------------------------

#[test]
fn the_kubelet_model_lays_out_and_swaps_the_volume_like_the_atomic_writer() {
    let root = tempfile::tempdir().unwrap();
    let kubelet = KubeletDir::create(root.path().join("config"), &storm(STORM)).unwrap();
    let dir = kubelet.path().to_owned();
    let target = |k: &KubeletDir| k.data_target().unwrap().unwrap();
    let hidden_dirs = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_DIR)
            .collect();
        names.sort();
        names
    };

    // Visible files are relative symlinks through ..data; ..data points at a timestamped directory.
    for name in ["storm.yaml", "dedup.yaml", "retry.yaml", "security.yaml"] {
        assert_eq!(
            fs::read_link(dir.join(name)).unwrap(),
            Path::new("..data").join(name)
        );
    }
    let first = target(&kubelet);
    let first_name = first.to_str().unwrap();
    assert!(
        first.is_relative() && first_name.starts_with("..20") && first_name.len() == 31,
        "..data -> {first_name} (expected ..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN)"
    );
    assert_eq!(fs::read_to_string(dir.join("storm.yaml")).unwrap(), STORM);
    assert_eq!(hidden_dirs(&dir), [first_name]);

    // An update: a new directory, the old one gone, no ..data_tmp left, the visible link untouched.
    let link_before = fs::symlink_metadata(dir.join("storm.yaml")).unwrap();
    assert!(kubelet.swap(&storm(&rate(8))).unwrap());
    let second = target(&kubelet);
    assert_ne!(second, first);
    assert_eq!(fs::read_to_string(dir.join("storm.yaml")).unwrap(), rate(8));
    assert_eq!(hidden_dirs(&dir), [second.to_str().unwrap()]);
    assert!(!dir.join(DATA_DIR_TMP).exists());
    let link_after = fs::symlink_metadata(dir.join("storm.yaml")).unwrap();
    assert_eq!(
        link_before.modified().unwrap(),
        link_after.modified().unwrap(),
        "the kubelet never writes at the visible path"
    );

    // Unchanged content: the kubelet writes nothing at all.
    assert!(!kubelet.swap(&storm(&rate(8))).unwrap());
    assert_eq!(target(&kubelet), second);

    // ...unless forced to: same bytes, new directory.
    kubelet.swap_with_identical_content().unwrap();
    let third = target(&kubelet);
    assert_ne!(third, second);
    assert_eq!(fs::read_to_string(dir.join("storm.yaml")).unwrap(), rate(8));
    assert_eq!(hidden_dirs(&dir), [third.to_str().unwrap()]);

    // A key removed from the ConfigMap loses its visible symlink; one added gains it.
    kubelet
        .swap(&[
            ("dedup.yaml", DEDUP),
            ("retry.yaml", RETRY),
            ("security.yaml", SECURITY),
        ])
        .unwrap();
    assert!(fs::symlink_metadata(dir.join("storm.yaml")).is_err());
    kubelet.swap(&storm(STORM)).unwrap();
    assert_eq!(fs::read_to_string(dir.join("storm.yaml")).unwrap(), STORM);
    assert_eq!(
        kubelet.current_files().unwrap().keys().collect::<Vec<_>>(),
        ["dedup.yaml", "retry.yaml", "security.yaml", "storm.yaml"]
    );

    // Keys the writer reserves are refused.
    assert!(kubelet.swap(&[("..data", "x")]).is_err());
}

// --- updates through the kubelet --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_volume_loads_without_warnings_and_a_plain_directory_gets_the_layout_warning() {
    let (rig, _kubelet) = Rig::kubelet(&storm(STORM), options());
    assert_eq!(rig.source.layout_warning(), None);
    let plain = Rig::plain(&storm(STORM), options());
    let warning = plain.source.layout_warning().expect("a layout warning");
    assert!(warning.contains("..data"), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_kubelet_swaps_are_each_applied_in_order() {
    let (rig, kubelet) = Rig::kubelet(&storm(&rate(500)), options());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heard = seen.clone();
    let source = Arc::downgrade(&rig.source);
    rig.source.on_change(Box::new(move |kind| {
        if let (ConfigKind::Storm, Some(source)) = (kind, source.upgrade()) {
            heard
                .lock()
                .unwrap()
                .push(source.storm().rate_threshold.get());
        }
    }));

    for n in 1..=100 {
        assert!(kubelet.swap(&storm(&rate(n))).unwrap());
        // The debounce merges swaps written faster than it: wait for each before the next.
        rig.until_storm(n, u64::from(n)).await;
    }

    let seen = seen.lock().unwrap().clone();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&100));
    assert_eq!(seen, (1..=100).collect::<Vec<u32>>());
    assert_eq!(rig.generation(ConfigKind::Storm), 100);
    assert_eq!(rig.applied(ConfigKind::Storm), 100);
    assert!(rig.rejected(ConfigKind::Storm).is_empty());
    assert_eq!(rig.generation(ConfigKind::Dedup), 0);
    assert_eq!(rig.generation(ConfigKind::Retry), 0);
}

/// `storm.yaml` becomes `bad`: the attempt is rejected with lines mentioning each of `mentions`,
/// rate_threshold 7 stays; then a valid swap is applied. Returns the rejected lines.
async fn an_invalid_storm_swap_is_rejected_then_a_valid_one_applied(
    bad: &[(&str, &str)],
    mentions: &[&str],
) -> Vec<String> {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());

    assert!(kubelet.swap(bad).unwrap());
    rig.until_rejected(ConfigKind::Storm, 1).await;
    assert_eq!(rig.rate(), 7, "the old settings stay in force");
    assert_eq!(rig.generation(ConfigKind::Storm), 0);
    let record = rig.records(ConfigKind::Storm).remove(0);
    assert_eq!(record.generation, 0, "{record:?}");
    let lines = rig.rejected(ConfigKind::Storm).remove(0);
    for word in mentions {
        assert!(
            lines.iter().any(|l| l.contains(word)),
            "no line mentions {word:?}: {lines:?}"
        );
    }
    assert_eq!(rig.status(ConfigKind::Storm).last_reload, Some(record));

    assert!(kubelet.swap(&storm(&rate(8))).unwrap());
    rig.until_storm(8, 1).await;
    assert_eq!(rig.rejected(ConfigKind::Storm).len(), 1);
    assert_eq!(rig.applied(ConfigKind::Storm), 1);
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_with_bad_yaml_is_rejected_and_the_next_valid_swap_applied() {
    an_invalid_storm_swap_is_rejected_then_a_valid_one_applied(
        &storm("rate_threshold: [1\n"),
        &["storm.yaml"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_with_a_value_out_of_range_is_rejected_naming_file_and_key() {
    let lines = an_invalid_storm_swap_is_rejected_then_a_valid_one_applied(
        &storm("rate_threshold: 0\n"),
        &["storm.yaml", "rate_threshold"],
    )
    .await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("storm.yaml") && l.contains("rate_threshold")),
        "one line names both file and key: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_with_a_truncated_file_is_rejected_and_the_next_valid_swap_applied() {
    an_invalid_storm_swap_is_rejected_then_a_valid_one_applied(
        &storm("rate_threshold: 1\npattern_thr"),
        &["storm.yaml"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_with_an_empty_file_is_rejected_and_the_next_valid_swap_applied() {
    an_invalid_storm_swap_is_rejected_then_a_valid_one_applied(
        &storm(""),
        &["storm.yaml", "empty"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_with_a_misspelt_key_is_rejected_naming_it() {
    an_invalid_storm_swap_is_rejected_then_a_valid_one_applied(
        &storm("rate_treshold: 3\n"),
        &["storm.yaml", "rate_treshold"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_from_the_configmap_is_rejected_and_the_old_settings_kept() {
    an_invalid_storm_swap_is_rejected_then_a_valid_one_applied(
        &[
            ("dedup.yaml", DEDUP),
            ("retry.yaml", RETRY),
            ("security.yaml", SECURITY),
        ],
        &["storm.yaml"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_left_out_of_a_file_takes_its_default() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    assert!(kubelet.swap(&storm("pattern_threshold: 9\n")).unwrap());
    rig.until("storm.yaml without rate_threshold applied", |rig| {
        rig.generation(ConfigKind::Storm) == 1
    })
    .await;
    let storm = rig.source.storm();
    assert_eq!(storm.rate_threshold.get(), 10, "the built-in default");
    assert_eq!(storm.pattern_threshold.get(), 9);
    assert!(rig.rejected(ConfigKind::Storm).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_storm_yaml_does_not_hold_back_a_valid_dedup_yaml_of_the_same_swap() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    assert!(
        kubelet
            .swap(&[
                ("storm.yaml", "rate_threshold: 0\n"),
                ("dedup.yaml", "ttl: 2m\n"),
                ("retry.yaml", RETRY),
                ("security.yaml", SECURITY),
            ])
            .unwrap()
    );
    rig.until("dedup.yaml applied", |rig| {
        rig.generation(ConfigKind::Dedup) == 1
    })
    .await;
    rig.until_rejected(ConfigKind::Storm, 1).await;
    assert_eq!(rig.source.dedup().ttl.get(), Duration::from_secs(120));
    assert_eq!(rig.rate(), 7);
    assert_eq!(rig.generation(ConfigKind::Storm), 0);
    assert_eq!(rig.applied(ConfigKind::Dedup), 1);
    assert!(rig.rejected(ConfigKind::Dedup).is_empty());
    assert!(
        rig.records(ConfigKind::Retry).is_empty(),
        "retry.yaml did not change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_record_names_the_file_and_the_key_of_each_problem() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    kubelet
        .swap(&[
            ("storm.yaml", "rate_threshold: 0\nsampling_rate: 2\n"),
            ("dedup.yaml", DEDUP),
            ("retry.yaml", "max_attempts: 99\n"),
            ("security.yaml", SECURITY),
        ])
        .unwrap();
    rig.until_rejected(ConfigKind::Storm, 1).await;
    rig.until_rejected(ConfigKind::Retry, 1).await;
    let names = |lines: &[String], file: &str, key: &str| {
        lines.iter().any(|l| l.contains(file) && l.contains(key))
    };
    let storm = rig.rejected(ConfigKind::Storm).remove(0);
    assert!(names(&storm, "storm.yaml", "rate_threshold"), "{storm:?}");
    assert!(names(&storm, "storm.yaml", "sampling_rate"), "{storm:?}");
    let retry = rig.rejected(ConfigKind::Retry).remove(0);
    assert!(names(&retry, "retry.yaml", "max_attempts"), "{retry:?}");
    assert_eq!(rig.rate(), 7);
    assert_eq!(rig.source.retry().max_attempts, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_yaml_swap_is_rejected_when_invalid_and_applied_within_seconds_when_valid() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    let allows = |rig: &Rig, ns: &str| rig.source.security().allowed_namespaces.allows(ns);
    assert!(allows(&rig, "team-a") && !allows(&rig, "default"));
    let mut files = storm(STORM);
    files[3].1 = "allowed_namespaces: [\"team-*\", \"default/x\"]\n";
    assert!(kubelet.swap(&files).unwrap());
    rig.until_rejected(ConfigKind::Security, 1).await;
    let lines = rig.rejected(ConfigKind::Security).remove(0);
    assert!(
        lines[0].contains("security.yaml: allowed_namespaces: entry 2 \"default/x\" has '/'"),
        "{lines:?}"
    );
    assert!(!allows(&rig, "default"), "the settings in force stay");

    files[3].1 = "allowed_namespaces: [team-*, default]\n";
    assert!(kubelet.swap(&files).unwrap());
    rig.until("the valid security.yaml applied", |rig| {
        rig.generation(ConfigKind::Security) == 1
    })
    .await;
    assert!(allows(&rig, "default"));
    assert_eq!(rig.generation(ConfigKind::Storm), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverting_to_the_last_good_content_after_a_rejected_change_is_applied() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    assert!(kubelet.swap(&storm("rate_threshold: 0\n")).unwrap());
    rig.until_rejected(ConfigKind::Storm, 1).await;
    assert_eq!(rig.generation(ConfigKind::Storm), 0);

    // The very content in force: not a change from the settings, but from the last attempt.
    assert!(kubelet.swap(&storm(STORM)).unwrap());
    rig.until_storm(7, 1).await;
    let records = rig.records(ConfigKind::Storm);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1].result, ReloadResult::Applied);
    assert_eq!(records[1].generation, 1);
    assert_eq!(
        rig.status(ConfigKind::Storm).hash,
        records[1].hash,
        "the reverted content is the one in force"
    );
}

// --- what is not a reload -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_with_identical_content_triggers_no_reload() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    let before = kubelet.data_target().unwrap();

    // The kubelet itself writes nothing for unchanged content...
    assert!(!kubelet.swap(&storm(STORM)).unwrap());
    assert_eq!(kubelet.data_target().unwrap(), before);
    // ...and a full swap to identical bytes is seen, read, and judged no change.
    kubelet.swap_with_identical_content().unwrap();
    kubelet.swap_with_identical_content().unwrap();
    assert_ne!(kubelet.data_target().unwrap(), before);
    tokio::time::sleep(QUIET).await;
    assert!(
        rig.records.lock().unwrap().is_empty(),
        "{:?}",
        rig.records.lock().unwrap()
    );
    assert_eq!(ConfigKind::ALL.map(|k| rig.generation(k)), [0, 0, 0, 0]);

    // The watcher was listening all along: a real change right after is applied.
    assert!(kubelet.swap(&storm(&rate(8))).unwrap());
    rig.until_storm(8, 1).await;
    assert_eq!(rig.records(ConfigKind::Storm).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_twenty_swaps_is_one_reload() {
    // A debounce far longer than the burst takes, so a stall of the machine within the burst
    // cannot split it in two.
    let debounce = Duration::from_millis(1000);
    let (rig, kubelet) = Rig::kubelet(
        &storm(STORM),
        WatchOptions {
            debounce,
            ..options()
        },
    );
    // A first change, applied, shows the watcher is running: the start-up re-read cannot fall
    // in the middle of the burst.
    assert!(kubelet.swap(&storm(&rate(1))).unwrap());
    rig.until_storm(1, 1).await;

    for n in 11..=30 {
        assert!(kubelet.swap(&storm(&rate(n))).unwrap());
    }
    rig.until_storm(30, 2).await;
    tokio::time::sleep(debounce + QUIET).await;
    let records = rig.records(ConfigKind::Storm);
    assert_eq!(
        records.len(),
        2,
        "the first change, then the burst: {records:?}"
    );
    assert_eq!(records[1].result, ReloadResult::Applied);
    assert_eq!(rig.generation(ConfigKind::Storm), 2);
    assert_eq!(rig.rate(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_twenty_in_place_writes_is_one_reload() {
    let debounce = Duration::from_millis(1000);
    let rig = Rig::plain(
        &storm(STORM),
        WatchOptions {
            debounce,
            ..options()
        },
    );
    let file = rig.dir().join("storm.yaml");
    fs::write(&file, rate(1)).unwrap();
    rig.until_storm(1, 1).await;

    // Each write truncates the file first: read mid-burst, it would be empty and rejected.
    for n in 11..=30 {
        fs::write(&file, rate(n)).unwrap();
    }
    rig.until_storm(30, 2).await;
    tokio::time::sleep(debounce + QUIET).await;
    let records = rig.records(ConfigKind::Storm);
    assert_eq!(
        records.len(),
        2,
        "the first change, then the burst: {records:?}"
    );
    assert_eq!(rig.generation(ConfigKind::Storm), 2);
}

// --- plain edits, without the kubelet's layout ------------------------------------------------

/// `std::fs::write`-free in-place edit: open the existing file without truncating it, overwrite
/// its bytes, cut it to length (what an editor writing "in place" does).
fn edit_in_place(dir: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .write(true)
        .open(dir.join("storm.yaml"))
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.set_len(text.len() as u64).unwrap();
    file.sync_all().unwrap();
}

/// An editor's save: write a temporary file next to it, rename it over the original.
fn save_by_rename(dir: &Path, text: &str) {
    let temp = dir.join(".storm.yaml.swp");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, dir.join("storm.yaml")).unwrap();
}

/// Vim's default save: move the original away as a backup, write a new file, drop the backup.
fn save_with_backup(dir: &Path, text: &str) {
    let backup = dir.join("storm.yaml~");
    fs::rename(dir.join("storm.yaml"), &backup).unwrap();
    fs::write(dir.join("storm.yaml"), text).unwrap();
    fs::remove_file(backup).unwrap();
}

/// `cp new storm.yaml`: truncate the file, then write it in more than one piece. Every prefix of
/// the texts used here is invalid, so a reader that catches it mid-way cannot apply a wrong value.
fn copy_over(dir: &Path, text: &str) {
    let mut file = fs::File::create(dir.join("storm.yaml")).unwrap();
    let (head, tail) = text.split_at(text.len() / 2);
    file.write_all(head.as_bytes()).unwrap();
    file.flush().unwrap();
    file.write_all(tail.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

/// `mv /elsewhere/storm.yaml storm.yaml`: a file written outside the directory is renamed in.
fn move_in_from_outside(dir: &Path, text: &str) {
    let outside = dir.parent().unwrap().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let staged = outside.join("storm.yaml");
    fs::write(&staged, text).unwrap();
    fs::rename(&staged, dir.join("storm.yaml")).unwrap();
}

/// Edits a plain directory's storm.yaml twice with `edit` (the second edit shows the watch
/// survived the first, which may have replaced the file's inode); each is applied.
async fn a_plain_edit_is_applied(edit: fn(&Path, &str)) {
    let rig = Rig::plain(&storm(STORM), options());
    for (n, generation) in [(8, 1), (9, 2)] {
        edit(&rig.dir(), &rate(n));
        rig.until(&format!("rate_threshold {n} applied"), |rig| {
            rig.rate() == n && rig.generation(ConfigKind::Storm) >= generation
        })
        .await;
    }
    let last = rig.records(ConfigKind::Storm).pop().unwrap();
    assert_eq!(last.result, ReloadResult::Applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_write_is_applied() {
    a_plain_edit_is_applied(edit_in_place).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_save_by_rename_is_applied() {
    a_plain_edit_is_applied(save_by_rename).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_moves_the_original_to_a_backup_is_applied() {
    a_plain_edit_is_applied(save_with_backup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cp_style_truncate_and_write_is_applied() {
    a_plain_edit_is_applied(copy_over).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_moved_in_from_outside_the_directory_is_applied() {
    a_plain_edit_is_applied(move_in_from_outside).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_edits_of_every_kind_in_turn_are_each_applied() {
    let rig = Rig::plain(&storm(STORM), options());
    let edits: [fn(&Path, &str); 5] = [
        save_by_rename,
        move_in_from_outside,
        save_with_backup,
        edit_in_place,
        copy_over,
    ];
    for (n, edit) in (11..).zip(edits) {
        edit(&rig.dir(), &rate(n));
        rig.until(&format!("rate_threshold {n} applied"), |rig| {
            rig.rate() == n
        })
        .await;
    }
}

// --- the directory itself goes away ---------------------------------------------------------

/// How long a removed directory stays away before it comes back (longer than the debounce and
/// the directory poll, so the watcher has noticed it gone).
const AWAY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_survives_the_kubelet_directory_being_deleted_and_recreated() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    assert!(kubelet.swap(&storm(&rate(8))).unwrap());
    rig.until_storm(8, 1).await;

    kubelet.remove_dir_all().unwrap();
    // The files vanished after having existed: rejected, the settings in force stay.
    rig.until_rejected(ConfigKind::Storm, 1).await;
    assert_eq!(rig.rate(), 8);
    assert_eq!(rig.generation(ConfigKind::Storm), 1);
    tokio::time::sleep(AWAY).await;

    kubelet.recreate(&storm(&rate(9))).unwrap();
    rig.until_storm(9, 2).await;
    // The new directory is watched, not merely read once.
    assert!(kubelet.swap(&storm(&rate(10))).unwrap());
    rig.until_storm(10, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_deleted_and_at_once_recreated_is_watched_again() {
    let (rig, kubelet) = Rig::kubelet(&storm(STORM), options());
    assert!(kubelet.swap(&storm(&rate(8))).unwrap());
    rig.until_storm(8, 1).await;

    // Gone and back before the watcher's debounce ends (on ext4 the new directory even gets the
    // old one's inode number).
    kubelet.remove_dir_all().unwrap();
    kubelet.recreate(&storm(&rate(9))).unwrap();
    rig.until("rate_threshold 9 applied", |rig| rig.rate() == 9)
        .await;
    let generation = rig.generation(ConfigKind::Storm);
    // The new directory is watched, not merely read once.
    assert!(kubelet.swap(&storm(&rate(10))).unwrap());
    rig.until_storm(10, generation + 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_survives_a_plain_directory_being_deleted_and_recreated() {
    let rig = Rig::plain(&storm(STORM), options());
    let dir = rig.dir();
    fs::write(dir.join("storm.yaml"), rate(8)).unwrap();
    rig.until_storm(8, 1).await;

    fs::remove_dir_all(&dir).unwrap();
    rig.until_rejected(ConfigKind::Storm, 1).await;
    assert_eq!(rig.rate(), 8);
    tokio::time::sleep(AWAY).await;

    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("storm.yaml"), rate(9)).unwrap();
    rig.until_storm(9, 2).await;
    fs::write(dir.join("storm.yaml"), rate(10)).unwrap();
    rig.until_storm(10, 3).await;
}
