//! Group commit: one thread per directory publishes documents in batches. Each document is
//! written, synced and linked (or renamed) into place; then the directory is synced once for the
//! whole batch, and only then is any of them reported written. A burst of N writes costs one
//! hand-off between threads and one directory sync instead of N of each, and no file system call
//! ever runs on the async runtime.
//!
//! Batches form on the async side: the first caller to find the queue empty is its leader; it
//! yields once to the runtime, so that the other requests ready to run reach their write too,
//! then hands everything queued to the thread at once. Waking the thread per document instead
//! would, on one core, let it preempt the runtime at every document, a batch of one each time.

use std::path::PathBuf;
use std::sync::{Mutex, mpsc};

use gateway_ports::{WriteError, WriteFailure, Written};
use tokio::sync::oneshot;

use crate::files;

/// The most documents published under one directory sync.
const MAX_BATCH: usize = 256;

/// One document to publish.
struct Job {
    temp: PathBuf,
    target: PathBuf,
    text: String,
    replace: bool,
    done: oneshot::Sender<Result<Written, WriteError>>,
}

/// The handle of a directory's publishing thread; the thread ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Committer {
    /// The batch being formed, handed over by its leader.
    queued: Mutex<Vec<Job>>,
    batches: mpsc::Sender<Vec<Job>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the thread that publishes into `dir`.
    pub(crate) fn start(dir: PathBuf) -> std::io::Result<Self> {
        let (batches, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("rr-directory".into())
            .spawn(move || run(&dir, &queue))?;
        Ok(Committer {
            queued: Mutex::new(Vec::new()),
            batches,
        })
    }

    /// Publishes `text` as `target` through `temp` (see [`files::publish`]); answers once the
    /// document and its name are durable.
    pub(crate) async fn publish(
        &self,
        temp: PathBuf,
        target: PathBuf,
        text: String,
        replace: bool,
    ) -> Result<Written, WriteError> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            temp,
            target,
            text,
            replace,
            done,
        };
        let leader = {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            queued.push(job);
            queued.len() == 1
        };
        if leader {
            // Handed over when this goes out of scope, even if this future is dropped here.
            let _handover = Handover(self);
            tokio::task::yield_now().await;
        }
        // Dropped unanswered only if the thread is gone or a batch panicked: nothing is known
        // to be durable.
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Hands the batch formed so far to the thread.
    fn hand_over(&self) {
        let batch = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        // If the thread is gone, the batch is dropped, and so each caller's answer: "stopped".
        let _ = self.batches.send(batch);
    }
}

/// Hands the batch over when dropped.
struct Handover<'a>(&'a Committer);

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        self.0.hand_over();
    }
}

fn stopped() -> WriteError {
    WriteError::new(
        WriteFailure::Unavailable { retry_after: None },
        "the directory writer's thread stopped before answering",
    )
}

fn run(dir: &std::path::Path, queue: &mpsc::Receiver<Vec<Job>>) {
    while let Ok(mut batch) = queue.recv() {
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        // A panic drops this batch's answers (each caller gets "stopped"), never the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(dir, batch)));
    }
}

/// Publishes every job, syncs the directory once, and answers each.
fn commit(dir: &std::path::Path, batch: Vec<Job>) {
    let mut results: Vec<Result<Written, WriteError>> = batch
        .iter()
        .map(|job| files::publish(&job.temp, &job.target, job.text.as_bytes(), job.replace))
        .collect();
    let published =
        |r: &Result<Written, WriteError>| matches!(r, Ok(Written::Created | Written::Updated));
    if results.iter().any(published)
        && let Err(e) = files::sync_dir(dir)
    {
        // Published but not known durable: reported as a failure, so the caller retries and
        // finds the resource there (`AlreadyExisted`, or an update as far along).
        for result in results.iter_mut().filter(|r| published(r)) {
            *result = Err(WriteError::new(e.failure, &e.message));
        }
    }
    for (job, result) in batch.into_iter().zip(results) {
        let _ = job.done.send(result);
    }
}
