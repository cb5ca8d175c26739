//! The replay's clock: recorded time, set by the replay and by nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gateway_ports::{Clock, Timestamp};

/// A clock that reads what it was last set to; clones share it.
#[derive(Debug, Clone)]
pub struct SimulatedClock(Arc<AtomicU64>);

impl SimulatedClock {
    /// A clock reading `t`.
    pub fn new(t: Timestamp) -> Self {
        SimulatedClock(Arc::new(AtomicU64::new(t.as_millis())))
    }

    /// From now on it reads `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}
