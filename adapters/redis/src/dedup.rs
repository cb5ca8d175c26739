//! The [`DedupStore`] port: one hash per fingerprint's window, `…:dedup:{64:<fingerprint>}`
//! (`s` window start, `c` occurrence count), created with its TTL by the same script that
//! decides the first occurrence.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{DedupStore, Fingerprint, Seen, StoreError, Timestamp};
use redis::{AsyncCommands, Script};

use crate::RedisStore;

/// Records one occurrence: `{is_first, window_start_ms, count}`.
static RECORD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/record.lua")));

#[async_trait]
impl DedupStore for RedisStore {
    async fn record(
        &self,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Seen, StoreError> {
        let mut manager = self.manager()?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = RECORD.key(self.dedup_key(fingerprint));
        invocation.arg(now.as_millis()).arg(ttl_ms);
        let (first, start, count): (u8, u64, u64) = self
            .timed(
                "recording a fingerprint",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        let window_start = Timestamp::from_millis(start);
        Ok(if first == 1 {
            Seen::First { window_start }
        } else {
            Seen::Duplicate {
                window_start,
                count,
            }
        })
    }

    async fn forget(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        let mut manager = self.manager()?;
        let key = self.dedup_key(fingerprint);
        self.timed("forgetting a fingerprint", manager.del::<_, ()>(key))
            .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        let mut manager = self.manager()?;
        let pong: String = self
            .timed("PING", redis::cmd("PING").query_async(&mut manager))
            .await?;
        self.answered();
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Backend {
                reason: format!("unexpected PING answer {pong:?}"),
                source: None,
            })
        }
    }
}
