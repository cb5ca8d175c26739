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
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo};
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
    /// The start of every key (`kubernaut:gateway`); it may hold no brace (`{`, `}`).
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

/// Dedup, storm counts and storm windows on Redis, over one connection.
pub struct RedisStore {
    client: Client,
    options: RedisOptions,
    connection: Arc<OnceCell<ConnectionManager>>,
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

    /// The client (for tools and tests that inspect the keys).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The start of every key this store writes.
    pub(crate) fn key_prefix(&self) -> &str {
        &self.options.key_prefix
    }

    /// The connection, once the background task has made it.
    pub(crate) fn manager(&self) -> Result<ConnectionManager, StoreError> {
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

    /// Records that Redis just answered.
    pub(crate) fn answered(&self) {
        self.available.set(true);
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
                "Redis unavailable: signals are answered 503 until it returns"
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_ports::{
        Counting, DedupStore, Fingerprint, ResourceRef, StormCounter, Timestamp, WindowStore,
    };

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
