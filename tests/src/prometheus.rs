//! The real Prometheus (Debian's `prometheus` package, installed by `scripts/test-tools.sh`) as a
//! child process on a loopback port, its storage in a directory the caller gives, killed on drop;
//! and `promtool`, from the same package.
//!
//! Both are looked up the same way: an environment variable naming the program, else the
//! Debian path or `PATH`. A test that needs one skips (saying so on stderr) when it is missing,
//! except under CI (`CI` set), where a missing program fails the test: CI installs both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::chaos::process::free_port;

/// True under CI (`CI` set, as every CI service sets it): a missing tool fails, never skips.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `$env`, else `default`, if it runs `--version`; else `None` with a note on stderr saying what
/// was not tested, or a panic under CI.
fn tool(env: &str, default: &str, skipped: &str) -> Option<PathBuf> {
    let program = std::env::var_os(env)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    let runs = Command::new(&program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if runs {
        return Some(program);
    }
    let missing = format!(
        "{} is missing or does not run: install Debian's `prometheus` package \
         (scripts/test-tools.sh does) or set {env}",
        program.display()
    );
    assert!(!under_ci(), "{missing} (CI is set: nothing may be skipped)");
    eprintln!("{missing}: {skipped} was not tested");
    None
}

/// Prometheus: `$GATEWAY_TEST_PROMETHEUS`, else `/usr/bin/prometheus`; `None` when missing
/// (a panic under CI).
pub fn binary(skipped: &str) -> Option<PathBuf> {
    tool("GATEWAY_TEST_PROMETHEUS", "/usr/bin/prometheus", skipped)
}

/// promtool: `$GATEWAY_TEST_PROMTOOL`, else `promtool` on `PATH`; `None` when missing (a panic
/// under CI).
pub fn promtool(skipped: &str) -> Option<PathBuf> {
    tool("GATEWAY_TEST_PROMTOOL", "promtool", skipped)
}

/// `promtool check metrics` on `text` (the Prometheus text format): `Err` with what it said
/// when it finds a problem.
pub fn check_metrics(promtool: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", promtool.display()))?;
    // Dropped at the end of the statement: promtool reads to the end of its input.
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| format!("writing to promtool: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for promtool: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool check metrics: {}\n{said}", out.status))
    }
}

/// A Prometheus process, killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts `binary` with `config`, its TSDB in `storage`, its stderr (where it logs) in
    /// `log`, listening on a free loopback port.
    pub fn start(binary: &Path, config: &Path, storage: &Path, log: PathBuf) -> Prometheus {
        let port = free_port();
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            // Its relative defaults (the query log, consoles) land in the test's directory.
            .current_dir(storage)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Prometheus {
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

    /// Waits until `/-/ready` answers 2xx, at most `within`; panics with its log otherwise.
    pub async fn wait_ready(&mut self, client: &reqwest::Client, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Prometheus exited ({status}):\n{}", self.log());
            }
            let ready = client
                .get(format!("{}/-/ready", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus was not ready within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An instant query (`/api/v1/query`): the result's samples, or why there are none.
    pub async fn query(&self, client: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let answer: Value = client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("query {expr}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("query {expr}: {e}"))?;
        if answer["status"] != "success" {
            return Err(format!("query {expr}: {answer}"));
        }
        answer["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("query {expr}: no result vector in {answer}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
