//! Reading the three files of a config directory as one consistent set.
//!
//! In a kubelet-managed directory the visible files are symlinks through `..data`, itself a
//! symlink to a timestamped directory that an update replaces atomically. The set is read from
//! the directory `..data` resolves to; if `..data` moved while we read (the old directory may be
//! deleted under us), the read starts over.

use std::io;
use std::path::{Path, PathBuf};

use gateway_ports::ConfigKind;
use sha2::{Digest, Sha256};

/// What a file held when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// No such file.
    Missing,
    /// Its bytes.
    Bytes(Vec<u8>),
}

impl Content {
    /// SHA-256 (hex) of the bytes; `missing` for a missing file.
    pub fn hash(&self) -> String {
        match self {
            Content::Missing => MISSING.to_owned(),
            Content::Bytes(b) => Sha256::digest(b)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect(),
        }
    }
}

/// The hash recorded for a missing file.
pub const MISSING: &str = "missing";

/// One consistent read of the directory.
#[derive(Debug)]
pub struct DirSnapshot {
    /// Per kind, in [`ConfigKind::ALL`] order.
    pub contents: [Content; 3],
}

impl DirSnapshot {
    /// The content read for `kind`.
    pub fn content(&self, kind: ConfigKind) -> &Content {
        &self.contents[index(kind)]
    }
}

/// The position of `kind` in [`ConfigKind::ALL`].
pub fn index(kind: ConfigKind) -> usize {
    match kind {
        ConfigKind::Storm => 0,
        ConfigKind::Dedup => 1,
        ConfigKind::Retry => 2,
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

/// Reads storm.yaml, dedup.yaml and retry.yaml of `dir` as one set. A missing directory reads as
/// three missing files.
pub fn read_dir(dir: &Path) -> io::Result<DirSnapshot> {
    const ATTEMPTS: usize = 5;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        if !dir.is_dir() {
            return Ok(DirSnapshot {
                contents: [Content::Missing, Content::Missing, Content::Missing],
            });
        }
        let resolved = resolve(dir)?;
        let base = resolved.clone().unwrap_or_else(|| dir.to_owned());
        let read = |kind: ConfigKind| read_file(&base.join(kind.file_name()));
        let contents = match (
            read(ConfigKind::Storm),
            read(ConfigKind::Dedup),
            read(ConfigKind::Retry),
        ) {
            (Ok(a), Ok(b), Ok(c)) => [a, b, c],
            (a, b, c) => {
                last_error = [a.err(), b.err(), c.err()].into_iter().flatten().next();
                continue;
            }
        };
        // A swap between resolving and reading can leave us with files of a deleted directory.
        if resolved.is_some() && resolve(dir)? != resolved {
            continue;
        }
        return Ok(DirSnapshot { contents });
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::other("the config directory kept changing while it was read")
    }))
}

/// Whether the visible config files of `dir` are symlinks through `..data` (a ConfigMap mounted
/// as a directory). `None` when there is nothing to judge (no directory, no files).
pub fn mounted_as_directory(dir: &Path) -> Option<bool> {
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
