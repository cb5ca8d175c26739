//! The Redis Cluster and Sentinel test support itself (`gateway_tests::redis_topology`), on real
//! `redis-server` processes: a cluster starts, routes a key, fails over when a primary is killed,
//! and moves slots with their keys while a client writes; a sentinel set elects a new master when
//! its master is killed. Failover durations are printed (`--nocapture` shows them).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway_tests::redis_topology::{RedisCluster, RedisSentinels, Role};
use redis::Value;

/// `GET key` through the cluster (following redirections): the string, if any.
async fn get(cluster: &RedisCluster, key: &str) -> Option<String> {
    let value = cluster.query(redis::cmd("GET").arg(key)).await.unwrap();
    redis::from_redis_value(value).unwrap()
}

/// `SET key value` through the cluster (following redirections).
async fn set(cluster: &RedisCluster, key: &str, value: &str) {
    let answer = cluster
        .query(redis::cmd("SET").arg(key).arg(value))
        .await
        .unwrap_or_else(|e| panic!("SET {key}: {e}"));
    assert_eq!(answer, Value::Okay, "SET {key}");
}

/// `cmd` on `conn`, a connection to one node (redirections not followed).
async fn on_node<T: redis::FromRedisValue>(
    mut conn: redis::aio::MultiplexedConnection,
    cmd: &redis::Cmd,
) -> T {
    cmd.query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// A password with what a config file and a URL must escape.
const PASSWORD: &str = "s3 cr\"e\\t:@/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_routes_keys_and_promotes_a_replica_when_a_primary_dies() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start_with_password(3, 1, PASSWORD).await;
    eprintln!("3×1 cluster started in {:?}", started.elapsed());

    let url = cluster.url();
    assert!(url.starts_with("redis+cluster://127.0.0.1:"), "{url}");
    assert_eq!(url.matches(',').count(), 2, "three seeds: {url}");
    let nodes = cluster.nodes().await;
    assert_eq!(nodes.len(), 6);
    let primaries: BTreeSet<u16> = nodes
        .iter()
        .filter(|n| n.role == Role::Primary)
        .map(|n| n.port)
        .collect();
    assert_eq!(primaries.len(), 3, "{nodes:?}");
    let followed: BTreeSet<u16> = nodes
        .iter()
        .filter_map(|n| match n.role {
            Role::Replica { of } => Some(of),
            _ => None,
        })
        .collect();
    assert_eq!(followed, primaries, "one replica per primary: {nodes:?}");
    for primary in &primaries {
        assert!(url.contains(&format!("127.0.0.1:{primary}")), "{url}");
    }

    set(&cluster, "alert:1", "firing").await;
    assert_eq!(get(&cluster, "alert:1").await.as_deref(), Some("firing"));
    let owner = cluster.primary_for_key("alert:1").await;
    let direct: Option<String> = on_node(
        cluster.connect(owner).await,
        redis::cmd("GET").arg("alert:1"),
    )
    .await;
    assert_eq!(
        direct.as_deref(),
        Some("firing"),
        "the key lives on its slot's primary"
    );
    // Acknowledged by the replica before the primary dies (replication is asynchronous).
    let acked: i64 = on_node(
        cluster.connect(owner).await,
        redis::cmd("WAIT").arg(1).arg(2000),
    )
    .await;
    assert_eq!(acked, 1);
    assert_eq!(cluster.keys_count().await, 1);

    cluster.kill(owner);
    let killed_at = Instant::now();
    let heir = cluster
        .wait_for_promotion(owner, Duration::from_secs(10))
        .await;
    let promoted_after = killed_at.elapsed();
    cluster.wait_until_ok(Duration::from_secs(10)).await;
    eprintln!(
        "cluster failover: 127.0.0.1:{owner} killed, 127.0.0.1:{heir} promoted after \
         {promoted_after:?}, cluster_state ok everywhere after {:?}",
        killed_at.elapsed()
    );
    assert_ne!(heir, owner);
    assert_eq!(cluster.primary_for_key("alert:1").await, heir);
    assert_eq!(get(&cluster, "alert:1").await.as_deref(), Some("firing"));
    let roles: Vec<(u16, Role)> = cluster
        .nodes()
        .await
        .iter()
        .map(|n| (n.port, n.role))
        .collect();
    assert!(roles.contains(&(owner, Role::Down)), "{roles:?}");
    assert!(roles.contains(&(heir, Role::Primary)), "{roles:?}");
    assert_eq!(cluster.primaries().await.len(), 3);
    assert_eq!(cluster.run_on_all_primaries(&["PING"]).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_moves_slots_with_their_keys_while_a_client_writes() {
    const KEYS: usize = 1000;
    const HOT: usize = 5000;
    const MOVED: usize = 100;
    let started = Instant::now();
    let cluster = RedisCluster::start(3, 0).await;
    eprintln!("3×0 cluster started in {:?}", started.elapsed());
    let keyslot = |key: String| {
        let cluster = &cluster;
        async move {
            let slot = cluster
                .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
                .await
                .unwrap();
            redis::from_redis_value::<u16>(slot).unwrap()
        }
    };
    // Keys spread over the slots, and a hot slot holding many: the first to move, slowly
    // enough (a batch of keys per MIGRATE) for the client's writes to land while it moves.
    let mut slot_of = HashMap::new();
    for i in 0..KEYS {
        set(&cluster, &format!("k{i}"), &format!("v{i}")).await;
        slot_of.insert(i, keyslot(format!("k{i}")).await);
    }
    let mut hot = redis::cmd("MSET");
    for i in 0..HOT {
        hot.arg(format!("{{hot}}:{i}")).arg(format!("h{i}"));
    }
    assert_eq!(cluster.query(&hot).await.unwrap(), Value::Okay);
    assert_eq!(cluster.keys_count().await, KEYS + HOT);
    let hot_slot = keyslot("{hot}".to_owned()).await;
    let from = cluster.primary_for_key("{hot}").await;
    let to = *cluster
        .primaries()
        .await
        .iter()
        .find(|p| **p != from)
        .unwrap();

    // A client writing new keys in the hot slot, and rewriting old ones, all the while: a new
    // key is created on the new owner (after ASK) once the slot is half moved; an old one is
    // written where it is (its old owner, or after ASK its new one).
    let moving = AtomicBool::new(true);
    let writer = async {
        let mut written = 0_usize;
        while moving.load(Ordering::SeqCst) {
            set(
                &cluster,
                &format!("{{hot}}:w{written}"),
                &format!("x{written}"),
            )
            .await;
            let old = written * 7 % HOT;
            set(&cluster, &format!("{{hot}}:{old}"), &format!("h{old}")).await;
            written += 1;
        }
        written
    };
    let mover = async {
        let began = Instant::now();
        let slots = cluster.move_slots(from, to, MOVED).await;
        let took = began.elapsed();
        moving.store(false, Ordering::SeqCst);
        (slots, took)
    };
    let ((slots, took), written) = futures::join!(mover, writer);
    let asking = asking_calls(&cluster, to).await;
    eprintln!(
        "moved {} slots from 127.0.0.1:{from} to 127.0.0.1:{to} in {took:?} while a client \
         wrote {written} new keys ({asking} ASKING served by the new owner)",
        slots.len()
    );
    assert_eq!(slots.len(), MOVED);
    assert_eq!(
        slots[0], hot_slot,
        "the slot with the most keys moves first"
    );
    assert!(written > 0, "the client wrote during the move");
    assert!(
        asking > 0,
        "the client wrote into the slot while it was half moved"
    );

    cluster.wait_until_ok(Duration::from_secs(10)).await;
    let mut moved_keys = 0;
    for i in 0..KEYS {
        let key = format!("k{i}");
        if slots.contains(&slot_of[&i]) {
            moved_keys += 1;
            assert_eq!(cluster.primary_for_key(&key).await, to, "{key}");
            let direct: Option<String> =
                on_node(cluster.connect(to).await, redis::cmd("GET").arg(&key)).await;
            assert_eq!(
                direct,
                Some(format!("v{i}")),
                "{key} read from its new owner"
            );
        }
        assert_eq!(get(&cluster, &key).await, Some(format!("v{i}")), "{key}");
    }
    assert!(moved_keys > 0, "the other moved slots held keys too");
    eprintln!("{moved_keys} of the {KEYS} spread keys moved with their slots");
    assert_eq!(cluster.primary_for_key("{hot}").await, to);
    let mut on_new_owner = redis::cmd("MGET");
    for i in 0..HOT {
        on_new_owner.arg(format!("{{hot}}:{i}"));
    }
    for n in 0..written {
        on_new_owner.arg(format!("{{hot}}:w{n}"));
    }
    let values: Vec<Option<String>> = on_node(cluster.connect(to).await, &on_new_owner).await;
    let expected: Vec<Option<String>> = (0..HOT)
        .map(|i| Some(format!("h{i}")))
        .chain((0..written).map(|n| Some(format!("x{n}"))))
        .collect();
    assert!(
        values == expected,
        "the hot slot's keys, old and new, all on its new owner"
    );
    assert_eq!(cluster.keys_count().await, KEYS + HOT + written);
    let flushed = cluster.run_on_all_primaries(&["FLUSHALL"]).await;
    assert_eq!(flushed, vec![Value::Okay; 3]);
    assert_eq!(cluster.keys_count().await, 0);
}

/// How many `ASKING` the node on `port` has served (`INFO commandstats`).
async fn asking_calls(cluster: &RedisCluster, port: u16) -> u64 {
    let stats: String = on_node(
        cluster.connect(port).await,
        redis::cmd("INFO").arg("commandstats"),
    )
    .await;
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_asking:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_elect_a_new_master_when_the_master_dies() {
    let started = Instant::now();
    let mut sentinels = RedisSentinels::start_with_password(2, PASSWORD).await;
    eprintln!(
        "primary, 2 replicas, 3 sentinels started in {:?}",
        started.elapsed()
    );
    let ports = sentinels.sentinel_ports();
    assert_eq!(
        sentinels.url(),
        format!(
            "redis+sentinel://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/gateway",
            ports[0], ports[1], ports[2]
        )
    );
    let old = sentinels.master_port().await;
    assert_eq!(old, sentinels.data_ports()[0]);
    let _: () = on_node(
        sentinels.connect(old).await,
        redis::cmd("SET").arg("alert:1").arg("firing"),
    )
    .await;
    let acked: i64 = on_node(
        sentinels.connect(old).await,
        redis::cmd("WAIT").arg(2).arg(2000),
    )
    .await;
    assert_eq!(acked, 2);

    sentinels.kill(old);
    let killed_at = Instant::now();
    let new = sentinels
        .wait_for_new_master(old, Duration::from_secs(15))
        .await;
    eprintln!(
        "sentinel failover: 127.0.0.1:{old} killed, every sentinel names 127.0.0.1:{new} after {:?}",
        killed_at.elapsed()
    );
    assert!(sentinels.data_ports()[1..].contains(&new));
    assert_eq!(sentinels.master_port().await, new);
    let kept: Option<String> = on_node(
        sentinels.connect(new).await,
        redis::cmd("GET").arg("alert:1"),
    )
    .await;
    assert_eq!(kept.as_deref(), Some("firing"));
    let _: () = on_node(
        sentinels.connect(new).await,
        redis::cmd("SET").arg("alert:2").arg("firing"),
    )
    .await;
}
