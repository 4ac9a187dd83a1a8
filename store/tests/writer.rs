//! Writing: ids across restarts, batching, retention, and what the writer
//! reports when it cannot store something.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{ids, said, TempDir};
use lantalk_store::{Options, Request, Scope, Store};
use rusqlite::{Connection, OpenFlags};

fn lobby() -> Scope {
    Scope::room("#lobby")
}

fn all(store: &Store) -> Vec<u64> {
    store
        .export(None, i64::MIN)
        .map(|r| r.unwrap().id)
        .collect()
}

/// Counts the rows a separate connection sees committed.
fn committed_rows(db: &Path) -> i64 {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap()
}

/// Waits (up to a generous bound, for slow machines) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ids_continue_across_reopen() {
    let dir = TempDir::new("ids");
    let db = dir.db();
    {
        let store = Store::open(&db, Options::default()).unwrap();
        assert_eq!(store.last_id(), 0);
        for id in 1..=5 {
            store.append(said(id, &lobby(), "first run"));
        }
    }
    {
        let store = Store::open(&db, Options::default()).unwrap();
        assert_eq!(store.last_id(), 5);
        for id in store.last_id() + 1..=8 {
            store.append(said(id, &Scope::pm("a", "b"), "second run"));
        }
        // Retention that empties the history does not lower the last id.
        assert_eq!(store.purge_older_than(i64::MAX).unwrap(), 8);
        assert_eq!(all(&store), Vec::<u64>::new());
    }
    let store = Store::open(&db, Options::default()).unwrap();
    assert_eq!(store.last_id(), 8);
}

#[test]
fn commits_within_commit_every_without_flush() {
    let dir = TempDir::new("timed");
    let db = dir.db();
    let options = Options {
        commit_every: Duration::from_millis(50),
        batch: 1_000_000,
        ..Options::default()
    };
    let store = Store::open(&db, options).unwrap();
    store.append(said(1, &lobby(), "soon on disk"));
    eventually("the record is committed", || committed_rows(&db) == 1);
    assert_eq!(store.stats().committed, 1);
}

#[test]
fn commits_a_full_batch_at_once() {
    let dir = TempDir::new("batch");
    let db = dir.db();
    let options = Options {
        commit_every: Duration::from_secs(3600),
        batch: 10,
        ..Options::default()
    };
    let store = Store::open(&db, options).unwrap();
    for id in 1..=25 {
        store.append(said(id, &lobby(), "burst"));
    }
    eventually("two batches are committed", || {
        store.stats().committed == 20
    });
    assert_eq!(committed_rows(&db), 20);
    store.flush();
    assert_eq!(committed_rows(&db), 25);
}

#[test]
fn a_tiny_queue_waits_and_loses_nothing() {
    let dir = TempDir::new("queue");
    let store = Store::open(
        dir.db(),
        Options {
            queue: 1,
            batch: 7,
            ..Options::default()
        },
    )
    .unwrap();
    for id in 1..=500 {
        store.append(said(id, &lobby(), "pushing"));
    }
    store.flush();
    let stats = store.stats();
    assert_eq!((stats.committed, stats.lost), (500, 0));
    assert_eq!(all(&store), (1..=500).collect::<Vec<_>>());
}

#[test]
fn a_reused_id_is_refused_and_reported() {
    let dir = TempDir::new("reused");
    let store = Store::open(dir.db(), Options::default()).unwrap();
    store.append(said(1, &lobby(), "first"));
    store.append(said(2, &lobby(), "second"));
    store.append(said(1, &lobby(), "an impostor"));
    store.append(said(3, &lobby(), "third"));
    store.flush();
    let stats = store.stats();
    assert_eq!((stats.committed, stats.lost), (3, 1));
    let why = stats.last_error.unwrap();
    assert!(why.contains("message 1 was refused"), "{why}");
    // The batch around it was kept.
    let page = store
        .query_blocking(Request::Page {
            scope: lobby(),
            before: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(ids(&page), vec![1, 2, 3]);
    assert_eq!(page[0].text, "first");
    // The index holds each kept row once, and not the impostor's words.
    let search = |text: &str| {
        ids(&store
            .query_blocking(Request::Search {
                scope: lobby(),
                text: text.into(),
                before: None,
                limit: 10,
            })
            .unwrap())
    };
    assert_eq!(search("first"), vec![1]);
    assert_eq!(search("third"), vec![3]);
    assert_eq!(search("impostor"), Vec::<u64>::new());
    drop(store);
    Connection::open(dir.db())
        .unwrap()
        .execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
}

#[test]
fn retention_deletes_old_records_and_their_search_entries() {
    let dir = TempDir::new("purge");
    let db = dir.db();
    let store = Store::open(&db, Options::default()).unwrap();
    // Record n is said at n seconds.
    for id in 1..=12_000 {
        store.append(said(id, &lobby(), &format!("findme {id}")));
    }
    // More than one purge chunk goes.
    assert_eq!(store.purge_older_than(11_000_000).unwrap(), 10_999);
    assert_eq!(store.purge_older_than(11_000_000).unwrap(), 0);
    assert_eq!(all(&store), (11_000..=12_000).collect::<Vec<_>>());
    let found = store
        .query_blocking(Request::Search {
            scope: lobby(),
            text: "findme".into(),
            before: Some(11_002),
            limit: 10,
        })
        .unwrap();
    assert_eq!(ids(&found), vec![11_001, 11_000]);
    drop(store);

    // The full-text index holds exactly what is left.
    let conn = Connection::open(&db).unwrap();
    let indexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'findme'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1001);
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap();
}

#[test]
fn keep_purges_at_open() {
    let dir = TempDir::new("keep");
    let db = dir.db();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day_ms = 24 * 3600 * 1000;
    {
        let store = Store::open(&db, Options::default()).unwrap();
        for (id, age_days) in [(1, 30), (2, 8), (3, 6), (4, 0)] {
            let mut r = said(id, &lobby(), "dated");
            r.at_ms = now_ms - age_days * day_ms;
            store.append(r);
        }
    }
    let week = Options {
        keep: Some(Duration::from_secs(7 * 24 * 3600)),
        ..Options::default()
    };
    let store = Store::open(&db, week).unwrap();
    assert_eq!(all(&store), vec![3, 4]);
    assert_eq!(store.last_id(), 4);
}

/// `history export` reads while the server runs: no lock, nothing written,
/// and it sees what the server has committed.
#[test]
fn read_only_exports_while_the_store_is_open() {
    let dir = TempDir::new("read-only");
    let db = dir.db();
    assert!(
        lantalk_store::ReadOnly::open(&db).is_err(),
        "nothing to read yet"
    );
    let store = Store::open(&db, Options::default()).unwrap();
    for id in 1..=3 {
        store.append(said(id, &lobby(), "while running"));
    }
    store.flush();
    let reader = lantalk_store::ReadOnly::open(&db).unwrap();
    let got: Vec<u64> = reader
        .export(Some(lobby()), i64::MIN)
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(got, [1, 2, 3]);
    // The server keeps writing beside the reader.
    store.append(said(4, &lobby(), "more"));
    store.flush();
    assert_eq!(reader.export(None, i64::MIN).count(), 4);
    assert!(reader
        .export(Some(Scope::room("#other")), i64::MIN)
        .next()
        .is_none());
}
