//! Why the store could not open or answer. Each `Display` is a sentence for
//! the person running the server: what happened, to which file, and what to
//! do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why [`Store::open`](crate::Store::open) refused. In every case the
/// database file was left exactly as it was found.
#[derive(Debug)]
pub enum OpenError {
    /// A directory or file could not be created or opened.
    Io { path: PathBuf, source: io::Error },
    /// Another server holds the lock on this history.
    Locked { path: PathBuf },
    /// The database was written by a newer LanTalk, whose schema this one
    /// does not know; writing to it could lose that version's data.
    Newer {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    /// The file is damaged, is not an SQLite database, or is some other
    /// program's database.
    Damaged { path: PathBuf, detail: String },
    /// SQLite failed for another reason (disk full, permissions...).
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io { path, source } => write!(
                f,
                "Cannot open the message history at {}: {source}.",
                path.display()
            ),
            OpenError::Locked { path } => write!(
                f,
                "The message history at {} is in use by another LanTalk server. Stop that \
                 server first, or give this one a different data directory.",
                path.display()
            ),
            OpenError::Newer { path, found, known } => write!(
                f,
                "The message history at {} was written by a newer version of LanTalk (schema \
                 version {found}; this version knows up to {known}). It was left untouched: \
                 upgrade LanTalk, or use a different data directory.",
                path.display()
            ),
            OpenError::Damaged { path, detail } => write!(
                f,
                "The file {} is not a LanTalk message history, or it is damaged ({detail}). It \
                 was left untouched: move it aside (or restore it from a backup) and start \
                 again to begin a new history there.",
                path.display()
            ),
            OpenError::Sqlite { path, source } => write!(
                f,
                "Cannot use the message history at {}: {source}.",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            OpenError::Sqlite { source, .. } => Some(source),
            OpenError::Locked { .. } | OpenError::Newer { .. } | OpenError::Damaged { .. } => None,
        }
    }
}

/// Why a query or a purge got no answer.
#[derive(Debug)]
pub enum QueryError {
    /// The store's threads have stopped (the store is being dropped, or a
    /// thread panicked), so nothing can be asked any more.
    Closed,
    /// SQLite failed: usually a damaged file, a full disk, or a record this
    /// version cannot read.
    Sqlite(rusqlite::Error),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Closed => write!(f, "The message history is closed."),
            QueryError::Sqlite(e) => write!(f, "The message history could not be read: {e}."),
        }
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueryError::Closed => None,
            QueryError::Sqlite(e) => Some(e),
        }
    }
}

impl From<rusqlite::Error> for QueryError {
    fn from(e: rusqlite::Error) -> QueryError {
        QueryError::Sqlite(e)
    }
}
