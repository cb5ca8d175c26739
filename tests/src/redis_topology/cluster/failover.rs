//! Failover: a node killed (the slots it served noted first) and the promotion of the replica
//! that takes them over awaited.

use std::time::Duration;

use redis::Value;

use super::RedisCluster;
use crate::redis_topology::Role;
use crate::redis_topology::node::{
    CONNECT_TIMEOUT, RESPONSE_TIMEOUT, connection_info, role_of, wait_for,
};
use crate::redis_topology::slots::SlotMap;

impl RedisCluster {
    /// Kills (SIGKILL) the node on `port` and waits for the process to end. The slots it serves
    /// are read first, for [`RedisCluster::wait_for_promotion`] (a blocking round trip of a
    /// millisecond or so, bounded by the response timeout).
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter()
            .find(|n| n.process.port == port)
            .unwrap_or_else(|| panic!("no node of this cluster on port {port}"));
        assert!(
            node.process.is_alive(),
            "127.0.0.1:{port} is already killed"
        );
        let served = self.slot_map_blocking(port).map(|map| map.slots_of(port));
        node.process.kill();
        self.killed_slots.insert(port, served);
    }

    /// `CLUSTER SLOTS` of the node on `port`, on a blocking connection (for [`RedisCluster::kill`],
    /// which is not async), every step bounded.
    fn slot_map_blocking(&self, port: u16) -> Result<SlotMap, String> {
        let client =
            redis::Client::open(connection_info(port, self.password()).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(RESPONSE_TIMEOUT))
            .and_then(|()| conn.set_write_timeout(Some(RESPONSE_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let value: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        SlotMap::parse(&value)
    }

    /// Waits until one live primary serves every slot the killed `killed` served, in the view of
    /// every live node, and returns its port (the replica that took over). Panics after
    /// `timeout`, or when `killed` served no slots when [`RedisCluster::kill`] killed it.
    pub async fn wait_for_promotion(&self, killed: u16, timeout: Duration) -> u16 {
        let slots = match self.killed_slots.get(&killed) {
            Some(Ok(slots)) if !slots.is_empty() => slots,
            Some(Ok(_)) => panic!("127.0.0.1:{killed} served no slots when killed"),
            Some(Err(e)) => panic!("the slots 127.0.0.1:{killed} served when killed: {e}"),
            None => panic!("127.0.0.1:{killed} was not killed by RedisCluster::kill"),
        };
        let probe = || async {
            let mut heir = None;
            for port in self.live_ports() {
                let map = self.slot_map(port).await?;
                for &slot in slots {
                    let owner = map.owner(slot);
                    if owner == Some(killed)
                        || owner.is_none()
                        || heir.is_some_and(|h| owner != Some(h))
                    {
                        return Err(format!(
                            "127.0.0.1:{port} says slot {slot} is served by {owner:?}"
                        ));
                    }
                    heir = owner;
                }
            }
            let heir = heir.ok_or("no live node")?;
            match role_of(heir, self.password()).await {
                Role::Primary => Ok(heir),
                role => Err(format!("the heir 127.0.0.1:{heir} is {role:?}")),
            }
        };
        wait_for(
            &format!("a replica of 127.0.0.1:{killed} promoted"),
            timeout,
            probe,
        )
        .await
        .unwrap_or_else(|why| panic!("{}", self.with_logs(&why)))
    }
}
