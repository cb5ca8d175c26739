//! The storm domain over its ports: counts from a [`StormCounter`], windows in a [`WindowStore`],
//! each signal decided by the [`StormDetector`]'s one pure step — whichever adapters the app
//! chose (in process memory, or Redis shared by every replica).
//!
//! A signal loads its window, applies the step, and writes the window back by compare-and-set,
//! starting over when another writer came first. Whoever finds a window past its deadline and
//! wins the compare-and-set that deletes it carries out its closing, so each window closes once.

use std::sync::Arc;
use std::time::Duration;

use gateway_ports::{
    Clock, ConfigSource, Signal, StoreError, StormCounter, StormSettings, Timestamp, WindowStore,
};

use crate::window::OpenWindow;
use crate::{COUNTING, Closure, Observation, StormDetector, WindowCapacity, WindowKey};

/// How often a contended compare-and-set is tried before the signal is refused (and resent).
const ATTEMPTS: usize = 32;

/// Which port failed, so the caller can say why a signal was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum StormError {
    /// The storm counts could not be taken.
    #[error("storm counter: {0}")]
    Counter(#[source] StoreError),
    /// The signal's window could not be read or written.
    #[error("storm windows: {0}")]
    Windows(#[source] StoreError),
}

/// A window due to close: the closure it leaves, and what deleting it must name.
#[derive(Debug, Clone)]
pub struct Closing {
    /// What the window leaves: its final aggregate, or its buffer to flush.
    pub closure: Closure,
    name: String,
    version: u64,
}

/// The windows an expiry check found due, and those still open.
#[derive(Debug, Default)]
pub struct Due {
    /// Windows due to close: hand each closure over, then [`StormTracker::close`] it.
    pub closing: Vec<Closing>,
    /// Windows still open.
    pub open: usize,
    /// Signals held in the buffers of the windows still open.
    pub buffered: usize,
}

/// What an expiry check found.
#[derive(Debug, Default)]
pub struct Expired {
    /// Windows closed by this check: each to be carried out by the caller, once.
    pub closed: Vec<Closure>,
    /// Windows still open.
    pub open: usize,
    /// Signals held in the buffers of the windows still open.
    pub buffered: usize,
}

/// Storm detection and aggregation over the ports.
#[derive(Debug)]
pub struct StormTracker<C: ?Sized, W: ?Sized> {
    counter: Arc<C>,
    windows: Arc<W>,
    detector: StormDetector,
}

/// The store's name for a window: `<namespace length>:<namespace>/<alert name>`. The length
/// prefix makes the name injective whatever the two hold (namespace `a` with alert `b/c` and
/// namespace `a/b` with alert `c` are different windows).
fn name_of(key: &WindowKey) -> String {
    format!(
        "{}:{}/{}",
        key.namespace.len(),
        key.namespace,
        key.alert_name
    )
}

/// The key a window name was made from ([`name_of`]'s inverse); `None` for a name it did not make.
fn key_of(name: &str) -> Option<WindowKey> {
    let (len, rest) = name.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let namespace = rest.get(..len)?;
    let alert_name = rest.get(len..)?.strip_prefix('/')?;
    Some(WindowKey {
        namespace: namespace.to_owned(),
        alert_name: alert_name.to_owned(),
    })
}

/// How long a stored window may outlive its deadline unclosed (every replica down) before the
/// store drops it: long enough for a replica to come back and close it.
fn ttl(settings: &StormSettings) -> Duration {
    settings
        .max_window_duration
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(3600))
}

fn contended(name: &str) -> StoreError {
    StoreError::Unavailable {
        reason: format!("storm window {name} stayed contended"),
        source: None,
    }
}

impl<C: StormCounter + ?Sized, W: WindowStore + ?Sized> StormTracker<C, W> {
    /// Storms counted in `counter`, windows kept in `windows`, each storing at most `capacity`
    /// distinct resources.
    pub fn new(counter: Arc<C>, windows: Arc<W>, capacity: WindowCapacity) -> Self {
        StormTracker {
            counter,
            windows,
            detector: StormDetector::new(capacity),
        }
    }

    /// The same tracker with windows buffering at most `bytes` of signals (see
    /// [`StormDetector::with_max_buffer_bytes`]).
    #[must_use]
    pub fn with_max_buffer_bytes(self, bytes: u64) -> Self {
        StormTracker {
            detector: self.detector.with_max_buffer_bytes(bytes),
            ..self
        }
    }

    /// Takes one new, firing, non-duplicate signal arriving at `now`: counts it and loads its
    /// window (together), then places it in the window (see [`StormDetector::observe`]).
    pub async fn observe(
        &self,
        signal: &Signal,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Result<Observation, StormError> {
        let name = name_of(&WindowKey::of(signal));
        // The count and the first load are independent: sent together, they share one round
        // trip to a networked store. A load that the count overtakes is as good as any other:
        // the compare-and-set below refuses a stale one.
        let (counts, first_load) = futures::future::join(
            self.counter
                .count(&signal.name, &signal.resource, now, COUNTING),
            self.windows.load(&name),
        )
        .await;
        let counts = counts.map_err(StormError::Counter)?;
        let mut first_load = Some(first_load);
        for _ in 0..ATTEMPTS {
            let stored = match first_load.take() {
                Some(loaded) => loaded,
                None => self.windows.load(&name).await,
            }
            .map_err(StormError::Windows)?;
            let version = stored.as_ref().map(|s| s.version);
            let window = stored.and_then(|s| OpenWindow::from_bytes(&s.state));
            let step = self.detector.observe(window, signal, counts, settings, now);
            let observation = Observation {
                decision: step.decision,
                closed: step.closed,
            };
            if version.is_none() && step.window.is_none() {
                return Ok(observation);
            }
            let state = step.window.map(|w| w.to_bytes());
            let replaced = self
                .windows
                .replace(&name, version, state, ttl(settings))
                .await
                .map_err(StormError::Windows)?;
            if replaced {
                return Ok(observation);
            }
        }
        Err(StormError::Windows(contended(&name)))
    }

    /// [`StormTracker::observe`] with the storm settings in force in `config` and the time from
    /// `clock`.
    pub async fn observe_with(
        &self,
        signal: &Signal,
        config: &dyn ConfigSource,
        clock: &dyn Clock,
    ) -> Result<Observation, StormError> {
        let settings = config.storm();
        self.observe(signal, &settings, clock.now()).await
    }

    /// Closes every window whose deadline under `settings` is at or before `now` and that no
    /// other writer closed first; counts the windows left open. The closures come back after
    /// their windows are deleted: a caller that must not lose one to a crash in between uses
    /// [`StormTracker::due`] and [`StormTracker::close`] instead.
    pub async fn expire(
        &self,
        settings: &StormSettings,
        now: Timestamp,
    ) -> Result<Expired, StoreError> {
        let due = self.due(settings, now).await?;
        let mut expired = Expired {
            closed: Vec::new(),
            open: due.open,
            buffered: due.buffered,
        };
        for closing in due.closing {
            if self.close(&closing, settings).await? {
                expired.closed.push(closing.closure);
            }
        }
        Ok(expired)
    }

    /// The windows whose deadline under `settings` is at or before `now`, with what each leaves,
    /// not yet deleted: the caller hands each closure over where it is durable, then
    /// [`StormTracker::close`]s the window — so a crash in between closes it again (the same
    /// closure, the same RemediationRequest names) rather than losing it.
    pub async fn due(&self, settings: &StormSettings, now: Timestamp) -> Result<Due, StoreError> {
        let mut due = Due::default();
        for (name, version, window) in self.stored().await? {
            let Some((key, window)) = window else {
                // Not a window this code can read: drop it rather than trip over it forever.
                self.windows
                    .replace(&name, Some(version), None, ttl(settings))
                    .await?;
                continue;
            };
            let buffered = window.buffered();
            match self.detector.expire(window, key, settings, now) {
                Some(closure) => due.closing.push(Closing {
                    closure,
                    name,
                    version,
                }),
                None => {
                    due.open += 1;
                    due.buffered += buffered;
                }
            }
        }
        Ok(due)
    }

    /// Deletes a window [`StormTracker::due`] found, if it is still as it was found; `false`
    /// when another writer changed or closed it first (its closure is then that writer's: the
    /// same RemediationRequests, so one handed over twice is written twice, never lost).
    pub async fn close(
        &self,
        closing: &Closing,
        settings: &StormSettings,
    ) -> Result<bool, StoreError> {
        self.windows
            .replace(&closing.name, Some(closing.version), None, ttl(settings))
            .await
    }

    /// Closes every window now, due or not: for a process whose window store dies with it
    /// (graceful shutdown). A store shared by replicas is left alone by its callers.
    pub async fn drain(&self, now: Timestamp) -> Result<Vec<Closure>, StoreError> {
        let mut closed = Vec::new();
        for (name, version, window) in self.stored().await? {
            let removed = self
                .windows
                .replace(&name, Some(version), None, Duration::ZERO)
                .await?;
            if let (true, Some((key, window))) = (removed, window) {
                closed.push(self.detector.close_now(window, key, now));
            }
        }
        Ok(closed)
    }

    /// Every stored window: its name, version, and (when readable) its key and state.
    async fn stored(&self) -> Result<Vec<StoredEntry>, StoreError> {
        let mut entries = Vec::new();
        for name in self.windows.keys().await? {
            let Some(stored) = self.windows.load(&name).await? else {
                continue;
            };
            let window = key_of(&name).zip(OpenWindow::from_bytes(&stored.state));
            entries.push((name, stored.version, window));
        }
        Ok(entries)
    }
}

type StoredEntry = (String, u64, Option<(WindowKey, OpenWindow)>);

#[cfg(test)]
mod tests;
