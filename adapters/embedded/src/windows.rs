//! The [`WindowStore`] port: one row per key ([`WindowSlot`], the ports' compare-and-set);
//! expired windows and deletions' versions swept.

use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{Replacement, StoreError, StoredWindow, WindowSlot, WindowStore};
use redb::{ReadableTable, ReadableTableMetadata};

use crate::EmbeddedStore;
use crate::codec::{self, WINDOWS};
use crate::writer::{Batch, Failure};

fn replace(
    batch: &mut Batch<'_>,
    key: &str,
    expected: Option<u64>,
    state: Option<Vec<u8>>,
    ttl: Duration,
) -> Result<bool, Failure> {
    let now = batch.clock.now();
    let mut table = batch.transaction.open_table(WINDOWS)?;
    if batch.state.window_sweep.due() {
        let mut gone = Vec::new();
        for entry in table.iter()? {
            let (key, row) = entry?;
            if !codec::decode_slot(row.value())?.is_live(now) {
                gone.push(key.value().to_owned());
            }
        }
        for key in gone {
            table.remove(key.as_str())?;
        }
        batch.state.window_sweep.swept(table.len()?);
    }
    let current = table
        .get(key)?
        .map(|row| codec::decode_slot(row.value()))
        .transpose()?;
    Ok(
        match WindowSlot::replace(current.as_ref(), expected, state, ttl, now) {
            Replacement::Refused => false,
            Replacement::Unchanged => true,
            Replacement::Store(slot) => {
                table.insert(key, codec::encode_slot(&slot).as_slice())?;
                true
            }
        },
    )
}

#[async_trait]
impl WindowStore for EmbeddedStore {
    async fn load(&self, key: &str) -> Result<Option<StoredWindow>, StoreError> {
        let key = key.to_owned();
        let now = self.clock.now();
        self.read(move |transaction| {
            let table = transaction.open_table(WINDOWS)?;
            let Some(row) = table.get(key.as_str())? else {
                return Ok(None);
            };
            let slot = codec::decode_slot(row.value())?;
            Ok(slot.is_live(now).then(|| slot.window()).flatten())
        })
        .await
    }

    async fn replace(
        &self,
        key: &str,
        expected: Option<u64>,
        state: Option<Vec<u8>>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write(move |batch| replace(batch, &key, expected, state, ttl))
            .await
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        self.read(move |transaction| {
            let table = transaction.open_table(WINDOWS)?;
            let mut keys = Vec::new();
            for entry in table.iter()? {
                let (key, row) = entry?;
                let slot = codec::decode_slot(row.value())?;
                if slot.is_live(now) && slot.state.is_some() {
                    keys.push(key.value().to_owned());
                }
            }
            Ok(keys)
        })
        .await
    }
}
