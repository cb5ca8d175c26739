//! One primary, its replicas and three sentinels: started in the order the sentinels need
//! (replicas attached before the sentinels first read the primary's `INFO`), watched until every
//! sentinel knows everyone, and a failover awaited until every sentinel names the new master.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::node::{ask, connect, info_field, pairs, replica_in_sync, role_of, wait_for};
use super::process::{
    Process, StartError, base_config, free_ports, quoted, require_programs, start_retrying,
    with_logs,
};
use super::{DOWN_AFTER_MS, MASTER_NAME, Role, SETTLE_TIMEOUT};

/// The sentinels' `failover-timeout`: also how long before a failed failover is tried again
/// (twice this), so it is short.
const FAILOVER_TIMEOUT_MS: u64 = 3000;

/// One Redis primary, its replicas, and three sentinels watching it as [`MASTER_NAME`] (quorum
/// 2), real processes on loopback. Every process is killed on drop.
#[derive(Debug)]
pub struct RedisSentinels {
    /// The primary at start, then its replicas; dropped (killed) before `dir` is removed.
    data: Vec<Process>,
    sentinels: Vec<Process>,
    password: Option<String>,
    dir: tempfile::TempDir,
}

impl RedisSentinels {
    /// A primary with `replicas` replicas and three sentinels; returns once the replicas are in
    /// sync and every sentinel knows them, the two other sentinels, and can reach a quorum
    /// (`SENTINEL CKQUORUM`). Panics, quoting the logs, when it cannot.
    pub async fn start(replicas: usize) -> RedisSentinels {
        Self::start_with(replicas, None).await
    }

    /// As [`RedisSentinels::start`], every data node requiring `password` (`requirepass`,
    /// `masterauth`; the sentinels' `auth-pass`). The sentinels require none.
    pub async fn start_with_password(replicas: usize, password: &str) -> RedisSentinels {
        Self::start_with(replicas, Some(password)).await
    }

    async fn start_with(replicas: usize, password: Option<&str>) -> RedisSentinels {
        require_programs();
        let what = format!("a Redis primary with {replicas} replicas and 3 sentinels");
        start_retrying(&what, || Self::try_start(replicas, password)).await
    }

    async fn try_start(
        replicas: usize,
        password: Option<&str>,
    ) -> Result<RedisSentinels, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("redis-sentinel-")
            .tempdir()
            .unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let ports = free_ports(1 + replicas + 3);
        let (data_ports, sentinel_ports) = ports.split_at(1 + replicas);
        let primary = data_ports[0];
        let mut data = Vec::with_capacity(data_ports.len());
        for &port in data_ports {
            let node_dir = dir.path().join(format!("node-{port}"));
            let mut config = base_config(port, &node_dir, password);
            if port != primary {
                let _ = writeln!(config, "replicaof 127.0.0.1 {primary}");
            }
            data.push(Process::spawn(port, node_dir, &config, false));
        }
        for process in &data {
            process.wait_ready(password).await?;
        }
        let mut topology = RedisSentinels {
            data,
            sentinels: Vec::new(),
            password: password.map(str::to_owned),
            dir,
        };
        // The sentinels start once the replicas are attached: they learn of replicas from the
        // primary's INFO, which they read on connecting and then only every 10 s.
        wait_for("the replicas in sync", SETTLE_TIMEOUT, || {
            topology.check_replication(primary, replicas)
        })
        .await
        .map_err(|why| topology.start_error(&why))?;
        for &port in sentinel_ports {
            let sentinel_dir = topology.dir.path().join(format!("sentinel-{port}"));
            let mut config = format!(
                "port {port}\n\
                 bind 127.0.0.1\n\
                 dir {}\n\
                 daemonize no\n\
                 logfile \"\"\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                quoted(&sentinel_dir.display().to_string())
            );
            if let Some(password) = password {
                let _ = writeln!(
                    config,
                    "sentinel auth-pass {MASTER_NAME} {}",
                    quoted(password)
                );
            }
            topology
                .sentinels
                .push(Process::spawn(port, sentinel_dir, &config, true));
        }
        for sentinel in &topology.sentinels {
            sentinel.wait_ready(None).await?;
        }
        wait_for("the sentinels ready", SETTLE_TIMEOUT, || {
            topology.check_sentinels(primary, replicas)
        })
        .await
        .map_err(|why| topology.start_error(&why))?;
        Ok(topology)
    }

    /// The primary has `replicas` replicas, each in sync.
    async fn check_replication(&self, primary: u16, replicas: usize) -> Result<(), String> {
        let info: String = ask(
            primary,
            self.password(),
            redis::cmd("INFO").arg("replication"),
        )
        .await?;
        let connected = info_field(&info, "connected_slaves").unwrap_or("?");
        if connected != replicas.to_string() {
            return Err(format!(
                "127.0.0.1:{primary} has {connected} replicas of {replicas}"
            ));
        }
        for replica in self.data.iter().filter(|p| p.port != primary) {
            let info: String = ask(
                replica.port,
                self.password(),
                redis::cmd("INFO").arg("replication"),
            )
            .await?;
            replica_in_sync(replica.port, &info)?;
        }
        Ok(())
    }

    /// Every sentinel watches `primary` as master, with `replicas` replicas that are not down,
    /// knows the two other sentinels and can reach a quorum.
    async fn check_sentinels(&self, primary: u16, replicas: usize) -> Result<(), String> {
        for sentinel in &self.sentinels {
            let port = sentinel.port;
            let master = pairs(
                ask::<Vec<String>>(
                    port,
                    None,
                    redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME),
                )
                .await?,
            );
            let field = |name: &str| master.get(name).map_or("?", String::as_str);
            let wanted = [
                ("port", primary.to_string()),
                ("flags", "master".to_owned()),
                ("num-slaves", replicas.to_string()),
                (
                    "num-other-sentinels",
                    (self.sentinels.len() - 1).to_string(),
                ),
            ];
            if let Some((name, value)) = wanted.iter().find(|(name, value)| field(name) != value) {
                return Err(format!(
                    "sentinel 127.0.0.1:{port} says {name} {}, not {value}",
                    field(name)
                ));
            }
            let known: Vec<Vec<String>> = ask(
                port,
                None,
                redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
            )
            .await?;
            for replica in known.into_iter().map(pairs) {
                if replica.get("flags").map(String::as_str) != Some("slave") {
                    return Err(format!(
                        "sentinel 127.0.0.1:{port} says replica {:?} is {:?}",
                        replica.get("port"),
                        replica.get("flags")
                    ));
                }
            }
            ask::<String>(
                port,
                None,
                redis::cmd("SENTINEL").arg("CKQUORUM").arg(MASTER_NAME),
            )
            .await?;
        }
        Ok(())
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/gateway`.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", sentinels.join(","))
    }

    /// The password every data node requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// A connection to the data node or sentinel on `port` (authenticated to a data node), every
    /// answer bounded in time. Panics when it cannot connect.
    pub async fn connect(&self, port: u16) -> MultiplexedConnection {
        connect(port, self.password_of(port))
            .await
            .unwrap_or_else(|e| panic!("{}", self.with_logs(&format!("127.0.0.1:{port}: {e}"))))
    }

    /// The data nodes' ports: the primary at start, then its replicas.
    pub fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(|p| p.port).collect()
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|p| p.port).collect()
    }

    /// The directory holding every node's and sentinel's directory; removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The master's port, as the first live sentinel says now (`SENTINEL
    /// get-master-addr-by-name`).
    pub async fn master_port(&self) -> u16 {
        let sentinel = self
            .sentinels
            .iter()
            .find(|s| s.is_alive())
            .unwrap_or_else(|| panic!("every sentinel is killed"));
        self.master_by(sentinel.port)
            .await
            .unwrap_or_else(|why| panic!("{}", self.with_logs(&why)))
    }

    async fn master_by(&self, sentinel: u16) -> Result<u16, String> {
        let (_, port): (String, u16) = ask(
            sentinel,
            None,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME),
        )
        .await?;
        Ok(port)
    }

    /// Kills (SIGKILL) the data node or sentinel on `port` and waits for the process to end.
    pub fn kill(&mut self, port: u16) {
        let process = self
            .data
            .iter()
            .chain(&self.sentinels)
            .find(|p| p.port == port)
            .unwrap_or_else(|| panic!("no node or sentinel of this set on port {port}"));
        assert!(process.is_alive(), "127.0.0.1:{port} is already killed");
        process.kill();
    }

    /// Waits until every live sentinel names the same master, not `old`, and it answers `ROLE`
    /// with `master`; returns its port. Panics after `timeout`, saying what was not so.
    pub async fn wait_for_new_master(&self, old: u16, timeout: Duration) -> u16 {
        let probe = || async {
            let mut named = None;
            for sentinel in self.sentinels.iter().filter(|s| s.is_alive()) {
                let port = self.master_by(sentinel.port).await?;
                if port == old || named.is_some_and(|n| n != port) {
                    return Err(format!(
                        "sentinel 127.0.0.1:{} names 127.0.0.1:{port} as master",
                        sentinel.port
                    ));
                }
                named = Some(port);
            }
            let port = named.ok_or("every sentinel is killed")?;
            match role_of(port, self.password()).await {
                Role::Primary => Ok(port),
                role => Err(format!("the new master 127.0.0.1:{port} is {role:?}")),
            }
        };
        wait_for(
            &format!("a new master instead of 127.0.0.1:{old}"),
            timeout,
            probe,
        )
        .await
        .unwrap_or_else(|why| panic!("{}", self.with_logs(&why)))
    }

    /// The password the process on `port` requires: the data nodes', none for a sentinel.
    fn password_of(&self, port: u16) -> Option<&str> {
        if self.sentinels.iter().any(|s| s.port == port) {
            None
        } else {
            self.password()
        }
    }

    fn start_error(&self, why: &str) -> StartError {
        StartError::new(self.with_logs(why))
    }

    fn with_logs(&self, why: &str) -> String {
        with_logs(why, self.data.iter().chain(&self.sentinels))
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        for process in self.data.iter().chain(&self.sentinels) {
            process.kill();
        }
    }
}
