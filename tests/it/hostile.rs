//! Hostile clients against a real gateway on loopback, one table row each with the clear answer
//! it must get, while a probe checks that `/healthz` answers quickly throughout.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway_tests::served::ServedGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The limits the gateway under attack runs with: small, so that each row stays short.
const MAX_CONNECTIONS: usize = 48;
const MAX_CONCURRENT: usize = 8;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Above the write deadline (2 s, room for the directory sink's one-second attempt).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(2500);
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// `--max-label-bytes` of the gateway under attack.
const MAX_LABEL_BYTES: usize = 4096;
/// The probe's bound on one `/healthz` answer, a fresh connection each time (like the kubelet).
const PROBE_BOUND: Duration = Duration::from_millis(200);

/// What a row attacks: the gateway's address and its metrics.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    base: String,
    served: Arc<ServedGateway>,
    /// Where its RemediationRequests are written.
    out: std::path::PathBuf,
}

impl Target {
    fn metric(&self, series: &str) -> f64 {
        let text = self.served.gateway.metrics_text();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

type Verdict = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One hostile client and the answer it must get.
struct Row {
    client: &'static str,
    expected: &'static str,
    run: fn(Target) -> Verdict,
}

const ROWS: &[Row] = &[
    Row {
        client: "slow headers: 60 slow-loris connections dripping a byte every 200 ms",
        expected: "each closed within --header-read-timeout (or at once, evicted past --max-connections)",
        run: |t| Box::pin(slow_headers(t)),
    },
    Row {
        client: "slow body: a webhook whose body trickles in",
        expected: "503 + Retry-After + Connection: close at --request-timeout",
        run: |t| Box::pin(slow_body(t)),
    },
    Row {
        client: "too many connections: 120 idle connections",
        expected: "at most --max-connections open; the idle longest closed to make room",
        run: |t| Box::pin(too_many_connections(t)),
    },
    Row {
        client: "too many concurrent requests: --max-concurrent-requests webhooks in flight, one more",
        expected: "503 problem+json + Retry-After: 1 at once, counted as shed",
        run: |t| Box::pin(too_many_requests(t)),
    },
    Row {
        client: "odd and invented methods on every route",
        expected: "405/404 problem+json; the method label stays in GET, POST, HEAD, other",
        run: |t| Box::pin(odd_methods(t)),
    },
    Row {
        client: "a body over --max-body-bytes (declared, and chunked)",
        expected: "413 problem+json",
        run: |t| Box::pin(oversized_body(t)),
    },
    Row {
        client: "labels of 2 MB (over the body limit), of 1 MB and of 40 KB",
        expected: "413 payload-too-large; 400 over-limit naming --max-label-bytes and the alert",
        run: |t| Box::pin(huge_labels(t)),
    },
    Row {
        client: "10,000 alerts in one webhook",
        expected: "413 over-limit naming --max-alerts-per-request, nothing recorded",
        run: |t| Box::pin(ten_thousand_alerts(t)),
    },
    Row {
        client: "namespaces `../..`, CRLF, NUL, upper case, 64 characters",
        expected: "2xx; each RemediationRequest in the fallback namespace, the original recorded",
        run: |t| Box::pin(bad_namespaces(t)),
    },
    Row {
        client: "colliding keys: namespace a + alert b/c and namespace a/b + alert c, storming",
        expected: "two storms, two aggregates, neither holding the other's pods",
        run: |t| Box::pin(colliding_keys(t)),
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_client_gets_a_clear_answer_and_health_checks_stay_fast() {
    let config = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let flags = [
        "--config-dir".to_owned(),
        config.path().to_str().unwrap().to_owned(),
        "--remediation-dir".to_owned(),
        out.path().to_str().unwrap().to_owned(),
        "--max-connections".to_owned(),
        MAX_CONNECTIONS.to_string(),
        "--max-concurrent-requests".to_owned(),
        MAX_CONCURRENT.to_string(),
        "--header-read-timeout".to_owned(),
        "1s".to_owned(),
        "--request-timeout".to_owned(),
        "2500ms".to_owned(),
        "--write-deadline".to_owned(),
        "2s".to_owned(),
        "--max-body-bytes".to_owned(),
        MAX_BODY_BYTES.to_string(),
        "--max-label-bytes".to_owned(),
        MAX_LABEL_BYTES.to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let served = Arc::new(ServedGateway::start(&flags, None).await);
    let addr: SocketAddr = served.base.trim_start_matches("http://").parse().unwrap();
    let target = Target {
        addr,
        base: served.base.clone(),
        served: served.clone(),
        out: out.path().to_owned(),
    };

    let probing = Arc::new(AtomicBool::new(true));
    let probe = tokio::spawn(probe(served.base.clone(), probing.clone()));
    let started = Instant::now();
    let mut failures = Vec::new();
    for row in ROWS {
        let began = Instant::now();
        let verdict = (row.run)(target.clone()).await;
        println!("{:>6} ms  {}", began.elapsed().as_millis(), row.client);
        if let Err(why) = verdict {
            failures.push(format!(
                "{}\n  expected: {}\n  got: {why}",
                row.client, row.expected
            ));
        }
    }
    probing.store(false, Ordering::SeqCst);
    let (probes, slowest, failed) = probe.await.unwrap();
    println!(
        "{} rows in {} ms; {probes} health probes, slowest {} ms",
        ROWS.len(),
        started.elapsed().as_millis(),
        slowest.as_millis()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(failed.is_empty(), "health probes failed: {failed:?}");
    assert!(
        slowest <= PROBE_BOUND,
        "the slowest /healthz took {slowest:?}"
    );
    assert!(probes > 20, "only {probes} probes");
    drop(target);
    Arc::into_inner(served).unwrap().stop().await;
}

/// `GET /healthz` every 50 ms on a fresh connection until told to stop: how many, the slowest,
/// and the failures.
async fn probe(base: String, probing: Arc<AtomicBool>) -> (usize, Duration, Vec<String>) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (mut probes, mut slowest, mut failed) = (0, Duration::ZERO, Vec::new());
    while probing.load(Ordering::SeqCst) {
        let began = Instant::now();
        match client.get(format!("{base}/healthz")).send().await {
            Ok(r) if r.status() == 200 => {}
            Ok(r) => failed.push(format!("status {}", r.status())),
            Err(e) => failed.push(e.to_string()),
        }
        slowest = slowest.max(began.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (probes, slowest, failed)
}

/// Reads until the server closes the connection; what it said.
async fn read_to_close(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&said).into_owned(),
            Ok(n) => said.extend_from_slice(&buf[..n]),
        }
    }
}

/// The head of a webhook whose body is `length` bytes.
fn webhook_head(length: usize) -> String {
    format!(
        "POST /api/v1/signals/prometheus HTTP/1.1\r\nhost: gateway\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
}

async fn slow_headers(t: Target) -> Result<(), String> {
    let bound = HEADER_READ_TIMEOUT + Duration::from_secs(2);
    let lorises = (0..60).map(|_| async move {
        let stream = TcpStream::connect(t.addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut read, mut write) = stream.into_split();
        let drip = tokio::spawn(async move {
            let _ = write
                .write_all(b"POST /api/v1/signals/prometheus HTTP/1.1\r\nhost: gateway\r\nx-slow: ")
                .await;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if write.write_all(b"a").await.is_err() {
                    return;
                }
            }
        });
        let began = Instant::now();
        let closed = tokio::time::timeout(bound, read_to_close(&mut read)).await;
        drip.abort();
        match closed {
            Ok(_) => Ok(began.elapsed()),
            Err(_) => Err(format!("still open after {bound:?}")),
        }
    });
    let closed: Vec<_> = futures::future::join_all(lorises).await;
    let slowest = closed
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .unwrap_or_default();
    println!("        slow-loris connections all closed, the last after {slowest:?}");
    Ok(())
}

async fn slow_body(t: Target) -> Result<(), String> {
    let mut stream = TcpStream::connect(t.addr)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(webhook_head(2000).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let began = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let drip = tokio::spawn(async move {
        while write.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let said = tokio::time::timeout(REQUEST_TIMEOUT * 2, read_to_close(&mut read)).await;
    drip.abort();
    let said = said.map_err(|_| "no answer, connection still open".to_owned())?;
    let elapsed = began.elapsed();
    let lower = said.to_ascii_lowercase();
    if !said.starts_with("HTTP/1.1 503")
        || !lower.contains("retry-after: 1\r\n")
        || !lower.contains("connection: close\r\n")
        || !said.contains("request-timeout")
    {
        return Err(format!("answered {said:?}"));
    }
    if elapsed < REQUEST_TIMEOUT || elapsed > REQUEST_TIMEOUT + Duration::from_secs(1) {
        return Err(format!("answered after {elapsed:?}"));
    }
    Ok(())
}

async fn too_many_connections(t: Target) -> Result<(), String> {
    let evicted_before = t.metric("gateway_http_connections_evicted_total");
    let mut idle = Vec::new();
    for _ in 0..120 {
        idle.push(
            TcpStream::connect(t.addr)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(5), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    let open = t.metric("gateway_http_connections_open");
    let evicted = t.metric("gateway_http_connections_evicted_total") - evicted_before;
    // The probe may hold one connection of its own.
    if open > MAX_CONNECTIONS as f64 || closed < 120 - MAX_CONNECTIONS || evicted < 72.0 {
        return Err(format!(
            "{open} open, {closed} of 120 closed, {evicted} evicted"
        ));
    }
    // The newest are the ones kept: the last one still serves.
    let last = idle.last_mut().ok_or("none")?;
    last.write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let said = read_to_close(last).await;
    if !said.starts_with("HTTP/1.1 200") {
        return Err(format!("the newest connection answered {said:?}"));
    }
    Ok(())
}

async fn too_many_requests(t: Target) -> Result<(), String> {
    let shed_before = t.metric("gateway_http_shed_total{reason=\"concurrency\"}");
    // Each holds a permit while its body does not come.
    let mut holding = Vec::new();
    for _ in 0..MAX_CONCURRENT {
        let mut stream = TcpStream::connect(t.addr)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(webhook_head(100).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        holding.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = Instant::now();
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/signals/prometheus", t.base))
        .header("content-type", "application/json")
        .body(gateway_tests::SAMPLE_WEBHOOK)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = began.elapsed();
    let status = answer.status();
    let retry_after = answer
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let body = answer.text().await.unwrap_or_default();
    drop(holding);
    let shed = t.metric("gateway_http_shed_total{reason=\"concurrency\"}") - shed_before;
    if status != 503
        || retry_after.as_deref() != Some("1")
        || content_type.as_deref() != Some("application/problem+json")
        || !body.contains("overloaded")
        || elapsed > Duration::from_millis(200)
        || shed < 1.0
    {
        return Err(format!(
            "{status} after {elapsed:?}, Retry-After {retry_after:?}, {content_type:?}, {body}, shed {shed}"
        ));
    }
    // The permits come back: with the holders gone, a webhook is accepted again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = reqwest::Client::new()
        .post(format!("{}/api/v1/signals/prometheus", t.base))
        .header("content-type", "application/json")
        .body(gateway_tests::SAMPLE_WEBHOOK)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !again.status().is_success() {
        let status = again.status();
        return Err(format!(
            "after the holders left: {status} {}",
            again.text().await.unwrap_or_default()
        ));
    }
    Ok(())
}

async fn odd_methods(t: Target) -> Result<(), String> {
    let client = reqwest::Client::new();
    let methods: Vec<String> = ["PROPFIND", "BREW", "TRACE", "PATCH", "DELETE"]
        .iter()
        .map(|m| (*m).to_owned())
        .chain((0..40).map(|i| format!("X-INVENTED-{i}")))
        .collect();
    for method in &methods {
        for path in ["/healthz", "/api/v1/signals/prometheus", "/nowhere"] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
            let answer = client
                .request(m, format!("{}{path}", t.base))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.status().as_u16();
            let problem = answer
                .headers()
                .get("content-type")
                .is_some_and(|v| v == "application/problem+json");
            if !matches!(status, 404 | 405) || !problem {
                return Err(format!("{method} {path}: {status}"));
            }
        }
    }
    let text = t.served.gateway.metrics_text();
    let labels: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("gateway_http_request_duration_seconds_count"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    if !labels
        .iter()
        .all(|m| ["GET", "POST", "HEAD", "other"].contains(m))
    {
        return Err(format!("method labels {labels:?}"));
    }
    Ok(())
}

async fn oversized_body(t: Target) -> Result<(), String> {
    let url = format!("{}/api/v1/signals/prometheus", t.base);
    let client = reqwest::Client::new();
    let big = format!("{{\"pad\":\"{}\"}}", "a".repeat(MAX_BODY_BYTES));
    let declared = client
        .post(&url)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    // Chunked: no length declared, the limit found while reading.
    let mut stream = TcpStream::connect(t.addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut chunked = String::from(
        "POST /api/v1/signals/prometheus HTTP/1.1\r\nhost: gateway\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for chunk in big.as_bytes().chunks(8192) {
        chunked.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    chunked.push_str("0\r\n\r\n");
    // The gateway may answer before it has read everything: a failed write is no failure.
    let _ = stream.write_all(chunked.as_bytes()).await;
    let said = tokio::time::timeout(Duration::from_secs(2), read_to_close(&mut stream))
        .await
        .map_err(|_| "chunked: no answer".to_owned())?;
    if !said.starts_with("HTTP/1.1 413") || !said.contains("payload-too-large") {
        return Err(format!("chunked: {said:?}"));
    }
    let status = declared.status();
    let body = declared.text().await.unwrap_or_default();
    if status != 413 || !body.contains("payload-too-large") {
        return Err(format!("declared: {status} {body}"));
    }
    Ok(())
}

/// Posts an Alertmanager webhook of `alerts`: status and body.
async fn post_alerts(t: &Target, alerts: Vec<serde_json::Value>) -> Result<(u16, String), String> {
    let body = serde_json::json!({ "version": "4", "status": "firing", "alerts": alerts });
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/signals/prometheus", t.base))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status().as_u16();
    Ok((status, answer.text().await.unwrap_or_default()))
}

fn alert(name: &str, namespace: &str, pod: &str) -> serde_json::Value {
    serde_json::json!({
        "status": "firing",
        "labels": { "alertname": name, "namespace": namespace, "pod": pod },
        "startsAt": "2026-12-01T10:00:00Z",
    })
}

async fn huge_labels(t: Target) -> Result<(), String> {
    let sized = |bytes: usize| {
        let mut a = alert("Big", "prod", "p0");
        a["annotations"] = serde_json::json!({ "description": "x".repeat(bytes) });
        a
    };
    let (status, body) = post_alerts(&t, vec![sized(2_000_000)]).await?;
    if status != 413 || !body.contains("payload-too-large") {
        return Err(format!("2 MB: {status} {body}"));
    }
    for bytes in [1_000_000, 40_000] {
        let (status, body) =
            post_alerts(&t, vec![alert("Fine", "prod", "p1"), sized(bytes)]).await?;
        if status != 400 || !body.contains("--max-label-bytes") || !body.contains("alerts[1]") {
            return Err(format!("{bytes} bytes: {status} {body}"));
        }
    }
    Ok(())
}

async fn ten_thousand_alerts(t: Target) -> Result<(), String> {
    let before =
        t.metric("gateway_signals_received_total{severity=\"warning\",source=\"prometheus\"}");
    // Small alerts, so that 10,000 of them fit under the body limit.
    let alerts = (0..10_000)
        .map(|n| serde_json::json!({ "status": "firing", "labels": { "alertname": "Many", "pod": format!("p{n}") } }))
        .collect();
    let (status, body) = post_alerts(&t, alerts).await?;
    if status != 413 || !body.contains("--max-alerts-per-request") {
        return Err(format!("{status} {body}"));
    }
    let after =
        t.metric("gateway_signals_received_total{severity=\"warning\",source=\"prometheus\"}");
    if after != before {
        return Err(format!("signals were processed: {before} -> {after}"));
    }
    Ok(())
}

async fn bad_namespaces(t: Target) -> Result<(), String> {
    let long = "n".repeat(64);
    let namespaces = ["../..", "a\r\nb", "a\u{0}b", "UPPER", long.as_str()];
    let alerts = namespaces
        .iter()
        .map(|ns| alert("BadNamespace", ns, "p0"))
        .collect();
    let (status, body) = post_alerts(&t, alerts).await?;
    if !(200..300).contains(&status) {
        return Err(format!("{status} {body}"));
    }
    let written: Vec<serde_json::Value> = gateway_tests::read_remediations(&t.out)
        .into_iter()
        .filter(|rr| rr["spec"]["signalName"] == "BadNamespace")
        .collect();
    for ns in namespaces {
        let found = written.iter().find(|rr| {
            rr["spec"]["signalLabels"]["kubernaut.io/original-namespace"].as_str() == Some(ns)
        });
        match found {
            Some(rr) if rr["metadata"]["namespace"] == "kubernaut-system" => {}
            other => return Err(format!("{ns:?}: {other:?}")),
        }
    }
    Ok(())
}

async fn colliding_keys(t: Target) -> Result<(), String> {
    // Over the default rate threshold (10 a minute): each pair is a storm of its own.
    let mut aggregates = Vec::new();
    for (namespace, name) in [("a", "b/c"), ("a/b", "c")] {
        let alerts = (0..15)
            .map(|n| alert(name, namespace, &format!("{namespace}-{name}-{n}")))
            .collect();
        let (status, body) = post_alerts(&t, alerts).await?;
        let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            return Err(format!("{status} {body}"));
        }
        let names: std::collections::BTreeSet<String> = answer["outcomes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["outcome"] == "aggregated" || o["outcome"] == "sampled_out")
            .filter_map(|o| o["remediation"].as_str().map(str::to_owned))
            .collect();
        if names.len() != 1 {
            return Err(format!(
                "{namespace} + {name}: aggregates {names:?} in {body}"
            ));
        }
        aggregates.extend(names);
    }
    if aggregates[0] == aggregates[1] {
        return Err(format!("one aggregate for both: {aggregates:?}"));
    }
    Ok(())
}
