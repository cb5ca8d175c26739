//! `--config-source configmap:NAMESPACE/NAME`: the gateway — the composition `gateway serve`
//! builds, over a real socket — reading and watching its ConfigMap through the Kubernetes API
//! (the API-server emulator, `gateway_tests::apiserver`), with the file source's validation,
//! metrics, audit and `/config`.
//!
//! Changes are made through the kube client, as `kubectl` would; each test polls, with a
//! deadline, for what it expects. A change must apply within [`PROMPT`]: that is the point of
//! watching the API instead of the kubelet-updated volume.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway_adapter_file_config::WatchOptions;
use gateway_tests::apiserver::{ApiServer, Resource};
use gateway_tests::served::ServedGateway;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "kubernaut-system";
const NAME: &str = "kubernaut-gateway-config";
const SOURCE: &str = "configmap:kubernaut-system/kubernaut-gateway-config";
/// What origins, problems and audit lines call the ConfigMap.
const LABEL: &str = "configmap kubernaut-system/kubernaut-gateway-config";

/// How soon a change made through the API must be in force.
const PROMPT: Duration = Duration::from_secs(2);
/// How long a test waits for what is not about promptness (start-up, a watch reopening).
const DEADLINE: Duration = Duration::from_secs(20);

const STORM: &str = "rate_threshold: 7\npattern_threshold: 5\n";
const DEDUP: &str = "ttl: 10m\n";
const RETRY: &str = "max_attempts: 3\n";
const SECURITY: &str = "allowed_namespaces: [team-*]\n";

fn seed_data() -> Value {
    json!({
        "storm.yaml": STORM,
        "dedup.yaml": DEDUP,
        "retry.yaml": RETRY,
        "security.yaml": SECURITY,
    })
}

fn configmap(data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": NAME, "namespace": NAMESPACE },
        "data": data,
    }))
    .unwrap()
}

/// The emulator, a gateway on the ConfigMap source, and the temporary directory they use.
struct Rig {
    server: ApiServer,
    gateway: ServedGateway,
    http: reqwest::Client,
    /// The API requests the test itself made (changes to the ConfigMap).
    writes: AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// The emulator holding the seed ConfigMap (or none), and a gateway on it, watching.
    async fn start(seed: Option<Value>) -> Rig {
        Self::start_with(seed, Some(WatchOptions::default())).await
    }

    async fn start_with(seed: Option<Value>, watch: Option<WatchOptions>) -> Rig {
        let server = ApiServer::start().await;
        if let Some(data) = seed {
            server.put_object(
                Resource::ConfigMaps,
                json!({ "metadata": { "name": NAME, "namespace": NAMESPACE }, "data": data }),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let gateway = try_start(&server, &dir, watch)
            .await
            .unwrap_or_else(|e| panic!("the gateway starts: {e:#}"));
        Rig {
            server,
            gateway,
            http: reqwest::Client::new(),
            writes: AtomicUsize::new(0),
            _dir: dir,
        }
    }

    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.server.client(), NAMESPACE)
    }

    /// Changes one key of the ConfigMap through the API (a merge patch, as `kubectl patch`).
    async fn set(&self, key: &str, text: &str) {
        self.patch(json!({ "data": { key: text } })).await;
    }

    /// A merge patch of the ConfigMap (`null` removes a key).
    async fn patch(&self, patch: Value) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.api()
            .patch(NAME, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    /// Deletes the ConfigMap through the API.
    async fn delete(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.api()
            .delete(NAME, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Creates the ConfigMap through the API.
    async fn create(&self, data: Value) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.api()
            .create(&PostParams::default(), &configmap(data))
            .await
            .unwrap();
    }

    async fn config(&self) -> Value {
        self.http
            .get(format!("{}/config", self.gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.gateway.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `POST /-/reload`: status and body.
    async fn reload(&self) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/-/reload", self.gateway.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Polls `/config` until `check` holds, within `within`; returns it then.
    async fn wait_config(
        &self,
        within: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let config = self.config().await;
            if check(&config) {
                return config;
            }
            assert!(
                started.elapsed() < within,
                "{what}: not within {within:?}; /config: {config:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the gateway's watch is open, so a change is seen by it (not by the list).
    async fn wait_watching(&self) {
        let started = Instant::now();
        while self.server.open_watches() == 0 {
            assert!(started.elapsed() < DEADLINE, "the gateway never watched");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every API request of the gateway was one RBAC allows (`gateway_adapter_kube::API_CALLS`),
    /// and a read of its ConfigMap: `get`, `list` or `watch`. (The other requests are the test's
    /// own changes, and there are exactly as many as it made.)
    fn assert_only_reads_of_configmaps(&self) {
        let (reads, writes): (Vec<_>, Vec<_>) = self
            .server
            .requests()
            .into_iter()
            .filter(|r| r.is_resource())
            .partition(|r| matches!(r.verb, "get" | "list" | "watch"));
        assert_eq!(
            writes.len(),
            self.writes.load(Ordering::SeqCst),
            "only the test writes: {writes:?}"
        );
        assert!(!reads.is_empty());
        for r in &reads {
            assert_eq!(
                (r.group.as_str(), r.resource.as_str()),
                ("", "configmaps"),
                "{r:?}"
            );
            assert_eq!(r.namespace.as_deref(), Some(NAMESPACE), "{r:?}");
            assert!(
                gateway_adapter_kube::API_CALLS
                    .iter()
                    .any(|c| c.group == r.group && c.resource == r.resource && c.verb == r.verb),
                "not in API_CALLS: {r:?}"
            );
            if matches!(r.verb, "list" | "watch") {
                assert_eq!(
                    r.param("fieldSelector").as_deref(),
                    Some("metadata.name=kubernaut-gateway-config"),
                    "{r:?}"
                );
            }
        }
    }
}

/// The flags of a gateway on the emulator's ConfigMap, writing into `dir`.
fn flags(server: &ApiServer, dir: &tempfile::TempDir) -> Vec<String> {
    let kubeconfig = server.write_kubeconfig(dir.path());
    vec![
        "--config-source".to_owned(),
        SOURCE.to_owned(),
        "--kubeconfig".to_owned(),
        kubeconfig.display().to_string(),
        // The file source is not in force: a directory that does not exist proves it.
        "--config-dir".to_owned(),
        dir.path().join("not-used").display().to_string(),
        "--remediation-dir".to_owned(),
        dir.path().join("out").display().to_string(),
    ]
}

async fn try_start(
    server: &ApiServer,
    dir: &tempfile::TempDir,
    watch: Option<WatchOptions>,
) -> anyhow::Result<ServedGateway> {
    let flags = flags(server, dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    ServedGateway::try_start(&flags, watch).await
}

fn metric(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_starts_on_the_configmap_and_applies_a_change_within_two_seconds() {
    let rig = Rig::start(Some(seed_data())).await;
    let config = rig.config().await;
    assert_eq!(config["storm"]["settings"]["rate_threshold"], 7);
    assert_eq!(config["storm"]["settings"]["pattern_threshold"], 5);
    assert_eq!(config["dedup"]["settings"]["ttl"], "10m");
    assert_eq!(config["retry"]["settings"]["max_attempts"], 3);
    for kind in ["storm", "dedup", "retry"] {
        assert_eq!(
            config[kind]["origin"],
            format!("{LABEL}: {kind}.yaml"),
            "{config:#}"
        );
        assert_eq!(config[kind]["generation"], 0);
        assert_eq!(config[kind]["hash"].as_str().unwrap().len(), 64);
    }
    rig.wait_watching().await;

    let changed = Instant::now();
    rig.set("dedup.yaml", "ttl: 2m\n").await;
    let config = rig
        .wait_config(PROMPT, "the new dedup TTL", |c| {
            c["dedup"]["settings"]["ttl"] == "2m"
        })
        .await;
    let took = changed.elapsed();
    assert_eq!(config["dedup"]["generation"], 1);
    assert_eq!(config["dedup"]["last_reload"]["result"], "success");
    assert_eq!(config["storm"]["generation"], 0, "only dedup changed");
    assert_eq!(
        rig.gateway.gateway.settings().dedup.ttl.get(),
        Duration::from_secs(120),
        "the pipeline reads the new value"
    );
    let metrics = rig.metrics().await;
    for line in [
        "gateway_config_reload_total{config_type=\"dedup\",result=\"success\"} 1",
        "gateway_config_reload_total{config_type=\"dedup\",result=\"error\"} 0",
        "gateway_config_reload_total{config_type=\"storm\",result=\"success\"} 0",
        "gateway_config_generation{config_type=\"dedup\"} 1",
    ] {
        assert!(metric(&metrics, line), "missing {line}:\n{metrics}");
    }
    eprintln!("a ConfigMap change was in force after {took:?}");
    rig.assert_only_reads_of_configmaps();
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_change_is_rejected_counted_and_shown_and_the_settings_in_force_stay() {
    let rig = Rig::start(Some(seed_data())).await;
    rig.wait_watching().await;
    rig.set("storm.yaml", "rate_threshold: 0\n").await;
    let config = rig
        .wait_config(PROMPT, "the rejection", |c| {
            c["storm"]["last_reload"]["result"] == "error"
        })
        .await;
    let errors = config["storm"]["last_reload"]["errors"].as_array().unwrap();
    let first = errors[0].as_str().unwrap();
    assert!(
        first.starts_with(&format!("{LABEL}: storm.yaml: rate_threshold: ")),
        "{first}"
    );
    assert_eq!(
        config["storm"]["settings"]["rate_threshold"], 7,
        "old settings stay"
    );
    assert_eq!(config["storm"]["generation"], 0);
    assert_eq!(config["storm"]["origin"], format!("{LABEL}: storm.yaml"));
    assert_eq!(rig.gateway.gateway.settings().storm.rate_threshold.get(), 7);
    let metrics = rig.metrics().await;
    for line in [
        "gateway_config_reload_total{config_type=\"storm\",result=\"error\"} 1",
        "gateway_config_reload_total{config_type=\"storm\",result=\"success\"} 0",
        "gateway_config_generation{config_type=\"storm\"} 0",
    ] {
        assert!(metric(&metrics, line), "missing {line}:\n{metrics}");
    }

    // Still invalid: POST /-/reload reads it again and still says so.
    let (status, body) = rig.reload().await;
    assert_eq!(status, 500, "{body:#}");
    assert_eq!(body["storm"]["result"], "error");

    // Fixed: applied.
    rig.set("storm.yaml", "rate_threshold: 4\n").await;
    rig.wait_config(PROMPT, "the fix", |c| {
        c["storm"]["settings"]["rate_threshold"] == 4 && c["storm"]["generation"] == 1
    })
    .await;
    rig.assert_only_reads_of_configmaps();
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_or_a_deleted_configmap_keeps_the_settings_in_force() {
    let rig = Rig::start(Some(seed_data())).await;
    rig.wait_watching().await;

    // A key removed (a merge patch with null deletes it): rejected like a vanished file.
    rig.patch(json!({ "data": { "retry.yaml": null } })).await;
    let config = rig
        .wait_config(PROMPT, "the removed key rejected", |c| {
            c["retry"]["last_reload"]["result"] == "error"
        })
        .await;
    assert_eq!(config["retry"]["settings"]["max_attempts"], 3);
    assert!(
        config["retry"]["last_reload"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("retry.yaml"),
        "{config:#}"
    );

    // The ConfigMap deleted: every type rejected, every setting stays.
    rig.delete().await;
    let config = rig
        .wait_config(PROMPT, "the deletion rejected", |c| {
            ["storm", "dedup", "security"]
                .iter()
                .all(|k| c[*k]["last_reload"]["result"] == "error")
        })
        .await;
    assert_eq!(config["storm"]["settings"]["rate_threshold"], 7);
    assert_eq!(config["dedup"]["settings"]["ttl"], "10m");
    assert_eq!(config["retry"]["settings"]["max_attempts"], 3);
    assert_eq!(
        config["security"]["settings"]["allowed_namespaces"],
        json!(["team-*"])
    );
    for kind in ["storm", "dedup", "retry", "security"] {
        assert_eq!(config[kind]["generation"], 0, "{config:#}");
    }
    let (status, _) = rig.reload().await;
    assert_eq!(status, 500, "still gone: still an error");

    // Created again with new settings: applied.
    rig.create(json!({
        "storm.yaml": "rate_threshold: 9\n",
        "dedup.yaml": DEDUP,
        "retry.yaml": RETRY,
        "security.yaml": "allowed_namespaces: [team-*, default]\n",
    }))
    .await;
    rig.wait_config(PROMPT, "the new ConfigMap applied", |c| {
        c["storm"]["settings"]["rate_threshold"] == 9
            && c["security"]["settings"]["allowed_namespaces"] == json!(["team-*", "default"])
            && ["storm", "dedup", "retry", "security"]
                .iter()
                .all(|k| c[*k]["last_reload"]["result"] == "success")
    })
    .await;
    rig.assert_only_reads_of_configmaps();
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reads_the_configmap_again_with_one_get() {
    // No watch: only POST /-/reload can see the change.
    let rig = Rig::start_with(Some(seed_data()), None).await;
    rig.server.clear_requests();
    let (status, body) = rig.reload().await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["storm"]["changed"], false);

    rig.set("storm.yaml", "rate_threshold: 12\n").await;
    let (status, body) = rig.reload().await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["storm"]["changed"], true);
    assert_eq!(body["storm"]["result"], "success");
    assert_eq!(body["dedup"]["changed"], false);
    assert_eq!(
        rig.config().await["storm"]["settings"]["rate_threshold"],
        12
    );
    let gets: Vec<_> = rig
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "configmaps" && r.verb == "get")
        .collect();
    assert_eq!(gets.len(), 2, "one get per reload: {gets:?}");
    assert_eq!(gets[0].name.as_deref(), Some(NAME));
    rig.assert_only_reads_of_configmaps();
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_configmap_the_gateway_starts_on_defaults_and_takes_it_when_created() {
    let rig = Rig::start(None).await;
    let config = rig.config().await;
    for kind in ["storm", "dedup", "retry"] {
        assert_eq!(config[kind]["origin"], "built-in defaults", "{config:#}");
    }
    assert_eq!(config["dedup"]["settings"]["ttl"], "5m");
    rig.wait_watching().await;
    rig.create(seed_data()).await;
    let config = rig
        .wait_config(PROMPT, "the created ConfigMap applied", |c| {
            c["storm"]["settings"]["rate_threshold"] == 7
        })
        .await;
    assert_eq!(config["storm"]["origin"], format!("{LABEL}: storm.yaml"));
    assert_eq!(config["dedup"]["settings"]["ttl"], "10m");
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_recovers_after_the_api_ends_it_and_forgets_its_history() {
    let rig = Rig::start(Some(seed_data())).await;
    rig.wait_watching().await;
    // A restarted API server: the watch ends and its resource version is too old to resume.
    rig.server.compact();
    rig.server.end_watches();
    rig.set("dedup.yaml", "ttl: 3m\n").await;
    rig.wait_config(DEADLINE, "the change after the watch came back", |c| {
        c["dedup"]["settings"]["ttl"] == "3m"
    })
    .await;
    // The relist found the same content for the others: not judged again.
    let config = rig.config().await;
    assert_eq!(config["storm"]["last_reload"], Value::Null, "{config:#}");
    rig.assert_only_reads_of_configmaps();
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_in_the_configmap_keep_the_gateway_from_starting() {
    let server = ApiServer::start().await;
    server.put_object(
        Resource::ConfigMaps,
        json!({
            "metadata": { "name": NAME, "namespace": NAMESPACE },
            "data": { "storm.yaml": "rate_threshold: 0\n", "dedup.yaml": "ttl: soon\n" },
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let error = try_start(&server, &dir, Some(WatchOptions::default()))
        .await
        .err()
        .expect("the gateway refuses to start");
    let message = format!("{error:#}");
    assert!(
        message.contains(&format!("{LABEL}: storm.yaml: rate_threshold"))
            && message.contains(&format!("{LABEL}: dedup.yaml: ttl")),
        "{message}"
    );
}
