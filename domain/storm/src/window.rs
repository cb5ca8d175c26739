//! One aggregation window: its buffer, its aggregate, its deadline and its sampling — the state
//! the transitions of [`StormDetector`](crate::StormDetector) read and write.

use std::collections::HashSet;

use gateway_ports::{ResourceRef, Signal, StormSettings, Timestamp};

use crate::{Aggregate, Closure, Decision, StormType, WindowCapacity, WindowKey, threshold};

/// The state of one open aggregation window, opaque outside this crate: the detector's
/// transitions change it, a `WindowStore` keeps it as bytes ([`OpenWindow::to_bytes`]), so that
/// replicas (or a process and its embedded store) share it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OpenWindow {
    storm_type: StormType,
    opened_at: Timestamp,
    last_activity: Timestamp,
    /// The deadline under the settings in force at the last signal. Only `drain`, which is given
    /// no settings, relies on it; every other check recomputes it from the settings it is given.
    deadline: Timestamp,
    first_signal: Signal,
    capacity: WindowCapacity,
    /// `Some` while no aggregate exists: the signals to create one by one if the window closes
    /// before its buffer reaches `buffer_threshold`.
    buffer: Option<Vec<Signal>>,
    /// The bytes of the buffered signals ([`signal_bytes`]).
    #[serde(default)]
    buffer_bytes: u64,
    /// Distinct resources stored, in arrival order (at most `capacity`).
    resources: Vec<ResourceRef>,
    /// The same resources, for membership checks (rebuilt from `resources` when loaded).
    #[serde(skip)]
    stored: HashSet<ResourceRef>,
    alert_count: u64,
    sampled_out: u64,
    /// Signals that arrived while sampling was on: the position that decides which are kept.
    sampling_seq: u64,
}

/// What a buffered signal costs, roughly: its name, its resource, and its labels' and
/// annotations' names and values.
pub fn signal_bytes(signal: &Signal) -> u64 {
    let text = signal
        .labels
        .iter()
        .chain(&signal.annotations)
        .map(|(k, v)| k.len() + v.len())
        .fold(0usize, usize::saturating_add)
        .saturating_add(signal.name.len())
        .saturating_add(signal.namespace.len())
        .saturating_add(signal.resource.name.len());
    u64::try_from(text).unwrap_or(u64::MAX)
}

/// When a window closes: after `inactivity_timeout` without a signal, and never later than
/// `max_window_duration` after it opened.
fn deadline(opened_at: Timestamp, last_activity: Timestamp, s: &StormSettings) -> Timestamp {
    (last_activity + s.inactivity_timeout).min(opened_at + s.max_window_duration)
}

/// Whether the `k`-th signal since sampling started is kept: spreads the kept ones evenly, exactly
/// `rate` of them over any long run, with no randomness so decisions are reproducible.
fn kept(k: u64, rate: f64) -> bool {
    (k.saturating_add(1) as f64 * rate).floor() > (k as f64 * rate).floor()
}

impl OpenWindow {
    /// An empty window, buffering, opened by `signal` (which the caller then passes to `take`).
    pub(crate) fn open(
        signal: &Signal,
        storm_type: StormType,
        capacity: WindowCapacity,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Self {
        OpenWindow {
            storm_type,
            opened_at: now,
            last_activity: now,
            deadline: deadline(now, now, settings),
            first_signal: signal.clone(),
            capacity,
            buffer: Some(Vec::new()),
            buffer_bytes: 0,
            resources: Vec::new(),
            stored: HashSet::new(),
            alert_count: 0,
            sampled_out: 0,
            sampling_seq: 0,
        }
    }

    /// When the window closes under `settings`: `inactivity_timeout` after its last signal, and
    /// never later than `max_window_duration` after it opened.
    pub fn deadline(&self, settings: &StormSettings) -> Timestamp {
        deadline(self.opened_at, self.last_activity, settings)
    }

    /// Signals held in the buffer (none once the aggregate exists).
    pub fn buffered(&self) -> usize {
        self.buffer.as_ref().map_or(0, Vec::len)
    }

    /// Takes in one signal that arrived before the deadline. A buffer whose signals would hold
    /// more than `max_buffer_bytes` becomes an aggregate at once, as a full one does.
    pub(crate) fn take(
        &mut self,
        key: WindowKey,
        signal: &Signal,
        settings: &StormSettings,
        now: Timestamp,
        storm_started: Option<StormType>,
        max_buffer_bytes: u64,
    ) -> Decision {
        self.alert_count = self.alert_count.saturating_add(1);
        // Callers may pass slightly out-of-order times (receive times racing for a lock); the
        // window's activity never moves back.
        self.last_activity = self.last_activity.max(now);
        self.deadline = self.deadline(settings);
        let capacity = self.capacity.len();
        if let Some(buffer) = &mut self.buffer {
            // Buffered signals are never sampled: if the buffer is flushed each must come back.
            buffer.push(signal.clone());
            let buffered = buffer.len();
            self.buffer_bytes = self.buffer_bytes.saturating_add(signal_bytes(signal));
            self.store(&signal.resource);
            // Capped by capacity so the aggregate never lists more resources than a window stores.
            if self.resources.len() >= threshold(settings.buffer_threshold).min(capacity)
                || self.buffer_bytes > max_buffer_bytes
            {
                self.buffer = None;
                return Decision::CreateAggregate {
                    aggregate: self.snapshot(key, None),
                    storm_started,
                };
            }
            return Decision::Buffered {
                key,
                buffered,
                storm_started,
            };
        }
        let sampling_from =
            (settings.sampling_threshold.get() * f64::from(self.capacity.get())).ceil() as usize;
        let keep = if self.resources.len() >= sampling_from {
            let k = self.sampling_seq;
            self.sampling_seq = self.sampling_seq.saturating_add(1);
            kept(k, settings.sampling_rate.get())
        } else {
            true
        };
        let known = self.stored.contains(&signal.resource);
        if keep && (known || self.resources.len() < capacity) {
            self.store(&signal.resource);
            Decision::Joined {
                aggregate: self.snapshot(key, None),
            }
        } else {
            self.sampled_out = self.sampled_out.saturating_add(1);
            Decision::SampledOut {
                aggregate: self.snapshot(key, None),
            }
        }
    }

    /// Ends the window at `closed_at`: its final aggregate, or its buffer to flush.
    pub(crate) fn close(self, key: WindowKey, closed_at: Timestamp) -> Closure {
        match self.buffer {
            Some(signals) => Closure::Flush {
                key,
                storm_type: self.storm_type,
                signals,
            },
            None => Closure::Aggregate(self.snapshot(key, Some(closed_at))),
        }
    }

    /// The window as bytes, for a `WindowStore`.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain data with string keys: serialising it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A window stored by [`OpenWindow::to_bytes`]; `None` if the bytes are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<OpenWindow> {
        let mut window: OpenWindow = serde_json::from_slice(bytes).ok()?;
        window.stored = window.resources.iter().cloned().collect();
        Some(window)
    }

    /// The deadline as of the last signal, for a close without settings (shutdown).
    pub(crate) fn last_deadline(&self) -> Timestamp {
        self.deadline
    }

    fn store(&mut self, resource: &ResourceRef) {
        if self.stored.insert(resource.clone()) {
            self.resources.push(resource.clone());
        }
    }

    fn snapshot(&self, key: WindowKey, closed_at: Option<Timestamp>) -> Aggregate {
        Aggregate {
            key,
            storm_type: self.storm_type,
            opened_at: self.opened_at,
            closed_at,
            first_signal: self.first_signal.clone(),
            resources: self.resources.clone(),
            alert_count: self.alert_count,
            sampled_out: self.sampled_out,
            last_activity: self.last_activity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_exactly_the_rate_over_a_run() {
        for (rate, expected) in [(0.5, 50), (0.25, 25), (1.0, 100), (0.1, 10), (0.3, 30)] {
            let kept = (0..100).filter(|k| kept(*k, rate)).count();
            assert_eq!(kept, expected, "rate {rate}");
        }
    }
}
