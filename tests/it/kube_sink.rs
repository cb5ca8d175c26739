//! The Kubernetes sink end to end: the whole gateway (`--sink kubernetes --kubeconfig …`) on a
//! socket, the real kube client, and the API-server emulator with its faults; retry settings from
//! a config directory the kubelet way, hot-reloaded mid-run.
//!
//! Waits poll with a deadline; nothing sleeps to let something happen, except where a test shows
//! the passage of time itself (coalescing intervals).

use std::collections::BTreeSet;
use std::time::Duration;

use gateway_adapter_file_config::WatchOptions;
use gateway_adapter_kube::{API_CALLS, KubeWriter};
use gateway_ports::remediation::{DeduplicationInfo, RemediationRequestSpec};
use gateway_ports::{
    Fingerprint, Rejection, RemediationRequest, RemediationWriter, ResourceRef, Severity,
    Timestamp, WriteFailure, Written,
};
use gateway_tests::apiserver::{ApiServer, Fault, Filter, Resource};
use gateway_tests::kubelet::KubeletDir;
use gateway_tests::served::ServedGateway;
use gateway_tests::{alert, webhook};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

const STORM: &str = "rate_threshold: 50\npattern_threshold: 50\n";
const DEDUP: &str = "ttl: 10m\n";
const FAST_RETRY: &str = "max_attempts: 4\ninitial_backoff: 10ms\nmax_backoff: 100ms\n";

/// An emulated API server, a config directory, and a gateway writing through the API.
struct Rig {
    api: ApiServer,
    _dir: tempfile::TempDir,
    config: KubeletDir,
    gateway: ServedGateway,
    http: reqwest::Client,
    /// The gateway's flags, for another replica.
    flags: Vec<String>,
}

impl Rig {
    async fn start(files: &[(&str, &str)], extra: &[&str]) -> Rig {
        let api = ApiServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path());
        let config = KubeletDir::create(dir.path().join("config"), files).unwrap();
        let config_dir = config.path().to_str().unwrap().to_owned();
        let mut flags = vec![
            "--sink",
            "kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--config-dir",
            &config_dir,
        ];
        if !extra.contains(&"--kube-timeout") {
            // Loopback answers in milliseconds; a second spares a loaded machine false timeouts.
            flags.extend_from_slice(&["--kube-timeout", "1s"]);
        }
        flags.extend_from_slice(extra);
        let flags: Vec<String> = flags.into_iter().map(str::to_owned).collect();
        let gateway = Rig::replica(&flags).await;
        Rig {
            api,
            _dir: dir,
            config,
            gateway,
            http: reqwest::Client::new(),
            flags,
        }
    }

    /// A gateway on `flags`, watching its config directory.
    async fn replica(flags: &[String]) -> ServedGateway {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServedGateway::start(
            &flags,
            Some(WatchOptions {
                debounce: Duration::from_millis(50),
                resync: Duration::from_secs(3600),
                dir_poll: Duration::from_millis(50),
            }),
        )
        .await
    }

    async fn standard() -> Rig {
        Rig::start_with(FAST_RETRY, &[]).await
    }

    async fn post(&self, alerts: Vec<Value>) -> (u16, Option<String>, Value) {
        let response = self
            .http
            .post(self.gateway.prometheus_url())
            .json(&webhook(alerts))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        (status, retry_after, body)
    }

    fn remediations(&self) -> Vec<Value> {
        self.api.objects(Resource::RemediationRequests)
    }

    fn metrics(&self) -> String {
        self.gateway.gateway.metrics_text()
    }

    /// Posts `alert_name` while the API fails: 503 with Retry-After, nothing written, the write
    /// error counted with `reason`. Then the resend (the API fixed) is a new signal: created.
    async fn unrecorded_then_created_on_resend(&self, alert_name: &str, reason: &str) {
        let (status, retry_after, body) = self
            .post(vec![alert(alert_name, "prod", "api-0", "firing")])
            .await;
        assert_eq!(status, 503, "{body}");
        assert!(retry_after.is_some());
        assert!(self.remediations().is_empty());
        assert_eq!(
            metric(
                &self.metrics(),
                &format!("gateway_remediation_write_errors_total{{reason=\"{reason}\"}}")
            ),
            1.0
        );
        let (status, _, body) = self
            .post(vec![alert(alert_name, "prod", "api-0", "firing")])
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(self.remediations().len(), 1);
    }

    /// API requests of `verb` on RemediationRequests.
    fn calls(&self, verb: &str) -> usize {
        self.api
            .requests()
            .iter()
            .filter(|r| r.verb == verb && r.resource == "remediationrequests")
            .count()
    }
}

fn files(retry: &str) -> [(&'static str, String); 3] {
    [
        ("storm.yaml", STORM.to_owned()),
        ("dedup.yaml", DEDUP.to_owned()),
        ("retry.yaml", retry.to_owned()),
    ]
}

impl Rig {
    async fn start_with(retry: &str, extra: &[&str]) -> Rig {
        let files = files(retry);
        let files: Vec<(&str, &str)> = files.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Rig::start(&files, extra).await
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(DEADLINE, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn outcome(body: &Value, i: usize) -> &str {
    body["outcomes"][i]["outcome"].as_str().unwrap()
}

#[tokio::test]
async fn a_firing_alert_becomes_a_remediation_request_in_its_namespace() {
    let rig = Rig::start_with(FAST_RETRY, &[]).await;
    let (status, _, body) = rig
        .post(vec![alert(
            "KubePodCrashLooping",
            "prod",
            "api-0",
            "firing",
        )])
        .await;
    assert_eq!(status, 201, "{body}");
    let name = body["outcomes"][0]["remediation"].as_str().unwrap();
    let stored = rig
        .api
        .object(Resource::RemediationRequests, "prod", name)
        .expect("created in the signal's namespace");
    assert_eq!(stored["spec"]["signalName"], "KubePodCrashLooping");
    assert_eq!(stored["spec"]["severity"], "critical");
    assert_eq!(stored["spec"]["targetResource"]["name"], "api-0");
    assert_eq!(stored["spec"]["deduplication"]["occurrenceCount"], 1);
    assert_eq!(
        stored["metadata"]["labels"]["kubernaut.io/severity"],
        "critical"
    );
    assert_eq!(stored["metadata"]["labels"]["kubernaut.io/storm"], "false");
    let metrics = rig.metrics();
    assert_eq!(
        metric(&metrics, "gateway_remediation_requests_created_total"),
        1.0
    );
    assert!(
        metrics.contains("gateway_kube_api_requests_total{code=\"2xx\",verb=\"create\"} 1"),
        "{metrics}"
    );
    // A signal without a namespace goes to the fallback namespace.
    let (status, _, body) = rig.post(vec![alert("NodeDown", "", "", "firing")]).await;
    assert_eq!(status, 201, "{body}");
    let name = body["outcomes"][0]["remediation"].as_str().unwrap();
    assert!(
        rig.api
            .object(Resource::RemediationRequests, "kubernaut-system", name)
            .is_some()
    );
}

#[tokio::test]
async fn transient_api_failures_are_retried_until_created() {
    let rig = Rig::standard().await;
    let faults = [
        (
            "throttled",
            Fault::TooManyRequests {
                retry_after_secs: 0,
            },
        ),
        ("unavailable", Fault::Status(500)),
        ("unavailable", Fault::Status(503)),
        ("unavailable", Fault::Status(504)),
        ("connection", Fault::Drop),
        ("timeout", Fault::Slow(Duration::from_millis(2500))),
    ];
    for (i, (class, fault)) in faults.into_iter().enumerate() {
        rig.api
            .faults()
            .fail_next(2, fault.clone(), Filter::verb("create"));
        let pod = format!("api-{i}");
        let (status, _, body) = rig
            .post(vec![alert("Flapping", "prod", &pod, "firing")])
            .await;
        assert_eq!(status, 201, "{fault:?}: {body}");
        assert_eq!(outcome(&body, 0), "created", "{fault:?}");
        let failures = metric(
            &rig.metrics(),
            &format!("gateway_remediation_write_attempt_failures_total{{class=\"{class}\"}}"),
        );
        assert!(failures >= 2.0, "{fault:?}: {failures}");
    }
    assert_eq!(
        rig.remediations().len(),
        6,
        "one resource per alert, no twin"
    );
    assert_eq!(
        metric(&rig.metrics(), "gateway_remediation_write_retries_total"),
        12.0
    );
}

#[tokio::test]
async fn retry_after_from_a_throttling_api_is_honoured() {
    let rig = Rig::start_with(
        "max_attempts: 3\ninitial_backoff: 10ms\nmax_backoff: 5s\n",
        &[],
    )
    .await;
    rig.api.faults().fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Filter::verb("create"),
    );
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let (status, _, body) = rig
        .post(vec![alert("Throttled", "prod", "api-0", "firing")])
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}, the server asked for 1 s",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_forbidden_namespace_sends_the_remediation_to_the_fallback_namespace() {
    let rig = Rig::standard().await;
    rig.api
        .faults()
        .fail_next(1, Fault::Status(403), Filter::verb("create"));
    let (status, _, body) = rig
        .post(vec![alert("Forbidden", "prod", "api-0", "firing")])
        .await;
    assert_eq!(status, 201, "{body}");
    let written = rig.remediations();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["metadata"]["namespace"], "kubernaut-system");
    assert_eq!(
        written[0]["metadata"]["labels"]["kubernaut.io/original-namespace"],
        "prod"
    );
    assert_eq!(
        rig.calls("create"),
        2,
        "a 403 is not retried in its namespace; the fallback namespace takes it"
    );
}

#[tokio::test]
async fn a_remediation_the_api_rejects_for_good_is_answered_rejected_not_resent() {
    let rig = Rig::standard().await;
    rig.api
        .faults()
        .fail_next(1, Fault::Status(422), Filter::verb("create"));
    let (status, _, body) = rig
        .post(vec![
            alert("Invalid", "prod", "api-0", "firing"),
            alert("Fine", "prod", "api-1", "firing"),
        ])
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcomes"][0]["outcome"], "rejected", "{body}");
    assert_eq!(
        body["outcomes"][1]["outcome"], "created",
        "the next alert is not blocked"
    );
    assert_eq!(
        metric(
            &rig.metrics(),
            "gateway_signals_rejected_total{reason=\"sink_rejected\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn exhausted_retries_answer_503_and_nothing_is_lost() {
    let rig = Rig::standard().await;
    rig.api
        .faults()
        .fail_next(4, Fault::Status(503), Filter::verb("create"));
    rig.unrecorded_then_created_on_resend("Outage", "exhausted")
        .await;
    assert_eq!(rig.calls("create"), 5, "max_attempts: 4; then the resend");
}

#[tokio::test]
async fn retry_settings_changed_by_hot_reload_apply_to_the_next_write() {
    let rig = Rig::start_with("max_attempts: 1\n", &[]).await;
    rig.api
        .faults()
        .fail_next(1, Fault::Status(503), Filter::verb("create"));
    let (status, _, _) = rig
        .post(vec![alert("Reloaded", "prod", "api-0", "firing")])
        .await;
    assert_eq!(status, 503, "one attempt only");

    let generation = rig
        .gateway
        .gateway
        .generation(gateway_ports::ConfigKind::Retry);
    let files = files(FAST_RETRY);
    let files: Vec<(&str, &str)> = files.iter().map(|(k, v)| (*k, v.as_str())).collect();
    rig.config.swap(&files).unwrap();
    let gateway = rig.gateway.gateway.clone();
    eventually("retry.yaml reloaded", || {
        gateway.generation(gateway_ports::ConfigKind::Retry) > generation
    })
    .await;
    rig.api
        .faults()
        .fail_next(3, Fault::Status(503), Filter::verb("create"));
    let (status, _, body) = rig
        .post(vec![alert("Reloaded", "prod", "api-0", "firing")])
        .await;
    assert_eq!(status, 201, "four attempts now: {body}");
}

#[tokio::test]
async fn the_write_deadline_answers_the_sender_in_time() {
    // Each attempt hangs past the 500 ms call timeout; the budget allows two of them at most.
    let rig = Rig::start_with(
        "max_attempts: 10\ninitial_backoff: 10ms\nmax_backoff: 20ms\n",
        &["--write-deadline", "1200ms", "--kube-timeout", "500ms"],
    )
    .await;
    rig.api.faults().fail_next(
        100,
        Fault::Slow(Duration::from_secs(3)),
        Filter::verb("create"),
    );
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let (status, _, body) = rig
        .post(vec![alert("Slow", "prod", "api-0", "firing")])
        .await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert_eq!(
        metric(
            &rig.metrics(),
            "gateway_remediation_write_attempt_failures_total{class=\"timeout\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn two_replicas_without_shared_dedup_make_one_resource_of_one_alert() {
    // Each replica dedups in its own memory; the name, derived from the alert, is the second line.
    let rig = Rig::standard().await;
    let second = Rig::replica(&rig.flags).await;
    let alerts = webhook(vec![alert("Twice", "prod", "api-0", "firing")]);
    let (status, _, body) = rig
        .post(vec![alert("Twice", "prod", "api-0", "firing")])
        .await;
    assert_eq!(status, 201, "{body}");
    let response = rig
        .http
        .post(second.prometheus_url())
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(outcome(&body, 0), "already_exists", "{body}");
    let stored = rig.remediations();
    assert_eq!(stored.len(), 1, "no twin");
    assert_eq!(stored[0]["spec"]["deduplication"]["occurrenceCount"], 2);
    second.stop().await;
}

#[tokio::test]
async fn already_exists_is_the_result_and_counts_the_occurrence() {
    let api = ApiServer::start().await;
    let writer = KubeWriter::new(api.client(), Duration::from_secs(2));
    let request = sample_request("rr-abc-1");
    assert_eq!(writer.create(&request).await.unwrap(), Written::Created);
    assert_eq!(
        writer.create(&request).await.unwrap(),
        Written::AlreadyExisted
    );
    let stored = api
        .object(Resource::RemediationRequests, "prod", "rr-abc-1")
        .unwrap();
    assert_eq!(stored["spec"]["deduplication"]["occurrenceCount"], 2);
    // Someone else wrote in between the read and the patch: read again, count once.
    api.faults().fail_next(
        1,
        Fault::Status(409),
        Filter {
            verb: Some("patch"),
            resource: Some("remediationrequests"),
        },
    );
    assert_eq!(
        writer.create(&request).await.unwrap(),
        Written::AlreadyExisted
    );
    let stored = api
        .object(Resource::RemediationRequests, "prod", "rr-abc-1")
        .unwrap();
    assert_eq!(stored["spec"]["deduplication"]["occurrenceCount"], 3);
}

#[tokio::test]
async fn an_update_that_races_a_create_patches_the_winner() {
    let api = ApiServer::start().await;
    let writer = KubeWriter::new(api.client(), Duration::from_secs(2));
    let mut request = sample_request("rr-storm-race");
    assert_eq!(writer.update(&request).await.unwrap(), Written::Created);
    // Our read finds nothing (another replica is creating it), our create then meets its
    // resource: our newer content is patched into it, not given up as "already there".
    request.spec.signal_name = "Grown".to_owned();
    request.spec.deduplication.occurrence_count = 2;
    api.faults().fail_next(
        1,
        Fault::Status(404),
        Filter {
            verb: Some("get"),
            resource: Some("remediationrequests"),
        },
    );
    assert_eq!(writer.update(&request).await.unwrap(), Written::Updated);
    let stored = api
        .object(Resource::RemediationRequests, "prod", "rr-storm-race")
        .unwrap();
    assert_eq!(stored["spec"]["signalName"], "Grown");
}

#[tokio::test]
async fn an_update_never_moves_a_resource_backwards() {
    let api = ApiServer::start().await;
    let writer = KubeWriter::new(api.client(), Duration::from_secs(2));
    let mut newer = sample_request("rr-storm-ahead");
    newer.spec.deduplication.occurrence_count = 7;
    newer.spec.signal_name = "Newer".to_owned();
    assert_eq!(writer.update(&newer).await.unwrap(), Written::Created);
    // A replica with an older snapshot writes after: the newer content stays.
    let mut older = sample_request("rr-storm-ahead");
    older.spec.deduplication.occurrence_count = 5;
    assert_eq!(writer.update(&older).await.unwrap(), Written::Superseded);
    let stored = api
        .object(Resource::RemediationRequests, "prod", "rr-storm-ahead")
        .unwrap();
    assert_eq!(stored["spec"]["signalName"], "Newer");
    assert_eq!(stored["spec"]["deduplication"]["occurrenceCount"], 7);
    // A write that lost a race (409 Conflict on the guarded patch) reads again and wins.
    let mut newest = sample_request("rr-storm-ahead");
    newest.spec.deduplication.occurrence_count = 9;
    api.faults().fail_next(
        1,
        Fault::Status(409),
        Filter {
            verb: Some("patch"),
            resource: Some("remediationrequests"),
        },
    );
    assert_eq!(writer.update(&newest).await.unwrap(), Written::Updated);
    let stored = api
        .object(Resource::RemediationRequests, "prod", "rr-storm-ahead")
        .unwrap();
    assert_eq!(stored["spec"]["deduplication"]["occurrenceCount"], 9);
}

#[tokio::test]
async fn the_writer_classifies_each_failure_for_the_retry_policy() {
    let api = ApiServer::start().await;
    let writer = KubeWriter::new(api.client(), Duration::from_millis(300));
    let cases = [
        (
            Fault::TooManyRequests {
                retry_after_secs: 7,
            },
            WriteFailure::Throttled {
                retry_after: Some(Duration::from_secs(7)),
            },
        ),
        (
            Fault::Status(500),
            WriteFailure::Unavailable { retry_after: None },
        ),
        (
            Fault::Status(503),
            WriteFailure::Unavailable { retry_after: None },
        ),
        (
            Fault::Status(504),
            WriteFailure::Unavailable { retry_after: None },
        ),
        (Fault::Status(409), WriteFailure::Conflict),
        (
            Fault::Status(403),
            WriteFailure::Rejected {
                reason: Rejection::Forbidden,
            },
        ),
        (
            Fault::Status(401),
            WriteFailure::Rejected {
                reason: Rejection::Unauthorized,
            },
        ),
        (Fault::Status(404), WriteFailure::NotFound),
        (Fault::Drop, WriteFailure::Connection),
        (Fault::Slow(Duration::from_secs(2)), WriteFailure::Timeout),
    ];
    for (i, (fault, expected)) in cases.into_iter().enumerate() {
        api.faults()
            .fail_next(1, fault.clone(), Filter::verb("create"));
        let error = writer
            .create(&sample_request(&format!("rr-class-{i}")))
            .await
            .unwrap_err();
        assert_eq!(error.failure, expected, "{fault:?}: {error}");
    }
    // The API's own validation: a permanent 422 naming the field.
    let mut invalid = sample_request("rr-invalid");
    invalid.spec.signal_name = String::new();
    let error = writer.create(&invalid).await.unwrap_err();
    assert!(
        error.failure
            == WriteFailure::Rejected {
                reason: Rejection::Invalid
            },
        "{error}"
    );
    assert!(error.message.contains("signalName"), "{error}");
    // Readiness: the CRD is served.
    writer.check().await.unwrap();
}

#[tokio::test]
async fn a_storm_aggregate_is_patched_as_it_grows_and_when_it_closes() {
    let storm = "rate_threshold: 50\npattern_threshold: 2\nbuffer_threshold: 3\ninactivity_timeout: 2s\nmax_window_duration: 1m\n";
    let files = [
        ("storm.yaml", storm),
        ("dedup.yaml", DEDUP),
        ("retry.yaml", FAST_RETRY),
    ];
    let rig = Rig::start(&files, &["--update-interval", "1s"]).await;
    let mut aggregate = None;
    for i in 0..8 {
        let (status, _, body) = rig
            .post(vec![alert(
                "NodeNotReady",
                "prod",
                &format!("node-{i}"),
                "firing",
            )])
            .await;
        assert!(status == 201 || status == 202, "{body}");
        if outcome(&body, 0) == "aggregated" {
            aggregate = body["outcomes"][0]["remediation"]
                .as_str()
                .map(str::to_owned);
        }
    }
    let name = aggregate.expect("the storm was aggregated");
    let stored = || {
        rig.api
            .object(Resource::RemediationRequests, "prod", &name)
            .unwrap()
    };
    let listed = |v: &Value| {
        v["spec"]["affectedResources"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let first = stored();
    assert_eq!(first["spec"]["isStorm"], true);
    assert_eq!(first["metadata"]["labels"]["kubernaut.io/storm"], "true");
    assert!(listed(&first) >= 3, "{first}");
    // Its growth is written within an update interval (1 s), before the window closes.
    eventually("the aggregate's growth written while open", || {
        let now = stored();
        listed(&now) == 6 && !now["spec"]["stormWindowEnd"].is_string()
    })
    .await;
    // The window closes after 2 s of quiet: the aggregate is brought up to date.
    eventually("the aggregate closed", || {
        stored()["spec"]["stormWindowEnd"].is_string()
    })
    .await;
    let last = stored();
    assert_eq!(
        listed(&last) as u64,
        last["spec"]["stormAlertCount"].as_u64().unwrap(),
        "every signal of the window is listed: {last}"
    );
    assert!(listed(&last) >= 5, "{last}");
    // Created by a POST; patched as it grew (three pods within an interval: one patch) and
    // when it closed.
    assert_eq!(
        rig.calls("patch"),
        2,
        "patched as it grew and when it closed"
    );
}

#[tokio::test]
async fn duplicates_in_a_burst_are_one_count_update_per_interval() {
    let rig = Rig::start_with(FAST_RETRY, &["--update-interval", "1s"]).await;
    let (status, _, body) = rig
        .post(vec![alert("Burst", "prod", "api-0", "firing")])
        .await;
    assert_eq!(status, 201, "{body}");
    let name = body["outcomes"][0]["remediation"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..30 {
        let (status, _, _) = rig
            .post(vec![alert("Burst", "prod", "api-0", "firing")])
            .await;
        assert_eq!(status, 202);
    }
    let count = || {
        rig.api
            .object(Resource::RemediationRequests, "prod", &name)
            .unwrap()["spec"]["deduplication"]["occurrenceCount"]
            .as_u64()
            .unwrap()
    };
    eventually("every duplicate counted", || count() == 31).await;
    let patches = rig.calls("patch");
    assert!(
        (1..=3).contains(&patches),
        "30 duplicates in well under 3 s: {patches} patches"
    );
}

#[tokio::test]
async fn the_gateway_makes_only_the_api_calls_its_rbac_grants() {
    let storm =
        "rate_threshold: 50\npattern_threshold: 2\nbuffer_threshold: 2\ninactivity_timeout: 1s\n";
    let files = [
        ("storm.yaml", storm),
        ("dedup.yaml", DEDUP),
        ("retry.yaml", FAST_RETRY),
    ];
    let rig = Rig::start(&files, &["--update-interval", "1s"]).await;
    for i in 0..4 {
        rig.post(vec![alert("Storm", "prod", &format!("p-{i}"), "firing")])
            .await;
        rig.post(vec![alert("Single", "prod", &format!("p-{i}"), "firing")])
            .await;
        rig.post(vec![alert("Single", "prod", &format!("p-{i}"), "firing")])
            .await;
    }
    rig.api
        .faults()
        .fail_next(1, Fault::Status(500), Filter::verb("create"));
    rig.post(vec![alert("Single", "prod", "p-9", "firing")])
        .await;
    // A second replica (its own dedup) meets the first one's resource: AlreadyExists, get, patch.
    let second = Rig::replica(&rig.flags).await;
    let again = rig
        .http
        .post(second.prometheus_url())
        .json(&webhook(vec![alert("Single", "prod", "p-0", "firing")]))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    second.stop().await;
    // The storm window closes after 1 s of quiet and the duplicates' counts are flushed.
    eventually("the aggregate closed and the counts written", || {
        rig.remediations()
            .iter()
            .any(|r| r["spec"]["stormWindowEnd"].is_string())
            && rig.remediations().iter().any(|r| {
                r["spec"]["signalName"] == "Single"
                    && r["spec"]["deduplication"]["occurrenceCount"] == 2
                    && r["spec"]["targetResource"]["name"] == "p-1"
            })
    })
    .await;
    let granted: BTreeSet<(String, String, String)> = API_CALLS
        .iter()
        .map(|c| (c.group.to_owned(), c.resource.to_owned(), c.verb.to_owned()))
        .collect();
    let mut used = BTreeSet::new();
    for request in rig.api.requests() {
        if request.resource.is_empty() {
            continue; // discovery, readable by every authenticated client
        }
        let call = (
            request.group.clone(),
            request.resource.clone(),
            request.verb.to_owned(),
        );
        assert!(
            granted.contains(&call) && request.subresource.is_none(),
            "{} {} is not granted by API_CALLS",
            request.method,
            request.path
        );
        used.insert(request.verb);
    }
    assert_eq!(
        used,
        BTreeSet::from(["create", "get", "patch"]),
        "every RemediationRequest verb the sink needs was exercised"
    );
}

pub(crate) fn sample_request(name: &str) -> RemediationRequest {
    let t = Timestamp::from_secs(1_764_090_000);
    let resource = ResourceRef {
        kind: "Pod".to_owned(),
        name: "api-0".to_owned(),
        namespace: "prod".to_owned(),
    };
    RemediationRequest {
        name: name.to_owned(),
        namespace: "prod".to_owned(),
        labels: [("kubernaut.io/severity".to_owned(), "warning".to_owned())].into(),
        spec: RemediationRequestSpec {
            signal_fingerprint: Fingerprint::from_hex(&"c".repeat(64)).unwrap(),
            signal_name: "HighLatency".to_owned(),
            severity: Severity::Warning,
            signal_type: "prometheus-alert".to_owned(),
            signal_source: "prometheus".to_owned(),
            target_type: "kubernetes".to_owned(),
            target_resource: resource,
            firing_time: t,
            received_time: t,
            signal_labels: Default::default(),
            signal_annotations: Default::default(),
            is_storm: false,
            storm: None,
            deduplication: DeduplicationInfo {
                first_occurrence: t,
                last_occurrence: t,
                occurrence_count: 1,
            },
        },
    }
}
