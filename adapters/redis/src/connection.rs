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

/// Query parameters whose values are shown: none of them can hold a secret.
const SHOWN_PARAMETERS: [&str; 2] = ["db", "protocol"];

/// The URL for logs and errors: without its user information (`redis://user:pw@h` →
/// `redis://h`), and with the value of every query parameter but `db` and `protocol` replaced
/// by `<redacted>` (`?pass=`, `?password=`, and any the client may learn later), as is a
/// fragment other than `#insecure`.
///
/// It fails closed: whatever does not read as `name=value` is redacted whole, and the user
/// information ends at the *last* `@` (a password with a raw `@` or `?` loses the host from the
/// display rather than leaking its tail).
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL the client accepts; it is shown nowhere but may still hold a secret.
        return "<unparseable URL>".to_owned();
    };
    let (scheme, rest) = (&url[..scheme_end], &url[scheme_end + 3..]);
    let rest = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, "insecure")) => (rest, "#insecure"),
        Some((rest, _)) => (rest, "#<redacted>"),
        None => (rest, ""),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut shown = format!("{scheme}://{location}");
    if let Some(query) = query {
        shown.push('?');
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, value)) if SHOWN_PARAMETERS.contains(&name) => {
                    format!("{name}={value}")
                }
                Some((name, _)) if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                    format!("{name}=<redacted>")
                }
                _ => "<redacted>".to_owned(),
            })
            .collect();
        shown.push_str(&parameters.join("&"));
    }
    shown.push_str(fragment);
    shown
}

/// The secrets `url` carries (the user-info password, and the values of parameters other than
/// `db`, `protocol` and `user`), as written and percent-decoded, for a log filter that must
/// never print them whatever error text echoes them.
pub fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        secrets.push(url.to_owned());
        return secrets;
    };
    let rest = &url[scheme_end + 3..];
    // A user name alone is no secret (and registering `default` would blank a common word).
    if let Some((_, password)) = rest.rfind('@').and_then(|at| rest[..at].split_once(':')) {
        secrets.push(password.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        for parameter in query.split('&') {
            match parameter.split_once('=') {
                Some((name, _)) if SHOWN_PARAMETERS.contains(&name) || name == "user" => {}
                Some((_, value)) => secrets.push(value.to_owned()),
                None => secrets.push(parameter.to_owned()),
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().filter_map(|s| percent_decoded(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// `s` with `%XX` escapes (and `+`) decoded, when that changes it and gives UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok().filter(|d| d != s)
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

    /// Sends one command that nothing waits on: it is written to the connection, in order
    /// before any command sent after this returns, and its answer is awaited in a task of its
    /// own, a failure marking Redis unavailable and logged like any other.
    ///
    /// The command is polled once here: on an established connection that queues it in the
    /// connection's pipeline (redis-rs writes a connection's commands in the order they are
    /// queued). While the connection is being made again, the order is not promised; then the
    /// worst a later command sees is the state before this one.
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
    fn urls_are_shown_without_any_form_of_password() {
        let cases = [
            ("redis://:s3cret@redis:6379/0", "redis://redis:6379/0"),
            ("redis://user:s3cret@redis:6379", "redis://redis:6379"),
            ("rediss://user:s3cret@host", "rediss://host"),
            (
                "rediss://:s3cret@host:6380/1#insecure",
                "rediss://host:6380/1#insecure",
            ),
            (
                "redis://host?password=s3cret",
                "redis://host?password=<redacted>",
            ),
            (
                "redis://host/0?pass=s3cret",
                "redis://host/0?pass=<redacted>",
            ),
            (
                "redis://host?db=2&protocol=resp3&pass=s3cret",
                "redis://host?db=2&protocol=resp3&pass=<redacted>",
            ),
            (
                "redis+unix:///run/redis.sock?pass=s3cret",
                "redis+unix:///run/redis.sock?pass=<redacted>",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&user=u&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&user=<redacted>&pass=<redacted>",
            ),
            // A raw `&` in the password: the tail is no `name=value`, redacted whole.
            (
                "redis://h?pass=s3&cret",
                "redis://h?pass=<redacted>&<redacted>",
            ),
            // Encoded names are not trusted to be harmless.
            ("redis://h?p%61ss=s3cret", "redis://h?<redacted>"),
            // A raw `@` or `?` in the user-info password.
            ("redis://:s3@cret@h:1", "redis://h:1"),
            ("redis://:s3?cr@et@h:1", "redis://h:1"),
            ("redis://h#s3cret", "redis://h#<redacted>"),
            ("redis://redis:6379", "redis://redis:6379"),
            ("s3cret", "<unparseable URL>"),
        ];
        for (url, shown) in cases {
            assert_eq!(redacted(url), shown, "{url}");
            let shown = redacted(url);
            assert!(!shown.contains("s3") && !shown.contains("cret"), "{url}");
        }
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

    #[test]
    fn the_secrets_of_a_url_are_found_raw_and_decoded() {
        assert_eq!(secrets_of("redis://:s3cret@h"), ["s3cret"]);
        assert_eq!(secrets_of("redis://u:p%40ss@h"), ["p%40ss", "p@ss"]);
        assert_eq!(
            secrets_of("redis+unix:///s?db=1&pass=a%2Bb&x"),
            ["a%2Bb", "x", "a+b"]
        );
        assert!(secrets_of("redis://h:1/0?db=2").is_empty());
        assert!(secrets_of("redis://default@h:1/0?user=default").is_empty());
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
