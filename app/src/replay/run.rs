//! One replay: the real gateway (`Gateway` over the in-memory adapters and a counting sink)
//! fed the recorded bodies in time order on a simulated clock, its ticker run as in production.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use gateway_adapter_file_config::Loaded;
use gateway_adapter_memory::{
    MemoryDedupStore, MemoryOutbox, MemoryStormCounter, MemoryWindowStore, StaticConfigSource,
};
use gateway_ports::{RemediationRequest, Timestamp};
use gateway_storm::{StormType, WindowCapacity};

use super::clock::SimulatedClock;
use super::input::Recorded;
use super::sink::{Calls, CountingWriter};
use crate::gateway::{Gateway, Parts, Refused, StormStores, WriteTiming};
use crate::input_limits::InputLimits;
use crate::metrics::Metrics;
use crate::outcome::Outcome;

/// The production ticker's period: the replay ticks once per simulated second.
const TICK: Duration = crate::serve::TICK;

/// Past this much quiet after the last signal, every storm window has closed and its writes
/// are made: `inactivity_timeout` + `--update-interval` + this margin (a tick to close the
/// window, one to write its closing, one to spare).
const SETTLE_MARGIN: Duration = Duration::from_secs(3);

/// The process-level settings of a replay (the `serve` flags that shape the pipeline).
#[derive(Debug, Clone)]
pub struct Options {
    /// `--update-interval`.
    pub update_interval: Duration,
    /// `--storm-window-capacity`.
    pub storm_window_capacity: u32,
    /// `--max-window-buffer-bytes`.
    pub max_window_buffer_bytes: u64,
    /// `--dedup-capacity`.
    pub dedup_capacity: usize,
    /// `--max-alert-names`.
    pub max_alert_names: usize,
    /// `--max-alerts-per-request`, `--max-labels`, `--max-label-bytes`.
    pub limits: InputLimits,
    /// `--fallback-namespace`.
    pub fallback_namespace: String,
}

/// What a replay observed.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Bodies fed.
    pub bodies: u64,
    /// Bodies refused whole by the input limits (413/400 in production).
    pub refused_bodies: u64,
    /// Signals' outcomes, by outcome (every outcome present, 0 included).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Storms detected (aggregation windows opened), by type.
    pub storms: BTreeMap<&'static str, u64>,
    /// What the sink was asked.
    pub calls: Calls,
    /// The resources that would exist at the end, as last written.
    pub resources: Vec<RemediationRequest>,
    /// The first and last recorded times.
    pub span: Option<(Timestamp, Timestamp)>,
}

/// Why a replay could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A process-level option is out of range.
    #[error("{0}")]
    Option(String),
    /// The gateway failed to process a body (a bug): the replay is incomplete.
    #[error("the gateway failed to process the body received at {0}; the replay is incomplete")]
    Panicked(Timestamp),
}

/// Feeds `recorded` (sorted by time) through a gateway built from `settings` and `options`;
/// `progress` hears how many bodies are done.
///
/// # Errors
/// An option out of range, or a body whose processing panicked.
pub async fn replay(
    settings: &Loaded,
    options: &Options,
    recorded: &[Recorded],
    progress: &mut dyn FnMut(usize),
) -> Result<Tally, RunError> {
    let start = recorded.first().map_or(Timestamp::EPOCH, |r| r.at);
    let clock = SimulatedClock::new(start);
    let sink = Arc::new(CountingWriter::default());
    let metrics = Metrics::new();
    let gateway = build(settings, options, &clock, sink.clone(), metrics.clone())?;

    let mut tally = Tally {
        outcomes: Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect(),
        span: recorded
            .first()
            .zip(recorded.last())
            .map(|(a, b)| (a.at, b.at)),
        ..Tally::default()
    };
    let settle = settings.storm.inactivity_timeout + options.update_interval + SETTLE_MARGIN;
    // Ticks fall on whole simulated seconds, the first one after the first body.
    let mut next_tick = Timestamp::from_secs(start.as_secs()) + TICK;
    let mut settled_at = start;
    for (done, body) in recorded.iter().enumerate() {
        while next_tick <= body.at {
            if next_tick > settled_at && gateway.pending_writes() == 0 {
                // Nothing is open and nothing is due: the idle seconds are skipped.
                next_tick = Timestamp::from_secs(body.at.as_secs()) + TICK;
                break;
            }
            clock.set(next_tick);
            gateway.tick().await;
            next_tick = next_tick + TICK;
        }
        clock.set(body.at);
        tally.bodies += 1;
        let outcomes = match gateway.receive(body.payload, &body.body).await {
            Ok(outcomes) | Err(Refused::Unrecorded { outcomes, .. }) => outcomes,
            Err(Refused::Invalid(_) | Refused::OverLimit(_)) => {
                tally.refused_bodies += 1;
                Vec::new()
            }
            Err(Refused::Panicked) => return Err(RunError::Panicked(body.at)),
        };
        for outcome in outcomes {
            *tally.outcomes.entry(outcome.outcome.as_str()).or_default() += 1;
        }
        settled_at = body.at + settle;
        progress(done + 1);
    }
    // The quiet after the last body, tick by tick as in production, then the shutdown round.
    while next_tick <= settled_at {
        clock.set(next_tick);
        gateway.tick().await;
        next_tick = next_tick + TICK;
    }
    gateway.drain().await;

    for storm_type in [StormType::Rate, StormType::Pattern] {
        tally
            .storms
            .insert(storm_type.as_str(), metrics.storms_detected(storm_type));
    }
    tally.calls = sink.calls();
    tally.resources = sink.resources();
    Ok(tally)
}

fn build(
    settings: &Loaded,
    options: &Options,
    clock: &SimulatedClock,
    sink: Arc<CountingWriter>,
    metrics: Metrics,
) -> Result<Gateway, RunError> {
    let option = |flag: &str| RunError::Option(format!("{flag} must be at least 1"));
    let dedup_capacity =
        NonZeroUsize::new(options.dedup_capacity).ok_or_else(|| option("--dedup-capacity"))?;
    let max_alert_names =
        NonZeroUsize::new(options.max_alert_names).ok_or_else(|| option("--max-alert-names"))?;
    let capacity = WindowCapacity::new(options.storm_window_capacity)
        .ok_or_else(|| option("--storm-window-capacity"))?;
    let config = Arc::new(StaticConfigSource::new(
        settings.storm.clone(),
        settings.dedup.clone(),
        settings.retry.clone(),
        settings.security.clone(),
    ));
    let clock: Arc<dyn gateway_ports::Clock> = Arc::new(clock.clone());
    Ok(Gateway::new(Parts {
        config,
        clock: clock.clone(),
        dedup_store: Arc::new(MemoryDedupStore::new(dedup_capacity)),
        writer: sink,
        storms: StormStores {
            counter: Arc::new(MemoryStormCounter::new(max_alert_names)),
            windows: Arc::new(MemoryWindowStore::new(clock)),
            capacity,
            max_buffer_bytes: options.max_window_buffer_bytes,
            // The windows live in this process: the last round closes them.
            shared: false,
        },
        outbox: Arc::new(MemoryOutbox::default()),
        max_dead_letters: 1,
        limits: options.limits,
        metrics,
        fallback_namespace: options.fallback_namespace.clone(),
        timing: WriteTiming {
            update_interval: options.update_interval,
            ..WriteTiming::default()
        },
    }))
}

#[cfg(test)]
mod tests {
    use gateway_ports::{DedupSettings, RetrySettings, SecuritySettings, StormSettings};

    use super::*;
    use crate::gateway::Payload;

    fn options() -> Options {
        Options {
            update_interval: Duration::from_secs(5),
            storm_window_capacity: 1000,
            max_window_buffer_bytes: 1 << 20,
            dedup_capacity: 1000,
            max_alert_names: 100,
            limits: InputLimits {
                max_alerts: 1000,
                max_labels: 64,
                max_label_bytes: 32 * 1024,
            },
            fallback_namespace: "kubernaut-system".to_owned(),
        }
    }

    fn seed() -> Loaded {
        Loaded {
            storm: StormSettings::default(),
            dedup: DedupSettings::default(),
            retry: RetrySettings::default(),
            security: SecuritySettings::default(),
            warnings: Vec::new(),
        }
    }

    /// Pod `pod` firing `secs` seconds after 10:00.
    fn firing(pod: u32, secs: u64) -> Recorded {
        let at =
            Timestamp::parse_rfc3339("2026-11-25T10:00:00Z").unwrap() + Duration::from_secs(secs);
        let body = format!(
            r#"{{"version":"4","alerts":[{{"status":"firing","labels":{{"alertname":"A","namespace":"prod","pod":"p{pod}"}},"startsAt":"{}"}}]}}"#,
            at.to_rfc3339()
        );
        Recorded {
            payload: Payload::Alertmanager,
            body: body.into_bytes(),
            at,
        }
    }

    #[tokio::test]
    async fn a_storm_window_closes_on_the_ticker_after_its_quiet_as_in_production() {
        // Twelve pods in twelve seconds: a pattern storm from the sixth (more than 5 resources),
        // the aggregate created with the fifth buffered one.
        let recorded: Vec<_> = (0..12).map(|pod| firing(pod, u64::from(pod))).collect();
        let tally = replay(&seed(), &options(), &recorded, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(tally.storms.get("pattern"), Some(&1));
        let aggregates: Vec<_> = tally
            .resources
            .iter()
            .filter_map(|r| r.spec.storm.as_ref())
            .collect();
        assert_eq!(aggregates.len(), 1, "{:?}", tally.resources);
        let last = recorded[11].at;
        let closed = aggregates[0].storm_window_end.expect("the window closed");
        // Closed by a tick once `inactivity_timeout` (60 s) passed without a signal — not by the
        // shutdown round, which would be later (after the settle time).
        let quiet = StormSettings::default().inactivity_timeout;
        assert!(
            closed >= last + quiet && closed <= last + quiet + TICK,
            "closed at {closed}, last signal at {last}"
        );
        assert_eq!(
            aggregates[0].storm_alert_count, 7,
            "pods 5 to 11, after 5 individual"
        );
    }

    #[tokio::test]
    async fn bodies_hours_apart_are_two_whole_storms_across_the_skipped_idle_time() {
        let mut recorded: Vec<_> = (0..12).map(|pod| firing(pod, u64::from(pod))).collect();
        recorded.extend((0..12).map(|pod| firing(pod, 6 * 3600 + u64::from(pod))));
        let tally = replay(&seed(), &options(), &recorded, &mut |_| {})
            .await
            .unwrap();
        // Both storms whole: the dedup TTL and the windows ran out in between.
        assert_eq!(tally.storms.get("pattern"), Some(&2));
        assert_eq!(tally.outcomes.get("duplicate"), Some(&0));
        assert_eq!(
            tally.resources.iter().filter(|r| r.spec.is_storm).count(),
            2
        );
    }
}
