//! A known set of alerts sent to gateway replicas while something happens to their Redis (a
//! primary killed, slots moved), every signal resent on a non-2xx answer as Alertmanager does,
//! and the accounting of where each one went: its own RemediationRequest, or a storm aggregate.

#![allow(clippy::disallowed_methods)] // a load that measures real time
#![allow(clippy::unwrap_used)] // a poisoned lock is a sender that panicked: the test fails anyway

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{alert, webhook};

/// The alert name every storm pod shares.
pub const STORM_ALERT: &str = "LoadStorm";

/// What to send, and how.
#[derive(Debug, Clone)]
pub struct AlertLoad {
    /// Alerts with names of their own (one pod each): each becomes its own RemediationRequest.
    pub individual: usize,
    /// Pods of [`STORM_ALERT`] in one namespace: a pattern storm, aggregated.
    pub storm_pods: usize,
    /// Concurrent senders, each sending its next signal once the last one is answered 2xx.
    pub senders: usize,
    /// A sender's pause between two signals.
    pub pause: Duration,
    /// The wait before a refused signal is sent again, doubled after each refusal up to a
    /// second (as Alertmanager backs off).
    pub resend_after: Duration,
    /// How long a signal may go on being refused before the load gives up on it (a test failure).
    pub give_up_after: Duration,
}

/// One signal of the load.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signal {
    /// Its alert name.
    pub alert: String,
    /// Its pod.
    pub pod: String,
}

/// How one signal ended.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The signal.
    pub signal: Signal,
    /// Its outcome in the 2xx answer (`created`, `buffered`, `aggregated`, …).
    pub outcome: String,
    /// How many answers before that one were not 2xx.
    pub refusals: u32,
    /// When the first of those came.
    pub first_refused_at: Option<Instant>,
    /// When the 2xx answer came.
    pub answered_at: Instant,
}

/// What the load saw.
#[derive(Debug)]
pub struct LoadReport {
    /// Every signal, answered 2xx in the end.
    pub answered: Vec<Answered>,
    /// When each non-2xx answer (or transport error) came, and its status (0: transport).
    pub refusals: Vec<(Instant, u16)>,
    /// When each 2xx answer came.
    pub successes: Vec<Instant>,
    /// `503` answers without a `Retry-After` header (the sender would not know when to resend).
    pub without_retry_after: usize,
}

/// What a primary's loss looked like to the senders.
#[derive(Debug)]
pub struct Outage {
    /// From the kill to the first refused answer.
    pub first_refusal: Duration,
    /// From the kill to the first 2xx answer (to any signal) after the first refusal: with one
    /// primary (Sentinel), when writes succeed again; on a Cluster the other primaries' slots
    /// go on being written meanwhile.
    pub first_success_after_refusal: Duration,
    /// From the kill to the first 2xx answer to a signal refused after it (its sender's backoff
    /// included).
    pub first_write_again: Duration,
    /// From the kill to the last refused answer.
    pub last_refusal: Duration,
    /// Signals refused at least once after the kill (each answered 2xx in the end).
    pub refused_signals: usize,
}

/// Where the signals went, read from the RemediationRequests written.
#[derive(Debug)]
pub struct Accounting {
    /// Signals with a RemediationRequest of their own.
    pub created: usize,
    /// Signals listed in a storm aggregate.
    pub aggregated: usize,
    /// Aggregates of [`STORM_ALERT`].
    pub aggregates: usize,
    /// RemediationRequests beyond one per individual signal (a dedup record lost with a primary).
    pub extra_remediations: usize,
    /// Signals answered 2xx that are nowhere, with their answer.
    pub lost: Vec<Answered>,
}

impl AlertLoad {
    /// The signals, in sending order: the storm's pods spread among the individual alerts.
    pub fn signals(&self) -> Vec<Signal> {
        let mut signals: Vec<Signal> = (0..self.individual)
            .map(|i| Signal {
                alert: format!("Load{i}"),
                pod: "p".to_owned(),
            })
            .collect();
        let every = (self.individual / self.storm_pods.max(1)).max(1);
        for pod in 0..self.storm_pods {
            let signal = Signal {
                alert: STORM_ALERT.to_owned(),
                pod: format!("web-{pod}"),
            };
            signals.insert((pod * (every + 1)).min(signals.len()), signal);
        }
        signals
    }

    /// Sends every signal to `replicas` (base URLs, round-robin) and waits until each is
    /// answered 2xx. Panics when one is still refused after [`AlertLoad::give_up_after`].
    pub async fn send(&self, replicas: &[String]) -> LoadReport {
        let signals = Arc::new(self.signals());
        let next = Arc::new(AtomicUsize::new(0));
        let without_retry_after = Arc::new(AtomicUsize::new(0));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let successes = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let tasks: Vec<_> = (0..self.senders)
            .map(|_| {
                let (signals, next, refusals, successes, client, load, replicas, unadvised) = (
                    signals.clone(),
                    next.clone(),
                    refusals.clone(),
                    successes.clone(),
                    client.clone(),
                    self.clone(),
                    replicas.to_vec(),
                    without_retry_after.clone(),
                );
                tokio::spawn(async move {
                    let mut answered = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(signal) = signals.get(i) else {
                            return answered;
                        };
                        let body =
                            webhook(vec![alert(&signal.alert, "load", &signal.pod, "firing")]);
                        let started = Instant::now();
                        let mut refused = 0;
                        let mut first_refused_at = None;
                        let mut attempt = i;
                        let outcome = loop {
                            let base = &replicas[attempt % replicas.len()];
                            attempt += 1;
                            match send(&client, base, &body).await {
                                Ok((status, _, answer)) if (200..300).contains(&status) => {
                                    successes.lock().unwrap().push(Instant::now());
                                    break answer["outcomes"][0]["outcome"]
                                        .as_str()
                                        .unwrap_or_default()
                                        .to_owned();
                                }
                                Ok((status, retry_after, _)) => {
                                    if status == 503 && !retry_after {
                                        unadvised.fetch_add(1, Ordering::SeqCst);
                                    }
                                    refusals.lock().unwrap().push((Instant::now(), status));
                                }
                                Err(_) => refusals.lock().unwrap().push((Instant::now(), 0)),
                            }
                            refused += 1;
                            first_refused_at.get_or_insert_with(Instant::now);
                            assert!(
                                started.elapsed() < load.give_up_after,
                                "{signal:?} still refused after {:?}",
                                load.give_up_after
                            );
                            let backoff = load.resend_after * 2_u32.saturating_pow(refused - 1);
                            tokio::time::sleep(backoff.min(Duration::from_secs(1))).await;
                        };
                        answered.push(Answered {
                            signal: signal.clone(),
                            outcome,
                            refusals: refused,
                            first_refused_at,
                            answered_at: Instant::now(),
                        });
                        tokio::time::sleep(load.pause).await;
                    }
                })
            })
            .collect();
        let mut answered = Vec::new();
        for task in tasks {
            answered.extend(task.await.expect("a sender panicked"));
        }
        let refusals = refusals.lock().unwrap().clone();
        let successes = successes.lock().unwrap().clone();
        LoadReport {
            answered,
            refusals,
            successes,
            without_retry_after: without_retry_after.load(Ordering::SeqCst),
        }
    }
}

/// Posts an Alertmanager webhook to the gateway at `base`: the status and the JSON answer (null
/// when there is none).
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
) -> reqwest::Result<(u16, Value)> {
    let (status, _, answer) = send(client, base, body).await?;
    Ok((status, answer))
}

/// [`post`], and whether the answer carried `Retry-After`.
async fn send(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
) -> reqwest::Result<(u16, bool, Value)> {
    let response = client
        .post(format!("{base}/api/v1/signals/prometheus"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    Ok((
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    ))
}

impl LoadReport {
    /// Where every answered signal went, in `remediations` (the documents written).
    pub fn account(&self, remediations: &[Value]) -> Accounting {
        let mut own: BTreeMap<Signal, usize> = BTreeMap::new();
        let mut in_aggregates = BTreeSet::new();
        let mut aggregates = 0;
        for doc in remediations {
            let spec = &doc["spec"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            if spec["isStorm"] == true {
                aggregates += usize::from(spec["signalName"] == STORM_ALERT);
                for resource in spec["affectedResources"].as_array().into_iter().flatten() {
                    in_aggregates.insert(Signal {
                        alert: text(&spec["signalName"]),
                        pod: text(&resource["name"]),
                    });
                }
            } else {
                let signal = Signal {
                    alert: text(&spec["signalName"]),
                    pod: text(&spec["targetResource"]["name"]),
                };
                *own.entry(signal).or_default() += 1;
            }
        }
        let mut accounting = Accounting {
            created: 0,
            aggregated: 0,
            aggregates,
            extra_remediations: own.values().map(|n| n - 1).sum(),
            lost: Vec::new(),
        };
        for answered in &self.answered {
            if own.contains_key(&answered.signal) {
                accounting.created += 1;
            } else if in_aggregates.contains(&answered.signal) {
                accounting.aggregated += 1;
            } else {
                accounting.lost.push(answered.clone());
            }
        }
        accounting
    }

    /// What `at` (a primary killed) did: the time to the first refusal, to the first 2xx answer
    /// to a signal refused after `at` (its keys' slots written again), and to the last refusal.
    /// `None` when nothing was refused after `at`.
    pub fn outage_after(&self, at: Instant) -> Option<Outage> {
        let first = self
            .refusals
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t >= at)
            .min()?;
        let last = self.refusals.iter().map(|(t, _)| *t).max()?;
        let written_again = self
            .answered
            .iter()
            .filter(|a| a.first_refused_at.is_some_and(|t| t >= at))
            .map(|a| a.answered_at)
            .min()?;
        let success_after = self
            .successes
            .iter()
            .copied()
            .filter(|t| *t > first)
            .min()?;
        Some(Outage {
            first_refusal: first - at,
            first_success_after_refusal: success_after - at,
            first_write_again: written_again - at,
            last_refusal: last - at,
            refused_signals: self
                .answered
                .iter()
                .filter(|a| a.first_refused_at.is_some_and(|t| t >= at))
                .count(),
        })
    }

    /// The statuses of the refusals, counted.
    pub fn refusal_statuses(&self) -> BTreeMap<u16, usize> {
        let mut counted = BTreeMap::new();
        for (_, status) in &self.refusals {
            *counted.entry(*status).or_default() += 1;
        }
        counted
    }
}
