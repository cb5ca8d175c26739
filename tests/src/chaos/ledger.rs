//! The accounting: every distinct firing alert sent is found in a RemediationRequest, in a storm
//! aggregate (listed, or counted as sampled out), answered `rejected`, or it is lost.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::Value;

use super::alerts::{AlertKey, AlertSet};
use super::sender::Delivery;

/// The label the gateway gives a RemediationRequest moved to the fallback namespace.
pub const ORIGINAL_NAMESPACE_LABEL: &str = "kubernaut.io/original-namespace";

/// What the RemediationRequests written say, indexed for the accounting.
#[derive(Debug, Default)]
pub struct Remediations {
    /// `spec.signalFingerprint` of every non-storm RemediationRequest.
    fingerprints: BTreeSet<String>,
    /// (alert name, original namespace, resource name) of every non-storm one.
    targets: BTreeSet<AlertKey>,
    /// (alert name, namespace, resource name) listed in a storm aggregate's `affectedResources`.
    aggregated: BTreeSet<AlertKey>,
    /// Per alert name, the sum of its aggregates' `stormSampledOutCount`.
    sampled_out: BTreeMap<String, u64>,
    /// Aggregates whose `stormAlertCount` is below listed + sampled out.
    pub inconsistent: Vec<String>,
    /// RemediationRequests read, and of those storm aggregates.
    pub total: usize,
    /// Storm aggregates read.
    pub storms: usize,
}

impl Remediations {
    /// Indexes RemediationRequest documents (directory-sink YAML or API objects, as JSON).
    pub fn index(documents: &[Value]) -> Remediations {
        let mut r = Remediations {
            total: documents.len(),
            ..Remediations::default()
        };
        for doc in documents {
            let spec = &doc["spec"];
            let name = str_of(&spec["signalName"]);
            if spec["isStorm"].as_bool().unwrap_or(false) {
                r.storms += 1;
                let listed = spec["affectedResources"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for resource in &listed {
                    r.aggregated.insert(AlertKey {
                        name: name.clone(),
                        namespace: str_of(&resource["namespace"]),
                        pod: str_of(&resource["name"]),
                    });
                }
                let sampled = spec["stormSampledOutCount"].as_u64().unwrap_or(0);
                *r.sampled_out.entry(name.clone()).or_default() += sampled;
                let count = spec["stormAlertCount"].as_u64().unwrap_or(0);
                if count < listed.len() as u64 + sampled {
                    r.inconsistent.push(format!(
                        "{}: stormAlertCount {count} < {} listed + {sampled} sampled out",
                        str_of(&doc["metadata"]["name"]),
                        listed.len()
                    ));
                }
            } else {
                r.fingerprints.insert(str_of(&spec["signalFingerprint"]));
                let labels = &doc["metadata"]["labels"];
                let namespace = labels[ORIGINAL_NAMESPACE_LABEL]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| str_of(&spec["targetResource"]["namespace"]));
                r.targets.insert(AlertKey {
                    name,
                    namespace,
                    pod: str_of(&spec["targetResource"]["name"]),
                });
            }
        }
        r
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// One scenario's account of its alerts.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// The scenario.
    pub scenario: String,
    /// Alerts sent (duplicates and resolved included), once each however often resent.
    pub sent: usize,
    /// Distinct firing alerts: each is exactly one of the five columns that follow.
    pub firing: usize,
    /// In a RemediationRequest of its own.
    pub created: usize,
    /// Listed in a storm aggregate.
    pub aggregated: usize,
    /// Answered `sampled_out` and covered by an aggregate's sampled-out count.
    pub sampled: usize,
    /// Answered `rejected`, with a reason.
    pub rejected: usize,
    /// Answered 2xx and found nowhere.
    pub lost: usize,
    /// Never answered 2xx: the harness gave up (a failure too).
    pub unanswered: usize,
    /// Webhook tries beyond the first (non-2xx answers and broken connections).
    pub resent: u32,
    /// Webhooks in all.
    pub webhooks: usize,
    /// The lost and unanswered alerts, with what the gateway last said about them.
    pub missing: Vec<String>,
    /// Rejection reasons seen (`detail`), with counts.
    pub reasons: BTreeMap<String, usize>,
}

impl Tally {
    /// Accounts for every distinct firing alert of `set` from the answers and the
    /// RemediationRequests. Duplicates and resolved alerts are accounted for with their first
    /// firing occurrence (same fingerprint).
    pub fn account(
        scenario: &str,
        set: &AlertSet,
        deliveries: &[Delivery],
        remediations: &Remediations,
    ) -> Tally {
        // Every outcome each alert got in a 2xx answer, and its last failure otherwise.
        let mut answers: HashMap<AlertKey, Vec<(String, String, Option<String>)>> = HashMap::new();
        let mut failures: HashMap<AlertKey, String> = HashMap::new();
        for delivery in deliveries {
            for alert in delivery.alerts.iter().filter(|a| a.firing) {
                let resource = format!("Pod/{}", alert.pod);
                let found = delivery.outcomes.iter().find(|o| {
                    o.alert == alert.name
                        && o.namespace == alert.namespace
                        && o.resource == resource
                });
                match found {
                    Some(o) => answers.entry(alert.key()).or_default().push((
                        o.outcome.clone(),
                        o.fingerprint.clone(),
                        o.detail.clone(),
                    )),
                    None => {
                        let why = delivery
                            .last_failure
                            .clone()
                            .unwrap_or_else(|| "2xx without an outcome for it".to_owned());
                        failures.insert(alert.key(), why);
                    }
                }
            }
        }
        let mut tally = Tally {
            scenario: scenario.to_owned(),
            sent: set.sent(),
            webhooks: deliveries.len(),
            resent: deliveries.iter().map(|d| d.tries.saturating_sub(1)).sum(),
            ..Tally::default()
        };
        let mut sampled_budget = remediations.sampled_out.clone();
        let mut unlisted = Vec::new();
        for key in set.firing() {
            tally.firing += 1;
            let got = answers.get(&key).cloned().unwrap_or_default();
            let has = |outcome: &str| got.iter().any(|(o, _, _)| o == outcome);
            if got
                .iter()
                .any(|(_, fp, _)| remediations.fingerprints.contains(fp))
                || remediations.targets.contains(&key)
            {
                tally.created += 1;
            } else if remediations.aggregated.contains(&key) {
                tally.aggregated += 1;
            } else if has("rejected") {
                tally.rejected += 1;
                for (_, _, detail) in got.iter().filter(|(o, _, _)| o == "rejected") {
                    let reason = detail.clone().unwrap_or_else(|| "(no detail)".to_owned());
                    *tally.reasons.entry(reason).or_default() += 1;
                }
            } else if has("sampled_out")
                && let Some(left) = sampled_budget.get_mut(&key.name).filter(|n| **n > 0)
            {
                *left -= 1;
                tally.sampled += 1;
            } else if got.is_empty() {
                tally.unanswered += 1;
                let why = failures.get(&key).cloned().unwrap_or_default();
                tally
                    .missing
                    .push(format!("{key:?} never answered 2xx; last: {why}"));
            } else {
                unlisted.push((key, got));
            }
        }
        // Alerts answered 2xx only as duplicates (their first occurrence rode in a request
        // answered 503, whose outcomes the sender does not read) and listed nowhere: each is
        // covered by a sampled-out count its aggregates have to spare, or it is lost.
        for (key, got) in unlisted {
            if let Some(left) = sampled_budget.get_mut(&key.name).filter(|n| **n > 0) {
                *left -= 1;
                tally.sampled += 1;
            } else {
                tally.lost += 1;
                let said: Vec<&str> = got.iter().map(|(o, _, _)| o.as_str()).collect();
                tally.missing.push(format!(
                    "{key:?} answered {said:?}, in no RemediationRequest"
                ));
            }
        }
        tally
    }

    /// The header of [`Tally`]'s table rows.
    pub const HEADER: &'static str = "scenario                 |  sent | firing | created | aggregated | sampled | rejected | resent | unanswered | lost";
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} | {:>5} | {:>6} | {:>7} | {:>10} | {:>7} | {:>8} | {:>6} | {:>10} | {:>4}",
            self.scenario,
            self.sent,
            self.firing,
            self.created,
            self.aggregated,
            self.sampled,
            self.rejected,
            self.resent,
            self.unanswered,
            self.lost
        )
    }
}
