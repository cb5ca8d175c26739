//! The [`Outbox`] port: one row per key (version + entry); versions from one counter kept in
//! the database, so they never repeat, across removals and restarts alike.

use async_trait::async_trait;
use gateway_ports::{Outbox, OutboxEntry, StoreError};
use redb::{ReadableTable, ReadableTableMetadata};

use crate::EmbeddedStore;
use crate::codec::{self, COUNTERS, OUTBOX, OUTBOX_VERSION};
use crate::writer::{Batch, Failure};

fn put(batch: &mut Batch<'_>, key: &str, entry: &[u8]) -> Result<u64, Failure> {
    let mut counters = batch.transaction.open_table(COUNTERS)?;
    let version = counters.get(OUTBOX_VERSION)?.map_or(0, |last| last.value()) + 1;
    counters.insert(OUTBOX_VERSION, version)?;
    batch
        .transaction
        .open_table(OUTBOX)?
        .insert(key, codec::encode_outbox(version, entry).as_slice())?;
    Ok(version)
}

fn remove(batch: &mut Batch<'_>, key: &str, version: u64) -> Result<(), Failure> {
    let mut table = batch.transaction.open_table(OUTBOX)?;
    let current = match table.get(key)? {
        Some(row) => Some(codec::decode_outbox(row.value())?.0),
        None => None,
    };
    if current == Some(version) {
        table.remove(key)?;
    }
    Ok(())
}

#[async_trait]
impl Outbox for EmbeddedStore {
    async fn put(&self, key: &str, entry: Vec<u8>) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.write(move |batch| put(batch, &key, &entry)).await
    }

    async fn remove(&self, key: &str, version: u64) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |batch| remove(batch, &key, version)).await
    }

    async fn list(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read(|transaction| {
            let table = transaction.open_table(OUTBOX)?;
            let mut entries = Vec::new();
            for row in table.iter()? {
                let (key, row) = row?;
                let (version, entry) = codec::decode_outbox(row.value())?;
                entries.push(OutboxEntry {
                    key: key.value().to_owned(),
                    version,
                    entry: entry.to_vec(),
                });
            }
            Ok(entries)
        })
        .await
    }

    async fn len(&self) -> Result<usize, StoreError> {
        self.read(|transaction| {
            let len = transaction.open_table(OUTBOX)?.len()?;
            Ok(usize::try_from(len).unwrap_or(usize::MAX))
        })
        .await
    }
}
