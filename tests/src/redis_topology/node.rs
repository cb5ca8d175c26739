//! Talking to one node: a fresh connection per question, every connection and answer bounded in
//! time, errors as text naming the node; the answers the topologies read (`ROLE`, `INFO`
//! fields, flat field lists); and the bounded wait every topology's waits are made of.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo,
    RedisConnectionInfo, RedisResult, Value,
};
use tokio::time::Instant;

use super::Role;

/// Connecting to one node.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// One command's answer (`MIGRATE` of a batch included).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Between two probes of a wait.
const POLL: Duration = Duration::from_millis(100);

pub(super) fn connection_info(port: u16, password: Option<&str>) -> RedisResult<ConnectionInfo> {
    let info = ConnectionAddr::Tcp("127.0.0.1".to_owned(), port).into_connection_info()?;
    let mut settings = RedisConnectionInfo::default();
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    Ok(info.set_redis_settings(settings))
}

/// A connection to the node on `port`, its connection and every answer bounded in time.
pub(super) async fn connect(
    port: u16,
    password: Option<&str>,
) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    redis::Client::open(connection_info(port, password)?)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// `cmd` on a fresh connection to the node on `port`; the error names both.
pub(super) async fn ask<T: FromRedisValue>(
    port: u16,
    password: Option<&str>,
    cmd: &Cmd,
) -> Result<T, String> {
    let mut conn = connect(port, password)
        .await
        .map_err(|e| format!("127.0.0.1:{port}: cannot connect: {e}"))?;
    run(&mut conn, port, cmd).await
}

/// `cmd` on `conn` (to the node on `port`); the error names both.
pub(super) async fn run<T: FromRedisValue>(
    conn: &mut MultiplexedConnection,
    port: u16,
    cmd: &Cmd,
) -> Result<T, String> {
    cmd.query_async(conn)
        .await
        .map_err(|e| format!("127.0.0.1:{port}: {}: {e}", command_name(cmd)))
}

/// The first words of `cmd`, for error messages (never a password: `AUTH` stops it).
pub(super) fn command_name(cmd: &Cmd) -> String {
    let words: Vec<String> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .take_while(|w| !w.eq_ignore_ascii_case("AUTH"))
        .take(3)
        .collect();
    words.join(" ")
}

/// What the node on `port` answers to `ROLE`; [`Role::Down`] when it does not answer.
pub(super) async fn role_of(port: u16, password: Option<&str>) -> Role {
    match ask::<Value>(port, password, &redis::cmd("ROLE")).await {
        Ok(value) => parse_role(&value).unwrap_or(Role::Down),
        Err(_) => Role::Down,
    }
}

/// `ROLE`'s answer: `["master", offset, replicas]` or `["slave", ip, port, state, offset]`.
pub(super) fn parse_role(value: &Value) -> Option<Role> {
    let Value::Array(items) = value else {
        return None;
    };
    let kind: String = redis::from_redis_value_ref(items.first()?).ok()?;
    match kind.as_str() {
        "master" => Some(Role::Primary),
        "slave" => {
            let of: u16 = redis::from_redis_value_ref(items.get(2)?).ok()?;
            Some(Role::Replica { of })
        }
        _ => None,
    }
}

/// `INFO`-style `field:value` lines → the value of `field`.
pub(super) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.trim()
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

/// A replica's link to its primary is up and no full sync is under way; `Ok` for a primary.
pub(super) fn replica_in_sync(port: u16, replication: &str) -> Result<(), String> {
    if info_field(replication, "role") != Some("slave") {
        return Ok(());
    }
    let link = info_field(replication, "master_link_status");
    let syncing = info_field(replication, "master_sync_in_progress");
    if link == Some("up") && syncing == Some("0") {
        Ok(())
    } else {
        Err(format!(
            "replica 127.0.0.1:{port} is not in sync with 127.0.0.1:{} \
             (master_link_status:{}, master_sync_in_progress:{})",
            info_field(replication, "master_port").unwrap_or("?"),
            link.unwrap_or("?"),
            syncing.unwrap_or("?")
        ))
    }
}

/// Probes until `probe` is `Ok`, at most `timeout`: `Err` with what it last said otherwise.
pub(super) async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(done) => return Ok(done),
            Err(why) if Instant::now() >= deadline => {
                return Err(format!("{what}: not so within {timeout:?}: {why}"));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// A flat `[field, value, field, value, ..]` answer as a map.
pub(super) fn pairs(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut items = flat.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        map.insert(field, value);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_role_answers() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let primary = Value::Array(vec![bulk("master"), Value::Int(0), Value::Array(vec![])]);
        assert_eq!(parse_role(&primary), Some(Role::Primary));
        let replica = Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            Value::Int(7001),
            bulk("connected"),
            Value::Int(0),
        ]);
        assert_eq!(parse_role(&replica), Some(Role::Replica { of: 7001 }));
    }

    #[test]
    fn info_fields_and_flat_lists_are_read() {
        let info = "# Replication\r\nrole:slave\r\nmaster_port:7001\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_port"), Some("7001"));
        assert_eq!(info_field(info, "master"), None);
        let map = pairs(vec!["a".into(), "1".into(), "b".into(), "2".into()]);
        assert_eq!(map.get("b").map(String::as_str), Some("2"));
    }
}
