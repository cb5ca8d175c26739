//! The [`DedupStore`], [`StormCounter`] and [`WindowStore`] ports on Redis, shared by every gateway
//! replica.
//!
//! One fingerprint's window is one hash, `kubernaut:gateway:dedup:{<fingerprint>}` (the braces are
//! a hash tag: every key a script touches lives in one slot, so Redis Cluster serves it too),
//! holding the window start `s` and the occurrence count `c`: about 230 bytes of Redis memory per
//! fingerprint (measured by `cargo bench -p gateway-tests --bench redis`). The first
//! occurrence is decided by one Lua script — exists? count it : create it with its TTL — so
//! exactly one caller per window gets `First` however many replicas race, and no key ever lives
//! without a TTL (the reference implementation's `INCR`-then-`EXPIRE` left some).
//!
//! Storm counts: per alert name two sorted sets, `…:storm:{<alert>}:signals` (by time) and
//! `…:storm:{<alert>}:resources` (by last hit), trimmed and counted by one script per signal.
//! Storm windows: `…:storm:window:{<namespace/alert>}` hashes (version `v`, state `s`) replaced by
//! a compare-and-set script and listed in `…:storm:windows`; that index lives in another slot than
//! the windows, so windows need a single Redis (or a primary with replicas), not a Cluster.
//!
//! Connection: the `redis` crate's auto-reconnecting connection manager, made in the background
//! so the gateway starts (not ready) while Redis is down; every command has a timeout. While
//! Redis is unreachable every call fails with [`StoreError::Unavailable`] at once (the app answers
//! 503 + `Retry-After`, so the sender resends: nothing is lost), and a health check every second
//! keeps [`RedisStore::is_available`] true to the moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::{
    Counting, DedupStore, Fingerprint, ResourceRef, Seen, StoreError, StoredWindow, StormCounter,
    StormCounts, Timestamp, WindowStore,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, IntoConnectionInfo, Script};
use tokio::sync::OnceCell;

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db`, `rediss://host:port/db` (TLS, verified against the system's
    /// roots; `#insecure` at the end skips verification, for tests only), or
    /// `redis+unix:///path/to/socket`.
    pub url: String,
    /// A password that is not in the URL (from a file or the environment).
    pub password: Option<String>,
    /// Longest wait for one command.
    pub command_timeout: Duration,
    /// Longest wait for one connection attempt.
    pub connect_timeout: Duration,
    /// The start of every key (`kubernaut:gateway`).
    pub key_prefix: String,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL itself: it may carry a password.
        f.debug_struct("RedisOptions")
            .field("server", &redacted(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl RedisOptions {
    /// Options with the gateway's defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            password: None,
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            key_prefix: "kubernaut:gateway".to_owned(),
        }
    }
}

/// The URL with any user information removed, for logs.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn unavailable(reason: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable {
        reason: format!("{reason}: {e}"),
        source: Some(Box::new(e)),
    }
}

/// The script that records one occurrence: `{is_first, window_start_ms, count}`.
const RECORD: &str = r"
local start = redis.call('HGET', KEYS[1], 's')
if start then
  local count = redis.call('HINCRBY', KEYS[1], 'c', 1)
  return {0, tonumber(start), count}
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'c', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tonumber(ARGV[1]), 1}
";

type AvailabilityObserver = Box<dyn Fn(bool) + Send + Sync>;

/// Whether Redis answers, and who wants to know the moment that changes.
#[derive(Default)]
struct Health {
    up: AtomicBool,
    observers: std::sync::Mutex<Vec<AvailabilityObserver>>,
}

impl Health {
    /// Records what the last command or health check found; returns the previous state.
    fn set(&self, up: bool) -> bool {
        let was = self.up.swap(up, Ordering::SeqCst);
        if was != up {
            for observer in self
                .observers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                observer(up);
            }
        }
        was
    }

    fn get(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

/// The script that records one storm signal and counts: `{rate, distinct_resources}`.
/// KEYS: the alert name's signal log and resource set (one hash tag). ARGV: now (ms), rate window
/// (ms), pattern window (ms), resource, a member unique to this signal, the most entries kept.
const STORM: &str = r"
local now = tonumber(ARGV[1])
local rate_window = tonumber(ARGV[2])
local pattern_window = tonumber(ARGV[3])
local max_tracked = tonumber(ARGV[6])
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - rate_window)
if redis.call('ZCARD', KEYS[1]) > max_tracked then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -max_tracked - 1)
end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - pattern_window)
if redis.call('ZCARD', KEYS[2]) > max_tracked then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -max_tracked - 1)
end
redis.call('PEXPIRE', KEYS[1], rate_window)
redis.call('PEXPIRE', KEYS[2], pattern_window)
return {redis.call('ZCOUNT', KEYS[1], '(' .. (now - rate_window), '+inf'), redis.call('ZCARD', KEYS[2])}
";

/// Compare-and-set of one storm window. KEYS: the window, the index of windows. ARGV: expected
/// version ('' = none stored), new state ('' = delete), TTL (ms), the window's name.
const REPLACE_WINDOW: &str = r"
local version = redis.call('HGET', KEYS[1], 'v')
if (ARGV[1] == '' and version) or (ARGV[1] ~= '' and version ~= ARGV[1]) then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[4])
  return 1
end
redis.call('HSET', KEYS[1], 'v', (tonumber(version) or 0) + 1, 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
-- The index outlives every window it lists.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
";

/// Dedup, storm counts and storm windows on Redis, over one connection.
pub struct RedisStore {
    client: Client,
    options: RedisOptions,
    connection: Arc<OnceCell<ConnectionManager>>,
    available: Arc<Health>,
    record: Script,
    storm: Script,
    replace_window: Script,
    /// Makes each storm signal's log member unique across concurrent calls of this process.
    sequence: std::sync::atomic::AtomicU64,
    monitor: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

impl RedisStore {
    /// Validates the URL and starts connecting in the background (on the current tokio runtime).
    /// The store answers `Unavailable` until the first connection succeeds.
    pub fn new(options: RedisOptions) -> Result<Self, StoreError> {
        // `rediss://` speaks TLS through rustls, whose crypto comes from the process-wide provider;
        // installing it twice is harmless (the second attempt is refused and ignored).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut info =
            options
                .url
                .as_str()
                .into_connection_info()
                .map_err(|e| StoreError::Backend {
                    reason: format!("invalid Redis URL {}: {e}", redacted(&options.url)),
                    source: Some(Box::new(e)),
                })?;
        if let Some(password) = &options.password {
            let settings = info.redis_settings().clone().set_password(password.clone());
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(|e| StoreError::Backend {
            reason: format!("invalid Redis settings: {e}"),
            source: Some(Box::new(e)),
        })?;
        let connection = Arc::new(OnceCell::new());
        let available = Arc::new(Health::default());
        let monitor = tokio::spawn(monitor(
            client.clone(),
            options.clone(),
            connection.clone(),
            available.clone(),
        ));
        Ok(RedisStore {
            client,
            options,
            connection,
            available,
            record: Script::new(RECORD),
            storm: Script::new(STORM),
            replace_window: Script::new(REPLACE_WINDOW),
            sequence: std::sync::atomic::AtomicU64::new(0),
            monitor,
        })
    }

    /// Whether Redis answered the last command or health check (at most a second ago).
    pub fn is_available(&self) -> bool {
        self.available.get()
    }

    /// Calls `observer` with the new state each time availability changes (an outage begins or
    /// ends), from whichever task noticed.
    pub fn on_availability(&self, observer: impl Fn(bool) + Send + Sync + 'static) {
        observer(self.is_available());
        self.available
            .observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(observer));
    }

    fn key(&self, fingerprint: &Fingerprint) -> String {
        format!(
            "{}:dedup:{{{}}}",
            self.options.key_prefix,
            fingerprint.as_str()
        )
    }

    fn manager(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get()
            .cloned()
            .ok_or_else(|| StoreError::Unavailable {
                reason: format!(
                    "not connected to Redis at {} yet",
                    redacted(&self.options.url)
                ),
                source: None,
            })
    }

    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.options.command_timeout, f).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.available.set(false);
                Err(unavailable(what, e))
            }
            Err(_) => {
                self.available.set(false);
                Err(StoreError::Unavailable {
                    reason: format!(
                        "{what}: no answer within {:?}",
                        self.options.command_timeout
                    ),
                    source: None,
                })
            }
        }
    }

    /// The client (for tools and tests that inspect the keys).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn manager_config(options: &RedisOptions) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.command_timeout))
        .set_number_of_retries(1)
}

/// Connects (retrying every second), then checks health every second.
async fn monitor(
    client: Client,
    options: RedisOptions,
    connection: Arc<OnceCell<ConnectionManager>>,
    available: Arc<Health>,
) {
    let server = redacted(&options.url);
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let manager = match connection.get() {
            Some(manager) => manager.clone(),
            None => {
                match ConnectionManager::new_with_config(client.clone(), manager_config(&options))
                    .await
                {
                    Ok(manager) => {
                        tracing::info!(server, "connected to Redis");
                        let _ = connection.set(manager.clone());
                        manager
                    }
                    Err(e) => {
                        if available.set(false) {
                            tracing::error!(server, error = %e, "Redis unreachable");
                        }
                        tracing::debug!(server, error = %e, "cannot connect to Redis yet");
                        continue;
                    }
                }
            }
        };
        let mut manager = manager;
        let pong = tokio::time::timeout(
            options.command_timeout,
            redis::cmd("PING").query_async::<String>(&mut manager),
        )
        .await;
        let up = matches!(pong, Ok(Ok(_)));
        let was = available.set(up);
        match (was, up) {
            (false, true) => tracing::info!(server, "Redis available"),
            (true, false) => tracing::error!(
                server,
                "Redis unavailable: dedup answers 503 until it returns"
            ),
            _ => {}
        }
    }
}

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
        let key = self.key(fingerprint);
        let mut invocation = self.record.key(key);
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
        let key = self.key(fingerprint);
        self.timed("forgetting a fingerprint", manager.del::<_, ()>(key))
            .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        let mut manager = self.manager()?;
        let pong: String = self
            .timed("PING", redis::cmd("PING").query_async(&mut manager))
            .await?;
        self.available.set(true);
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
        let tag = format!("{}:storm:{{{alert_name}}}", self.options.key_prefix);
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        // Unique across replicas too: process id, a local sequence, and the time.
        let member = format!(
            "{}:{}:{}",
            now.as_millis(),
            std::process::id(),
            self.sequence.fetch_add(1, Ordering::Relaxed)
        );
        let mut invocation = self.storm.key(format!("{tag}:signals"));
        invocation
            .key(format!("{tag}:resources"))
            .arg(now.as_millis())
            .arg(millis(counting.rate_window))
            .arg(millis(counting.pattern_window))
            .arg(format!(
                "{}/{}/{}",
                resource.namespace, resource.kind, resource.name
            ))
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

impl RedisStore {
    fn window_key(&self, name: &str) -> String {
        format!("{}:storm:window:{{{name}}}", self.options.key_prefix)
    }

    fn window_index(&self) -> String {
        format!("{}:storm:windows", self.options.key_prefix)
    }
}

/// Windows are hashes `…:storm:window:{namespace/alert}` (`v` version, `s` state) listed in one
/// index set. The index and a window live in different slots: on Redis Cluster the script would
/// need both in one slot; this store targets a single Redis (or a primary with replicas).
#[async_trait]
impl WindowStore for RedisStore {
    async fn load(&self, key: &str) -> Result<Option<StoredWindow>, StoreError> {
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
        Ok(match (version, state) {
            (Some(version), Some(state)) => Some(StoredWindow { version, state }),
            _ => {
                // Expired: its index entry is stale.
                let _: Result<(), _> = self
                    .timed(
                        "pruning the window index",
                        manager.srem(self.window_index(), key),
                    )
                    .await;
                None
            }
        })
    }

    async fn replace(
        &self,
        key: &str,
        expected: Option<u64>,
        state: Option<Vec<u8>>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut manager = self.manager()?;
        let mut invocation = self.replace_window.key(self.window_key(key));
        invocation
            .key(self.window_index())
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(state.unwrap_or_default())
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(key);
        let replaced: u8 = self
            .timed(
                "replacing a storm window",
                invocation.invoke_async(&mut manager),
            )
            .await?;
        Ok(replaced == 1)
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let mut manager = self.manager()?;
        self.timed(
            "listing storm windows",
            manager.smembers(self.window_index()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use gateway_ports::test_util::fingerprint;

    use super::*;

    #[test]
    fn urls_are_logged_without_their_password() {
        assert_eq!(
            redacted("redis://:s3cret@redis:6379/0"),
            "redis://redis:6379/0"
        );
        assert_eq!(redacted("rediss://user:pw@host"), "rediss://host");
        assert_eq!(redacted("redis://redis:6379"), "redis://redis:6379");
        let options = RedisOptions {
            password: Some("hunter2".into()),
            ..RedisOptions::new("redis://:pw@h:1")
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw@"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_not_a_hang() {
        // Port 1 on loopback refuses at once.
        let store = RedisStore::new(RedisOptions::new("redis://127.0.0.1:1")).unwrap();
        let err = store
            .record(&fingerprint(1), Duration::from_secs(60), Timestamp::EPOCH)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
        assert!(store.check().await.is_err());
        assert!(!store.is_available());
    }

    #[test]
    fn an_invalid_url_is_refused_with_a_clear_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let err = RedisStore::new(RedisOptions::new("http://nope")).unwrap_err();
        assert!(err.to_string().contains("invalid Redis URL"), "{err}");
    }
}
