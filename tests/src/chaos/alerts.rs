//! The known alert set: plain alerts, duplicates of some, a storm, resolved ones, shuffled into
//! Alertmanager webhooks (version 4) of 1–50 alerts. Deterministic for a seed.

use serde_json::Value;

use crate::apiserver::SplitMix64;

/// The alert name of the storm.
pub const STORM_ALERT: &str = "ChaosStorm";
/// The namespace of the storm's pods.
pub const STORM_NAMESPACE: &str = "chaos-storm";
/// Namespaces of the plain alerts, in turn.
pub const PLAIN_NAMESPACES: [&str; 4] = ["chaos-a", "chaos-b", "chaos-c", "chaos-d"];
/// Most alerts in one webhook.
pub const MAX_BATCH: usize = 50;

/// One alert of the set: its identity (what its fingerprint is computed from) and its status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Alert {
    /// `alertname`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
    /// `pod` (the resource is `Pod/<pod>`).
    pub pod: String,
    /// `firing` or `resolved`.
    pub firing: bool,
}

impl Alert {
    /// The identity the gateway answers with: (alert, namespace, resource).
    pub fn key(&self) -> AlertKey {
        AlertKey {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
        }
    }

    /// As an Alertmanager alert.
    pub fn json(&self) -> Value {
        crate::alert(
            &self.name,
            &self.namespace,
            &self.pod,
            if self.firing { "firing" } else { "resolved" },
        )
    }
}

/// What identifies one alert (one fingerprint): name, namespace, pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    /// `alertname`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
}

/// How many of each kind the set holds.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Distinct plain alerts (each its own alert name, so none is a storm).
    pub plain: usize,
    /// Every `duplicate_every`-th plain alert is sent 1–3 more times.
    pub duplicate_every: usize,
    /// Every `resolved_every`-th plain alert is also sent resolved.
    pub resolved_every: usize,
    /// Pods hit by the storm ([`STORM_ALERT`]).
    pub storm: usize,
    /// Plain alerts in this namespace too, one in `every` (a namespace the sink may not have).
    pub extra_namespace: Option<(&'static str, usize)>,
    /// Shuffle and batching seed.
    pub seed: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            plain: 240,
            duplicate_every: 3,
            resolved_every: 5,
            storm: 160,
            extra_namespace: None,
            seed: 0x00c0_ffee,
        }
    }
}

/// The known set, batched into webhooks in the order they are to be sent.
#[derive(Debug, Clone)]
pub struct AlertSet {
    /// Each webhook's alerts.
    pub webhooks: Vec<Vec<Alert>>,
}

impl AlertSet {
    /// The set of `shape`, shuffled and cut into webhooks of 1–[`MAX_BATCH`] alerts.
    pub fn generate(shape: Shape) -> AlertSet {
        let mut rng = SplitMix64(shape.seed);
        let mut alerts = Vec::new();
        for i in 0..shape.plain {
            let namespace = match shape.extra_namespace {
                Some((ns, every)) if i % every == 0 => ns,
                _ => PLAIN_NAMESPACES[i % PLAIN_NAMESPACES.len()],
            };
            let plain = Alert {
                name: format!("ChaosPlain{i:04}"),
                namespace: namespace.to_owned(),
                pod: format!("plain-{i:04}"),
                firing: true,
            };
            if i % shape.duplicate_every == 0 {
                for _ in 0..1 + below(&mut rng, 3) {
                    alerts.push(plain.clone());
                }
            }
            if i % shape.resolved_every == 0 {
                alerts.push(Alert {
                    firing: false,
                    ..plain.clone()
                });
            }
            alerts.push(plain);
        }
        for i in 0..shape.storm {
            alerts.push(Alert {
                name: STORM_ALERT.to_owned(),
                namespace: STORM_NAMESPACE.to_owned(),
                pod: format!("storm-{i:04}"),
                firing: true,
            });
        }
        // Fisher–Yates.
        for i in (1..alerts.len()).rev() {
            alerts.swap(i, below(&mut rng, i + 1));
        }
        let mut webhooks = Vec::new();
        while !alerts.is_empty() {
            let n = (1 + below(&mut rng, MAX_BATCH)).min(alerts.len());
            webhooks.push(alerts.drain(..n).collect());
        }
        AlertSet { webhooks }
    }

    /// Every alert sent (duplicates and resolved included).
    pub fn sent(&self) -> usize {
        self.webhooks.iter().map(Vec::len).sum()
    }

    /// The distinct firing alerts: what must each be accounted for.
    pub fn firing(&self) -> std::collections::BTreeSet<AlertKey> {
        self.webhooks
            .iter()
            .flatten()
            .filter(|a| a.firing)
            .map(Alert::key)
            .collect()
    }

    /// A webhook's body.
    pub fn body(webhook: &[Alert]) -> Vec<u8> {
        let alerts = webhook.iter().map(Alert::json).collect();
        serde_json::to_vec(&crate::webhook(alerts)).expect("JSON")
    }
}

/// Uniform in `0..n` (`n > 0`), from the emulator's seeded PRNG.
fn below(rng: &mut SplitMix64, n: usize) -> usize {
    usize::try_from(rng.next_u64() % n as u64).unwrap_or(0)
}
