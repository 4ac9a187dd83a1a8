//! Rooms and history end to end, with the real `lantalk-smol` and
//! `lantalk-std` binaries: piped clients of ours join a room, talk in it, a
//! LanTalk 2.0 member in the lobby hears none of it (and the lobby exactly as
//! LanTalk 2.0 says it), a latecomer is shown the room's history, `/search`
//! finds it, and after the server restarts the history is still there.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/tempdir.rs"]
mod tempdir;

use ours::{bin_label, OurServer, SMOL, STD};
use proc::Proc;
use tempdir::TempDir;

macro_rules! rooms_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            rooms_tests!(@tests $bin;
                rooms_and_history_in_piped_mode,
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

rooms_tests!(smol, super::SMOL);
rooms_tests!(std_rt, super::STD);

/// A piped client of ours, logged in.
fn piped(bin: &str, port: u16, name: &str) -> Proc {
    let dir = TempDir::new("client");
    let mut cmd = Command::new(bin);
    cmd.args([
        "client",
        &format!("127.0.0.1:{port}"),
        "--name",
        name,
        "--accept-new",
    ])
    .arg("--data-dir")
    .arg(dir.path())
    .env_remove("LANTALK_DATA_DIR");
    let p = Proc::spawn_in(format!("{} client {name}", bin_label(bin)), cmd, dir);
    p.wait_line("connected", |l| {
        l.starts_with(&format!("Connected as {name}"))
    });
    p
}

/// `#team [HH:MM] user: text`
fn room_line(room: &str, user: &str, text: &str) -> impl Fn(&str) -> bool {
    let (room, tail) = (format!("{room} ["), format!("] {user}: {text}"));
    move |l: &str| {
        l.starts_with(&room) && l.ends_with(&tail) && l.len() == room.len() + 5 + tail.len()
    }
}

/// A LanTalk 2.0 member (plaintext): every line it receives, in order.
fn lantalk_member(port: u16, name: &str) -> (TcpStream, mpsc::Receiver<String>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = stream.try_clone().unwrap();
    writeln!(w, "{{\"username\": \"{name}\", \"password\": \"\"}}").unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(stream.try_clone().unwrap());
    thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (stream, rx)
}

fn rooms_and_history_in_piped_mode(bin: &str) {
    let server = OurServer::start(bin, &["--allow-plaintext"]);
    let (_dee, dee) = lantalk_member(server.port, "dee");
    // dee is in before anyone speaks (its login is not waited for otherwise).
    let logged_in = std::iter::from_fn(|| dee.recv_timeout(Duration::from_secs(10)).ok())
        .find(|l| l.contains("\"auth_ok\""));
    assert!(logged_in.is_some(), "dee never logged in");
    let mut ann = piped(bin, server.port, "ann");
    let mut bob = piped(bin, server.port, "bob");

    ann.send("/join #team");
    ann.wait_line("ann in #team", |l| {
        l.starts_with("#team ") && l.contains("You are in #team")
    });
    bob.send("/join #Team");
    bob.wait_line("bob in #team", |l| {
        l.contains("You are in #team (2 members)")
    });
    ann.send("ship it today?");
    bob.wait_line(
        "ann's line, with its room",
        room_line("#team", "ann", "ship it today?"),
    );
    // bob speaks in the lobby again: no prefix there, as before rooms.
    bob.send("/switch 1");
    bob.send("hello lobby");
    ann.wait_line("bob in the lobby", |l| {
        l.starts_with('[') && l.ends_with("] bob: hello lobby")
    });

    // The LanTalk 2.0 member heard the lobby, as LanTalk 2.0 says it, and
    // nothing of #team.
    let mut heard = Vec::new();
    while let Ok(line) = dee.recv_timeout(Duration::from_secs(10)) {
        let done = line.contains("hello lobby");
        heard.push(line);
        if done {
            break;
        }
    }
    let said = heard.last().cloned().unwrap_or_default();
    assert!(
        said.starts_with("{\"type\": \"message\", \"ts\": \"")
            && said.ends_with("\", \"user\": \"bob\", \"text\": \"hello lobby\"}"),
        "LanTalk 2.0's line, byte for byte: {said:?}"
    );
    assert!(
        !heard
            .iter()
            .any(|l| l.contains("ship it") || l.contains("room")),
        "{heard:?}"
    );

    // A latecomer is shown what was said, marked as history; /search finds it.
    let mut cy = piped(bin, server.port, "cy");
    cy.send("/join #team");
    cy.wait_line("the history heading", |l| {
        l.starts_with("#team ── 1 earlier line of #team")
    });
    cy.wait_line("the earlier line, dated", |l| {
        l.starts_with("#team [20") && l.ends_with("] ann: ship it today?")
    });
    cy.send("/search SHIP");
    cy.wait_line("a match", |l| l.starts_with("#team ── 1 match in #team"));
    cy.send("/part");
    cy.wait_line("left", |l| l.contains("You left #team."));
    drop((ann, bob, cy));

    // The server stops; the history stays.
    let OurServer { proc, dir, .. } = server;
    drop(proc);
    let server = OurServer::start_in(bin, dir, &["--allow-plaintext"]);
    let mut eve = piped(bin, server.port, "eve");
    eve.send("/join #team");
    eve.wait_line("history after a restart", |l| {
        l.ends_with("] ann: ship it today?")
    });
    eve.finish_ok();
}
