//! The embedded [`RemediationWriter`]: one YAML document per `RemediationRequest`, in a directory.
//!
//! Each resource is `DIR/NAME.yaml`, shaped like the Kubernetes object (`apiVersion`, `kind`,
//! `metadata`, `spec`), so what a user reads here is what the Kubernetes sink would create.
//! Writes are atomic: a temporary file is linked into place (create: fails if the name exists,
//! which is `AlreadyExists`) or renamed over it (update), so a reader never sees half a document.
//! Writes are durable before they are reported: the file's data is synced before it is
//! published, and the directory after, so the new name survives a power loss too. One thread
//! per directory publishes (`committer.rs`): the writes that queue up meanwhile share one
//! directory sync (group commit), and no file system call runs on the async runtime.
//! The YAML is written by `yaml.rs`, keys in alphabetical order as `kubectl` prints them.
//! A temporary file is `.NAME.PID.N.tmp`; the ones a crashed writer left behind are removed when
//! a writer opens the directory (one process writes a directory: a temporary file removed under
//! another writer only fails that write, which is then retried).
//! Occurrence counts (after `AlreadyExists`, or [`RemediationWriter::record_occurrences`]) are a
//! read-modify-write under a per-name lock, so two of them never lose one another's count.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use gateway_ports::remediation::{DeduplicationInfo, Occurrences, RemediationRequestSpec};
use gateway_ports::{
    Rejection, RemediationRequest, RemediationWriter, WriteError, WriteFailure, Written,
};
use serde::{Deserialize, Serialize};

use crate::committer::Committer;
use crate::files::{TEMP_SUFFIX, io_failure, is_valid_name, remove_stale_temps};
#[cfg(test)]
use crate::files::{is_temp_name, sync_dir};

mod committer;
mod files;
mod yaml;

/// The CRD's group and version.
pub const API_VERSION: &str = "remediation.kubernaut.io/v1alpha1";

/// Writes RemediationRequests as YAML files into one directory.
#[derive(Debug)]
pub struct DirectoryWriter {
    dir: PathBuf,
    temp_counter: AtomicU64,
    /// Per-name locks (striped): writes of one name never interleave.
    locks: Vec<tokio::sync::Mutex<()>>,
    /// The thread that publishes into `dir`.
    committer: Committer,
}

const LOCK_STRIPES: usize = 64;

/// A stored document, read back for an occurrence update.
#[derive(Deserialize)]
struct Stored {
    metadata: StoredMetadata,
    spec: RemediationRequestSpec,
}

#[derive(Deserialize)]
struct StoredMetadata {
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: &'a RemediationRequestSpec,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
}

impl DirectoryWriter {
    /// A writer into `dir`, created if missing. The temporary files a previous writer left
    /// behind (`.NAME.PID.N.tmp`, nothing else) are removed, and how many is logged.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let removed = remove_stale_temps(&dir)?;
        if removed > 0 {
            tracing::info!(
                dir = %dir.display(),
                removed,
                "removed temporary files an earlier writer left behind"
            );
        }
        Ok(DirectoryWriter {
            committer: Committer::start(dir.clone())?,
            dir,
            temp_counter: AtomicU64::new(0),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        })
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a resource of this name is written to.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.yaml"))
    }

    fn render(request: &RemediationRequest) -> Result<String, WriteError> {
        let doc = Document {
            api_version: API_VERSION,
            kind: "RemediationRequest",
            metadata: Metadata {
                name: &request.name,
                namespace: &request.namespace,
                labels: &request.labels,
            },
            spec: &request.spec,
        };
        yaml::to_string(&doc).map_err(|e| WriteError {
            failure: WriteFailure::Rejected {
                reason: Rejection::Invalid,
            },
            message: format!("cannot render {} as YAML: {e}", request.name),
            source: Some(Box::new(e)),
        })
    }

    fn check_name(name: &str) -> Result<(), WriteError> {
        if is_valid_name(name) {
            Ok(())
        } else {
            Err(WriteError::new(
                WriteFailure::Rejected {
                    reason: Rejection::Invalid,
                },
                format!("invalid resource name {name:?}"),
            ))
        }
    }

    fn temp_path(&self, name: &str) -> PathBuf {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!(".{name}.{}.{n}{TEMP_SUFFIX}", std::process::id()))
    }

    fn lock_of(&self, name: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        &self.locks[stripe]
    }

    /// Reads the stored resource `name`, lets `change` edit its deduplication bookkeeping, and
    /// writes it back. The caller holds the name's lock.
    /// The stored resource `name`.
    async fn read(&self, name: &str) -> Result<RemediationRequest, WriteError> {
        Self::check_name(name)?;
        let path = self.path_of(name);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(WriteError::new(
                    WriteFailure::NotFound,
                    format!("{} does not exist", path.display()),
                ));
            }
            Err(e) => return Err(io_failure("read", &path, e)),
        };
        let stored: Stored = serde_norway::from_str(&text).map_err(|e| WriteError {
            failure: WriteFailure::Rejected {
                reason: Rejection::Invalid,
            },
            message: format!("cannot read {} back: {e}", path.display()),
            source: Some(Box::new(e)),
        })?;
        Ok(RemediationRequest {
            name: name.to_owned(),
            namespace: stored.metadata.namespace,
            labels: stored.metadata.labels,
            spec: stored.spec,
        })
    }

    /// Reads the stored resource `name`, lets `change` edit its deduplication bookkeeping, and
    /// writes it back. The caller holds the name's lock.
    async fn modify(
        &self,
        name: &str,
        change: impl FnOnce(&mut DeduplicationInfo),
    ) -> Result<Written, WriteError> {
        let mut request = self.read(name).await?;
        change(&mut request.spec.deduplication);
        self.write_unlocked(&request, true).await
    }

    async fn write(
        &self,
        request: &RemediationRequest,
        replace: bool,
    ) -> Result<Written, WriteError> {
        let _guard = self.lock_of(&request.name).lock().await;
        if replace {
            // Never backwards: a stored spec as far along stays (another writer came first).
            match self.read(&request.name).await {
                Ok(stored) if stored.spec.progress() >= request.spec.progress() => {
                    return Ok(Written::Superseded);
                }
                Ok(_) => {}
                Err(e) if e.failure == WriteFailure::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let written = self.write_unlocked(request, replace).await?;
        if written != Written::AlreadyExisted {
            return Ok(written);
        }
        // AlreadyExists is a second line of dedup: this occurrence is counted on the first.
        let at = request.spec.deduplication.last_occurrence;
        self.modify(&request.name, |dedup| {
            dedup.occurrence_count = dedup.occurrence_count.saturating_add(1);
            dedup.last_occurrence = dedup.last_occurrence.max(at);
        })
        .await?;
        Ok(Written::AlreadyExisted)
    }

    async fn write_unlocked(
        &self,
        request: &RemediationRequest,
        replace: bool,
    ) -> Result<Written, WriteError> {
        Self::check_name(&request.name)?;
        let text = Self::render(request)?;
        let target = self.path_of(&request.name);
        let temp = self.temp_path(&request.name);
        self.committer.publish(temp, target, text, replace).await
    }
}

#[async_trait]
impl RemediationWriter for DirectoryWriter {
    async fn create(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
        self.write(request, false).await
    }

    async fn update(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
        self.write(request, true).await
    }

    async fn record_occurrences(&self, occurrences: &Occurrences) -> Result<Written, WriteError> {
        let _guard = self.lock_of(&occurrences.name).lock().await;
        self.modify(&occurrences.name, |dedup| {
            dedup.occurrence_count = dedup.occurrence_count.max(occurrences.occurrence_count);
            dedup.last_occurrence = dedup.last_occurrence.max(occurrences.last_occurrence);
        })
        .await
    }

    async fn check(&self) -> Result<(), WriteError> {
        let dir = self.dir.clone();
        let meta = tokio::fs::metadata(&dir)
            .await
            .map_err(|e| io_failure("stat", &dir, e))?;
        if meta.is_dir() && !meta.permissions().readonly() {
            Ok(())
        } else {
            Err(WriteError::new(
                WriteFailure::Rejected {
                    reason: Rejection::Forbidden,
                },
                format!("{} is not a writable directory", dir.display()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gateway_ports::remediation::{DeduplicationInfo, RemediationRequestSpec};
    use gateway_ports::test_util::{at, pod};
    use gateway_ports::{Fingerprint, Severity};

    use super::*;

    fn request(name: &str, count: u64) -> RemediationRequest {
        let t = at(0);
        RemediationRequest {
            name: name.to_owned(),
            namespace: "prod".to_owned(),
            labels: BTreeMap::from([("kubernaut.io/severity".to_owned(), "critical".to_owned())]),
            spec: RemediationRequestSpec {
                signal_fingerprint: Fingerprint::from_hex(&"a".repeat(64)).unwrap(),
                signal_name: "KubePodCrashLooping".to_owned(),
                severity: Severity::Critical,
                signal_type: "prometheus-alert".to_owned(),
                signal_source: "prometheus".to_owned(),
                target_type: "kubernetes".to_owned(),
                target_resource: pod("prod", "api-0"),
                firing_time: t,
                received_time: t,
                signal_labels: BTreeMap::new(),
                signal_annotations: BTreeMap::new(),
                is_storm: false,
                storm: None,
                deduplication: DeduplicationInfo {
                    first_occurrence: t,
                    last_occurrence: t,
                    occurrence_count: count,
                },
            },
        }
    }

    #[tokio::test]
    async fn create_writes_a_kubernetes_shaped_document() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        assert_eq!(
            w.create(&request("rr-1", 1)).await.unwrap(),
            Written::Created
        );
        let text = std::fs::read_to_string(w.path_of("rr-1")).unwrap();
        assert!(
            text.starts_with(
                "apiVersion: remediation.kubernaut.io/v1alpha1\nkind: RemediationRequest\n"
            ),
            "{text}"
        );
        assert!(text.contains("signalFingerprint: aaaa"), "{text}");
        assert!(text.contains("occurrenceCount: 1"), "{text}");
    }

    #[tokio::test]
    async fn create_of_an_existing_name_keeps_the_first_and_counts_the_occurrence() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        let mut first = request("rr-1", 1);
        first.spec.signal_name = "First".to_owned();
        w.create(&first).await.unwrap();
        assert_eq!(
            w.create(&request("rr-1", 1)).await.unwrap(),
            Written::AlreadyExisted
        );
        let text = std::fs::read_to_string(w.path_of("rr-1")).unwrap();
        assert!(text.contains("signalName: First"), "{text}");
        assert!(text.contains("occurrenceCount: 2"), "{text}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[tokio::test]
    async fn update_replaces_in_place_and_creates_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        assert_eq!(
            w.update(&request("rr-2", 1)).await.unwrap(),
            Written::Created
        );
        assert_eq!(
            w.update(&request("rr-2", 5)).await.unwrap(),
            Written::Updated
        );
        let text = std::fs::read_to_string(w.path_of("rr-2")).unwrap();
        assert!(text.contains("occurrenceCount: 5"));
    }

    #[tokio::test]
    async fn an_update_with_older_content_leaves_the_newer_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        w.update(&request("rr-3", 5)).await.unwrap();
        assert_eq!(
            w.update(&request("rr-3", 4)).await.unwrap(),
            Written::Superseded
        );
        assert_eq!(
            w.update(&request("rr-3", 5)).await.unwrap(),
            Written::Superseded,
            "as far along: nothing to write"
        );
        let text = std::fs::read_to_string(w.path_of("rr-3")).unwrap();
        assert!(text.contains("occurrenceCount: 5"), "{text}");
    }

    #[tokio::test]
    async fn record_occurrences_sets_the_count_never_lowers_it_and_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        let occurrences = |count| Occurrences {
            name: "rr-3".to_owned(),
            namespace: "prod".to_owned(),
            last_occurrence: at(100),
            occurrence_count: count,
        };
        let missing = w.record_occurrences(&occurrences(4)).await.unwrap_err();
        assert!(matches!(missing.failure, WriteFailure::NotFound));
        assert!(!w.path_of("rr-3").exists());
        w.create(&request("rr-3", 1)).await.unwrap();
        assert_eq!(
            w.record_occurrences(&occurrences(4)).await.unwrap(),
            Written::Updated
        );
        w.record_occurrences(&occurrences(3)).await.unwrap();
        let text = std::fs::read_to_string(w.path_of("rr-3")).unwrap();
        assert!(text.contains("occurrenceCount: 4"), "{text}");
        assert!(
            text.contains("lastOccurrence: \"2025-11-25T17:01:40"),
            "{text}"
        );
    }

    #[test]
    fn only_the_writers_own_temporary_names_are_recognised() {
        for temp in [".rr-1.42.0.tmp", ".rr-storm-abc.def.1.17.tmp", ".a.0.0.tmp"] {
            assert!(is_temp_name(temp), "{temp}");
        }
        for other in [
            "rr-1.yaml",
            ".rr-1.yaml",
            "rr-1.42.0.tmp",
            ".rr-1.tmp",
            ".rr-1.42.tmp",
            ".rr-1.x.0.tmp",
            ".rr-1.42.0.tmp.bak",
            ".RR.42.0.tmp",
            "..42.0.tmp",
            ".42.0.tmp",
            ".swp.tmp",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
    }

    #[tokio::test]
    async fn opening_removes_the_temporary_files_a_writer_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        w.create(&request("rr-1", 1)).await.unwrap();
        // A crash between creating a temporary file and publishing it, twice, by other pids.
        std::fs::write(dir.path().join(".rr-2.4242.0.tmp"), "half a docu").unwrap();
        std::fs::write(dir.path().join(".rr-1.77.3.tmp"), "apiVersion: x\n").unwrap();
        let kept = ["notes.txt", ".hidden.tmp", "rr-3.1.2.tmp", ".rr-4.yaml"];
        for name in kept {
            std::fs::write(dir.path().join(name), "someone else's").unwrap();
        }
        std::fs::create_dir(dir.path().join(".rr-5.1.1.tmp")).unwrap();

        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 2);
        std::fs::write(dir.path().join(".rr-6.1.1.tmp"), "").unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".hidden.tmp",
                ".rr-4.yaml",
                ".rr-5.1.1.tmp",
                "notes.txt",
                "rr-1.yaml",
                "rr-3.1.2.tmp"
            ]
        );
        assert_eq!(
            w.read("rr-1")
                .await
                .unwrap()
                .spec
                .deduplication
                .occurrence_count,
            1
        );
    }

    #[test]
    fn a_directory_that_cannot_be_synced_is_a_failure_to_retry() {
        // Every write above goes through `sync_dir` after publishing; this is its failure.
        let dir = tempfile::tempdir().unwrap();
        let err = sync_dir(&dir.path().join("gone")).unwrap_err();
        assert_eq!(err.failure, WriteFailure::Unavailable { retry_after: None });
        assert!(
            err.message.starts_with("sync directory "),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn occurrence_counts_read_from_disk_saturate_and_garbage_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        w.create(&request("rr-1", u64::MAX)).await.unwrap();
        assert_eq!(
            w.create(&request("rr-1", 1)).await.unwrap(),
            Written::AlreadyExisted
        );
        let stored = w.read("rr-1").await.unwrap();
        assert_eq!(stored.spec.deduplication.occurrence_count, u64::MAX);

        let path = w.path_of("rr-1");
        let text = std::fs::read_to_string(&path).unwrap();
        let beyond = text.replace("18446744073709551615", "18446744073709551616");
        for garbage in [beyond, text.replace("18446744073709551615", "-1")] {
            std::fs::write(&path, garbage).unwrap();
            let err = w.create(&request("rr-1", 1)).await.unwrap_err();
            assert_eq!(
                err.failure,
                WriteFailure::Rejected {
                    reason: Rejection::Invalid
                },
                "{}",
                err.message
            );
        }
    }

    #[tokio::test]
    async fn names_that_could_escape_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirectoryWriter::new(dir.path()).unwrap();
        for bad in ["../x", "a/b", "", ".hidden", "UPPER"] {
            let err = w.create(&request(bad, 1)).await.unwrap_err();
            assert_eq!(
                err.failure,
                WriteFailure::Rejected {
                    reason: Rejection::Invalid,
                },
                "{bad}"
            );
        }
    }
}
