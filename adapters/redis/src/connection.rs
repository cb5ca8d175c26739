//! Reaching Redis: the options, the store's one auto-reconnecting connection made in the
//! background, the health monitor, and the command wrapper every port goes through.
//!
//! Every failure of a port call is [`StoreError::Unavailable`]: not connected yet, an error from
//! Redis or the connection, or no answer within the command timeout. The URL is only ever shown
//! [`redacted`], and the password given apart never leaves [`RedisOptions`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gateway_ports::StoreError;

use crate::redaction::redacted;
use crate::topology::{Connection, Target};

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
    /// The start of every key (`kubernaut:gateway`); it may hold no brace (`{`, `}`).
    pub key_prefix: String,
    /// How many replicas must have a storm window's or an outbox entry's change before it is
    /// answered (`WAIT`), so a failover to a replica loses no signal answered `202 buffered`;
    /// 0 waits for none.
    pub replica_acks: u32,
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
            .field("replica_acks", &self.replica_acks)
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
            replica_acks: 0,
        }
    }
}

fn unavailable(reason: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable {
        reason: format!("{reason}: {e}"),
        source: Some(Box::new(e)),
    }
}

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

/// The connection once made: replaced when a Sentinel's primary changes.
type Slot = Arc<std::sync::RwLock<Option<Connection>>>;

/// Dedup, storm counts and storm windows on Redis (one server, a Cluster, or the primary a
/// Sentinel set names), over one connection.
pub struct RedisStore {
    options: RedisOptions,
    target: Arc<Target>,
    connection: Slot,
    available: Arc<Health>,
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
    /// Validates the URL and the key prefix and starts connecting in the background (on the
    /// current tokio runtime). The store answers `Unavailable` until the first connection
    /// succeeds.
    pub fn new(options: RedisOptions) -> Result<Self, StoreError> {
        crate::keys::check_prefix(&options.key_prefix)?;
        // `rediss://` speaks TLS through rustls, whose crypto comes from the process-wide provider;
        // installing it twice is harmless (the second attempt is refused and ignored).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let target = Arc::new(Target::parse(&options)?);
        let connection = Slot::default();
        let available = Arc::new(Health::default());
        let monitor = tokio::spawn(monitor(
            target.clone(),
            options.clone(),
            connection.clone(),
            available.clone(),
        ));
        Ok(RedisStore {
            options,
            target,
            connection,
            available,
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

    /// Whether the store is on a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.target.is_cluster()
    }

    /// The start of every key this store writes.
    pub(crate) fn key_prefix(&self) -> &str {
        &self.options.key_prefix
    }

    /// The connection, once the background task has made it.
    pub(crate) fn manager(&self) -> Result<Connection, StoreError> {
        self.connection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable {
                reason: format!("not connected to Redis at {}", redacted(&self.options.url)),
                source: None,
            })
    }

    /// Runs one command under the command timeout; any failure is `Unavailable` and marks Redis
    /// unavailable until the next health check says otherwise.
    pub(crate) async fn timed<T>(
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

    /// Sends one command that nothing waits on: it is written to the connection, in order
    /// before any command sent after this returns, and its answer is awaited in a task of its
    /// own, a failure marking Redis unavailable and logged like any other.
    ///
    /// The command is polled once here: on an established connection that queues it in the
    /// connection's pipeline (redis-rs writes a connection's commands in the order they are
    /// queued). While the connection is being made again, and on a Cluster (whose client
    /// dispatches each command by itself), the order is not promised; then the worst a later
    /// command sees is the state before this one (for a settle: a repeat answered `503 claimed`
    /// and resent).
    pub(crate) fn queued<T: Send + 'static>(
        &self,
        what: &'static str,
        command: impl std::future::Future<Output = redis::RedisResult<T>> + Send + 'static,
    ) {
        let timeout = self.options.command_timeout;
        let health = self.available.clone();
        let mut command = Box::pin(tokio::time::timeout(timeout, command));
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let report = move |result| {
            if let Err(e) = flatten(result) {
                health.set(false);
                tracing::warn!(error = %unavailable(what, e), "a queued Redis command failed");
            }
        };
        match command.as_mut().poll(&mut context) {
            std::task::Poll::Ready(result) => report(result),
            std::task::Poll::Pending => {
                tokio::spawn(async move { report(command.await) });
            }
        }
    }

    /// Waits until `--redis-replica-acks` replicas have every write this store sent to the
    /// primary holding `key` (at most half the command timeout): `Unavailable` when fewer
    /// acknowledge in time, so the signal is answered 503 and resent. Nothing to wait for when
    /// the option is 0.
    pub(crate) async fn replicated(&self, what: &str, key: &str) -> Result<(), StoreError> {
        let wanted = self.options.replica_acks;
        if wanted == 0 {
            return Ok(());
        }
        let mut connection = self.manager()?;
        let limit = self.options.command_timeout / 2;
        let acked = self
            .timed(
                what,
                connection.wait_for_replicas(crate::keys::slot(key), wanted, limit),
            )
            .await?;
        if acked >= u64::from(wanted) {
            Ok(())
        } else {
            Err(StoreError::Unavailable {
                reason: format!(
                    "{what}: {acked} of the {wanted} replicas wanted acknowledged it within {limit:?}"
                ),
                source: None,
            })
        }
    }

    /// The health check (what `/readyz` asks): one server answers `PING`, every primary of a
    /// Cluster does, the server a Sentinel named is still the primary.
    pub(crate) async fn probe(&self) -> Result<(), StoreError> {
        let mut connection = self.manager()?;
        let limit = self.options.command_timeout;
        let failed = match tokio::time::timeout(limit, self.target.probe(&mut connection)).await {
            Ok(Ok(())) => {
                self.answered();
                return Ok(());
            }
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {limit:?}"),
        };
        self.available.set(false);
        Err(StoreError::Unavailable {
            reason: format!("Redis health check: {failed}"),
            source: None,
        })
    }

    /// Records that Redis just answered.
    pub(crate) fn answered(&self) {
        self.available.set(true);
    }
}

/// A timed command's result: a timeout is an I/O error like any other.
fn flatten<T>(
    result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> redis::RedisResult<T> {
    result.unwrap_or_else(|_| {
        Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer in time",
        )))
    })
}

/// Connects (retrying every second), then checks health every second; when a Sentinel's
/// primary fails its check, drops the connection so the next attempt asks the Sentinels again.
async fn monitor(
    target: Arc<Target>,
    options: RedisOptions,
    connection: Slot,
    available: Arc<Health>,
) {
    let server = redacted(&options.url);
    let kind = target.kind();
    let store = |made: Option<Connection>| {
        *connection.write().unwrap_or_else(|p| p.into_inner()) = made;
    };
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let current = connection.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut made = match current {
            Some(made) => made,
            None => match timeout(options.connect_timeout * 2, target.connect(&options)).await {
                Ok(made) => {
                    tracing::info!(server, kind, "connected to Redis");
                    store(Some(made.clone()));
                    made
                }
                Err(e) => {
                    if available.set(false) {
                        tracing::error!(server, kind, error = %e, "Redis unreachable");
                    }
                    tracing::debug!(server, kind, error = %e, "cannot connect to Redis yet");
                    continue;
                }
            },
        };
        let checked =
            match tokio::time::timeout(options.command_timeout, target.probe(&mut made)).await {
                Ok(checked) => checked,
                Err(_) => Err(format!("no answer within {:?}", options.command_timeout)),
            };
        let up = checked.is_ok();
        if let Err(e) = &checked {
            tracing::debug!(server, kind, error = %e, "Redis health check failed");
            if target.follows_primary() {
                store(None);
            }
        }
        match (available.set(up), up) {
            (false, true) => tracing::info!(server, kind, "Redis available"),
            (true, false) => tracing::error!(
                server,
                kind,
                error = checked.err().unwrap_or_default(),
                "Redis unavailable: signals are answered 503 until it returns"
            ),
            _ => {}
        }
    }
}

/// `future` bounded by `limit`, a timeout being an I/O error like any other.
async fn timeout<T>(
    limit: Duration,
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    flatten(tokio::time::timeout(limit, future).await)
}

#[cfg(test)]
mod tests {
    use gateway_ports::{
        Counting, DedupStore, Fingerprint, ResourceRef, StormCounter, Timestamp, WindowStore,
    };

    use super::*;

    #[test]
    fn options_are_shown_without_any_password() {
        let options = RedisOptions {
            password: Some("hunter2".into()),
            ..RedisOptions::new("redis://:pw@h:1?pass=pw2")
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw@") && !shown.contains("pw2"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_not_a_hang() {
        // Port 1 on loopback refuses at once.
        let store = RedisStore::new(RedisOptions::new("redis://:pw@127.0.0.1:1")).unwrap();
        let fp = Fingerprint::from_hex(&"a".repeat(64)).unwrap();
        let resource = ResourceRef {
            kind: "Pod".into(),
            name: "p".into(),
            namespace: "ns".into(),
        };
        let counting = Counting {
            rate_window: Duration::from_secs(60),
            pattern_window: Duration::from_secs(120),
            max_tracked: 10,
        };
        let ttl = Duration::from_secs(60);
        let errors = [
            store.record(&fp, ttl, Timestamp::EPOCH).await.unwrap_err(),
            store.forget(&fp).await.unwrap_err(),
            store.check().await.unwrap_err(),
            store
                .count("A", &resource, Timestamp::EPOCH, counting)
                .await
                .unwrap_err(),
            store.load("w").await.unwrap_err(),
            store.replace("w", None, None, ttl).await.unwrap_err(),
            store.keys().await.unwrap_err(),
        ];
        for err in errors {
            assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
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
