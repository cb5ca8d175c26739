//! Composition root: builds the adapters named by the static settings, wires them into the
//! pipeline and runs the server until SIGTERM.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gateway_adapter_directory::DirectoryWriter;
use gateway_adapter_memory::{MemoryDedupStore, SystemClock};
use gateway_ports::{Clock, ConfigSource, DedupStore, RemediationWriter};
use gateway_storm::{StormDetector, WindowCapacity};
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::pipeline::{Gateway, Parts};

/// How often storm windows are checked for inactivity and queued writes retried.
pub const TICK: Duration = Duration::from_secs(1);

/// Loads the settings and builds the embedded-default gateway (in-memory dedup, directory sink).
pub fn build(args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Gateway>> {
    let loaded = gateway_adapter_file_config::load_dir(&args.config_dir)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config: Arc<dyn ConfigSource> = Arc::new(loaded.into_source());
    let capacity =
        NonZeroUsize::new(args.dedup_capacity).context("--dedup-capacity must be at least 1")?;
    let dedup_store: Arc<dyn DedupStore> = Arc::new(MemoryDedupStore::new(capacity));
    let writer: Arc<dyn RemediationWriter> = Arc::new(
        DirectoryWriter::new(&args.remediation_dir).with_context(|| {
            format!(
                "cannot create remediation directory {}",
                args.remediation_dir.display()
            )
        })?,
    );
    let window_capacity = WindowCapacity::new(args.storm_window_capacity)
        .context("--storm-window-capacity must be at least 1")?;
    tracing::info!(
        dedup = "in-memory", sink = "directory", remediation_dir = %args.remediation_dir.display(),
        config_dir = %args.config_dir.display(), "gateway assembled on embedded defaults");
    Ok(Arc::new(Gateway::new(Parts {
        config,
        clock,
        dedup_store,
        writer,
        storms: StormDetector::new(window_capacity),
        metrics: Metrics::new(),
        fallback_namespace: args.fallback_namespace.clone(),
    })))
}

/// Runs the gateway until `shutdown` resolves: then readiness fails, after `shutdown_delay` the
/// listener stops taking connections, in-flight requests finish, and storm windows are written.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    args: &ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(
        AppState {
            gateway: gateway.clone(),
        },
        args.max_body_bytes,
    );
    let ticker = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                gateway.tick().await;
            }
        })
    };
    let delay = args.shutdown_delay;
    let draining = gateway.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!(
            ?delay,
            "shutdown requested: readiness now fails; closing the listener after the delay"
        );
        draining.stop_accepting();
        tokio::time::sleep(delay).await;
    };
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    gateway.metrics().ready.set(1);
    axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .await
        .context("HTTP server failed")?;
    ticker.abort();
    gateway.drain().await;
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

/// `gateway serve`: logs, builds, binds and serves.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let gateway = build(&args, Arc::new(SystemClock))?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    serve(gateway, listener, &args, shutdown_signal()).await
}
