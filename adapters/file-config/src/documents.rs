//! The settings documents of one source as one set ([`Documents`]), and how a source names them
//! ([`DocumentNames`]).

use std::collections::BTreeMap;
use std::path::Path;

use gateway_ports::ConfigKind;
use sha2::{Digest, Sha256};

/// What a document held when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// No such document.
    Missing,
    /// Its bytes.
    Bytes(Vec<u8>),
}

impl Content {
    /// SHA-256 (hex) of the bytes; [`MISSING`] for a missing document.
    pub(crate) fn hash(&self) -> String {
        match self {
            Content::Missing => MISSING.to_owned(),
            Content::Bytes(b) => Sha256::digest(b)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect(),
        }
    }
}

/// The hash recorded for a missing document.
pub(crate) const MISSING: &str = "missing";

/// The settings documents of one source, read or received as one set: per settings type, the
/// bytes of its document (`storm.yaml`, `dedup.yaml`, `retry.yaml`, `security.yaml`) or
/// nothing; and whether their container (the directory, the ConfigMap) exists at all.
///
/// A source builds one from what it holds — a config directory
/// ([`ConfigDir`](crate::ConfigDir)), a ConfigMap's `data` ([`Documents::from_data`],
/// [`Documents::absent`]), documents set one by one ([`Documents::set`]) — and hands it to the
/// [`Judge`](crate::Judge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    /// Per kind, in [`ConfigKind::ALL`] order.
    contents: [Content; ConfigKind::ALL.len()],
    /// Whether the container of the documents exists.
    present: bool,
}

impl Documents {
    /// No container at all (no directory, no ConfigMap): every document is missing.
    pub fn absent() -> Self {
        Documents {
            contents: ConfigKind::ALL.map(|_| Content::Missing),
            present: false,
        }
    }

    /// A container that holds no document yet.
    pub fn empty() -> Self {
        Documents {
            present: true,
            ..Self::absent()
        }
    }

    /// The documents of a name → content map (a ConfigMap's `data`): `storm.yaml`, `dedup.yaml`,
    /// `retry.yaml` and `security.yaml`, each missing when its key is; other keys are ignored.
    pub fn from_data(data: &BTreeMap<String, String>) -> Self {
        Documents {
            contents: ConfigKind::ALL.map(|kind| match data.get(kind.file_name()) {
                Some(text) => Content::Bytes(text.as_bytes().to_vec()),
                None => Content::Missing,
            }),
            present: true,
        }
    }

    /// Sets `kind`'s document (and so the container exists).
    pub fn set(&mut self, kind: ConfigKind, bytes: impl Into<Vec<u8>>) {
        self.contents[index(kind)] = Content::Bytes(bytes.into());
        self.present = true;
    }

    /// Removes `kind`'s document; the container stays.
    pub fn remove(&mut self, kind: ConfigKind) {
        self.contents[index(kind)] = Content::Missing;
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

    /// Documents as read from a container that exists.
    pub(crate) fn present(contents: [Content; ConfigKind::ALL.len()]) -> Self {
        Documents {
            contents,
            present: true,
        }
    }
}

impl From<Option<&BTreeMap<String, String>>> for Documents {
    /// `None` (no ConfigMap) is [`Documents::absent`].
    fn from(data: Option<&BTreeMap<String, String>>) -> Self {
        data.map_or_else(Documents::absent, Documents::from_data)
    }
}

/// The position of `kind` in [`ConfigKind::ALL`].
pub(crate) fn index(kind: ConfigKind) -> usize {
    kind.index()
}

/// How a source names its documents and their container, in problems, origins (`/config`),
/// warnings and audit lines: the source says, the judge only repeats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentNames {
    /// The container in words (`config directory /etc/kubernaut/config`,
    /// `configmap kubernaut-system/kubernaut-gateway-config`, `memory`).
    container: String,
    /// What one document is to its container (`file`, `key`, `document`).
    item: &'static str,
    /// Per kind, in [`ConfigKind::ALL`] order.
    documents: [String; ConfigKind::ALL.len()],
}

impl DocumentNames {
    /// The files of a config directory, named by their paths (`/etc/kubernaut/config/storm.yaml`);
    /// the container is `config directory /etc/kubernaut/config`.
    pub fn files_in(dir: &Path) -> Self {
        DocumentNames {
            container: format!("config directory {}", dir.display()),
            item: "file",
            documents: ConfigKind::ALL.map(|kind| dir.join(kind.file_name()).display().to_string()),
        }
    }

    /// The documents of a container called `label`, each named `<label>: storm.yaml`
    /// (`configmap kubernaut-system/kubernaut-gateway-config: storm.yaml`, `memory: storm.yaml`);
    /// `item` is what one document is to the container (`key` for a ConfigMap).
    pub fn labelled(label: impl Into<String>, item: &'static str) -> Self {
        let container = label.into();
        DocumentNames {
            documents: ConfigKind::ALL.map(|kind| format!("{container}: {}", kind.file_name())),
            container,
            item,
        }
    }

    /// The name of `kind`'s document.
    pub fn document(&self, kind: ConfigKind) -> &str {
        &self.documents[index(kind)]
    }

    /// The container in words.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// What one document is to the container.
    pub fn item(&self) -> &'static str {
        self.item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_named_by_their_source() {
        let files = DocumentNames::files_in(Path::new("/etc/kubernaut/config"));
        assert_eq!(
            files.document(ConfigKind::Storm),
            "/etc/kubernaut/config/storm.yaml"
        );
        assert_eq!(files.container(), "config directory /etc/kubernaut/config");
        assert_eq!(files.item(), "file");
        let keys = DocumentNames::labelled("configmap ns/cfg", "key");
        assert_eq!(
            keys.document(ConfigKind::Retry),
            "configmap ns/cfg: retry.yaml"
        );
        assert_eq!(keys.container(), "configmap ns/cfg");
    }

    #[test]
    fn documents_set_and_removed_one_by_one() {
        let mut documents = Documents::absent();
        assert!(!documents.is_present());
        documents.set(ConfigKind::Dedup, "ttl: 1m\n");
        assert!(documents.is_present());
        assert_eq!(documents.get(ConfigKind::Dedup), Some(&b"ttl: 1m\n"[..]));
        assert_eq!(documents.get(ConfigKind::Storm), None);
        documents.remove(ConfigKind::Dedup);
        assert_eq!(documents, Documents::empty());
    }
}
