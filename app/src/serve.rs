//! Composition root: builds the adapters named by the static settings, wires them into the
//! pipeline and runs the server until SIGTERM.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gateway_adapter_directory::DirectoryWriter;
use gateway_adapter_embedded::{EmbeddedOptions, EmbeddedStore};
use gateway_adapter_file_config::{TokenAuthenticator, TokenFile, WatchOptions};
use gateway_adapter_kube::{ClientOptions, KubeWriter, TokenReviewOptions, TokenReviewer};
use gateway_adapter_memory::{
    MemoryDedupStore, MemoryOutbox, MemoryStormCounter, MemoryWindowStore, SystemClock,
};
use gateway_adapter_redis::{RedisOptions, RedisStore, redacted, secrets_of};
use gateway_ports::{
    Clock, ConfigControl, ConfigSource, DedupStore, Outbox, RemediationWriter, StormCounter,
    WindowStore,
};
use gateway_storm::WindowCapacity;
use tokio::net::TcpListener;

use crate::auth::{Auth, FailureLimits};
use crate::cli::{AuthMode, ServeArgs, Sink, StateBackend};
use crate::config_source::SettingsSource;
use crate::gateway::{Gateway, Parts, StormStores, WriteTiming};
use crate::http::{AppState, router};
use crate::limits::{Limits, ShutdownTiming};
use crate::metrics::{Metrics, TokenFileRole};
use crate::tls::{Tls, TlsFiles};
use crate::{connections, supervise};

/// How often storm windows are checked for inactivity and queued writes retried.
pub const TICK: Duration = Duration::from_secs(1);

/// The assembled gateway and the hot-reloadable source of its settings.
#[derive(Debug)]
pub struct Assembled {
    /// The pipeline.
    pub gateway: Arc<Gateway>,
    /// The settings source (watched once serving starts).
    pub config: Arc<SettingsSource>,
}

/// Loads the settings of `--config-dir` and builds the gateway the static settings name
/// (embedded defaults: in-memory dedup, directory sink). For `--config-source configmap:…`:
/// [`crate::config_source::config_source`], then [`assemble`].
pub async fn build(args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Assembled> {
    let setup = crate::config_source::file_source(args, clock.clone())?;
    assemble(args, clock, setup.source).await
}

/// Builds the gateway on a loaded settings source (see [`crate::config_source`]).
pub async fn assemble(
    args: &ServeArgs,
    clock: Arc<dyn Clock>,
    source: Arc<SettingsSource>,
) -> anyhow::Result<Assembled> {
    let config: Arc<dyn ConfigSource> = source.clone();
    let capacity = NonZeroUsize::new(args.pipeline.dedup_capacity)
        .context("--dedup-capacity must be at least 1")?;
    let metrics = Metrics::new();
    let window_capacity = WindowCapacity::new(args.pipeline.storm_window_capacity)
        .context("--storm-window-capacity must be at least 1")?;
    let State {
        dedup: dedup_store,
        storms,
        outbox,
        name: state,
    } = stores(args, capacity, window_capacity, &clock, &metrics)?;
    let writer = writer(args, &metrics).await?;
    tracing::info!(state, sink = ?args.sink, config = %source.origin(), "gateway assembled");
    metrics.config_loaded(&source.status());
    let observed = metrics.clone();
    source.on_reload(Box::new(move |record| observed.config_reloaded(record)));
    let gateway = Arc::new(Gateway::new(Parts {
        config,
        clock,
        dedup_store,
        writer,
        storms,
        outbox,
        max_dead_letters: args.max_dead_letters,
        limits: args.pipeline.limits(),
        metrics,
        fallback_namespace: args.pipeline.fallback_namespace.clone(),
        timing: WriteTiming {
            deadline: args.write_deadline,
            attempt_timeout: match args.sink {
                Sink::Kubernetes => args.kube_timeout,
                // A local write has no timeout of its own; a second is generous for one file.
                Sink::Directory => Duration::from_secs(1),
            },
            update_interval: args.pipeline.update_interval,
        },
    }));
    Ok(Assembled {
        gateway,
        config: source,
    })
}

/// The `--auth` mode, or the reason the gateway refuses to start without one.
pub fn auth_mode(args: &ServeArgs) -> anyhow::Result<AuthMode> {
    args.auth.context(
        "choose --auth token|tokenreview|none (or GATEWAY_AUTH): the signal and admin endpoints \
         need an explicit choice; `none` lets anyone who reaches the port send signals and reload \
         the settings",
    )
}

/// The authentication `--auth` names, exporting its mode in `metrics`. `token`: the token files
/// are read now (unreadable, empty or invalid: an error) and watched on the current tokio
/// runtime for as long as the returned `Auth` lives.
pub async fn authenticator(args: &ServeArgs, metrics: &Metrics) -> anyhow::Result<Auth> {
    let mode = auth_mode(args)?;
    let limits = FailureLimits::new(
        args.auth_failure_burst,
        args.auth_failure_window,
        args.auth_max_tracked_peers,
    )
    .map_err(anyhow::Error::msg)?;
    match mode {
        AuthMode::None => {
            tracing::warn!(
                "--auth none: NO AUTHENTICATION — anyone who can reach this port may send signals, \
                 read the settings and dead letters, and reload the settings"
            );
            Ok(Auth::none(metrics))
        }
        AuthMode::Token => {
            let path = args
                .auth_token_file
                .as_ref()
                .context("--auth token needs --auth-token-file FILE (a mounted Secret key, one token per line)")?;
            let load = |path: &std::path::PathBuf,
                        role: TokenFileRole|
             -> anyhow::Result<Arc<TokenFile>> {
                let file = Arc::new(TokenFile::load(path)?);
                metrics.auth_tokens(role, file.tokens());
                let observed = metrics.clone();
                file.on_reload(move |reload| observed.auth_token_reload(role, reload));
                Ok(file)
            };
            let signal = load(path, TokenFileRole::Signal)?;
            let admin = args
                .admin_token_file
                .as_ref()
                .map(|admin| load(admin, TokenFileRole::Admin))
                .transpose()?;
            tracing::info!(
                file = %signal.path().display(),
                tokens = signal.tokens(),
                admin_file = ?admin.as_ref().map(|a| a.path().display().to_string()),
                admin_tokens = admin.as_ref().map(|a| a.tokens()),
                "bearer tokens required (--auth token)"
            );
            let tokens = TokenAuthenticator::new(signal, admin);
            let watching = tokens.watch(WatchOptions {
                debounce: args.config_debounce,
                resync: args.config_resync,
                ..WatchOptions::default()
            });
            let auth = Auth::new(Arc::new(tokens), limits, metrics);
            for handle in watching {
                auth.keep(handle);
            }
            Ok(auth)
        }
        AuthMode::TokenReview => {
            let client = kube_client(args)
                .await
                .context("--auth tokenreview needs the Kubernetes API")?;
            let options = TokenReviewOptions {
                audiences: args.auth_audience.iter().cloned().collect(),
                cache_ttl: args.auth_cache_ttl,
                timeout: args.kube_timeout,
                max_cached: args.auth_cache_max,
            };
            tracing::info!(
                cache_ttl = ?options.cache_ttl,
                audiences = ?options.audiences,
                "ServiceAccount tokens checked with TokenReview and SubjectAccessReview (--auth tokenreview)"
            );
            let observed = metrics.clone();
            let reviewer = TokenReviewer::new(client, options).with_observer(move |call| {
                observed.kube_api_call(call.verb, &call.code, call.duration);
            });
            Ok(Auth::new(Arc::new(reviewer), limits, metrics))
        }
    }
}

/// The Kubernetes API client of `--kubeconfig` (or `KUBECONFIG`, `~/.kube/config`, the
/// in-cluster ServiceAccount), its credentials (token, password, client key) registered with
/// the log filter before the client is used: whatever an error echoes, no log line shows them.
pub async fn kube_client(args: &ServeArgs) -> anyhow::Result<gateway_adapter_kube::Client> {
    let options = ClientOptions {
        kubeconfig: args.kubeconfig.clone(),
    };
    let connection = gateway_adapter_kube::client(&options).await?;
    for secret in &connection.credentials {
        crate::logging::never_print(secret);
    }
    Ok(connection.client)
}

/// The RemediationRequest sink `--sink` names.
async fn writer(args: &ServeArgs, metrics: &Metrics) -> anyhow::Result<Arc<dyn RemediationWriter>> {
    match args.sink {
        Sink::Directory => {
            let writer = DirectoryWriter::new(&args.remediation_dir).with_context(|| {
                format!(
                    "cannot create remediation directory {}",
                    args.remediation_dir.display()
                )
            })?;
            tracing::info!(remediation_dir = %args.remediation_dir.display(), "RemediationRequests written as YAML files");
            Ok(Arc::new(writer))
        }
        Sink::Kubernetes => {
            let client = kube_client(args).await?;
            let observed = metrics.clone();
            let writer = KubeWriter::new(client, args.kube_timeout).with_observer(move |call| {
                observed.kube_api_call(call.verb, &call.code, call.duration);
            });
            tracing::info!(timeout = ?args.kube_timeout, write_deadline = ?args.write_deadline, "RemediationRequests written through the Kubernetes API");
            Ok(Arc::new(writer))
        }
    }
}

/// Where the gateway keeps its state.
struct State {
    dedup: Arc<dyn DedupStore>,
    storms: StormStores,
    outbox: Arc<dyn Outbox>,
    /// For the start-up log.
    name: &'static str,
}

impl State {
    /// Every part of the state in one store that outlives this process (the embedded database,
    /// Redis): its windows are closed by the next start (or another replica), not at shutdown.
    fn in_one<S>(
        store: Arc<S>,
        capacity: WindowCapacity,
        args: &ServeArgs,
        name: &'static str,
    ) -> State
    where
        S: DedupStore + StormCounter + WindowStore + Outbox + 'static,
    {
        State {
            dedup: store.clone(),
            storms: StormStores {
                counter: store.clone(),
                windows: store.clone(),
                capacity,
                max_buffer_bytes: args.pipeline.max_window_buffer_bytes,
                shared: true,
            },
            outbox: store,
            name,
        }
    }
}

/// The state the static settings name: Redis (shared by every replica) when `--redis-url` is
/// set, else the embedded database in `--state-dir`, or process memory with `--state memory`.
fn stores(
    args: &ServeArgs,
    capacity: NonZeroUsize,
    window_capacity: WindowCapacity,
    clock: &Arc<dyn Clock>,
    metrics: &Metrics,
) -> anyhow::Result<State> {
    let Some(url) = &args.redis_url else {
        let max_alert_names = NonZeroUsize::new(args.pipeline.max_alert_names)
            .context("--max-alert-names must be at least 1")?;
        return Ok(match args.state {
            StateBackend::Memory => {
                tracing::warn!(
                    "state in process memory (--state memory): buffered storm signals and pending writes are lost if the process crashes"
                );
                State {
                    dedup: Arc::new(MemoryDedupStore::new(capacity)),
                    storms: StormStores {
                        counter: Arc::new(MemoryStormCounter::new(max_alert_names)),
                        windows: Arc::new(MemoryWindowStore::new(clock.clone())),
                        capacity: window_capacity,
                        max_buffer_bytes: args.pipeline.max_window_buffer_bytes,
                        shared: false,
                    },
                    outbox: Arc::new(MemoryOutbox::default()),
                    name: "memory",
                }
            }
            StateBackend::Embedded => {
                let options = EmbeddedOptions {
                    dedup_capacity: capacity,
                    max_alert_names,
                    ..EmbeddedOptions::default()
                };
                let store = Arc::new(EmbeddedStore::open(
                    &args.state_dir,
                    clock.clone(),
                    options,
                )?);
                tracing::info!(path = %store.path().display(), "state in the embedded database: it survives a crash");
                State::in_one(store, window_capacity, args, "embedded")
            }
        });
    };
    let password = match &args.redis_password_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the Redis password file {}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => std::env::var("GATEWAY_REDIS_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
    };
    // Whatever error text a client or server echoes, the log never shows these.
    for secret in password.iter().cloned().chain(secrets_of(url)) {
        crate::logging::never_print(&secret);
    }
    let options = RedisOptions {
        password,
        command_timeout: args.redis_timeout,
        replica_acks: args.redis_replica_acks,
        ..RedisOptions::new(url.to_string())
    };
    let store = Arc::new(RedisStore::new(options).map_err(|e| anyhow::anyhow!("{e}"))?);
    // The gauge follows every command and health check, outage or not.
    let observed = metrics.clone();
    store.on_availability(move |up| observed.redis_available(up));
    tracing::info!(server = %redacted(url), "dedup and storm state in Redis, shared by every replica");
    Ok(State::in_one(store, window_capacity, args, "redis"))
}

/// Runs the gateway until `shutdown` resolves — the background round every [`TICK`],
/// supervised (a round that panics is counted, fails readiness until the next completes, and
/// the rounds go on) — then stops within `--shutdown-timeout`:
/// readiness fails at once; after `--shutdown-delay` the listener closes, idle connections are
/// closed and in-flight requests finish; then the last round writes what waits (storm windows,
/// aggregates). Whatever is not done when the timeout ends is abandoned, with an error log
/// saying what, and `serve` returns.
///
/// Fails at once, before serving, when the flags' limits cannot work together
/// ([`Limits::of`]).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    args: &ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = Limits::of(args)?;
    let gateway = state.gateway.clone();
    // HTTPS when the flags say so: a pair that cannot be served stops the start here.
    let tls = TlsFiles::of(args)?
        .map(|files| Tls::load(files, gateway.metrics().clone()))
        .transpose()?;
    let _reloading = tls.as_ref().map(Tls::watch);
    // What a previous process left pending is read by the background rounds (the first runs at
    // once), again every round until the state backend answers (Redis connects meanwhile).
    let app = router(state, &limits.request);
    let ticker = tokio::spawn({
        let round = gateway.clone();
        let panicked = gateway.clone();
        supervise::every(
            TICK,
            move || {
                let gateway = round.clone();
                async move { gateway.tick().await }
            },
            move || panicked.tick_panicked(),
        )
    });
    let ShutdownTiming { delay, timeout } = limits.shutdown;
    let draining = gateway.clone();
    let begun = async move {
        shutdown.await;
        tracing::info!(
            ?delay,
            ?timeout,
            "shutdown requested: readiness now fails; closing the listener after the delay"
        );
        draining.stop_accepting();
        let deadline = tokio::time::Instant::now() + timeout;
        tokio::time::sleep(delay).await;
        deadline
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        tls = tls.is_some(),
        client_certificates = tls.as_ref().is_some_and(|t| t.files().client_ca.is_some()),
        "gateway listening"
    );
    gateway.serving(limits.ticker_stall);
    let (open, deadline) = connections::accept(
        listener,
        app,
        limits.connections,
        gateway.metrics().clone(),
        tls,
        begun,
    )
    .await;
    if let Some(left) = open.close(deadline).await {
        tracing::error!(
            connections = left.connections,
            requests = left.requests,
            "shutdown timeout: requests still in flight were abandoned unanswered"
        );
    }
    ticker.abort();
    if tokio::time::timeout_at(deadline, gateway.drain())
        .await
        .is_err()
    {
        tracing::error!(
            pending = gateway.pending_writes(),
            "shutdown timeout: RemediationRequest writes abandoned before they were made"
        );
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// `gateway serve`: builds, binds, watches the settings source and serves.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything connects anywhere: limits that cannot work together are a typo, and so
    // is half a TLS configuration; the endpoints are never served without an explicit
    // authentication choice.
    Limits::of(&args)?;
    TlsFiles::of(&args)?;
    auth_mode(&args)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let setup = crate::config_source::config_source(&args, clock.clone()).await?;
    let Assembled { gateway, config } = assemble(&args, clock, setup.source.clone()).await?;
    let auth = authenticator(&args, gateway.metrics()).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let _watching = setup.watch(WatchOptions {
        debounce: args.config_debounce,
        resync: args.config_resync,
        ..WatchOptions::default()
    });
    let control: Arc<dyn ConfigControl> = config;
    serve(
        AppState {
            gateway,
            control: Some(control),
            auth,
        },
        listener,
        &args,
        shutdown_signal(),
    )
    .await
}
