//! The command line. Every `serve` flag has an environment twin (`GATEWAY_…`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The Kubernaut alert gateway.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, accepted without the word `serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve(Box<ServeArgs>),
    /// Work with config directories.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the RemediationRequest CustomResourceDefinition as YAML (`gateway crd | kubectl apply -f -`).
    Crd,
    /// Feed recorded signals through the pipeline offline and report what a config directory
    /// would do with them (storms, aggregates, RemediationRequests, API writes); writes nothing.
    /// Exit 2 on bad input or config.
    Replay(Box<ReplayArgs>),
}

/// `gateway replay`: the settings files to judge, the recordings, and the `serve` flags that
/// shape the pipeline (same names, environment twins and defaults as `serve`'s).
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The flags that shape the pipeline (the same as `serve`'s).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Config directory to replay with (storm.yaml, dedup.yaml, retry.yaml, security.yaml),
    /// loaded and validated as `gateway config check` does.
    #[arg(long, value_name = "DIR")]
    pub config: PathBuf,
    /// A second config directory: the same input is replayed with it too, and both reports are
    /// shown side by side with the difference (B − A).
    #[arg(long, value_name = "DIR")]
    pub compare: Option<PathBuf>,
    /// Print JSON even when stdout is a terminal (it is JSON whenever stdout is not one).
    #[arg(long)]
    pub json: bool,
    /// Recordings: files of JSON documents (webhook bodies, core/v1 Events, wrappers
    /// `{"received_at": TIME, "body": {...}}`, or a `GET /api/v2/alerts` array), or directories
    /// of `*.json` files, one document each.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub inputs: Vec<PathBuf>,
}

impl ReplayArgs {
    /// The pipeline's process-level settings.
    pub fn options(&self) -> crate::replay::run::Options {
        let pipeline = &self.pipeline;
        crate::replay::run::Options {
            update_interval: pipeline.update_interval,
            storm_window_capacity: pipeline.storm_window_capacity,
            max_window_buffer_bytes: pipeline.max_window_buffer_bytes,
            dedup_capacity: pipeline.dedup_capacity,
            max_alert_names: pipeline.max_alert_names,
            limits: pipeline.limits(),
            fallback_namespace: pipeline.fallback_namespace.clone(),
        }
    }
}

/// `gateway config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config directory offline (storm.yaml, dedup.yaml, retry.yaml, security.yaml);
    /// exit 1 naming file, key and reason of every problem.
    Check {
        /// The directory to check.
        dir: PathBuf,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where RemediationRequests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sink {
    /// One YAML file per resource in `--remediation-dir` (embedded default, no cluster needed).
    Directory,
    /// The Kubernetes API (in-cluster config, or `--kubeconfig` / `KUBECONFIG`).
    Kubernetes,
}

/// Where dedup records, storm state and pending writes are kept without `--redis-url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateBackend {
    /// A crash-safe embedded database in `--state-dir` (the default): a 2xx survives `kill -9`.
    Embedded,
    /// Process memory only: fastest, but buffered storm signals and pending writes are lost on
    /// a crash (graceful shutdowns still write them).
    Memory,
}

/// How callers of the signal and admin endpoints are authenticated (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Bearer tokens from `--auth-token-file` (and `--admin-token-file`), hot-reloaded.
    Token,
    /// Kubernetes ServiceAccount tokens, checked with TokenReview and SubjectAccessReview.
    #[value(name = "tokenreview")]
    TokenReview,
    /// No authentication: anyone who reaches the port may send signals and reload settings.
    None,
}

/// Where the hot-reloadable settings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSourceArg {
    /// The files of `--config-dir` (the mounted ConfigMap), watched with notify.
    File,
    /// The ConfigMap itself, watched through the Kubernetes API.
    ConfigMap {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl std::str::FromStr for ConfigSourceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "file" {
            return Ok(ConfigSourceArg::File);
        }
        let usage =
            || format!("invalid config source {s:?}: write `file` or `configmap:NAMESPACE/NAME`");
        let rest = s.strip_prefix("configmap:").ok_or_else(usage)?;
        let (namespace, name) = rest.split_once('/').ok_or_else(usage)?;
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(usage());
        }
        Ok(ConfigSourceArg::ConfigMap {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The flags that shape the signal pipeline, the same for `serve` and `replay` (one definition:
/// a replay runs the pipeline `serve` would).
#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// At most one occurrence-count update per RemediationRequest per this interval (duplicates
    /// and growing aggregates are coalesced, so an alert storm is not an API-server storm).
    #[arg(long, env = "GATEWAY_UPDATE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub update_interval: Duration,
    /// Alert names whose storm counts the memory and embedded state keep (past it, the name
    /// counted least recently is dropped and counts from zero again).
    #[arg(long, env = "GATEWAY_MAX_ALERT_NAMES", default_value_t = 10_000)]
    pub max_alert_names: usize,
    /// Most alerts one request may carry (more: 413). Set Alertmanager's `max_alerts` in the
    /// webhook_config at or below it.
    #[arg(long, env = "GATEWAY_MAX_ALERTS_PER_REQUEST", default_value_t = 1000)]
    pub max_alerts_per_request: usize,
    /// Most labels, and most annotations, one alert may carry (more: 400).
    #[arg(long, env = "GATEWAY_MAX_LABELS", default_value_t = 64)]
    pub max_labels: usize,
    /// Most bytes of label and annotation names and values one alert may carry (more: 400).
    /// With `--storm-window-capacity` it bounds the bytes a storm window buffers.
    #[arg(long, env = "GATEWAY_MAX_LABEL_BYTES", default_value_t = 32 * 1024)]
    pub max_label_bytes: usize,
    /// Most bytes of signals (labels and annotations) one storm window buffers before its
    /// aggregate is created: a storm of large alerts holds no more than this per window.
    #[arg(long, env = "GATEWAY_MAX_WINDOW_BUFFER_BYTES", default_value_t = gateway_storm::StormDetector::DEFAULT_MAX_BUFFER_BYTES)]
    pub max_window_buffer_bytes: u64,
    /// Fingerprints the dedup store holds at most (in memory or embedded).
    #[arg(long, env = "GATEWAY_DEDUP_CAPACITY", default_value_t = 100_000)]
    pub dedup_capacity: usize,
    /// Distinct resources one storm aggregate lists at most (sampling starts before).
    #[arg(long, env = "GATEWAY_STORM_WINDOW_CAPACITY", default_value_t = 1000)]
    pub storm_window_capacity: u32,
    /// Namespace for RemediationRequests of signals without one (cluster-scoped targets).
    #[arg(
        long,
        env = "GATEWAY_FALLBACK_NAMESPACE",
        default_value = "kubernaut-system"
    )]
    pub fallback_namespace: String,
}

impl PipelineArgs {
    /// What one request may carry.
    pub fn limits(&self) -> crate::input_limits::InputLimits {
        crate::input_limits::InputLimits {
            max_alerts: self.max_alerts_per_request,
            max_labels: self.max_labels,
            max_label_bytes: self.max_label_bytes,
        }
    }
}

/// Static settings of `serve`: read once at start; changing one needs a restart.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The flags that shape the pipeline (shared with `replay`).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Directory holding storm.yaml, dedup.yaml, retry.yaml and security.yaml (the mounted
    /// ConfigMap).
    #[arg(
        long,
        env = "GATEWAY_CONFIG_DIR",
        default_value = "/etc/kubernaut/config"
    )]
    pub config_dir: PathBuf,
    /// Directory the embedded sink writes RemediationRequests into, one YAML file each.
    #[arg(
        long,
        env = "GATEWAY_REMEDIATION_DIR",
        default_value = "./remediations"
    )]
    pub remediation_dir: PathBuf,
    /// Where RemediationRequests go: `directory` (default) or `kubernetes`.
    #[arg(long, env = "GATEWAY_SINK", value_enum, default_value = "directory")]
    pub sink: Sink,
    /// Kubeconfig for `--sink kubernetes` and `--config-source configmap:…` (default: `KUBECONFIG`,
    /// then `~/.kube/config`, then the in-cluster service account).
    #[arg(long, env = "GATEWAY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Where the hot-reloadable settings come from: `file` (the files of `--config-dir`) or
    /// `configmap:NAMESPACE/NAME` (the ConfigMap, watched through the Kubernetes API: applies in
    /// about a second instead of the kubelet's up to 90 s).
    #[arg(long, env = "GATEWAY_CONFIG_SOURCE", default_value = "file")]
    pub config_source: ConfigSourceArg,
    /// Longest wait for one Kubernetes API call (an attempt; retries are extra).
    #[arg(long, env = "GATEWAY_KUBE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub kube_timeout: Duration,
    /// The longest one webhook request may spend writing RemediationRequests, retries included.
    /// Keep it below the sender's timeout: Alertmanager gives a notification at least 10 s
    /// (its minimum notify timeout; `group_interval` when longer), so the 8 s default leaves
    /// 2 s for the rest of the request. A retry that would not end in time is not made: the
    /// sender gets 503 in time and resends.
    #[arg(long, env = "GATEWAY_WRITE_DEADLINE", default_value = "8s", value_parser = parse_duration)]
    pub write_deadline: Duration,
    /// Log format.
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = crate::http::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Redis for dedup and storm state shared by every replica: one server
    /// (`redis://host:6379/0`, `rediss://…` for TLS, `redis+unix:///run/redis.sock`), a Redis
    /// Cluster (`redis+cluster://h1:6379,h2:6379,…`, its seed nodes; `rediss+cluster://` for
    /// TLS), or the primary a Sentinel set names (`redis+sentinel://h1:26379,h2:26379/MASTER`).
    /// Without it, state is in `--state`.
    /// The URL may carry the password: `--help` never shows the environment's value, and
    /// `Debug` shows it redacted.
    #[arg(long, env = "GATEWAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<RedisUrl>,
    /// File holding the Redis password (a mounted Secret); `GATEWAY_REDIS_PASSWORD` also works.
    #[arg(long, env = "GATEWAY_REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<std::path::PathBuf>,
    /// Replicas that must have a storm window's or a pending write's change before the signal
    /// is answered (Redis `WAIT`, at most half `--redis-timeout`; fewer: 503 and resent). With
    /// replicas that a failover promotes (Sentinel, Cluster), 1 makes `202 buffered` survive the
    /// primary's loss; 0 waits for none.
    #[arg(long, env = "GATEWAY_REDIS_REPLICA_ACKS", default_value_t = 0)]
    pub redis_replica_acks: u32,
    /// Longest wait for one Redis command.
    #[arg(long, env = "GATEWAY_REDIS_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub redis_timeout: Duration,
    /// Where state is kept without `--redis-url`: `embedded` (a crash-safe database in
    /// `--state-dir`) or `memory` (lost on a crash). Ignored with `--redis-url`.
    #[arg(long, env = "GATEWAY_STATE", value_enum, default_value = "embedded")]
    pub state: StateBackend,
    /// Directory of the embedded state database (`gateway.redb`); one gateway process per
    /// directory.
    #[arg(long, env = "GATEWAY_STATE_DIR", default_value = "./state")]
    pub state_dir: PathBuf,
    /// Background writes given up for good that `/debug/dead-letters` keeps (the newest).
    #[arg(long, env = "GATEWAY_MAX_DEAD_LETTERS", default_value_t = 1000)]
    pub max_dead_letters: usize,
    /// Quiet time after a change in the config directory before it is reloaded (a burst of
    /// writes is one reload).
    #[arg(long, env = "GATEWAY_CONFIG_DEBOUNCE", default_value = "200ms", value_parser = parse_duration)]
    pub config_debounce: Duration,
    /// Re-read the config directory this often even without a change notification.
    #[arg(long, env = "GATEWAY_CONFIG_RESYNC", default_value = "30s", value_parser = parse_duration)]
    pub config_resync: Duration,
    /// On SIGTERM, how long readiness reports failure before the listener closes, so load
    /// balancers stop sending first (e.g. `5s`).
    #[arg(long, env = "GATEWAY_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    // --- The HTTP server's limits (see `crate::limits`, where they are checked together). ---
    /// A connection that has not sent a request's complete headers this long after it opened,
    /// or after its previous answer, is closed: slow clients (slow loris) and idle keep-alive
    /// connections hold a socket at most this long.
    #[arg(long, env = "GATEWAY_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Connections open at once, at most (keep it well below the file-descriptor limit). At the
    /// limit a new connection takes the place of the longest-idle one (no request in flight);
    /// when every connection has a request in flight it is answered 503 and closed at once.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// A request not answered this long after its headers arrived (a slow body included) is
    /// answered 503 with `Retry-After`. Above `--write-deadline`, below Alertmanager's 10 s.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT", default_value = "9s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Requests to the signal endpoints in flight at once, at most; beyond it a request is
    /// answered 503 with `Retry-After: 1` at once (load shedding, not a queue). Below
    /// `--max-connections`, so that health checks always find a connection.
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,
    /// On SIGTERM, the longest the gateway takes to stop, `--shutdown-delay` included: what is
    /// not done by then (requests in flight, the last writes) is abandoned and logged. Keep it
    /// below the pod's `terminationGracePeriodSeconds` (30 s).
    #[arg(long, env = "GATEWAY_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// `/readyz` fails while the background round (about once a second) has not completed for
    /// this long: a round writing to a slow API server legitimately takes a few seconds.
    #[arg(long, env = "GATEWAY_TICKER_STALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub ticker_stall_timeout: Duration,

    // --- Authentication (see `crate::auth`, built by `crate::serve::authenticator`). ---
    /// How callers of the signal and admin endpoints are authenticated: `token` (bearer tokens
    /// from `--auth-token-file`), `tokenreview` (Kubernetes ServiceAccount tokens) or `none`.
    /// No default: the gateway refuses to start without it.
    #[arg(long, env = "GATEWAY_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// `--auth token`: the file of bearer tokens (a mounted Secret key), one per line,
    /// `NAME:TOKEN` or `TOKEN`; `#` comments. Watched: a change applies within seconds.
    #[arg(long, env = "GATEWAY_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// `--auth token`: a separate file of admin tokens (`/config`, `/-/reload`,
    /// `/debug/dead-letters`); when set, signal tokens get 403 there. Without it, signal tokens
    /// may also use the admin endpoints.
    #[arg(long, env = "GATEWAY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Authentication failures (401) from one peer within `--auth-failure-window` after which it
    /// is refused (429) without being checked, for the window.
    #[arg(long, env = "GATEWAY_AUTH_FAILURE_BURST", default_value_t = 10)]
    pub auth_failure_burst: u32,
    /// How long failures are counted, and how long a peer past the burst is refused.
    #[arg(long, env = "GATEWAY_AUTH_FAILURE_WINDOW", default_value = "10s", value_parser = parse_duration)]
    pub auth_failure_window: Duration,
    /// Peers whose failures are tracked at most (past it, the oldest is forgotten).
    #[arg(long, env = "GATEWAY_AUTH_MAX_TRACKED_PEERS", default_value_t = 10_000)]
    pub auth_max_tracked_peers: usize,
    /// `--auth tokenreview`: how long a verdict on a token is cached (a revoked token works at
    /// most this long).
    #[arg(long, env = "GATEWAY_AUTH_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub auth_cache_ttl: Duration,
    /// `--auth tokenreview`: verdicts cached at most (past it, the oldest is forgotten).
    #[arg(long, env = "GATEWAY_AUTH_CACHE_MAX", default_value_t = 10_000)]
    pub auth_cache_max: usize,
    /// `--auth tokenreview`: the audience tokens must be issued for (default: the API server's).
    #[arg(long, env = "GATEWAY_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    // --- HTTPS (see `crate::tls`). ---
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first), e.g. a
    /// cert-manager Secret's `tls.crt`. Needs `--tls-key-file`. Re-read when it changes: no
    /// restart on rotation.
    #[arg(long, env = "GATEWAY_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `--tls-cert-file` (PEM: PKCS#8, PKCS#1 or SEC1), e.g. `tls.key`.
    #[arg(long, env = "GATEWAY_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Require a client certificate signed by one of these CA certificates (PEM), e.g. `ca.crt`
    /// (mTLS). Needs `--tls-cert-file`.
    #[arg(long, env = "GATEWAY_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Re-read the TLS files this often even without a change notification.
    #[arg(long, env = "GATEWAY_TLS_RELOAD_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
}

/// Durations on the command line are written like the config files' (`500ms`, `5s`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}): write it like 500ms or 5s"))
}

/// `--redis-url`: a URL that may carry a password, so its `Debug` is redacted (a `{args:?}`
/// anywhere must not print it).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl std::str::FromStr for RedisUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(RedisUrl(s.to_owned()))
    }
}

impl std::ops::Deref for RedisUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", gateway_adapter_redis::redacted(&self.0))
    }
}

#[cfg(test)]
mod replay_tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn replay_defaults_are_serves() {
        let serve = Cli::try_parse_from(["gateway"]).unwrap().serve;
        let Some(Command::Replay(replay)) =
            Cli::try_parse_from(["gateway", "replay", "--config", "c", "in.jsonl"])
                .unwrap()
                .command
        else {
            panic!("replay parses")
        };
        // One definition of the pipeline's flags: the same values whatever the command.
        assert_eq!(
            format!("{:?}", replay.pipeline),
            format!("{:?}", serve.pipeline)
        );
        assert!(!replay.json);
        assert!(
            Cli::try_parse_from(["gateway", "replay", "--config", "c"]).is_err(),
            "an input is required"
        );
    }
}

#[cfg(test)]
mod redis_url_tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn the_redis_url_is_redacted_in_debug_output() {
        let cli = Cli::try_parse_from(["gateway", "--redis-url", "redis://:hunter2@h:1?pass=pw9"])
            .unwrap();
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw9"),
            "{shown}"
        );
        assert!(shown.contains("redis://h:1"), "{shown}");
    }
}
