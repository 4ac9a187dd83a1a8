//! `kill -9` during a write burst: the history opens again, intact, with
//! every committed message and no gap, and ids go on from the last one.
//!
//! The writer runs in a child process: this test binary run again with
//! `KILL_CHILD` set, so that only [`child_writer`] does anything there.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{said, TempDir};
use lantalk_store::{Options, Request, Scope, Store};
use rusqlite::Connection;

const KILL_CHILD: &str = "LANTALK_STORE_KILL_CHILD";

fn lobby() -> Scope {
    Scope::room("#lobby")
}

/// In the child: writes 100 messages and waits past `commit_every` (so
/// they are on disk by time alone, without a flush), then writes in bursts
/// for ever, saying after each flush how far it got. Does nothing in a
/// normal test run.
#[test]
fn child_writer() {
    let Ok(db) = std::env::var(KILL_CHILD) else {
        return;
    };
    let store = Store::open(&db, Options::default()).unwrap();
    for id in 1..=100 {
        store.append(said(id, &lobby(), "before the burst"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    println!("timed 100");
    let mut id = 100;
    loop {
        for _ in 0..3000 {
            id += 1;
            let scope = if id % 5 == 0 {
                Scope::pm("a", "b")
            } else {
                lobby()
            };
            store.append(said(id, &scope, &format!("burst message {id} ünïcödé")));
        }
        store.flush();
        println!("flushed {id}");
    }
}

#[test]
fn kill_9_mid_burst() {
    if std::env::var_os(KILL_CHILD).is_some() {
        return;
    }
    let dir = TempDir::new("kill");
    let db = dir.db();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(KILL_CHILD, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut timed, mut flushes, mut flushed) = (false, 0, 0);
    while flushes < 4 {
        let Some(line) = lines.next() else {
            panic!("the child stopped early (timed: {timed}, flushes: {flushes})");
        };
        // libtest may have written "test child_writer ... " first.
        let line = line.unwrap();
        if line.ends_with("timed 100") {
            timed = true;
        } else if let Some((_, id)) = line.split_once("flushed ") {
            flushed = id.parse::<u64>().unwrap();
            flushes += 1;
        }
    }
    // Into the next burst, then SIGKILL (TerminateProcess on Windows).
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(timed);

    // The file is sound, and so is its full-text index.
    let conn = Connection::open(&db).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap();
    let (count, min, max): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    drop(conn);

    // Everything flushed before the kill is there, ids 1..=last with no gap.
    let store = Store::open(&db, Options::default()).unwrap();
    let last = store.last_id();
    assert!(
        last >= flushed,
        "last id {last}, but {flushed} had been flushed"
    );
    assert_eq!((count, min, max), (last as i64, 1, last as i64));

    // And the server goes on from there.
    store.append(said(last + 1, &lobby(), "after the crash"));
    let tail = store
        .query_blocking(Request::After {
            scope: lobby(),
            after: last,
            limit: 10,
        })
        .unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].id, last + 1);
    drop(store);
    assert_eq!(
        Store::open(&db, Options::default()).unwrap().last_id(),
        last + 1
    );
}
