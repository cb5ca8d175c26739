//! The embedded [`RemediationWriter`]: one YAML document per `RemediationRequest`, in a directory.
//!
//! Each resource is `DIR/NAME.yaml`, shaped like the Kubernetes object (`apiVersion`, `kind`,
//! `metadata`, `spec`), so what a user reads here is what the Kubernetes sink would create.
//! Writes are atomic: a temporary file is linked into place (create: fails if the name exists,
//! which is `AlreadyExists`) or renamed over it (update), so a reader never sees half a document.
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

/// The CRD's group and version.
pub const API_VERSION: &str = "remediation.kubernaut.io/v1alpha1";

/// Writes RemediationRequests as YAML files into one directory.
#[derive(Debug)]
pub struct DirectoryWriter {
    dir: PathBuf,
    temp_counter: AtomicU64,
    /// Per-name locks (striped): writes of one name never interleave.
    locks: Vec<tokio::sync::Mutex<()>>,
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

/// The gateway's word for a file-system error: refusals that another attempt would meet again
/// are rejections; anything else (a full disk, an interrupted call) may pass.
fn io_failure(action: &str, path: &Path, e: io::Error) -> WriteError {
    let failure = match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            WriteFailure::Rejected {
                reason: Rejection::Forbidden,
            }
        }
        io::ErrorKind::InvalidInput => WriteFailure::Rejected {
            reason: Rejection::Invalid,
        },
        _ => WriteFailure::Unavailable { retry_after: None },
    };
    WriteError {
        failure,
        message: format!("{action} {}: {e}", path.display()),
        source: Some(Box::new(e)),
    }
}

impl DirectoryWriter {
    /// A writer into `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(DirectoryWriter {
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
        serde_norway::to_string(&doc).map_err(|e| WriteError {
            failure: WriteFailure::Rejected {
                reason: Rejection::Invalid,
            },
            message: format!("cannot render {} as YAML: {e}", request.name),
            source: Some(Box::new(e)),
        })
    }

    fn check_name(name: &str) -> Result<(), WriteError> {
        // Names become file names: refuse anything that could leave the directory.
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !name.starts_with('.');
        if ok {
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
            .join(format!(".{name}.{}.{n}.tmp", std::process::id()))
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
        tokio::task::spawn_blocking(move || write_file(&temp, &target, text.as_bytes(), replace))
            .await
            .map_err(|e| {
                WriteError::new(
                    WriteFailure::Unavailable { retry_after: None },
                    format!("writer task failed: {e}"),
                )
            })?
    }
}

fn write_file(
    temp: &Path,
    target: &Path,
    bytes: &[u8],
    replace: bool,
) -> Result<Written, WriteError> {
    use std::io::Write;
    let result = (|| {
        let mut file = std::fs::File::create(temp).map_err(|e| io_failure("create", temp, e))?;
        file.write_all(bytes)
            .map_err(|e| io_failure("write", temp, e))?;
        file.sync_data().map_err(|e| io_failure("sync", temp, e))?;
        if replace {
            let existed = target.exists();
            std::fs::rename(temp, target).map_err(|e| io_failure("rename to", target, e))?;
            Ok(if existed {
                Written::Updated
            } else {
                Written::Created
            })
        } else {
            // A hard link fails when the target exists: create-if-absent in one atomic step.
            match std::fs::hard_link(temp, target) {
                Ok(()) => Ok(Written::Created),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Written::AlreadyExisted),
                Err(e) => Err(io_failure("link", target, e)),
            }
        }
    })();
    let _ = std::fs::remove_file(temp); // already gone after a rename
    result
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
            text.contains("lastOccurrence: 2025-11-25T17:01:40"),
            "{text}"
        );
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
