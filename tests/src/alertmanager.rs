//! The real Alertmanager (Debian's `prometheus-alertmanager`, 0.25+, installed by
//! `scripts/test-tools.sh`) as a child process on a loopback port, a cluster of one, killed on
//! drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::chaos::process::free_port;

/// The binary: `$GATEWAY_TEST_ALERTMANAGER`, else `/usr/bin/prometheus-alertmanager`. Panics,
/// saying what to install, when it is missing.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("GATEWAY_TEST_ALERTMANAGER").map_or_else(
        || PathBuf::from("/usr/bin/prometheus-alertmanager"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run scripts/test-tools.sh (it installs Debian's prometheus-alertmanager)",
        path.display()
    );
    path
}

/// An Alertmanager process, killed on drop.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Alertmanager {
    /// Starts [`binary`] with `config`, its data in `storage`, its stderr (where it logs) in
    /// `log`, on a free loopback port; no gossip.
    pub fn start(config: &Path, storage: &Path, log: PathBuf) -> Alertmanager {
        let port = free_port();
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip: a cluster of one.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Alertmanager: {e}"));
        Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file it logs to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits (at most 10 s) until `/-/ready` answers 2xx; panics with its log otherwise.
    pub async fn wait_ready(&self, client: &reqwest::Client) {
        for _ in 0..200 {
            let ready = client
                .get(format!("{}/-/ready", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Alertmanager did not become ready:\n{}", self.log());
    }

    /// `alertmanager_notifications{,_failed}_total` of the webhook integration.
    pub async fn webhook_notifications(&self, client: &reqwest::Client) -> (f64, f64) {
        let text = client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("Alertmanager's /metrics: {e}\n{}", self.log()))
            .text()
            .await
            .unwrap_or_else(|e| panic!("Alertmanager's /metrics: {e}"));
        let value = |name: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .filter(|l| l.contains("integration=\"webhook\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            value("alertmanager_notifications_total"),
            value("alertmanager_notifications_failed_total"),
        )
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
