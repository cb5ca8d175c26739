//! Real Redis Cluster and Sentinel topologies for the integration tests: Debian's `redis-server`
//! (7.0; `scripts/test-tools.sh` installs it, and `redis-cli` from `redis-tools`) as child
//! processes on loopback ports, not containers, so a test can kill a node and see a failover in a
//! few seconds, or move slots while clients write.
//!
//! The invariants:
//! - every process started here is killed (SIGKILL) and waited for when its topology is dropped,
//!   a panicking test's included; its files (one directory per node: the config, `node.log` with
//!   its stdout and stderr, `nodes.conf`) live in one temporary directory removed after that;
//! - ports are chosen up front (bound on `127.0.0.1:0` all at once, then released), the cluster
//!   bus ports too (`cluster-port`), so no node's port is another's `port + 10000`;
//! - every wait is bounded and panics on expiry saying what it waited for and why it was not so,
//!   with the tail of the log of the node concerned; a startup failure quotes the node's log too
//!   (a start that lost a port to another process is tried again, at most three times);
//! - only the waits poll: every other question is asked once and answers what the nodes say now
//!   (`RedisCluster::query` follows redirections, as a cluster client must).
//!
//! A cluster's nodes notice a dead node after [`NODE_TIMEOUT_MS`] and a replica takes its slots a
//! second or two later; the sentinels consider a master down after [`DOWN_AFTER_MS`]. The
//! password, when one is set, is every data node's `requirepass` and `masterauth` (and the
//! sentinels' `auth-pass`); the sentinels themselves require none, and no URL carries it.

mod cluster;
mod node;
mod process;
mod sentinel;
mod slots;

use std::time::Duration;

pub use cluster::RedisCluster;
pub use sentinel::RedisSentinels;

/// The name the sentinels know the master by (the path of [`RedisSentinels::url`]).
pub const MASTER_NAME: &str = "gateway";
/// `cluster-node-timeout`: how long a cluster node may be silent before the others suspect it.
pub const NODE_TIMEOUT_MS: u64 = 1000;
/// The sentinels' `down-after-milliseconds`.
pub const DOWN_AFTER_MS: u64 = 1000;
/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How long a new topology may take to settle (state ok, replicas in sync, sentinels agreed).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It answers `ROLE` with `master`.
    Primary,
    /// It answers `ROLE` with `slave`, following the primary on port `of`.
    Replica {
        /// The port of the primary it replicates.
        of: u16,
    },
    /// Killed, or not answering.
    Down,
}

/// One cluster node as [`RedisCluster::nodes`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its loopback port.
    pub port: u16,
    /// Its cluster node id (`CLUSTER MYID`, learnt at start; it keeps it for its whole life).
    pub id: String,
    /// What it says it is now.
    pub role: Role,
}
