//! A Redis Cluster: created with `redis-cli --cluster create` (plain, with a password, or also
//! over TLS), watched until every node agrees it is ok, keys queried as a cluster client would
//! (following `MOVED` and `ASK`); nodes killed and their replicas' promotion awaited
//! (`failover`), slots moved with their keys under the protocol of `redis-cli --cluster
//! reshard` (`reshard`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, Value};
use tokio::time::Instant;

use super::node::{ask, connect, info_field, replica_in_sync, role_of, wait_for};
use super::process::{
    Process, StartError, base_config, free_ports, require_programs, run_bounded, self_signed,
    start_retrying, with_logs,
};
use super::slots::SlotMap;
use super::{NODE_TIMEOUT_MS, NodeInfo, Role, SETTLE_TIMEOUT};

mod failover;
mod reshard;

/// How long `redis-cli --cluster create` may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`RedisCluster::query`] follows redirections and waits out `TRYAGAIN`/`CLUSTERDOWN`.
const REDIRECT_BUDGET: Duration = Duration::from_secs(5);

/// A Redis Cluster of real `redis-server` processes on loopback: primaries, replicas per
/// primary. Every process is killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    /// In port order; dropped (killed) before `dir` is removed.
    nodes: Vec<ClusterNode>,
    /// The primaries at start, in port order: the seeds of [`RedisCluster::url`].
    seeds: Vec<u16>,
    password: Option<String>,
    /// Each node's TLS port, when the cluster also speaks TLS ([`RedisCluster::start_with_tls`]).
    tls_ports: HashMap<u16, u16>,
    /// The slots each killed node served when it was killed (or why they are unknown), for
    /// [`RedisCluster::wait_for_promotion`].
    killed_slots: HashMap<u16, Result<Vec<u16>, String>>,
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct ClusterNode {
    process: Process,
    id: String,
}

impl RedisCluster {
    /// `primaries` primaries (at least 3, as `redis-cli --cluster create` wants), each with
    /// `replicas_per_primary` replicas; returns once every node says `cluster_state:ok`, agrees
    /// on the slots and every replica is in sync. Panics, quoting the logs, when it cannot.
    pub async fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        Self::start_with(primaries, replicas_per_primary, None, false).await
    }

    /// As [`RedisCluster::start`] (no replicas), every node serving TLS too, on a port of its
    /// own, with a self-signed certificate (made by `openssl`), its cluster bus over TLS
    /// (`tls-cluster yes`): a TLS client is told the TLS ports ([`RedisCluster::tls_url`]). The
    /// plain ports stay, for this support's own commands.
    pub async fn start_with_tls(primaries: usize) -> RedisCluster {
        Self::start_with(primaries, 0, None, true).await
    }

    /// As [`RedisCluster::start`], every node requiring `password` (`requirepass`) and sending
    /// it to its primary (`masterauth`). [`RedisCluster::url`] carries none.
    pub async fn start_with_password(
        primaries: usize,
        replicas_per_primary: usize,
        password: &str,
    ) -> RedisCluster {
        Self::start_with(primaries, replicas_per_primary, Some(password), false).await
    }

    async fn start_with(
        primaries: usize,
        replicas: usize,
        password: Option<&str>,
        tls: bool,
    ) -> RedisCluster {
        assert!(
            primaries >= 3,
            "a Redis Cluster needs at least 3 primaries (asked for {primaries})"
        );
        require_programs();
        let what = format!("a Redis Cluster of {primaries} primaries × {replicas} replicas");
        start_retrying(&what, || {
            Self::try_start(primaries, replicas, password, tls)
        })
        .await
    }

    async fn try_start(
        primaries: usize,
        replicas: usize,
        password: Option<&str>,
        tls: bool,
    ) -> Result<RedisCluster, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("redis-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let count = primaries * (1 + replicas);
        let ports = free_ports(3 * count);
        let (ports, rest) = ports.split_at(count);
        let (bus_ports, tls_ports) = rest.split_at(count);
        let certificate = tls.then(|| self_signed(dir.path()));
        let mut processes = Vec::with_capacity(count);
        for ((&port, &bus), &tls_port) in ports.iter().zip(bus_ports).zip(tls_ports) {
            let node_dir = dir.path().join(format!("node-{port}"));
            let mut config = base_config(port, &node_dir, password);
            if let Some((cert, key)) = &certificate {
                let _ = write!(
                    config,
                    "tls-port {tls_port}\n\
                     tls-cert-file {cert}\n\
                     tls-key-file {key}\n\
                     tls-ca-cert-file {cert}\n\
                     tls-auth-clients no\n\
                     tls-cluster yes\n",
                    cert = cert.display(),
                    key = key.display(),
                );
            }
            let _ = write!(
                config,
                "cluster-enabled yes\n\
                 cluster-config-file nodes.conf\n\
                 cluster-port {bus}\n\
                 cluster-node-timeout {NODE_TIMEOUT_MS}\n\
                 cluster-announce-ip 127.0.0.1\n\
                 cluster-require-full-coverage yes\n\
                 cluster-replica-validity-factor 0\n"
            );
            processes.push(Process::spawn(port, node_dir, &config, false));
        }
        for process in &processes {
            process.wait_ready(password).await?;
        }
        // `--cluster create` makes the first nodes primaries; which replica follows which
        // primary is its choice, read back below.
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let env: Vec<(&str, &str)> = password
            .map(|pw| ("REDISCLI_AUTH", pw))
            .into_iter()
            .collect();
        let create_log = dir.path().join("cluster-create.log");
        if let Err(why) = run_bounded("redis-cli", &args, &env, &create_log, CREATE_TIMEOUT).await {
            let tails: Vec<String> = processes.iter().map(Process::log_tail).collect();
            return Err(StartError::new(format!("{why}\n{}", tails.join("\n"))));
        }
        let mut nodes = Vec::with_capacity(count);
        for process in processes {
            let id = ask::<String>(process.port, password, redis::cmd("CLUSTER").arg("MYID"))
                .await
                .map_err(StartError::new)?;
            nodes.push(ClusterNode { process, id });
        }
        let mut cluster = RedisCluster {
            nodes,
            seeds: Vec::new(),
            password: password.map(str::to_owned),
            tls_ports: if tls {
                ports
                    .iter()
                    .copied()
                    .zip(tls_ports.iter().copied())
                    .collect()
            } else {
                HashMap::new()
            },
            killed_slots: HashMap::new(),
            dir,
        };
        let settled = wait_for("the new cluster settled", SETTLE_TIMEOUT, || {
            cluster.check_started(primaries, replicas)
        })
        .await;
        cluster.seeds = settled.map_err(|why| StartError::new(cluster.with_logs(&why)))?;
        Ok(cluster)
    }

    /// [`RedisCluster::check_ok`], and every node knows every other, `primaries` primaries each
    /// followed by `replicas` replicas: the primaries' ports.
    async fn check_started(&self, primaries: usize, replicas: usize) -> Result<Vec<u16>, String> {
        self.check_ok().await?;
        let total = self.nodes.len().to_string();
        let mut followers: HashMap<u16, usize> = HashMap::new();
        for node in &self.nodes {
            let port = node.process.port;
            let info: String = self.ask(port, redis::cmd("CLUSTER").arg("INFO")).await?;
            if info_field(&info, "cluster_known_nodes") != Some(total.as_str()) {
                return Err(format!(
                    "127.0.0.1:{port} knows {} nodes of {total}",
                    info_field(&info, "cluster_known_nodes").unwrap_or("?")
                ));
            }
            match role_of(port, self.password()).await {
                Role::Primary => {
                    followers.entry(port).or_default();
                }
                Role::Replica { of } => *followers.entry(of).or_default() += 1,
                Role::Down => return Err(format!("127.0.0.1:{port} does not answer ROLE")),
            }
        }
        if followers.len() != primaries || followers.values().any(|n| *n != replicas) {
            return Err(format!(
                "replicas per primary (port → count): {followers:?}, wanted {primaries} \
                 primaries with {replicas} each"
            ));
        }
        let mut seeds: Vec<u16> = followers.into_keys().collect();
        seeds.sort_unstable();
        Ok(seeds)
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,..`: the primaries at start, as seeds (no
    /// password: [`RedisCluster::password`]).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .seeds
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// `rediss+cluster://127.0.0.1:T1,..#insecure`: the seeds' TLS ports (the certificate is
    /// self-signed); `None` unless started [`RedisCluster::start_with_tls`].
    pub fn tls_url(&self) -> Option<String> {
        let seeds: Option<Vec<String>> = self
            .seeds
            .iter()
            .map(|p| self.tls_ports.get(p).map(|t| format!("127.0.0.1:{t}")))
            .collect();
        seeds
            .filter(|seeds| !seeds.is_empty())
            .map(|seeds| format!("rediss+cluster://{}#insecure", seeds.join(",")))
    }

    /// The password every node requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// A connection to the node on `port` alone (authenticated; no redirection followed), every
    /// answer bounded in time. Panics when it cannot connect.
    pub async fn connect(&self, port: u16) -> MultiplexedConnection {
        connect(port, self.password())
            .await
            .unwrap_or_else(|e| panic!("{}", self.with_logs(&format!("127.0.0.1:{port}: {e}"))))
    }

    /// The directory holding every node's directory (`node-PORT/node.log`, `nodes.conf`) and
    /// `cluster-create.log`; removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every node, in port order, with its role now (asked; [`Role::Down`] when killed or not
    /// answering).
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let role = if node.process.is_alive() {
                role_of(node.process.port, self.password()).await
            } else {
                Role::Down
            };
            nodes.push(NodeInfo {
                port: node.process.port,
                id: node.id.clone(),
                role,
            });
        }
        nodes
    }

    /// The live nodes answering `ROLE` with `master`, in port order.
    pub async fn primaries(&self) -> Vec<u16> {
        self.nodes()
            .await
            .into_iter()
            .filter(|n| n.role == Role::Primary)
            .map(|n| n.port)
            .collect()
    }

    /// The port of the primary serving `key`'s slot (`CLUSTER KEYSLOT`), as the first live node
    /// sees the slots now (after [`RedisCluster::wait_until_ok`], as every node does).
    pub async fn primary_for_key(&self, key: &str) -> u16 {
        let port = self.any_live_port();
        let slot: u16 = self
            .ask(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .unwrap_or_else(|e| panic!("{}", self.with_logs(&e)));
        let map = self
            .slot_map(port)
            .await
            .unwrap_or_else(|e| panic!("{}", self.with_logs(&e)));
        map.owner(slot).unwrap_or_else(|| {
            panic!("127.0.0.1:{port} knows no primary for slot {slot} (key {key:?})")
        })
    }

    /// Waits until every live node says `cluster_state:ok`, all agree on who serves which slot,
    /// all 16384 slots are served by live nodes answering `ROLE` with `master`, and every live
    /// replica is in sync. Panics after `timeout`, saying what was not so.
    pub async fn wait_until_ok(&self, timeout: Duration) {
        wait_for("the cluster ok", timeout, || self.check_ok())
            .await
            .unwrap_or_else(|why| panic!("{}", self.with_logs(&why)));
    }

    async fn check_ok(&self) -> Result<SlotMap, String> {
        let live = self.live_ports();
        let mut agreed: Option<(u16, SlotMap)> = None;
        for &port in &live {
            let info: String = self.ask(port, redis::cmd("CLUSTER").arg("INFO")).await?;
            if info_field(&info, "cluster_state") != Some("ok") {
                return Err(format!(
                    "127.0.0.1:{port} says cluster_state:{}",
                    info_field(&info, "cluster_state").unwrap_or("?")
                ));
            }
            let map = self.slot_map(port).await?;
            match &agreed {
                None => agreed = Some((port, map)),
                Some((first, seen)) if *seen != map => {
                    return Err(format!(
                        "127.0.0.1:{port} and 127.0.0.1:{first} disagree on the slots' primaries"
                    ));
                }
                Some(_) => {}
            }
            let replication: String = self
                .ask(port, redis::cmd("INFO").arg("replication"))
                .await?;
            replica_in_sync(port, &replication)?;
        }
        let (_, map) = agreed.ok_or("every node is killed")?;
        if let Some(slot) = map.first_unserved() {
            return Err(format!("slot {slot} is served by no primary"));
        }
        for owner in map.owners() {
            if !live.contains(&owner) {
                return Err(format!("the killed 127.0.0.1:{owner} still serves slots"));
            }
            if role_of(owner, self.password()).await != Role::Primary {
                return Err(format!("127.0.0.1:{owner} serves slots but is no primary"));
            }
        }
        Ok(map)
    }

    /// The number of keys on the live primaries (`DBSIZE` summed).
    pub async fn keys_count(&self) -> usize {
        self.run_on_all_primaries(&["DBSIZE"])
            .await
            .iter()
            .map(|v| {
                redis::from_redis_value_ref::<usize>(v)
                    .unwrap_or_else(|e| panic!("DBSIZE answered {v:?}: {e}"))
            })
            .sum()
    }

    /// `args` (a command and its arguments) on every live primary, in port order: the answers
    /// (e.g. `FLUSHALL`, `INFO commandstats`). Panics when one fails.
    pub async fn run_on_all_primaries(&self, args: &[&str]) -> Vec<Value> {
        let (name, rest) = args.split_first().expect("a command");
        let mut cmd = redis::cmd(name);
        for arg in rest {
            cmd.arg(*arg);
        }
        let mut answers = Vec::new();
        for port in self.primaries().await {
            let answer = self
                .ask(port, &cmd)
                .await
                .unwrap_or_else(|e| panic!("{}", self.with_logs(&e)));
            answers.push(answer);
        }
        answers
    }

    /// `cmd` (about one key) sent to a live node, following `MOVED` and `ASK` as a cluster
    /// client does, and waiting out `TRYAGAIN` and `CLUSTERDOWN`, for at most 5 s: the answer,
    /// or the last error.
    pub async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        let deadline = Instant::now() + REDIRECT_BUDGET;
        let mut port = self.any_live_port();
        let mut asking = false;
        loop {
            let answer = async {
                let mut conn = connect(port, self.password()).await?;
                if asking {
                    let (value,): (Value,) = redis::pipe()
                        .cmd("ASKING")
                        .ignore()
                        .add_command(cmd.clone())
                        .query_async(&mut conn)
                        .await?;
                    Ok(value)
                } else {
                    cmd.query_async::<Value>(&mut conn).await
                }
            }
            .await;
            let Err(error) = answer else {
                return answer;
            };
            if Instant::now() >= deadline {
                return Err(error);
            }
            if let Some((node, _slot)) = error.redirect_node() {
                asking = error.kind() == ErrorKind::Server(ServerErrorKind::Ask);
                port = node
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .ok_or(error)?;
                continue;
            }
            match error.kind() {
                ErrorKind::Server(ServerErrorKind::TryAgain) => {}
                ErrorKind::Server(ServerErrorKind::ClusterDown | ServerErrorKind::MasterDown)
                | ErrorKind::Io => {
                    asking = false;
                    port = self.any_live_port();
                }
                _ => return Err(error),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn id_of(&self, port: u16) -> &str {
        self.nodes
            .iter()
            .find(|n| n.process.port == port)
            .map(|n| n.id.as_str())
            .unwrap_or_else(|| panic!("no node of this cluster on port {port}"))
    }

    /// The ports of the nodes not killed; panics, quoting its log, when one died by itself.
    fn live_ports(&self) -> Vec<u16> {
        for node in &self.nodes {
            if let Some(status) = node.process.exited() {
                panic!(
                    "127.0.0.1:{} exited by itself ({status})\n{}",
                    node.process.port,
                    node.process.log_tail()
                );
            }
        }
        self.nodes
            .iter()
            .filter(|n| n.process.is_alive())
            .map(|n| n.process.port)
            .collect()
    }

    fn any_live_port(&self) -> u16 {
        *self
            .live_ports()
            .first()
            .unwrap_or_else(|| panic!("every node of the cluster is killed"))
    }

    async fn ask<T: FromRedisValue>(&self, port: u16, cmd: &Cmd) -> Result<T, String> {
        ask(port, self.password(), cmd).await
    }

    async fn slot_map(&self, port: u16) -> Result<SlotMap, String> {
        SlotMap::parse(&self.ask(port, redis::cmd("CLUSTER").arg("SLOTS")).await?)
    }

    /// `why`, then the tails of the logs of the live nodes it names (of all live ones when it
    /// names none).
    fn with_logs(&self, why: &str) -> String {
        with_logs(why, self.nodes.iter().map(|n| &n.process))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.process.kill();
        }
    }
}
