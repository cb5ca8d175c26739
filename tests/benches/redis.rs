//! The gateway on Redis against Redis itself, printed as a small report (ratios against a baseline
//! measured in the same run, so they are comparable across machines).
//!
//! A `redis-server` is started on a free loopback port (no persistence) and killed at the end,
//! even on panic.
//!
//! 1. Duplicate-alert throughput and latency: an in-process gateway with `--redis-url`, driven by
//!    16 concurrent keep-alive HTTP clients each posting the same one-alert webhook for 5 s after
//!    a 1 s warm-up: every request after the first is a duplicate, one `EVALSHA` each. req/s,
//!    p50, p99.
//! 2. The baseline: `redis-benchmark` (Debian's redis-tools) running the bare `SET k v NX EX 300`
//!    at the same concurrency against the same Redis. rps, p50, p99, and the ratios
//!    redis rps / gateway req/s (the gateway's overhead over Redis itself) and gateway p99 /
//!    redis p99.
//! 3. Redis memory per tracked fingerprint: `INFO memory` `used_memory` before and after
//!    recording 100 000 distinct fingerprints through `RedisStore::record` (64 in flight),
//!    and `MEMORY USAGE` of one key as a cross-check (it leaves out the key's entries in the
//!    keyspace and expires dictionaries, which the `used_memory` delta includes).
//!
//! Run: `cargo bench -p gateway-tests --bench redis`.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway_adapter_redis::{RedisOptions, RedisStore};
use gateway_ports::{DedupStore, Fingerprint, Timestamp};
use gateway_tests::served::ServedGateway;
use gateway_tests::{alert, webhook};

/// Concurrent clients, for the gateway and for `redis-benchmark` alike.
const CLIENTS: usize = 16;
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
/// Requests `redis-benchmark` sends (a few seconds' worth).
const REDIS_BENCHMARK_REQUESTS: u64 = 200_000;
/// Distinct fingerprints recorded for the memory figure, and how many are in flight at once.
const FINGERPRINTS: u64 = 100_000;
const IN_FLIGHT: u64 = 64;

/// A `redis-server` child process, killed when dropped (also while unwinding from a panic).
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (Debian: apt-get install redis-server)");
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let client = redis::Client::open(server.url()).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = client
                .get_connection()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                break;
            }
            assert!(
                Instant::now() < until,
                "redis-server on {port} never answered"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The in-process gateway on Redis, 16 clients posting the same alert.
async fn gateway_duplicates(redis_url: &str) -> Figures {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let no_config = root.path().join("no-config");
    let flags = [
        "--config-dir",
        no_config.to_str().unwrap(),
        "--remediation-dir",
        out.to_str().unwrap(),
        "--redis-url",
        redis_url,
    ];
    let served = ServedGateway::start(&flags, None).await;
    let client = reqwest::Client::new();
    let url = served.prometheus_url();
    let body = webhook(vec![alert("BenchDuplicate", "bench", "pod-0", "firing")]).to_string();
    // The first occurrence, so every request measured is a duplicate.
    let first = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), reqwest::StatusCode::CREATED);

    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (running, measuring, client, url, body) = (
                running.clone(),
                measuring.clone(),
                client.clone(),
                url.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(100_000);
                let mut last = serde_json::Value::Null;
                while running.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    let bytes = r.bytes().await.unwrap();
                    let took = started.elapsed();
                    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{bytes:?}");
                    if measuring.load(Ordering::Relaxed) {
                        samples.push(took);
                    } else {
                        last = serde_json::from_slice(&bytes).unwrap();
                    }
                }
                (samples, last)
            })
        })
        .collect();
    tokio::time::sleep(WARM_UP).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(MEASURE).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let mut samples = Vec::new();
    for sender in senders {
        let (mine, last) = sender.await.unwrap();
        assert_eq!(last["outcomes"][0]["outcome"], "duplicate", "{last}");
        samples.extend(mine);
    }
    served.stop().await;
    samples.sort();
    Figures {
        rps: samples.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(percentile(&samples, 0.5)),
        p99_ms: ms(percentile(&samples, 0.99)),
    }
}

/// `redis-benchmark` doing `SET k v NX EX 300` at the same concurrency, or why it could not.
fn redis_benchmark(port: u16) -> Result<Figures, String> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &CLIENTS.to_string()])
        .args(["-n", &REDIS_BENCHMARK_REQUESTS.to_string()])
        .args(["-q", "--csv"])
        .args(["SET", "kubernaut:bench:k", "v", "NX", "EX", "300"])
        .output()
        .map_err(|e| {
            format!(
                "cannot run redis-benchmark ({e}): install it with `apt-get install -y redis-tools`"
            )
        })?;
    let csv = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "redis-benchmark failed ({}): {csv}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim_matches('"')).collect())
        .collect();
    let (header, row) = match rows.as_slice() {
        [header, row, ..] if header.first() == Some(&"test") => (header, row),
        // Older redis-benchmark: no header, `"test","rps"` only.
        [row, ..] => {
            return Ok(Figures {
                rps: row
                    .get(1)
                    .and_then(|v| v.parse().ok())
                    .ok_or(csv.to_string())?,
                p50_ms: f64::NAN,
                p99_ms: f64::NAN,
            });
        }
        [] => return Err(format!("no CSV from redis-benchmark: {csv:?}")),
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| row.get(i))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Ok(Figures {
        rps: column("rps"),
        p50_ms: column("p50_latency_ms"),
        p99_ms: column("p99_latency_ms"),
    })
}

async fn used_memory(connection: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn fingerprint(i: u64) -> Fingerprint {
    // 64 hex digits like a real SHA-256 fingerprint, so the keys have their production length.
    Fingerprint::from_hex(&format!("{:064x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).unwrap()
}

/// `used_memory` before and after recording 100 000 fingerprints; `MEMORY USAGE` of one key.
async fn memory_per_fingerprint(redis_url: &str) {
    let store = Arc::new(RedisStore::new(RedisOptions::new(redis_url)).unwrap());
    let until = Instant::now() + Duration::from_secs(10);
    while store.check().await.is_err() {
        assert!(Instant::now() < until, "Redis at {redis_url} not reachable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut connection = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut connection)
        .await
        .unwrap();
    let keys_before: u64 = redis::cmd("DBSIZE")
        .query_async(&mut connection)
        .await
        .unwrap();
    let before = used_memory(&mut connection).await;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                let now = Timestamp::from_millis(1_764_090_000_000);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= FINGERPRINTS {
                        break;
                    }
                    let seen = store
                        .record(&fingerprint(i), Duration::from_secs(300), now)
                        .await
                        .unwrap();
                    assert!(matches!(seen, gateway_ports::Seen::First { .. }));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let took = started.elapsed();
    let after = used_memory(&mut connection).await;
    let keys_after: u64 = redis::cmd("DBSIZE")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys_after - keys_before, FINGERPRINTS);
    let key = format!("kubernaut:gateway:dedup:{{{}}}", fingerprint(0).as_str());
    let usage: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(&mut connection)
        .await
        .unwrap();
    println!(
        "redis memory, {FINGERPRINTS} fingerprints recorded via RedisStore::record ({IN_FLIGHT} in flight, {:.0} records/s): used_memory {before} -> {after} B, {:.1} B per fingerprint; MEMORY USAGE of one key ({} B name): {usage} B",
        FINGERPRINTS as f64 / took.as_secs_f64(),
        (after - before) as f64 / FINGERPRINTS as f64,
        key.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so keep it quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("redis: run with `cargo bench -p gateway-tests --bench redis`");
        return;
    }
    // Declared before the runtime, so it is dropped (redis-server killed) after it, panic or not.
    let redis = RedisServer::start();
    let version = Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "redis-server on 127.0.0.1:{} (--save \"\" --appendonly no): {version}; {} CPUs",
        redis.port,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = redis.url();
    let gateway = runtime.block_on(gateway_duplicates(&url));
    println!(
        "gateway, duplicate alert, {CLIENTS} keep-alive clients, {MEASURE:?} after {WARM_UP:?} warm-up: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        gateway.rps, gateway.p50_ms, gateway.p99_ms
    );
    match redis_benchmark(redis.port) {
        Ok(bare) => {
            println!(
                "redis-benchmark SET NX EX 300, -c {CLIENTS} -n {REDIS_BENCHMARK_REQUESTS}: {:.0} rps, p50 {:.3} ms, p99 {:.3} ms",
                bare.rps, bare.p50_ms, bare.p99_ms
            );
            println!(
                "ratios: redis rps / gateway req/s {:.2} (the gateway's overhead over Redis itself), gateway p99 / redis p99 {:.2}, gateway p50 / redis p50 {:.2}",
                bare.rps / gateway.rps,
                gateway.p99_ms / bare.p99_ms,
                gateway.p50_ms / bare.p50_ms
            );
        }
        Err(why) => println!("redis-benchmark: not measured: {why}"),
    }
    runtime.block_on(memory_per_fingerprint(&url));
}
