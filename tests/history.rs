//! End-to-end tests of the server's history on disk, with the real
//! `lantalk-smol` and `lantalk-std` binaries: a `kill -9` in the middle of a
//! burst loses at most the last second and never the file, ids go on rising
//! after a restart, a second server cannot take the same history, a damaged
//! file is refused and left alone, and `history export` reads it all.
//!
//! The writers are raw LanTalk 2.0 peers (plaintext, lobby only): the
//! simplest way to put many messages into the history at a known time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/tempdir.rs"]
mod tempdir;

use ours::{bin_label, OurServer, SMOL, STD};
use tempdir::TempDir;

macro_rules! history_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            history_tests!(@tests $bin;
                a_kill_9_loses_at_most_the_last_second,
                a_second_server_cannot_take_the_history,
                a_damaged_history_is_refused_and_left_alone,
                no_history_and_memory_only_write_nothing,
            );
        }
    };
    (@tests $bin:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                super::$name($bin)
            }
        )*
    };
}

history_tests!(smol, super::SMOL);
history_tests!(std_rt, super::STD);

const ARGS: &[&str] = &["--allow-plaintext", "--rate-limit", "off"];

/// A LanTalk 2.0 peer logged in as `name`; what it is sent is drained.
fn writer(port: u16, name: &str) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).expect("auth_request");
    let mut w = stream.try_clone().unwrap();
    writeln!(w, "{{\"username\": \"{name}\", \"password\": \"\"}}").unwrap();
    line.clear();
    reader.read_line(&mut line).expect("auth_ok");
    assert!(line.contains("auth_ok"), "{line}");
    thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while matches!(reader.get_mut().read(&mut sink), Ok(n) if n > 0) {}
    });
    stream
}

fn say(stream: &mut TcpStream, text: &str) -> std::io::Result<()> {
    writeln!(stream, "{{\"type\": \"message\", \"text\": \"{text}\"}}")
}

/// `BIN history export --data-dir DIR ARGS…`: its lines.
fn export(bin: &str, dir: &TempDir, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(bin)
        .args(["history", "export", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env_remove("LANTALK_DATA_DIR")
        .output()
        .expect("history export runs");
    assert!(
        out.status.success(),
        "{} history export failed: {}",
        bin_label(bin),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn ids(records: &[serde_json::Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["id"].as_u64().expect("an id"))
        .collect()
}

fn a_kill_9_loses_at_most_the_last_second(bin: &str) {
    let server = OurServer::start(bin, ARGS);
    let mut w = writer(server.port, "w");
    // A steady burst, each message's sending time noted.
    let start = Instant::now();
    let mut sent = Vec::new();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        let text = format!("m{i}");
        if say(&mut w, &text).is_err() {
            break;
        }
        sent.push((Instant::now(), text));
        i += 1;
        thread::sleep(Duration::from_millis(4));
    }
    let OurServer { mut proc, dir, .. } = server;
    proc.child.kill().expect("kill -9");
    let killed = Instant::now();
    let _ = proc.child.wait();
    drop(w);

    // The file opens again; what was said more than a second and a half
    // before the kill is all there (a second of batching, and slack for a
    // busy machine reading the socket late), in order, ids rising.
    let server = OurServer::start_in(bin, dir, ARGS);
    let kept = export(bin, &server.dir, &[]);
    let texts: Vec<&str> = kept.iter().filter_map(|r| r["text"].as_str()).collect();
    let must: Vec<&str> = sent
        .iter()
        .filter(|(at, _)| killed.duration_since(*at) > Duration::from_millis(1500))
        .map(|(_, t)| t.as_str())
        .collect();
    assert!(!must.is_empty(), "the burst was long enough to matter");
    for t in &must {
        assert!(
            texts.contains(t),
            "{t} was lost; kept {} of {}",
            texts.len(),
            sent.len()
        );
    }
    let before = ids(&kept);
    assert!(
        before.windows(2).all(|w| w[0] < w[1]),
        "ids rise: {before:?}"
    );
    assert!(
        texts.iter().enumerate().all(|(n, t)| *t == format!("m{n}")),
        "kept in the order said, without holes"
    );

    // After the restart, ids go on from above every id given out before.
    let mut w = writer(server.port, "w2");
    say(&mut w, "after the restart").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = export(bin, &server.dir, &[]);
        if let Some(r) = now.iter().find(|r| r["text"] == "after the restart") {
            let id = r["id"].as_u64().unwrap();
            assert!(before.iter().all(|&b| b < id), "{id} after {before:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new message was never stored"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn a_second_server_cannot_take_the_history(bin: &str) {
    let first = OurServer::start(bin, &[]);
    let cmd = ours::server_command(bin, first.dir.path(), &[]);
    let mut second = proc::Proc::spawn(format!("second {} server", bin_label(bin)), cmd);
    let text = second.expect_failure();
    assert!(
        text.contains("in use by another LanTalk server"),
        "says why: {text}"
    );
    // The first one is unharmed and exports fine.
    assert!(export(bin, &first.dir, &[]).is_empty());
}

fn a_damaged_history_is_refused_and_left_alone(bin: &str) {
    let dir = TempDir::new("damaged");
    let db = dir.path().join("history.db");
    let garbage = b"this is not a database, it is someone's notes\n".repeat(100);
    std::fs::write(&db, &garbage).unwrap();
    let cmd = ours::server_command(bin, dir.path(), &[]);
    let mut server = proc::Proc::spawn(format!("{} server", bin_label(bin)), cmd);
    let text = server.expect_failure();
    assert!(text.contains("history.db"), "names the file: {text}");
    assert!(
        text.contains("left untouched"),
        "says it was not changed: {text}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "not a byte changed");
}

fn no_history_and_memory_only_write_nothing(bin: &str) {
    for flags in [&["--no-history"][..], &["--history-keep", "0"][..]] {
        let server = OurServer::start(bin, &[ARGS, flags].concat());
        let mut w = writer(server.port, "w");
        say(&mut w, "not for the disk").unwrap();
        // Time for a batch to have been written, were there a store.
        thread::sleep(Duration::from_millis(1500));
        assert!(
            !server.dir.path().join("history.db").exists(),
            "{flags:?}: no history.db"
        );
        assert!(
            server
                .proc
                .out
                .text()
                .contains(if flags[0] == "--no-history" {
                    "History: none kept"
                } else {
                    "none on disk"
                }),
            "the banner says so: {}",
            server.proc.out.text()
        );
    }
}
