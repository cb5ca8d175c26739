//! The [`DedupStore`] port: one hash per fingerprint's window, `…:dedup:{64:<fingerprint>}`
//! (`s` window start, `c` occurrence count, `u` the claim's time until settled), created with its
//! TTL by the same script that decides the first occurrence; released (after a failed write)
//! only while `u` is still the releasing caller's claim.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{DedupStore, DedupWindow, Fingerprint, Seen, StoreError, Timestamp};
use redis::{AsyncCommands, Script};

use crate::RedisStore;

/// Records one occurrence: `{seen, window_start_ms, count}` (seen: 1 first, 0 duplicate, 2 claimed).
static RECORD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/record.lua")));

/// Ends a window still claimed by the given claim: 1 when ended, 0 when left as it is.
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));

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
        let claim_ms = u64::try_from(DedupWindow::CLAIM.as_millis()).unwrap_or(u64::MAX);
        invocation.arg(now.as_millis()).arg(ttl_ms).arg(claim_ms);
        let (first, start, count): (u8, u64, u64) = self
            .timed(
                "recording a fingerprint",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        let window_start = Timestamp::from_millis(start);
        Ok(match first {
            1 => Seen::First { window_start },
            2 => Seen::Claimed {
                window_start,
                count,
            },
            _ => Seen::Duplicate {
                window_start,
                count,
            },
        })
    }

    async fn forget(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        let mut manager = self.manager()?;
        let key = self.dedup_key(fingerprint);
        self.timed("forgetting a fingerprint", manager.del::<_, ()>(key))
            .await
    }

    async fn release(
        &self,
        fingerprint: &Fingerprint,
        claimed_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut manager = self.manager()?;
        let mut invocation = RELEASE.key(self.dedup_key(fingerprint));
        invocation.arg(claimed_at.as_millis());
        let _released: u8 = self
            .timed(
                "releasing a fingerprint's claim",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        Ok(())
    }

    /// Queued, not waited for: the claim's end is written to the connection before this
    /// returns, so the fingerprint's next `record` (a later command on the same connection)
    /// reads it settled, and a new alert's answer waits for one round trip fewer. If it fails,
    /// the claim stays until it is taken over ([`DedupWindow::CLAIM`]), as after any failed
    /// settle.
    async fn settle(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        let mut manager = self.manager()?;
        let key = self.dedup_key(fingerprint);
        self.queued("settling a fingerprint", async move {
            manager.hdel::<_, _, ()>(key, "u").await
        });
        Ok(())
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.probe().await
    }
}
