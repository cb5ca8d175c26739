//! Storm aggregates as the API server sees them: written under the request's deadline, side by
//! side, never backwards, and coalesced (the creation, at most one update per aggregate per
//! `--update-interval`, the close); and storms deciding alike whatever backs their state.
//!
//! The whole gateway runs on a socket (`--sink kubernetes`) against the API-server emulator,
//! whose request log (with arrival and answer times) and watch history are the evidence.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use gateway_tests::apiserver::{ApiServer, Fault, Filter, Recorded, Resource};
use gateway_tests::kubelet::KubeletDir;
use gateway_tests::redis::TestRedis;
use gateway_tests::served::ServedGateway;
use gateway_tests::{alert, webhook};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, WatchEvent, WatchParams};
use serde_json::Value;

const DEDUP: &str = "ttl: 10m\n";
const RETRY: &str = "max_attempts: 3\ninitial_backoff: 10ms\nmax_backoff: 100ms\n";

/// A gateway writing through the emulated API, with these storm settings and extra flags.
struct Rig {
    api: ApiServer,
    _dir: tempfile::TempDir,
    _config: KubeletDir,
    gateway: ServedGateway,
    http: reqwest::Client,
}

impl Rig {
    async fn start(storm: &str, extra: &[&str]) -> Rig {
        let api = ApiServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path());
        let config = KubeletDir::create(
            dir.path().join("config"),
            &[
                ("storm.yaml", storm),
                ("dedup.yaml", DEDUP),
                ("retry.yaml", RETRY),
            ],
        )
        .unwrap();
        let mut flags = vec![
            "--sink",
            "kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--config-dir",
            config.path().to_str().unwrap(),
        ];
        flags.extend_from_slice(extra);
        let gateway = ServedGateway::start(&flags, None).await;
        Rig {
            api,
            _dir: dir,
            _config: config,
            gateway,
            http: reqwest::Client::new(),
        }
    }

    /// Posts one alert; its status, body and how long the answer took.
    async fn post(&self, name: &str, pod: &str) -> (u16, Value, Duration) {
        let started = Instant::now();
        let response = self
            .http
            .post(self.gateway.prometheus_url())
            .json(&webhook(vec![alert(name, "prod", pod, "firing")]))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap();
        (status, body, started.elapsed())
    }

    /// Writes (create, patch) of RemediationRequests, in arrival order.
    fn writes(&self) -> Vec<Recorded> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.resource == "remediationrequests" && matches!(r.verb, "create" | "patch"))
            .collect()
    }

    fn aggregates(&self) -> Vec<Value> {
        self.api
            .objects(Resource::RemediationRequests)
            .into_iter()
            .filter(|o| o["spec"]["isStorm"] == true)
            .collect()
    }

    /// Waits until every storm aggregate is closed; returns them.
    async fn closed_aggregates(&self, expected: usize) -> Vec<Value> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let aggregates = self.aggregates();
            if aggregates.len() == expected
                && aggregates
                    .iter()
                    .all(|a| a["spec"]["stormWindowEnd"].is_string())
            {
                return aggregates;
            }
            assert!(
                Instant::now() < until,
                "aggregates not closed: {aggregates:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every version of every storm aggregate the API stored since `since`, in order, per name.
    async fn aggregate_history(&self, since: u64) -> BTreeMap<String, Vec<Value>> {
        let gvk =
            GroupVersionKind::gvk("remediation.kubernaut.io", "v1alpha1", "RemediationRequest");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.api.client(), "prod", &ApiResource::from_gvk(&gvk));
        let events: Vec<WatchEvent<DynamicObject>> = api
            .watch(&WatchParams::default().timeout(1), &since.to_string())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut history: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for event in events {
            if let WatchEvent::Added(object) | WatchEvent::Modified(object) = event {
                let spec = object.data["spec"].clone();
                if spec["isStorm"] == true {
                    let name = object.metadata.name.clone().unwrap();
                    history.entry(name).or_default().push(spec);
                }
            }
        }
        history
    }
}

fn outcome(body: &Value) -> String {
    body["outcomes"][0]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Each aggregate's stored versions only ever grow: more alerts, as many resources or more, and
/// once closed, closed.
fn assert_never_backwards(history: &BTreeMap<String, Vec<Value>>) {
    for (name, versions) in history {
        for pair in versions.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            let count = |v: &Value| v["stormAlertCount"].as_u64().unwrap();
            let listed = |v: &Value| v["affectedResources"].as_array().unwrap().len();
            assert!(
                count(after) >= count(before) && listed(after) >= listed(before),
                "{name} went backwards: {before:#} then {after:#}"
            );
            assert!(
                !before["stormWindowEnd"].is_string() || after["stormWindowEnd"].is_string(),
                "{name} reopened"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_writes_of_two_storms_run_side_by_side_and_every_answer_is_in_time() {
    // Pattern storms from the 4th distinct pod, aggregates at 2 buffered pods; quiet after 3 s.
    let storm = "rate_threshold: 1000\npattern_threshold: 3\nbuffer_threshold: 2\ninactivity_timeout: 3s\nmax_window_duration: 1m\n";
    let rig = Rig::start(
        storm,
        &[
            "--kube-timeout",
            "4s",
            "--write-deadline",
            "8s",
            "--update-interval",
            "1s",
        ],
    )
    .await;
    let since = rig.api.resource_version();
    // Every RemediationRequest call takes 3 s from now on.
    rig.api.faults().set_rate(
        1.0,
        vec![Fault::Slow(Duration::from_secs(3))],
        Filter::resource("remediationrequests"),
        7,
    );
    let mut sends = Vec::new();
    for storm in ["DiskFull", "OOMKilled"] {
        for pod in 0..8 {
            sends.push((storm.to_owned(), format!("{storm}-{pod}")));
        }
    }
    for plain in 0..4 {
        sends.push((format!("Plain{plain}"), "api-0".to_owned()));
    }
    // Each storm's first pods arrive first, so that the storm is detected in a known order;
    // everything else at once.
    let answers = futures::future::join_all(sends.iter().enumerate().map(|(i, (name, pod))| {
        let rig = &rig;
        async move {
            tokio::time::sleep(Duration::from_millis(if i % 8 < 4 { 0 } else { 200 })).await;
            rig.post(name, pod).await
        }
    }))
    .await;
    for ((name, pod), (status, body, took)) in sends.iter().zip(&answers) {
        assert!(matches!(status, 201 | 202), "{name}/{pod}: {status} {body}");
        assert!(
            *took <= Duration::from_millis(8_500),
            "{name}/{pod} answered after {took:?}: {body}"
        );
    }
    let slowest = answers.iter().map(|(_, _, took)| *took).max().unwrap();
    eprintln!(
        "{} webhooks under 3 s API latency: the slowest answered in {slowest:?}",
        answers.len()
    );
    let aggregated = answers
        .iter()
        .filter(|(_, body, _)| outcome(body) == "aggregated")
        .count();
    assert!(aggregated >= 2, "both storms aggregated: {answers:#?}");

    let aggregates = rig.closed_aggregates(2).await;
    let names: Vec<String> = aggregates
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    // The two aggregates' writes (their updates and closes, which name them) overlap in time:
    // neither waited for the other.
    let intervals = |name: &str| -> Vec<(Instant, Instant)> {
        writes_of(&rig.writes(), name)
            .into_iter()
            .map(|r| (r.received, r.answered.expect("answered")))
            .collect()
    };
    let (a, b) = (intervals(&names[0]), intervals(&names[1]));
    assert!(!a.is_empty() && !b.is_empty(), "{a:?} {b:?}");
    let overlap = a
        .iter()
        .any(|(a0, a1)| b.iter().any(|(b0, b1)| a0 < b1 && b0 < a1));
    assert!(
        overlap,
        "the aggregates were written one after the other: {a:?} {b:?}"
    );

    let history = rig.aggregate_history(since).await;
    assert_eq!(history.len(), 2, "{history:#?}");
    assert_never_backwards(&history);
    for aggregate in &aggregates {
        let spec = &aggregate["spec"];
        assert_eq!(
            spec["stormAlertCount"].as_u64().unwrap(),
            spec["affectedResources"].as_array().unwrap().len() as u64,
            "one signal per pod: {aggregate:#}"
        );
    }
}

/// Writes of the named RemediationRequest (its creation is a POST to the collection, whose
/// body names it: counted by the caller).
fn writes_of(writes: &[Recorded], name: &str) -> Vec<Recorded> {
    writes
        .iter()
        .filter(|r| r.name.as_deref() == Some(name))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_400_pod_storm_is_one_creation_an_update_per_interval_and_the_close() {
    // The defaults (pattern storm above 5 pods, aggregate at 5 buffered) but a quick close.
    let storm = "inactivity_timeout: 2s\nmax_window_duration: 10m\n";
    let rig = Rig::start(storm, &["--update-interval", "1s"]).await;
    let started = Instant::now();
    let mut outcomes = BTreeMap::<String, usize>::new();
    for pod in 0..400 {
        let (status, body, _) = rig.post("PodCrashLooping", &format!("web-{pod}")).await;
        assert!(matches!(status, 201 | 202), "{status} {body}");
        *outcomes.entry(outcome(&body)).or_default() += 1;
    }
    let sent_for = started.elapsed();
    assert_eq!(outcomes.get("created"), Some(&5), "{outcomes:?}");
    assert_eq!(outcomes.get("buffered"), Some(&4), "{outcomes:?}");
    assert_eq!(outcomes.get("aggregated"), Some(&391), "{outcomes:?}");

    let aggregates = rig.closed_aggregates(1).await;
    let aggregate = &aggregates[0];
    let name = aggregate["metadata"]["name"].as_str().unwrap();
    let spec = &aggregate["spec"];
    assert_eq!(
        spec["stormAlertCount"], 395,
        "every pod but the 5 created alone"
    );
    assert_eq!(spec["affectedResources"].as_array().unwrap().len(), 395);
    assert_eq!(spec["stormSampledOutCount"], 0);
    assert_eq!(spec["deduplication"]["occurrenceCount"], 395);

    let writes = rig.writes();
    let creates = writes.iter().filter(|r| r.verb == "create").count();
    assert_eq!(creates, 6, "5 pods and the aggregate: {writes:#?}");
    let patches = writes_of(&writes, name);
    assert!(patches.iter().all(|r| r.verb == "patch"), "{patches:#?}");
    let (first, last) = (
        patches.first().expect("patched").received,
        patches.last().expect("patched").received,
    );
    // Growth: at most one patch per interval while the storm lasted; then the close.
    let allowed = last.duration_since(first).as_secs() as usize + 1 + 1;
    eprintln!(
        "400-pod storm sent in {sent_for:?}: {creates} POSTs, {} PATCHes over {:?} (at most {allowed})",
        patches.len(),
        last.duration_since(first)
    );
    assert!(
        patches.len() <= allowed,
        "{} patches in {:?} (storm sent in {sent_for:?}); at most {allowed}",
        patches.len(),
        last.duration_since(first)
    );
}

/// The outcomes of one storm scenario, sent one webhook at a time to `gateway`.
async fn scenario_outcomes(gateway: &ServedGateway) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut outcomes = Vec::new();
    let mut sends: Vec<(String, String, &str)> = Vec::new();
    for pod in 0..12 {
        sends.push(("NodeDown".into(), format!("n-{pod}"), "firing"));
        if pod % 3 == 0 {
            sends.push(("HighLatency".into(), format!("h-{pod}"), "firing"));
        }
    }
    // Duplicates and a resolution in the middle of the storm, then more of it.
    sends.push(("NodeDown".into(), "n-1".into(), "firing"));
    sends.push(("HighLatency".into(), "h-0".into(), "resolved"));
    sends.push(("HighLatency".into(), "h-0".into(), "firing"));
    for pod in 12..20 {
        sends.push(("NodeDown".into(), format!("n-{pod}"), "firing"));
    }
    for (name, pod, status) in sends {
        let body = webhook(vec![alert(&name, "prod", &pod, status)]);
        let response = http
            .post(gateway.prometheus_url())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{name}/{pod}");
        let body: Value = response.json().await.unwrap();
        outcomes.push(format!("{name}/{pod}: {}", outcome(&body)));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_decide_alike_in_memory_and_in_redis() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("storm.yaml"),
        "rate_threshold: 1000\npattern_threshold: 3\nbuffer_threshold: 3\ninactivity_timeout: 5m\nmax_window_duration: 10m\nsampling_threshold: 0.5\nsampling_rate: 0.5\n",
    )
    .unwrap();
    let flags = |out: &std::path::Path| {
        vec![
            "--config-dir".to_owned(),
            config.to_str().unwrap().to_owned(),
            "--remediation-dir".to_owned(),
            out.to_str().unwrap().to_owned(),
            "--storm-window-capacity".to_owned(),
            "8".to_owned(),
        ]
    };
    let memory_out = root.path().join("memory");
    let memory_flags = flags(&memory_out);
    let memory_flags: Vec<&str> = memory_flags.iter().map(String::as_str).collect();
    let memory = ServedGateway::start(&memory_flags, None).await;
    let in_memory = scenario_outcomes(&memory).await;
    memory.stop().await;

    let redis = TestRedis::start().await;
    let redis_out = root.path().join("redis");
    let mut redis_flags = flags(&redis_out);
    redis_flags.extend(["--redis-url".to_owned(), redis.url.clone()]);
    let redis_flags: Vec<&str> = redis_flags.iter().map(String::as_str).collect();
    let shared = ServedGateway::start(&redis_flags, None).await;
    let in_redis = scenario_outcomes(&shared).await;
    shared.stop().await;

    assert_eq!(in_memory, in_redis);
    for expected in [
        "created",
        "buffered",
        "aggregated",
        "sampled_out",
        "duplicate",
        "resolved",
    ] {
        assert!(
            in_memory
                .iter()
                .any(|o| o.ends_with(&format!(": {expected}"))),
            "the scenario exercises {expected}: {in_memory:#?}"
        );
    }
}

/// A storm from 32 concurrent senders to one gateway on Redis: every signal goes to one window,
/// and the requests of this process take it in turn (`app/src/window_locks.rs`), so none is
/// refused for contention (before, 32 racing one compare-and-set gave up with 503s:
/// `bench-load`'s storm case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_from_32_concurrent_senders_on_redis_is_answered_2xx_every_time() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("storm.yaml"),
        "rate_threshold: 10\npattern_threshold: 5\nbuffer_threshold: 5\ninactivity_timeout: 5m\nmax_window_duration: 10m\nsampling_threshold: 0.95\nsampling_rate: 0.5\n",
    )
    .unwrap();
    let out = root.path().join("out");
    let redis = TestRedis::start().await;
    let gateway = ServedGateway::start(
        &[
            "--config-dir",
            config.to_str().unwrap(),
            "--remediation-dir",
            out.to_str().unwrap(),
            "--redis-url",
            &redis.url,
        ],
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let senders: Vec<_> = (0..32)
        .map(|sender| {
            let http = http.clone();
            let url = gateway.prometheus_url();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for n in 0..15 {
                    let pod = format!("p-{sender}-{n}");
                    let body = webhook(vec![alert("NodeDown", "prod", &pod, "firing")]);
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    statuses.push(response.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut refused = Vec::new();
    for sender in senders {
        refused.extend(
            sender
                .await
                .unwrap()
                .into_iter()
                .filter(|s| !(200..300).contains(s)),
        );
    }
    assert!(refused.is_empty(), "answers other than 2xx: {refused:?}");
    let aggregates: Vec<_> = gateway_tests::read_remediations(&out)
        .into_iter()
        .filter(|rr| {
            rr["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("rr-storm-")
        })
        .collect();
    assert_eq!(aggregates.len(), 1, "one aggregate for the storm");
    gateway.stop().await;
}
