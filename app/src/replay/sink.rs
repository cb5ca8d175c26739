//! The replay's sink: a [`RemediationWriter`] that writes nowhere. It answers as a sink that
//! holds every resource would (the contract of the port: `AlreadyExisted`, `Superseded`,
//! `NotFound`), keeps the resources in memory only, and counts what it was asked.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use gateway_ports::{
    Occurrences, RemediationRequest, RemediationWriter, WriteError, WriteFailure, Written,
};

/// What the sink was asked, by port call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// `create` calls (a `POST` each on the Kubernetes sink).
    pub creates: u64,
    /// `update` calls: an aggregate's growth, sampling counts, closing (a guarded `PATCH`).
    pub updates: u64,
    /// `record_occurrences` calls: a duplicate's coalesced occurrence count (a `PATCH`).
    pub occurrence_updates: u64,
    /// Of those, the ones naming a resource that does not exist (404 on the Kubernetes sink):
    /// a duplicate of a signal whose RemediationRequest is an aggregate, or not written yet.
    pub occurrence_not_found: u64,
}

/// Writes nothing, counts everything; the resources live in memory only.
#[derive(Debug, Default)]
pub struct CountingWriter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    calls: Calls,
    /// By `namespace/name`, in the order first written.
    resources: HashMap<String, RemediationRequest>,
    order: Vec<String>,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl CountingWriter {
    /// The calls so far.
    pub fn calls(&self) -> Calls {
        self.lock().calls
    }

    /// Every resource that would exist, in the order first written, as last written.
    pub fn resources(&self) -> Vec<RemediationRequest> {
        let state = self.lock();
        state
            .order
            .iter()
            .filter_map(|k| state.resources.get(k).cloned())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing here panics while holding the lock; a poisoned one still holds sound counts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn insert(&mut self, request: &RemediationRequest) {
        let k = key(&request.namespace, &request.name);
        if self.resources.insert(k.clone(), request.clone()).is_none() {
            self.order.push(k);
        }
    }
}

#[async_trait]
impl RemediationWriter for CountingWriter {
    async fn create(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
        let mut state = self.lock();
        state.calls.creates += 1;
        let k = key(&request.namespace, &request.name);
        if let Some(existing) = state.resources.get_mut(&k) {
            let dedup = &mut existing.spec.deduplication;
            dedup.occurrence_count = dedup.occurrence_count.saturating_add(1);
            return Ok(Written::AlreadyExisted);
        }
        state.insert(request);
        Ok(Written::Created)
    }

    async fn update(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
        let mut state = self.lock();
        state.calls.updates += 1;
        let k = key(&request.namespace, &request.name);
        match state.resources.get(&k) {
            None => {
                state.insert(request);
                Ok(Written::Created)
            }
            Some(stored) if stored.spec.progress() >= request.spec.progress() => {
                Ok(Written::Superseded)
            }
            Some(_) => {
                state.insert(request);
                Ok(Written::Updated)
            }
        }
    }

    async fn record_occurrences(&self, occurrences: &Occurrences) -> Result<Written, WriteError> {
        let mut state = self.lock();
        state.calls.occurrence_updates += 1;
        let k = key(&occurrences.namespace, &occurrences.name);
        let Some(stored) = state.resources.get_mut(&k) else {
            state.calls.occurrence_not_found += 1;
            return Err(WriteError::new(
                WriteFailure::NotFound,
                format!("no RemediationRequest {k}"),
            ));
        };
        let dedup = &mut stored.spec.deduplication;
        dedup.occurrence_count = dedup.occurrence_count.max(occurrences.occurrence_count);
        dedup.last_occurrence = dedup.last_occurrence.max(occurrences.last_occurrence);
        Ok(Written::Updated)
    }

    async fn check(&self) -> Result<(), WriteError> {
        Ok(())
    }
}
