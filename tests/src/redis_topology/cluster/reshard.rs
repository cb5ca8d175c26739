//! Resharding: slots moved from one primary to another with their keys, by the protocol of
//! `redis-cli --cluster reshard`, safe while clients write.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;

use super::RedisCluster;
use crate::redis_topology::SETTLE_TIMEOUT;
use crate::redis_topology::node::{connect, run, wait_for};
use crate::redis_topology::slots::SlotMap;

/// How long one [`RedisCluster::move_slots`] may take, keys and agreement included.
const MOVE_TIMEOUT: Duration = Duration::from_secs(120);
/// `MIGRATE`'s own timeout (for the transfer to the target; below [`RESPONSE_TIMEOUT`]).
const MIGRATE_TIMEOUT_MS: u64 = 5000;
/// Keys moved by one `MIGRATE`.
const MIGRATE_BATCH: usize = 100;

impl RedisCluster {
    /// Moves `count` slots of the primary on `from`, with their keys, to the primary on `to`,
    /// and returns them in the order moved: the slots holding the most keys first (ties in slot
    /// order), so empty slots move only when fewer hold keys than `count`. Safe
    /// while clients write: each slot goes through the protocol of `redis-cli --cluster
    /// reshard` (`SETSLOT IMPORTING` on `to`, `MIGRATING` on `from`, `MIGRATE` until `from`
    /// holds none of its keys (a key it lacks is then created on `to`, after `ASK`), `SETSLOT
    /// NODE` on `to`, `from` and the other primaries); a client must follow `MOVED` and `ASK`
    /// and retry `TRYAGAIN` (multi-key commands over a slot half moved). Returns once every live
    /// node says `to` serves the slots. Panics, quoting the logs, on any failure, or after 2 min.
    /// Moving every slot of `from` makes it a replica of `to` (`cluster-allow-replica-migration`).
    pub async fn move_slots(&self, from: u16, to: u16, count: usize) -> Vec<u16> {
        match tokio::time::timeout(MOVE_TIMEOUT, self.try_move_slots(from, to, count)).await {
            Ok(Ok(slots)) => slots,
            Ok(Err(why)) => panic!("{}", self.with_logs(&why)),
            Err(_) => panic!(
                "{}",
                self.with_logs(&format!(
                    "moving {count} slots from 127.0.0.1:{from} to 127.0.0.1:{to} took over \
                     {MOVE_TIMEOUT:?}"
                ))
            ),
        }
    }

    async fn try_move_slots(&self, from: u16, to: u16, count: usize) -> Result<Vec<u16>, String> {
        let primaries = self.primaries().await;
        for port in [from, to] {
            if !primaries.contains(&port) {
                return Err(format!(
                    "127.0.0.1:{port} is no live primary ({primaries:?} are)"
                ));
            }
        }
        if from == to {
            return Err(format!("moving slots from 127.0.0.1:{from} to itself"));
        }
        let (from_id, to_id) = (self.id_of(from), self.id_of(to));
        let mut conns = HashMap::new();
        for &port in &primaries {
            let conn = connect(port, self.password())
                .await
                .map_err(|e| format!("127.0.0.1:{port}: cannot connect: {e}"))?;
            conns.insert(port, conn);
        }
        let conn = |port: u16| {
            conns
                .get(&port)
                .cloned()
                .ok_or_else(|| format!("no connection to {port}"))
        };

        // The slots: those holding the most keys first.
        let owned = SlotMap::parse(
            &run::<Value>(&mut conn(from)?, from, redis::cmd("CLUSTER").arg("SLOTS")).await?,
        )?
        .slots_of(from);
        if owned.len() < count {
            return Err(format!(
                "127.0.0.1:{from} serves {} slots, fewer than the {count} to move",
                owned.len()
            ));
        }
        let mut counting = redis::pipe();
        for slot in &owned {
            counting.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot);
        }
        let counts: Vec<u64> = counting
            .query_async(&mut conn(from)?)
            .await
            .map_err(|e| format!("127.0.0.1:{from}: CLUSTER COUNTKEYSINSLOT: {e}"))?;
        let mut chosen: Vec<(std::cmp::Reverse<u64>, u16)> = owned
            .iter()
            .zip(&counts)
            .map(|(&slot, &keys)| (std::cmp::Reverse(keys), slot))
            .collect();
        chosen.sort_unstable();
        let slots: Vec<u16> = chosen
            .into_iter()
            .take(count)
            .map(|(_, slot)| slot)
            .collect();

        for &slot in &slots {
            let setslot = |state: &str, id: &str| {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
                cmd
            };
            run::<()>(&mut conn(to)?, to, &setslot("IMPORTING", from_id)).await?;
            run::<()>(&mut conn(from)?, from, &setslot("MIGRATING", to_id)).await?;
            loop {
                let keys: Vec<Vec<u8>> = run(
                    &mut conn(from)?,
                    from,
                    redis::cmd("CLUSTER")
                        .arg("GETKEYSINSLOT")
                        .arg(slot)
                        .arg(MIGRATE_BATCH),
                )
                .await?;
                if keys.is_empty() {
                    break;
                }
                let mut migrate = redis::cmd("MIGRATE");
                migrate
                    .arg("127.0.0.1")
                    .arg(to)
                    .arg("")
                    .arg(0)
                    .arg(MIGRATE_TIMEOUT_MS);
                if let Some(password) = self.password() {
                    migrate.arg("AUTH").arg(password);
                }
                migrate.arg("KEYS").arg(&keys);
                // "NOKEY" when they all expired meanwhile; an error (BUSYKEY: the key exists on
                // both sides) is a bug worth failing on.
                run::<Value>(&mut conn(from)?, from, &migrate).await?;
            }
            // The new owner first (it bumps its epoch, so its claim wins), then the old one (its
            // clients are sent on with MOVED from now), then everyone else.
            run::<()>(&mut conn(to)?, to, &setslot("NODE", to_id)).await?;
            run::<()>(&mut conn(from)?, from, &setslot("NODE", to_id)).await?;
            for &port in primaries.iter().filter(|p| **p != from && **p != to) {
                run::<()>(&mut conn(port)?, port, &setslot("NODE", to_id)).await?;
            }
        }

        // Agreement: every live node says `to` serves them.
        let agreed = || async {
            for port in self.live_ports() {
                let map = self.slot_map(port).await?;
                if let Some(slot) = slots.iter().find(|s| map.owner(**s) != Some(to)) {
                    return Err(format!(
                        "127.0.0.1:{port} says slot {slot} is served by {:?}",
                        map.owner(*slot)
                    ));
                }
            }
            Ok(())
        };
        wait_for(
            "every node agreeing on the moved slots",
            SETTLE_TIMEOUT,
            agreed,
        )
        .await?;
        Ok(slots)
    }
}
