//! The database file: checking it before touching it, the connection
//! settings that make it crash safe, and the schema's migrations.
//!
//! # Durability
//!
//! The writer connection runs in WAL mode with `synchronous=NORMAL`. A commit
//! then appends the transaction's pages to the `-wal` file with `write()` and
//! returns without `fsync`; the WAL is synced only when it is checkpointed
//! into the database. What that means for us:
//!
//! * **Process killed (`kill -9`, a panic, the OOM killer):** every `write()`
//!   that returned is in the operating system's page cache, which outlives
//!   the process, so every committed transaction survives. The next open
//!   replays the WAL, ignoring a torn last frame by its checksum. Nothing
//!   committed is lost, and the file is never corrupt. What is lost is what
//!   the writer had not committed yet: at most one batch, i.e. at most the
//!   last `Options::commit_every` (one second) of messages.
//! * **Power loss or OS crash:** the most recent commits since the last
//!   checkpoint may roll back, but SQLite's WAL checksums still guarantee a
//!   consistent, uncorrupted database (`synchronous=FULL` would only narrow
//!   this window, at an `fsync` per commit, which chat history does not
//!   need).
//!
//! # Refusing instead of repairing
//!
//! Before the database is opened for writing, a read-only connection looks
//! at it: not an SQLite file, damaged, another program's database, or a
//! schema newer than ours all refuse with [`OpenError`] and leave the file's
//! bytes as they were. Read-only matters: a writable connection closing last
//! checkpoints the WAL into the database, which would change a newer
//! version's file.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::OpenError;

/// The schema, one entry per version: `MIGRATIONS[n]` takes a database from
/// `user_version` n to n + 1. Entries are never edited once released; a
/// change is a new entry.
const MIGRATIONS: &[&str] = &[
    // v1: messages, their full-text index, and the highest id ever stored.
    "
    CREATE TABLE messages (
        id     INTEGER PRIMARY KEY,
        at_ms  INTEGER NOT NULL,
        scope  TEXT NOT NULL,
        sender TEXT NOT NULL,
        kind   TEXT NOT NULL CHECK (kind IN ('message', 'action', 'notice')),
        text   TEXT NOT NULL
    );
    -- Paging a room: newest before an id, or oldest after one.
    CREATE INDEX messages_by_scope ON messages (scope, id);
    -- Retention and `export --since`.
    CREATE INDEX messages_by_time ON messages (at_ms);

    -- The text is stored once, in `messages`; the index refers to it
    -- (external content). unicode61 folds case across scripts;
    -- remove_diacritics lets `cafe` find `café`. Messages are never
    -- updated, so inserts and deletes are all the index has to follow.
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        text,
        content = 'messages',
        content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text)
            VALUES ('delete', old.id, old.text);
    END;

    -- Kept apart from max(messages.id): retention may delete every message,
    -- and ids must still never be reused.
    CREATE TABLE last_id (
        only INTEGER PRIMARY KEY CHECK (only = 0),
        id   INTEGER NOT NULL
    );
    INSERT INTO last_id (only, id) VALUES (0, 0);
    ",
    // v2: the writer keeps the full-text index itself, a statement per batch
    // rather than a trigger per row. FTS5 flushes its pending terms to disk
    // at every statement boundary inside a transaction, so a trigger made
    // each message its own index segment: 15 µs of the writer's 19 µs per
    // message. One `INSERT ... SELECT` per batch indexes it for ~1.5 µs.
    "
    DROP TRIGGER messages_fts_insert;
    DROP TRIGGER messages_fts_delete;
    ",
];

/// The schema version this build writes.
pub(crate) const VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a statement waits for another connection's lock (an `sqlite3`
/// shell reading the file, say) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the writer's connection to `path`, creating and migrating the
/// database as needed, and returns it with the highest id ever stored.
pub(crate) fn open_writer(path: &Path) -> Result<(Connection, u64), OpenError> {
    let err = |e| classify(path, e);
    let found = inspect(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Damaged {
            path: path.to_path_buf(),
            detail: format!("it cannot be switched to WAL mode (it stays in {mode} mode)"),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    migrate(&conn, found).map_err(err)?;
    let last_id: i64 = conn
        .query_row("SELECT id FROM last_id", [], |row| row.get(0))
        .map_err(err)?;
    Ok((conn, u64::try_from(last_id).unwrap_or(0)))
}

/// Opens a read-only connection for queries, beside the writer's: WAL lets
/// it read the last commit while the writer writes the next one.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, OpenError> {
    let err = |e| classify(path, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    Ok(conn)
}

/// Looks at an existing database without writing to it, and returns its
/// schema version (0 for a new, empty file) or why it must not be used.
///
/// Even a read-only connection leaves SQLite's `-wal` and `-shm` files
/// beside a database; on refusal the ones it made are removed again, so
/// that a refused file's directory is as it was. That is safe: a WAL it
/// made is empty (it never writes), the `-shm` is only an index rebuilt from
/// the WAL by the next opener, and we hold the history's lock.
/// Whether the history at `path` can be read by this version (for
/// [`crate::ReadOnly`]): written by a LanTalk no newer than this one, and a
/// history at all.
pub(crate) fn check_readable(path: &Path) -> Result<(), OpenError> {
    match inspect(path)? {
        0 => Err(OpenError::Damaged {
            path: path.to_path_buf(),
            detail: "it holds no LanTalk history".into(),
        }),
        _ => Ok(()),
    }
}

fn inspect(path: &Path) -> Result<u32, OpenError> {
    let sidecars = ["-wal", "-shm"].map(|suffix| {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        std::path::PathBuf::from(name)
    });
    let existed = sidecars.clone().map(|p| p.exists());
    let verdict = look(path);
    if verdict.is_err() {
        for (sidecar, existed) in sidecars.iter().zip(existed) {
            if !existed {
                let _ = std::fs::remove_file(sidecar);
            }
        }
    }
    verdict
}

fn look(path: &Path) -> Result<u32, OpenError> {
    let new = std::fs::metadata(path).map(|m| m.len() == 0);
    match new {
        Ok(true) => return Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(false) => {}
    }
    let err = |e| classify(path, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err)?;
    let version = u32::try_from(version).unwrap_or(u32::MAX);
    if version > VERSION {
        return Err(OpenError::Newer {
            path: path.to_path_buf(),
            found: version,
            known: VERSION,
        });
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(err)?;
        if tables > 0 {
            return Err(OpenError::Damaged {
                path: path.to_path_buf(),
                detail: "it is a database of some other program".into(),
            });
        }
    }
    // Reads every page, so damage anywhere is found now, at start, rather
    // than as failed commits and queries later. It costs one pass over the
    // file: about 0.7 s for a million messages (190 MB; `open_1m` in
    // benches/store.rs), far less for the days or weeks most servers keep.
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(err)?;
    if verdict != "ok" {
        return Err(OpenError::Damaged {
            path: path.to_path_buf(),
            detail: verdict,
        });
    }
    Ok(version)
}

/// Brings the schema from version `from` to [`VERSION`], one transaction per
/// step, so a crash mid-migration leaves the previous version intact.
fn migrate(conn: &Connection, from: u32) -> rusqlite::Result<()> {
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            done + 1
        ))
        .inspect_err(|_| {
            // Leave no half-done migration open on this connection; the
            // failed step itself was never committed.
            let _ = conn.execute_batch("ROLLBACK");
        })?;
    }
    Ok(())
}

/// Sorts SQLite's failures: a file that is not a database or is damaged is
/// the person's to deal with ([`OpenError::Damaged`]); anything else is
/// reported as SQLite said it.
fn classify(path: &Path, e: rusqlite::Error) -> OpenError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => OpenError::Damaged {
            path: path.to_path_buf(),
            detail: "it is not an SQLite database".into(),
        },
        Some(ErrorCode::DatabaseCorrupt) => OpenError::Damaged {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => OpenError::Sqlite {
            path: path.to_path_buf(),
            source: e,
        },
    }
}
