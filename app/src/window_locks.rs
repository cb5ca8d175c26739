//! One signal of a storm window at a time in this process. During a storm every new signal goes
//! to the same window, whose store replaces it by compare-and-set: concurrent requests racing
//! it would each lose and retry, and, 32 of them, give up with 503s. Taken in turn (a fair,
//! first-come lock per window, striped by its namespace and alert name), they only contend
//! with other replicas. The wait is bounded by the request's write deadline.

use std::hash::{Hash, Hasher};

use gateway_ports::Signal;
use tokio::sync::{Mutex, MutexGuard};

use crate::writer::Deadline;

/// How many locks the windows share (two windows on one stripe only wait for each other).
const STRIPES: usize = 256;

/// The locks, striped by window.
#[derive(Debug)]
pub struct WindowLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for WindowLocks {
    fn default() -> Self {
        WindowLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl WindowLocks {
    /// The lock of `signal`'s window, once the signals before it have had it; `None` if the
    /// deadline passes first.
    pub async fn lock(&self, signal: &Signal, deadline: Deadline) -> Option<MutexGuard<'_, ()>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&signal.namespace, &signal.name).hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or(0);
        tokio::time::timeout(deadline.remaining(), self.stripes[stripe].lock())
            .await
            .ok()
    }
}
