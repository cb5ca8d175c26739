//! The [`DedupStore`], [`StormCounter`], [`WindowStore`] and [`Outbox`] ports in one embedded,
//! crash-safe database: `<state dir>/gateway.redb`, a [redb](https://docs.rs/redb) file (pure
//! Rust, ACID, copy-on-write B-trees with checksummed commits).
//!
//! [`EmbeddedStore`] serves all four ports from one database. Every mutating call is durable
//! before it returns `Ok` (a commit with `Durability::Immediate`: fsync'd), and concurrent
//! callers share commits: one writer thread owns write transactions, takes every queued
//! operation (up to [`EmbeddedOptions::max_batch`]) into one transaction, commits once, then
//! answers each caller. Reads run in read transactions on the blocking pool.
//!
//! The semantics are the in-memory adapters', through the same pure arithmetic in the ports
//! ([`DedupWindow`](gateway_ports::DedupWindow), [`StormHistory`](gateway_ports::StormHistory),
//! [`WindowSlot`](gateway_ports::WindowSlot)): the dedup records are bounded by
//! [`EmbeddedOptions::dedup_capacity`] (the oldest window goes first; an evicted fingerprint reads
//! as `First`), alert names by [`EmbeddedOptions::max_alert_names`] (the least recently counted
//! goes), and expired dedup records, quiet alert names and window tombstones are swept, each
//! table once per as many writes to it as it held after its previous sweep (amortised constant
//! work per call), so the file does not grow with expired state. TTLs of windows run on the
//! injected [`Clock`]; dedup and counts on the `now` each call passes.
//!
//! Modules: `open` (the file, its lock, the errors of opening), `writer` (the group commit),
//! `codec` (the tables and their rows as bytes), one per port (`dedup`, `storm_counter`,
//! `windows`, `outbox`), and `bounded` (the capacity index the dedup and storm tables share).
//!
//! [`DedupStore`]: gateway_ports::DedupStore
//! [`StormCounter`]: gateway_ports::StormCounter
//! [`WindowStore`]: gateway_ports::WindowStore
//! [`Outbox`]: gateway_ports::Outbox

mod bounded;
mod codec;
mod dedup;
mod open;
mod outbox;
mod storm_counter;
mod windows;
mod writer;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gateway_ports::{Clock, StoreError};
use redb::{Database, ReadTransaction, ReadableDatabase};

pub use open::{DATABASE_FILE, OpenError};

use crate::writer::{Batch, Failure, Writer};

/// Limits of an [`EmbeddedStore`]; [`EmbeddedOptions::default`] gives the gateway's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// The most dedup records kept (default 100 000, as `--dedup-capacity`): past it the window
    /// opened first goes (an evicted fingerprint reads as `First` again).
    pub dedup_capacity: NonZeroUsize,
    /// The most alert names whose storm counts are kept (default 10 000): past it the name
    /// counted least recently goes, and restarts from zero.
    pub max_alert_names: NonZeroUsize,
    /// The most operations one commit takes (default 512): a bigger batch shares one fsync among
    /// more callers, and makes each of them wait for more work.
    pub max_batch: NonZeroUsize,
    /// The most operations waiting for the writer (default 4 096); callers past it wait for room.
    pub max_queued: NonZeroUsize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        let n = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        EmbeddedOptions {
            dedup_capacity: n(100_000),
            max_alert_names: n(10_000),
            max_batch: n(512),
            max_queued: n(4_096),
        }
    }
}

/// The gateway's state in `<dir>/gateway.redb`: the dedup, storm-counter, window and outbox ports
/// on one database, durable at every `Ok`.
///
/// Dropping the store stops its writer (after the operations already queued) and closes the
/// file, so the directory can be opened again at once.
pub struct EmbeddedStore {
    path: PathBuf,
    database: Arc<Database>,
    clock: Arc<dyn Clock>,
    writer: Writer,
    stats: Arc<Stats>,
}

/// What the store counts for its owner (metrics, tests).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Live dedup windows evicted to respect `dedup_capacity`.
    pub dedup_evicted: AtomicU64,
    /// Live alert names evicted to respect `max_alert_names`.
    pub names_evicted: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Creates `dir` if needed and opens (or creates) `<dir>/gateway.redb`, then starts the
    /// writer thread. Fails with an [`OpenError`] naming the file and what to do when the file is
    /// in use by another process (or another store in this one), is not a readable database, or
    /// cannot be read or created.
    pub fn open(
        dir: &Path,
        clock: Arc<dyn Clock>,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedStore, OpenError> {
        let (path, database, next_sequence) = open::database(dir)?;
        let database = Arc::new(database);
        let stats = Arc::new(Stats::default());
        let writer = Writer::start(
            database.clone(),
            next_sequence,
            clock.clone(),
            options,
            stats.clone(),
        )
        .map_err(|source| OpenError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(EmbeddedStore {
            path,
            database,
            clock,
            writer,
            stats,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Live dedup windows evicted to respect [`EmbeddedOptions::dedup_capacity`], since open.
    pub fn dedup_evicted(&self) -> u64 {
        self.stats.dedup_evicted.load(Ordering::Relaxed)
    }

    /// Live alert names evicted to respect [`EmbeddedOptions::max_alert_names`], since open.
    pub fn names_evicted(&self) -> u64 {
        self.stats.names_evicted.load(Ordering::Relaxed)
    }

    /// Write transactions committed since open: fewer than the mutating calls when concurrent
    /// callers shared commits.
    pub fn commits(&self) -> u64 {
        self.stats.commits.load(Ordering::Relaxed)
    }

    /// Runs `op` in the next batch's write transaction; its result once the batch is durable.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, Failure> + Send + 'static,
    {
        self.writer.submit(op).await
    }

    /// Runs `op` in a read transaction, on the calling task. A read takes no lock the writer
    /// holds (redb's readers see the last commit) and reads a few pages, almost always from
    /// redb's own cache: a handful of microseconds, cheaper in place than the hand-off to the
    /// blocking pool and back (which cost a new alert two thread switches).
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, Failure> + Send + 'static,
    {
        let transaction = self
            .database
            .begin_read()
            .map_err(|e| StoreError::from(Failure::from(e)))?;
        op(&transaction).map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests;
