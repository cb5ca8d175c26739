//! Opening the state directory's database: created if missing, refused clearly when it is in use
//! or unreadable.

use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, StorageError};

use crate::codec;

/// The database's file name in the state directory.
pub const DATABASE_FILE: &str = "gateway.redb";

/// Why the state directory's database could not be opened. Every message names the file and what
/// to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created.
    #[error(
        "cannot create the state directory {}: {source} (create it, or choose another --state-dir)",
        dir.display()
    )]
    CreateDir {
        /// The state directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another store in this process) has the file open: two gateways must
    /// not share one state directory.
    #[error(
        "the state database {} is in use by another process (another gateway on the same \
         --state-dir?): stop that process, or give this one its own --state-dir",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not a database this version can read: corrupt, truncated, of another format,
    /// or not a redb file at all.
    #[error(
        "the state database {} cannot be read ({source}): it is corrupt or not a gateway state \
         database; move it aside (the gateway then starts with empty state: alerts buffered in it \
         are lost) or restore it from a backup",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What redb found.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing the file failed (permissions, a full disk, an IO error).
    #[error(
        "cannot open the state database {}: {source} (check the directory's permissions and free \
         space)",
        path.display()
    )]
    Io {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// An opened database: its file, the database, the first sequence number its order tables do not
/// hold.
pub(crate) type Opened = (PathBuf, Database, u64);

/// Creates `dir` if needed, opens or creates its database and every table.
pub(crate) fn database(dir: &Path) -> Result<Opened, OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
        dir: dir.to_owned(),
        source,
    })?;
    let path = dir.join(DATABASE_FILE);
    let database = Database::create(&path).map_err(|e| opening(&path, e))?;
    let next_sequence = codec::prepare(&database).map_err(|e| match e {
        redb::Error::Io(source) => OpenError::Io {
            path: path.clone(),
            source,
        },
        other => OpenError::Corrupt {
            path: path.clone(),
            source: Box::new(other),
        },
    })?;
    Ok((path, database, next_sequence))
}

fn opening(path: &Path, error: DatabaseError) -> OpenError {
    let path = path.to_owned();
    match error {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            OpenError::Locked { path }
        }
        DatabaseError::Storage(StorageError::Io(source))
            if source.kind() != std::io::ErrorKind::UnexpectedEof
                && source.kind() != std::io::ErrorKind::InvalidData =>
        {
            OpenError::Io { path, source }
        }
        other => OpenError::Corrupt {
            path,
            source: Box::new(other),
        },
    }
}
