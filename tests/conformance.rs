//! End-to-end conformance suite for LanTalk: the real `lantalk-smol` and
//! `lantalk-std` binaries, driven over loopback TCP and their console.
//!
//! Every test is written once as a plain function taking the path of a binary
//! and instantiated for both runtimes by [`conformance!`], so each shows up
//! twice in `cargo test` output (`smol::…` and `std_rt::…`).
//!
//! Rules the harness follows: every server listens on `127.0.0.1` port 0 with
//! its own fresh data directory, so tests running in parallel never meet;
//! nothing waits with a fixed sleep for something that can be observed (lines
//! are awaited with generous timeouts); nothing asserts on timing.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long anything that should happen may take before the test fails. Long,
/// because the machine may be busy; a passing test never waits this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The server's longest accepted line (its `max_line`), in bytes.
const MAX_LINE: usize = 16 * 1024;

// ═════════════════════════════════════════════════════════════════════════════
// Instantiation for both runtimes
// ═════════════════════════════════════════════════════════════════════════════

macro_rules! conformance {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            conformance!(@tests $bin;
                handshake,
                duplicate_name_is_refused_case_insensitively,
                invalid_names_are_refused,
                password_from_env,
                broadcast_reaches_others_without_echo,
                per_sender_order_is_kept,
                users_command_lists_everyone,
                private_messages,
                client_quit_and_disconnect_are_announced,
                operator_messages_reach_everyone,
                rate_limit_warns_then_kicks,
                malformed_input_is_survived,
                too_many_malformed_lines_disconnect,
                oversized_line_closes_the_connection,
                auth_timeout,
                idle_timeout,
                idle_timeout_within_auth_timeout,
                two_hundred_clients,
                stuck_reader_does_not_hold_up_others,
                console_kick,
                console_ban_and_unban,
                bans_survive_a_restart,
                corrupt_bans_file_stops_the_server,
                console_quit_shuts_down,
                console_quit_tells_everyone,
                #[cfg(unix)] sigterm_shuts_down,
                #[cfg(unix)]
                sigterm_tells_everyone,
                server_stdin_eof_keeps_serving,
                client_piped_session,
                silent_client_of_ours_stays_dead_one_is_cleared,
                pm_to_nobody_is_not_shown_as_sent,
                double_slash_sends_a_line_starting_with_a_slash,
                client_exits_zero_at_end_of_input,
                client_refused_exits_non_zero,
                client_without_server_exits_non_zero,
                help_mentions_flags,
                piped_client_shows_a_hostile_servers_controls_visibly,
                piped_client_shows_a_hostile_refusal_visibly,
                server_console_and_log_show_peer_controls_visibly,
            );
        }
    };
    (@tests $bin:expr; $($(#[$meta:meta])* $name:ident,)*) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                super::$name($bin)
            }
        )*
    };
}

conformance!(smol, env!("CARGO_BIN_EXE_lantalk-smol"));
conformance!(std_rt, env!("CARGO_BIN_EXE_lantalk-std"));

// ═════════════════════════════════════════════════════════════════════════════
// Harness
// ═════════════════════════════════════════════════════════════════════════════

#[path = "support/tempdir.rs"]
mod tempdir;

use tempdir::TempDir;

/// Lines a child process wrote to one of its pipes, collected by a thread.
struct Output {
    what: String,
    state: Mutex<OutputState>,
    changed: Condvar,
}

#[derive(Default)]
struct OutputState {
    lines: Vec<String>,
    eof: bool,
}

impl Output {
    fn collect(what: String, mut pipe: impl Read + Send + 'static) -> Arc<Output> {
        let out = Arc::new(Output {
            what,
            state: Mutex::new(OutputState::default()),
            changed: Condvar::new(),
        });
        let shared = Arc::clone(&out);
        thread::spawn(move || {
            let mut pending = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let mut state = shared.state.lock().unwrap();
                if n == 0 {
                    if !pending.is_empty() {
                        state
                            .lines
                            .push(String::from_utf8_lossy(&pending).into_owned());
                    }
                    state.eof = true;
                    shared.changed.notify_all();
                    return;
                }
                pending.extend_from_slice(&chunk[..n]);
                while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    let mut line = String::from_utf8_lossy(&line[..pos]).into_owned();
                    if line.ends_with('\r') {
                        line.pop();
                    }
                    state.lines.push(line);
                }
                shared.changed.notify_all();
            }
        });
        out
    }

    /// The first line (from the very start) that satisfies `pred`; fails
    /// when none has come within [`TIMEOUT`] or the pipe was closed without it.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(line) = state.lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if state.eof || now >= deadline {
                let why = if state.eof { "closed" } else { "timed out" };
                panic!(
                    "{}: {why} waiting for a line {what}; got:\n{}",
                    self.what,
                    state.lines.join("\n")
                );
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    fn has_line(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.state.lock().unwrap().lines.iter().any(|l| pred(l))
    }

    /// Waits (within [`TIMEOUT`]) for the writer to close the pipe.
    fn wait_eof(&self) {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.state.lock().unwrap();
        while !state.eof {
            let now = Instant::now();
            assert!(now < deadline, "{}: not closed in time", self.what);
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    fn text(&self) -> String {
        let state = self.state.lock().unwrap();
        let mut s = state.lines.join("\n");
        s.push('\n');
        s
    }
}

/// Polls `child` until it exits; kills it and fails after [`TIMEOUT`].
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A running `BIN server` on 127.0.0.1 with a port of its own.
struct ServerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
    port: u16,
    dir: Arc<TempDir>,
}

/// Starts `BIN server --port 0 --bind 127.0.0.1 --allow-plaintext --data-dir
/// DIR ARGS…`; does not wait for it to listen (it may be meant to fail). The
/// raw test peers speak the LanTalk 2.0 protocol in plaintext, hence
/// `--allow-plaintext`; encryption has its own suite (tests/secure.rs).
fn spawn_server(
    bin: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    dir: &Path,
) -> (Child, Arc<Output>, Arc<Output>) {
    let mut cmd = Command::new(bin);
    cmd.args([
        "server",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--allow-plaintext",
        "--data-dir",
    ])
    .arg(dir)
    .args(args)
    .env_remove("LANTALK_DATA_DIR")
    .env_remove("LANTALK_LOG_LEVEL")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn the server");
    let stdout = Output::collect("server stdout".into(), child.stdout.take().unwrap());
    let stderr = Output::collect("server stderr".into(), child.stderr.take().unwrap());
    (child, stdout, stderr)
}

impl ServerProc {
    fn start(bin: &str, args: &[&str]) -> ServerProc {
        ServerProc::start_with(bin, args, &[], Arc::new(TempDir::new("server")))
    }

    fn start_with(
        bin: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        dir: Arc<TempDir>,
    ) -> ServerProc {
        let (mut child, stdout, stderr) = spawn_server(bin, args, envs, dir.path());
        let stdin = child.stdin.take();
        let mut server = ServerProc {
            child,
            stdin,
            stdout,
            stderr,
            port: 0,
            dir,
        };
        let line = server
            .stdout
            .wait_for("Listening on ADDR", |l| l.starts_with("Listening on "));
        let addr = line.trim_start_matches("Listening on ").trim();
        let port = addr
            .strip_prefix("127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cannot read {line:?} (stderr: {})", server.stderr.text()));
        assert_ne!(port, 0, "the server must report the port it picked");
        server.port = port;
        server
    }

    /// A new server on the same data directory (after this one stopped).
    fn restart(&self, bin: &str, args: &[&str]) -> ServerProc {
        ServerProc::start_with(bin, args, &[], Arc::clone(&self.dir))
    }

    /// Types a line on the server console.
    fn console(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("console is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .expect("write to the server console");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a line of the console output containing `text`.
    fn wait_output(&self, text: &str) -> String {
        self.stdout
            .wait_for(&format!("containing {text:?}"), |l| l.contains(text))
    }

    /// Waits for a console reply that is exactly `text` (replies are printed
    /// bare; log lines have a time and level in front).
    fn wait_reply(&self, text: &str) {
        self.stdout
            .wait_for(&format!("equal to {text:?}"), |l| l == text);
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child, "the server")
    }

    #[cfg(unix)]
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll the server").is_none()
    }

    fn connect(&self, name: &str) -> Peer {
        Peer::connect(self.port, name)
    }

    /// Connects and logs in as `name`, asserting success.
    fn join(&self, name: &str) -> Peer {
        let mut p = self.connect(name);
        let reply = p.login(name, "");
        assert_eq!(reply["type"], "auth_ok", "{name} login: {reply}");
        p
    }

    /// Logs in every name in turn; every earlier peer has read the join
    /// notice of every later one, so all start with nothing pending.
    fn room(&self, names: &[&str]) -> Vec<Peer> {
        let mut peers: Vec<Peer> = Vec::new();
        for name in names {
            let p = self.join(name);
            for q in &mut peers {
                q.expect_system(&format!("{name} joined from 127.0.0.1 (unencrypted)."));
            }
            peers.push(p);
        }
        peers
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `BIN client …` with every pipe in the test's hands, its own
/// data directory, and new server keys trusted (`--accept-new`).
struct ClientProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
    _dir: TempDir,
}

impl ClientProc {
    fn spawn(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> ClientProc {
        let dir = TempDir::new("client");
        let mut cmd = Command::new(bin);
        cmd.arg("client")
            .args(args)
            .arg("--accept-new")
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("LANTALK_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the client");
        let stdin = child.stdin.take();
        let stdout = Output::collect("client stdout".into(), child.stdout.take().unwrap());
        let stderr = Output::collect("client stderr".into(), child.stderr.take().unwrap());
        ClientProc {
            child,
            stdin,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    fn type_lines(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("client stdin is open");
        stdin
            .write_all(text.as_bytes())
            .and_then(|_| stdin.flush())
            .expect("write to the client");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Ends the input, then waits as [`ClientProc::wait`] does.
    fn finish(&mut self) -> ExitStatus {
        self.close_stdin();
        self.wait()
    }

    /// Waits for the exit (input left as it is) and for both pipes to be
    /// read to the end.
    fn wait(&mut self) -> ExitStatus {
        let status = wait_exit(&mut self.child, "the client");
        self.stdout.wait_eof();
        self.stderr.wait_eof();
        status
    }

    fn assert_no_ansi(&self) {
        for (what, out) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = out.text();
            assert!(
                !text.contains('\x1b'),
                "client {what} has ANSI escapes in piped mode:\n{text:?}"
            );
        }
    }
}

impl Drop for ClientProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why [`Peer::recv_line_within`] got no line.
#[derive(Debug)]
enum NoLine {
    /// End of stream, or the connection was reset.
    Closed,
    TimedOut,
}

/// A raw TCP connection speaking the protocol by hand.
struct Peer {
    name: String,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    fn connect(port: u16, name: &str) -> Peer {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("{name}: connect to 127.0.0.1:{port}: {e}"));
        let _ = stream.set_nodelay(true);
        Peer {
            name: name.to_string(),
            stream,
            buf: Vec::new(),
        }
    }

    fn recv_line_within(&mut self, timeout: Duration) -> Result<String, NoLine> {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(String::from_utf8(line[..pos].to_vec()).unwrap_or_else(|e| {
                    panic!("{}: the server sent invalid UTF-8: {e}", self.name)
                }));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoLine::TimedOut);
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(NoLine::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(NoLine::Closed),
            }
        }
    }

    fn recv_line(&mut self) -> String {
        match self.recv_line_within(TIMEOUT) {
            Ok(line) => line,
            Err(NoLine::Closed) => panic!("{}: connection closed, expected a line", self.name),
            Err(NoLine::TimedOut) => {
                panic!("{}: no line from the server within {TIMEOUT:?}", self.name)
            }
        }
    }

    /// The next line, parsed.
    fn recv(&mut self) -> Value {
        let line = self.recv_line();
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line:?}", self.name))
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
    }

    /// Sends one line (the newline is added).
    fn send_json(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends a chat line (a message or a command).
    fn say(&mut self, text: &str) {
        self.send_json(&json!({"type": "message", "text": text}).to_string());
    }

    /// Reads the auth request, logs in, and returns the server's answer.
    fn login(&mut self, username: &str, password: &str) -> Value {
        let req = self.recv();
        assert_eq!(
            req["type"], "auth_request",
            "{}: first line: {req}",
            self.name
        );
        self.send_json(&json!({"username": username, "password": password}).to_string());
        self.recv()
    }

    /// The next line must be `auth_fail`; returns its reason.
    fn expect_auth_fail(&mut self) -> String {
        let v = self.recv();
        assert_eq!(v["type"], "auth_fail", "{}: {v}", self.name);
        let reason = v["reason"].as_str().unwrap_or_default().to_string();
        assert!(
            !reason.is_empty(),
            "{}: auth_fail without reason: {v}",
            self.name
        );
        reason
    }

    /// The next line must be a system notice containing `text`.
    fn expect_system_containing(&mut self, text: &str) -> Value {
        let v = self.recv();
        assert_eq!(
            v["type"], "system",
            "{}: expected a system notice containing {text:?}, got {v}",
            self.name
        );
        assert_hhmm(&v["ts"]);
        let got = v["text"].as_str().unwrap_or_default();
        assert!(
            got.contains(text),
            "{}: expected a system notice containing {text:?}, got {v}",
            self.name
        );
        v
    }

    /// The next line must be a system notice that is exactly `text`.
    fn expect_system(&mut self, text: &str) {
        let v = self.expect_system_containing(text);
        assert_eq!(v["text"], text, "{}", self.name);
    }

    /// The next line must be a chat message from `user` saying `text`.
    fn expect_message(&mut self, user: &str, text: &str) {
        let v = self.recv();
        assert_eq!(v["type"], "message", "{}: {v}", self.name);
        assert_hhmm(&v["ts"]);
        assert_eq!(v["user"], user, "{}: {v}", self.name);
        assert_eq!(v["text"], text, "{}: {v}", self.name);
    }

    /// The server must close the connection with nothing more sent.
    fn expect_closed(&mut self) {
        match self.recv_line_within(TIMEOUT) {
            Err(NoLine::Closed) => {}
            Err(NoLine::TimedOut) => panic!(
                "{}: the server did not close the connection within {TIMEOUT:?}",
                self.name
            ),
            Ok(line) => panic!("{}: expected the connection closed, got {line}", self.name),
        }
    }

    /// Reads whatever comes until the server closes; returns it.
    fn drain_until_closed(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_line_within(left) {
                Ok(line) => lines.push(line),
                Err(NoLine::Closed) => return lines,
                Err(NoLine::TimedOut) => panic!(
                    "{}: the server did not close the connection within {timeout:?} \
                     ({} lines read)",
                    self.name,
                    lines.len()
                ),
            }
        }
    }

    /// Nothing may arrive (or the connection close) for `window`.
    fn expect_nothing(&mut self, window: Duration) {
        match self.recv_line_within(window) {
            Err(NoLine::TimedOut) => {}
            Err(NoLine::Closed) => panic!("{}: connection closed unexpectedly", self.name),
            Ok(line) => panic!("{}: expected nothing, got {line}", self.name),
        }
    }

    /// Asks for `/users` and asserts the answer is the very next line, so
    /// nothing else was sent to this peer before it. Returns the user list.
    /// `/users`, answered in order after everything sent before it; the
    /// answer without the `(unencrypted)` markers (every raw peer here is a
    /// plaintext LanTalk 2.0 peer; `users_command_lists_everyone` checks them).
    fn barrier(&mut self) -> String {
        self.say("/users");
        let v = self.expect_system_containing("Online: ");
        v["text"].as_str().unwrap().replace(" (unencrypted)", "")
    }
}

/// `ts` is a string of the form `HH:MM`.
fn assert_hhmm(ts: &Value) {
    let s = ts
        .as_str()
        .unwrap_or_else(|| panic!("ts is not a string: {ts}"));
    assert!(is_hhmm(s), "ts is not HH:MM: {s:?}");
}

fn is_hhmm(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit())
        && s[..2].parse::<u32>().is_ok_and(|h| h < 24)
        && s[3..].parse::<u32>().is_ok_and(|m| m < 60)
}

/// `line` is `[HH:MM] ` followed by `rest`.
fn is_stamped(line: &str, rest: &str) -> bool {
    line.len() > 8
        && line.starts_with('[')
        && is_hhmm(&line[1..6])
        && line[6..].starts_with("] ")
        && &line[8..] == rest
}

// ═════════════════════════════════════════════════════════════════════════════
// Tests
// ═════════════════════════════════════════════════════════════════════════════

fn handshake(bin: &str) {
    let s = ServerProc::start(bin, &["--name", "Conformance Hall"]);
    let mut p = s.connect("p");

    // The server speaks first, in LanTalk 2.0's exact encoding, with one
    // extra field offering encryption (which LanTalk 2.0 clients ignore).
    let line = p.recv_line();
    let req: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(req["type"], "auth_request");
    assert_eq!(req["needs_password"], false);
    assert_hhmm(&req["ts"]);
    let ts = req["ts"].as_str().unwrap();
    assert!(
        line.starts_with(&format!(
            r#"{{"type": "auth_request", "ts": "{ts}", "needs_password": false, "secure": {{"v": 1, "#
        )),
        "{line}"
    );
    // Both suites, the faster on this CPU first.
    let suites = req["secure"]["suites"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(suites.len(), 2, "{line}");
    for suite in [
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise_XX_25519_AESGCM_BLAKE2s",
    ] {
        assert!(
            suites.iter().any(|s| s == suite),
            "{suite} not offered: {line}"
        );
    }

    p.send_json(r#"{"username": "Alice", "password": ""}"#);
    let ok = p.recv();
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    assert_hhmm(&ok["ts"]);
    assert_eq!(ok["username"], "Alice");
    assert_eq!(ok["server_name"], "Conformance Hall");

    // Nothing else is sent to a lone user.
    assert_eq!(p.barrier(), "Online: Alice");

    // The default server name.
    let s2 = ServerProc::start(bin, &[]);
    let mut q = s2.connect("q");
    let ok = q.login("Bob", "");
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    assert_eq!(ok["server_name"], "Server");
}

fn duplicate_name_is_refused_case_insensitively(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut alice = s.join("alice");

    for name in ["alice", "ALICE", "Alice"] {
        let mut dup = s.connect(name);
        let reply = dup.login(name, "");
        assert_eq!(reply["type"], "auth_fail", "{name}: {reply}");
        assert_eq!(reply["reason"], "Username already taken.", "{name}");
        dup.expect_closed();
    }
    // The original is untouched (and heard of no failed attempt).
    assert_eq!(alice.barrier(), "Online: alice");
}

fn invalid_names_are_refused(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let long = "a".repeat(25);
    let cases: Vec<(String, &str)> = vec![
        (
            json!({"username": "", "password": ""}).to_string(),
            "Invalid username",
        ),
        (
            json!({"username": "   ", "password": ""}).to_string(),
            "Invalid username",
        ),
        (
            json!({"username": "two words", "password": ""}).to_string(),
            "Invalid username",
        ),
        (
            json!({"username": long, "password": ""}).to_string(),
            "Invalid username",
        ),
        (
            json!({"username": "ålice", "password": ""}).to_string(),
            "Invalid username",
        ),
        (
            json!({"username": "semi;colon", "password": ""}).to_string(),
            "Invalid username",
        ),
        (json!({"password": ""}).to_string(), "Malformed login"),
        (json!({"username": 5}).to_string(), "Malformed login"),
        ("this is not json".to_string(), "Malformed login"),
        ("[\"alice\"]".to_string(), "Malformed login"),
    ];
    for (line, expected) in cases {
        let mut p = s.connect("bad");
        let req = p.recv();
        assert_eq!(req["type"], "auth_request");
        p.send_json(&line);
        let reason = p.expect_auth_fail();
        assert!(
            reason.contains(expected),
            "login {line}: reason {reason:?} should contain {expected:?}"
        );
        p.expect_closed();
    }
    // The longest allowed name, with every allowed kind of character.
    let name = "Ab-_9".repeat(4) + "xyzw";
    assert_eq!(name.len(), 24);
    s.join(&name);
}

fn password_from_env(bin: &str) {
    let s = ServerProc::start_with(
        bin,
        &["--password-env", "LT_CONFORMANCE_PW"],
        &[("LT_CONFORMANCE_PW", "s3cret pass")],
        Arc::new(TempDir::new("pw")),
    );
    s.wait_output("Password protection: ON");

    let mut wrong = s.connect("wrong");
    let req = wrong.recv();
    assert_eq!(req["type"], "auth_request");
    assert_eq!(req["needs_password"], true);
    wrong.send_json(&json!({"username": "Mallory", "password": "guess"}).to_string());
    assert_eq!(wrong.expect_auth_fail(), "Wrong password.");
    wrong.expect_closed();

    let mut empty = s.connect("empty");
    let reply = empty.login("Mallory", "");
    assert_eq!(reply["type"], "auth_fail", "{reply}");
    assert_eq!(reply["reason"], "Wrong password.");
    empty.expect_closed();

    let mut right = s.connect("right");
    let reply = right.login("Alice", "s3cret pass");
    assert_eq!(reply["type"], "auth_ok", "{reply}");
    assert_eq!(reply["username"], "Alice");
    s.wait_output("Wrong password attempt for 'Mallory'");
}

fn broadcast_reaches_others_without_echo(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["A", "B", "C"]);
    let text = "Hello \"world\" \\ ünïcødé 🎉 <b>&amp;</b>";
    peers[0].say(text);
    for p in &mut peers[1..] {
        p.expect_message("A", text);
    }
    // The sender's next line is the answer to its own command: no echo came.
    peers[0].barrier();

    // Surrounding whitespace is trimmed; blank messages are dropped.
    peers[1].say("   ");
    peers[1].say("  padded  ");
    peers[0].expect_message("B", "padded");
    peers[2].expect_message("B", "padded");
    peers[1].barrier();
}

fn per_sender_order_is_kept(bin: &str) {
    let s = ServerProc::start(bin, &["--rate-limit", "off"]);
    let mut peers = s.room(&["Sender", "Receiver"]);
    // All 50 in one write, so the server gets them in arbitrary chunks.
    let mut burst = String::new();
    for i in 0..50 {
        burst.push_str(&json!({"type": "message", "text": format!("message {i}")}).to_string());
        burst.push('\n');
    }
    peers[0].send_raw(burst.as_bytes());
    for i in 0..50 {
        peers[1].expect_message("Sender", &format!("message {i}"));
    }
    peers[0].barrier();
    peers[1].barrier();
}

fn users_command_lists_everyone(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["Ann", "bob", "Cy-3"]);
    assert_eq!(peers[1].barrier(), "Online: Ann, bob, Cy-3");
    // Commands are case-insensitive; the answer goes to the asker only.
    peers[2].say("/USERS");
    // Members who do not encrypt are marked for everyone to see.
    peers[2].expect_system("Online: Ann (unencrypted), bob (unencrypted), Cy-3 (unencrypted)");
    peers[0].barrier();
    // Unknown commands get a notice and are not relayed.
    peers[0].say("/frobnicate now");
    peers[0].expect_system_containing("Unknown command: /frobnicate");
    peers[1].barrier();
    // /help
    peers[0].say("/help");
    peers[0].expect_system_containing("/pm <user> <message>");
}

fn private_messages(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["A", "B", "C"]);

    peers[0].say("/pm B psst, a secret");
    let v = peers[1].recv();
    assert_eq!(v["type"], "pm", "{v}");
    assert_hhmm(&v["ts"]);
    assert_eq!(v["from_user"], "A");
    assert_eq!(v["text"], "psst, a secret");
    // Nobody else hears it, and the sender gets no echo.
    peers[2].barrier();
    peers[0].barrier();

    // The target is found case-insensitively.
    peers[2].say("/pm a hi there");
    let v = peers[0].recv();
    assert_eq!(
        (&v["type"], &v["from_user"], &v["text"]),
        (&json!("pm"), &json!("C"), &json!("hi there"))
    );

    peers[0].say("/pm nobody are you there");
    peers[0].expect_system("User 'nobody' not found.");
    peers[0].say("/pm B");
    peers[0].expect_system_containing("Usage: /pm <user> <message>");
    peers[1].barrier();
    peers[2].barrier();
}

fn client_quit_and_disconnect_are_announced(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["Stay", "Quitter", "Dropper"]);
    let mut dropper = peers.pop().unwrap();
    let mut quitter = peers.pop().unwrap();
    let mut stay = peers.pop().unwrap();

    quitter.say("/quit");
    quitter.expect_system("Goodbye!");
    quitter.expect_closed();
    stay.expect_system("Quitter left the chat.");
    dropper.expect_system("Quitter left the chat.");

    // A plain TCP close.
    dropper.stream.shutdown(Shutdown::Both).unwrap();
    drop(dropper);
    stay.expect_system("Dropper left the chat.");
    assert_eq!(stay.barrier(), "Online: Stay");

    // The names are free again.
    s.join("quitter");
    stay.expect_system("quitter joined from 127.0.0.1 (unencrypted).");
}

fn operator_messages_reach_everyone(bin: &str) {
    let mut s = ServerProc::start(bin, &["--name", "Hall"]);
    let mut peers = s.room(&["A", "B"]);
    s.console("hello from the operator");
    for p in &mut peers {
        p.expect_message("Hall (server)", "hello from the operator");
    }
    s.console("/users");
    s.wait_reply("Online: A (unencrypted), B (unencrypted)");
}

fn rate_limit_warns_then_kicks(bin: &str) {
    let s = ServerProc::start(bin, &["--rate-limit", "3/10"]);
    let mut peers = s.room(&["Flooder", "Other"]);
    for i in 1..=3 {
        peers[0].say(&format!("message {i}"));
        peers[1].expect_message("Flooder", &format!("message {i}"));
    }
    peers[0].say("message 4");
    peers[0].expect_system_containing("Slow down");
    // The dropped message was not relayed.
    peers[1].barrier();

    // Keep flooding, one line at a time (so nothing is left unread when the
    // server closes), until kicked.
    let mut warnings = 1;
    let mut kicked = false;
    for i in 5..=30 {
        peers[0].say(&format!("message {i}"));
        let v = peers[0].recv();
        assert_eq!(v["type"], "system", "{v}");
        let text = v["text"].as_str().unwrap();
        if text.contains("kicked for flooding") {
            kicked = true;
            break;
        }
        assert!(text.contains("Slow down"), "{v}");
        warnings += 1;
    }
    assert!(kicked, "still not kicked after {warnings} warnings");
    peers[0].expect_closed();
    peers[1].expect_system("Flooder was kicked for flooding.");
    s.wait_output("Flooder hit rate limit");
}

fn malformed_input_is_survived(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["A", "B"]);
    let cases: [(&[u8], &str); 7] = [
        (b"this is not json\n", "malformed JSON"),
        (b"{\"type\": \"message\", \"text\": \n", "malformed JSON"),
        (b"[1, 2, 3]\n", "not a JSON object"),
        (
            b"{\"type\": \"message\", \"text\": 5}\n",
            "text must be a string",
        ),
        (b"\xff\xfe{}\n", "invalid UTF-8"),
        (b"{\"text\": \"no type\"}\n", "missing type"),
        (b"{\"type\": \"message\"}\n", "missing text"),
    ];
    for (line, why) in cases {
        peers[0].send_raw(line);
        peers[0].expect_system(&format!("Ignored a malformed message ({why})."));
    }
    // Well-formed lines of other types are ignored silently.
    peers[0].send_raw(b"{\"type\": \"typing\"}\n{\"type\": \"join\", \"text\": \"x\"}\n");
    peers[0].barrier();
    // The connection still works, both ways.
    peers[0].say("still here");
    peers[1].expect_message("A", "still here");
    peers[1].say("me too");
    peers[0].expect_message("B", "me too");
    peers[1].barrier();
}

fn too_many_malformed_lines_disconnect(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["Garbler", "Other"]);
    let mut closed_after = None;
    for i in 1..=50 {
        peers[0].send_raw(b"garbage\n");
        let v = peers[0].expect_system_containing("");
        let text = v["text"].as_str().unwrap();
        if text.contains("Too many malformed") {
            closed_after = Some(i);
            break;
        }
        assert!(text.contains("Ignored a malformed message"), "{v}");
    }
    assert!(
        closed_after.is_some(),
        "50 malformed lines in a row were tolerated"
    );
    peers[0].expect_closed();
    peers[1].expect_system("Garbler was disconnected for sending malformed data.");
}

fn oversized_line_closes_the_connection(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["Big", "Other"]);

    // A line of exactly the limit is fine.
    let head = r#"{"type": "message", "text": "at the limit""#;
    let line = format!("{head}{}}}", " ".repeat(MAX_LINE - head.len() - 1));
    assert_eq!(line.len(), MAX_LINE);
    peers[0].send_json(&line);
    peers[1].expect_message("Big", "at the limit");

    // One byte more, even without a newline, ends the connection. Exactly
    // that many bytes are sent so that nothing is left unread by the server.
    peers[0].send_raw(&vec![b'x'; MAX_LINE + 1]);
    peers[0].expect_system_containing(&format!("Line longer than {MAX_LINE} bytes"));
    peers[0].expect_closed();
    peers[1].expect_system("Big was disconnected for sending an oversized line.");

    // Before login too.
    let mut early = s.connect("early");
    let req = early.recv();
    assert_eq!(req["type"], "auth_request");
    early.send_raw(&vec![b'{'; MAX_LINE + 1]);
    let reason = early.expect_auth_fail();
    assert!(reason.contains("Line longer than"), "{reason}");
    early.expect_closed();
}

fn auth_timeout(bin: &str) {
    let s = ServerProc::start(bin, &["--auth-timeout", "1"]);
    let mut p = s.connect("slow");
    let req = p.recv();
    assert_eq!(req["type"], "auth_request");
    assert_eq!(p.expect_auth_fail(), "Login timed out.");
    p.expect_closed();

    // A partial line does not count as logging in either.
    let mut q = s.connect("partial");
    q.recv();
    q.send_raw(br#"{"username": "Half"#);
    assert_eq!(q.expect_auth_fail(), "Login timed out.");
    q.expect_closed();
}

/// The idle timeout, shorter than the login deadline (which is long here, so
/// that idling out only once it has passed fails the test).
fn idle_timeout(bin: &str) {
    idle_timeout_with(bin, "30");
}

/// The same with the login deadline no later than the idle one.
fn idle_timeout_within_auth_timeout(bin: &str) {
    idle_timeout_with(bin, "1");
}

fn idle_timeout_with(bin: &str, auth_timeout: &str) {
    let s = ServerProc::start(
        bin,
        &["--idle-timeout", "1", "--auth-timeout", auth_timeout],
    );
    // B logs in just after A, so A's deadline comes first and B is still
    // there to hear about it.
    let mut peers = s.room(&["A", "B"]);
    peers[0].expect_system("Idle timeout \u{2014} disconnecting.");
    peers[0].expect_closed();
    peers[1].expect_system("A timed out.");
    peers[1].expect_system("Idle timeout \u{2014} disconnecting.");
    peers[1].expect_closed();
    s.wait_output("A timed out");
}

fn two_hundred_clients(bin: &str) {
    const N: usize = 200;
    let s = ServerProc::start(bin, &[]);
    let names: Vec<String> = (0..N).map(|i| format!("P{i:03}")).collect();
    // Open every connection first, then send every login, then read the answers.
    let mut peers: Vec<Peer> = names.iter().map(|n| s.connect(n)).collect();
    for (p, name) in peers.iter_mut().zip(&names) {
        p.send_json(&json!({"username": name, "password": ""}).to_string());
    }
    for (p, name) in peers.iter_mut().zip(&names) {
        let req = p.recv();
        assert_eq!(req["type"], "auth_request", "{name}: {req}");
        let ok = p.recv();
        assert_eq!(ok["type"], "auth_ok", "{name}: {ok}");
        assert_eq!(ok["username"], name.as_str());
    }

    peers[0].say("hello, all 199 of you");
    for (i, p) in peers.iter_mut().enumerate().skip(1) {
        let mut joins = 0;
        loop {
            let v = p.recv();
            if v["type"] == "system" && v["text"].as_str().unwrap().contains(" joined from ") {
                joins += 1;
                continue;
            }
            assert_eq!(v["type"], "message", "P{i:03}: {v}");
            assert_eq!(v["user"], "P000");
            assert_eq!(v["text"], "hello, all 199 of you");
            break;
        }
        assert!(joins < N, "P{i:03} saw {joins} joins");
    }
    // The sender hears joins and then its own /users answer, nothing else.
    peers[0].say("/users");
    loop {
        let v = peers[0].recv();
        assert_eq!(v["type"], "system", "{v}");
        let text = v["text"].as_str().unwrap();
        if text.contains(" joined from ") {
            continue;
        }
        let listed = text.strip_prefix("Online: ").expect(text);
        assert_eq!(listed.split(", ").count(), N, "{text}");
        break;
    }
}

fn stuck_reader_does_not_hold_up_others(bin: &str) {
    const BATCH: usize = 50;
    const TEXT_CHARS: usize = 2000;
    const MAX_BYTES: usize = 64 * 1024 * 1024;
    let s = ServerProc::start(bin, &["--rate-limit", "off"]);
    let mut peers = s.room(&["Stuck", "Reader", "Sender"]);
    let mut sender = peers.pop().unwrap();
    let mut reader = peers.pop().unwrap();
    let mut stuck = peers.pop().unwrap();
    fn text(i: usize) -> String {
        format!("{i:07} {}", "x".repeat(TEXT_CHARS - 8))
    }

    // The reader checks every message, in order, on its own thread and
    // reports how far it got, so the sender never runs far ahead of it.
    let received = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&received);
    // It hands the connection back at the end so that it does not leave early.
    let reading = thread::spawn(move || {
        let mut next = 0usize;
        let mut stuck_left = false;
        loop {
            let v = reader.recv();
            if v["type"] == "system" {
                assert_eq!(v["text"], "Stuck left the chat.", "{v}");
                stuck_left = true;
                continue;
            }
            assert_eq!(v["type"], "message", "{v}");
            assert_eq!(v["user"], "Sender");
            let got = v["text"].as_str().unwrap();
            if got == "END" {
                return (next, stuck_left, reader);
            }
            let expected = text(next);
            assert!(
                got == expected,
                "message {next} out of order or damaged: starts {:?}",
                &got[..got.len().min(20)]
            );
            next += 1;
            progress.store(next, Ordering::Release);
        }
    });

    let mut sent = 0usize;
    let mut bytes = 0usize;
    let stuck_dropped = |s: &ServerProc| {
        s.stdout
            .has_line(|l| l.contains("Stuck was disconnected: not reading"))
    };
    while !stuck_dropped(&s) {
        assert!(
            bytes < MAX_BYTES,
            "the stuck reader was not disconnected after {bytes} bytes"
        );
        let mut batch = String::new();
        for i in sent..sent + BATCH {
            batch.push_str(&json!({"type": "message", "text": text(i)}).to_string());
            batch.push('\n');
        }
        sender.send_raw(batch.as_bytes());
        sent += BATCH;
        bytes += batch.len();
        // Let the reader catch up to within one batch: flow control, so that
        // the healthy reader itself never looks stuck on a busy machine.
        let deadline = Instant::now() + TIMEOUT;
        while received.load(Ordering::Acquire) + BATCH < sent {
            assert!(Instant::now() < deadline, "the reader fell behind");
            thread::sleep(Duration::from_millis(1));
        }
    }
    sender.say("END");
    let (got, stuck_left, mut reader) = reading.join().expect("reader thread");
    assert_eq!(got, sent, "the reader must get every message");
    assert!(stuck_left, "others are told the stuck reader left");
    sender.expect_system("Stuck left the chat.");
    assert_eq!(sender.barrier(), "Online: Reader, Sender");
    reader.barrier();
    s.wait_output("WARNING  Stuck was disconnected: not reading");

    // The stuck peer's connection is gone: whatever it finally reads ends.
    let leftover = stuck.drain_until_closed(Duration::from_secs(30));
    assert!(
        leftover.len() < sent,
        "the stuck reader cannot have got everything"
    );
}

fn console_kick(bin: &str) {
    let mut s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["Victim", "Witness"]);
    s.console("/kick nobody");
    s.wait_reply("User 'nobody' not found.");
    s.console("/kick victim");
    peers[0].expect_system("You have been kicked.");
    peers[0].expect_closed();
    peers[1].expect_system("Victim was kicked by the operator.");
    s.wait_output("Kicked victim");
    assert_eq!(peers[1].barrier(), "Online: Witness");
    // A kick is not a ban.
    s.join("Victim");
    peers[1].expect_system("Victim joined from 127.0.0.1 (unencrypted).");
}

fn console_ban_and_unban(bin: &str) {
    let mut s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["Target", "Bystander"]);
    s.console("/bans");
    s.wait_reply("No banned IPs.");
    s.console("/ban Target");
    peers[0].expect_system("You have been banned.");
    peers[0].expect_closed();
    // The ban is on the address, and everyone here shares 127.0.0.1.
    peers[1].expect_system("Target was banned by the operator.");
    peers[1].expect_system("You have been banned.");
    peers[1].expect_closed();
    s.wait_reply("Banned Target (127.0.0.1)");

    let mut refused = s.connect("refused");
    assert_eq!(
        refused.expect_auth_fail(),
        "You are banned from this server."
    );
    refused.expect_closed();
    s.console("/bans");
    s.wait_reply("Banned IPs: 127.0.0.1");

    s.console("/unban 10.9.8.7");
    s.wait_reply("IP 10.9.8.7 is not in the ban list.");
    s.console("/unban 127.0.0.1");
    s.wait_reply("Unbanned 127.0.0.1");
    let mut back = s.join("Target");
    assert_eq!(back.barrier(), "Online: Target");
    let saved = std::fs::read_to_string(s.dir.path().join("bans.json")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&saved).unwrap(), json!([]));
}

fn bans_survive_a_restart(bin: &str) {
    let mut s = ServerProc::start(bin, &[]);
    let mut victim = s.join("Victim");
    s.console("/ban 127.0.0.1");
    victim.expect_system("You have been banned.");
    victim.expect_closed();
    s.wait_reply("Banned 127.0.0.1");

    let bans_path = s.dir.path().join("bans.json");
    let saved = std::fs::read_to_string(&bans_path).expect("bans.json is written");
    let list: Value = serde_json::from_str(&saved).expect("bans.json is valid JSON");
    assert_eq!(list, json!(["127.0.0.1"]));
    // LanTalk 2.0's layout: a list indented by two spaces.
    assert_eq!(saved, "[\n  \"127.0.0.1\"\n]");

    s.console("/quit");
    assert!(s.wait_exit().success(), "/quit exits 0");

    let mut s2 = s.restart(bin, &[]);
    s2.wait_output("Loaded 1 persistent ban(s)");
    let mut refused = s2.connect("refused");
    assert_eq!(
        refused.expect_auth_fail(),
        "You are banned from this server."
    );
    refused.expect_closed();
    s2.console("/bans");
    s2.wait_reply("Banned IPs: 127.0.0.1");
}

fn corrupt_bans_file_stops_the_server(bin: &str) {
    let dir = TempDir::new("corrupt");
    std::fs::write(dir.path().join("bans.json"), b"[\"10.0.0.1\", oops").unwrap();
    let (mut child, stdout, stderr) = spawn_server(bin, &[], &[], dir.path());
    let status = wait_exit(&mut child, "a server with a corrupt bans.json");
    stdout.wait_eof();
    stderr.wait_eof();
    assert!(!status.success(), "must exit non-zero, got {status}");
    let err = stderr.text();
    assert!(
        err.contains("bans.json"),
        "stderr must name the file: {err}"
    );
    assert!(
        !stdout.has_line(|l| l.starts_with("Listening on")),
        "must not listen: {}",
        stdout.text()
    );
    // The file is left alone for the operator to fix.
    assert_eq!(
        std::fs::read(dir.path().join("bans.json")).unwrap(),
        b"[\"10.0.0.1\", oops"
    );
}

/// Three logged-in users and one connection still logging in; `stop` stops
/// the server. Everyone is disconnected and the exit is clean. With `strict`,
/// every logged-in user must first be told; otherwise the notice is optional
/// (but nothing else may arrive).
fn shutdown_with(bin: &str, strict: bool, stop: impl FnOnce(&mut ServerProc)) {
    let mut s = ServerProc::start(bin, &[]);
    let mut peers = s.room(&["A", "B", "C"]);
    let mut pending = s.connect("pending");
    assert_eq!(pending.recv()["type"], "auth_request");
    stop(&mut s);
    for p in &mut peers {
        if strict {
            p.expect_system("Server is shutting down.");
            p.expect_closed();
        } else {
            for line in p.drain_until_closed(TIMEOUT) {
                let v: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(v["type"], "system", "{}: {line}", p.name);
                assert_eq!(v["text"], "Server is shutting down.", "{}", p.name);
            }
        }
    }
    pending.expect_closed();
    let status = s.wait_exit();
    assert!(status.success(), "the server must exit 0, got {status}");
    s.stdout.wait_eof();
    assert!(
        s.stdout.has_line(|l| l.contains("Server shutting down.")),
        "{}",
        s.stdout.text()
    );
}

fn quit_on_console(s: &mut ServerProc) {
    s.console("/quit");
}

#[cfg(unix)]
fn send_sigterm(s: &mut ServerProc) {
    // The users are logged in before the signal, so the handler is in place.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(s.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn console_quit_shuts_down(bin: &str) {
    shutdown_with(bin, false, quit_on_console);
}

fn console_quit_tells_everyone(bin: &str) {
    shutdown_with(bin, true, quit_on_console);
}

#[cfg(unix)]
fn sigterm_shuts_down(bin: &str) {
    shutdown_with(bin, false, send_sigterm);
}

#[cfg(unix)]
fn sigterm_tells_everyone(bin: &str) {
    shutdown_with(bin, true, send_sigterm);
}

fn server_stdin_eof_keeps_serving(bin: &str) {
    let mut s = ServerProc::start(bin, &[]);
    let mut a = s.join("A");
    s.close_stdin();
    // Give a server that wrongly stops at end of input the chance to do so.
    a.expect_nothing(Duration::from_millis(300));
    let mut b = s.join("B");
    a.expect_system("B joined from 127.0.0.1 (unencrypted).");
    b.say("still serving");
    a.expect_message("B", "still serving");
    assert!(s.is_running(), "the server must keep running");
}

fn client_piped_session(bin: &str) {
    let s = ServerProc::start(bin, &["--name", "Hall"]);
    let mut peer = s.join("Peer");
    let addr = format!("127.0.0.1:{}", s.port);
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Pipe"], &[]);
    c.type_lines("hello\n/users\n");

    peer.expect_system("Pipe joined from 127.0.0.1.");
    peer.expect_message("Pipe", "hello");
    c.stdout.wait_for("saying it connected", |l| {
        l.starts_with("Connected as Pipe to Hall.")
    });
    c.stdout.wait_for("with the user list", |l| {
        is_stamped(l, "*** Online: Peer (unencrypted), Pipe ***")
    });

    peer.say("hi pipe, from a raw peer");
    c.stdout.wait_for("with the peer's message", |l| {
        is_stamped(l, "Peer: hi pipe, from a raw peer")
    });
    peer.say("/pm Pipe just for you");
    c.stdout.wait_for("with the private message", |l| {
        is_stamped(l, "PM from Peer: just for you")
    });

    c.close_stdin();
    let status = c.finish();
    assert!(
        status.success(),
        "end of input exits 0, got {status}; stderr: {}",
        c.stderr.text()
    );
    peer.expect_system("Pipe left the chat.");
    c.assert_no_ansi();
}

/// A client of ours whose user only reads is not an idle connection: the
/// server tells it how often to speak at login and it sends keepalives. A
/// peer that says nothing (dead, or LanTalk 2.0 keeping silent) is still
/// cleared.
fn silent_client_of_ours_stays_dead_one_is_cleared(bin: &str) {
    let s = ServerProc::start(bin, &["--idle-timeout", "1"]);
    let addr = format!("127.0.0.1:{}", s.port);
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Reader"], &[]);
    c.stdout.wait_for("saying it connected", |l| {
        l.starts_with("Connected as Reader")
    });
    let mut silent = s.join("Silent");
    silent.expect_system("Idle timeout \u{2014} disconnecting.");
    silent.expect_closed();
    s.wait_output("Silent timed out");
    // Three times the timeout, reading only.
    thread::sleep(Duration::from_millis(3500));
    let mut late = s.join("Late");
    c.type_lines("still here\n");
    late.expect_message("Reader", "still here");
    assert!(
        !c.stdout.text().contains("Idle timeout"),
        "{}",
        c.stdout.text()
    );
    c.close_stdin();
    assert!(c.finish().success(), "{}", c.stderr.text());
}

/// `/pm` to nobody: only the server's answer is shown, never "PM to ...".
fn pm_to_nobody_is_not_shown_as_sent(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peer = s.join("Peer");
    let addr = format!("127.0.0.1:{}", s.port);
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Pipe"], &[]);
    c.type_lines("/pm Nobody hi\n/pm peer hello you\n");
    c.stdout.wait_for("the server's answer", |l| {
        l.contains("User 'Nobody' not found.")
    });
    peer.expect_system("Pipe joined from 127.0.0.1.");
    let pm = peer.recv();
    assert_eq!(
        (&pm["type"], &pm["text"]),
        (&json!("pm"), &json!("hello you"))
    );
    c.stdout.wait_for("the delivered PM", |l| {
        is_stamped(l, "PM to Peer: hello you")
    });
    c.close_stdin();
    assert!(c.finish().success(), "{}", c.stderr.text());
    assert!(
        !c.stdout.text().contains("PM to Nobody"),
        "{}",
        c.stdout.text()
    );
}

/// IRC's convention: `//usr/bin/env` says `/usr/bin/env`.
fn double_slash_sends_a_line_starting_with_a_slash(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peer = s.join("Peer");
    let addr = format!("127.0.0.1:{}", s.port);
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Pipe"], &[]);
    c.type_lines("//usr/bin/env python3\n");
    peer.expect_system("Pipe joined from 127.0.0.1.");
    peer.expect_message("Pipe", "/usr/bin/env python3");
    c.close_stdin();
    assert!(c.finish().success(), "{}", c.stderr.text());
}

fn client_exits_zero_at_end_of_input(bin: &str) {
    let s = ServerProc::start(bin, &[]);
    let mut peer = s.join("Peer");
    let addr = format!("127.0.0.1:{}", s.port);
    // Like `printf 'hello\n/users\n' | client`: all input, then its end, at once.
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Pipe"], &[]);
    c.type_lines("hello\n/users\n");
    c.close_stdin();
    let status = c.finish();
    assert!(
        status.success(),
        "exit 0 at end of input, got {status}; stderr: {}",
        c.stderr.text()
    );
    peer.expect_system("Pipe joined from 127.0.0.1.");
    peer.expect_message("Pipe", "hello");
    peer.expect_system("Pipe left the chat.");
    // Lines typed before the login completed were all sent, and the answer
    // to the last one still shown.
    assert!(
        c.stdout
            .has_line(|l| is_stamped(l, "*** Online: Peer (unencrypted), Pipe ***")),
        "stdout:\n{}",
        c.stdout.text()
    );
    c.assert_no_ansi();
}

fn client_refused_exits_non_zero(bin: &str) {
    let s = ServerProc::start_with(
        bin,
        &["--password-env", "LT_SERVER_PW"],
        &[("LT_SERVER_PW", "right")],
        Arc::new(TempDir::new("client-pw")),
    );
    let addr = format!("127.0.0.1:{}", s.port);

    let mut wrong = ClientProc::spawn(
        bin,
        &[&addr, "--name", "Pipe", "--password-env", "LT_CLIENT_PW"],
        &[("LT_CLIENT_PW", "wrong")],
    );
    // Input stays open: a refusal, not the end of input, must end the client.
    let status = wrong.wait();
    assert!(!status.success(), "a refused client exits non-zero");
    let err = wrong.stderr.text();
    assert!(err.contains("Wrong password."), "stderr: {err}");
    wrong.assert_no_ansi();

    let mut none = ClientProc::spawn(bin, &[&addr, "--name", "Pipe"], &[]);
    let status = none.wait();
    assert!(
        !status.success(),
        "a client without a password exits non-zero"
    );
    let err = none.stderr.text();
    assert!(err.contains("needs a password"), "stderr: {err}");
    assert!(err.contains("--password-env"), "stderr: {err}");
    none.assert_no_ansi();

    let mut right = ClientProc::spawn(
        bin,
        &[&addr, "--name", "Pipe", "--password-env", "LT_CLIENT_PW"],
        &[("LT_CLIENT_PW", "right")],
    );
    right.stdout.wait_for("saying it connected", |l| {
        l.starts_with("Connected as Pipe")
    });
    let status = right.finish();
    assert!(
        status.success(),
        "the right password joins, got {status}; stderr: {}",
        right.stderr.text()
    );

    // A taken name is a refusal too.
    let mut taken = s.connect("x");
    assert_eq!(taken.login("Taken", "right")["type"], "auth_ok");
    let mut dup = ClientProc::spawn(
        bin,
        &[&addr, "--name", "taken", "--password-env", "LT_CLIENT_PW"],
        &[("LT_CLIENT_PW", "right")],
    );
    let status = dup.wait();
    assert!(!status.success());
    assert!(dup.stderr.text().contains("Username already taken."));
}

fn client_without_server_exits_non_zero(bin: &str) {
    // A port that was free a moment ago: nobody listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Pipe"], &[]);
    let status = c.wait();
    assert!(!status.success(), "no server: exit non-zero");
    let err = c.stderr.text();
    assert!(
        err.contains(&format!("cannot connect to {addr}")),
        "stderr: {err}"
    );
    assert!(err.contains("refused"), "stderr: {err}");
    c.assert_no_ansi();

    // An invalid name is refused before connecting at all.
    let mut bad = ClientProc::spawn(bin, &[&addr, "--name", "no spaces"], &[]);
    let status = bad.wait();
    assert!(!status.success());
    assert!(
        bad.stderr.text().contains("Invalid username"),
        "{}",
        bad.stderr.text()
    );
}

fn help_mentions_flags(bin: &str) {
    let help = |sub: &str| {
        let out = Command::new(bin)
            .args([sub, "--help"])
            .stdin(Stdio::null())
            .output()
            .expect("run --help");
        assert!(out.status.success(), "{sub} --help exits 0");
        let text = String::from_utf8(out.stdout).expect("help is UTF-8");
        assert!(!text.contains('\x1b'), "{sub} --help is plain when piped");
        text
    };
    let server = help("server");
    for flag in [
        "--port",
        "--bind",
        "--name",
        "--data-dir",
        "--password-env",
        "--password-file",
        "--rate-limit",
        "--idle-timeout",
        "--auth-timeout",
        "--max-clients",
    ] {
        assert!(
            server.contains(flag),
            "server --help lacks {flag}:\n{server}"
        );
    }
    let client = help("client");
    for flag in ["--name", "--password-env", "--password-file"] {
        assert!(
            client.contains(flag),
            "client --help lacks {flag}:\n{client}"
        );
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// Terminal safety: nothing a peer or a server sends reaches a terminal, a pipe
// or the log as a control character
// ═════════════════════════════════════════════════════════════════════════════

/// Escape sequences and line tricks as a hostile peer or server sends them:
/// clear the screen, set the window title, overwrite the line start, fake a
/// second line, reverse the text, a C1 CSI and DEL.
const HOSTILE: &str = "A\x1b[2JB \x1b]0;PWNED\x07 a\rb x\ny \u{202e}r \u{9b}c \x7f";

/// The first character in `text` that a terminal would act on (line breaks
/// between lines aside), if any.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        c != '\n'
            && matches!(c,
                '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{61c}' | '\u{200e}' | '\u{200f}'
                | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

fn assert_no_raw_control(what: &str, text: &str) {
    if let Some(c) = raw_control(text) {
        panic!(
            "{what} carries a raw control character U+{:04X}:\n{text:?}",
            c as u32
        );
    }
}

/// A "server" that is a raw socket: accepts one connection, asks for a
/// LanTalk 2.0 (plaintext) login, then sends `lines` and closes.
fn hostile_server(lines: Vec<String>) -> (u16, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hostile server");
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept the client");
        stream
            .write_all(
                b"{\"type\": \"auth_request\", \"ts\": \"12:00\", \"needs_password\": false}\n",
            )
            .unwrap();
        // The login line.
        let mut login = Vec::new();
        let mut byte = [0u8; 1];
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        while stream.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            login.push(byte[0]);
        }
        for line in lines {
            stream.write_all(format!("{line}\n").as_bytes()).unwrap();
        }
        // Let the client read everything before the connection closes.
        thread::sleep(Duration::from_millis(300));
        let _ = stream.shutdown(Shutdown::Both);
        String::from_utf8_lossy(&login).into_owned()
    });
    (port, handle)
}

/// A server (LanTalk 2.0, unencrypted, allowed with `--allow-plaintext`) puts
/// escape sequences in every field it sends: the piped client's output shows
/// them as visible characters and carries no raw control.
fn piped_client_shows_a_hostile_servers_controls_visibly(bin: &str) {
    let h = HOSTILE;
    let lines = [
        json!({"type": "auth_ok", "ts": "12:00", "username": "Pipe", "server_name": format!("Evil{h}Hall")}),
        json!({"type": "message", "ts": format!("12:{h}"), "user": format!("Mal{h}"), "text": h}),
        json!({"type": "message", "ts": "12:01", "user": "Mal", "text": format!("/me {h}")}),
        json!({"type": "pm", "ts": h, "from_user": h, "text": h}),
        json!({"type": "system", "ts": h, "text": h}),
        json!({"type": "system", "ts": "", "text": h}),
        json!({"type": "message", "ts": "12:02", "user": "Mal", "text": "the end"}),
    ];
    let (port, server) = hostile_server(lines.iter().map(Value::to_string).collect());
    let addr = format!("127.0.0.1:{port}");
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Pipe", "--allow-plaintext"], &[]);
    c.stdout
        .wait_for("the last message", |l| l.ends_with("Mal: the end"));
    let status = c.wait();
    assert!(!status.success(), "a lost connection exits non-zero");
    assert!(server.join().unwrap().contains("Pipe"));
    let out = c.stdout.text();
    assert_no_raw_control("client stdout", &out);
    assert_no_raw_control("client stderr", &c.stderr.text());
    assert!(out.contains("Connected as Pipe to EvilA␛[2JB"), "{out}");
    for visible in [
        "␛[2J",
        "␛]0;PWNED␇",
        "a␍b",
        "x␊y",
        "<U+202E>r",
        "<U+009B>c",
        "␡",
    ] {
        assert!(out.contains(visible), "stdout lacks {visible:?}:\n{out}");
    }
    // One message, one line: the newline in it did not make a second one.
    assert_eq!(
        out.lines().filter(|l| l.contains("PM from")).count(),
        1,
        "{out}"
    );
}

/// A refusal's reason, from a hostile server, reaches standard error visibly.
fn piped_client_shows_a_hostile_refusal_visibly(bin: &str) {
    let refusal = json!({"type": "auth_fail", "ts": "12:00", "reason": HOSTILE}).to_string();
    let (port, server) = hostile_server(vec![refusal]);
    let addr = format!("127.0.0.1:{port}");
    let mut c = ClientProc::spawn(bin, &[&addr, "--name", "Pipe", "--allow-plaintext"], &[]);
    let status = c.wait();
    server.join().unwrap();
    assert!(!status.success(), "a refusal exits non-zero");
    let err = c.stderr.text();
    assert_no_raw_control("client stderr", &err);
    assert_no_raw_control("client stdout", &c.stdout.text());
    assert!(err.contains("␛]0;PWNED␇ a␍b x␊y"), "{err}");
}

/// A LanTalk 2.0 client (plaintext) sends escape sequences in a chat line to
/// a server that logs chat: the console and lantalk.log show them visibly
/// (or the server refuses the line, which is as safe).
fn server_console_and_log_show_peer_controls_visibly(bin: &str) {
    let s = ServerProc::start(bin, &["--log-level", "debug"]);
    let mut mal = s.join("Mal");
    mal.say(HOSTILE);
    mal.say("/users");
    let mut refused = false;
    loop {
        let v = mal.recv();
        let text = v["text"].as_str().unwrap_or_default();
        if text.starts_with("Online:") {
            break;
        }
        refused |= v["type"] == "system" && text.contains("control");
    }
    if !refused {
        s.wait_output("PWNED");
    }
    let out = s.stdout.text();
    assert_no_raw_control("server stdout", &out);
    assert_no_raw_control("server stderr", &s.stderr.text());
    if !refused {
        assert!(out.contains("␛]0;PWNED␇ a␍b x␊y"), "{out}");
    }
    let log = std::fs::read_to_string(s.dir.path().join("lantalk.log")).expect("lantalk.log");
    assert_no_raw_control("lantalk.log", &log);
    // Every line starts with an ISO 8601 date and time with its offset:
    // [2026-12-04T15:42:17+01:00]
    for line in log.lines() {
        let stamp = line.get(1..26).unwrap_or_default();
        let b = stamp.as_bytes();
        assert!(
            line.starts_with('[')
                && b.len() == 25
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && b[16] == b':'
                && (b[19] == b'+' || b[19] == b'-')
                && b[22] == b':'
                && line.get(26..27) == Some("]"),
            "not an ISO 8601 stamp: {line:?}"
        );
    }
}
