//! The reference implementation (`lantalk==2.0.0`), run unmodified and
//! driven as a person would (shared test support): its server on a loopback
//! port, its interactive client answering the menu's questions.
//!
//! Included with `#[path = "support/reference.rs"] mod reference;`, next to
//! the `python`, `proc` and `tempdir` support modules, which it uses.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::proc::{Proc, START};
use crate::tempdir::TempDir;

fn python() -> &'static Path {
    crate::python::interpreter("The tests against LanTalk 2.0 need")
}

/// Starts the reference server. It has no command line of its own, so this
/// constructs `LanTalkServer` directly, after patching what would reach
/// beyond this machine: it binds `HOST` (0.0.0.0) — made 127.0.0.1; it asks
/// the routing table for its LAN address — made 127.0.0.1; and it broadcasts
/// a discovery beacon every 2 s — replaced by a task that only waits for the
/// stop event, as the real one does between beacons.
pub const PY_SERVER: &str = r#"
import os, sys
import lantalk.server as srv

srv.HOST = "127.0.0.1"
srv._get_lan_ip = lambda: "127.0.0.1"

async def _silent_beacon(lan_ip, port, stop_event):
    await stop_event.wait()

srv._discovery_beacon = _silent_beacon
password = os.environ.get("LT_INTEROP_PASSWORD") or None
srv.LanTalkServer(port=int(sys.argv[1]), username=sys.argv[2], password=password).start()
"#;

/// Starts the reference server on a free loopback port (in a fresh directory
/// for its `lantalk.log` and `bans.json`); returns it and the port.
pub fn python_server(name: &str, password: Option<&str>) -> (Proc, u16) {
    let py = python();
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Free now; another process may take it before Python binds it, in
        // which case Python exits and we try another.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir = TempDir::new("py-server");
        let mut cmd = Command::new(py);
        cmd.arg("-u")
            .arg("-c")
            .arg(PY_SERVER)
            .arg(port.to_string())
            .arg(name)
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONUNBUFFERED", "1")
            .env("LT_INTEROP_PASSWORD", password.unwrap_or(""))
            .current_dir(dir.path());
        let mut proc = Proc::spawn_in("Python server", cmd, dir);
        // Its log line comes after the listener is bound. (A connection probe
        // could not tell it from some other program that took the port.)
        let started = format!("Server started on 127.0.0.1:{port}");
        if proc
            .out
            .wait_until(START, |t| t.contains(&started).then_some(()))
            .is_ok()
        {
            return (proc, port);
        }
        let _ = proc.child.try_wait();
        proc.err.wait_closed(Duration::from_secs(2));
        let busy = proc
            .err
            .text()
            .to_lowercase()
            .contains("address already in use");
        if !(busy && attempt < 5) {
            panic!("the Python server did not start\n{}", proc.report());
        }
    }
}

/// Starts the reference client's interactive CLI, unmodified, and answers its
/// questions: join, then address, port, name and password. Returns once the
/// password is given; the connection is being made.
pub fn python_client(port: u16, name: &str, password: &str) -> Proc {
    let dir = TempDir::new("py-client");
    let mut cmd = Command::new(python());
    cmd.args(["-u", "-m", "lantalk.cli"])
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(dir.path());
    let mut proc = Proc::spawn_in(format!("Python client {name}"), cmd, dir);
    let asked = |q: &'static str| move |t: &str| t.contains(q).then_some(());
    proc.wait_out("the menu", START, asked("Choose (1 or 2):"));
    proc.send("2");
    // Discovery listens for 3 s. Should it hear some server on the LAN, it
    // offers a list first; "m" is "enter manually".
    let offered = proc.wait_out("the server question", START, |t| {
        if t.contains("Choose server:") {
            Some(true)
        } else if t.contains("Server IP:") {
            Some(false)
        } else {
            None
        }
    });
    if offered {
        proc.send("m");
        proc.wait_out("\"Server IP:\"", START, asked("Server IP:"));
    }
    proc.send("127.0.0.1");
    proc.wait_out("\"Port\"", START, asked("Port (default"));
    proc.send(&port.to_string());
    proc.wait_out("\"Display name:\"", START, asked("Display name:"));
    proc.send(name);
    proc.wait_out(
        "\"Password\"",
        START,
        asked("Password (leave blank if none):"),
    );
    proc.send(password);
    proc
}
