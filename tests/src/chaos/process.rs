//! The `gateway` binary as a child process: started with flags on a fixed loopback port, waited
//! for until `/readyz` answers 200, stopped with SIGTERM (graceful) or SIGKILL (`kill -9`).

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable naming the `gateway` binary (`scripts/test.sh` sets it).
pub const GATEWAY_BIN_ENV: &str = "GATEWAY_BIN";

/// How long a started gateway may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a gateway may take to exit after SIGTERM (shutdown delay, draining, closing windows).
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `gateway` binary: `$GATEWAY_BIN`, else `gateway` next to the test executable
/// (`target/<profile>/gateway`), built there with `$CARGO build -p gateway --bin gateway` (the
/// test's profile) when missing. Panics, saying what to run, when there is none.
pub fn gateway_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os(GATEWAY_BIN_ENV).filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "{GATEWAY_BIN_ENV}={} is no file",
            bin.display()
        );
        return bin;
    }
    // target/<profile>/deps/it-HASH → target/<profile>
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps");
    let bin = profile_dir.join("gateway");
    // One build at a time for the whole test binary; cargo locks the target directory too.
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !bin.is_file() {
        build(profile_dir);
    }
    assert!(bin.is_file(), "no gateway binary at {}", bin.display());
    bin
}

/// `$CARGO build -p gateway --bin gateway` into the target directory holding `profile_dir`.
fn build(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let mut command = Command::new(&cargo);
    command
        .args(["build", "-p", "gateway", "--bin", "gateway"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let status = command.status().unwrap_or_else(|e| {
        panic!(
            "cannot run {} to build the gateway binary ({e}); build it with \
             `cargo build -p gateway --bin gateway` or set {GATEWAY_BIN_ENV}",
            cargo.to_string_lossy()
        )
    });
    assert!(status.success(), "building the gateway binary: {status}");
}

/// A loopback TCP port free right now (the gateway binds it moments later).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// A running `gateway` child process. Dropping it kills the process.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    port: u16,
}

impl GatewayProcess {
    /// Starts `bin` with `flags` and `--listen 127.0.0.1:PORT`, its stdout and stderr appended
    /// to `log`, and waits until `/readyz` answers 200. Panics, quoting the log's tail, when the
    /// process exits first or is not ready within 20 s.
    pub async fn start(bin: &Path, flags: &[String], port: u16, log: &Path) -> GatewayProcess {
        let out = open_log(log);
        let err = out.try_clone().expect("log file handle");
        let child = Command::new(bin)
            .args(flags)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut process = GatewayProcess { child, port };
        process.wait_ready(log).await;
        process
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self, log: &Path) {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.base());
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the gateway exited before it was ready ({status}):\n{}",
                    tail(log)
                );
            }
            let ready = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "the gateway was not ready within {READY_TIMEOUT:?}:\n{}",
                tail(log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the process dies at once, whatever it was doing.
    pub fn kill9(mut self) {
        // `Child::kill` sends SIGKILL on Unix.
        self.child.kill().expect("SIGKILL the gateway");
        self.child.wait().expect("reap the gateway");
    }

    /// SIGTERM, then waits (up to 30 s) for the process to exit; returns its exit status.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the gateway") {
                return status;
            }
            assert!(
                started.elapsed() < EXIT_TIMEOUT,
                "the gateway did not exit within {EXIT_TIMEOUT:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn open_log(log: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()))
}

/// The last 40 lines of the log, for a failure message.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
