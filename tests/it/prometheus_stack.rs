//! End to end with the real Prometheus stack: Debian's Prometheus scrapes synthetic targets
//! (this test's own HTTP servers, one `/metrics` each, with a gauge the test flips), evaluates
//! two alerting rules and sends the alerts to Debian's Alertmanager, which groups, repeats and
//! resolves them into the real `gateway` binary's webhook (`--auth token`, the directory sink,
//! the embedded state). Prometheus scrapes the gateway too.
//!
//! - `WebPodUnhealthy` fires for [`BURST`] pods of one namespace: past `pattern_threshold`
//!   ([`PATTERN_THRESHOLD`]) it is a pattern storm, so the first [`PATTERN_THRESHOLD`] pods are
//!   RemediationRequests of their own and every other one is in ONE storm aggregate;
//! - `DatabaseDown` fires for [`FEW`] pods: one RemediationRequest each;
//! - Alertmanager repeats its notifications every few seconds: duplicates, counted, no new
//!   resource, the occurrence counts of the existing ones rising;
//! - the targets recover: Alertmanager sends the resolutions, the gateway counts them; a
//!   `DatabaseDown` firing again afterwards is new (a resolved alert ends its dedup window,
//!   `domain/dedup`), a second RemediationRequest per pod;
//! - `up{job="gateway"} == 1` in Prometheus, and `promtool check metrics` accepts the gateway's
//!   `/metrics`.
//!
//! Needs `/usr/bin/prometheus`, `promtool` and `/usr/bin/prometheus-alertmanager`
//! (`scripts/test-tools.sh` installs them): without Prometheus or promtool the test says so and
//! passes, except under CI (`CI` set), where it fails. Each process logs to a file of the run's
//! temporary directory, printed when the test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use gateway_tests::alertmanager::Alertmanager;
use gateway_tests::chaos::process::{GatewayProcess, free_port, gateway_binary};
use gateway_tests::prometheus::{self, Prometheus};
use gateway_tests::read_remediations;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Pods `web-0` … of namespace `shop` that `WebPodUnhealthy` fires for.
const BURST: usize = 30;
/// Pods `db-0` … of namespace `payments` that `DatabaseDown` fires for.
const FEW: usize = 3;
/// More distinct pods than this of one alert name within two minutes is a pattern storm: the
/// few stay individual (also when they fire again), the burst does not.
const PATTERN_THRESHOLD: usize = FEW;
/// The gateway's `storm.yaml`: only the pattern storm (the few fire twice, the rate threshold is
/// out of reach), an aggregate from the fifth buffered pod, a window closed after 8 s quiet (the
/// burst reaches the gateway within a few evaluations, even on a loaded machine).
const STORM_YAML: &str = "rate_threshold: 1000\npattern_threshold: 3\nbuffer_threshold: 5\n\
                          inactivity_timeout: 8s\nmax_window_duration: 5m\n";
/// The bearer token Alertmanager sends.
const TOKEN: &str = "promstack-alertmanager-token";
/// The whole scenario's bound: every wait ends by then.
const RUN_BOUND: Duration = Duration::from_secs(80);

/// One synthetic scrape target: its labels and the gauge `synthetic_unhealthy` it serves.
struct Target {
    namespace: &'static str,
    pod: String,
    tier: &'static str,
    address: String,
    unhealthy: Arc<AtomicU8>,
}

/// The targets' servers, stopped on drop.
struct Targets {
    targets: Vec<Target>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Targets {
    async fn start() -> Targets {
        let mut targets = Vec::new();
        let mut servers = Vec::new();
        let pods = (0..BURST)
            .map(|i| ("shop", format!("web-{i}"), "web"))
            .chain((0..FEW).map(|i| ("payments", format!("db-{i}"), "db")));
        for (namespace, pod, tier) in pods {
            let unhealthy = Arc::new(AtomicU8::new(0));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let app = axum::Router::new()
                .route("/metrics", get(serve_gauge))
                .with_state(unhealthy.clone());
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
            targets.push(Target {
                namespace,
                pod,
                tier,
                address,
                unhealthy,
            });
        }
        Targets { targets, servers }
    }

    /// Sets the gauge of every target of `tier`.
    fn set(&self, tier: &str, value: u8) {
        for t in self.targets.iter().filter(|t| t.tier == tier) {
            t.unhealthy.store(value, Ordering::SeqCst);
        }
    }

    /// Prometheus' `static_configs`: one per target, with its labels.
    fn static_configs(&self) -> Vec<Value> {
        self.targets
            .iter()
            .map(|t| {
                json!({
                    "targets": [t.address],
                    "labels": {"namespace": t.namespace, "pod": t.pod, "tier": t.tier},
                })
            })
            .collect()
    }

    fn pods(&self, tier: &str) -> BTreeSet<String> {
        self.targets
            .iter()
            .filter(|t| t.tier == tier)
            .map(|t| t.pod.clone())
            .collect()
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

async fn serve_gauge(State(unhealthy): State<Arc<AtomicU8>>) -> String {
    format!(
        "# HELP synthetic_unhealthy 1 while the test says this target is unhealthy.\n\
         # TYPE synthetic_unhealthy gauge\n\
         synthetic_unhealthy {}\n",
        unhealthy.load(Ordering::SeqCst)
    )
}

/// Prints the tail of every process's log when the test fails (on unwinding).
struct LogsOnFailure(Vec<(&'static str, PathBuf)>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (name, path) in &self.0 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            eprintln!("---- {name} ({}), last 60 lines:\n{tail}", path.display());
        }
    }
}

/// Waits for `check` to give a value, every 200 ms, at most `within` and never past `run_end`;
/// panics naming `what` and the last thing `check` saw.
async fn eventually<T>(
    what: &str,
    within: Duration,
    run_end: Instant,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = (Instant::now() + within).min(run_end);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?} (or the run's {RUN_BOUND:?}); last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateway's `/metrics`.
async fn gateway_metrics(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of `series` (a name with its labels, as the gateway renders them) in `text`; 0 when
/// the series is not there yet.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// One individual RemediationRequest, as read from its file.
#[derive(Debug, Clone)]
struct Individual {
    name: String,
    alert: String,
    pod: String,
    firing_time: String,
    occurrences: u64,
}

/// One storm aggregate.
#[derive(Debug, Clone)]
struct Aggregate {
    alert: String,
    storm_type: String,
    pods: Vec<String>,
    alert_count: u64,
    sampled_out: u64,
    closed: bool,
}

/// The RemediationRequest files, split into individual ones and aggregates.
fn remediations(dir: &Path) -> (Vec<Individual>, Vec<Aggregate>) {
    let mut individuals = Vec::new();
    let mut aggregates = Vec::new();
    for doc in read_remediations(dir) {
        let spec = &doc["spec"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        if spec["isStorm"] == true {
            aggregates.push(Aggregate {
                alert: text(&spec["signalName"]),
                storm_type: text(&spec["stormType"]),
                pods: spec["affectedResources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| text(&r["name"]))
                    .collect(),
                alert_count: spec["stormAlertCount"].as_u64().unwrap(),
                sampled_out: spec["stormSampledOutCount"].as_u64().unwrap(),
                closed: !spec["stormWindowEnd"].is_null(),
            });
        } else {
            individuals.push(Individual {
                name: text(&doc["metadata"]["name"]),
                alert: text(&spec["signalName"]),
                pod: text(&spec["targetResource"]["name"]),
                firing_time: text(&spec["firingTime"]),
                occurrences: spec["deduplication"]["occurrenceCount"].as_u64().unwrap(),
            });
        }
    }
    (individuals, aggregates)
}

fn of_alert<'a>(individuals: &'a [Individual], alert: &str) -> Vec<&'a Individual> {
    individuals.iter().filter(|i| i.alert == alert).collect()
}

/// JSON is YAML: writes `value` as a config file.
fn write_config(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_prometheus_and_alertmanager_fire_repeat_and_resolve_through_the_gateway() {
    let what = "the Prometheus stack end to end";
    let Some(prometheus_bin) = prometheus::binary(what) else {
        return;
    };
    let Some(promtool) = prometheus::promtool(what) else {
        return;
    };
    let started = Instant::now();
    let run_end = started + RUN_BOUND;
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (config, out, state, am_data, prom_data) = (
        dir("config"),
        dir("remediations"),
        dir("state"),
        dir("alertmanager-data"),
        dir("prometheus-data"),
    );
    let logs = LogsOnFailure(vec![
        ("gateway", tmp.path().join("gateway.log")),
        ("alertmanager", tmp.path().join("alertmanager.log")),
        ("prometheus", tmp.path().join("prometheus.log")),
    ]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let targets = Targets::start().await;

    // The gateway binary: the storm settings above, Alertmanager's token, the directory sink.
    std::fs::write(config.join("storm.yaml"), STORM_YAML).unwrap();
    std::fs::write(config.join("dedup.yaml"), "ttl: 5m\n").unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, format!("alertmanager:{TOKEN}\n")).unwrap();
    let token_file = tmp.path().join("alertmanager-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let flags: Vec<String> = [
        "--auth",
        "token",
        "--auth-token-file",
        &path(&tokens),
        "--config-dir",
        &path(&config),
        "--remediation-dir",
        &path(&out),
        "--state-dir",
        &path(&state),
        "--update-interval",
        "500ms",
        "--shutdown-delay",
        "0s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let port = free_port();
    let gateway = GatewayProcess::start(&gateway_binary(), &flags, port, &logs.0[0].1).await;
    let base = gateway.base();

    // Alertmanager: short group wait and interval, repeats every 3 s, resolutions sent.
    let am_config = tmp.path().join("alertmanager.yml");
    write_config(
        &am_config,
        &json!({
            "route": {
                "receiver": "kubernaut",
                "group_by": ["alertname", "namespace"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "3s",
            },
            "receivers": [{
                "name": "kubernaut",
                "webhook_configs": [{
                    "url": format!("{base}/api/v1/signals/prometheus"),
                    "send_resolved": true,
                    "http_config": {
                        "authorization": {"type": "Bearer", "credentials_file": token_file},
                    },
                }],
            }],
        }),
    );
    let alertmanager = Alertmanager::start(&am_config, &am_data, logs.0[1].1.clone());
    alertmanager.wait_ready(&http).await;

    // Prometheus: everything every second; the targets, the gateway; two rules.
    let rules = tmp.path().join("rules.yml");
    write_config(
        &rules,
        &json!({"groups": [{"name": "synthetic", "rules": [
            {
                "alert": "WebPodUnhealthy",
                "expr": "synthetic_unhealthy{tier=\"web\"} == 1",
                "for": "0s",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "{{ $labels.pod }} is unhealthy"},
            },
            {
                "alert": "DatabaseDown",
                "expr": "synthetic_unhealthy{tier=\"db\"} == 1",
                "for": "0s",
                "labels": {"severity": "critical"},
                "annotations": {"summary": "{{ $labels.pod }} is down"},
            },
        ]}]}),
    );
    let prom_config = tmp.path().join("prometheus.yml");
    write_config(
        &prom_config,
        &json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules],
            "alerting": {"alertmanagers": [{"static_configs": [{
                "targets": [alertmanager.base.trim_start_matches("http://")],
            }]}]},
            "scrape_configs": [
                {"job_name": "targets", "static_configs": targets.static_configs()},
                {"job_name": "gateway", "static_configs": [{"targets": [format!("127.0.0.1:{port}")]}]},
            ],
        }),
    );
    let mut prom = Prometheus::start(
        &prometheus_bin,
        &prom_config,
        &prom_data,
        logs.0[2].1.clone(),
    );
    prom.wait_ready(&http, Duration::from_secs(20)).await;
    let phase = |name: &str| println!("  {:>5.1} s  {name}", started.elapsed().as_secs_f64());
    phase("gateway, Alertmanager and Prometheus ready");

    // Every target scraped, and the gateway: up == 1.
    let all = BURST + FEW;
    eventually(
        "every target and the gateway scraped",
        Duration::from_secs(20),
        run_end,
        async || {
            let targets = prom.query(&http, "up{job=\"targets\"} == 1").await?;
            let gateway = prom.query(&http, "up{job=\"gateway\"} == 1").await?;
            if targets.len() == all && gateway.len() == 1 {
                Ok(())
            } else {
                Err(format!("{} targets up, gateway {gateway:?}", targets.len()))
            }
        },
    )
    .await;
    phase("targets and gateway up in Prometheus");

    // Fire: the burst and the few at once.
    targets.set("web", 1);
    targets.set("db", 1);
    let (individuals, aggregate) = eventually(
        "the few and the burst's first pods created, the burst's aggregate closed",
        Duration::from_secs(30),
        run_end,
        async || {
            let (individuals, aggregates) = remediations(&out);
            let closed = aggregates
                .iter()
                .find(|a| a.closed && a.pods.len() == BURST - PATTERN_THRESHOLD);
            match closed {
                Some(a) if individuals.len() >= FEW + PATTERN_THRESHOLD => {
                    Ok((individuals, a.clone()))
                }
                _ => Err(format!("{individuals:?} {aggregates:?}")),
            }
        },
    )
    .await;
    phase("firing: RemediationRequests written, the storm window closed");
    let (_, aggregates) = remediations(&out);
    assert_eq!(aggregates.len(), 1, "ONE storm aggregate: {aggregates:?}");
    // The few: one RemediationRequest per pod.
    let db: BTreeSet<String> = of_alert(&individuals, "DatabaseDown")
        .iter()
        .map(|i| i.pod.clone())
        .collect();
    assert_eq!(
        of_alert(&individuals, "DatabaseDown").len(),
        FEW,
        "{individuals:?}"
    );
    assert_eq!(db, targets.pods("db"));
    // The burst: the first PATTERN_THRESHOLD pods individual, every other one in the aggregate,
    // none twice, none missing.
    let web_individual: BTreeSet<String> = of_alert(&individuals, "WebPodUnhealthy")
        .iter()
        .map(|i| i.pod.clone())
        .collect();
    assert_eq!(
        of_alert(&individuals, "WebPodUnhealthy").len(),
        PATTERN_THRESHOLD
    );
    assert_eq!(web_individual.len(), PATTERN_THRESHOLD, "{individuals:?}");
    assert_eq!(
        individuals.len(),
        FEW + PATTERN_THRESHOLD,
        "{individuals:?}"
    );
    assert_eq!(aggregate.alert, "WebPodUnhealthy");
    assert_eq!(aggregate.storm_type, "pattern");
    let aggregated: BTreeSet<String> = aggregate.pods.iter().cloned().collect();
    assert_eq!(
        aggregated.len(),
        aggregate.pods.len(),
        "a pod listed twice: {aggregate:?}"
    );
    assert!(
        aggregated.is_disjoint(&web_individual),
        "{aggregate:?} {web_individual:?}"
    );
    let burst: BTreeSet<String> = aggregated.union(&web_individual).cloned().collect();
    assert_eq!(burst, targets.pods("web"));
    assert_eq!(
        aggregate.alert_count,
        (BURST - PATTERN_THRESHOLD) as u64,
        "{aggregate:?}"
    );
    assert_eq!(aggregate.sampled_out, 0);
    let metrics = gateway_metrics(&http, &base).await;
    assert_eq!(
        value(
            &metrics,
            "gateway_signal_storms_detected_total{storm_type=\"pattern\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            "gateway_signal_storms_detected_total{storm_type=\"rate\"}"
        ),
        0.0
    );

    // Alertmanager repeats both groups: every alert again, each a duplicate; no new resource,
    // the occurrence counts of the few rise.
    let duplicates = value(&metrics, "gateway_signals_deduplicated_total");
    let repeated = eventually(
        "a full repeat of both groups absorbed as duplicates",
        Duration::from_secs(15),
        run_end,
        async || {
            let now = value(
                &gateway_metrics(&http, &base).await,
                "gateway_signals_deduplicated_total",
            );
            if now >= duplicates + all as f64 {
                Ok(now)
            } else {
                Err(format!("{now} duplicates (from {duplicates})"))
            }
        },
    )
    .await;
    eventually(
        "the repeats counted in the few's RemediationRequests",
        Duration::from_secs(10),
        run_end,
        async || {
            let (individuals, _) = remediations(&out);
            let counts: Vec<u64> = of_alert(&individuals, "DatabaseDown")
                .iter()
                .map(|i| i.occurrences)
                .collect();
            if counts.len() == FEW && counts.iter().all(|c| *c >= 2) {
                Ok(())
            } else {
                Err(format!("occurrence counts {counts:?}"))
            }
        },
    )
    .await;
    phase("repeats absorbed as duplicates");
    let (after_repeats, aggregates) = remediations(&out);
    let names =
        |list: &[Individual]| -> BTreeSet<String> { list.iter().map(|i| i.name.clone()).collect() };
    assert_eq!(
        names(&after_repeats),
        names(&individuals),
        "no new resource for a repeat"
    );
    assert_eq!(aggregates.len(), 1);
    let (sent, failed) = alertmanager.webhook_notifications(&http).await;
    assert!(
        sent >= 4.0,
        "notifications sent: {sent} (firing and a repeat, two groups)"
    );
    assert_eq!(failed, 0.0, "failed notifications");
    println!("  {repeated} duplicates after {sent} notifications");

    // The targets recover: Alertmanager sends the resolutions.
    let resolved = value(
        &gateway_metrics(&http, &base).await,
        "gateway_signal_outcomes_total{outcome=\"resolved\"}",
    );
    targets.set("web", 0);
    targets.set("db", 0);
    eventually(
        "every alert's resolution received",
        Duration::from_secs(20),
        run_end,
        async || {
            let now = value(
                &gateway_metrics(&http, &base).await,
                "gateway_signal_outcomes_total{outcome=\"resolved\"}",
            );
            if now >= resolved + all as f64 {
                Ok(())
            } else {
                Err(format!("{now} resolved (from {resolved})"))
            }
        },
    )
    .await;
    phase("resolutions received");
    let (after_resolution, aggregates) = remediations(&out);
    assert_eq!(
        names(&after_resolution),
        names(&individuals),
        "a resolution creates nothing"
    );
    assert_eq!(aggregates.len(), 1);

    // The few fire again: their dedup windows ended with the resolution, so each is new.
    targets.set("db", 1);
    let refired = eventually(
        "the few's second firing created",
        Duration::from_secs(20),
        run_end,
        async || {
            let (individuals, _) = remediations(&out);
            let db = of_alert(&individuals, "DatabaseDown").len();
            if db >= 2 * FEW {
                Ok(individuals)
            } else {
                Err(format!("{db} DatabaseDown RemediationRequests"))
            }
        },
    )
    .await;
    phase("the re-fire created anew");
    let db_all = of_alert(&refired, "DatabaseDown");
    assert_eq!(db_all.len(), 2 * FEW, "{refired:?}");
    let first: BTreeMap<&str, &Individual> = of_alert(&individuals, "DatabaseDown")
        .into_iter()
        .map(|i| (i.pod.as_str(), i))
        .collect();
    for pod in targets.pods("db") {
        let both: Vec<&&Individual> = db_all.iter().filter(|i| i.pod == pod).collect();
        assert_eq!(both.len(), 2, "{pod}: {both:?}");
        let again = both
            .iter()
            .find(|i| i.name != first[pod.as_str()].name)
            .unwrap();
        assert!(
            again.firing_time > first[pod.as_str()].firing_time,
            "{pod}: the second firing starts later: {both:?}"
        );
    }
    assert_eq!(
        of_alert(&refired, "WebPodUnhealthy").len(),
        PATTERN_THRESHOLD,
        "the burst did not fire again"
    );
    assert_eq!(remediations(&out).1.len(), 1);

    // Nothing was left unrecorded or failed on the way.
    let metrics = gateway_metrics(&http, &base).await;
    for line in metrics.lines().filter(|l| {
        l.starts_with("gateway_signals_unrecorded_total")
            || l.starts_with("gateway_auth_failures_total")
            || l.starts_with("gateway_remediation_write_errors_total")
    }) {
        assert!(line.ends_with(" 0"), "{line}");
    }
    let (_, failed) = alertmanager.webhook_notifications(&http).await;
    assert_eq!(failed, 0.0, "failed notifications");

    // Prometheus scraped the gateway and read its metrics.
    let up = prom.query(&http, "up{job=\"gateway\"} == 1").await.unwrap();
    assert_eq!(up.len(), 1, "{up:?}");
    eventually(
        "the gateway's duplicates in Prometheus",
        Duration::from_secs(10),
        run_end,
        async || {
            let found = prom
                .query(
                    &http,
                    "gateway_signals_deduplicated_total{job=\"gateway\"} > 0",
                )
                .await?;
            if found.len() == 1 {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await;

    // promtool accepts what the gateway serves, every family this run touched included.
    if let Err(problems) = prometheus::check_metrics(&promtool, &metrics) {
        panic!("{problems}\n{metrics}");
    }
    phase("Prometheus scraped the gateway; promtool check metrics passed");
    assert!(started.elapsed() < RUN_BOUND, "{:?}", started.elapsed());

    drop(prom);
    drop(alertmanager);
    let status = gateway.terminate().await;
    assert!(status.success(), "the gateway's exit: {status}");
    drop(logs);
}
