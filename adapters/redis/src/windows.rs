//! The [`WindowStore`] port: one hash per window, `…:storm:window:{w<shard>}:<name>` (`v` version,
//! `s` state), replaced by a compare-and-set script and listed in its shard's set
//! `…:storm:windows:{w<shard>}`.
//!
//! A window and its index share a hash tag, so every script runs on one slot (a Redis Cluster
//! serves them), and the ticker finds every open window by reading the [`WINDOW_SHARDS`]
//! indexes, wherever the Cluster keeps them. Every script that adds to or removes from an index
//! does so in the same atomic step as the window's change, and an index's TTL is never shorter
//! than a listed window's, so a stored window is always listed.
//!
//! A window holds signals answered `202 buffered`: with `--redis-replica-acks N`, a change is
//! answered only once N replicas have it ([`RedisStore::replicated`]), so a failover loses none.
//!
//! Windows stored before Cluster support (`…:storm:window:{<len>:<name>}`, listed in
//! `…:storm:windows`) are moved to their shard's keys by `keys`, so an upgrade during a storm
//! loses none.
//!
//! [`WINDOW_SHARDS`]: crate::keys::WINDOW_SHARDS

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{StoreError, StoredWindow, WindowStore};
use redis::{AsyncCommands, Script};

use crate::RedisStore;
use crate::topology::Connection;

/// Compare-and-set of one window: 1 when done, 0 when another writer came first.
static REPLACE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/replace_window.lua")));

/// Moves a window of the layout before Cluster support to its shard's keys.
static ADOPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/adopt_window.lua")));

/// Whether a listed window is still stored; an entry for a window no longer stored leaves the
/// index in the same atomic step.
static LISTED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/load_window.lua")));

#[async_trait]
impl WindowStore for RedisStore {
    async fn load(&self, key: &str) -> Result<Option<StoredWindow>, StoreError> {
        // Every new signal loads its window, and almost always there is none: a plain read, no
        // script and no write. The index is tidied by `keys`, which the ticker calls.
        let mut manager = self.manager()?;
        let (version, state): (Option<u64>, Option<Vec<u8>>) = self
            .timed(
                "loading a storm window",
                redis::cmd("HMGET")
                    .arg(self.window_key(key))
                    .arg("v")
                    .arg("s")
                    .query_async(&mut manager),
            )
            .await?;
        Ok(version
            .zip(state)
            .map(|(version, state)| StoredWindow { version, state }))
    }

    async fn replace(
        &self,
        key: &str,
        expected: Option<u64>,
        state: Option<Vec<u8>>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut manager = self.manager()?;
        let mut invocation = REPLACE.key(self.window_key(key));
        invocation
            .key(self.window_index(key))
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(if state.is_some() { "set" } else { "delete" })
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(key)
            .arg(state.unwrap_or_default());
        let replaced: u8 = self
            .timed(
                "replacing a storm window",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        if replaced == 1 {
            self.replicated("replacing a storm window", &self.window_key(key))
                .await?;
        }
        Ok(replaced == 1)
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let mut manager = self.manager()?;
        if !self.is_cluster() {
            self.adopt_legacy_windows(&mut manager).await?;
        }
        let indexes = self.window_indexes().map(|index| {
            let mut manager = manager.clone();
            async move {
                self.timed("listing storm windows", manager.smembers(index))
                    .await
            }
        });
        let listed: Vec<Vec<String>> = futures::future::try_join_all(indexes).await?;
        // A window that expired leaves its entry behind; it goes here, atomically with the look,
        // so a window stored again in between keeps its entry.
        let mut stored = Vec::with_capacity(listed.len());
        for name in listed.into_iter().flatten() {
            let mut invocation = LISTED.key(self.window_key(&name));
            invocation.key(self.window_index(&name)).arg(&name);
            let window: Option<(u64, Vec<u8>)> = self
                .timed(
                    "tidying the storm window index",
                    invocation.invoke_async(&mut manager),
                )
                .await?;
            if window.is_some() {
                stored.push(name);
            }
        }
        Ok(stored)
    }
}

impl RedisStore {
    /// Windows left in the layout before Cluster support (an upgrade during a storm) move to
    /// their shard's keys, so the ticker still finds and closes them. That layout only ever
    /// lived on one server, so a Cluster is never asked.
    async fn adopt_legacy_windows(&self, manager: &mut Connection) -> Result<(), StoreError> {
        let legacy: Vec<String> = self
            .timed(
                "listing storm windows of the old layout",
                manager.smembers(self.legacy_window_index()),
            )
            .await?;
        for name in legacy {
            let [old_window, old_index] = self.legacy_window_keys(&name);
            let mut invocation = ADOPT.key(old_window);
            invocation
                .key(old_index)
                .key(self.window_key(&name))
                .key(self.window_index(&name))
                .arg(&name);
            let moved: u8 = self
                .timed(
                    "moving a storm window of the old layout",
                    invocation.invoke_async(manager),
                )
                .await?;
            if moved == 0 {
                tracing::info!(
                    window = %name,
                    "a storm window of the old layout waits for the open one of its name to close"
                );
            }
        }
        Ok(())
    }
}
