//! Storm aggregates, written coalesced: the creation at once (the request whose signal filled
//! the buffer waits for it, under its deadline); growth at most once per aggregate per
//! `--update-interval`, and the close, by the ticker.
//!
//! Per aggregate, the newest snapshot not yet written waits here; a newer one replaces it (the
//! alert count only rises, and the closing snapshot is the newest of all). At most one write
//! per aggregate is in flight, and no lock is held while it is, so writes of different
//! aggregates run side by side and an aggregate is never written backwards: a snapshot older
//! than one already written is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use gateway_ports::{Progress, Timestamp, Written};
use gateway_storm::Aggregate;

use crate::dead_letters::DeadLetters;
use crate::metrics::Metrics;
use crate::occurrences::OccurrenceUpdate;
use crate::placement::{NotPlaced, Placement};
use crate::remediation;
use crate::writer::{Deadline, Op};

/// How many aggregate writes the ticker runs at once.
const CONCURRENCY: usize = 16;

/// How long an aggregate with nothing left to write is remembered (its window may live on in a
/// store shared with replicas that close it): forgetting it early costs one extra write.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// How far a snapshot has got, as its RemediationRequest will say (`Progress`: more alerts, or
/// as many and closed, is newer).
fn rank(aggregate: &Aggregate) -> Progress {
    Progress {
        count: aggregate.alert_count,
        closed: aggregate.closed_at.is_some(),
    }
}

#[derive(Debug, Default)]
struct Entry {
    /// The newest snapshot not yet written.
    unwritten: Option<Aggregate>,
    /// The newest snapshot written.
    written: Option<Progress>,
    /// When it was written.
    written_at: Option<Timestamp>,
    /// A write of this aggregate is under way.
    in_flight: bool,
}

impl Entry {
    /// Keeps `aggregate` when it is newer than everything known of this aggregate; `true` when
    /// it took the place of an unwritten snapshot (two updates became one write).
    fn offer(&mut self, aggregate: Aggregate) -> bool {
        let newest = self.unwritten.as_ref().map(rank).max(self.written);
        if newest.is_some_and(|newest| newest >= rank(&aggregate)) {
            return false;
        }
        self.unwritten.replace(aggregate).is_some()
    }

    fn due(&self, now: Timestamp, interval: Duration, everything: bool) -> bool {
        let Some(unwritten) = &self.unwritten else {
            return false;
        };
        !self.in_flight
            && (everything
                || unwritten.closed_at.is_some()
                || self
                    .written_at
                    .is_none_or(|at| now.saturating_since(at) >= interval))
    }

    /// Nothing left to write and nothing more will come (closed), or nothing heard for long.
    fn finished(&self, now: Timestamp) -> bool {
        !self.in_flight
            && self.unwritten.is_none()
            && (self.written.is_some_and(|w| w.closed)
                || self
                    .written_at
                    .is_none_or(|at| now.saturating_since(at) >= FORGET_AFTER))
    }
}

/// Storm aggregates waiting to be written, and their writes.
#[derive(Debug)]
pub struct AggregateWriter {
    writer: Arc<Placement>,
    dead_letters: Arc<DeadLetters>,
    metrics: Metrics,
    fallback_namespace: String,
    interval: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl AggregateWriter {
    /// Aggregates written through `writer`, growth at most once per `interval`; one the sink
    /// refuses for good goes to `dead_letters`.
    pub fn new(
        writer: Arc<Placement>,
        dead_letters: Arc<DeadLetters>,
        metrics: Metrics,
        fallback_namespace: String,
        interval: Duration,
    ) -> Self {
        AggregateWriter {
            writer,
            dead_letters,
            metrics,
            fallback_namespace,
            interval,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the aggregate a signal just completed, under the request's `deadline`. When
    /// another write of it is under way, or it was written already, the snapshot waits for the
    /// next flush instead. A creation that fails waits too: its signals live on in the window.
    pub async fn create(
        &self,
        aggregate: Aggregate,
        deadline: Deadline,
        now: Timestamp,
    ) -> Option<Written> {
        let name = remediation::aggregate_name(&aggregate);
        let aggregate = {
            let mut entries = self.entries();
            let entry = entries.entry(name.clone()).or_default();
            // A request racing this one may have offered a newer snapshot already: the newest
            // known is the one created.
            entry.offer(aggregate);
            if entry.in_flight || entry.written.is_some() {
                return None;
            }
            let snapshot = entry.unwritten.take()?;
            entry.in_flight = true;
            snapshot
        };
        let request = remediation::for_aggregate(&aggregate, &self.fallback_namespace);
        let result = self
            .writer
            .write(Op::Create, &request, Some(deadline))
            .await;
        let written = self.settle(&request, result, now);
        self.complete(&name, aggregate, written, now);
        written
    }

    /// What a write did, for [`AggregateWriter::complete`]: `None` to write it again later. A
    /// snapshot the sink refuses for good is dead-lettered and counts as done.
    fn settle(
        &self,
        request: &gateway_ports::RemediationRequest,
        result: Result<Written, NotPlaced>,
        now: Timestamp,
    ) -> Option<Written> {
        match result {
            Ok(written) => Some(written),
            Err(NotPlaced::Rejected { detail, .. }) => {
                self.dead_letters.record(request, &detail, now);
                // Given up: nothing of this snapshot is left to write.
                Some(Written::Superseded)
            }
            Err(NotPlaced::Failed(e)) => {
                tracing::warn!(error = %e, "storm aggregate not written: trying again next tick");
                None
            }
        }
    }

    /// Keeps a newer snapshot of a growing (or closing) aggregate for the next flush.
    pub fn update(&self, aggregate: Aggregate) {
        let name = remediation::aggregate_name(&aggregate);
        let mut entries = self.entries();
        let entry = entries.entry(name).or_default();
        self.offer(entry, aggregate);
    }

    fn offer(&self, entry: &mut Entry, aggregate: Aggregate) {
        if entry.offer(aggregate) {
            self.metrics.occurrence_update(OccurrenceUpdate::Coalesced);
        }
    }

    /// Writes every aggregate that is due: closed ones at once, growing ones once per interval
    /// (everything, at shutdown). Several aggregates are written at once; what fails waits for
    /// the next flush.
    pub async fn flush(&self, now: Timestamp, everything: bool) {
        let due: Vec<(String, Aggregate)> = {
            let mut entries = self.entries();
            entries.retain(|_, entry| !entry.finished(now));
            entries
                .iter_mut()
                .filter(|(_, entry)| entry.due(now, self.interval, everything))
                .filter_map(|(name, entry)| {
                    let aggregate = entry.unwritten.take()?;
                    entry.in_flight = true;
                    Some((name.clone(), aggregate))
                })
                .collect()
        };
        futures::stream::iter(due)
            .map(|(name, aggregate)| async move {
                let request = remediation::for_aggregate(&aggregate, &self.fallback_namespace);
                let result = self.writer.write(Op::Update, &request, None).await;
                let written = self.settle(&request, result, now);
                self.complete(&name, aggregate, written, now);
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<()>()
            .await;
    }

    /// Records the end of a write of `aggregate`.
    fn complete(&self, name: &str, aggregate: Aggregate, written: Option<Written>, now: Timestamp) {
        let mut entries = self.entries();
        let entry = entries.entry(name.to_owned()).or_default();
        entry.in_flight = false;
        match written {
            // Written: the resource has this content, or a newer one (superseded: another
            // replica wrote a later snapshot first).
            Some(Written::Created | Written::Updated | Written::Superseded) => {
                let done = rank(&aggregate);
                entry.written = entry.written.max(Some(done));
                entry.written_at = Some(now);
                if entry.unwritten.as_ref().is_some_and(|u| rank(u) <= done) {
                    entry.unwritten = None;
                }
            }
            // A create that met an existing resource (a retry whose first attempt landed, or
            // a replica sharing the window) did not write this content: it waits to be written
            // as an update. So does a failed write.
            Some(Written::AlreadyExisted) | None => {
                entry.offer(aggregate);
            }
        }
    }

    /// Aggregates with a snapshot waiting to be written.
    pub fn unwritten(&self) -> usize {
        self.entries()
            .values()
            .filter(|e| e.unwritten.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use async_trait::async_trait;
    use gateway_ports::test_util::{at, signal};
    use gateway_ports::{
        Occurrences, RemediationRequest, RemediationWriter, SettingsCell, WriteError, WriteFailure,
    };
    use gateway_storm::{StormType, WindowKey};

    use super::*;
    use crate::writer::RetryingWriter;

    /// A sink that records what it was asked to write (op, alert count, closed), and can be
    /// told to fail.
    #[derive(Debug, Default)]
    struct Recording {
        calls: StdMutex<Vec<(&'static str, u64, bool)>>,
        failing: StdMutex<bool>,
    }

    impl Recording {
        fn record(&self, op: &'static str, request: &RemediationRequest) -> Result<(), WriteError> {
            let storm = request.spec.storm.as_ref().expect("an aggregate");
            self.calls.lock().unwrap().push((
                op,
                storm.storm_alert_count,
                storm.storm_window_end.is_some(),
            ));
            if *self.failing.lock().unwrap() {
                return Err(WriteError::new(WriteFailure::Connection, "down"));
            }
            Ok(())
        }

        fn calls(&self) -> Vec<(&'static str, u64, bool)> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl RemediationWriter for Recording {
        async fn create(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
            self.record("create", request).map(|()| Written::Created)
        }
        async fn update(&self, request: &RemediationRequest) -> Result<Written, WriteError> {
            self.record("update", request).map(|()| Written::Updated)
        }
        async fn record_occurrences(&self, _: &Occurrences) -> Result<Written, WriteError> {
            Ok(Written::Updated)
        }
        async fn check(&self) -> Result<(), WriteError> {
            Ok(())
        }
    }

    const INTERVAL: Duration = Duration::from_secs(5);

    /// A recording sink, and an aggregate writer over it.
    fn fixture() -> (Arc<Recording>, AggregateWriter) {
        let sink = Arc::new(Recording::default());
        let aggregates = writer(&sink);
        (sink, aggregates)
    }

    fn writer(sink: &Arc<Recording>) -> AggregateWriter {
        let config = Arc::new(SettingsCell::default());
        let retrying = RetryingWriter::new(
            sink.clone(),
            config,
            Metrics::new(),
            7,
            Duration::from_secs(1),
        );
        AggregateWriter::new(
            Arc::new(Placement::new(
                Arc::new(retrying),
                "kubernaut-system".to_owned(),
            )),
            Arc::new(DeadLetters::new(10, Metrics::new())),
            Metrics::new(),
            "kubernaut-system".to_owned(),
            INTERVAL,
        )
    }

    fn snapshot(alerts: u64, closed: bool) -> Aggregate {
        let first = signal("NodeDown").build();
        Aggregate {
            key: WindowKey::of(&first),
            storm_type: StormType::Pattern,
            opened_at: at(0),
            closed_at: closed.then(|| at(60)),
            first_signal: first,
            resources: Vec::new(),
            alert_count: alerts,
            sampled_out: 0,
            last_activity: at(1),
        }
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(8))
    }

    #[tokio::test]
    async fn growth_is_written_once_per_interval_with_the_newest_snapshot_and_the_close_at_once() {
        let (sink, aggregates) = fixture();
        assert_eq!(
            aggregates
                .create(snapshot(5, false), deadline(), at(0))
                .await,
            Some(Written::Created)
        );
        for alerts in 6..=9 {
            aggregates.update(snapshot(alerts, false));
        }
        aggregates.flush(at(4), false).await;
        assert_eq!(sink.calls(), [("create", 5, false)], "within the interval");
        aggregates.flush(at(5), false).await;
        assert_eq!(
            sink.calls()[1..],
            [("update", 9, false)],
            "the newest, once"
        );
        aggregates.update(snapshot(10, false));
        aggregates.update(snapshot(10, true));
        aggregates.flush(at(6), false).await;
        assert_eq!(
            sink.calls()[2..],
            [("update", 10, true)],
            "the close does not wait"
        );
        assert_eq!(aggregates.unwritten(), 0);
        aggregates.flush(at(100), true).await;
        assert_eq!(sink.calls().len(), 3, "nothing left to write");
    }

    #[tokio::test]
    async fn an_older_snapshot_never_follows_a_newer_one() {
        let (sink, aggregates) = fixture();
        aggregates.update(snapshot(8, false));
        aggregates.update(snapshot(7, false));
        aggregates.flush(at(0), false).await;
        aggregates.update(snapshot(6, false));
        aggregates.flush(at(60), true).await;
        assert_eq!(sink.calls(), [("update", 8, false)]);
        // A creation behind a newer growth creates the newest known.
        let (sink, aggregates) = fixture();
        aggregates.update(snapshot(12, false));
        aggregates
            .create(snapshot(5, false), deadline(), at(0))
            .await;
        assert_eq!(sink.calls(), [("create", 12, false)]);
    }

    #[tokio::test]
    async fn a_failed_write_keeps_its_snapshot_for_the_next_flush() {
        let (sink, aggregates) = fixture();
        *sink.failing.lock().unwrap() = true;
        assert_eq!(
            aggregates
                .create(snapshot(5, false), deadline(), at(0))
                .await,
            None
        );
        assert_eq!(aggregates.unwritten(), 1);
        *sink.failing.lock().unwrap() = false;
        aggregates.flush(at(1), false).await;
        assert_eq!(aggregates.unwritten(), 0);
        assert_eq!(sink.calls().last(), Some(&("update", 5, false)));
    }
}
