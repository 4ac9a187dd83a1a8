//! One server per history: an exclusive advisory lock held for the store's
//! lifetime.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::OpenError;

/// The lock on `<database>.lock`, released when dropped (or when the process
/// dies, however it dies: the OS drops advisory locks with the process, so a
/// `kill -9` never leaves a stale lock behind).
///
/// SQLite's own locking keeps two writers from corrupting the file, but it
/// would let two servers interleave ids and each keep its own idea of the
/// last id; this lock makes the second server refuse to start instead. It is
/// on a sibling file rather than on the database because SQLite takes and
/// releases POSIX locks on the database itself, which would silently drop a
/// lock of ours held on the same file. The lock file stays after use:
/// deleting it would race with a server opening it.
#[derive(Debug)]
pub(crate) struct HistoryLock {
    _file: File,
}

impl HistoryLock {
    /// Takes the lock without waiting: a second server should be told at
    /// once, not hang. Where the platform has no file locks (`Unsupported`)
    /// the store goes on unlocked, still protected from corruption by
    /// SQLite's own locking.
    pub(crate) fn acquire(database: &Path) -> Result<HistoryLock, OpenError> {
        let path = lock_path(database);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| OpenError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::Locked {
                    path: database.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(source)) => return Err(OpenError::Io { path, source }),
        }
        Ok(HistoryLock { _file: file })
    }
}

/// `history.db` → `history.db.lock`, beside it.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "history".into());
    name.push(".lock");
    database.with_file_name(name)
}
