//! The processes: `redis-server` and `redis-cli` found (or a panic saying what installs them),
//! ports chosen, config files written, children started with their output in `node.log`, and
//! killed and waited for on drop; a start tried again when it lost a port.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::node::ask;

/// How long a started process may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a node's log quoted in a panic.
const LOG_TAIL_LINES: usize = 30;
/// Attempts at starting a topology whose ports another process took meanwhile.
const START_ATTEMPTS: usize = 3;

/// Panics, saying what installs it, unless `program --version` runs (checked once per program).
pub(super) fn require(program: &'static str, package: &str) {
    static CHECKED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut checked = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
    if checked.contains(program) {
        return;
    }
    let runs = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        runs,
        "{program} is missing or does not run: the Redis Cluster and Sentinel tests start real \
         Redis processes; run scripts/test-tools.sh (it installs Debian's {package})"
    );
    checked.insert(program);
}

pub(super) fn require_programs() {
    require("redis-server", "redis-server");
    require("redis-cli", "redis-tools");
}

/// `n` distinct loopback ports, free right now: all bound at once, then released.
pub(super) fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
        })
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("a bound port's address: {e}"))
        })
        .collect()
}

/// A config value in double quotes, as `redis.conf` reads them (`\\`, `\"` and `\xHH` escapes).
pub(super) fn quoted(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' | '"' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_ascii_control() => {
                let _ = write!(quoted, "\\x{:02x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The lines every data node's config starts with.
pub(super) fn base_config(port: u16, dir: &Path, password: Option<&str>) -> String {
    let mut config = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         dir {}\n\
         daemonize no\n\
         logfile \"\"\n\
         save \"\"\n\
         appendonly no\n\
         repl-diskless-sync-delay 0\n\
         replica-announce-ip 127.0.0.1\n",
        quoted(&dir.display().to_string())
    );
    if let Some(password) = password {
        let _ = write!(
            config,
            "requirepass {pw}\nmasterauth {pw}\n",
            pw = quoted(password)
        );
    }
    config
}

/// A `redis-server` child process in its own directory. Killed and waited for on drop.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) port: u16,
    dir: PathBuf,
    /// `None` once killed.
    child: Mutex<Option<Child>>,
}

impl Process {
    /// Writes `config` into `dir/redis.conf` (`dir` created) and starts `redis-server` on it
    /// (`--sentinel` for a sentinel), its stdout and stderr in `dir/node.log`.
    pub(super) fn spawn(port: u16, dir: PathBuf, config: &str, sentinel: bool) -> Process {
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let conf = dir.join("redis.conf");
        std::fs::write(&conf, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let log = File::create(dir.join("node.log"))
            .unwrap_or_else(|e| panic!("cannot create {}/node.log: {e}", dir.display()));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("a log file handle: {e}"));
        let mut command = Command::new("redis-server");
        command.arg(&conf);
        if sentinel {
            command.arg("--sentinel");
        }
        let child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): run scripts/test-tools.sh (it installs \
                     Debian's redis-server)"
                )
            });
        Process {
            port,
            dir,
            child: Mutex::new(Some(child)),
        }
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Not killed through this handle (it may have exited by itself: [`Process::exited`]).
    pub(super) fn is_alive(&self) -> bool {
        self.child().is_some()
    }

    /// How it ended, if it exited by itself (a crash, a refused config, a port taken).
    pub(super) fn exited(&self) -> Option<ExitStatus> {
        self.child()
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, then wait for it.
    pub(super) fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// The last lines of its log, headed with its port, for a panic message.
    pub(super) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!(
            "--- last lines of {}/node.log (127.0.0.1:{}) ---\n{tail}",
            self.dir.display(),
            self.port
        )
    }

    /// Waits until it answers `PING` (with `password`), at most [`READY_TIMEOUT`].
    pub(super) async fn wait_ready(&self, password: Option<&str>) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return Err(StartError {
                    port_taken: self.log().contains("Address already in use"),
                    message: format!(
                        "redis-server on 127.0.0.1:{} exited ({status}) at start\n{}",
                        self.port,
                        self.log_tail()
                    ),
                });
            }
            let pong = ask::<String>(self.port, password, &redis::cmd("PING")).await;
            match pong {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(StartError {
                        port_taken: false,
                        message: format!(
                            "redis-server on 127.0.0.1:{} did not answer PING within \
                             {READY_TIMEOUT:?}: {e}\n{}",
                            self.port,
                            self.log_tail()
                        ),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a topology did not start.
#[derive(Debug)]
pub(super) struct StartError {
    message: String,
    /// Another process took one of the ports between choosing and binding: worth another try.
    port_taken: bool,
}

impl StartError {
    /// A failure another try would not mend.
    pub(super) fn new(message: String) -> StartError {
        StartError {
            message,
            port_taken: false,
        }
    }
}

/// `start` until it succeeds, again (new ports) when it lost a port, else panics saying why.
pub(super) async fn start_retrying<T, F, Fut>(what: &str, mut start: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StartError>>,
{
    let mut attempt = 1;
    loop {
        match start().await {
            Ok(started) => return started,
            Err(e) if e.port_taken && attempt < START_ATTEMPTS => attempt += 1,
            Err(e) => panic!("cannot start {what}: {}", e.message),
        }
    }
}

/// Runs `program args` with `env`, at most `timeout`, its output in `log`: `Err` with that output
/// when it fails or takes too long (then it is killed).
pub(super) async fn run_bounded(
    program: &str,
    args: &[String],
    env: &[(&str, &str)],
    log: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("a log file handle: {e}"))?;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => break Err(format!("took over {timeout:?}")),
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => break Err(format!("waiting for it: {e}")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let said = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{program} {}: {status}\n{said}", args.join(" "))),
        Err(why) => Err(format!("{program} {}: {why}\n{said}", args.join(" "))),
    }
}

/// `why`, then the tails of the logs of the live `processes` whose port it names (all live ones
/// when it names none).
pub(super) fn with_logs<'a>(
    why: &str,
    processes: impl Iterator<Item = &'a Process> + Clone,
) -> String {
    let named: Vec<&Process> = processes
        .clone()
        .filter(|p| p.is_alive() && names_port(why, p.port))
        .collect();
    let shown: Vec<&Process> = if named.is_empty() {
        processes.filter(|p| p.is_alive()).collect()
    } else {
        named
    };
    let tails: Vec<String> = shown.iter().map(|p| p.log_tail()).collect();
    format!("{why}\n{}", tails.join("\n"))
}

/// Whether `text` says `127.0.0.1:PORT` (not as the start of a longer port).
fn names_port(text: &str, port: u16) -> bool {
    let address = format!("127.0.0.1:{port}");
    text.match_indices(&address)
        .any(|(at, _)| !text[at + address.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// A self-signed certificate and its key for `localhost`, made by `openssl` in `dir`.
pub(super) fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("redis.crt"), dir.join("redis.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        made,
        "openssl could not make a certificate for the TLS cluster"
    );
    (cert, key)
}

#[cfg(test)]
mod tests {
    use super::{names_port, quoted};

    #[test]
    fn ports_are_named_whole() {
        assert!(names_port("127.0.0.1:4012 is down", 4012));
        assert!(names_port("127.0.0.1:40123 and 127.0.0.1:4012", 4012));
        assert!(!names_port("127.0.0.1:40123 is down", 4012));
    }

    #[test]
    fn config_values_are_quoted() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("a\nb"), r#""a\x0ab""#);
    }
}
