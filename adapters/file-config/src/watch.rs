//! Watching the config directory: notify on the directory (never on the files, whose inodes the
//! kubelet replaces), a debounce, a periodic re-read as a safety net, and a watcher that is
//! recreated when it fails or when the directory is removed and comes back.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gateway_ports::ConfigControl;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::DirSource;

/// What a watcher keeps fresh: a directory, and how to read it again. The config directory
/// ([`DirSource`]), the token files ([`TokenFile`](crate::TokenFile)) and the app's TLS files
/// are watched alike, by [`watch`].
#[async_trait::async_trait]
pub trait Watched: Send + Sync + 'static {
    /// The directory to watch (never the files in it, whose inodes the kubelet replaces).
    fn watched_dir(&self) -> &Path;
    /// Reads the directory's content again, and applies it if it changed and is valid.
    async fn reread(self: Arc<Self>);
}

#[async_trait::async_trait]
impl Watched for DirSource {
    fn watched_dir(&self) -> &Path {
        self.dir()
    }

    async fn reread(self: Arc<Self>) {
        self.reload_now().await;
    }
}

/// How the directory is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Quiet time after the last event before a reload: a burst of writes is one reload.
    pub debounce: Duration,
    /// Re-read this often even without events (inotify can overflow; watchers can die).
    pub resync: Duration,
    /// While the directory is missing, look for it this often.
    pub dir_poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(200),
            resync: Duration::from_secs(30),
            dir_poll: Duration::from_millis(500),
        }
    }
}

/// Stops the watcher when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DirSource {
    /// Spawns the watcher on the current tokio runtime; it runs until the handle is dropped.
    /// Each reload it makes is a [`reload_now`](ConfigControl::reload_now): serialised with
    /// `POST /-/reload`'s.
    pub fn watch(self: &Arc<Self>, options: WatchOptions) -> WatchHandle {
        watch(Arc::clone(self), options)
    }
}

/// Spawns the watcher of `watched` on the current tokio runtime: notify on its directory, a
/// debounce, a re-read every `resync`, the watch recreated when the directory is removed and
/// comes back. It runs until the handle is dropped.
pub fn watch<W: Watched>(watched: Arc<W>, options: WatchOptions) -> WatchHandle {
    WatchHandle {
        task: tokio::spawn(run(watched, options)),
    }
}

/// The identity of a directory: a directory removed and created again is a new inode, and a
/// watch on the old one hears nothing more.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

enum Signal {
    /// Something changed in the directory (or the queue overflowed): re-read.
    Changed,
    /// The directory itself was removed or moved away: its watch is dead, even if a directory of
    /// the same name (possibly reusing the inode number) appears at once.
    DirGone,
    /// The watcher failed: recreate it.
    Failed(notify::Error),
}

fn classify(dir: &Path, result: notify::Result<notify::Event>) -> Option<Signal> {
    match result {
        Ok(event)
            if matches!(
                event.kind,
                EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
            ) && event.paths.iter().any(|p| p == dir) =>
        {
            Some(Signal::DirGone)
        }
        // Our own reads open and close the files: those are not changes.
        Ok(event)
            if matches!(
                event.kind,
                EventKind::Access(notify::event::AccessKind::Close(
                    notify::event::AccessMode::Write
                ))
            ) =>
        {
            Some(Signal::Changed)
        }
        Ok(event) if matches!(event.kind, EventKind::Access(_)) && !event.need_rescan() => None,
        Ok(_) => Some(Signal::Changed),
        Err(e) => Some(Signal::Failed(e)),
    }
}

fn start(dir: &Path, tx: mpsc::UnboundedSender<Signal>) -> notify::Result<RecommendedWatcher> {
    let watched = dir.to_owned();
    let mut watcher = notify::recommended_watcher(move |result| {
        if let Some(signal) = classify(&watched, result) {
            let _ = tx.send(signal);
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Bounds the debounce: a writer that never pauses still gets its changes applied at least
/// every this many debounce periods.
const MAX_DEBOUNCE_PERIODS: u32 = 10;

async fn run<W: Watched>(source: Arc<W>, options: WatchOptions) {
    let dir = source.watched_dir().to_owned();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher: Option<(RecommendedWatcher, (u64, u64))> = None;
    loop {
        // A fresh watch re-reads (whatever happened while nobody watched), through the debounce
        // so a write in progress is not judged half-done.
        let mut changed = false;
        if watcher.is_none()
            && let Some(id) = identity(&dir)
        {
            match start(&dir, tx.clone()) {
                Ok(w) => {
                    tracing::debug!(dir = %dir.display(), "watching the config directory");
                    watcher = Some((w, id));
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory; retrying")
                }
            }
        }
        if !changed {
            let wait = if watcher.is_some() {
                options.resync
            } else {
                options.dir_poll
            };
            changed = tokio::select! {
                signal = rx.recv() => match signal {
                    Some(signal) => {
                        apply(signal, &mut watcher);
                        true
                    }
                    None => return,
                },
                () = tokio::time::sleep(wait) => watcher.is_some(),
            };
        }
        if !changed {
            continue;
        }
        // Debounce: wait until the directory has been quiet for `debounce` (bounded).
        let give_up = tokio::time::Instant::now() + options.debounce * MAX_DEBOUNCE_PERIODS;
        loop {
            let now = tokio::time::Instant::now();
            if now >= give_up {
                break;
            }
            let quiet_until = (now + options.debounce).min(give_up);
            match tokio::time::timeout_at(quiet_until, rx.recv()).await {
                Ok(Some(signal)) => apply(signal, &mut watcher),
                Ok(None) | Err(_) => break,
            }
        }
        Arc::clone(&source).reread().await;
        // Removed, or removed and created again: the watch is on a dead inode.
        if watcher
            .as_ref()
            .is_some_and(|(_, id)| identity(&dir) != Some(*id))
        {
            tracing::warn!(dir = %dir.display(), "the config directory was removed; watching for it to return");
            watcher = None;
        }
    }
}

/// Drops the watcher when the signal says it is dead.
fn apply(signal: Signal, watcher: &mut Option<(RecommendedWatcher, (u64, u64))>) {
    match signal {
        Signal::Changed => {}
        Signal::DirGone => *watcher = None,
        Signal::Failed(e) => {
            tracing::warn!(error = %e, "config directory watcher failed; recreating it");
            *watcher = None;
        }
    }
}
