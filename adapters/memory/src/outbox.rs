//! [`MemoryOutbox`]: the [`Outbox`] port in process memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use gateway_ports::{Outbox, OutboxEntry, StoreError};

/// The pending-write queue in process memory, for `--state memory` and tests.
///
/// **Lost on a crash**: unlike the embedded and Redis stores, an entry put here survives neither
/// `kill -9` nor a restart, so signals handed to it are gone if the process dies before they are
/// written. Versions come from one counter for all keys, so a key put again after a removal gets
/// a greater version than any it had.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    state: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: BTreeMap<String, (u64, Vec<u8>)>,
    last_version: u64,
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        MemoryOutbox::default()
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Every update is a single insert or remove: the map is consistent even if a holder
        // panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn put(&self, key: &str, entry: Vec<u8>) -> Result<u64, StoreError> {
        let mut entries = self.lock();
        entries.last_version += 1;
        let version = entries.last_version;
        entries.by_key.insert(key.to_owned(), (version, entry));
        Ok(version)
    }

    async fn remove(&self, key: &str, version: u64) -> Result<(), StoreError> {
        let mut entries = self.lock();
        if entries.by_key.get(key).is_some_and(|(v, _)| *v == version) {
            entries.by_key.remove(key);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self
            .lock()
            .by_key
            .iter()
            .map(|(key, (version, entry))| OutboxEntry {
                key: key.clone(),
                version: *version,
                entry: entry.clone(),
            })
            .collect())
    }

    async fn len(&self) -> Result<usize, StoreError> {
        Ok(self.lock().by_key.len())
    }
}
