//! The emulator's etcd: objects by resource, namespace and name, one global revision counter,
//! and a bounded history of changes that watches replay and follow.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::Resource;

/// How many changes a watch can replay; older resource versions get `410 Expired`.
const HISTORY: usize = 10_000;
/// How far a watch may fall behind the live changes before it is ended with `410 Expired`.
const BROADCAST: usize = 4_096;

/// One change, as watches report it.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) resource: Resource,
    pub(crate) kind: ChangeKind,
    /// The revision the change was written at.
    pub(crate) rv: u64,
    /// The object after the change (for a deletion: its last state, at the deletion's revision).
    pub(crate) object: Value,
    /// The object before a modification.
    pub(crate) old: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// What live watches receive.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    Change(Arc<Change>),
    /// End every watch stream now (`ApiServer::end_watches`).
    Close,
}

/// A watch asked for a revision the history no longer holds.
#[derive(Debug)]
pub(crate) struct Expired {
    pub(crate) requested: u64,
    pub(crate) oldest: u64,
}

type Key = (Resource, String, String);

#[derive(Debug)]
pub(crate) struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// Every change after this revision is in `history`.
    compacted: u64,
    notices: broadcast::Sender<Notice>,
    serial: u64,
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 1,
            notices: broadcast::channel(BROADCAST).0,
            serial: 0,
        }
    }

    /// The latest revision.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// A fresh number for UIDs and generated names.
    pub(crate) fn serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    pub(crate) fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(resource, namespace.to_owned(), name.to_owned()))
    }

    /// Objects of a resource, in one namespace or all, in key order.
    pub(crate) fn list<'a>(
        &'a self,
        resource: Resource,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |((r, ns, _), _)| *r == resource && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v)
    }

    /// Writes an object (created or replaced) at a new revision, which it returns with.
    pub(crate) fn write(&mut self, resource: Resource, mut object: Value) -> Value {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let old = self
            .objects
            .insert((resource, namespace, name), object.clone());
        let kind = if old.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(Change {
            resource,
            kind,
            rv: self.rv,
            object: object.clone(),
            old,
        });
        object
    }

    /// Removes an object at a new revision; returns its last state (at that revision).
    pub(crate) fn remove(
        &mut self,
        resource: Resource,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let mut object = self
            .objects
            .remove(&(resource, namespace.to_owned(), name.to_owned()))?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(Change {
            resource,
            kind: ChangeKind::Deleted,
            rv: self.rv,
            object: object.clone(),
            old: None,
        });
        Some(object)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY {
            if let Some(oldest) = self.history.pop_front() {
                self.compacted = oldest.rv;
            }
        }
        // No receiver is fine: nobody is watching.
        let _ = self.notices.send(Notice::Change(change));
    }

    /// The changes after `rv` and a subscription to the later ones, taken atomically.
    pub(crate) fn watch_from(
        &self,
        rv: u64,
    ) -> Result<(Vec<Arc<Change>>, broadcast::Receiver<Notice>), Expired> {
        if rv < self.compacted {
            return Err(Expired {
                requested: rv,
                oldest: self.compacted,
            });
        }
        let replay = self.history.iter().filter(|c| c.rv > rv).cloned().collect();
        Ok((replay, self.notices.subscribe()))
    }

    /// Forgets the history: watches from any earlier revision get `410 Expired`.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Ends every open watch stream.
    pub(crate) fn close_watches(&self) {
        let _ = self.notices.send(Notice::Close);
    }
}
