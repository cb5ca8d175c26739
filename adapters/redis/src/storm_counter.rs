//! The [`StormCounter`] port: per alert name two sorted sets under one hash tag,
//! `…:storm:{<len>:<alert>}:signals` (one member per signal, scored by its time) and
//! `…:storm:{<len>:<alert>}:resources` (each resource's [`resource_member`], scored by its last
//! hit), trimmed and
//! counted by one script per signal. Each set's TTL is its window, renewed by every signal, so an
//! alert name gone quiet leaves nothing behind.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{
    Counting, ResourceRef, StoreError, StormCounter, StormCounts, Timestamp, resource_member,
};
use redis::Script;

use crate::RedisStore;

/// Records one storm signal and counts: `{rate, distinct_resources}`.
static STORM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/storm.lua")));

/// This process's part of every signal's member: random, because replicas in containers commonly
/// share a process id (1), and two members alike would count two signals as one.
static PROCESS: LazyLock<u64> = LazyLock::new(|| {
    // `RandomState` is seeded from the operating system's randomness.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
});

/// Makes members unique among this process's calls, whichever store instance makes them.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

#[async_trait]
impl StormCounter for RedisStore {
    async fn count(
        &self,
        alert_name: &str,
        resource: &ResourceRef,
        now: Timestamp,
        counting: Counting,
    ) -> Result<StormCounts, StoreError> {
        let mut manager = self.manager()?;
        let [signals, resources] = self.storm_keys(alert_name);
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let member = format!(
            "{}:{:016x}:{}",
            now.as_millis(),
            *PROCESS,
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let mut invocation = STORM.key(signals);
        invocation
            .key(resources)
            .arg(now.as_millis())
            .arg(millis(counting.rate_window))
            .arg(millis(counting.pattern_window))
            .arg(resource_member(resource))
            .arg(member)
            .arg(counting.max_tracked.max(1));
        let (rate, distinct_resources): (u64, u64) = self
            .timed(
                "counting a storm signal",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        Ok(StormCounts {
            rate,
            distinct_resources,
        })
    }
}
