//! Storm detection and aggregation: the decisions, and the one path that carries them over the
//! storm ports.
//!
//! The model, in short:
//! - every new, firing, non-duplicate signal is counted per alert name (the [`StormCounter`]
//!   port: signals in the last [`RATE_WINDOW`], distinct resources in the last
//!   [`PATTERN_WINDOW`]); [`classify`] says whether the counts are a storm: more than
//!   `rate_threshold` signals is a rate storm, more than `pattern_threshold` distinct resources a
//!   pattern storm;
//! - during a storm, signals are gathered in an aggregation window per (namespace, alert name).
//!   A window first *buffers* signals; once `buffer_threshold` distinct resources are buffered one
//!   aggregate is created, and later signals join it (sampled once the window is nearly full);
//! - a window closes after `inactivity_timeout` without a signal, and never lives longer than
//!   `max_window_duration`. Closing yields a final aggregate, or, if the buffer never reached the
//!   threshold, the buffered signals to be created one by one.
//!
//! Every signal is accounted for exactly once: as [`Decision::Individual`], in a
//! [`Closure::Flush`], or in the `alert_count` of an aggregate's final snapshot.
//!
//! [`StormDetector`] is the one pure step (window state, signal, counts, settings, time →
//! decision and next state); [`StormTracker`] runs it over the [`StormCounter`] and
//! [`WindowStore`] ports, whichever adapters back them (process memory, or Redis shared by
//! replicas). Nothing here performs IO or reads a clock: time and settings are arguments, so
//! the caller decides when windows expire ([`StormTracker::expire`]) and every decision is
//! reproducible.
//!
//! [`StormCounter`]: gateway_ports::StormCounter
//! [`WindowStore`]: gateway_ports::WindowStore

mod detector;
mod tracker;
mod window;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_support;

use std::num::NonZeroU32;
use std::time::Duration;

use gateway_ports::{
    Counting, ResourceRef, Signal, StormCounts, StormSettings, Threshold, Timestamp,
};

pub use detector::{Step, StormDetector};
pub use tracker::{Closing, Due, Expired, StormError, StormTracker};
pub use window::{OpenWindow, signal_bytes};

/// The span over which signals are counted for a rate storm.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The span over which distinct resources are counted for a pattern storm; also how long an alert
/// name's history is kept.
pub const PATTERN_WINDOW: Duration = Duration::from_secs(120);

/// What storm counters count over: the rate and pattern windows, and at most 10,000 signals and
/// distinct resources per alert name (a bound on memory during a huge storm: a threshold at or
/// above it can never be exceeded).
pub const COUNTING: Counting = Counting {
    rate_window: RATE_WINDOW,
    pattern_window: PATTERN_WINDOW,
    max_tracked: 10_000,
};

/// The most distinct resources one aggregation window stores (at least 1).
///
/// It bounds the memory of a window and the size of the aggregated resource; sampling starts at
/// `sampling_threshold` of it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct WindowCapacity(NonZeroU32);

impl WindowCapacity {
    /// The capacity used when none is configured.
    pub const DEFAULT: WindowCapacity = match NonZeroU32::new(1000) {
        Some(n) => WindowCapacity(n),
        None => WindowCapacity(NonZeroU32::MIN),
    };

    /// `Some` when `n ≥ 1`.
    pub const fn new(n: u32) -> Option<Self> {
        match NonZeroU32::new(n) {
            Some(n) => Some(WindowCapacity(n)),
            None => None,
        }
    }

    /// The capacity as a number.
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// The capacity as a length, for comparisons with `Vec::len`.
    fn len(self) -> usize {
        usize::try_from(self.get()).unwrap_or(usize::MAX)
    }
}

/// The storm that counts show under `settings`, if any: more than `rate_threshold` signals in
/// the rate window is a rate storm (it wins when both hold); more than `pattern_threshold`
/// distinct resources in the pattern window is a pattern storm.
pub fn classify(counts: StormCounts, settings: &StormSettings) -> Option<StormType> {
    if counts.rate > u64::from(settings.rate_threshold.get()) {
        Some(StormType::Rate)
    } else if counts.distinct_resources > u64::from(settings.pattern_threshold.get()) {
        Some(StormType::Pattern)
    } else {
        None
    }
}

/// A threshold as a length, for comparisons with collection sizes.
fn threshold(t: Threshold) -> usize {
    usize::try_from(t.get()).unwrap_or(usize::MAX)
}

impl Default for WindowCapacity {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which condition opened an aggregation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StormType {
    /// Too many signals of one alert name in [`RATE_WINDOW`].
    Rate,
    /// Too many distinct resources hit by one alert name in [`PATTERN_WINDOW`].
    Pattern,
}

impl StormType {
    /// The metric label and CRD value: `rate` or `pattern`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StormType::Rate => "rate",
            StormType::Pattern => "pattern",
        }
    }
}

/// What an aggregation window gathers: the signals of one alert name in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    /// The signals' namespace (empty for cluster-scoped signals).
    pub namespace: String,
    /// The signals' alert name.
    pub alert_name: String,
}

impl WindowKey {
    /// The window a signal belongs to.
    pub fn of(signal: &Signal) -> Self {
        WindowKey {
            namespace: signal.namespace.clone(),
            alert_name: signal.name.clone(),
        }
    }
}

/// Snapshot of an aggregation window, for writing its aggregated RemediationRequest.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The window's (namespace, alert name).
    pub key: WindowKey,
    /// The condition that opened the window.
    pub storm_type: StormType,
    /// When the window opened.
    pub opened_at: Timestamp,
    /// `Some` only in a final (closing) snapshot: when the window ended, never later than
    /// `opened_at + max_window_duration`.
    pub closed_at: Option<Timestamp>,
    /// The signal that opened the window (name, severity, labels for the resource).
    pub first_signal: Signal,
    /// The distinct resources stored, in arrival order; at most the window's capacity.
    pub resources: Vec<ResourceRef>,
    /// Every signal the window took in: buffered, joined and sampled out.
    pub alert_count: u64,
    /// Of `alert_count`, the signals counted but whose resource was not stored.
    pub sampled_out: u64,
    /// When the window last took in a signal.
    pub last_activity: Timestamp,
}

/// What the caller does with one observed signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not a storm: create one RemediationRequest for this signal.
    Individual,
    /// Held in the window's buffer (nothing to write yet); it comes back in a
    /// [`Closure::Flush`] or is counted in an aggregate.
    Buffered {
        /// The window holding it.
        key: WindowKey,
        /// Signals now held in that window's buffer.
        buffered: usize,
        /// `Some` when this signal opened the window: a storm was detected.
        storm_started: Option<StormType>,
    },
    /// The buffer reached `buffer_threshold` distinct resources: create the aggregate now. Its
    /// `alert_count` covers every buffered signal, this one included.
    CreateAggregate {
        /// The aggregate to create.
        aggregate: Aggregate,
        /// `Some` when this signal opened the window (`buffer_threshold` of 1).
        storm_started: Option<StormType>,
    },
    /// Joined a window whose aggregate exists: update it.
    Joined {
        /// The aggregate, up to date.
        aggregate: Aggregate,
    },
    /// Joined a window whose aggregate exists but was sampled out: counted in the aggregate
    /// (`alert_count`, `sampled_out`), its resource not stored.
    SampledOut {
        /// The aggregate, up to date.
        aggregate: Aggregate,
    },
}

/// A window that closed, and what the caller must write for it.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived values handed straight to the writer; a box would only add an allocation"
)]
pub enum Closure {
    /// Final snapshot of an aggregate (`closed_at` is `Some`): bring the resource up to date.
    Aggregate(Aggregate),
    /// The buffer never reached `buffer_threshold`: create each signal individually.
    Flush {
        /// The window that held them.
        key: WindowKey,
        /// The condition that opened it.
        storm_type: StormType,
        /// The buffered signals, in arrival order.
        signals: Vec<Signal>,
    },
}

/// The outcome of observing one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// What to do with the signal.
    pub decision: Decision,
    /// The signal's window, closed before the signal was placed because it was past its
    /// deadline: to be carried out like any other closure.
    pub closed: Option<Closure>,
}
