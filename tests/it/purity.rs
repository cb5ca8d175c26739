//! The hexagon's dependency rules, read from `cargo metadata`, as tests that fail when broken.
//!
//! - domain crates (`domain/*`) depend, transitively, on no IO, runtime or vendor crate;
//! - domain crates depend on no adapter and not on the app;
//! - adapters never depend on each other;
//! - the ports crate depends on no other gateway crate.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates a pure domain crate must never reach, directly or not.
const FORBIDDEN_IN_DOMAIN: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "async-std",
    "redis",
    "kube",
    "kube-client",
    "kube-runtime",
    "k8s-openapi",
    "axum",
    "hyper",
    "tower",
    "figment",
    "notify",
    "reqwest",
    "prometheus",
    "testcontainers",
    "tracing-subscriber",
    "serde_norway",
    "serde_yaml",
];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(format!("{root}/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

struct Graph {
    /// package id → (name, manifest path relative to the workspace root)
    packages: HashMap<String, (String, String)>,
    /// package id → ids of its normal (non-dev, non-build) dependencies
    normal_deps: HashMap<String, Vec<String>>,
}

impl Graph {
    fn from(meta: &Value) -> Graph {
        let root = meta["workspace_root"].as_str().unwrap_or_default();
        let packages = meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let path = p["manifest_path"].as_str().unwrap_or_default();
                let rel = path.strip_prefix(root).unwrap_or(path).to_owned();
                (
                    p["id"].as_str().unwrap_or_default().to_owned(),
                    (p["name"].as_str().unwrap_or_default().to_owned(), rel),
                )
            })
            .collect();
        let normal_deps = meta["resolve"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|node| {
                let deps = node["deps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| {
                        d["dep_kinds"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|k| k["kind"].is_null())
                    })
                    .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
                    .collect();
                (node["id"].as_str().unwrap_or_default().to_owned(), deps)
            })
            .collect();
        Graph {
            packages,
            normal_deps,
        }
    }

    fn ids_under(&self, dir: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .packages
            .iter()
            .filter(|(_, (_, path))| path.starts_with(dir))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    fn name(&self, id: &str) -> &str {
        self.packages.get(id).map_or("?", |(name, _)| name.as_str())
    }

    /// Every crate `id` reaches through normal dependencies, by name.
    fn transitive(&self, id: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.to_owned()];
        let mut names = BTreeSet::new();
        while let Some(next) = stack.pop() {
            for dep in self.normal_deps.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    names.insert(self.name(dep).to_owned());
                    stack.push(dep.clone());
                }
            }
        }
        names
    }

    fn direct(&self, id: &str) -> BTreeSet<String> {
        self.normal_deps
            .get(id)
            .into_iter()
            .flatten()
            .map(|d| self.name(d).to_owned())
            .collect()
    }
}

/// Returns the violations of the dependency rules, one line each.
fn violations(meta: &Value) -> Vec<String> {
    let graph = Graph::from(meta);
    let mut found = Vec::new();
    for id in graph.ids_under("/domain/") {
        let name = graph.name(&id).to_owned();
        for dep in graph.transitive(&id) {
            if FORBIDDEN_IN_DOMAIN.contains(&dep.as_str()) {
                found.push(format!("domain crate {name} depends on {dep}"));
            }
            if dep.starts_with("gateway-adapter-") || dep == "gateway" {
                found.push(format!("domain crate {name} depends on {dep}"));
            }
        }
    }
    for id in graph.ids_under("/adapters/") {
        let name = graph.name(&id).to_owned();
        for dep in graph.direct(&id) {
            if dep.starts_with("gateway-") && dep != "gateway-ports" {
                found.push(format!(
                    "adapter {name} depends on {dep}: adapters depend on the ports only"
                ));
            }
        }
    }
    for id in graph.ids_under("/ports/") {
        for dep in graph.transitive(&id) {
            if dep.starts_with("gateway") || FORBIDDEN_IN_DOMAIN.contains(&dep.as_str()) {
                found.push(format!("the ports crate depends on {dep}"));
            }
        }
    }
    found
}

#[test]
fn the_workspace_obeys_the_dependency_rules() {
    let meta = metadata();
    let graph = Graph::from(&meta);
    assert!(
        graph.ids_under("/domain/").len() >= 4,
        "the domain crates are found"
    );
    let found = violations(&meta);
    assert!(
        found.is_empty(),
        "dependency rules broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_catch_a_domain_crate_that_gains_tokio_through_another_crate() {
    // A doctored metadata document: gateway-storm → some-helper → tokio.
    let meta = serde_json::json!({
        "workspace_root": "/w",
        "packages": [
            { "id": "storm", "name": "gateway-storm", "manifest_path": "/w/domain/storm/Cargo.toml" },
            { "id": "helper", "name": "some-helper", "manifest_path": "/r/some-helper/Cargo.toml" },
            { "id": "tokio", "name": "tokio", "manifest_path": "/r/tokio/Cargo.toml" },
            { "id": "mock", "name": "mockall", "manifest_path": "/r/mockall/Cargo.toml" }
        ],
        "resolve": { "nodes": [
            { "id": "storm", "deps": [
                { "pkg": "helper", "dep_kinds": [{ "kind": null }] },
                { "pkg": "mock", "dep_kinds": [{ "kind": "dev" }] }
            ] },
            { "id": "helper", "deps": [{ "pkg": "tokio", "dep_kinds": [{ "kind": null }] }] },
            { "id": "tokio", "deps": [] },
            { "id": "mock", "deps": [] }
        ] }
    });
    assert_eq!(
        violations(&meta),
        ["domain crate gateway-storm depends on tokio"]
    );
}
