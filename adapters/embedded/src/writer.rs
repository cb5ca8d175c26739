//! The group commit: one thread owns write transactions. It takes every queued operation (up to
//! `max_batch`) into one transaction, applies them in order (each sees the ones before it),
//! commits once with `Durability::Immediate`, then answers each caller. If an operation fails
//! (or panics), the whole batch is aborted and every caller of it gets an error: nothing is
//! answered `Ok` that is not durable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use gateway_ports::{Clock, StoreError};
use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use crate::{EmbeddedOptions, Stats};

/// A failure inside a transaction: redb's, or a row that does not decode.
#[derive(Debug)]
pub(crate) enum Failure {
    Database(redb::Error),
    Corrupt(String),
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Self {
                Failure::Database(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Database(redb::Error::Io(e)) => StoreError::Unavailable {
                reason: format!("the embedded state store cannot reach its file: {e}"),
                source: Some(Box::new(e)),
            },
            Failure::Database(e) => StoreError::Backend {
                reason: format!("the embedded state store failed: {e}"),
                source: Some(Box::new(e)),
            },
            Failure::Corrupt(reason) => StoreError::Backend {
                reason: format!("the embedded state store holds a damaged row: {reason}"),
                source: None,
            },
        }
    }
}

/// The answer once the writer thread is gone.
pub(crate) fn stopped() -> StoreError {
    StoreError::Unavailable {
        reason: "the embedded state store's writer has stopped".to_owned(),
        source: None,
    }
}

/// Counts down writes to a table between sweeps of it: a sweep is due after as many writes as
/// the table held after the previous one (at least [`Countdown::MIN`]), so sweeping costs
/// amortised constant work per write and the table at most doubles (plus the minimum) between
/// sweeps.
#[derive(Debug, Default)]
pub(crate) struct Countdown(u64);

impl Countdown {
    /// A sweep comes after at least this many writes, however few rows are held.
    const MIN: u64 = 64;

    /// Counts one write; whether a sweep is due.
    pub(crate) fn due(&mut self) -> bool {
        self.0 = self.0.saturating_sub(1);
        self.0 == 0
    }

    /// Starts counting again after a sweep that left `held` rows.
    pub(crate) fn swept(&mut self, held: u64) {
        self.0 = held.max(Self::MIN);
    }
}

/// What the writer keeps between batches.
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    /// The next sequence number of the bounded tables' orders.
    pub next_sequence: u64,
    pub dedup_sweep: Countdown,
    pub storm_sweep: Countdown,
    pub window_sweep: Countdown,
}

impl WriterState {
    /// A fresh sequence number.
    pub(crate) fn sequence(&mut self) -> u64 {
        let n = self.next_sequence;
        self.next_sequence += 1;
        n
    }
}

/// What an operation works with: the batch's transaction and the writer's state.
pub(crate) struct Batch<'t> {
    pub transaction: &'t WriteTransaction,
    pub state: &'t mut WriterState,
    pub options: &'t EmbeddedOptions,
    pub clock: &'t dyn Clock,
    pub stats: &'t Stats,
}

/// Answers an operation's caller with the batch's commit result.
type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One operation: applied to the batch (or told that no transaction could be begun, `None`);
/// whether it succeeded, and how to answer its caller.
type Job = Box<dyn FnOnce(Option<&mut Batch<'_>>) -> (bool, Deliver) + Send>;

/// The handle on the writer thread. Dropping it lets the thread finish the queued operations and
/// waits for it, so the database is closed when the store is dropped.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `database`, whose order tables hand out sequence numbers
    /// from `next_sequence`.
    pub(crate) fn start(
        database: Arc<Database>,
        next_sequence: u64,
        clock: Arc<dyn Clock>,
        options: EmbeddedOptions,
        stats: Arc<Stats>,
    ) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel(options.max_queued.get());
        let state = WriterState {
            next_sequence,
            ..WriterState::default()
        };
        let thread = std::thread::Builder::new()
            .name("gateway-state-writer".to_owned())
            .spawn(move || run(&database, jobs, &*clock, &options, &stats, state))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Runs `op` in the next batch; its result once the batch is committed.
    pub(crate) async fn submit<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, Failure> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |batch: Option<&mut Batch<'_>>| {
            let outcome = batch.map(|batch| op(batch).map_err(StoreError::from));
            let ok = matches!(outcome, Some(Ok(_)));
            let deliver: Deliver = Box::new(move |committed| {
                let result = match outcome {
                    // The operation's own failure says more than the aborted batch.
                    Some(Err(own)) => Err(own),
                    Some(Ok(value)) => committed.map(|()| value),
                    None => Err(committed.err().unwrap_or_else(stopped)),
                };
                let _ = answer.send(result);
            });
            (ok, deliver)
        });
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue.send(job).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Queues `op` for the next batch and returns once it is queued, without waiting for the
    /// commit: every operation queued later is applied after it. Its outcome is logged if it
    /// fails (the batch is aborted, as for any operation of it).
    pub(crate) async fn submit_queued<F>(&self, what: &'static str, op: F) -> Result<(), StoreError>
    where
        F: FnOnce(&mut Batch<'_>) -> Result<(), Failure> + Send + 'static,
    {
        let job: Job = Box::new(move |batch: Option<&mut Batch<'_>>| {
            let outcome = batch.map(|batch| op(batch).map_err(StoreError::from));
            let ok = matches!(outcome, Some(Ok(())));
            let deliver: Deliver = Box::new(move |committed| {
                let failed = match outcome {
                    Some(Err(own)) => Some(own),
                    Some(Ok(())) => committed.err(),
                    None => Some(committed.err().unwrap_or_else(stopped)),
                };
                if let Some(error) = failed {
                    tracing::warn!(%error, "{what} was not stored");
                }
            });
            (ok, deliver)
        });
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue.send(job).await.map_err(|_| stopped())
    }

    /// Whether the writer thread still takes operations.
    pub(crate) fn is_running(&self) -> bool {
        self.queue.as_ref().is_some_and(|queue| !queue.is_closed())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    database: &Database,
    mut jobs: mpsc::Receiver<Job>,
    clock: &dyn Clock,
    options: &EmbeddedOptions,
    stats: &Stats,
    mut state: WriterState,
) {
    while let Some(first) = jobs.blocking_recv() {
        // Woken by the first operation of a burst: on a core shared with the runtime, give it
        // the rest of its turn, so that the operations of the other ready requests join this
        // batch instead of each waking this thread (a batch of one) again.
        std::thread::yield_now();
        let mut batch = vec![first];
        while batch.len() < options.max_batch.get() {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(database, batch, clock, options, stats, &mut state);
    }
}

/// Applies `jobs` in one transaction, commits it, answers every caller.
fn commit(
    database: &Database,
    jobs: Vec<Job>,
    clock: &dyn Clock,
    options: &EmbeddedOptions,
    stats: &Stats,
    state: &mut WriterState,
) {
    let transaction = database
        .begin_write()
        .map_err(Failure::from)
        .and_then(|mut t| {
            t.set_durability(Durability::Immediate)
                .map_err(|e| Failure::Database(redb::Error::from(e)))?;
            Ok(t)
        });
    let transaction = match transaction {
        Ok(transaction) => transaction,
        Err(failure) => {
            let reason = StoreError::from(failure).to_string();
            for job in jobs {
                let (_, deliver) = job(None);
                deliver(Err(unavailable(&reason)));
            }
            return;
        }
    };
    let mut delivers = Vec::with_capacity(jobs.len());
    let mut failed = None;
    {
        let mut batch = Batch {
            transaction: &transaction,
            state,
            options,
            clock,
            stats,
        };
        for job in jobs {
            match catch_unwind(AssertUnwindSafe(|| job(Some(&mut batch)))) {
                Ok((ok, deliver)) => {
                    if !ok {
                        failed.get_or_insert("another operation of its batch failed");
                    }
                    delivers.push(deliver);
                }
                // The caller's answer was dropped with the job: it is told the writer stopped.
                Err(_) => {
                    failed = Some("another operation of its batch panicked");
                }
            }
        }
    }
    let committed = match failed {
        Some(reason) => {
            let _ = transaction.abort();
            Err(reason.to_owned())
        }
        None => transaction
            .commit()
            .map(|()| {
                stats.commits.fetch_add(1, Ordering::Relaxed);
            })
            .map_err(|e| StoreError::from(Failure::from(e)).to_string()),
    };
    for deliver in delivers {
        deliver(committed.clone().map_err(|reason| unavailable(&reason)));
    }
}

fn unavailable(reason: &str) -> StoreError {
    StoreError::Unavailable {
        reason: format!("not recorded: {reason}"),
        source: None,
    }
}
