//! The three settings documents as one set ([`Documents`]), and reading them from a config
//! directory.
//!
//! In a kubelet-managed directory the visible files are symlinks through `..data`, itself a
//! symlink to a timestamped directory that an update replaces atomically. The set is read from
//! the directory `..data` resolves to; if `..data` moved while we read (the old directory may be
//! deleted under us), the read starts over.

use std::collections::BTreeMap;
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

/// The settings documents of one source, read or received as one set: per settings type, the
/// bytes of its document (`storm.yaml`, `dedup.yaml`, `retry.yaml`) or nothing.
///
/// A config directory is read into one ([`FileConfigSource::load`](crate::FileConfigSource::load));
/// anything else that holds the three documents (a ConfigMap read through the Kubernetes API)
/// builds one with [`Documents::from_data`] or [`Documents::absent`] and feeds it to
/// [`FileConfigSource::from_documents`](crate::FileConfigSource::from_documents) and
/// [`FileConfigSource::apply_documents`](crate::FileConfigSource::apply_documents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    /// Per kind, in [`ConfigKind::ALL`] order.
    contents: [Content; 3],
    /// Whether the container of the documents (the directory, the ConfigMap) exists.
    present: bool,
}

impl Documents {
    /// No container at all (no directory, no ConfigMap): every document is missing.
    pub fn absent() -> Self {
        Documents {
            contents: [Content::Missing, Content::Missing, Content::Missing],
            present: false,
        }
    }

    /// The documents of a name → content map (a ConfigMap's `data`): `storm.yaml`, `dedup.yaml`
    /// and `retry.yaml`, each missing when its key is; other keys are ignored.
    pub fn from_data(data: &BTreeMap<String, String>) -> Self {
        Documents {
            contents: ConfigKind::ALL.map(|kind| match data.get(kind.file_name()) {
                Some(text) => Content::Bytes(text.as_bytes().to_vec()),
                None => Content::Missing,
            }),
            present: true,
        }
    }

    /// The bytes of `kind`'s document, `None` when it is missing.
    pub fn get(&self, kind: ConfigKind) -> Option<&[u8]> {
        match self.content(kind) {
            Content::Missing => None,
            Content::Bytes(bytes) => Some(bytes),
        }
    }

    /// Whether the container of the documents exists (see [`Documents::absent`]).
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The content of `kind`.
    pub(crate) fn content(&self, kind: ConfigKind) -> &Content {
        &self.contents[index(kind)]
    }
}

impl From<Option<&BTreeMap<String, String>>> for Documents {
    /// `None` (no ConfigMap) is [`Documents::absent`].
    fn from(data: Option<&BTreeMap<String, String>>) -> Self {
        data.map_or_else(Documents::absent, Documents::from_data)
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
pub fn read_dir(dir: &Path) -> io::Result<Documents> {
    const ATTEMPTS: usize = 5;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        if !dir.is_dir() {
            return Ok(Documents::absent());
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
        return Ok(Documents {
            contents,
            present: true,
        });
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
