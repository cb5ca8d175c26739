//! The server's bounds over a real socket: shutdown ends within `--shutdown-timeout` whatever
//! the connections do, and a background round that panics is survived and seen by `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use gateway::cli::Cli;
use gateway::gateway::{Gateway, Parts, StormStores, WriteTiming};
use gateway::http::AppState;
use gateway::metrics::Metrics;
use gateway_adapter_directory::DirectoryWriter;
use gateway_adapter_memory::{
    MemoryDedupStore, MemoryStormCounter, MemoryWindowStore, StaticConfigSource, SystemClock,
};
use gateway_ports::settings::{DedupSettings, RetrySettings, SecuritySettings, StormSettings};
use gateway_ports::{ChangeListener, Clock, ConfigKind, ConfigSource};
use gateway_storm::WindowCapacity;
use gateway_tests::{SAMPLE_WEBHOOK, TestGateway};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn args(extra: &[&str]) -> gateway::cli::ServeArgs {
    let mut argv = vec!["gateway"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap().serve
}

/// `serve` on loopback until the sender fires: its base URL, the trigger and the server task.
async fn serve(
    state: AppState,
    flags: &[&str],
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve_args = args(flags);
    let server = tokio::spawn(async move {
        gateway::serve::serve(state, listener, &serve_args, async {
            let _ = stopped.await;
        })
        .await
    });
    (base, stop, server)
}

/// Idle keep-alive connections: a pooled client after one request, and a socket that never
/// sent a byte.
async fn idle_connections(base: &str) -> (reqwest::Client, TcpStream) {
    let pooled = reqwest::Client::new();
    assert_eq!(
        pooled
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let silent = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    (pooled, silent)
}

/// Fires the stop and waits for `serve` to return cleanly (5 s at most): how long it took.
async fn stop_and_time(
    stop: tokio::sync::oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
) -> Duration {
    let began = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns within 5 s")
        .unwrap()
        .unwrap();
    let took = began.elapsed();
    println!("stopped after {took:?}");
    took
}

fn post_webhook(base: &str) -> JoinHandle<reqwest::Result<reqwest::StatusCode>> {
    let url = format!("{base}/api/v1/signals/prometheus");
    tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(SAMPLE_WEBHOOK)
            .send()
            .await
            .map(|r| r.status())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_idle_connections_and_a_slow_request_ends_within_the_timeout() {
    let gw = TestGateway::new();
    // Slower than the bound: the request's writes wait for the write deadline (8 s).
    gw.faults.delay(Duration::from_secs(20));
    let (base, stop, server) = serve(
        gw.state(),
        &["--shutdown-delay", "300ms", "--shutdown-timeout", "2s"],
    )
    .await;
    let _idle = idle_connections(&base).await;
    let slow = post_webhook(&base);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let took = stop_and_time(stop, server).await;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2600),
        "stopped after {took:?}"
    );
    // The abandoned request's connection is closed: no 2xx was ever promised.
    let answer = slow.await.unwrap();
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_hold_shutdown_and_in_flight_requests_are_answered() {
    let gw = TestGateway::new();
    gw.faults.delay(Duration::from_millis(800));
    let (base, stop, server) = serve(
        gw.state(),
        &[
            "--shutdown-delay",
            "0s",
            "--shutdown-timeout",
            "10s",
            "--header-read-timeout",
            "30s",
        ],
    )
    .await;
    let (_pooled, mut silent) = idle_connections(&base).await;
    let in_flight = post_webhook(&base);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let took = stop_and_time(stop, server).await;
    // The webhook's writes end about 1.4 s after the stop; the idle connections, which
    // could stay 30 s (their header-read timeout), were closed at once.
    assert!(took < Duration::from_secs(3), "stopped after {took:?}");
    assert_eq!(in_flight.await.unwrap().unwrap(), 201);
    let mut buf = [0u8; 16];
    let read = tokio::io::AsyncReadExt::read(&mut silent, &mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "the idle socket is closed");
    let _ = silent.shutdown().await;
}

/// Settings from a real source, with a switch that makes every read panic.
#[derive(Debug)]
struct PanickingConfig {
    inner: StaticConfigSource,
    panicking: AtomicBool,
}

impl PanickingConfig {
    fn check(&self) {
        assert!(
            !self.panicking.load(Ordering::SeqCst),
            "injected: the settings read panics"
        );
    }
}

impl ConfigSource for PanickingConfig {
    fn storm(&self) -> Arc<StormSettings> {
        self.check();
        self.inner.storm()
    }
    fn dedup(&self) -> Arc<DedupSettings> {
        self.check();
        self.inner.dedup()
    }
    fn retry(&self) -> Arc<RetrySettings> {
        self.check();
        self.inner.retry()
    }
    fn security(&self) -> Arc<SecuritySettings> {
        self.check();
        self.inner.security()
    }
    fn generation(&self, kind: ConfigKind) -> u64 {
        self.inner.generation(kind)
    }
    fn on_change(&self, listener: ChangeListener) {
        self.inner.on_change(listener);
    }
}

async fn readyz(base: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn restarts(gateway: &Gateway) -> u64 {
    gateway
        .metrics_text()
        .lines()
        .find_map(|l| {
            l.strip_prefix("gateway_ticker_restarts_total ")?
                .parse()
                .ok()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_round_is_restarted_counted_and_fails_readiness_until_one_completes() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(PanickingConfig {
        inner: StaticConfigSource::default(),
        panicking: AtomicBool::new(false),
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = Arc::new(Gateway::new(Parts {
        config: config.clone(),
        clock: clock.clone(),
        dedup_store: Arc::new(MemoryDedupStore::new(1000.try_into().unwrap())),
        writer: Arc::new(DirectoryWriter::new(dir.path()).unwrap()),
        storms: StormStores {
            counter: Arc::new(MemoryStormCounter::default()),
            windows: Arc::new(MemoryWindowStore::new(clock)),
            capacity: WindowCapacity::default(),
            max_buffer_bytes: gateway_storm::StormDetector::DEFAULT_MAX_BUFFER_BYTES,
            shared: false,
        },
        outbox: Arc::new(gateway_adapter_memory::MemoryOutbox::default()),
        max_dead_letters: 10,
        limits: gateway::input_limits::InputLimits::default(),
        metrics: Metrics::new(),
        fallback_namespace: "kubernaut-system".to_owned(),
        timing: WriteTiming::default(),
    }));
    let state = AppState {
        gateway: gateway.clone(),
        control: None,
        auth: gateway::auth::Auth::none(gateway.metrics()),
    };
    let (base, stop, server) = serve(
        state,
        &["--shutdown-delay", "0s", "--ticker-stall-timeout", "5s"],
    )
    .await;
    assert_eq!(readyz(&base).await.0, 200);

    config.panicking.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = readyz(&base).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("panicked"), "{body}");
    let counted = restarts(&gateway);
    assert!(
        counted >= 2,
        "{counted} restarts: the ticker goes on after a panic"
    );

    config.panicking.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = readyz(&base).await;
    assert_eq!(status, 200, "ready again once a round completes: {body}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
