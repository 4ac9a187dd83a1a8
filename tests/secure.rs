//! End-to-end security tests for LanTalk's encryption: the real `lantalk-smol`
//! and `lantalk-std` binaries, with proxies in between that record, tamper,
//! replay, downgrade and play man in the middle.
//!
//! * What crosses the wire: a recording proxy sees the offer line, the hello
//!   line and then only frames; no message, private message, password or
//!   password hash in any form.
//! * Who the server is: a man in the middle with its own keys is refused by a
//!   client that pinned the real key, and cannot pass the password check even
//!   when the client trusts it (SPAKE2 bound to the Noise handshake hash).
//! * Tampering: a changed offer or hello fails the handshake; a replayed or
//!   corrupted frame closes the connection; a stripped offer is refused when
//!   the key is pinned; a changed server key is refused loudly.
//! * LanTalk 2.0 (the Python package from PyPI, provisioned as
//!   tests/interop.rs does) only meets us with `--allow-plaintext`.
//! * `fingerprint` shows the key the server's banner shows; key files are
//!   private.
//!
//! Every server listens on 127.0.0.1 port 0 (or a port it had a moment ago)
//! with a fresh data directory; every proxy listens on 127.0.0.1 port 0.
//! Every wait is bounded, every child is killed when its handle drops, and
//! nothing asserts on timing.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lantalk_core::password::{derive, HashParams};
use lantalk_core::secure::{
    self, b64, fingerprint, frame, hello_line, prologue, seal_into, unb64, StaticKey, Suite,
};
use serde_json::Value;

/// Bound for any one expected event (a line arriving, a process exiting).
/// Generous: a passing test never waits this long, and nothing asserts on
/// timing.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The server password in every test that has one.
const PW: &str = "hunter2-correct-horse";
/// The environment variable both sides read it from.
const PW_ENV: &str = "LT_SECURE_PW";

// ═════════════════════════════════════════════════════════════════════════════
// Instantiation for both runtimes
// ═════════════════════════════════════════════════════════════════════════════

macro_rules! secure_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            secure_tests!(@tests $bin;
                traffic_is_encrypted,
                mitm_is_refused_when_the_key_is_pinned,
                mitm_cannot_pass_the_password_check,
                tampered_handshake_fails,
                changed_server_key_is_refused,
                downgrade_is_refused_when_the_key_is_pinned,
                legacy_python_server,
                legacy_python_client,
                fingerprint_matches_the_banner,
                replayed_frame_closes_the_connection,
                replayed_frame_keeps_the_authentic_copy,
                corrupted_frame_closes_the_connection,
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

secure_tests!(smol, super::SMOL);
secure_tests!(std_rt, super::STD);

// ═════════════════════════════════════════════════════════════════════════════
// Harness: directories and child processes
// ═════════════════════════════════════════════════════════════════════════════

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/python.rs"]
mod python;
#[path = "support/reference.rs"]
mod reference;
#[path = "support/tempdir.rs"]
mod tempdir;

use ours::{bin_label, SMOL, STD};
use proc::{screen_lines, Proc, START};
use reference::{python_client, python_server};
use tempdir::TempDir;

/// A running `BIN server` on 127.0.0.1.
struct Server {
    proc: Proc,
    port: u16,
    /// From the banner's `Key fingerprint:` line.
    fingerprint: String,
}

impl Server {
    /// `BIN server --port 0 --bind 127.0.0.1 --data-dir DIR ARGS…`, with the
    /// password in the environment when given.
    fn start(bin: &str, dir: &Path, args: &[&str], password: Option<&str>) -> Server {
        Server::start_on(bin, dir, 0, args, password)
    }

    /// Like [`Server::start`] on a given port. A port that was just released
    /// may still be taken for a moment: that is retried, a bounded number of
    /// times.
    fn start_on(bin: &str, dir: &Path, port: u16, args: &[&str], password: Option<&str>) -> Server {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut cmd = Command::new(bin);
            cmd.args([
                "server",
                "--bind",
                "127.0.0.1",
                "--no-discovery",
                "--no-web",
            ])
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env_remove("LANTALK_DATA_DIR")
            .env_remove("LANTALK_LOG_LEVEL")
            .current_dir(dir);
            if let Some(pw) = password {
                cmd.args(["--password-env", PW_ENV]).env(PW_ENV, pw);
            }
            let proc = Proc::spawn(format!("{} server", bin_label(bin)), cmd);
            let listening = proc.out.wait_until(TIMEOUT, |text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("Listening on 127.0.0.1:"))
                    .and_then(|p| p.trim().parse::<u16>().ok())
            });
            match listening {
                Ok(got) => {
                    if port != 0 {
                        assert_eq!(got, port, "the server must listen where it was told");
                    }
                    let text = proc.out.text();
                    let fingerprint = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Key fingerprint: "))
                        .unwrap_or_else(|| {
                            panic!("no \"Key fingerprint:\" in the banner\n{}", proc.report())
                        })
                        .trim()
                        .to_string();
                    assert!(
                        fingerprint.starts_with("SHA256:"),
                        "banner fingerprint {fingerprint:?}"
                    );
                    return Server {
                        proc,
                        port: got,
                        fingerprint,
                    };
                }
                Err(_) => {
                    proc.err.wait_closed(TIMEOUT);
                    let busy = proc.err.text().contains("already in use");
                    if port != 0 && busy && attempt < 40 {
                        drop(proc);
                        thread::sleep(Duration::from_millis(250));
                        continue;
                    }
                    panic!("the server did not start\n{}", proc.report());
                }
            }
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for a log line containing `text`.
    fn wait_log(&self, text: &str) -> String {
        self.proc
            .wait_line(&format!("a log line containing {text:?}"), |l| {
                l.contains(text)
            })
    }

    fn log_count(&self, text: &str) -> usize {
        self.proc.out.count(|l| l.contains(text))
    }

    fn stop(mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

/// `BIN client ADDR --name NAME --data-dir DIR ARGS…` with piped standard
/// input (one line per message or command) and plain-line output, the
/// password in the environment when given.
fn our_client(
    bin: &str,
    addr: &str,
    name: &str,
    dir: &Path,
    args: &[&str],
    password: Option<&str>,
) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.arg("client")
        .arg(addr)
        .args(["--name", name, "--data-dir"])
        .arg(dir)
        .args(args)
        .env_remove("LANTALK_DATA_DIR")
        .current_dir(dir);
    if let Some(pw) = password {
        cmd.args(["--password-env", PW_ENV]).env(PW_ENV, pw);
    }
    Proc::spawn(format!("{} client {name}", bin_label(bin)), cmd)
}

fn joined(name: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| l.starts_with(&format!("Connected as {name} to "))
}

/// Whether a line is `[HH:MM] rest`.
fn is_stamped(line: &str, rest: &str) -> bool {
    let b = line.as_bytes();
    line.len() == rest.len() + 8
        && line.ends_with(rest)
        && b[0] == b'['
        && b[3] == b':'
        && b[6] == b']'
        && b[7] == b' '
        && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit())
}

/// The key pair in a `server_key` / `client_key` file.
fn key_from_file(path: &Path) -> StaticKey {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (header, key) = text
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("{} is not a key file: {text:?}", path.display()));
    assert_eq!(header, "lantalk-x25519-private-v1", "{}", path.display());
    let private: [u8; 32] = unb64(key.trim())
        .and_then(|k| k.try_into().ok())
        .unwrap_or_else(|| panic!("{} holds no 32-byte key", path.display()));
    StaticKey::from_private(private)
}

#[cfg(unix)]
fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "{} must be readable by its owner only, is {:o}",
        path.display(),
        mode & 0o777
    );
}

#[cfg(not(unix))]
fn assert_private(_path: &Path) {}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ═════════════════════════════════════════════════════════════════════════════
// Harness: proxies
// ═════════════════════════════════════════════════════════════════════════════

/// Rewrites one line (its `\n` included).
type LineFn = fn(&[u8]) -> Vec<u8>;

/// What a proxy does with the connections it accepts (decided per
/// connection, when it is accepted).
#[derive(Clone)]
enum Mode {
    /// Forwards every byte, both ways, as is.
    Transparent,
    /// Rewrites the server's first line (the offer).
    Offer(LineFn),
    /// Rewrites the client's first line (the hello).
    Hello(LineFn),
    /// Sends the client's frame number N (0-based, the handshake counted)
    /// twice.
    Replay(usize),
    /// Flips a bit in the client's frame number N.
    Flip(usize),
    /// Terminates Noise on both sides with this key of its own and relays
    /// the decrypted lines between the two sessions.
    Mitm(Box<StaticKey>),
}

#[derive(Clone, Copy)]
enum Dir {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

#[derive(Default)]
struct Traffic {
    /// The bytes forwarded to the server.
    up: Vec<u8>,
    /// The bytes forwarded to the client.
    down: Vec<u8>,
    /// Directions that have ended (2: the connection is over).
    ended: u8,
    /// MITM only: the plaintext it decrypted from the client / the server.
    plain_up: Vec<u8>,
    plain_down: Vec<u8>,
    /// MITM only: how it went.
    notes: Vec<String>,
}

/// One proxied connection.
#[derive(Default)]
struct Conn {
    traffic: Mutex<Traffic>,
    changed: Condvar,
}

impl Conn {
    fn update(&self, f: impl FnOnce(&mut Traffic)) {
        f(&mut self.traffic.lock().unwrap());
        self.changed.notify_all();
    }

    fn record(&self, dir: Dir, bytes: &[u8]) {
        self.update(|t| match dir {
            Dir::Up => t.up.extend_from_slice(bytes),
            Dir::Down => t.down.extend_from_slice(bytes),
        });
    }

    fn note(&self, note: impl Into<String>) {
        let note = note.into();
        self.update(|t| t.notes.push(note));
    }

    /// Waits for both directions to end; returns what was seen.
    fn wait_ended(&self) -> std::sync::MutexGuard<'_, Traffic> {
        let deadline = Instant::now() + TIMEOUT;
        let mut t = self.traffic.lock().unwrap();
        while t.ended < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "a proxied connection did not end in time");
            t = self.changed.wait_timeout(t, left).unwrap().0;
        }
        t
    }
}

/// A TCP proxy on 127.0.0.1 in front of a server on 127.0.0.1.
struct Proxy {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    conns: Arc<(Mutex<Vec<Arc<Conn>>>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(server_port: u16, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            mode: Arc::new(Mutex::new(mode)),
            conns: Arc::default(),
            stop: Arc::default(),
        };
        let (mode, conns, stop) = (
            Arc::clone(&proxy.mode),
            Arc::clone(&proxy.conns),
            Arc::clone(&proxy.stop),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let _ = client.set_nodelay(true);
                let mode = mode.lock().unwrap().clone();
                let conn = Arc::new(Conn::default());
                {
                    let mut list = conns.0.lock().unwrap();
                    list.push(Arc::clone(&conn));
                    conns.1.notify_all();
                }
                thread::spawn(move || match mode {
                    Mode::Mitm(key) => mitm(client, server_port, &key, &conn),
                    other => relay(client, server_port, &other, conn),
                });
            }
        });
        proxy
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The `i`-th connection accepted (0-based), waiting for it if need be.
    fn conn(&self, i: usize) -> Arc<Conn> {
        let deadline = Instant::now() + TIMEOUT;
        let mut list = self.conns.0.lock().unwrap();
        while list.len() <= i {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the proxy never got connection {i}");
            list = self.conns.1.wait_timeout(list, left).unwrap().0;
        }
        Arc::clone(&list[i])
    }

    fn count(&self) -> usize {
        self.conns.0.lock().unwrap().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[derive(Clone, Copy)]
enum FrameOp {
    Twice,
    FlipBit,
}

/// One direction's rewriting: the first line, then frames.
struct Filter {
    /// Whether to look at the bytes at all.
    active: bool,
    line_done: bool,
    line_fn: Option<LineFn>,
    frame_op: Option<(usize, FrameOp)>,
    buf: Vec<u8>,
    frames: usize,
}

impl Filter {
    fn pass() -> Filter {
        Filter {
            active: false,
            line_done: true,
            line_fn: None,
            frame_op: None,
            buf: Vec::new(),
            frames: 0,
        }
    }

    fn line(f: LineFn) -> Filter {
        Filter {
            active: true,
            line_done: false,
            line_fn: Some(f),
            ..Filter::pass()
        }
    }

    fn frames(n: usize, op: FrameOp) -> Filter {
        Filter {
            active: true,
            line_done: false,
            frame_op: Some((n, op)),
            ..Filter::pass()
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        if !self.active {
            return bytes.to_vec();
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        if !self.line_done {
            let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
                return out;
            };
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            out.extend(match self.line_fn {
                Some(f) => f(&line),
                None => line,
            });
            self.line_done = true;
        }
        let Some((target, op)) = self.frame_op else {
            out.append(&mut self.buf);
            return out;
        };
        while self.buf.len() >= 2 {
            let len = u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize;
            if self.buf.len() < 2 + len {
                break;
            }
            let mut frame: Vec<u8> = self.buf.drain(..2 + len).collect();
            if self.frames == target && len > 0 {
                match op {
                    FrameOp::Twice => out.extend_from_slice(&frame),
                    FrameOp::FlipBit => frame[2 + len / 2] ^= 0x04,
                }
            }
            out.extend(frame);
            self.frames += 1;
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Forwards a connection both ways through the mode's filters.
fn relay(client: TcpStream, server_port: u16, mode: &Mode, conn: Arc<Conn>) {
    let server = match TcpStream::connect(("127.0.0.1", server_port)) {
        Ok(s) => s,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            conn.update(|t| t.ended = 2);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let (up, down) = match mode {
        Mode::Transparent | Mode::Mitm(_) => (Filter::pass(), Filter::pass()),
        Mode::Offer(f) => (Filter::pass(), Filter::line(*f)),
        Mode::Hello(f) => (Filter::line(*f), Filter::pass()),
        Mode::Replay(n) => (Filter::frames(*n, FrameOp::Twice), Filter::pass()),
        Mode::Flip(n) => (Filter::frames(*n, FrameOp::FlipBit), Filter::pass()),
    };
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => {
            conn.update(|t| t.ended = 2);
            return;
        }
    };
    let conn2 = Arc::clone(&conn);
    let up = thread::spawn(move || pump(c2, s2, up, &conn2, Dir::Up));
    pump(server, client, down, &conn, Dir::Down);
    let _ = up.join();
}

fn pump(mut from: TcpStream, mut to: TcpStream, mut filter: Filter, conn: &Conn, dir: Dir) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => {
                let rest = filter.finish();
                conn.record(dir, &rest);
                let _ = to.write_all(&rest);
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => {
                let out = filter.feed(&chunk[..n]);
                conn.record(dir, &out);
                if to.write_all(&out).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    conn.update(|t| t.ended += 1);
}

/// One side of the man in the middle: a socket and what was read from it.
struct Link {
    who: &'static str,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Link {
    fn new(who: &'static str, stream: TcpStream) -> Link {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
        Link {
            who,
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads what has arrived (waiting briefly); `Ok(false)` at the end of
    /// the stream.
    fn poll(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(format!("the {} connection failed: {e}", self.who)),
        }
    }

    fn line(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=pos).collect());
            }
            if Instant::now() >= deadline {
                return Err(format!("no line from the {} in time", self.who));
            }
            if !self.poll()? {
                return Err(format!("the {} closed before its first line", self.who));
            }
        }
    }

    fn take_frame(&mut self) -> Option<Vec<u8>> {
        if self.buf.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize;
        if self.buf.len() < 2 + len {
            return None;
        }
        let frame = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Some(frame)
    }

    fn frame(&mut self, deadline: Instant, what: &str) -> Result<Vec<u8>, String> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Ok(frame);
            }
            if Instant::now() >= deadline {
                return Err(format!("no {what} from the {} in time", self.who));
            }
            if !self.poll()? {
                return Err(format!("the {} hung up before sending {what}", self.who));
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("cannot write to the {}: {e}", self.who))
    }
}

/// The man in the middle for one connection: relays the offer and the hello
/// unchanged (so it can compute both prologues), runs a Noise initiator with
/// its own key towards the server and a Noise responder with its own key
/// towards the client, then decrypts every line from one session and
/// re-encrypts it into the other, keeping a copy.
fn mitm(client: TcpStream, server_port: u16, key: &StaticKey, conn: &Conn) {
    let result = match TcpStream::connect(("127.0.0.1", server_port)) {
        Ok(server) => {
            let mut c = Link::new("client", client);
            let mut s = Link::new("server", server);
            let result = mitm_session(&mut c, &mut s, key, conn);
            let _ = c.stream.shutdown(Shutdown::Both);
            let _ = s.stream.shutdown(Shutdown::Both);
            result
        }
        Err(e) => Err(format!("cannot connect to the server: {e}")),
    };
    if let Err(why) = result {
        conn.note(why);
    }
    conn.update(|t| t.ended = 2);
}

fn mitm_session(c: &mut Link, s: &mut Link, key: &StaticKey, conn: &Conn) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    let offer = s.line(deadline)?;
    c.write(&offer)?;
    let hello = c.line(deadline)?;
    s.write(&hello)?;
    let prologue = prologue(&offer, &hello);
    let suite = secure::hello_suite(hello.strip_suffix(b"\n").unwrap_or(&hello))
        .ok_or("the client's hello names no suite")?;
    let mut buf = vec![0u8; secure::MAX_FRAME];

    // Towards the server, the man in the middle is the client.
    let mut hs =
        secure::handshake(true, key, &prologue, [0x11; 32], suite).map_err(|e| format!("{e}"))?;
    let n = hs
        .write_message(&[], &mut buf)
        .map_err(|e| format!("{e}"))?;
    s.write(&frame(&buf[..n]))?;
    let m2 = s.frame(deadline, "handshake message 2")?;
    hs.read_message(&m2, &mut buf)
        .map_err(|e| format!("the server's handshake message failed: {e}"))?;
    let n = hs
        .write_message(&[], &mut buf)
        .map_err(|e| format!("{e}"))?;
    s.write(&frame(&buf[..n]))?;
    let server_key = hs.get_remote_static().unwrap_or_default().to_vec();
    conn.note(format!(
        "server handshake done, its key {}",
        fingerprint(&server_key)
    ));
    let mut to_server = hs.into_transport_mode().map_err(|e| format!("{e}"))?;

    // Towards the client, it is the server.
    let mut hs =
        secure::handshake(false, key, &prologue, [0x22; 32], suite).map_err(|e| format!("{e}"))?;
    let m1 = c.frame(deadline, "handshake message 1")?;
    hs.read_message(&m1, &mut buf)
        .map_err(|e| format!("the client's first handshake message failed: {e}"))?;
    let n = hs
        .write_message(&[], &mut buf)
        .map_err(|e| format!("{e}"))?;
    c.write(&frame(&buf[..n]))?;
    let m3 = c.frame(deadline, "handshake message 3")?;
    hs.read_message(&m3, &mut buf)
        .map_err(|e| format!("the client's last handshake message failed: {e}"))?;
    let mut to_client = hs.into_transport_mode().map_err(|e| format!("{e}"))?;
    conn.note("client handshake done");

    let end = Instant::now() + 4 * TIMEOUT;
    while Instant::now() < end {
        let client_open = c.poll()?;
        while let Some(f) = c.take_frame() {
            let n = to_client
                .read_message(&f, &mut buf)
                .map_err(|e| format!("a client frame failed to decrypt: {e}"))?;
            conn.update(|t| t.plain_up.extend_from_slice(&buf[..n]));
            let mut out = Vec::new();
            seal_into(&mut to_server, &buf[..n], &mut out).map_err(|e| format!("{e}"))?;
            s.write(&out)?;
        }
        if !client_open {
            return Err("the client closed the connection".into());
        }
        let server_open = s.poll()?;
        while let Some(f) = s.take_frame() {
            let n = to_server
                .read_message(&f, &mut buf)
                .map_err(|e| format!("a server frame failed to decrypt: {e}"))?;
            conn.update(|t| t.plain_down.extend_from_slice(&buf[..n]));
            let mut out = Vec::new();
            seal_into(&mut to_client, &buf[..n], &mut out).map_err(|e| format!("{e}"))?;
            c.write(&out)?;
        }
        if !server_open {
            return Err("the server closed the connection".into());
        }
    }
    Err("the relay ran out of time".into())
}

// ═════════════════════════════════════════════════════════════════════════════
// Harness: the reference implementation (as tests/interop.rs provisions it)
// ═════════════════════════════════════════════════════════════════════════════

// ═════════════════════════════════════════════════════════════════════════════
// Reading recorded traffic
// ═════════════════════════════════════════════════════════════════════════════

/// The first line (with its `\n`) and what follows it.
fn split_first_line<'a>(bytes: &'a [u8], what: &str) -> (&'a [u8], &'a [u8]) {
    let pos = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or_else(|| panic!("{what}: no first line in {:?}", show(bytes)));
    bytes.split_at(pos + 1)
}

/// `bytes` read as length-prefixed frames, which must end exactly at the end.
fn frames<'a>(bytes: &'a [u8], what: &str) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 2,
            "{what}: a lone byte after {} frames",
            out.len()
        );
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        assert!(
            rest.len() >= 2 + len,
            "{what}: frame {} claims {len} bytes, {} are left",
            out.len(),
            rest.len() - 2
        );
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]);
    format!("{text:?}")
}

// ═════════════════════════════════════════════════════════════════════════════
// 1. What crosses the wire
// ═════════════════════════════════════════════════════════════════════════════

const SECRET_MSG: &str = "the-secret-message-42";
const SECRET_PM: &str = "the-private-note-77";

fn traffic_is_encrypted(bin: &str) {
    let (sdir, adir, bdir) = (
        TempDir::new("server"),
        TempDir::new("alice"),
        TempDir::new("bob"),
    );
    let server = Server::start(bin, sdir.path(), &[], Some(PW));
    let proxy = Proxy::start(server.port, Mode::Transparent);
    let addr = proxy.addr();

    let mut alice = our_client(
        bin,
        &addr,
        "Alice",
        adir.path(),
        &["--accept-new"],
        Some(PW),
    );
    alice.wait_line("its join", joined("Alice"));
    let secured = alice.wait_line("that the session is encrypted", |l| {
        l.starts_with("Encrypted; server key ")
    });
    assert!(
        secured.contains(&server.fingerprint),
        "{secured:?} should show the server's key {}",
        server.fingerprint
    );
    let mut bob = our_client(bin, &addr, "Bob", bdir.path(), &["--accept-new"], Some(PW));
    bob.wait_line("its join", joined("Bob"));
    alice.wait_line("Bob's join notice", |l| {
        is_stamped(l, "*** Bob joined from 127.0.0.1. ***")
    });

    alice.send(SECRET_MSG);
    bob.wait_line("Alice's message", |l| {
        is_stamped(l, &format!("Alice: {SECRET_MSG}"))
    });
    bob.send(&format!("/pm Alice {SECRET_PM}"));
    alice.wait_line("Bob's private message", |l| {
        is_stamped(l, &format!("PM from Bob: {SECRET_PM}"))
    });

    // Each logged in with a key of its own, which the server names; keys and
    // pins are private files.
    for (name, dir) in [("Alice", &adir), ("Bob", &bdir)] {
        let key_file = dir.path().join("client_key");
        let key = key_from_file(&key_file);
        server.wait_log(&format!(
            "{name} joined from 127.0.0.1 (key {})",
            key.fingerprint()
        ));
        assert_private(&key_file);
        assert_private(&dir.path().join("known_servers"));
    }
    alice.finish_ok();
    bob.finish_ok();

    assert_eq!(proxy.count(), 2, "one connection per client");
    let mut seen_offer = None;
    for i in 0..2 {
        let conn = proxy.conn(i);
        let t = conn.wait_ended();
        let what = format!("connection {i}");

        // Server to client: the offer line, then frames to the very end.
        let (offer, rest) = split_first_line(&t.down, &what);
        let v: Value = serde_json::from_slice(offer)
            .unwrap_or_else(|e| panic!("{what}: the offer is not JSON ({e}): {}", show(offer)));
        assert_eq!(v["type"], "auth_request", "{v}");
        assert_eq!(v["needs_password"], true, "{v}");
        let sec = &v["secure"];
        assert_eq!(sec["v"], 1, "{v}");
        // Both suites, the faster on this CPU first (the client takes it).
        let offered: Vec<&str> = sec["suites"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut both = offered.clone();
        both.sort_unstable();
        assert_eq!(both, [secure::SUITE_AESGCM, secure::SUITE], "{v}");
        let chosen = Suite::from_name(offered[0]).expect("a suite we know");
        assert_eq!(sec["pake"], "SPAKE2-Ed25519", "{v}");
        assert_eq!(sec["kdf"]["alg"], "argon2id", "{v}");
        let down = frames(rest, &format!("{what}, server to client"));
        assert!(down.len() >= 3, "{what}: handshake, pake, auth_ok at least");

        // Client to server: the hello line, then frames to the very end.
        let (hello, rest) = split_first_line(&t.up, &what);
        assert_eq!(hello, hello_line(chosen).as_bytes(), "{what}: the hello");
        let up = frames(rest, &format!("{what}, client to server"));
        assert!(up.len() >= 4, "{what}: handshake, login and proof at least");

        // Nothing readable, in any encoding that might plausibly leak.
        let kdf = &sec["kdf"];
        let salt = unb64(kdf["salt"].as_str().unwrap_or_default()).expect("a base64 salt");
        let num = |k: &str| kdf[k].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap();
        let params = HashParams {
            memory_kib: num("m"),
            iterations: num("t"),
            lanes: num("p"),
        };
        let secret = derive(PW.as_bytes(), &salt, params);
        let needles: Vec<(&str, Vec<u8>)> = vec![
            ("the message", SECRET_MSG.into()),
            ("the private message", SECRET_PM.into()),
            ("the password", PW.into()),
            ("the password in base64", b64(PW.as_bytes()).into()),
            ("the Argon2 secret", secret.to_vec()),
            ("the Argon2 secret in base64", b64(&secret).into()),
            ("the Argon2 secret in hex", hex(&secret).into()),
        ];
        for (label, needle) in &needles {
            for (dir, bytes) in [("client to server", &t.up), ("server to client", &t.down)] {
                assert!(
                    !contains(bytes, needle),
                    "{what}: {label} crossed the wire {dir} readably"
                );
            }
        }
        if let Some(first) = &seen_offer {
            assert_eq!(first, &v["secure"], "one offer per server");
        }
        seen_offer = Some(v["secure"].clone());
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// 2. Man in the middle
// ═════════════════════════════════════════════════════════════════════════════

/// Mallory's own key.
fn mallory() -> StaticKey {
    StaticKey::from_private([0x4d; 32])
}

fn mitm_is_refused_when_the_key_is_pinned(bin: &str) {
    let (sdir, cdir) = (TempDir::new("server"), TempDir::new("client"));
    let server = Server::start(bin, sdir.path(), &[], None);
    let proxy = Proxy::start(server.port, Mode::Transparent);
    let addr = proxy.addr();

    // First contact through an honest path pins the real key for ADDR.
    let mut first = our_client(bin, &addr, "Alice", cdir.path(), &["--accept-new"], None);
    first.wait_line("its join", joined("Alice"));
    first.finish_ok();
    let known_path = cdir.path().join("known_servers");
    let known = std::fs::read_to_string(&known_path).expect("known_servers was written");
    let real = key_from_file(&sdir.path().join("server_key"));
    assert_eq!(real.fingerprint(), server.fingerprint);
    assert!(known.starts_with('#'), "a comment header first:\n{known}");
    let entry = format!("{addr} {}", b64(real.public()));
    assert!(
        known.lines().any(|l| l.trim() == entry),
        "known_servers should pin {entry:?}:\n{known}"
    );

    // Then Mallory takes over the same address.
    proxy.set_mode(Mode::Mitm(Box::new(mallory())));
    let mut second = our_client(bin, &addr, "Alice", cdir.path(), &["--accept-new"], None);
    second.expect_failure();
    let err = second.err.text();
    let report = second.report();
    assert!(err.contains("KEY HAS CHANGED"), "{report}");
    assert!(err.contains(&real.fingerprint()), "the old key: {report}");
    assert!(
        err.contains(&mallory().fingerprint()),
        "the new key: {report}"
    );
    assert!(
        err.contains(&known_path.display().to_string()),
        "the file to edit: {report}"
    );
    assert!(
        err.contains(&format!("remove the line for {addr} ")),
        "the entry to remove: {report}"
    );
    assert!(!second.has_line(joined("Alice")), "{report}");

    let conn = proxy.conn(1);
    let t = conn.wait_ended();
    assert!(
        t.notes
            .iter()
            .any(|n| n.starts_with("server handshake done")),
        "the man in the middle was in place: {:?}",
        t.notes
    );
    assert!(
        !t.notes.iter().any(|n| n == "client handshake done"),
        "the client must not finish the handshake: {:?}",
        t.notes
    );
    assert!(
        t.plain_up.is_empty(),
        "nothing reached the man in the middle"
    );
    drop(t);
    assert_eq!(
        std::fs::read_to_string(&known_path).unwrap(),
        known,
        "the pin must stay as it was"
    );
    assert_eq!(server.log_count("Alice joined"), 1, "only the honest login");
}

fn mitm_cannot_pass_the_password_check(bin: &str) {
    // The control: without a password, a client that trusts Mallory's key
    // gets through her relay, and she reads everything. So the relay is
    // faithful, and what stops her below is the password check alone.
    let (open_dir, victim_dir) = (TempDir::new("server-open"), TempDir::new("victim"));
    let open = Server::start(bin, open_dir.path(), &[], None);
    let relay = Proxy::start(open.port, Mode::Mitm(Box::new(mallory())));
    let mut victim = our_client(
        bin,
        &relay.addr(),
        "Victim",
        victim_dir.path(),
        &["--accept-new"],
        None,
    );
    victim.wait_line("its join through Mallory", joined("Victim"));
    victim.send("read-by-mallory-31");
    victim.finish_ok();
    open.wait_log("Victim joined from 127.0.0.1");
    let conn = relay.conn(0);
    let t = conn.wait_ended();
    assert!(
        contains(&t.plain_up, b"read-by-mallory-31"),
        "the relay carried the chat: {}",
        show(&t.plain_up)
    );
    drop(t);

    let (sdir, cdir) = (TempDir::new("server"), TempDir::new("client"));
    let server = Server::start(bin, sdir.path(), &[], Some(PW));
    let proxy = Proxy::start(server.port, Mode::Mitm(Box::new(mallory())));

    // Nothing pinned and --accept-new: the client trusts Mallory's key. Only
    // the password check, bound to each Noise session, can stop her.
    let mut alice = our_client(
        bin,
        &proxy.addr(),
        "Alice",
        cdir.path(),
        &["--accept-new"],
        Some(PW),
    );
    alice.expect_failure();
    let report = alice.report();
    assert!(
        alice.has_line(
            |l| l.starts_with("Encrypted; server key ") && l.contains(&mallory().fingerprint())
        ),
        "the client trusted Mallory's key: {report}"
    );
    assert!(alice.err.text().contains("Wrong password"), "{report}");
    assert!(!alice.has_line(joined("Alice")), "{report}");

    let conn = proxy.conn(0);
    let t = conn.wait_ended();
    assert!(
        t.notes.iter().any(|n| n == "client handshake done"),
        "{:?}",
        t.notes
    );
    let up = String::from_utf8_lossy(&t.plain_up).into_owned();
    let down = String::from_utf8_lossy(&t.plain_down).into_owned();
    // Mallory relayed the login with its SPAKE2 message, and the answer...
    assert!(up.contains("\"username\": \"Alice\""), "relayed up: {up}");
    assert!(up.contains("\"pake\": \""), "relayed up: {up}");
    assert!(down.contains("\"type\": \"pake\""), "relayed down: {down}");
    // ... but the client would not prove anything, and nobody let anyone in.
    assert!(!up.contains("pake_confirm"), "relayed up: {up}");
    assert!(!down.contains("auth_ok"), "relayed down: {down}");
    assert!(!contains(&t.plain_up, PW.as_bytes()), "the password itself");
    drop(t);
    server.wait_log("Password check abandoned for 'Alice'");
    assert_eq!(server.log_count("joined"), 0, "{}", server.proc.report());
}

// ═════════════════════════════════════════════════════════════════════════════
// 3. Tampering with the handshake
// ═════════════════════════════════════════════════════════════════════════════

fn flip_needs_password(line: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let tampered = text.replacen("\"needs_password\": false", "\"needs_password\": true", 1);
    assert_ne!(text, tampered, "nothing to flip in {text:?}");
    tampered.into_bytes()
}

fn add_space(line: &[u8]) -> Vec<u8> {
    assert_eq!(line.first(), Some(&b'{'), "{}", show(line));
    let mut out = b"{ ".to_vec();
    out.extend_from_slice(&line[1..]);
    out
}

fn tampered_handshake_fails(bin: &str) {
    let sdir = TempDir::new("server");
    let server = Server::start(bin, sdir.path(), &["--log-level", "debug"], None);
    let cases = [
        (
            "the offer's needs_password flipped",
            Mode::Offer(flip_needs_password),
        ),
        ("a space added to the offer", Mode::Offer(add_space)),
        ("a space added to the hello", Mode::Hello(add_space)),
    ];
    for (i, (what, mode)) in cases.into_iter().enumerate() {
        let proxy = Proxy::start(server.port, mode);
        let cdir = TempDir::new("client");
        let name = format!("Tamper{i}");
        let mut c = our_client(
            bin,
            &proxy.addr(),
            &name,
            cdir.path(),
            &["--accept-new"],
            None,
        );
        c.expect_failure();
        let report = c.report();
        assert!(
            c.err.text().contains("encrypted handshake failed"),
            "{what}: {report}"
        );
        assert!(!c.has_line(joined(&name)), "{what}: {report}");
        assert!(
            !c.has_line(|l| l.starts_with("Encrypted;")),
            "{what}: {report}"
        );
        assert!(
            !cdir.path().join("known_servers").exists(),
            "{what}: nothing may be pinned"
        );
        // The client gave up at the server's handshake message: it sent
        // neither its key nor a login. The server saw it leave.
        let conn = proxy.conn(0);
        let t = conn.wait_ended();
        let (_, rest) = split_first_line(&t.up, what);
        assert_eq!(
            frames(rest, what).len(),
            1,
            "{what}: only the first handshake message"
        );
        drop(t);
        server.proc.wait_out(
            &format!("{what}: the connection leaving before logging in"),
            TIMEOUT,
            |text| {
                (screen_lines(text)
                    .filter(|l| l.contains("left before logging in"))
                    .count()
                    > i)
                    .then_some(())
            },
        );
    }

    // A corrupted last handshake message is the server's to detect.
    let proxy = Proxy::start(server.port, Mode::Flip(1));
    let cdir = TempDir::new("client");
    let mut c = our_client(
        bin,
        &proxy.addr(),
        "Tamper3",
        cdir.path(),
        &["--accept-new"],
        None,
    );
    c.expect_failure();
    assert!(!c.has_line(joined("Tamper3")), "{}", c.report());
    let warning = server.wait_log("Closed encrypted connection from 127.0.0.1:");
    assert!(warning.contains("WARNING"), "{warning}");
    assert!(warning.contains("the handshake failed"), "{warning}");
    assert_eq!(server.log_count("joined"), 0, "{}", server.proc.report());
}

// ═════════════════════════════════════════════════════════════════════════════
// 4. A changed server key
// ═════════════════════════════════════════════════════════════════════════════

fn changed_server_key_is_refused(bin: &str) {
    let (old_dir, new_dir, cdir) = (
        TempDir::new("server-old"),
        TempDir::new("server-new"),
        TempDir::new("client"),
    );
    let old = Server::start(bin, old_dir.path(), &[], None);
    let (port, addr, old_fp) = (old.port, old.addr(), old.fingerprint.clone());
    let mut c = our_client(bin, &addr, "Alice", cdir.path(), &["--accept-new"], None);
    c.wait_line("its join", joined("Alice"));
    c.finish_ok();
    let known_path = cdir.path().join("known_servers");
    let known = std::fs::read_to_string(&known_path).expect("known_servers was written");
    let old_key = key_from_file(&old_dir.path().join("server_key"));
    assert!(
        known
            .lines()
            .any(|l| l.trim() == format!("{addr} {}", b64(old_key.public()))),
        "{known}"
    );
    old.stop();

    // Same address, new data directory: a new key.
    let new = Server::start_on(bin, new_dir.path(), port, &[], None);
    assert_ne!(new.fingerprint, old_fp, "a new data directory, a new key");
    let mut c = our_client(bin, &addr, "Alice", cdir.path(), &["--accept-new"], None);
    c.expect_failure();
    let err = c.err.text();
    let report = c.report();
    assert!(
        err.contains("WARNING: THE SERVER'S KEY HAS CHANGED"),
        "{report}"
    );
    assert!(
        err.contains(&old_fp) && err.contains(&new.fingerprint),
        "{report}"
    );
    assert!(
        err.contains(&format!("remove the line for {addr} ")),
        "the entry to remove: {report}"
    );
    assert!(
        err.contains(&known_path.display().to_string()),
        "the file to edit: {report}"
    );
    assert!(!c.has_line(joined("Alice")), "{report}");
    assert_eq!(std::fs::read_to_string(&known_path).unwrap(), known);
    assert_eq!(new.log_count("joined"), 0);

    // Doing what the warning says lets the new key be trusted.
    let kept: String = known
        .lines()
        .filter(|l| !l.starts_with(&format!("{addr} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&known_path, kept).unwrap();
    let mut c = our_client(bin, &addr, "Alice", cdir.path(), &["--accept-new"], None);
    c.wait_line("its join", joined("Alice"));
    let secured = c.wait_line("the new key", |l| l.starts_with("Encrypted; server key "));
    assert!(secured.contains(&new.fingerprint), "{secured}");
    c.finish_ok();
}

// ═════════════════════════════════════════════════════════════════════════════
// 5. Downgrade
// ═════════════════════════════════════════════════════════════════════════════

/// The offer line without its `"secure"` field: a LanTalk 2.0 greeting.
fn strip_secure(line: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let at = text
        .find(", \"secure\": {")
        .unwrap_or_else(|| panic!("no offer in {text:?}"));
    assert!(text.ends_with("}}\n"), "{text:?}");
    format!("{}}}\n", &text[..at]).into_bytes()
}

fn downgrade_is_refused_when_the_key_is_pinned(bin: &str) {
    let (sdir, cdir, other) = (
        TempDir::new("server"),
        TempDir::new("client"),
        TempDir::new("other"),
    );
    let server = Server::start(bin, sdir.path(), &[], Some(PW));
    let proxy = Proxy::start(server.port, Mode::Transparent);
    let addr = proxy.addr();
    let mut c = our_client(
        bin,
        &addr,
        "Alice",
        cdir.path(),
        &["--accept-new"],
        Some(PW),
    );
    c.wait_line("its join", joined("Alice"));
    c.finish_ok();

    proxy.set_mode(Mode::Offer(strip_secure));
    let mut c = our_client(
        bin,
        &addr,
        "Alice",
        cdir.path(),
        &["--accept-new", "--allow-plaintext"],
        Some(PW),
    );
    c.expect_failure();
    let report = c.report();
    assert!(
        c.err.text().contains("no longer offers encryption"),
        "{report}"
    );
    assert!(!c.has_line(joined("Alice")), "{report}");
    let conn = proxy.conn(1);
    let t = conn.wait_ended();
    assert!(
        !contains(&t.down, b"\"secure\""),
        "the offer was stripped: {}",
        show(&t.down)
    );
    assert!(
        t.up.is_empty(),
        "the client must send nothing (least of all the password): {}",
        show(&t.up)
    );
    drop(t);

    // Without a pin, and without --allow-plaintext, it is refused too, and
    // says how to join anyway; again nothing is sent.
    let mut c = our_client(
        bin,
        &addr,
        "Carol",
        other.path(),
        &["--accept-new"],
        Some(PW),
    );
    c.expect_failure();
    let report = c.report();
    assert!(c.err.text().contains("--allow-plaintext"), "{report}");
    let conn = proxy.conn(2);
    let t = conn.wait_ended();
    assert!(t.up.is_empty(), "sent: {}", show(&t.up));
    drop(t);
    assert_eq!(server.log_count("joined"), 1, "{}", server.proc.report());
}

// ═════════════════════════════════════════════════════════════════════════════
// 6. LanTalk 2.0, both ways
// ═════════════════════════════════════════════════════════════════════════════

fn legacy_python_server(bin: &str) {
    let (d1, d2) = (TempDir::new("client-strict"), TempDir::new("client-lax"));
    let (_py, port) = python_server("PyHub", Some(PW));
    let proxy = Proxy::start(port, Mode::Transparent);
    let addr = proxy.addr();

    let mut strict = our_client(bin, &addr, "carol", d1.path(), &["--accept-new"], Some(PW));
    strict.expect_failure();
    let report = strict.report();
    let err = strict.err.text();
    assert!(err.contains("does not offer encryption"), "{report}");
    assert!(err.contains("--allow-plaintext"), "{report}");
    assert!(!strict.has_line(joined("carol")), "{report}");
    let conn = proxy.conn(0);
    let t = conn.wait_ended();
    assert!(
        t.up.is_empty(),
        "a refusing client must send nothing, least of all the password: {}",
        show(&t.up)
    );
    drop(t);
    let pinned = std::fs::read_to_string(d1.path().join("known_servers")).unwrap_or_default();
    assert!(!pinned.contains(&addr), "nothing to pin: {pinned}");

    let mut lax = our_client(
        bin,
        &addr,
        "carol",
        d2.path(),
        &["--accept-new", "--allow-plaintext"],
        Some(PW),
    );
    lax.wait_line("the join", |l| {
        l.starts_with("Connected as carol to PyHub.")
    });
    assert!(
        !lax.has_line(|l| l.starts_with("Encrypted;")),
        "{}",
        lax.report()
    );
    lax.finish_ok();
}

fn legacy_python_client(bin: &str) {
    let (strict_dir, lax_dir, cdir) = (
        TempDir::new("server-strict"),
        TempDir::new("server-lax"),
        TempDir::new("client"),
    );

    // Refused without --allow-plaintext, and told why.
    let strict = Server::start(bin, strict_dir.path(), &[], None);
    let mut py = python_client(strict.port, "pyuser", "");
    py.wait_out("the refusal", START, |t| {
        t.contains("[Auth failed]").then_some(())
    });
    assert!(
        py.out.text().contains("only accepts encrypted connections"),
        "{}",
        py.report()
    );
    let status = py.wait_exit();
    assert!(!status.success(), "{}", py.report());
    let refusal = strict.wait_log("Login refused for 127.0.0.1:");
    assert!(
        refusal.contains("only accepts encrypted connections"),
        "{refusal}"
    );
    assert_eq!(strict.log_count("joined"), 0);

    // Let in with it, and everyone is told.
    let lax = Server::start(bin, lax_dir.path(), &["--allow-plaintext"], None);
    let mut enc = our_client(
        bin,
        &lax.addr(),
        "Enc",
        cdir.path(),
        &["--accept-new"],
        None,
    );
    enc.wait_line("its join", joined("Enc"));
    let mut py = python_client(lax.port, "pyuser", "");
    let welcome = format!("Connected to 127.0.0.1:{}", lax.port);
    py.wait_out("its welcome banner", START, |t| {
        t.contains(&welcome).then_some(())
    });
    enc.wait_line("the unencrypted join notice", |l| {
        is_stamped(l, "*** pyuser joined from 127.0.0.1 (unencrypted). ***")
    });
    lax.wait_log("pyuser joined from 127.0.0.1 (unencrypted)");
    py.send("hello from 2.0");
    enc.wait_line("the Python user's message", |l| {
        is_stamped(l, "pyuser: hello from 2.0")
    });
    enc.send("hello back");
    py.wait_line("the encrypted user's message", |l| {
        l.ends_with("Enc: hello back")
    });
    enc.finish_ok();
}

// ═════════════════════════════════════════════════════════════════════════════
// 7. Fingerprints and key files
// ═════════════════════════════════════════════════════════════════════════════

/// `BIN fingerprint --data-dir DIR`: the `Server key:` fingerprint, checking
/// the `Client key:` line is there too.
fn fingerprint_cmd(bin: &str, dir: &Path) -> String {
    let mut cmd = Command::new(bin);
    cmd.arg("fingerprint")
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANTALK_DATA_DIR");
    let mut proc = Proc::spawn(format!("{} fingerprint", bin_label(bin)), cmd);
    proc.close_stdin();
    let status = proc.wait_exit();
    assert!(status.success(), "{}", proc.report());
    let text = proc.out.text();
    let server_line = text
        .lines()
        .find_map(|l| l.strip_prefix("Server key: "))
        .unwrap_or_else(|| panic!("no \"Server key:\" line\n{}", proc.report()));
    assert!(
        text.lines().any(|l| l.starts_with("Client key: SHA256:")),
        "{}",
        proc.report()
    );
    let (fp, path) = server_line
        .split_once(' ')
        .unwrap_or_else(|| panic!("{server_line:?}"));
    assert!(fp.starts_with("SHA256:"), "{server_line:?}");
    assert!(
        path.contains(&dir.join("server_key").display().to_string()),
        "names the key file: {server_line:?}"
    );
    fp.to_string()
}

fn fingerprint_matches_the_banner(bin: &str) {
    // The server first, then `fingerprint` on its data directory.
    let (d1, d2) = (TempDir::new("server-a"), TempDir::new("server-b"));
    let server = Server::start(bin, d1.path(), &[], None);
    let shown = fingerprint_cmd(bin, d1.path());
    assert_eq!(shown, server.fingerprint, "fingerprint and banner agree");
    let key_file = d1.path().join("server_key");
    assert_eq!(key_from_file(&key_file).fingerprint(), server.fingerprint);
    assert_private(&key_file);
    assert_private(&d1.path().join("client_key"));
    assert_eq!(fingerprint_cmd(bin, d1.path()), shown, "the key stays");

    // `fingerprint` first: the server uses the key it made.
    let made = fingerprint_cmd(bin, d2.path());
    assert_private(&d2.path().join("server_key"));
    let other = Server::start(bin, d2.path(), &[], None);
    assert_eq!(other.fingerprint, made);
    assert_ne!(made, shown, "each data directory has a key of its own");
}

// ═════════════════════════════════════════════════════════════════════════════
// 8. Replayed and corrupted frames
// ═════════════════════════════════════════════════════════════════════════════

/// The client's frames: 0 and 1 are its handshake messages, 2 its login (no
/// password here), 3 the first line typed after joining.
const FIRST_CHAT_FRAME: usize = 3;

/// The replay itself must never be delivered: Bob sees the line at most once.
fn replayed_frame_closes_the_connection(bin: &str) {
    tampered_frame(
        bin,
        Mode::Replay(FIRST_CHAT_FRAME),
        "replayed-once-55",
        &[0, 1],
        5,
    );
}

/// The authentic frame in front of the replay was sent by Alice and decrypts
/// fine: it must be delivered, exactly once, however TCP happens to chunk
/// the two copies. (The proxy writes both in one go, so the server usually
/// reads them in one chunk.)
fn replayed_frame_keeps_the_authentic_copy(bin: &str) {
    tampered_frame(
        bin,
        Mode::Replay(FIRST_CHAT_FRAME),
        "replayed-once-56",
        &[1],
        5,
    );
}

fn corrupted_frame_closes_the_connection(bin: &str) {
    tampered_frame(bin, Mode::Flip(FIRST_CHAT_FRAME), "flipped-bit-66", &[0], 4);
}

/// Alice (through the proxy) says `text` once after joining; the proxy
/// tampers with that frame. Bob (direct) must see it a number of times in
/// `delivered`, then Alice leave; the server must warn and close her
/// connection.
fn tampered_frame(bin: &str, mode: Mode, text: &str, delivered: &[usize], frames_sent: usize) {
    let (sdir, adir, bdir) = (
        TempDir::new("server"),
        TempDir::new("alice"),
        TempDir::new("bob"),
    );
    let server = Server::start(bin, sdir.path(), &[], None);
    let mut bob = our_client(
        bin,
        &server.addr(),
        "Bob",
        bdir.path(),
        &["--accept-new"],
        None,
    );
    bob.wait_line("its join", joined("Bob"));
    let proxy = Proxy::start(server.port, mode);
    let mut alice = our_client(
        bin,
        &proxy.addr(),
        "Alice",
        adir.path(),
        &["--accept-new"],
        None,
    );
    alice.wait_line("its join", joined("Alice"));
    bob.wait_line("Alice's join notice", |l| {
        is_stamped(l, "*** Alice joined from 127.0.0.1. ***")
    });

    alice.send(text);
    bob.wait_line("Alice's leave notice", |l| {
        is_stamped(l, "*** Alice left the chat. ***")
    });
    let said = bob.out.count(|l| is_stamped(l, &format!("Alice: {text}")));
    assert!(
        delivered.contains(&said),
        "Bob saw {text:?} {said} times, expected {delivered:?}\n{}",
        bob.report()
    );

    alice.expect_failure();
    assert!(
        alice.err.text().contains("Disconnected"),
        "{}",
        alice.report()
    );
    let warning = server.wait_log("Closed encrypted connection from 127.0.0.1:");
    assert!(warning.contains("WARNING"), "{warning}");
    assert!(warning.contains("a frame failed to decrypt"), "{warning}");

    let conn = proxy.conn(0);
    let t = conn.wait_ended();
    let (_, rest) = split_first_line(&t.up, "Alice's traffic");
    assert_eq!(
        frames(rest, "Alice's traffic").len(),
        frames_sent,
        "what the proxy forwarded"
    );
    drop(t);

    // Everyone else carries on.
    bob.send("/users");
    bob.wait_line("the user list", |l| is_stamped(l, "*** Online: Bob ***"));
    bob.finish_ok();
}
