//! A real Redis in a container, for tests of the Redis adapter and of Redis outages.
//!
//! The image comes from `GATEWAY_TEST_REDIS_IMAGE` (`name:tag`). `scripts/test.sh` and `.ci/run`
//! build `kubernaut-test/redis:local` from Debian's `redis-server` package
//! (`tests/images/redis/build.sh`) and set the variable, because CI cannot pull images; unset, the
//! tests use the public `redis:7`, which a laptop can pull.
//!
//! The container's port 6379 is published on a host port chosen up front, so [`TestRedis::url`]
//! stays valid across [`TestRedis::stop`] and [`TestRedis::start_again`]: Docker gives a port
//! published as "any free port" a new one on every start, which an outage test cannot follow.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The environment variable naming the Redis image (`name:tag`).
pub const REDIS_IMAGE_ENV: &str = "GATEWAY_TEST_REDIS_IMAGE";
/// The image used when [`REDIS_IMAGE_ENV`] is unset: the public one, pullable on a laptop.
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7";

/// Arguments to `redis-server`, the same for both images (the official image's entrypoint runs
/// `redis-server` when the first argument is an option): no persistence, so a restarted Redis
/// starts empty whichever image runs.
const REDIS_ARGS: [&str; 10] = [
    "--port",
    "6379",
    "--bind",
    "0.0.0.0",
    "--protected-mode",
    "no",
    "--save",
    "",
    "--appendonly",
    "no",
];

/// How long Redis may take to answer after [`TestRedis::start_again`].
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a container may take to be ready (a laptop may pull `redis:7` first).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The Redis image to run: name and tag from [`REDIS_IMAGE_ENV`], else [`DEFAULT_REDIS_IMAGE`].
pub fn redis_image() -> (String, String) {
    let spec = std::env::var(REDIS_IMAGE_ENV)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_IMAGE.to_owned());
    split_image(&spec)
}

/// `name:tag` → (name, tag); no tag means `latest`, and a registry's `host:port/` is no tag.
fn split_image(spec: &str) -> (String, String) {
    match spec.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') && !name.is_empty() && !tag.is_empty() => {
            (name.to_owned(), tag.to_owned())
        }
        _ => (spec.to_owned(), "latest".to_owned()),
    }
}

/// A Redis container, removed when dropped.
#[derive(Debug)]
pub struct TestRedis {
    container: ContainerAsync<GenericImage>,
    /// `redis://HOST:PORT`, the same for the container's whole life (stops and starts included).
    pub url: String,
    host: String,
    port: u16,
    /// The password Redis requires (`--requirepass`), if any.
    password: Option<String>,
}

impl TestRedis {
    /// Starts a Redis and waits until it accepts connections. Panics, naming the image and what
    /// to do, when it cannot.
    pub async fn start() -> TestRedis {
        Self::start_with(&REDIS_ARGS).await
    }

    /// A Redis that persists every write before answering it (`appendonly yes`, `appendfsync
    /// always`), as a Redis the gateway's state lives in should: its data survives
    /// [`TestRedis::stop`] and [`TestRedis::start_again`].
    pub async fn start_durable() -> TestRedis {
        let mut args: Vec<&str> = REDIS_ARGS[..REDIS_ARGS.len() - 2].to_vec();
        args.extend(["--appendonly", "yes", "--appendfsync", "always"]);
        Self::start_with(&args).await
    }

    /// A Redis that requires `password` (`--requirepass`): [`TestRedis::url`] carries none, a
    /// client must send it.
    pub async fn start_with_password(password: &str) -> TestRedis {
        let mut args: Vec<&str> = REDIS_ARGS.to_vec();
        args.extend(["--requirepass", password]);
        Self::start_with_auth(&args, Some(password)).await
    }

    async fn start_with(args: &[&str]) -> TestRedis {
        Self::start_with_auth(args, None).await
    }

    async fn start_with_auth(args: &[&str], password: Option<&str>) -> TestRedis {
        let (name, tag) = redis_image();
        let mut last_error = String::new();
        // The host port is chosen before Docker binds it: another process (or Docker, for a
        // container published on "any port") may take it in between; then try another one.
        for _ in 0..5 {
            let port = free_port();
            let started = GenericImage::new(name.clone(), tag.clone())
                .with_exposed_port(6379.tcp())
                .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
                .with_cmd(args.iter().copied())
                .with_mapped_port(port, 6379.tcp())
                .with_startup_timeout(STARTUP_TIMEOUT)
                .start()
                .await;
            match started {
                Ok(container) => {
                    let host = match container.get_host().await {
                        // A local daemon: IPv4, as published.
                        Ok(host) if host.to_string() == "localhost" => "127.0.0.1".to_owned(),
                        Ok(host) => host.to_string(),
                        Err(e) => panic!("the Docker host of the Redis container: {e}"),
                    };
                    let redis = TestRedis {
                        container,
                        url: format!("redis://{host}:{port}"),
                        host,
                        port,
                        password: password.map(str::to_owned),
                    };
                    redis.wait_until_ready().await;
                    return redis;
                }
                Err(e) => {
                    last_error = e.to_string();
                    let port_taken = last_error.contains("port is already allocated")
                        || last_error.contains("address already in use");
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        panic!(
            "cannot start a Redis container from image {name}:{tag}: {last_error}\n\
             (run the tests with scripts/test.sh, which builds kubernaut-test/redis:local; \
             or set {REDIS_IMAGE_ENV} to an image Docker has or can pull)"
        )
    }

    /// The host port Redis is published on (the one in [`TestRedis::url`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the container (Redis shuts down on SIGTERM): connections are refused until
    /// [`TestRedis::start_again`]. Data is lost unless it was started durable.
    pub async fn stop(&self) {
        self.container
            .stop()
            .await
            .unwrap_or_else(|e| panic!("stopping the Redis container: {e}"));
    }

    /// Starts the stopped container again, on the same URL, and waits until Redis answers.
    pub async fn start_again(&self) {
        self.container
            .start()
            .await
            .unwrap_or_else(|e| panic!("starting the Redis container again: {e}"));
        self.wait_until_ready().await;
    }

    /// Whether Redis answers `PING` with `+PONG` on [`TestRedis::url`] within a second.
    pub async fn ping(&self) -> bool {
        let exchange = async {
            let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
            if let Some(password) = &self.password {
                stream
                    .write_all(format!("AUTH {password}\r\n").as_bytes())
                    .await?;
                let mut ok = [0_u8; 5];
                stream.read_exact(&mut ok).await?;
                if &ok != b"+OK\r\n" {
                    return Ok(false);
                }
            }
            stream.write_all(b"PING\r\n").await?;
            let mut reply = [0_u8; 7];
            stream.read_exact(&mut reply).await?;
            Ok::<bool, std::io::Error>(&reply == b"+PONG\r\n")
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), exchange).await,
            Ok(Ok(true))
        )
    }

    async fn wait_until_ready(&self) {
        let ready = tokio::time::timeout(RESTART_TIMEOUT, async {
            while !self.ping().await {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "Redis at {} did not answer PING within {RESTART_TIMEOUT:?}",
            self.url
        );
    }
}

/// A TCP port free on every interface right now (Docker publishes on 0.0.0.0).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("no free TCP port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn image_specs_split_into_name_and_tag() {
        let split = split_image;
        assert_eq!(split("redis:7"), ("redis".into(), "7".into()));
        assert_eq!(
            split("kubernaut-test/redis:local"),
            ("kubernaut-test/redis".into(), "local".into())
        );
        assert_eq!(split("redis"), ("redis".into(), "latest".into()));
        assert_eq!(
            split("registry.local:5000/redis"),
            ("registry.local:5000/redis".into(), "latest".into())
        );
        assert_eq!(
            split("registry.local:5000/redis:7.4"),
            ("registry.local:5000/redis".into(), "7.4".into())
        );
    }
}
