//! The chaos accounting harness: a known set of alerts sent under load to the real `gateway`
//! binary while faults happen (the process killed or stopped, Redis restarted, the API server
//! failing, the config swapped), then every alert accounted for.
//!
//! - [`process`]: the binary as a child process (`kill -9` is real);
//! - [`alerts`]: the known set (plain, duplicates, a storm, resolved), batched into webhooks;
//! - [`sender`]: Alertmanager-like senders, resending on any non-2xx or broken connection;
//! - [`settings`]: the config files of a run and the swaps of the reload scenario;
//! - [`ledger`]: the accounting (created, aggregated, sampled, rejected, lost);
//! - [`Chaos`]: one run tying them together.

#![allow(clippy::disallowed_methods)] // a harness that waits on and measures real time

pub mod alerts;
pub mod ledger;
pub mod process;
pub mod sender;
pub mod settings;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kubelet::KubeletDir;
use alerts::AlertSet;
use ledger::{Remediations, Tally};
use process::GatewayProcess;
use sender::{Delivery, Load};

/// Longest a whole load may take (every webhook delivered or given up on).
const LOAD_TIMEOUT: Duration = Duration::from_secs(150);

/// Flags every chaos run passes: short deadlines and intervals so that a run takes seconds, a
/// small window capacity so that the storm is sampled.
const COMMON_FLAGS: [&str; 14] = [
    "--auth",
    "none",
    "--shutdown-delay",
    "200ms",
    "--update-interval",
    "500ms",
    "--write-deadline",
    "4s",
    "--kube-timeout",
    "1s",
    "--storm-window-capacity",
    "40",
    "--log-format",
    "json",
];

/// One chaos run: a temporary directory (config, remediations, log), the gateway's flags and
/// port (kept across restarts, so senders need not follow it), and the process while it runs.
#[derive(Debug)]
pub struct Chaos {
    dir: tempfile::TempDir,
    bin: PathBuf,
    flags: Vec<String>,
    port: u16,
    gateway: Option<GatewayProcess>,
    /// The config directory, mounted the kubelet's way.
    pub config: KubeletDir,
}

impl Chaos {
    /// A run of the gateway with the directory sink (`DIR/remediations`) and `extra` flags
    /// (later flags win); the config directory holds [`settings::baseline`].
    pub fn new(extra: &[String]) -> Chaos {
        let mut dir = tempfile::tempdir().expect("temp dir");
        // CHAOS_KEEP=1 keeps the run's directory (log, state, remediations) to look at after.
        if std::env::var_os("CHAOS_KEEP").is_some() {
            dir.disable_cleanup(true);
            println!("  chaos directory kept: {}", dir.path().display());
        }
        let files = settings::baseline();
        let files: Vec<(&str, &str)> = files.iter().map(|(f, c)| (*f, c.as_str())).collect();
        let config = KubeletDir::create(dir.path().join("config"), &files).expect("config dir");
        let mut flags: Vec<String> = COMMON_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        flags.extend([
            "--config-dir".to_owned(),
            path(config.path()),
            "--remediation-dir".to_owned(),
            path(&dir.path().join("remediations")),
            // The embedded state (the default backend), kept across restarts of this run.
            "--state-dir".to_owned(),
            path(&dir.path().join("state")),
        ]);
        flags.extend_from_slice(extra);
        Chaos {
            bin: process::gateway_binary(),
            port: process::free_port(),
            flags,
            gateway: None,
            config,
            dir,
        }
    }

    /// The run's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The gateway's log (every start appends to it).
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }

    /// `http://127.0.0.1:PORT`, the same across restarts.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the gateway and waits until it is ready.
    pub async fn start(&mut self) {
        assert!(self.gateway.is_none(), "the gateway is already running");
        let log = self.log();
        self.gateway = Some(GatewayProcess::start(&self.bin, &self.flags, self.port, &log).await);
    }

    /// `kill -9` the gateway.
    pub fn kill9(&mut self) {
        self.gateway.take().expect("a running gateway").kill9();
    }

    /// SIGTERM the gateway and wait for it to exit; asserts it exits successfully.
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = self
            .gateway
            .take()
            .expect("a running gateway")
            .terminate()
            .await;
        assert!(
            status.success(),
            "the gateway exited with {status} after SIGTERM:\n{}",
            process::tail(&self.log())
        );
        status
    }

    /// Starts sending `set` in the background.
    pub fn send(&self, set: &AlertSet, load: Load) -> Sending {
        let done = Arc::new(AtomicUsize::new(0));
        let total = set.webhooks.len();
        let task = tokio::spawn(sender::send_all(
            self.base(),
            set.clone(),
            load,
            done.clone(),
        ));
        Sending { done, total, task }
    }

    /// Adds flags for the next start (later flags win).
    pub fn add_flags(&mut self, flags: &[String]) {
        self.flags.extend_from_slice(flags);
    }

    /// After the load: waits until every storm window has closed and been written, then stops
    /// the gateway with SIGTERM (which writes whatever is left).
    pub async fn settle(&mut self) {
        tokio::time::sleep(settings::WINDOWS_CLOSED_AFTER).await;
        self.terminate().await;
    }

    /// The RemediationRequests the directory sink wrote.
    pub fn remediations(&self) -> Vec<Value> {
        crate::read_remediations(&self.dir.path().join("remediations"))
    }
}

/// A load under way.
#[derive(Debug)]
pub struct Sending {
    done: Arc<AtomicUsize>,
    total: usize,
    task: tokio::task::JoinHandle<Vec<Delivery>>,
}

impl Sending {
    /// Waits until `fraction` of the webhooks are finished (delivered or given up on).
    pub async fn reached(&self, fraction: f64) {
        let target = ((self.total as f64) * fraction).ceil() as usize;
        let started = Instant::now();
        while self.done.load(Ordering::SeqCst) < target.min(self.total) {
            assert!(
                started.elapsed() < LOAD_TIMEOUT,
                "the load did not reach {fraction} in {LOAD_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for every webhook to finish.
    pub async fn finish(self) -> Vec<Delivery> {
        tokio::time::timeout(LOAD_TIMEOUT, self.task)
            .await
            .expect("the load finishes in time")
            .expect("the senders")
    }
}

/// Accounts for `set`, prints the table row (and every missing alert), and asserts that nothing
/// is lost or left unanswered.
pub fn verdict(scenario: &str, set: &AlertSet, deliveries: &[Delivery], rrs: &[Value]) -> Tally {
    let remediations = Remediations::index(rrs);
    let tally = Tally::account(scenario, set, deliveries, &remediations);
    println!("{}\n{tally}", Tally::HEADER);
    println!(
        "  {} webhooks; {} RemediationRequests, {} storm aggregates",
        tally.webhooks, remediations.total, remediations.storms
    );
    for (reason, n) in &tally.reasons {
        println!("  rejected ×{n}: {reason}");
    }
    for line in &remediations.inconsistent {
        println!("  inconsistent aggregate: {line}");
    }
    for line in tally.missing.iter().take(20) {
        println!("  MISSING {line}");
    }
    assert!(
        remediations.inconsistent.is_empty(),
        "{scenario}: aggregates whose counts do not add up: {:?}",
        remediations.inconsistent
    );
    assert_eq!(
        (tally.lost, tally.unanswered),
        (0, 0),
        "{scenario}: alerts lost or never answered 2xx (first: {:?})",
        tally.missing.first()
    );
    tally
}
