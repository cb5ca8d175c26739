//! The config directory as a settings source ([`DirSource`]): its settings files read as one set
//! ([`ConfigDir`]), judged by the [`Judge`](crate::Judge), watched by [`DirSource::watch`].
//!
//! In a kubelet-managed directory the visible files are symlinks through `..data`, itself a
//! symlink to a timestamped directory that an update replaces atomically. The set is read from
//! the directory `..data` resolves to; if `..data` moved while we read (the old directory may be
//! deleted under us), the read starts over.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use gateway_ports::{Clock, ConfigKind};

use crate::documents::{Content, DocumentNames, Documents};
use crate::source::{DocumentSource, ReadDocuments, ReadError};
use crate::{ConfigErrors, DocumentProblem};

/// The settings of a config directory (the mounted ConfigMap), hot-reloadable:
/// [`DirSource::load`] at start-up, then [`DirSource::watch`]; `POST /-/reload` re-reads it.
pub type DirSource = DocumentSource<ConfigDir>;

/// Reads a config directory's `storm.yaml`, `dedup.yaml`, `retry.yaml` and `security.yaml` as one
/// set.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    dir: PathBuf,
}

impl ConfigDir {
    /// The directory at `dir` (it need not exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ConfigDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads the set now (blocking IO). A missing directory reads as [`Documents::absent`].
    pub fn read_now(&self) -> io::Result<Documents> {
        read_dir(&self.dir)
    }
}

#[async_trait]
impl ReadDocuments for ConfigDir {
    /// [`ConfigDir::read_now`], off the runtime's threads.
    async fn read(&self) -> Result<Documents, ReadError> {
        let dir = self.clone();
        match tokio::task::spawn_blocking(move || dir.read_now()).await {
            Ok(read) => Ok(read?),
            Err(e) => Err(Box::new(e)),
        }
    }
}

impl DocumentSource<ConfigDir> {
    /// Loads `dir` at start-up (blocking IO). Missing directory or files: the built-in defaults,
    /// with a warning. Any invalid file: an error naming file, key and reason of every problem.
    pub fn load(dir: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> Result<Self, ConfigErrors> {
        let dir = ConfigDir::new(dir);
        let documents = dir.read_now().map_err(|e| {
            ConfigErrors(vec![DocumentProblem {
                document: dir.path().display().to_string(),
                key: None,
                reason: format!("cannot read: {e}"),
            }])
        })?;
        let names = DocumentNames::files_in(dir.path());
        Self::start(dir, names, &documents, clock)
    }

    /// The config directory.
    pub fn dir(&self) -> &Path {
        self.reader().path()
    }

    /// A warning when the config files are not symlinks through `..data`: in Kubernetes that is
    /// a `subPath` mount, which is never updated. (On a laptop, plain files are fine.)
    pub fn layout_warning(&self) -> Option<String> {
        let dir = self.dir();
        (mounted_as_directory(dir) == Some(false)).then(|| {
            format!(
                "the config files in {} are not symlinks through ..data: if this is a Kubernetes ConfigMap \
                 mounted with subPath, Kubernetes will never update it; mount the ConfigMap as a directory",
                dir.display()
            )
        })
    }
}

fn resolve(dir: &Path) -> io::Result<Option<PathBuf>> {
    match std::fs::canonicalize(dir.join("..data")) {
        Ok(target) => Ok(Some(target)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_file(path: &Path) -> io::Result<Content> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Content::Bytes(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Content::Missing),
        Err(e) => Err(e),
    }
}

/// Reads every settings file of `dir` (storm.yaml, dedup.yaml, retry.yaml, security.yaml) as one
/// set. A missing directory reads as every file missing.
fn read_dir(dir: &Path) -> io::Result<Documents> {
    const ATTEMPTS: usize = 5;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        if !dir.is_dir() {
            return Ok(Documents::absent());
        }
        let resolved = resolve(dir)?;
        let base = resolved.clone().unwrap_or_else(|| dir.to_owned());
        let read = |kind: ConfigKind| read_file(&base.join(kind.file_name()));
        let read = ConfigKind::ALL.map(read);
        if read.iter().any(Result::is_err) {
            last_error = read.into_iter().find_map(Result::err);
            continue;
        }
        let contents = read.map(|r| r.unwrap_or(Content::Missing));
        // A swap between resolving and reading can leave us with files of a deleted directory.
        if resolved.is_some() && resolve(dir)? != resolved {
            continue;
        }
        return Ok(Documents::present(contents));
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::other("the config directory kept changing while it was read")
    }))
}

/// Whether the visible config files of `dir` are symlinks through `..data` (a ConfigMap mounted
/// as a directory). `None` when there is nothing to judge (no directory, no files).
fn mounted_as_directory(dir: &Path) -> Option<bool> {
    let mut seen_any = false;
    for kind in ConfigKind::ALL {
        let path = dir.join(kind.file_name());
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        seen_any = true;
        let through_data = meta.file_type().is_symlink()
            && std::fs::read_link(&path).is_ok_and(|target| target.starts_with("..data"));
        if !through_data {
            return Some(false);
        }
    }
    seen_any.then_some(true)
}
