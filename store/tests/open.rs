//! Opening: what is refused, that refusing never touches the file, and the
//! one-server lock.

mod common;

use std::path::Path;

use common::{said, TempDir};
use lantalk_store::{OpenError, Options, Request, Scope, Store};
use rusqlite::Connection;

/// A history with a few messages, closed again.
fn make_history(db: &Path, messages: u64) {
    let store = Store::open(db, Options::default()).unwrap();
    let lobby = Scope::room("#lobby");
    for id in 1..=messages {
        store.append(said(
            id,
            &lobby,
            &format!("message number {id} with some words"),
        ));
    }
}

/// The database and anything beside it (lock, WAL), by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Opens `db` expecting a refusal, and checks no file of its directory
/// changed, appeared or went.
fn refused(db: &Path) -> OpenError {
    let dir = db.parent().unwrap();
    let before = snapshot(dir);
    let Err(e) = Store::open(db, Options::default()) else {
        panic!("{} was opened", db.display());
    };
    let after = snapshot(dir);
    // The lock file may be created; nothing else may differ.
    let without_lock = |files: Vec<(String, Vec<u8>)>| -> Vec<_> {
        files
            .into_iter()
            .filter(|(n, _)| !n.ends_with(".lock"))
            .collect()
    };
    let (before, after) = (without_lock(before), without_lock(after));
    let sizes = |files: &[(String, Vec<u8>)]| -> Vec<(String, usize)> {
        files.iter().map(|(n, b)| (n.clone(), b.len())).collect()
    };
    assert!(
        before == after,
        "refusing changed the files in {}: {:?} became {:?}",
        dir.display(),
        sizes(&before),
        sizes(&after)
    );
    let said = e.to_string();
    assert!(said.contains(&db.display().to_string()), "{said}");
    e
}

#[test]
fn fts5_is_compiled_in() {
    let conn = Connection::open_in_memory().unwrap();
    let options: Vec<String> = conn
        .prepare("PRAGMA compile_options")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(options.iter().any(|o| o == "ENABLE_FTS5"), "{options:?}");
}

#[test]
fn creates_and_reopens() {
    let dir = TempDir::new("create");
    let db = dir.db();
    make_history(&db, 3);
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!((version, mode.as_str()), (2, "wal"));
    drop(conn);
    let store = Store::open(&db, Options::default()).unwrap();
    assert_eq!(store.last_id(), 3);
    assert_eq!(store.path(), db);
}

/// The schema the first release wrote (version 1), as a fixture: its index
/// followed the messages through triggers.
const VERSION_1: &str = r##"
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, scope TEXT NOT NULL,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'action', 'notice')),
        text TEXT NOT NULL
    );
    CREATE INDEX messages_by_scope ON messages (scope, id);
    CREATE INDEX messages_by_time ON messages (at_ms);
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        text, content = 'messages', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text)
            VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE last_id (only INTEGER PRIMARY KEY CHECK (only = 0), id INTEGER NOT NULL);
    INSERT INTO last_id (only, id) VALUES (0, 3);
    INSERT INTO messages VALUES (1, 1000, '["#lobby"]', 'ann', 'message', 'old words one');
    INSERT INTO messages VALUES (2, 2000, '["#lobby"]', 'bob', 'message', 'old words two');
    INSERT INTO messages VALUES (3, 3000, '["#lobby"]', 'ann', 'message', 'old words three');
    PRAGMA user_version = 1;
"##;

#[test]
fn a_version_1_history_is_migrated() {
    let dir = TempDir::new("v1");
    let db = dir.db();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        conn.execute_batch(VERSION_1).unwrap();
    }
    let store = Store::open(&db, Options::default()).unwrap();
    let lobby = Scope::room("#lobby");
    assert_eq!(store.last_id(), 3);
    store.append(said(4, &lobby, "new words four"));
    store.append(said(5, &lobby, "new words five"));
    let search = |text: &str| {
        let found = store
            .query_blocking(Request::Search {
                scope: lobby.clone(),
                text: text.into(),
                before: None,
                limit: 10,
            })
            .unwrap();
        found.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(search("words"), vec![5, 4, 3, 2, 1]);
    assert_eq!(search("old"), vec![3, 2, 1]);
    // Rows the old triggers indexed leave the index with their rows.
    assert_eq!(store.purge_older_than(2_500).unwrap(), 2);
    assert_eq!(search("words"), vec![5, 4, 3]);
    drop(store);
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let triggers: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(triggers, 0);
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap();
}

#[test]
fn newer_schema_is_refused_untouched() {
    let dir = TempDir::new("newer");
    let db = dir.db();
    make_history(&db, 50);
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    // A newer version's leftover WAL must not be checkpointed by us either.
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute("DELETE FROM messages WHERE id > 40", [])
        .unwrap();
    let wal = db.with_file_name("history.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    // Keep the WAL: a crashed newer server leaves one.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for name in ["history.db", "history.db-wal"] {
        std::fs::copy(db.with_file_name(name), copy.join(name)).unwrap();
    }
    drop(conn);
    let db = copy.join("history.db");

    match refused(&db) {
        OpenError::Newer { found, known, .. } => assert_eq!((found, known), (3, 2)),
        e => panic!("{e:?}"),
    }
}

#[test]
fn not_a_database_is_refused_untouched() {
    let dir = TempDir::new("not-db");
    let db = dir.path().join("history.db");
    std::fs::write(&db, "these are my notes, not a database\n".repeat(200)).unwrap();
    match refused(&db) {
        OpenError::Damaged { .. } => {}
        e => panic!("{e:?}"),
    }
}

#[test]
fn corrupt_database_is_refused_untouched() {
    let dir = TempDir::new("corrupt");
    let db = dir.db();
    make_history(&db, 2000);
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 64 * 1024, "{}", bytes.len());
    // Scribble over the middle of the file, leaving the header intact: an
    // SQLite file that is damaged rather than foreign.
    let middle = bytes.len() / 2;
    bytes[middle..middle + 8192].fill(0x5a);
    std::fs::write(&db, &bytes).unwrap();
    match refused(&db) {
        OpenError::Damaged { detail, .. } => assert!(!detail.is_empty()),
        e => panic!("{e:?}"),
    }
}

#[test]
fn truncated_database_is_refused_untouched() {
    let dir = TempDir::new("truncated");
    let db = dir.db();
    make_history(&db, 2000);
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 3]).unwrap();
    match refused(&db) {
        OpenError::Damaged { .. } => {}
        e => panic!("{e:?}"),
    }
}

#[test]
fn another_programs_database_is_refused_untouched() {
    let dir = TempDir::new("foreign");
    let db = dir.path().join("history.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE invoices (n INTEGER); INSERT INTO invoices VALUES (1);")
        .unwrap();
    drop(conn);
    match refused(&db) {
        OpenError::Damaged { detail, .. } => assert!(detail.contains("other program"), "{detail}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn one_server_at_a_time() {
    let dir = TempDir::new("lock");
    let db = dir.db();
    let first = Store::open(&db, Options::default()).unwrap();
    first.append(said(1, &Scope::room("#lobby"), "mine"));
    match Store::open(&db, Options::default()) {
        Err(e @ OpenError::Locked { .. }) => {
            let said = e.to_string();
            assert!(said.contains(&db.display().to_string()), "{said}");
            assert!(said.contains("another LanTalk server"), "{said}");
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("opened twice"),
    }
    // The refused open changed nothing for the first.
    first.flush();
    assert_eq!(first.stats().committed, 1);
    drop(first);

    let second = Store::open(&db, Options::default()).unwrap();
    assert_eq!(second.last_id(), 1);
    let page = second
        .query_blocking(Request::Page {
            scope: Scope::room("#lobby"),
            before: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(page.len(), 1);
}

#[test]
fn unwritable_place_is_an_io_error() {
    let dir = TempDir::new("io");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    // A database "inside" a regular file: its directory cannot be made.
    match Store::open(file.join("history.db"), Options::default()) {
        Err(e @ OpenError::Io { .. }) => {
            assert!(e.to_string().contains("a-file"), "{e}")
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("opened"),
    }
}
