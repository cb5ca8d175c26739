//! Which Redis a URL names, and the connection every command goes through: one server
//! (`redis://`, `rediss://`, `redis+unix://`), a Redis Cluster (`redis+cluster://` seeds), or the
//! primary a set of Sentinels names (`redis+sentinel://sentinels/MASTER`).
//!
//! Each uses redis-rs's own client: the auto-reconnecting connection manager for one server and
//! for the primary Sentinel names; the cluster client for a Cluster (it follows `MOVED` and
//! `ASK`, and refreshes its slot map after a failover or a resharding). The health check
//! ([`Target::probe`]) asks what makes each usable: one server answers `PING`; every primary of a
//! Cluster (as `CLUSTER SLOTS` names them, serving every slot) answers `PING`; the server Sentinel named is still a primary (`ROLE`). When it is not,
//! the store drops the connection and asks the Sentinels again ([`Target::follows_primary`]).

use std::time::Duration;

use gateway_ports::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult, Value};

use crate::RedisOptions;
use crate::redaction::redacted;

/// A Cluster's seeds and a Sentinel's port when the URL names none.
const CLUSTER_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;

/// Where the store's state lives, as the URL names it.
pub(crate) enum Target {
    /// One server.
    Single(Client),
    /// A Redis Cluster, reached through any of its seeds.
    Cluster(ClusterClient),
    /// The primary a set of Sentinels names, asked for again after it fails.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// One connection to the [`Target`]; cheap to clone (every clone shares it).
#[derive(Clone)]
pub(crate) enum Connection {
    /// To one server, or to the primary a Sentinel named.
    Single(ConnectionManager),
    /// To a Cluster: a connection per node, each command sent to its slot's primary.
    Cluster(ClusterConnection),
}

fn invalid(url: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        reason: format!("invalid Redis URL {}: {why}", redacted(url)),
        source: None,
    }
}

/// `scheme://[userinfo@]h1:p1,h2:p2[/path][?query][#fragment]` → (scheme, userinfo with its `@`,
/// the hosts, the rest from the first `/`, `?` or `#` on).
fn split_seeds(url: &str) -> Option<(&str, &str, Vec<&str>, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let hosts_start = rest.rfind('@').map_or(0, |at| at + 1);
    let (userinfo, rest) = rest.split_at(hosts_start);
    let hosts_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (hosts, tail) = rest.split_at(hosts_end);
    Some((scheme, userinfo, hosts.split(',').collect(), tail))
}

/// One seed as a URL of one server, parsed by redis-rs (so user-info, `?pass=`, `?protocol=` and
/// `#insecure` mean what they mean for one server); `password` replaces the URL's.
fn seed_info(
    url: &str,
    scheme: &str,
    userinfo: &str,
    host: &str,
    default_port: u16,
    tail: &str,
    password: Option<&str>,
) -> Result<ConnectionInfo, StoreError> {
    if host.is_empty() {
        return Err(invalid(url, "an empty host in the seed list"));
    }
    let host = if host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    };
    let info = format!("{scheme}://{userinfo}{host}{tail}")
        .as_str()
        .into_connection_info()
        .map_err(|e| invalid(url, e))?;
    Ok(match password {
        Some(password) => {
            let settings = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(settings)
        }
        None => info,
    })
}

impl Target {
    /// Reads `options.url`: one server, a Cluster, or a Sentinel set; the password given apart
    /// (`options.password`) replaces any in the URL. Nothing is connected yet.
    pub(crate) fn parse(options: &RedisOptions) -> Result<Target, StoreError> {
        let url = options.url.as_str();
        let password = options.password.as_deref();
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        match scheme {
            "redis+cluster" | "rediss+cluster" => Self::cluster(url, password, options),
            "redis+sentinel" | "rediss+sentinel" => Self::sentinel(url, password),
            _ => {
                let mut info = url.into_connection_info().map_err(|e| invalid(url, e))?;
                if let Some(password) = password {
                    let settings = info.redis_settings().clone().set_password(password);
                    info = info.set_redis_settings(settings);
                }
                Client::open(info)
                    .map(Target::Single)
                    .map_err(|e| invalid(url, e))
            }
        }
    }

    fn cluster(
        url: &str,
        password: Option<&str>,
        options: &RedisOptions,
    ) -> Result<Target, StoreError> {
        let (scheme, userinfo, hosts, tail) =
            split_seeds(url).ok_or_else(|| invalid(url, "no scheme"))?;
        let scheme = scheme.trim_end_matches("+cluster");
        let path = tail.split(['?', '#']).next().unwrap_or("");
        if !matches!(path, "" | "/" | "/0") {
            return Err(invalid(url, "a Redis Cluster has database 0 only"));
        }
        let seeds = hosts
            .iter()
            .map(|host| seed_info(url, scheme, userinfo, host, CLUSTER_PORT, tail, password))
            .collect::<Result<Vec<_>, _>>()?;
        ClusterClientBuilder::new(seeds)
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.command_timeout)
            // A command to a primary that just failed is retried briefly (the client refreshes
            // its slot map meanwhile); the command timeout bounds the whole.
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map(Target::Cluster)
            .map_err(|e| invalid(url, e))
    }

    fn sentinel(url: &str, password: Option<&str>) -> Result<Target, StoreError> {
        let (scheme, userinfo, hosts, tail) =
            split_seeds(url).ok_or_else(|| invalid(url, "no scheme"))?;
        let scheme = scheme.trim_end_matches("+sentinel");
        // `/MASTER` or `/MASTER/DB`, then the query and fragment as for one server.
        let query_at = tail.find(['?', '#']).unwrap_or(tail.len());
        let (path, query) = tail.split_at(query_at);
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let master = parts.next().unwrap_or("");
        if master.is_empty() {
            return Err(invalid(
                url,
                "a Sentinel URL ends with the master's name: redis+sentinel://host:26379/MASTER",
            ));
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse::<i64>()
                .map_err(|_| invalid(url, format!("{db:?} is no database number")))?,
        };
        // The Sentinels take the scheme (TLS or not) and `#insecure`, never the credentials.
        let fragment = query.find('#').map_or("", |at| &query[at..]);
        let sentinels = hosts
            .iter()
            .map(|host| seed_info(url, scheme, "", host, SENTINEL_PORT, fragment, None))
            .collect::<Result<Vec<_>, _>>()?;
        // The primary's credentials: the URL's user-info (or `?pass=`), or the password given
        // apart. The Sentinels themselves are asked without one.
        let primary = seed_info(
            url,
            scheme,
            userinfo,
            "primary",
            CLUSTER_PORT,
            query,
            password,
        )?;
        let settings = primary.redis_settings();
        let mut builder = SentinelClientBuilder::new(
            sentinels.iter().map(|s| s.addr().clone()),
            master,
            SentinelServerType::Master,
        )
        .map_err(|e| invalid(url, e))?
        .set_client_to_redis_db(db)
        .set_client_to_redis_protocol(settings.protocol());
        if let Some(username) = settings.username() {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = settings.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if let ConnectionAddr::TcpTls { insecure, .. } = primary.addr() {
            builder = builder.set_client_to_redis_tls_mode(if *insecure {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            });
        }
        builder
            .build()
            .map(|client| Target::Sentinel(tokio::sync::Mutex::new(client)))
            .map_err(|e| invalid(url, e))
    }

    /// What the target is, for logs: `redis`, `cluster` or `sentinel`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Target::Single(_) => "redis",
            Target::Cluster(_) => "cluster",
            Target::Sentinel(_) => "sentinel",
        }
    }

    /// Whether this is a Redis Cluster (whose keys must share a slot per command).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// Whether a failed health check means asking where the primary is now.
    pub(crate) fn follows_primary(&self) -> bool {
        matches!(self, Target::Sentinel(_))
    }

    /// Connects: to the server, to the Cluster through its seeds, or to the primary the
    /// Sentinels name now (checked to be one).
    pub(crate) async fn connect(&self, options: &RedisOptions) -> RedisResult<Connection> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(1);
        match self {
            Target::Single(client) => ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map(Connection::Single),
            Target::Cluster(client) => client.get_async_connection().await.map(Connection::Cluster),
            Target::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map(Connection::Single)
            }
        }
    }

    /// The health check: `Ok` when the connection can serve every key now.
    pub(crate) async fn probe(&self, connection: &mut Connection) -> Result<(), String> {
        match (self, connection) {
            (Target::Sentinel(_), Connection::Single(manager)) => {
                let role: Vec<Value> = redis::cmd("ROLE")
                    .query_async(manager)
                    .await
                    .map_err(|e| e.to_string())?;
                match role.first() {
                    Some(Value::BulkString(role)) if role == b"master" => Ok(()),
                    _ => Err("the server Sentinel named is no longer the primary".to_owned()),
                }
            }
            (_, Connection::Cluster(cluster)) => {
                // The client's own fan-out skips a node it holds no connection to, so the
                // primaries are asked for (any node's `CLUSTER SLOTS`) and each is pinged.
                let slots: Value = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(cluster)
                    .await
                    .map_err(|e| e.to_string())?;
                for (host, port) in primaries(&slots)? {
                    let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    });
                    cluster
                        .route_command(redis::cmd("PING"), node)
                        .await
                        .map_err(|e| format!("the primary {host}:{port}: {e}"))?;
                }
                Ok(())
            }
            (_, Connection::Single(manager)) => redis::cmd("PING")
                .query_async::<String>(manager)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}

/// The primaries a `CLUSTER SLOTS` answer names, once each; an error unless they serve every
/// slot.
fn primaries(slots: &Value) -> Result<std::collections::BTreeSet<(String, u16)>, String> {
    let unreadable = || format!("an unreadable CLUSTER SLOTS answer: {slots:?}");
    let Value::Array(ranges) = slots else {
        return Err(unreadable());
    };
    let mut primaries = std::collections::BTreeSet::new();
    let mut served = 0;
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(unreadable());
        };
        match fields.as_slice() {
            [
                Value::Int(start),
                Value::Int(end),
                Value::Array(primary),
                ..,
            ] => {
                let (host, port) = match primary.as_slice() {
                    [Value::BulkString(host), Value::Int(port), ..] => (host, port),
                    _ => return Err(unreadable()),
                };
                let port = u16::try_from(*port).map_err(|_| unreadable())?;
                primaries.insert((String::from_utf8_lossy(host).into_owned(), port));
                served += end - start + 1;
            }
            _ => return Err(unreadable()),
        }
    }
    if served == 16384 {
        Ok(primaries)
    } else {
        Err(format!("{served} of the 16384 slots are served"))
    }
}

impl Connection {
    /// `WAIT replicas timeout` on the primary that holds `slot`: how many replicas acknowledged
    /// every write this connection sent it so far.
    pub(crate) async fn wait_for_replicas(
        &mut self,
        slot: u16,
        replicas: u32,
        timeout: Duration,
    ) -> RedisResult<u64> {
        let millis = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(millis);
        match self {
            Connection::Single(manager) => wait.query_async(manager).await,
            Connection::Cluster(cluster) => {
                let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                Ok(redis::from_redis_value(
                    cluster.route_command(wait, node).await?,
                )?)
            }
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Connection::Single(manager) => manager.req_packed_command(cmd),
            Connection::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(manager) => manager.req_packed_commands(cmd, offset, count),
            Connection::Cluster(cluster) => cluster.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(manager) => manager.get_db(),
            Connection::Cluster(cluster) => cluster.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, StoreError> {
        Target::parse(&RedisOptions::new(url))
    }

    #[test]
    fn a_cluster_is_healthy_only_when_its_primaries_serve_every_slot() {
        let range = |start: i64, end: i64, port: i64| {
            Value::Array(vec![
                Value::Int(start),
                Value::Int(end),
                Value::Array(vec![
                    Value::BulkString(b"127.0.0.1".to_vec()),
                    Value::Int(port),
                    Value::BulkString(b"id".to_vec()),
                ]),
                Value::Array(vec![
                    Value::BulkString(b"127.0.0.1".to_vec()),
                    Value::Int(9),
                ]),
            ])
        };
        let all = Value::Array(vec![
            range(0, 5460, 1),
            range(5461, 10922, 2),
            range(10923, 16383, 3),
            range(100, 100, 1),
        ]);
        let found = primaries(&Value::Array(vec![
            range(0, 5460, 1),
            range(5461, 10922, 2),
            range(10923, 16383, 3),
        ]))
        .unwrap();
        assert_eq!(
            found.into_iter().map(|(_, port)| port).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(primaries(&all).unwrap_err().contains("16385 of the 16384"));
        let missing = Value::Array(vec![range(0, 5460, 1)]);
        assert!(
            primaries(&missing)
                .unwrap_err()
                .contains("5461 of the 16384")
        );
        assert!(primaries(&Value::Nil).unwrap_err().contains("unreadable"));
    }

    #[test]
    fn seed_lists_split_into_hosts() {
        let (scheme, userinfo, hosts, tail) =
            split_seeds("redis+cluster://u:p@a:1,b:2,c?protocol=resp3#insecure").unwrap();
        assert_eq!(scheme, "redis+cluster");
        assert_eq!(userinfo, "u:p@");
        assert_eq!(hosts, ["a:1", "b:2", "c"]);
        assert_eq!(tail, "?protocol=resp3#insecure");
    }

    #[test]
    fn each_scheme_names_its_topology() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        for (url, kind) in [
            ("redis://h:6379/0", "redis"),
            ("redis+unix:///run/redis.sock", "redis"),
            ("redis+cluster://a:7000,b:7001,c:7002", "cluster"),
            ("rediss+cluster://:pw@a:7000,b#insecure", "cluster"),
            ("redis+sentinel://a:26379,b:26379/gateway", "sentinel"),
            ("redis+sentinel://:pw@a,b/gateway/2", "sentinel"),
            ("rediss+sentinel://a:26379/gateway#insecure", "sentinel"),
        ] {
            let target = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(target.kind(), kind, "{url}");
        }
    }

    #[test]
    fn a_bad_topology_url_is_refused_naming_what_is_wrong_and_no_password() {
        for (url, why) in [
            ("redis+cluster://:pw@a:1,,b:2", "empty host"),
            ("redis+cluster://:pw@a:1,b:2/3", "database 0 only"),
            ("redis+sentinel://:pw@a:26379", "master's name"),
            (
                "redis+sentinel://:pw@a:26379/gateway/x",
                "no database number",
            ),
            ("redis+cluster://:pw@a:notaport", "invalid Redis URL"),
        ] {
            let Err(err) = parse(url) else {
                panic!("{url} was accepted")
            };
            let err = err.to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains("pw"), "{url}: {err}");
        }
    }
}
