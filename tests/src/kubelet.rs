//! The tests' model of Kubernetes: a mounted ConfigMap volume, updated the way the kubelet does it.
//!
//! [`KubeletDir`] reproduces the kubelet's `AtomicWriter`
//! (`k8s.io/kubernetes/pkg/volume/util/atomic_writer.go`) step by step, so that a config watcher
//! tested against it meets the same sequence of filesystem events it meets in a pod. The layout
//! of a mounted volume:
//!
//! ```text
//! <mount>/storm.yaml -> ..data/storm.yaml                  one stable symlink per key
//! <mount>/..data     -> ..2026_11_25_17_00_00.123456789    the one atomic switch
//! <mount>/..2026_11_25_17_00_00.123456789/storm.yaml       the real files (mode 0644)
//! ```
//!
//! One update (`AtomicWriter.Write`), in the kubelet's order:
//!
//! 1. the payload is validated (keys are relative names that do not start with `..`);
//! 2. the current timestamped directory is found by reading the `..data` symlink;
//! 3. the old directory is walked: keys it holds that the payload no longer has are to be removed;
//! 4. the old files are compared with the payload; when nothing differs and nothing is to be
//!    removed, **nothing is written** (only missing visible symlinks are re-created);
//! 5. a new timestamped directory `..YYYY_MM_DD_HH_MM_SS.<random>` is created (mode 0755);
//! 6. every file of the payload is written into it (mode 0644);
//! 7. a relative symlink `..data_tmp -> ..YYYY_…` is created;
//! 8. `rename(..data_tmp, ..data)`: the one atomic step, after which readers see the new files;
//! 9. each visible symlink `KEY -> ..data/KEY` is created if it does not exist yet;
//! 10. the visible symlinks of removed keys are deleted;
//! 11. the old timestamped directory is deleted.
//!
//! Nothing is ever written at a visible file's own path: its mtime never changes, and a watch set
//! on it (inotify follows the symlink) sits on the file in the *old* directory, sees one delete in
//! step 11, and then nothing ever again.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gateway_adapter_memory::SystemClock;
use gateway_ports::Clock;

/// The symlink to the timestamped directory in force (`dataDirName`).
pub const DATA_DIR: &str = "..data";
/// The symlink that is renamed over [`DATA_DIR`] (`newDataDirName`).
pub const DATA_DIR_TMP: &str = "..data_tmp";

/// The mode the kubelet gives ConfigMap files by default (`defaultMode: 0644`).
const FILE_MODE: u32 = 0o644;
/// The mode of a timestamped directory (`newTimestampDir`).
const DIR_MODE: u32 = 0o755;

/// A ConfigMap volume mounted at a directory, updated exactly as the kubelet's `AtomicWriter` does.
///
/// Every method is one kubelet action; see the [module documentation](self) for the steps.
/// Not synchronised: like the `AtomicWriter`, one writer at a time.
#[derive(Debug)]
pub struct KubeletDir {
    path: PathBuf,
    /// Makes every timestamped directory name unique (the kubelet uses `os.MkdirTemp`'s random
    /// suffix).
    counter: AtomicU64,
}

impl KubeletDir {
    /// Mounts the volume: creates the directory `path` (and its parents) and projects `files`
    /// (`(key, content)` pairs) into it, as the kubelet does when the pod starts.
    pub fn create(path: impl Into<PathBuf>, files: &[(&str, &str)]) -> io::Result<Self> {
        let dir = KubeletDir {
            path: path.into(),
            counter: AtomicU64::new(0),
        };
        fs::create_dir_all(&dir.path)?;
        dir.write(files, false)?;
        Ok(dir)
    }

    /// The mount directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the visible file `key` (`<mount>/storm.yaml`, a symlink).
    pub fn file(&self, key: &str) -> PathBuf {
        self.path.join(key)
    }

    /// The ConfigMap now holds exactly `files`: one kubelet sync.
    ///
    /// Returns whether anything was written: when every file already has this content and no key
    /// was removed, the kubelet writes nothing (`false`), so a watcher sees no event at all.
    pub fn swap(&self, files: &[(&str, &str)]) -> io::Result<bool> {
        self.write(files, false)
    }

    /// A full update (new timestamped directory, `..data` swap, old directory deleted) whose files
    /// have exactly the content already in force: every event of a real update, and no change.
    ///
    /// The kubelet itself skips such an update (see [`KubeletDir::swap`]); this models the
    /// equivalent cases a watcher must also take calmly: a projected volume or Secret re-projected
    /// with equal bytes, another writer using the same layout, a resync that touches the volume.
    pub fn swap_with_identical_content(&self) -> io::Result<()> {
        let current = self.current_files()?;
        let files: Vec<(&str, &str)> = current
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.write(&files, true).map(drop)
    }

    /// The files in force, read through `..data`, by key.
    pub fn current_files(&self) -> io::Result<BTreeMap<String, String>> {
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(self.path.join(DATA_DIR))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(name, fs::read_to_string(entry.path())?);
        }
        Ok(files)
    }

    /// The name of the timestamped directory `..data` points at, if the volume has been written.
    pub fn data_target(&self) -> io::Result<Option<PathBuf>> {
        match fs::read_link(self.path.join(DATA_DIR)) {
            Ok(target) => Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the whole mount directory (what a watcher sees when the volume goes away, e.g. the
    /// directory is unmounted or removed by hand).
    pub fn remove_dir_all(&self) -> io::Result<()> {
        fs::remove_dir_all(&self.path)
    }

    /// Creates the mount directory again and projects `files` into it, as on a fresh mount.
    pub fn recreate(&self, files: &[(&str, &str)]) -> io::Result<()> {
        fs::create_dir_all(&self.path)?;
        self.write(files, false).map(drop)
    }

    /// `AtomicWriter.Write`. `force` writes a new timestamped directory even when nothing changed.
    fn write(&self, files: &[(&str, &str)], force: bool) -> io::Result<bool> {
        // (1) validate the payload
        for (key, _) in files {
            validate_key(key)?;
        }
        let payload: BTreeMap<&str, &str> = files.iter().copied().collect();

        // (2) the timestamped directory in force
        let mut old_ts_dir = self.data_target()?;

        let mut paths_to_remove = Vec::new();
        let mut should_write = true;
        if let Some(old) = &old_ts_dir {
            let old_path = self.path.join(old);
            // (3) keys present before and absent now
            paths_to_remove = match fs::read_dir(&old_path) {
                Ok(entries) => entries
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect::<io::Result<Vec<String>>>()?
                    .into_iter()
                    .filter(|name| !payload.contains_key(name.as_str()))
                    .collect(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
            // (4) is an update required?
            let mut differs = false;
            for (key, content) in &payload {
                match fs::read(old_path.join(key)) {
                    Ok(on_disk) if on_disk == content.as_bytes() => {}
                    Ok(_) => differs = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => differs = true,
                    Err(e) => return Err(e),
                }
            }
            if !differs && paths_to_remove.is_empty() && !force {
                // Up to date: write nothing, keep the directory, but make sure the visible
                // symlinks exist (kubernetes#121472).
                should_write = false;
                old_ts_dir = None;
            }
        }

        if should_write {
            // (5) a new timestamped directory
            let (ts_dir, ts_name) = self.new_timestamp_dir()?;
            // (6) the payload into it
            for (key, content) in &payload {
                let file = ts_dir.join(key);
                fs::write(&file, content)?;
                fs::set_permissions(&file, fs::Permissions::from_mode(FILE_MODE))?;
            }
            // (7) ..data_tmp -> ..YYYY_…, relative
            let data_tmp = self.path.join(DATA_DIR_TMP);
            if let Err(e) = symlink(&ts_name, &data_tmp) {
                let _ = fs::remove_dir_all(&ts_dir);
                return Err(e);
            }
            // (8) the atomic step
            if let Err(e) = fs::rename(&data_tmp, self.path.join(DATA_DIR)) {
                let _ = fs::remove_file(&data_tmp);
                let _ = fs::remove_dir_all(&ts_dir);
                return Err(e);
            }
        }

        // (9) visible symlinks KEY -> ..data/KEY, created when missing
        for key in payload.keys() {
            let visible = self.path.join(key);
            match fs::read_link(&visible) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    symlink(Path::new(DATA_DIR).join(key), &visible)?;
                }
                _ => {}
            }
        }

        // (10) visible symlinks of removed keys
        let mut last_error = None;
        for key in &paths_to_remove {
            if let Err(e) = fs::remove_file(self.path.join(key)) {
                last_error = Some(e);
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }

        // (11) the old timestamped directory
        if let Some(old) = old_ts_dir {
            fs::remove_dir_all(self.path.join(old))?;
        }
        Ok(should_write)
    }

    /// `os.MkdirTemp(target, "..2006_01_02_15_04_05.")` followed by `chmod 0755`: returns the
    /// directory's path and its name (what `..data` will point at).
    fn new_timestamp_dir(&self) -> io::Result<(PathBuf, String)> {
        let now = SystemClock.now();
        // `2026-11-25T17:00:00.123Z` → `2026_11_25_17_00_00`
        let stamp: String = now
            .to_rfc3339()
            .chars()
            .take(19)
            .map(|c| if c.is_ascii_digit() { c } else { '_' })
            .collect();
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let suffix = (now.as_millis() % 1000) * 1_000_000 + n % 1_000_000;
            let name = format!("..{stamp}.{suffix:09}");
            let dir = self.path.join(&name);
            match fs::create_dir(&dir) {
                Ok(()) => {
                    fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE))?;
                    return Ok((dir, name));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// `validatePath` for a ConfigMap key: a non-empty relative name, not `..`, not starting with
/// `..` (those names are the writer's own). ConfigMap keys hold no `/`.
fn validate_key(key: &str) -> io::Result<()> {
    let invalid = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid ConfigMap key {key:?}: {why}"),
        ))
    };
    if key.is_empty() {
        return invalid("must not be empty");
    }
    if key.contains('/') {
        return invalid("must not contain '/'");
    }
    if key.starts_with("..") {
        return invalid("must not start with '..'");
    }
    if key.len() > 255 {
        return invalid("must be at most 255 characters");
    }
    Ok(())
}
