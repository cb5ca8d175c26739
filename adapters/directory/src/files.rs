//! The file system side of the directory sink: resource names as file names, temporary files,
//! publishing one document atomically, and syncing the directory.

use std::io;
use std::path::Path;

use gateway_ports::{Rejection, WriteError, WriteFailure, Written};

/// The gateway's word for a file-system error: refusals that another attempt would meet again
/// are rejections; anything else (a full disk, an interrupted call) may pass.
pub(crate) fn io_failure(action: &str, path: &Path, e: io::Error) -> WriteError {
    let failure = match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            WriteFailure::Rejected {
                reason: Rejection::Forbidden,
            }
        }
        io::ErrorKind::InvalidInput => WriteFailure::Rejected {
            reason: Rejection::Invalid,
        },
        _ => WriteFailure::Unavailable { retry_after: None },
    };
    WriteError {
        failure,
        message: format!("{action} {}: {e}", path.display()),
        source: Some(Box::new(e)),
    }
}

/// A resource name that stays a plain file name inside the directory.
pub(crate) fn is_valid_name(name: &str) -> bool {
    // Names become file names: refuse anything that could leave the directory.
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with('.')
}

/// The end of a temporary file's name (`.NAME.PID.N.tmp`).
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Whether `file_name` is a writer's temporary file: `.NAME.PID.N.tmp`, NAME a valid resource
/// name, PID and N decimal numbers. Nothing else in the directory matches.
pub(crate) fn is_temp_name(file_name: &str) -> bool {
    let Some(rest) = file_name
        .strip_prefix('.')
        .and_then(|r| r.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = rest.rsplitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(pid), Some(name)) => number(n) && number(pid) && is_valid_name(name),
        _ => false,
    }
}

/// Removes the writers' temporary files from `dir` (a crash between creating one and
/// publishing it leaves it behind); returns how many.
pub(crate) fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_temp = entry.file_name().to_str().is_some_and(is_temp_name);
        if !is_temp || !entry.file_type()?.is_file() {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Syncs `dir` itself: a name linked or renamed into it survives a power loss only then.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_failure("sync directory", dir, e))
}

/// Writes `bytes` to `temp`, syncs it, and publishes it as `target` (renamed over it when
/// `replace`, linked when absent otherwise). The name is durable only once the directory is
/// synced after it ([`sync_dir`]), which the caller does, once for a whole batch.
pub(crate) fn publish(
    temp: &Path,
    target: &Path,
    bytes: &[u8],
    replace: bool,
) -> Result<Written, WriteError> {
    use std::io::Write;
    let result = (|| {
        let mut file = std::fs::File::create(temp).map_err(|e| io_failure("create", temp, e))?;
        file.write_all(bytes)
            .map_err(|e| io_failure("write", temp, e))?;
        file.sync_data().map_err(|e| io_failure("sync", temp, e))?;
        if replace {
            let existed = target.exists();
            std::fs::rename(temp, target).map_err(|e| io_failure("rename to", target, e))?;
            Ok(if existed {
                Written::Updated
            } else {
                Written::Created
            })
        } else {
            // A hard link fails when the target exists: create-if-absent in one atomic step.
            match std::fs::hard_link(temp, target) {
                Ok(()) => Ok(Written::Created),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Written::AlreadyExisted),
                Err(e) => Err(io_failure("link", target, e)),
            }
        }
    })();
    let _ = std::fs::remove_file(temp); // already gone after a rename
    result
}
