//! The Kustomize base in `deploy/`, rendered by `kubectl kustomize deploy/` and checked against
//! the code it deploys: the CRD is the code's, the RBAC grants exactly `API_CALLS`, the
//! Deployment's arguments parse with the gateway's own CLI, the ConfigMap passes `config check`,
//! the alerts only name metrics the gateway exposes (and promtool accepts and fires them).
//!
//! Needs `kubectl` (Debian: `apt-get install kubernetes-client`; `.ci/run` installs it) or
//! `GATEWAY_TEST_KUBECTL=/path/to/kubectl`; the base renders with kubectl 1.20 (kustomize v2.0.3)
//! and later. The promtool checks run when `promtool` is there (Debian's `prometheus`), and are
//! required under CI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use gateway::cli::{Cli, ConfigSourceArg, LogFormat, Sink};
use gateway::metrics::Metrics;
use serde::Deserialize;
use serde_json::{Value, json};

const NAMESPACE: &str = "kubernaut-system";
const NAME: &str = "kubernaut-gateway";
const CONFIG_MAP: &str = "kubernaut-gateway-config";
const CONFIG_DIR: &str = "/etc/kubernaut/config";
const CONFIG_FILES: [&str; 4] = ["storm.yaml", "dedup.yaml", "retry.yaml", "security.yaml"];
const AUTH_SECRET: &str = "kubernaut-gateway-auth";
const AUTH_DIR: &str = "/etc/kubernaut/auth";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

/// `kubectl kustomize deploy/`, once per test binary, as JSON values.
fn rendered() -> &'static [Value] {
    static RENDERED: OnceLock<Vec<Value>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let kubectl = std::env::var("GATEWAY_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let output = Command::new(&kubectl)
            .arg("kustomize")
            .arg(deploy_dir())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{kubectl} kustomize deploy/` ({e}): install kubectl \
                     (Debian: `apt-get install kubernetes-client`; .ci/run does) or set \
                     GATEWAY_TEST_KUBECTL to one"
                )
            });
        assert!(
            output.status.success(),
            "`{kubectl} kustomize deploy/` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        serde_norway::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).unwrap())
            .filter(|v| !v.is_null())
            .collect()
    })
}

fn find(kind: &str, name: &str) -> &'static Value {
    rendered()
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the render of deploy/"))
}

fn deployment() -> &'static Value {
    find("Deployment", NAME)
}

fn pod_spec() -> &'static Value {
    &deployment()["spec"]["template"]["spec"]
}

/// The gateway container (the only one).
fn container() -> &'static Value {
    let containers = pod_spec()["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container: {containers:?}");
    &containers[0]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn labels_match(selector: &Value, labels: &Value) {
    let selector = selector.as_object().unwrap();
    assert!(!selector.is_empty(), "empty selector");
    for (k, v) in selector {
        assert_eq!(
            &labels[k], v,
            "label {k} of {labels} does not match the selector"
        );
    }
}

#[test]
fn every_object_is_there_in_kubernaut_system_with_the_common_labels() {
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    let expected: BTreeSet<(&str, &str)> = [
        ("Namespace", NAMESPACE),
        (
            "CustomResourceDefinition",
            "remediationrequests.remediation.kubernaut.io",
        ),
        ("ServiceAccount", NAME),
        ("ClusterRole", NAME),
        ("ClusterRoleBinding", NAME),
        ("Role", CONFIG_MAP),
        ("RoleBinding", CONFIG_MAP),
        ("ConfigMap", CONFIG_MAP),
        ("Deployment", NAME),
        ("Service", NAME),
        ("PodDisruptionBudget", NAME),
        ("NetworkPolicy", NAME),
        ("ServiceMonitor", NAME),
        ("PrometheusRule", NAME),
    ]
    .into();
    let found: BTreeSet<(&str, &str)> = rendered()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, expected);
    for o in rendered() {
        let kind = o["kind"].as_str().unwrap();
        let meta = &o["metadata"];
        if cluster_scoped.contains(&kind) {
            assert!(
                meta["namespace"].is_null(),
                "{kind} is cluster-scoped: {meta}"
            );
        } else {
            assert_eq!(meta["namespace"], NAMESPACE, "{kind}");
        }
        assert_eq!(meta["labels"]["app.kubernetes.io/name"], NAME, "{kind}");
        assert_eq!(
            meta["labels"]["app.kubernetes.io/part-of"], "kubernaut",
            "{kind}"
        );
    }
}

#[test]
fn the_crd_is_the_one_the_code_defines() {
    let mut rendered = find(
        "CustomResourceDefinition",
        "remediationrequests.remediation.kubernaut.io",
    )
    .clone();
    // Kustomize adds the common labels; everything else is the code's.
    let labels = rendered["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    assert_eq!(
        labels,
        Some(json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "kubernaut"}))
    );
    let code = serde_json::to_value(gateway_adapter_kube::crd::definition()).unwrap();
    // Numbers by value: kustomize writes the schema's `minimum: 1.0` as `1`.
    if let Some(difference) = first_difference(&rendered, &code, "") {
        panic!(
            "the CRD in the render differs from `gateway crd` at {difference}: run \
             `cargo run -p gateway -- crd > deploy/crd.yaml`"
        );
    }
}

/// Where two JSON values first differ (numbers compared as f64), if they do.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(v), Some(w)) => first_difference(v, w, &format!("{path}.{k}")),
                (v, w) => Some(format!("{path}.{k}: {v:?} vs {w:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{path}[{i}]"))),
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

/// (apiGroup, resource, verb) triples the rules of `kind`/`name` grant.
fn granted(kind: &str, name: &str) -> BTreeSet<(String, String, String)> {
    granted_by(find(kind, name))
}

/// (apiGroup, resource, verb) triples the rules of a Role or ClusterRole grant.
fn granted_by(role: &Value) -> BTreeSet<(String, String, String)> {
    let (kind, name) = (&role["kind"], &role["metadata"]["name"]);
    let mut triples = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for key in rule.as_object().unwrap().keys() {
            assert!(
                ["apiGroups", "resources", "verbs", "resourceNames"].contains(&key.as_str()),
                "{kind} {name}: unexpected rule field {key} (no nonResourceURLs)"
            );
        }
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            for value in strings(&rule[field]) {
                assert!(
                    !value.contains('*'),
                    "{kind} {name}: wildcard in {field}: {rule}"
                );
            }
        }
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                assert!(!resource.contains('/'), "no subresource: {rule}");
                for verb in strings(&rule["verbs"]) {
                    triples.insert((group.to_owned(), resource.to_owned(), verb.to_owned()));
                }
            }
        }
    }
    triples
}

#[test]
fn the_rbac_grants_exactly_the_api_calls_the_gateway_makes() {
    let cluster = granted("ClusterRole", NAME);
    let namespaced = granted("Role", CONFIG_MAP);
    let granted: BTreeSet<_> = cluster.union(&namespaced).cloned().collect();
    let needed: BTreeSet<(String, String, String)> = gateway_adapter_kube::API_CALLS
        .iter()
        .map(|c| (c.group.to_owned(), c.resource.to_owned(), c.verb.to_owned()))
        .collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "deploy/rbac.yaml must grant exactly API_CALLS (adapters/kube/src/lib.rs)\n\
         not granted: {missing:?}\ngranted but never used: {extra:?}"
    );

    // RemediationRequests land in every signal's namespace: cluster-wide. ConfigMaps: only the
    // settings one, in the gateway's namespace.
    assert!(
        cluster.iter().all(|(_, r, _)| r == "remediationrequests"),
        "{cluster:?}"
    );
    assert!(
        namespaced.iter().all(|(_, r, _)| r == "configmaps"),
        "{namespaced:?}"
    );
    for rule in find("Role", CONFIG_MAP)["rules"].as_array().unwrap() {
        assert_eq!(strings(&rule["resourceNames"]), [CONFIG_MAP], "{rule}");
    }

    // Both bindings bind the Deployment's service account to their role.
    let account = pod_spec()["serviceAccountName"].as_str().unwrap();
    assert_eq!(account, NAME);
    find("ServiceAccount", account);
    for (kind, name, role_kind) in [
        ("ClusterRoleBinding", NAME, "ClusterRole"),
        ("RoleBinding", CONFIG_MAP, "Role"),
    ] {
        let binding = find(kind, name);
        assert_eq!(binding["roleRef"]["kind"], role_kind);
        assert_eq!(binding["roleRef"]["name"], name);
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}])
        );
    }
    assert_eq!(pod_spec()["automountServiceAccountToken"], true);
}

/// The container's arguments and environment, as the gateway's CLI parses them. Each
/// environment variable must be one a flag reads (`GATEWAY_…`); it is applied as that flag, so
/// its value is checked too (a test cannot set the process environment safely).
fn parsed_cli() -> Cli {
    let c = container();
    assert!(
        c["command"].is_null(),
        "the image's ENTRYPOINT is the gateway"
    );
    let mut argv = vec!["gateway".to_owned()];
    argv.extend(strings(&c["args"]).into_iter().map(str::to_owned));
    let flags: BTreeMap<String, String> = Cli::command()
        .get_arguments()
        .filter_map(|a| Some((a.get_env()?.to_str()?.to_owned(), a.get_long()?.to_owned())))
        .collect();
    for var in c["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap();
        let flag = flags.get(name).unwrap_or_else(|| {
            panic!("{name} is not an environment variable of the gateway's CLI")
        });
        let value = var["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: expected a plain value"));
        argv.push(format!("--{flag}={value}"));
    }
    Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?} does not parse:\n{e}"))
}

#[test]
fn the_container_runs_the_gateway_with_flags_its_cli_accepts() {
    let cli = parsed_cli();
    assert!(cli.command.is_none(), "serve (the default)");
    let serve = &cli.serve;
    assert_eq!(serve.sink, Sink::Kubernetes);
    assert_eq!(serve.log_format, LogFormat::Json);
    assert_eq!(serve.config_dir, Path::new(CONFIG_DIR));
    assert_eq!(serve.config_source, ConfigSourceArg::File);
    let image = container()["image"].as_str().unwrap();
    assert!(
        image.starts_with("kubernaut/gateway:") && !image.ends_with(":latest"),
        "a pinned tag (pulled only if not present): {image}"
    );
    assert_eq!(container()["imagePullPolicy"], "IfNotPresent");
}

/// Every `GATEWAY_…` name written in deploy/ (comments included) is one the gateway reads.
#[test]
fn every_gateway_variable_named_in_deploy_is_a_real_one() {
    let mut known: BTreeSet<String> = Cli::command()
        .get_arguments()
        .filter_map(|a| Some(a.get_env()?.to_str()?.to_owned()))
        .collect();
    known.insert("GATEWAY_REDIS_PASSWORD".to_owned());
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("GATEWAY_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let name = name.trim_end_matches('_');
            assert!(
                known.contains(name) || name.starts_with("GATEWAY_SETTINGS_"),
                "{}: {name} is not an environment variable of the gateway",
                file.display()
            );
        }
    }
}

#[test]
fn the_configmap_is_mounted_as_a_directory_never_with_subpath() {
    fn no_subpath(v: &Value, path: &str) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    assert!(
                        k != "subPath" && k != "subPathExpr",
                        "{path}.{k}: the kubelet never updates a subPath mount, so the gateway \
                         would never see a ConfigMap change"
                    );
                    no_subpath(v, &format!("{path}.{k}"));
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    no_subpath(v, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    for o in rendered() {
        no_subpath(o, o["kind"].as_str().unwrap());
    }

    let volumes = pod_spec()["volumes"].as_array().unwrap();
    // Read-only root filesystem; writable only the embedded state's emptyDir (the kubernetes
    // sink writes nothing locally).
    assert_eq!(
        volumes.len(),
        3,
        "the config, the state and the auth volumes: {volumes:?}"
    );
    let volume = volumes
        .iter()
        .find(|v| v["configMap"].is_object())
        .expect("the config volume");
    assert_eq!(volume["configMap"]["name"], CONFIG_MAP);
    assert!(
        volume["configMap"]["items"].is_null(),
        "the whole ConfigMap, every key a file"
    );
    let state = volumes
        .iter()
        .find(|v| v["emptyDir"].is_object())
        .expect("the state volume");
    assert!(
        state["emptyDir"]["sizeLimit"].is_string(),
        "bounded: {state}"
    );
    let mounts = container()["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .contains(&json!({"name": volume["name"], "mountPath": CONFIG_DIR, "readOnly": true})),
        "{mounts:?}"
    );
    let state_dir = parsed_cli().serve.state_dir;
    assert!(
        mounts.contains(&json!({"name": state["name"], "mountPath": state_dir.to_str().unwrap()})),
        "--state-dir is the state volume's mount: {mounts:?}"
    );
    assert_eq!(parsed_cli().serve.config_dir, Path::new(CONFIG_DIR));
}

#[test]
fn the_auth_token_secret_is_mounted_read_only_as_a_directory() {
    let volumes = pod_spec()["volumes"].as_array().unwrap();
    let volume = volumes
        .iter()
        .find(|v| v["secret"]["secretName"] == AUTH_SECRET)
        .expect("a volume of the auth Secret");
    assert!(
        volume["secret"]["optional"].is_null() || volume["secret"]["optional"] == false,
        "fail closed: no Secret, no pod: {volume}"
    );
    assert_eq!(
        volume["secret"]["items"],
        json!([{"key": "tokens", "path": "tokens"}]),
        "the key `tokens` as the file `tokens`"
    );
    // No subPath anywhere (the subPath test covers every object); the mount is the directory.
    let mounts = container()["volumeMounts"].as_array().unwrap();
    assert!(
        mounts.contains(&json!({"name": volume["name"], "mountPath": AUTH_DIR, "readOnly": true})),
        "{mounts:?}"
    );
    // The gateway reads its tokens from that mount (`--auth token` is deploy/'s mode).
    let serve = parsed_cli().serve;
    assert_eq!(serve.auth, Some(gateway::cli::AuthMode::Token));
    assert_eq!(
        serve.auth_token_file.as_deref(),
        Some(std::path::Path::new(AUTH_DIR).join("tokens").as_path())
    );
    // No real token is committed: the Secret is made by the operator, never by the base.
    assert!(
        rendered().iter().all(|o| o["kind"] != "Secret"),
        "deploy/ must not ship a Secret"
    );
}

/// The `ports` of a NetworkPolicy rule, as (port, protocol).
fn policy_ports(rule: &Value) -> BTreeSet<(String, String)> {
    rule["ports"]
        .as_array()
        .unwrap_or_else(|| panic!("a rule with ports: {rule}"))
        .iter()
        .map(|p| {
            let port = match &p["port"] {
                Value::String(s) => s.clone(),
                n => n.to_string(),
            };
            (port, p["protocol"].as_str().unwrap_or("TCP").to_owned())
        })
        .collect()
}

/// The values a selector's `kubernetes.io/metadata.name` (or any `key`) expression allows.
fn selected(selector: &Value, key: &str) -> Vec<String> {
    selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["key"] == key && e["operator"] == "In")
        .flat_map(|e| strings(&e["values"]).into_iter().map(str::to_owned))
        .collect()
}

#[test]
fn the_network_policy_opens_the_gateway_port_and_only_the_egress_it_needs() {
    let policy = find("NetworkPolicy", NAME);
    let spec = &policy["spec"];
    let pod_labels = &deployment()["spec"]["template"]["metadata"]["labels"];
    labels_match(&spec["podSelector"]["matchLabels"], pod_labels);
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));

    // Ingress: the container's one port, from the senders' and the monitoring namespaces.
    let port = &container()["ports"][0];
    let ingress = spec["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    let ports = policy_ports(&ingress[0]);
    assert_eq!(ports.len(), 1, "{ports:?}");
    let (allowed, protocol) = ports.iter().next().unwrap();
    assert!(
        port["name"] == allowed.as_str()
            || allowed.parse::<u64>().ok() == port["containerPort"].as_u64(),
        "the ingress port {allowed} is the container's ({port})"
    );
    assert_eq!(protocol, "TCP");
    let from = ingress[0]["from"].as_array().unwrap();
    assert!(!from.is_empty(), "ingress from anywhere");
    let namespaces: Vec<String> = from
        .iter()
        .flat_map(|peer| {
            assert!(
                peer["namespaceSelector"].is_object() && peer["ipBlock"].is_null(),
                "peers are namespaces: {peer}"
            );
            selected(&peer["namespaceSelector"], "kubernetes.io/metadata.name")
        })
        .collect();
    assert_eq!(namespaces, ["monitoring", NAMESPACE]);

    // Egress: the API server (443/6443), Redis (6379, and 26379 for Sentinel, to the Redis pods),
    // DNS (53 to kube-system).
    let egress = spec["egress"].as_array().unwrap();
    let rule = |port: &str| {
        egress
            .iter()
            .find(|r| policy_ports(r).iter().any(|(p, _)| p == port))
            .unwrap_or_else(|| panic!("no egress rule for port {port}: {egress:?}"))
    };
    let api = rule("443");
    assert_eq!(
        policy_ports(api),
        [("443".into(), "TCP".into()), ("6443".into(), "TCP".into())].into()
    );
    let redis = rule("6379");
    assert_eq!(
        policy_ports(redis),
        [
            ("6379".into(), "TCP".into()),
            ("26379".into(), "TCP".into())
        ]
        .into()
    );
    let to = redis["to"].as_array().unwrap();
    assert_eq!(to.len(), 1, "{to:?}");
    assert_eq!(
        selected(&to[0]["podSelector"], "app.kubernetes.io/name"),
        ["redis"],
        "the Redis pods, not the gateway's labels: {to:?}"
    );
    assert!(
        to[0]["podSelector"]["matchLabels"].is_null(),
        "kustomize's commonLabels would rewrite matchLabels: {to:?}"
    );
    let dns = rule("53");
    assert_eq!(
        policy_ports(dns),
        [("53".into(), "TCP".into()), ("53".into(), "UDP".into())].into()
    );
    assert_eq!(
        selected(
            &dns["to"][0]["namespaceSelector"],
            "kubernetes.io/metadata.name"
        ),
        ["kube-system"]
    );
    assert_eq!(egress.len(), 3, "nothing else: {egress:?}");
}

#[test]
fn the_configmap_holds_deploy_config_and_passes_config_check() {
    let data = find("ConfigMap", CONFIG_MAP)["data"].as_object().unwrap();
    let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, CONFIG_FILES.into());
    let dir = tempfile::tempdir().unwrap();
    for file in CONFIG_FILES {
        let shipped = std::fs::read_to_string(deploy_dir().join("config").join(file)).unwrap();
        assert_eq!(
            data[file], shipped,
            "{file} differs from deploy/config/{file}"
        );
        std::fs::write(dir.path().join(file), data[file].as_str().unwrap()).unwrap();
    }
    let loaded =
        gateway_adapter_file_config::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The base narrows nothing: an install scopes its namespaces in its overlay.
    assert_eq!(
        loaded.security,
        gateway_ports::SecuritySettings::default(),
        "security.yaml ships the default, every namespace"
    );
}

#[test]
fn probes_ports_service_and_disruption_budget_fit_the_gateway() {
    let c = container();
    let port = &c["ports"][0];
    assert_eq!(c["ports"].as_array().unwrap().len(), 1);
    assert_eq!(port["name"], "http");
    assert_eq!(
        port["containerPort"],
        parsed_cli().serve.listen.port(),
        "--listen's port"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            get["port"] == "http" || get["port"] == port["containerPort"],
            "{probe}: {get}"
        );
    }

    let pod_labels = &deployment()["spec"]["template"]["metadata"]["labels"];
    labels_match(&deployment()["spec"]["selector"]["matchLabels"], pod_labels);
    assert_eq!(deployment()["spec"]["replicas"], 2);

    let service = find("Service", NAME);
    labels_match(&service["spec"]["selector"], pod_labels);
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );

    let pdb = find("PodDisruptionBudget", NAME);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    labels_match(&pdb["spec"]["selector"]["matchLabels"], pod_labels);

    let monitor = find("ServiceMonitor", NAME);
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    labels_match(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"],
    );
    let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "http");
    assert_eq!(endpoints[0]["path"], "/metrics");
}

#[test]
fn the_pod_runs_unprivileged_with_room_to_shut_down() {
    let pod = pod_spec();
    assert_eq!(
        pod["securityContext"],
        json!({
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
    let c = container();
    assert_eq!(
        c["securityContext"],
        json!({
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
        })
    );
    let resources = &c["resources"];
    for key in ["requests.cpu", "requests.memory", "limits.memory"] {
        let (a, b) = key.split_once('.').unwrap();
        assert!(resources[a][b].is_string(), "resources.{key}: {resources}");
    }

    // SIGTERM: readiness fails, --shutdown-delay passes, in-flight requests finish, then every
    // open storm window is written, with the retry budget of retry.yaml.
    let delay = parsed_cli().serve.shutdown_delay;
    let dir = tempfile::tempdir().unwrap();
    let data = &find("ConfigMap", CONFIG_MAP)["data"];
    for file in CONFIG_FILES {
        std::fs::write(dir.path().join(file), data[file].as_str().unwrap()).unwrap();
    }
    let retry = gateway_adapter_file_config::load_dir(dir.path())
        .unwrap()
        .retry;
    let drain = retry.max_backoff * retry.max_attempts;
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(
        grace > delay + drain,
        "terminationGracePeriodSeconds {grace:?} must exceed --shutdown-delay {delay:?} + the retry budget {drain:?}"
    );
    // The gateway bounds its own shutdown, so the kubelet's SIGKILL never cuts the drain.
    let bound = parsed_cli().serve.shutdown_timeout;
    assert!(
        grace > bound,
        "terminationGracePeriodSeconds {grace:?} must exceed --shutdown-timeout {bound:?}"
    );
}

// --- the PrometheusRule ---------------------------------------------------------------------------

/// Metric name → label names, as the gateway exposes them (every labelled family given one
/// child, since an empty family is not rendered).
fn exposed_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let m = Metrics::new();
    m.signal_received(&gateway_ports::test_util::signal("A").build());
    m.outcome(gateway::outcome::Outcome::Created);
    m.storm_detected(gateway_storm::StormType::Rate);
    m.http_request(
        gateway::metrics::HttpMethod::Get,
        "/healthz",
        200,
        Duration::ZERO,
    );
    m.config_reloaded(&gateway_ports::ReloadRecord {
        kind: gateway_ports::ConfigKind::Storm,
        result: gateway_ports::ReloadResult::Applied,
        duration: Duration::ZERO,
        hash: "0".repeat(64),
        generation: 1,
        at: gateway_ports::Timestamp::EPOCH,
    });
    let mut exposed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in m.render().lines().filter(|l| !l.starts_with('#')) {
        let series = line.split_whitespace().next().unwrap();
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let names = exposed.entry(name.to_owned()).or_default();
        for pair in labels.trim_end_matches('}').split(',') {
            match pair.split_once('=') {
                Some((label, _)) if label != "le" => {
                    names.insert(label.to_owned());
                }
                _ => {}
            }
        }
    }
    exposed
}

/// The rules of the PrometheusRule: (alert, rule).
fn alert_rules() -> Vec<(&'static str, &'static Value)> {
    let rule = find("PrometheusRule", NAME);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| (r["alert"].as_str().expect("alerting rules only"), r))
        .collect()
}

/// `gateway_…` metric selectors of a PromQL expression, each with its `label="value"` matchers.
fn selectors(expr: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("gateway_") {
        let boundary = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        rest = &tail[end..];
        if !boundary {
            continue;
        }
        let mut matchers = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let close = inner.find('}').unwrap();
            for m in inner[..close].split(',').filter(|m| !m.trim().is_empty()) {
                let (label, value) = m.split_once('=').unwrap();
                matchers.push((
                    label.trim().trim_end_matches(['!', '~']).to_owned(),
                    value
                        .trim()
                        .trim_start_matches('~')
                        .trim_matches('"')
                        .to_owned(),
                ));
            }
            rest = &inner[close + 1..];
        }
        found.push((name.to_owned(), matchers));
    }
    found
}

#[test]
fn the_alerts_name_only_metrics_and_labels_the_gateway_exposes() {
    let exposed = exposed_metrics();
    // Every label value the app sets is spelled in its sources (the typed label enums).
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("app/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 5, "{files:?}");
    let sources: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let runbooks = std::fs::read_to_string(deploy_dir().join("README.md")).unwrap();
    let rules = alert_rules();
    assert!(rules.len() >= 5, "{rules:?}");
    for (alert, rule) in rules {
        assert!(alert.starts_with("KubernautGateway"), "{alert}");
        let expr = rule["expr"].as_str().unwrap();
        let used = selectors(expr);
        assert!(!used.is_empty(), "{alert}: names no gateway metric: {expr}");
        for (metric, matchers) in used {
            let labels = exposed.get(&metric).unwrap_or_else(|| {
                panic!("{alert}: {metric} is not a metric the gateway exposes ({exposed:?})")
            });
            for (label, value) in matchers {
                assert!(
                    labels.contains(&label),
                    "{alert}: {metric} has no label {label} (it has {labels:?})"
                );
                assert!(
                    sources.contains(&format!("\"{value}\"")),
                    "{alert}: {metric}{{{label}=\"{value}\"}}: the gateway never sets that value"
                );
            }
        }
        assert!(
            ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
            "{alert}: severity"
        );
        for annotation in ["summary", "description", "runbook"] {
            assert!(
                rule["annotations"][annotation].is_string(),
                "{alert}: no {annotation} annotation"
            );
        }
        assert!(
            runbooks.contains(alert),
            "{alert} has no runbook entry in deploy/README.md"
        );
    }
}

fn run(promtool: &Path, args: &[&str], dir: &Path) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Series of one gateway pod for promtool's unit tests.
fn series(metric: &str, labels: &str, values: &str) -> Value {
    let sep = if labels.is_empty() { "" } else { "," };
    json!({
        "series": format!("{metric}{{namespace=\"kubernaut-system\",pod=\"gw-0\"{sep}{labels}}}"),
        "values": values,
    })
}

fn firing(alert: &str, at: &str, extra: &[(&str, &str)]) -> Value {
    let mut labels = json!({"namespace": "kubernaut-system", "pod": "gw-0"});
    for (k, v) in extra {
        labels[*k] = json!(v);
    }
    let severity = alert_rules()
        .into_iter()
        .find(|(a, _)| *a == alert)
        .unwrap()
        .1["labels"]["severity"]
        .clone();
    labels["severity"] = severity;
    json!({"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": labels}]})
}

fn silent(alert: &str, at: &str) -> Value {
    json!({"eval_time": at, "alertname": alert, "exp_alerts": []})
}

#[test]
fn promtool_accepts_the_rules_and_they_fire_when_they_should() {
    let Some(promtool) = gateway_tests::prometheus::promtool("the PrometheusRule (promtool)")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = &find("PrometheusRule", NAME)["spec"];
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_norway::to_string(spec).unwrap(),
    )
    .unwrap();
    run(&promtool, &["check", "rules", "rules.yaml"], dir.path());

    // promtool's unit tests compare annotations too; the expressions are what is tested here.
    let mut bare = spec.clone();
    for group in bare["groups"].as_array_mut().unwrap() {
        for rule in group["rules"].as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(
        dir.path().join("bare.yaml"),
        serde_norway::to_string(&bare).unwrap(),
    )
    .unwrap();
    let reload = "config_type=\"dedup\",result=\"error\"";
    let tests = json!({
        "rule_files": ["bare.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "in memory (no Redis): redis_available is 0, the gateway ready; all quiet",
                "interval": "1m",
                "input_series": [
                    series("gateway_redis_available", "", "0x30"),
                    series("gateway_ready", "", "1x30"),
                    series("gateway_config_reload_total", reload, "0x30"),
                    series("gateway_signals_unrecorded_total", "reason=\"write\"", "0x30"),
                    series("gateway_remediation_write_errors_total", "reason=\"exhausted\"", "0x30"),
                    series("gateway_remediation_write_errors_total", "reason=\"permanent\"", "0x30"),
                ],
                "alert_rule_test": [
                    silent("KubernautGatewayRedisUnavailable", "20m"),
                    silent("KubernautGatewayNotReady", "20m"),
                    silent("KubernautGatewayConfigReloadFailing", "20m"),
                    silent("KubernautGatewayRemediationRequestCreationFailing", "20m"),
                    silent("KubernautGatewayRemediationRetriesExhausted", "20m"),
                    silent("KubernautGatewayRemediationWritesRejected", "20m"),
                ],
            },
            {
                "name": "a Redis outage: not ready, Redis down",
                "interval": "1m",
                "input_series": [
                    series("gateway_redis_available", "", "1 1 0x20"),
                    series("gateway_ready", "", "1 1 0x20"),
                ],
                "alert_rule_test": [
                    silent("KubernautGatewayRedisUnavailable", "3m"),
                    firing("KubernautGatewayRedisUnavailable", "5m", &[]),
                    silent("KubernautGatewayNotReady", "5m"),
                    firing("KubernautGatewayNotReady", "8m", &[]),
                ],
            },
            {
                "name": "a rejected reload, failing writes, exhausted retries",
                "interval": "1m",
                "input_series": [
                    series("gateway_config_reload_total", reload, "0 0 1x30"),
                    series("gateway_signals_unrecorded_total", "reason=\"write\"", "0 0 1 2 3 4 5 6 7 8 9 10"),
                    series("gateway_remediation_write_errors_total", "reason=\"exhausted\"", "0 0 2x30"),
                    series("gateway_remediation_write_errors_total", "reason=\"permanent\"", "0 0 1x30"),
                ],
                "alert_rule_test": [
                    firing("KubernautGatewayConfigReloadFailing", "5m", &[("config_type", "dedup")]),
                    silent("KubernautGatewayConfigReloadFailing", "25m"),
                    firing("KubernautGatewayRemediationRequestCreationFailing", "10m", &[]),
                    firing("KubernautGatewayRemediationRetriesExhausted", "5m", &[]),
                    firing("KubernautGatewayRemediationWritesRejected", "5m", &[]),
                ],
            },
        ],
    });
    std::fs::write(
        dir.path().join("tests.yaml"),
        serde_norway::to_string(&tests).unwrap(),
    )
    .unwrap();
    run(&promtool, &["test", "rules", "tests.yaml"], dir.path());
}

// `--auth tokenreview`: the component deploy/components/tokenreview/.

const TOKENREVIEW_ROLE: &str = "kubernaut-gateway-tokenreview";
const SENDER_ROLE: &str = "kubernaut-gateway-signal-sender";
const ADMIN_ROLE: &str = "kubernaut-gateway-admin";

/// `kubectl kustomize DIR`, as JSON values.
fn kustomize(dir: &Path) -> Vec<Value> {
    let kubectl = std::env::var("GATEWAY_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{kubectl} kustomize {}`: {e}", dir.display()));
    assert!(
        output.status.success(),
        "`{kubectl} kustomize {}` failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// `to` relative to the directory `from` (kustomize takes relative paths only).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let (from, to) = (from.canonicalize().unwrap(), to.canonicalize().unwrap());
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut path = PathBuf::new();
    for _ in from.components().skip(common) {
        path.push("..");
    }
    path.extend(to.components().skip(common));
    path
}

/// The base with the component, as an overlay would include it (outside `deploy/`: kustomize
/// refuses an overlay inside its base's directory).
fn with_tokenreview() -> &'static [Value] {
    static RENDERED: OnceLock<Vec<Value>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let overlay = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let base = relative(overlay.path(), &deploy_dir());
        let component = relative(overlay.path(), &deploy_dir().join("components/tokenreview"));
        std::fs::write(
            overlay.path().join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                 resources:\n  - {}\ncomponents:\n  - {}\n",
                base.display(),
                component.display()
            ),
        )
        .unwrap();
        kustomize(overlay.path())
    })
}

fn find_in<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the render"))
}

fn triples(calls: &[gateway_adapter_kube::ApiCall]) -> BTreeSet<(String, String, String)> {
    calls
        .iter()
        .map(|c| (c.group.to_owned(), c.resource.to_owned(), c.verb.to_owned()))
        .collect()
}

#[test]
fn the_tokenreview_component_adds_only_its_roles_to_the_base_unchanged() {
    let objects = with_tokenreview();
    for object in rendered() {
        assert!(
            objects.contains(object),
            "the component changed {} {}",
            object["kind"],
            object["metadata"]["name"]
        );
    }
    let added: BTreeSet<(&str, &str)> = objects
        .iter()
        .filter(|o| !rendered().contains(o))
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        added,
        BTreeSet::from([
            ("ClusterRole", TOKENREVIEW_ROLE),
            ("ClusterRoleBinding", TOKENREVIEW_ROLE),
            ("ClusterRole", SENDER_ROLE),
            ("ClusterRole", ADMIN_ROLE),
            (
                "ClusterRoleBinding",
                "kubernaut-gateway-signal-sender-alertmanager"
            ),
        ])
    );
    for o in objects.iter().filter(|o| !rendered().contains(o)) {
        assert!(o["metadata"]["namespace"].is_null(), "cluster-scoped: {o}");
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/name"], NAME);
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "kubernaut"
        );
    }
    // The default (token mode) holds no right to review tokens.
    let base: BTreeSet<_> = granted("ClusterRole", NAME)
        .union(&granted("Role", CONFIG_MAP))
        .cloned()
        .collect();
    let reviews = triples(gateway_adapter_kube::TOKENREVIEW_API_CALLS);
    assert!(base.is_disjoint(&reviews), "{base:?}");
}

#[test]
fn the_tokenreview_component_grants_the_gateway_exactly_its_review_calls() {
    let objects = with_tokenreview();
    let role = find_in(objects, "ClusterRole", TOKENREVIEW_ROLE);
    assert_eq!(
        granted_by(role),
        triples(gateway_adapter_kube::TOKENREVIEW_API_CALLS),
        "deploy/components/tokenreview/rbac.yaml must grant exactly TOKENREVIEW_API_CALLS"
    );
    let binding = find_in(objects, "ClusterRoleBinding", TOKENREVIEW_ROLE);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TOKENREVIEW_ROLE})
    );
    let account = pod_spec()["serviceAccountName"].as_str().unwrap();
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}])
    );
}

#[test]
fn the_sender_and_admin_roles_grant_the_actions_the_gateway_checks() {
    use gateway_ports::Action;
    let objects = with_tokenreview();
    let of = |admin: bool| -> BTreeSet<(String, String, String)> {
        Action::ALL
            .into_iter()
            .filter(|a| a.is_admin() == admin)
            .map(|a| {
                (
                    Action::GROUP.to_owned(),
                    a.resource().to_owned(),
                    a.verb().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        granted_by(find_in(objects, "ClusterRole", SENDER_ROLE)),
        of(false)
    );
    assert_eq!(
        granted_by(find_in(objects, "ClusterRole", ADMIN_ROLE)),
        of(true)
    );
    let example = find_in(
        objects,
        "ClusterRoleBinding",
        "kubernaut-gateway-signal-sender-alertmanager",
    );
    assert_eq!(example["roleRef"]["name"], SENDER_ROLE);
    let subjects = example["subjects"].as_array().unwrap();
    assert!(!subjects.is_empty());
    for subject in subjects {
        assert_eq!(subject["kind"], "ServiceAccount", "{subject}");
        assert!(subject["namespace"].is_string(), "{subject}");
    }
}

#[test]
fn the_tokenreview_component_renders_on_its_own() {
    let objects = kustomize(&deploy_dir().join("components/tokenreview"));
    assert_eq!(objects.len(), 5);
}
