//! The [`Outbox`] port: one hash of entries, `…:{outbox}:entries` (field the key, value
//! `<version>:<entry>`, so an entry and its version change together), and its version counter
//! `…:{outbox}:version`, under one hash tag; put and remove are one script each. Outbox keys are
//! the only ones without a TTL: an entry stays until its owner removes it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use gateway_ports::{Outbox, OutboxEntry, StoreError};
use redis::{AsyncCommands, Script};

use crate::RedisStore;

/// Puts one entry: its version.
static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/outbox_put.lua")));

/// Removes one entry if its version is still the given one.
static REMOVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/outbox_remove.lua")));

/// Fields read per `HSCAN` round trip by [`Outbox::list`].
const SCAN_COUNT: usize = 500;

/// `<version>:<entry>` → (version, entry).
fn split(key: &str, stored: &[u8]) -> Result<(u64, Vec<u8>), StoreError> {
    let colon = stored.iter().position(|&b| b == b':');
    let version = colon
        .and_then(|at| std::str::from_utf8(&stored[..at]).ok())
        .and_then(|digits| digits.parse().ok());
    match (colon, version) {
        (Some(at), Some(version)) => Ok((version, stored[at + 1..].to_vec())),
        _ => Err(StoreError::Backend {
            reason: format!("the outbox entry {key:?} has no version"),
            source: None,
        }),
    }
}

#[async_trait]
impl Outbox for RedisStore {
    async fn put(&self, key: &str, entry: Vec<u8>) -> Result<u64, StoreError> {
        let mut manager = self.manager()?;
        let [entries, version] = self.outbox_keys();
        let mut invocation = PUT.key(&entries);
        invocation.key(version).arg(key).arg(entry);
        let version = self
            .timed(
                "putting an outbox entry",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        self.replicated("putting an outbox entry", &entries).await?;
        Ok(version)
    }

    async fn remove(&self, key: &str, version: u64) -> Result<(), StoreError> {
        let mut manager = self.manager()?;
        let [entries, _] = self.outbox_keys();
        let mut invocation = REMOVE.key(entries);
        invocation.arg(key).arg(version);
        let _removed: u8 = self
            .timed(
                "removing an outbox entry",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut manager = self.manager()?;
        let [entries, _] = self.outbox_keys();
        // HSCAN may return a field twice; the map keeps one, in key order.
        let mut found = BTreeMap::new();
        let mut cursor = 0_u64;
        loop {
            let (next, page): (u64, Vec<(String, Vec<u8>)>) = self
                .timed(
                    "listing the outbox",
                    redis::cmd("HSCAN")
                        .arg(&entries)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut manager),
                )
                .await?;
            for (key, stored) in page {
                let (version, entry) = split(&key, &stored)?;
                found.insert(key, (version, entry));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(found
            .into_iter()
            .map(|(key, (version, entry))| OutboxEntry {
                key,
                version,
                entry,
            })
            .collect())
    }

    async fn len(&self) -> Result<usize, StoreError> {
        let mut manager = self.manager()?;
        let [entries, _] = self.outbox_keys();
        self.timed("counting the outbox", manager.hlen(entries))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn a_stored_entry_splits_at_its_first_colon() {
        assert_eq!(split("k", b"12:a:b").unwrap(), (12, b"a:b".to_vec()));
        assert_eq!(split("k", b"3:").unwrap(), (3, Vec::new()));
        assert!(split("k", b"x:a").is_err());
        assert!(split("k", b"12").is_err());
    }
}
