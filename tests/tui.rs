//! Terminal tests for LanTalk: the real `lantalk-smol` and `lantalk-std`
//! binaries run inside tmux, driven with `send-keys` and read back with
//! `capture-pane`, so what is asserted is what a person would see.
//!
//! Every test is written once as a plain function taking the path of a binary
//! and instantiated for both runtimes by [`tui_tests!`], as in the
//! conformance suite.
//!
//! Rules the harness follows:
//! - every test has a tmux server of its own (`tmux -L lantalk-test-PID-N`,
//!   never the user's), killed when the test ends, also on panic;
//! - the program under test runs with a clean environment (`env -i` with only
//!   `PATH`, a fresh `HOME`, `TERM=xterm-256color` and `LANG=C.UTF-8`);
//! - chat servers listen on `127.0.0.1` port 0 with a fresh data directory,
//!   and the "other user" is a raw TCP socket speaking the protocol;
//! - nothing waits with a fixed sleep for what can be observed: the screen is
//!   polled until a condition holds, with generous timeouts; nothing asserts
//!   on timing;
//! - without tmux the tests fail (CI installs it), they do not pass silently.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long anything that should happen may take before the test fails. Long,
/// because the machine may be busy; a passing test never waits this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The size of every test terminal.
const WIDTH: usize = 120;
const HEIGHT: usize = 30;

// ═════════════════════════════════════════════════════════════════════════════
// Instantiation for both runtimes
// ═════════════════════════════════════════════════════════════════════════════

macro_rules! tui_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            tui_tests!(@tests $bin;
                half_typed_line_survives_incoming_message,
                wide_characters_survive_incoming_message,
                tab_completes_commands_and_names,
                tab_completes_a_plugins_command,
                history_and_ctrl_u,
                ctrl_c_leaves_cleanly,
                wrong_password_offers_to_try_again,
                taken_name_offers_another,
                colour_on_a_terminal,
                no_colour_with_no_color,
                menu_joins_as_client,
                menu_starts_a_server,
                menu_hosts_a_private_chat,
                console_keeps_half_typed_command,
                burst_of_messages_stays_on_screen,
                wrapped_half_line_survives_incoming_message,
                #[ignore = "known limitation of reedline (0.52 still): with a half-typed \
                    line of wide characters whose UTF-8 byte length + prompt reaches the \
                    terminal width (though it fits on one row), an incoming message is drawn \
                    one row too high (print_external_message counts bytes, not columns)"]
                long_wide_half_line_survives_incoming_message,
                console_help_stays_on_screen,
                rooms_on_a_terminal,
                hostile_server_text_shows_visibly,
                lost_connection_reconnects_by_itself,
                slow_trust_answer_still_joins,
                pasted_block_is_delivered_whole,
                names_of_those_already_online_complete,
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

tui_tests!(smol, env!("CARGO_BIN_EXE_lantalk-smol"));
tui_tests!(std_rt, env!("CARGO_BIN_EXE_lantalk-std"));

// ═════════════════════════════════════════════════════════════════════════════
// Harness: temporary directories
// ═════════════════════════════════════════════════════════════════════════════

static NEXT: AtomicU64 = AtomicU64::new(0);

#[path = "support/tempdir.rs"]
mod tempdir;

use tempdir::TempDir;

// ═════════════════════════════════════════════════════════════════════════════
// Harness: the terminal (tmux)
// ═════════════════════════════════════════════════════════════════════════════

/// What the terminal shows: the visible rows (trailing blank rows dropped,
/// trailing spaces trimmed by tmux) and where the cursor is.
#[derive(Clone, Debug)]
struct Screen {
    lines: Vec<String>,
    cursor: (usize, usize),
}

impl Screen {
    /// The index of the first row satisfying `pred`.
    fn find(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.lines.iter().position(|l| pred(l))
    }

    /// The index of the row that is exactly `text`.
    fn row(&self, text: &str) -> Option<usize> {
        self.find(|l| l == text)
    }

    fn has(&self, text: &str) -> bool {
        self.lines.iter().any(|l| l.contains(text))
    }

    fn count(&self, text: &str) -> usize {
        self.lines.iter().filter(|l| *l == text).count()
    }

    /// The last non-blank row.
    fn last(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }

    fn dump(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.lines.iter().enumerate() {
            s.push_str(&format!("{i:2}| {l}\n"));
        }
        s.push_str(&format!(
            "cursor at column {}, row {}",
            self.cursor.0, self.cursor.1
        ));
        s
    }
}

/// A tmux server of our own, with one session running one program.
///
/// The program runs under `sh`, which afterwards prints `[exited N]` and then
/// reads one line and echoes it as `[read: LINE]`, so a test can see the exit
/// status and check that the terminal was left usable (canonical mode, echo).
struct Term {
    socket: String,
    /// The socket's file, removed at the end (tmux 3.3 leaves it behind).
    socket_path: Option<PathBuf>,
    _home: TempDir,
}

/// What a client asks on a terminal when it meets a server key for the
/// first time (with encryption).
const TRUST_QUESTION: &str = "Trust this server? [y/N] ";

/// The session's name inside its tmux server.
const SESSION: &str = "lt";

/// What runs in the pane: the program, then the checks described at [`Term`].
const SCRIPT: &str =
    r#""$@"; echo "[exited $?]"; IFS= read -r line; echo "[read: $line]"; exec sleep 3600"#;

fn tmux_command(socket: &str) -> Command {
    let mut cmd = Command::new("tmux");
    cmd.args(["-u", "-L", socket, "-f", "/dev/null"])
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
    cmd
}

/// Fails the test, saying what to do, when tmux is not installed.
fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`tmux -V` failed ({}): these terminal tests need a working tmux. Install it \
             (e.g. `apt-get install tmux`); .ci/run installs it.",
            out.status
        ),
        Err(e) => panic!(
            "tmux is not installed ({e}): these terminal tests drive the programs in tmux. \
             Install it (e.g. `apt-get install tmux`); .ci/run installs it."
        ),
    }
}

impl Term {
    /// Runs `bin args…` in a new 120×30 terminal with a clean environment
    /// plus `envs`.
    fn launch(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Term {
        require_tmux();
        let home = TempDir::new("home");
        let socket = format!(
            "lantalk-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let mut cmd = tmux_command(&socket);
        cmd.args(["new-session", "-d", "-s", SESSION])
            .args(["-x", &WIDTH.to_string(), "-y", &HEIGHT.to_string()])
            .args(["--", "env", "-i"])
            .arg(format!("PATH={path}"))
            .arg(format!("HOME={}", home.path().display()))
            .args(["TERM=xterm-256color", "LANG=C.UTF-8"])
            // Tests never announce or scan on the machine's real interfaces
            // (the menu's server binds 0.0.0.0, and its join flow scans).
            .arg("LANTALK_NO_DISCOVERY=1");
        for (k, v) in envs {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(["sh", "-c", SCRIPT, "sh", bin]).args(args);
        // From here on, Drop kills the tmux server whatever happens.
        let mut term = Term {
            socket,
            socket_path: None,
            _home: home,
        };
        let out = cmd.output().expect("run tmux new-session");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = term.tmux(&["display-message", "-p", "#{socket_path}"]);
        term.socket_path = Some(PathBuf::from(path.trim_end()));
        term
    }

    /// Runs a tmux command against this terminal's server; returns stdout.
    fn tmux(&self, args: &[&str]) -> String {
        let out = tmux_command(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally, as if pasted key by key.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", SESSION, "-l", "--", text]);
    }

    /// Presses one key, in tmux's names: `Enter`, `Tab`, `Up`, `C-u`, `C-c`.
    fn press(&self, key: &str) {
        self.tmux(&["send-keys", "-t", SESSION, key]);
    }

    /// Pastes `text` as a terminal does (in one go, bracketed when the
    /// program asked for it), through a tmux buffer.
    fn paste(&self, text: &str) {
        let file = self._home.path().join("paste.txt");
        std::fs::write(&file, text).expect("write the paste buffer");
        let path = file.to_string_lossy().into_owned();
        self.tmux(&["load-buffer", &path]);
        self.tmux(&["paste-buffer", "-p", "-t", SESSION]);
    }

    /// Types `text`, then Enter.
    fn enter(&self, text: &str) {
        if !text.is_empty() {
            self.type_text(text);
        }
        self.press("Enter");
    }

    fn capture(&self, extra: &[&str]) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", SESSION];
        args.extend_from_slice(extra);
        self.tmux(&args)
    }

    /// What the terminal shows now.
    fn screen(&self) -> Screen {
        let text = self.capture(&[]);
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        let pos = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            SESSION,
            "#{cursor_x} #{cursor_y}",
        ]);
        let mut nums = pos.split_whitespace().map(|n| n.parse::<usize>().unwrap());
        let cursor = (nums.next().unwrap(), nums.next().unwrap());
        Screen { lines, cursor }
    }

    /// What the terminal shows, with its colours and attributes as escape
    /// sequences.
    fn screen_with_escapes(&self) -> String {
        self.capture(&["-e"])
    }

    /// Everything the terminal ever showed: scrollback and screen.
    fn history(&self) -> String {
        self.capture(&["-S", "-"])
    }

    /// Polls the screen until `pred` holds for it; fails after [`TIMEOUT`],
    /// showing the screen.
    fn wait(&self, what: &str, pred: impl Fn(&Screen) -> bool) -> Screen {
        self.wait_inner(what, pred, false)
    }

    /// As [`Term::wait`], while a client connects: should it ask whether to
    /// trust a server key it meets for the first time (with encryption), the
    /// answer is yes.
    fn wait_connecting(&self, what: &str, pred: impl Fn(&Screen) -> bool) -> Screen {
        self.wait_inner(what, pred, true)
    }

    fn wait_inner(&self, what: &str, pred: impl Fn(&Screen) -> bool, trust: bool) -> Screen {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            if trust && screen.last() == TRUST_QUESTION.trim_end() {
                // Once answered, the row reads `… [y/N] y`: asked only once.
                self.enter("y");
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for the terminal to show {what}; it shows:\n{}\n\
                     scrollback and screen:\n{}",
                    screen.dump(),
                    self.history().trim_end()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a row containing `text`; returns the screen.
    fn wait_text(&self, text: &str) -> Screen {
        self.wait(&format!("a row containing {text:?}"), |s| s.has(text))
    }

    /// Waits until the last row is exactly `line` with the cursor at its end
    /// (`line` in ASCII or other one-column characters).
    fn wait_prompt(&self, line: &str) -> Screen {
        self.wait(
            &format!("{line:?} as the last row, with the cursor at its end"),
            |s| {
                s.last() == line.trim_end() && s.cursor == (line.chars().count(), s.lines.len() - 1)
            },
        )
    }

    /// Waits for the client to say it joined [`Server::NAME`] as `name`.
    fn wait_connected(&self, name: &str) -> Screen {
        let text = format!("Connected to {} as {name}.", Server::NAME);
        self.wait_connecting(&format!("a row containing {text:?}"), |s| s.has(&text))
    }

    /// Waits for the program to exit; returns its exit status.
    fn wait_exit(&self) -> i32 {
        let screen = self.wait("the program's exit ([exited N])", |s| s.has("[exited "));
        let row = screen.find(|l| l.contains("[exited ")).unwrap();
        let line = &screen.lines[row];
        let start = line.find("[exited ").unwrap() + "[exited ".len();
        line[start..]
            .trim_end_matches(']')
            .parse()
            .unwrap_or_else(|_| panic!("cannot read the exit status in {line:?}"))
    }

    /// After the program exited: the terminal must be back in its normal
    /// mode, where typed text is echoed and Enter ends a line.
    fn assert_usable(&self) {
        self.enter("ping");
        let screen = self.wait(
            "the shell reading a line after the program ([read: ping])",
            |s| s.has("[read: ping]"),
        );
        let read = screen.row("[read: ping]").unwrap();
        assert!(
            screen.lines[..read].iter().any(|l| l.ends_with("ping")),
            "the typed line was not echoed; the terminal shows:\n{}",
            screen.dump()
        );
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = tmux_command(&self.socket)
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// Harness: a chat server (not on a terminal) and raw protocol peers
// ═════════════════════════════════════════════════════════════════════════════

/// A running `BIN server` on 127.0.0.1 with a port of its own, its console
/// on a pipe (as in the conformance suite).
struct Server {
    child: Child,
    _stdin: Option<ChildStdin>,
    port: u16,
    dir: Arc<TempDir>,
}

impl Server {
    const NAME: &'static str = "Test Hall";

    fn start(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::start_in(bin, args, envs, Arc::new(TempDir::new("server")), 0)
    }

    /// Stops this server and starts another on the same port and data
    /// directory (so with the same key).
    fn restart(mut self, bin: &str) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Server::start_in(bin, &[], &[], Arc::clone(&self.dir), self.port)
    }

    /// Stops the server (as a crash would).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start_in(
        bin: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        dir: Arc<TempDir>,
        port: u16,
    ) -> Server {
        let mut cmd = Command::new(bin);
        // The raw peers do not encrypt; `--allow-plaintext` lets them in.
        cmd.args([
            "server",
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--allow-plaintext",
            // Restarted on its port: the web port is not this test's.
            "--no-web",
        ])
        .args(["--name", Server::NAME, "--data-dir"])
        .arg(dir.path())
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
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        // Read standard output to the end, so the server never blocks on it.
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("Listening on 127.0.0.1:") {
                    let _ = port_tx.send(addr.trim().parse::<u16>().ok());
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let collected = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            collected.lock().unwrap().push_str(&s);
        });
        let port = match port_rx.recv_timeout(TIMEOUT) {
            Ok(Some(got)) if got != 0 && (port == 0 || got == port) => got,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "the server did not report its port ({other:?}); stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Server {
            child,
            _stdin: stdin,
            port,
            dir,
        }
    }

    /// `127.0.0.1:PORT`, for the client's command line.
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Logs a raw peer in as `name`, asserting success.
    fn join(&self, name: &str) -> Peer {
        Peer::join(self.port, name, "")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of ours in piped mode (stdin and stdout, no terminal): the
/// other user where rooms matter, which LanTalk 2.0 peers never see.
struct PipedClient {
    child: Child,
    _stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl PipedClient {
    /// Logs in as `name` and joins `room`.
    fn join(bin: &str, server: &Server, name: &str, room: &str) -> PipedClient {
        let dir = TempDir::new("piped-client");
        let mut child = Command::new(bin)
            .args(["client", &server.addr(), "--name", name, "--accept-new"])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("LANTALK_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: start {bin}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        writeln!(stdin, "/join {room}").unwrap();
        PipedClient {
            child,
            _stdin: stdin,
            lines,
            _dir: dir,
        }
    }

    /// Reads output until a line satisfies `pred`; fails after [`TIMEOUT`].
    fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what} within {TIMEOUT:?}; got: {seen:#?}"),
            }
        }
    }
}

impl Drop for PipedClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw TCP connection speaking the protocol by hand: the "other user".
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

    /// Connects and logs in, asserting success.
    fn join(port: u16, name: &str, password: &str) -> Peer {
        let mut p = Peer::connect(port, name);
        let req = p.recv().expect("the auth request");
        assert_eq!(req["type"], "auth_request", "{name}: first line: {req}");
        p.send_line(&json!({"username": name, "password": password}).to_string());
        let reply = p.recv().expect("the answer to the login");
        assert_eq!(reply["type"], "auth_ok", "{name}: login: {reply}");
        p
    }

    /// The next line, parsed; `None` when the server closed the connection.
    /// Fails after [`TIMEOUT`].
    fn recv(&mut self) -> Option<Value> {
        let deadline = Instant::now() + TIMEOUT;
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line[..pos]).into_owned();
                return Some(
                    serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line:?}", self.name)),
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: nothing from the server within {TIMEOUT:?}",
                self.name
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    fn send_line(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
    }

    /// Sends chat lines (messages or commands), all in one write.
    fn say(&mut self, texts: &[&str]) {
        let mut bytes = String::new();
        for text in texts {
            bytes.push_str(&json!({"type": "message", "text": text}).to_string());
            bytes.push('\n');
        }
        self.stream
            .write_all(bytes.as_bytes())
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
    }

    /// Reads until a line satisfies `pred`; returns every line read, the
    /// matching one last. Fails if the connection closes first.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            match self.recv() {
                Some(v) => {
                    let done = pred(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                None => panic!(
                    "{}: connection closed while waiting for {what}; got: {seen:?}",
                    self.name
                ),
            }
        }
    }

    /// Waits for the next chat message from `user`, which must be `text`.
    fn expect_message(&mut self, user: &str, text: &str) {
        let seen = self.wait_for(&format!("a message from {user}"), |v| {
            v["type"] == "message" && v["user"] == user
        });
        let got = seen.last().unwrap();
        assert_eq!(got["text"], text, "{}: {got}", self.name);
    }

    /// Waits for a system notice containing `text`; returns every line read.
    fn wait_system(&mut self, text: &str) -> Vec<Value> {
        self.wait_for(&format!("a system notice containing {text:?}"), |v| {
            v["type"] == "system" && v["text"].as_str().is_some_and(|t| t.contains(text))
        })
    }

    /// Reads until the server closes the connection; returns what came.
    fn drain_until_closed(&mut self) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Some(v) = self.recv() {
            seen.push(v);
        }
        seen
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// Helpers
// ═════════════════════════════════════════════════════════════════════════════

/// `[HH:MM]`
fn is_hhmm_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[0] == b'['
        && b[3] == b':'
        && b[6] == b']'
        && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit())
}

/// `line` is `[HH:MM] ` followed by exactly `rest`.
fn is_stamped(line: &str, rest: &str) -> bool {
    line.len() > 8
        && line.is_char_boundary(7)
        && is_hhmm_stamp(&line[..7])
        && line[7..].strip_prefix(' ') == Some(rest)
}

/// The row of a chat line `[HH:MM] rest`.
fn stamped_row(screen: &Screen, rest: &str) -> Option<usize> {
    screen.find(|l| is_stamped(l, rest))
}

/// `line` is the notice `[HH:MM] *** NAME joined from 127.0.0.1… ***` (the
/// server may add how the member is connected before the final full stop).
fn is_join_notice(line: &str, name: &str) -> bool {
    line.len() > 8
        && line.is_char_boundary(7)
        && is_hhmm_stamp(&line[..7])
        && line[7..].starts_with(&format!(" *** {name} joined from 127.0.0.1"))
        && line.ends_with(". ***")
}

/// The row of the notice that `name` joined.
fn joined_row(screen: &Screen, name: &str) -> Option<usize> {
    screen.find(|l| is_join_notice(l, name))
}

/// The prompt with a server of ours: the room typed lines go to (the
/// lobby, until the user joins another).
fn chat_prompt(name: &str) -> String {
    format!("[{name} | #lobby] > ")
}

/// Starts `BIN client SERVER --name NAME` in a terminal and waits for the
/// empty chat prompt.
fn join_in_terminal(bin: &str, server: &Server, name: &str, envs: &[(&str, &str)]) -> Term {
    let addr = server.addr();
    let term = Term::launch(bin, &["client", &addr, "--name", name], envs);
    term.wait_connected(name);
    term.wait_prompt(&chat_prompt(name));
    term
}

/// Has `peer` join and waits until the terminal shows it.
fn join_and_show(server: &Server, term: &Term, name: &str) -> Peer {
    let peer = server.join(name);
    term.wait(&format!("{name} joined"), |s| joined_row(s, name).is_some());
    peer
}

/// The rows of a `capture-pane -e` capture as plain text, each with whether
/// any of its visible characters is drawn in a colour or with an attribute
/// (bold, dim…). tmux emits a sequence only where the style changes, so the
/// style carries over from row to row.
fn styled_rows(raw: &str) -> Vec<(String, bool)> {
    let mut style = Sgr::default();
    let mut rows = Vec::new();
    for line in raw.lines() {
        let mut text = String::new();
        let mut styled = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c != '\x1b' {
                styled |= !c.is_whitespace() && style.is_styled();
                text.push(c);
                continue;
            }
            if chars.next() != Some('[') {
                continue;
            }
            let mut params = String::new();
            for c in chars.by_ref() {
                if ('\x40'..='\x7e').contains(&c) {
                    if c == 'm' {
                        style.apply(&params);
                    }
                    break;
                }
                params.push(c);
            }
        }
        rows.push((text, styled));
    }
    rows
}

/// The graphic rendition in force: whether the foreground or background is
/// not the default, and which attributes (bit n for SGR n, 1..=9) are on.
#[derive(Default)]
struct Sgr {
    fg: bool,
    bg: bool,
    attrs: u32,
}

impl Sgr {
    fn is_styled(&self) -> bool {
        self.fg || self.bg || self.attrs != 0
    }

    fn apply(&mut self, params: &str) {
        let codes: Vec<u32> = if params.is_empty() {
            vec![0]
        } else {
            params
                .split([';', ':'])
                .map(|p| p.parse().unwrap_or(0))
                .collect()
        };
        let mut i = 0;
        while i < codes.len() {
            match codes[i] {
                0 => *self = Sgr::default(),
                n @ 1..=9 => self.attrs |= 1 << n,
                21 | 22 => self.attrs &= !(1 << 1 | 1 << 2),
                n @ 23..=29 => self.attrs &= !(1 << (n - 20)),
                30..=37 | 90..=97 => self.fg = true,
                39 => self.fg = false,
                40..=47 | 100..=107 => self.bg = true,
                49 => self.bg = false,
                n @ (38 | 48) => {
                    if n == 38 {
                        self.fg = true;
                    } else {
                        self.bg = true;
                    }
                    // 38;5;N or 38;2;R;G;B
                    i += if codes.get(i + 1) == Some(&5) { 2 } else { 4 };
                }
                _ => {}
            }
            i += 1;
        }
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// Tests: the chat client on a terminal
// ═════════════════════════════════════════════════════════════════════════════

/// The issue's scenario: half a line typed, a message comes in; it shows
/// above, the half line stays on the prompt; finishing it sends it.
fn half_typed_line_survives_incoming_message(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let prompt = chat_prompt("Alice");

    term.type_text("hello wor");
    term.wait_prompt(&format!("{prompt}hello wor"));

    let mut bob = join_and_show(&server, &term, "Bob");
    bob.say(&["anyone here?"]);
    // Both drawn: a capture may fall between the message and the prompt's
    // redraw below it.
    let screen = term.wait("Bob's message above the half-typed line", |s| {
        stamped_row(s, "Bob: anyone here?").is_some() && s.last().starts_with(&prompt)
    });
    let connected = screen
        .find(|l| l.starts_with(&format!("Connected to {} as Alice.", Server::NAME)))
        .unwrap_or_else(|| panic!("the welcome line scrolled away:\n{}", screen.dump()));
    let joined = joined_row(&screen, "Bob")
        .unwrap_or_else(|| panic!("the join notice vanished:\n{}", screen.dump()));
    let message = stamped_row(&screen, "Bob: anyone here?").unwrap();
    let last = screen.lines.len() - 1;
    assert!(
        connected < joined && joined < message && message < last,
        "expected the welcome, the join notice, the message and the prompt in this order:\n{}",
        screen.dump()
    );
    // The half-typed line is intact, on the prompt, with the cursor after it.
    let screen = term.wait_prompt(&format!("{prompt}hello wor"));
    assert_eq!(
        screen.count(&format!("{prompt}hello wor")),
        1,
        "the half-typed line is shown more than once:\n{}",
        screen.dump()
    );

    term.enter("ld");
    bob.expect_message("Alice", "hello world");
    let screen = term.wait_prompt(&prompt);
    let sent = screen
        .row(&format!("{prompt}hello world"))
        .unwrap_or_else(|| panic!("the sent line is not kept on screen:\n{}", screen.dump()));
    assert!(sent > message, "{}", screen.dump());
}

/// Accents, CJK and emoji typed on the prompt survive an incoming message
/// and arrive byte for byte.
fn wide_characters_survive_incoming_message(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let prompt = chat_prompt("Alice");
    let text = "héllo 你好 🎉 ok";

    term.type_text(text);
    term.wait(&format!("{text:?} on the prompt"), |s| {
        s.last() == format!("{prompt}{text}")
    });
    let mut bob = join_and_show(&server, &term, "Bob");
    bob.say(&["ping"]);
    let screen = term.wait("Bob's message", |s| stamped_row(s, "Bob: ping").is_some());
    let message = stamped_row(&screen, "Bob: ping").unwrap();
    let screen = term.wait(&format!("{text:?} still on the prompt"), |s| {
        s.last() == format!("{prompt}{text}")
    });
    assert!(message < screen.lines.len() - 1, "{}", screen.dump());
    assert_eq!(
        screen.count(&format!("{prompt}{text}")),
        1,
        "{}",
        screen.dump()
    );
    assert_eq!(
        screen.cursor.1,
        screen.lines.len() - 1,
        "the cursor left the prompt row:\n{}",
        screen.dump()
    );

    term.press("Enter");
    bob.expect_message("Alice", text);
}

/// Tab completes a command, then a user name; both complete commands work.
fn tab_completes_commands_and_names(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Bob", &[]);
    let prompt = chat_prompt("Bob");
    let mut alice = join_and_show(&server, &term, "Alice");

    term.type_text("/us");
    term.wait_prompt(&format!("{prompt}/us"));
    term.press("Tab");
    // Completed, with a space after it, and the cursor after the space.
    term.wait_prompt(&format!("{prompt}/users "));
    term.press("Enter");
    let screen = term.wait("the list of users", |s| {
        s.find(|l| l.contains("*** Online: ")).is_some()
    });
    let online = &screen.lines[screen.find(|l| l.contains("*** Online: ")).unwrap()];
    assert!(
        online.contains("Alice") && online.contains("Bob"),
        "{online:?}"
    );
    term.wait_prompt(&prompt);

    term.type_text("/pm Al");
    term.wait_prompt(&format!("{prompt}/pm Al"));
    term.press("Tab");
    term.wait_prompt(&format!("{prompt}/pm Alice "));
    term.enter("psst");
    let seen = alice.wait_for("a private message", |v| v["type"] == "pm");
    let pm = seen.last().unwrap();
    assert_eq!(pm["from_user"], "Bob", "{pm}");
    assert_eq!(pm["text"], "psst", "{pm}");
    term.wait("the PM echoed to its sender", |s| {
        stamped_row(s, "PM to Alice: psst").is_some()
    });
}

/// A plugin's command completes like a built-in one (the server tells
/// clients of ours the plugins' commands).
fn tab_completes_a_plugins_command(bin: &str) {
    let dice = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/examples/dice.py")
        .display()
        .to_string();
    let server = Server::start(bin, &["--plugin", &format!("python3 {dice}")], &[]);
    // Wait until the plugin has registered /roll: the server's /help (as
    // LanTalk 2.0 clients get it) lists it then.
    let mut alice = server.join("Alice");
    let mut registered = false;
    for _ in 0..200 {
        alice.send_line(&json!({"type": "message", "text": "/help"}).to_string());
        let help = alice.wait_for("the help", |v| {
            v["type"] == "system"
                && v["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Commands:"))
        });
        if help
            .last()
            .is_some_and(|v| v["text"].as_str().is_some_and(|t| t.contains("/roll")))
        {
            registered = true;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(registered, "the dice plugin never registered /roll");
    let term = join_in_terminal(bin, &server, "Bob", &[]);
    let prompt = chat_prompt("Bob");
    // (`/ro` would offer /roll and /rooms.)
    term.type_text("/rol");
    term.wait_prompt(&format!("{prompt}/rol"));
    term.press("Tab");
    term.wait_prompt(&format!("{prompt}/roll "));
    term.enter("2d6");
    term.wait("dice's answer", |s| {
        s.find(|l| l.contains("dice [bot]: Bob rolled 2d6: "))
            .is_some()
    });
}

/// Arrow-up recalls earlier lines; Ctrl-U clears the line.
fn history_and_ctrl_u(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let prompt = chat_prompt("Alice");
    let mut bob = join_and_show(&server, &term, "Bob");

    term.enter("first message");
    bob.expect_message("Alice", "first message");
    term.wait_prompt(&prompt);

    term.type_text("garbage");
    term.wait_prompt(&format!("{prompt}garbage"));
    term.press("C-u");
    term.wait_prompt(&prompt);
    term.enter("clean");
    bob.expect_message("Alice", "clean");
    term.wait_prompt(&prompt);

    term.press("Up");
    term.wait_prompt(&format!("{prompt}clean"));
    term.press("Up");
    term.wait_prompt(&format!("{prompt}first message"));
    term.press("Enter");
    bob.expect_message("Alice", "first message");
}

/// Ctrl-C leaves: the half-typed line is not sent, the others see the user
/// leave, the exit status is 0 and the terminal is usable afterwards.
fn ctrl_c_leaves_cleanly(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let mut bob = join_and_show(&server, &term, "Bob");

    term.type_text("never sent");
    term.wait_prompt(&format!("{}never sent", chat_prompt("Alice")));
    term.press("C-c");
    assert_eq!(term.wait_exit(), 0, "{}", term.screen().dump());
    let seen = bob.wait_system("Alice left");
    assert!(
        !seen.iter().any(|v| v["type"] == "message"),
        "the half-typed line was sent: {seen:?}"
    );
    term.assert_usable();
}

/// A wrong password on a terminal: the client says so and asks again; the
/// right one gets in. Passwords are never echoed.
fn wrong_password_offers_to_try_again(bin: &str) {
    let server = Server::start(
        bin,
        &["--password-env", "LANTALK_TUI_PW"],
        &[("LANTALK_TUI_PW", "right-pw")],
    );
    let term = Term::launch(bin, &["client", &server.addr(), "--name", "Zed"], &[]);
    term.wait_connecting("the password prompt", |s| {
        s.last() == "Password:" && s.cursor == ("Password: ".len(), s.lines.len() - 1)
    });
    term.enter("wrong-pw");
    term.wait_text("Could not join: Wrong password.");
    term.wait_prompt("Password (leave blank to give up): ");
    term.enter("right-pw");
    term.wait_connected("Zed");
    let screen = term.wait_prompt(&chat_prompt("Zed"));
    assert!(
        !screen.has("wrong-pw") && !screen.has("right-pw"),
        "a password was echoed:\n{}",
        screen.dump()
    );

    let mut bob = Peer::join(server.port, "Bob", "right-pw");
    term.wait("Bob's join notice", |s| joined_row(s, "Bob").is_some());
    term.enter("in at last");
    bob.expect_message("Zed", "in at last");
}

/// A taken name on a terminal: the client says so and asks for another.
fn taken_name_offers_another(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let mut alice = server.join("Alice");
    // Names are unique regardless of case.
    let term = Term::launch(bin, &["client", &server.addr(), "--name", "alice"], &[]);
    term.wait_connecting("the refusal", |s| {
        s.has("Could not join: Username already taken.")
    });
    term.wait_prompt("Pick another name: ");
    term.enter("Alice2");
    term.wait_connected("Alice2");
    term.wait_prompt(&chat_prompt("Alice2"));
    alice.wait_system("Alice2 joined from 127.0.0.1");
    term.enter("hi, I am the other one");
    alice.expect_message("Alice2", "hi, I am the other one");
}

/// On a terminal, chat is coloured.
fn colour_on_a_terminal(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let mut bob = join_and_show(&server, &term, "Bob");
    bob.say(&["in colour?"]);
    term.wait("Bob's message", |s| {
        stamped_row(s, "Bob: in colour?").is_some()
    });

    let raw = term.screen_with_escapes();
    let rows = styled_rows(&raw);
    let styled = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let (text, styled) = rows
            .iter()
            .find(|(text, _)| pred(text))
            .unwrap_or_else(|| panic!("no row with {what} in:\n{raw:?}"));
        assert!(styled, "{what} is not coloured: {text:?} in\n{raw:?}");
    };
    styled("the welcome line", &|l| l.starts_with("Connected to "));
    styled("the join notice", &|l| is_join_notice(l, "Bob"));
    styled("the message", &|l| is_stamped(l, "Bob: in colour?"));
    styled("the prompt", &|l| {
        l.starts_with(&chat_prompt("Alice").trim_end().to_string())
    });
}

/// With `NO_COLOR` set, nothing on the terminal is coloured.
fn no_colour_with_no_color(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[("NO_COLOR", "1")]);
    let mut bob = join_and_show(&server, &term, "Bob");
    bob.say(&["in colour?"]);
    term.wait("Bob's message", |s| {
        stamped_row(s, "Bob: in colour?").is_some()
    });
    term.type_text("/pm Bob psst");
    term.wait_prompt(&format!("{}/pm Bob psst", chat_prompt("Alice")));

    let raw = term.screen_with_escapes();
    assert!(
        styled_rows(&raw).iter().all(|(_, styled)| !styled) && !raw.contains('\x1b'),
        "the terminal shows colours or attributes with NO_COLOR set:\n{raw:?}"
    );
}

// ═════════════════════════════════════════════════════════════════════════════
// Tests: the menu
// ═════════════════════════════════════════════════════════════════════════════

const MENU_PROMPT: &str = "Choose (1, 2 or 3): ";

/// Waits for the banner and the menu of a bare start.
fn wait_menu(term: &Term) {
    let screen = term.wait_prompt(MENU_PROMPT);
    for text in [
        "LAN chat — instant, private, no internet needed.",
        "[1]  Start a Server",
        "[2]  Join as Client",
        "[3]  Host a private chat (you approve who joins)",
    ] {
        assert!(screen.has(text), "{text:?} missing:\n{}", screen.dump());
    }
}

/// Bare start, `2`: asks for the server and a name, then chats.
fn menu_joins_as_client(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = Term::launch(bin, &[], &[]);
    wait_menu(&term);
    term.enter("4");
    term.wait_text("Please enter 1, 2 or 3.");
    term.wait_prompt(MENU_PROMPT);
    term.enter("2");
    term.wait_prompt("Server address (host or host:port): ");
    term.enter(&server.addr());
    term.wait_prompt("Display name: ");
    term.enter("Mia");
    term.wait_connected("Mia");
    term.wait_prompt(&chat_prompt("Mia"));

    let mut bob = join_and_show(&server, &term, "Bob");
    term.enter("hello from the menu");
    bob.expect_message("Mia", "hello from the menu");
    term.enter("/quit");
    assert_eq!(term.wait_exit(), 0, "{}", term.screen().dump());
    bob.wait_system("Mia left");
    term.assert_usable();
}

/// Bare start, `1`: asks for a port, a name and a password, then serves
/// with a console.
fn menu_starts_a_server(bin: &str) {
    let term = Term::launch(bin, &[], &[]);
    wait_menu(&term);
    term.enter("1");
    term.wait_prompt("Port (default 5050): ");
    term.enter("0");
    term.wait_prompt("Server display name (default Server): ");
    term.enter("Menu Hall");
    term.wait_prompt("Set password (leave blank for none): ");
    term.press("Enter");
    let screen = term.wait_prompt("[Menu Hall | console] > ");
    let port = listening_port(&screen);
    assert!(screen.has("Password protection: OFF"), "{}", screen.dump());

    // The server answers on the port it printed, with the greeting every
    // client gets first. (No one joins: the menu's server takes only
    // encrypting clients once encryption lands, and these peers are raw.)
    let mut probe = Peer::connect(port, "probe");
    let greeting = probe.recv().expect("the server's greeting");
    assert_eq!(greeting["type"], "auth_request", "{greeting}");
    drop(probe);
    term.wait_prompt("[Menu Hall | console] > ");
    term.enter("/users");
    term.wait("the console's answer to /users", |s| {
        s.row("Online: (none)").is_some()
    });
    term.wait_prompt("[Menu Hall | console] > ");
    term.enter("/quit");
    assert_eq!(term.wait_exit(), 0, "{}", term.screen().dump());
    term.assert_usable();
}

/// The port a server started from the menu printed it listens on.
fn listening_port(screen: &Screen) -> u16 {
    let line = &screen.lines[screen
        .find(|l| l.starts_with("Listening on 0.0.0.0:"))
        .unwrap_or_else(|| panic!("no Listening line:\n{}", screen.dump()))];
    line["Listening on 0.0.0.0:".len()..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port in {line:?}"))
}

/// Bare start, `3`: host mode, where each peer waits for the host's "y".
fn menu_hosts_a_private_chat(bin: &str) {
    let term = Term::launch(bin, &[], &[]);
    wait_menu(&term);
    term.enter("3");
    term.wait_prompt("Port (default 5050): ");
    term.enter("0");
    term.wait_prompt("Host display name (default Host): ");
    term.press("Enter");
    term.wait_prompt("Set password (leave blank for none): ");
    term.press("Enter");
    let screen = term.wait_prompt("[Host | host] > ");
    for text in [
        "Approval: you approve each connection",
        "Chats with one peer at a time",
    ] {
        assert!(screen.has(text), "{text:?} missing:\n{}", screen.dump());
    }
    let port = listening_port(&screen);
    // A peer is greeted, then has to wait for the host's answer.
    let mut probe = Peer::connect(port, "probe");
    let greeting = probe.recv().expect("the server's greeting");
    assert_eq!(greeting["type"], "auth_request", "{greeting}");
    drop(probe);
    term.wait_prompt("[Host | host] > ");
    term.enter("/quit");
    assert_eq!(term.wait_exit(), 0, "{}", term.screen().dump());
    term.assert_usable();
}

// ═════════════════════════════════════════════════════════════════════════════
// Tests: the server console on a terminal
// ═════════════════════════════════════════════════════════════════════════════

/// The console's line editor: log lines print above a half-typed command,
/// which stays intact; commands are answered; Tab completes names; Ctrl-C
/// stops the server cleanly.
fn console_keeps_half_typed_command(bin: &str) {
    let dir = TempDir::new("console");
    let data_dir = dir.path().display().to_string();
    let term = Term::launch(
        bin,
        &[
            "server",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--allow-plaintext",
            "--no-web",
            "--name",
            "Hall",
            "--data-dir",
            &data_dir,
        ],
        &[],
    );
    term.wait_prompt("Set password (leave blank for none): ");
    term.press("Enter");
    let prompt = "[Hall | console] > ";
    let screen = term.wait_prompt(prompt);
    let line = &screen.lines[screen
        .find(|l| l.starts_with("Listening on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no Listening line:\n{}", screen.dump()))];
    let port: u16 = line["Listening on 127.0.0.1:".len()..]
        .trim()
        .parse()
        .unwrap();

    term.type_text("/us");
    term.wait_prompt(&format!("{prompt}/us"));
    let mut ivy = Peer::join(port, "Ivy", "");
    let screen = term.wait("the join logged above the prompt", |s| {
        s.has("INFO  Ivy joined from 127.0.0.1")
    });
    let logged = screen
        .find(|l| l.contains("INFO  Ivy joined from 127.0.0.1"))
        .unwrap();
    let screen = term.wait_prompt(&format!("{prompt}/us"));
    assert!(logged < screen.lines.len() - 1, "{}", screen.dump());
    assert!(
        screen.has("INFO  Server started on 127.0.0.1:"),
        "earlier log lines vanished:\n{}",
        screen.dump()
    );
    assert_eq!(
        screen.count(&format!("{prompt}/us")),
        1,
        "{}",
        screen.dump()
    );

    term.enter("ers");
    // `Online: Ivy`, perhaps with a note on how Ivy is connected.
    let answer = |l: &str| l == "Online: Ivy" || l.starts_with("Online: Ivy (");
    let screen = term.wait("the answer to /users", |s| s.find(answer).is_some());
    let asked = screen
        .row(&format!("{prompt}/users"))
        .unwrap_or_else(|| panic!("the command line is not kept:\n{}", screen.dump()));
    assert!(asked < screen.find(answer).unwrap(), "{}", screen.dump());
    term.wait_prompt(prompt);

    // Names of connected users complete, as in the chat.
    term.type_text("/kick Iv");
    term.wait_prompt(&format!("{prompt}/kick Iv"));
    term.press("Tab");
    term.wait_prompt(&format!("{prompt}/kick Ivy "));
    term.press("C-u");
    term.wait_prompt(prompt);

    term.press("C-c");
    assert_eq!(term.wait_exit(), 0, "{}", term.screen().dump());
    let seen = ivy.drain_until_closed();
    assert!(
        seen.iter().any(|v| v["type"] == "system"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.contains("shutting down"))),
        "Ivy was not told of the shutdown: {seen:?}"
    );
    term.assert_usable();
}

// ═════════════════════════════════════════════════════════════════════════════
// Tests: known bugs (ignored until fixed)
// ═════════════════════════════════════════════════════════════════════════════

/// Three messages arriving at once must all be on screen, below what was
/// there before and above the intact half-typed line.
fn burst_of_messages_stays_on_screen(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let prompt = chat_prompt("Alice");
    term.type_text("half");
    term.wait_prompt(&format!("{prompt}half"));
    let mut bob = join_and_show(&server, &term, "Bob");

    bob.say(&["one", "two", "three"]);
    let screen = term.wait("all three of Bob's messages on screen", |s| {
        ["Bob: one", "Bob: two", "Bob: three"]
            .iter()
            .all(|m| stamped_row(s, m).is_some())
    });
    let rows: Vec<usize> = ["Bob: one", "Bob: two", "Bob: three"]
        .iter()
        .map(|m| stamped_row(&screen, m).unwrap())
        .collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{}", screen.dump());
    assert!(
        screen.has(&format!("Connected to {} as Alice.", Server::NAME)),
        "the earlier lines vanished:\n{}",
        screen.dump()
    );
    let screen = term.wait_prompt(&format!("{prompt}half"));
    assert!(rows[2] < screen.lines.len() - 1, "{}", screen.dump());
}

/// A half-typed line long enough to wrap onto a second row: an incoming
/// message must show above it, and the prompt must be drawn once.
fn wrapped_half_line_survives_incoming_message(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let prompt = chat_prompt("Alice");
    // 20 columns of prompt + 105 = 125: two rows of a 120-column terminal.
    let long = "a".repeat(105);
    let first_row = format!("{prompt}{}", &long[..WIDTH - prompt.len()]);
    let second_row = &long[WIDTH - prompt.len()..];
    term.type_text(&long);
    term.wait("the long line on two rows", |s| {
        s.last() == second_row && s.count(&first_row) == 1
    });

    let _bob = server.join("Bob");
    let screen = term.wait("Bob's join notice above the wrapped line", |s| {
        joined_row(s, "Bob").is_some() && s.last() == second_row
    });
    assert_eq!(
        screen.count(&first_row),
        1,
        "the prompt row is drawn more than once:\n{}",
        screen.dump()
    );
    let joined = joined_row(&screen, "Bob").unwrap();
    assert!(
        joined < screen.row(&first_row).unwrap(),
        "{}",
        screen.dump()
    );
}

/// A half-typed line of 40 CJK characters fits on one row (20 + 80
/// columns) but is 120 bytes long: an incoming message must not overwrite
/// the line above the prompt.
fn long_wide_half_line_survives_incoming_message(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    let prompt = chat_prompt("Alice");
    let mut bob = join_and_show(&server, &term, "Bob");
    let wide = "你".repeat(40);
    let line = format!("{prompt}{wide}");
    term.type_text(&wide);
    term.wait("the wide line on the prompt", |s| s.last() == line);

    bob.say(&["ping"]);
    let screen = term.wait("Bob's message and the prompt", |s| {
        stamped_row(s, "Bob: ping").is_some() && s.last() == line
    });
    assert!(
        screen.has(&format!("Connected to {} as Alice.", Server::NAME))
            && joined_row(&screen, "Bob").is_some(),
        "an earlier line was overwritten:\n{}",
        screen.dump()
    );
    assert_eq!(
        screen.count(&line),
        1,
        "the prompt row is drawn more than once:\n{}",
        screen.dump()
    );
}

/// The console's `/help` (one reply of several lines) must be on screen,
/// below the command and above the next prompt.
fn console_help_stays_on_screen(bin: &str) {
    let dir = TempDir::new("console");
    let data_dir = dir.path().display().to_string();
    let args = [
        "server",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--no-web",
        "--name",
        "Hall",
    ];
    let term = Term::launch(bin, &[&args[..], &["--data-dir", &data_dir]].concat(), &[]);
    term.wait_prompt("Set password (leave blank for none): ");
    term.press("Enter");
    let prompt = "[Hall | console] > ";
    term.wait_prompt(prompt);
    term.enter("/help");
    let first = "/users                      list connected users";
    let last = "/quit                       tell everyone and shut down";
    let screen = term.wait("the whole of /help on screen", |s| {
        s.row(first).is_some() && s.row(last).is_some()
    });
    let asked = screen
        .row(&format!("{prompt}/help"))
        .unwrap_or_else(|| panic!("the command line is not kept:\n{}", screen.dump()));
    assert!(
        asked < screen.row(first).unwrap() && screen.row(last).unwrap() < screen.lines.len() - 1,
        "{}",
        screen.dump()
    );
    assert!(
        screen.has("Listening on 127.0.0.1:"),
        "earlier lines vanished:\n{}",
        screen.dump()
    );
    term.wait_prompt(prompt);
}

// ═════════════════════════════════════════════════════════════════════════════
// Tests: terminal safety, lost connections, slow answers
// ═════════════════════════════════════════════════════════════════════════════

/// A LanTalk 2.0 "server" that is a raw socket: asks for a plaintext login,
/// welcomes the client to a server whose name holds an escape sequence, sends
/// `lines`, then holds the connection until the client closes it.
fn hostile_server(lines: Vec<Value>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let request = json!({"type": "auth_request", "ts": "12:00", "needs_password": false});
        let _ = stream.write_all(format!("{request}\n").as_bytes());
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut login = String::new();
        let _ = reader.read_line(&mut login);
        for line in lines {
            let _ = stream.write_all(format!("{line}\n").as_bytes());
        }
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    port
}

/// Rooms on a terminal: the prompt says where typed lines go and what waits
/// unread elsewhere; lines of another room say their room; Alt-1 goes back
/// to the first room; Tab completes room names.
fn rooms_on_a_terminal(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let ann = join_in_terminal(bin, &server, "Ann", &[]);
    let bob = join_in_terminal(bin, &server, "Bob", &[]);
    ann.enter("/join #team");
    ann.wait_prompt("[Ann | #team] > ");
    bob.enter("/join #team");
    bob.wait_prompt("[Bob | #team] > ");
    ann.enter("in the team room");
    bob.wait("Ann's line, with its room", |s| {
        s.find(|l| l.starts_with("#team [") && l.ends_with("] Ann: in the team room"))
            .is_some()
    });
    bob.press("M-1");
    bob.wait_prompt("[Bob | #lobby] > ");
    ann.enter("while you are away");
    bob.wait_prompt("[Bob | #lobby · unread: #team 1] > ");
    bob.type_text("/switch #te");
    bob.press("Tab");
    bob.wait_prompt("[Bob | #lobby · unread: #team 1] > /switch #team ");
    bob.press("Enter");
    bob.wait_prompt("[Bob | #team] > ");
}

/// The issue's attack: a peer (here a hostile server, which no server-side
/// filter stops) sends a screen clear, a window title, a carriage return
/// and a newline. The terminal shows them as visible characters on one row,
/// its title is unchanged, and nothing above was wiped.
fn hostile_server_text_shows_visibly(bin: &str) {
    let text = "A\x1b[2JB \x1b]0;PWNED\x07 a\rb x\ny \u{202e}r";
    let port = hostile_server(vec![
        json!({"type": "auth_ok", "ts": "12:00", "username": "Alice",
               "server_name": "Evil\x1b]0;PWNED\x07Hall"}),
        json!({"type": "message", "ts": "12:01", "user": "Mal", "text": text}),
        json!({"type": "message", "ts": "12:02", "user": "Mal", "text": "after"}),
    ]);
    let addr = format!("127.0.0.1:{port}");
    let term = Term::launch(
        bin,
        &["client", &addr, "--name", "Alice", "--allow-plaintext"],
        &[],
    );
    let screen = term.wait("Mal's last message", |s| {
        stamped_row(s, "Mal: after").is_some()
    });
    let row = stamped_row(&screen, "Mal: A␛[2JB ␛]0;PWNED␇ a␍b x␊y <U+202E>r")
        .unwrap_or_else(|| panic!("no visible row for the message:\n{}", screen.dump()));
    assert_eq!(stamped_row(&screen, "Mal: after"), Some(row + 1));
    assert!(
        screen.has("Connected to Evil␛]0;PWNED␇Hall as Alice."),
        "the server's name, visibly, above (not wiped):\n{}",
        screen.dump()
    );
    let title = term.tmux(&["display-message", "-p", "-t", SESSION, "#{pane_title}"]);
    assert!(!title.contains("PWNED"), "the title was set: {title:?}");
    assert!(
        !term.screen_with_escapes().contains("PWNED\x07"),
        "a raw sequence reached the screen"
    );
}

/// The connection is lost while chatting: the client says so and reconnects
/// by itself with back-off, back into the room the user spoke in; a line
/// half typed then is not lost: it is sent once reconnected.
fn lost_connection_reconnects_by_itself(bin: &str) {
    let mut server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Alice", &[]);
    term.enter("/join #team");
    term.wait_prompt("[Alice | #team] > ");
    term.type_text("hello again");
    term.wait_prompt("[Alice | #team] > hello again");
    server.kill();
    term.wait_text("Reconnecting by itself in 1 s; Ctrl-C stops.");
    term.wait_text("(kept, sent once reconnected) hello again");
    term.wait_text("trying again in");

    let server = server.restart(bin);
    term.wait("Alice connected a second time", |s| {
        s.lines
            .iter()
            .filter(|l| l.contains("Connected to Test Hall as Alice."))
            .count()
            == 2
    });
    // Back in the room she spoke in; the half-typed line was not lost, and
    // was said there (not in the lobby the new session starts in): Bob,
    // joining #team after her, finds it (said live or in the room's
    // history, whichever came first).
    term.wait_prompt("[Alice | #team] > ");
    let bob = PipedClient::join(bin, &server, "Bob", "#team");
    bob.wait_line("Alice's kept line in #team", |l| {
        l.starts_with("#team ") && l.ends_with("Alice: hello again")
    });

    let history = term.history();
    assert_eq!(history.matches("Connection lost:").count(), 1, "{history}");
    assert!(
        !history.contains("Reconnect? [Y/n]"),
        "no question: {history}"
    );
    // Asked when first joining only: the key is pinned since.
    assert_eq!(
        history.matches(TRUST_QUESTION.trim_end()).count(),
        1,
        "{history}"
    );
}

/// The server's login timeout (2 s here) runs out while the person compares
/// the fingerprint: after their `y`, the client reconnects by itself, once,
/// without asking again, and joins.
fn slow_trust_answer_still_joins(bin: &str) {
    let server = Server::start(bin, &["--auth-timeout", "2"], &[]);
    let term = Term::launch(bin, &["client", &server.addr(), "--name", "Alice"], &[]);
    term.wait("the trust question", |s| {
        s.last() == TRUST_QUESTION.trim_end()
    });
    // The point of the test: a person slower than the server's timeout.
    thread::sleep(Duration::from_secs(4));
    term.enter("y");
    let screen = term.wait_text("Connected to Test Hall as Alice.");
    assert!(
        screen.has("reconnecting"),
        "it says it reconnected:\n{}",
        screen.dump()
    );
    term.wait_prompt(&chat_prompt("Alice"));
    let history = term.history();
    assert_eq!(
        history.matches(TRUST_QUESTION.trim_end()).count(),
        1,
        "asked once:\n{history}"
    );
    assert!(!history.contains("timed out"), "{history}");
    let mut bob = server.join("Bob");
    term.enter("made it");
    bob.expect_message("Alice", "made it");
}

/// A pasted block of 25 lines: every line reaches the others, in order,
/// with no warning and no kick (the client paces itself a little below the
/// limit the server announced); lines held back are shown as queued, then as
/// sent.
fn pasted_block_is_delivered_whole(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let term = join_in_terminal(bin, &server, "Paster", &[]);
    let mut watch = join_and_show(&server, &term, "Watch");
    let lines: Vec<String> = (1..=25).map(|i| format!("pasted line {i}")).collect();
    term.paste(&format!("{}\n", lines.join("\n")));
    for line in &lines {
        watch.expect_message("Paster", line);
    }
    term.wait("the last line shown as sent", |s| {
        s.has("Paster: pasted line 25 (sent)")
    });
    let all = term.history();
    assert!(all.contains("(queued, goes"), "{all}");
    assert!(
        !all.contains("Slow down") && !all.contains("kicked"),
        "{all}"
    );
}

/// Someone who joins knows everyone already online: the roster comes with
/// the login, so Tab completes a name before its owner has said anything.
fn names_of_those_already_online_complete(bin: &str) {
    let server = Server::start(bin, &[], &[]);
    let _zed = server.join("Zed");
    let term = join_in_terminal(bin, &server, "Amy", &[]);
    let prompt = chat_prompt("Amy");
    term.type_text("/pm Ze");
    term.wait_prompt(&format!("{prompt}/pm Ze"));
    term.press("Tab");
    term.wait_prompt(&format!("{prompt}/pm Zed "));
}
