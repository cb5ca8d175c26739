//! Senders that behave like Alertmanager: a bounded number of webhooks in flight, each resent
//! after any non-2xx answer or broken connection until a 2xx (bounded tries), resends counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;

use super::alerts::{Alert, AlertSet};

/// How the set is sent.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Webhooks in flight at once.
    pub concurrency: usize,
    /// Pause of each sender between two webhooks (spreads the load over the faults).
    pub pace: Duration,
    /// Tries per webhook before the harness gives up on it (a failure of the scenario).
    pub max_tries: u32,
    /// Longest wait for one answer (above the gateway's `--write-deadline`).
    pub timeout: Duration,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            concurrency: 8,
            pace: Duration::from_millis(150),
            max_tries: 40,
            timeout: Duration::from_secs(15),
        }
    }
}

/// Longest pause between two tries (`Retry-After` is capped to it, so that the suite stays
/// short; Alertmanager's own backoff ignores the header too).
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// First pause after a failed try; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// One alert's outcome in a 2xx answer (`{"status", "outcomes": [...]}`).
#[derive(Debug, Clone, Deserialize)]
pub struct AlertAnswer {
    /// Alert name.
    pub alert: String,
    /// Namespace.
    pub namespace: String,
    /// `Pod/<name>`.
    pub resource: String,
    /// The dedup fingerprint.
    pub fingerprint: String,
    /// `created`, `duplicate`, `rejected`, … (kept as text: new outcomes must not break the
    /// harness).
    pub outcome: String,
    /// Why (`rejected`, `ignored`).
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AnswerBody {
    outcomes: Vec<AlertAnswer>,
}

/// What became of one webhook.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its alerts.
    pub alerts: Vec<Alert>,
    /// The outcomes of the 2xx answer that ended it (empty when it never got one).
    pub outcomes: Vec<AlertAnswer>,
    /// Tries made (1 when the first was answered 2xx).
    pub tries: u32,
    /// Whether a 2xx answer came (else the harness gave up after `max_tries`).
    pub delivered: bool,
    /// The last failure seen (status and body, or the connection error).
    pub last_failure: Option<String>,
}

/// Sends every webhook of `set` to `{base}/api/v1/signals/prometheus`, `load.concurrency` at a
/// time, each until a 2xx or `load.max_tries`. `done` counts webhooks finished (for a scenario
/// that acts "mid-load"). Returns one [`Delivery`] per webhook, in the set's order.
pub async fn send_all(
    base: String,
    set: AlertSet,
    load: Load,
    done: Arc<AtomicUsize>,
) -> Vec<Delivery> {
    let client = reqwest::Client::builder()
        .timeout(load.timeout)
        .pool_max_idle_per_host(0) // a killed gateway must not leave dead pooled connections
        .build()
        .expect("HTTP client");
    let url = format!("{base}/api/v1/signals/prometheus");
    let next = Arc::new(AtomicUsize::new(0));
    let webhooks = Arc::new(set.webhooks);
    let results = Arc::new(Mutex::new(vec![None; webhooks.len()]));
    let mut tasks = Vec::new();
    for _ in 0..load.concurrency.max(1) {
        let (client, url, next, webhooks, results, done) = (
            client.clone(),
            url.clone(),
            next.clone(),
            webhooks.clone(),
            results.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(alerts) = webhooks.get(i) else {
                    return;
                };
                let delivery = deliver(&client, &url, alerts, load).await;
                results.lock().await[i] = Some(delivery);
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(load.pace).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("sender task");
    }
    let results = std::mem::take(&mut *results.lock().await);
    results
        .into_iter()
        .map(|d| d.expect("every webhook sent"))
        .collect()
}

/// One webhook, resent until a 2xx or `max_tries`.
async fn deliver(client: &reqwest::Client, url: &str, alerts: &[Alert], load: Load) -> Delivery {
    let body = AlertSet::body(alerts);
    let mut delivery = Delivery {
        alerts: alerts.to_vec(),
        outcomes: Vec::new(),
        tries: 0,
        delivered: false,
        last_failure: None,
    };
    let mut backoff = FIRST_BACKOFF;
    while delivery.tries < load.max_tries {
        delivery.tries += 1;
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let mut pause = backoff;
        match sent {
            Ok(response) if response.status().is_success() => {
                let status = response.status();
                let text = response.text().await;
                match text.map(|t| (serde_json::from_str::<AnswerBody>(&t), t)) {
                    Ok((Ok(answer), _)) => {
                        delivery.outcomes = answer.outcomes;
                        delivery.delivered = true;
                        return delivery;
                    }
                    // A 2xx whose body did not arrive whole: the gateway recorded the alerts,
                    // but the harness cannot say how; resending is what Alertmanager would do.
                    Ok((Err(e), t)) => {
                        delivery.last_failure =
                            Some(format!("{status} unreadable body ({e}): {t}"));
                    }
                    Err(e) => delivery.last_failure = Some(format!("{status} body lost: {e}")),
                }
            }
            Ok(response) => {
                let status = response.status();
                if let Some(wait) = retry_after(&response) {
                    pause = wait;
                }
                let text = response.text().await.unwrap_or_default();
                delivery.last_failure = Some(format!("{status}: {text}"));
            }
            Err(e) => delivery.last_failure = Some(format!("connection: {e}")),
        }
        tokio::time::sleep(pause.min(MAX_BACKOFF)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    delivery
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
