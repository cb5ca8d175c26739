//! A real gateway — the composition `gateway serve` builds — on a loopback socket, in the test's
//! process: for tests and benchmarks that need the whole thing (config watcher, Redis, HTTP).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gateway::cli::Cli;
use gateway::config_source::{SettingsSource, Watching};
use gateway::gateway::Gateway;
use gateway::http::AppState;
use gateway_adapter_file_config::WatchOptions;
use gateway_adapter_memory::SystemClock;
use gateway_ports::ConfigControl;
use tokio::net::TcpListener;

/// A gateway serving on `127.0.0.1:<free port>` until [`ServedGateway::stop`].
pub struct ServedGateway {
    /// `http://127.0.0.1:PORT` (`https://` with `--tls-cert-file`).
    pub base: String,
    /// Its config source (to reload or inspect).
    pub config: Arc<SettingsSource>,
    /// Its pipeline (metrics, settings).
    pub gateway: Arc<Gateway>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _watching: Option<Watching>,
    /// The embedded state's directory, when the flags named none.
    _state: Option<tempfile::TempDir>,
}

impl ServedGateway {
    /// Starts a gateway with these `serve` flags (`--shutdown-delay 0s` is added, and
    /// `--auth none` unless the flags choose a mode), watching its
    /// settings source (the config directory with `watch`'s options, or the ConfigMap of
    /// `--config-source configmap:…`) when `watch` is given, and waits until it reports ready.
    pub async fn start(flags: &[&str], watch: Option<WatchOptions>) -> ServedGateway {
        Self::try_start(flags, watch).await.expect("gateway builds")
    }

    /// [`ServedGateway::start`], or why the gateway refused to start.
    pub async fn try_start(
        flags: &[&str],
        watch: Option<WatchOptions>,
    ) -> anyhow::Result<ServedGateway> {
        let mut argv = vec!["gateway", "--shutdown-delay", "0s"];
        if !flags
            .iter()
            .any(|f| *f == "--auth" || f.starts_with("--auth="))
        {
            argv.extend(["--auth", "none"]);
        }
        argv.extend_from_slice(flags);
        // The embedded state (the default) in a directory of its own, unless the flags say where.
        let chosen = flags
            .iter()
            .any(|f| ["--state", "--state-dir", "--redis-url"].contains(f));
        let state_tmp = (!chosen).then(|| tempfile::tempdir().expect("temp dir"));
        let state_dir = state_tmp
            .as_ref()
            .map(|d| d.path().to_string_lossy().into_owned());
        if let Some(dir) = &state_dir {
            argv.extend(["--state-dir", dir]);
        }
        let args = Cli::try_parse_from(argv).expect("valid flags").serve;
        let clock: Arc<dyn gateway_ports::Clock> = Arc::new(SystemClock);
        let setup = gateway::config_source::config_source(&args, clock.clone()).await?;
        let assembled = gateway::serve::assemble(&args, clock, setup.source.clone()).await?;
        let auth = gateway::serve::authenticator(&args, assembled.gateway.metrics()).await?;
        let watching = watch.map(|options| setup.watch(options));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let tls = flags.contains(&"--tls-cert-file");
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().expect("bound"));
        let control: Arc<dyn ConfigControl> = assembled.config.clone();
        let state = AppState {
            gateway: assembled.gateway.clone(),
            control: Some(control),
            auth,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            gateway::serve::serve(state, listener, &args, async {
                let _ = stopped.await;
            })
            .await
        });
        if tls {
            // The test's client alone knows which CA to trust: readiness is read from the
            // metrics, and a TLS configuration that cannot be served is the error returned.
            let ready = async {
                loop {
                    if server.is_finished() {
                        return false;
                    }
                    let text = assembled.gateway.metrics().render();
                    if text.lines().any(|line| line == "gateway_ready 1") {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let ready = tokio::time::timeout(Duration::from_secs(10), ready)
                .await
                .expect("the gateway becomes ready or fails");
            if !ready {
                let _ = stop.send(());
                return match server.await.expect("server task") {
                    Err(e) => Err(e),
                    Ok(()) => Err(anyhow::anyhow!("the gateway stopped at once")),
                };
            }
            return Ok(ServedGateway {
                base,
                config: assembled.config,
                gateway: assembled.gateway,
                stop,
                server,
                _watching: watching,
                _state: state_tmp,
            });
        }
        let served = ServedGateway {
            base,
            config: assembled.config,
            gateway: assembled.gateway,
            stop,
            server,
            _watching: watching,
            _state: state_tmp,
        };
        served.wait_ready(Duration::from_secs(10)).await;
        Ok(served)
    }

    async fn wait_ready(&self, within: Duration) {
        let client = reqwest::Client::new();
        let ready = async {
            loop {
                let status = client
                    .get(format!("{}/readyz", self.base))
                    .send()
                    .await
                    .map(|r| r.status());
                if matches!(status, Ok(s) if s.is_success()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(within, ready)
            .await
            .expect("the gateway becomes ready");
    }

    /// The Alertmanager webhook endpoint.
    pub fn prometheus_url(&self) -> String {
        format!("{}/api/v1/signals/prometheus", self.base)
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }
}

/// The router state of a gateway built from `serve` flags as the binary builds it — memory
/// state unless the flags say otherwise, no authentication, its settings source reloadable —
/// for tests that drive the router in process. `source` replaces the settings source the flags
/// name.
pub async fn app_state(
    flags: &[&str],
    source: Option<Arc<gateway::config_source::SettingsSource>>,
) -> AppState {
    let mut argv = vec!["gateway"];
    if !flags
        .iter()
        .any(|f| ["--state", "--state-dir", "--redis-url"].contains(f))
    {
        argv.extend(["--state", "memory"]);
    }
    argv.extend_from_slice(flags);
    let args = Cli::try_parse_from(argv).expect("valid flags").serve;
    let clock: Arc<dyn gateway_ports::Clock> = Arc::new(SystemClock);
    let source = match source {
        Some(source) => source,
        None => {
            gateway::config_source::config_source(&args, clock.clone())
                .await
                .expect("settings load")
                .source
        }
    };
    let assembled = gateway::serve::assemble(&args, clock, source)
        .await
        .expect("gateway builds");
    let control: Arc<dyn ConfigControl> = assembled.config;
    AppState {
        auth: gateway::auth::Auth::none(assembled.gateway.metrics()),
        gateway: assembled.gateway,
        control: Some(control),
    }
}
