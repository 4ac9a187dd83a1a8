//! LAN discovery, end to end: the real `lantalk-smol` and `lantalk-std`
//! binaries announcing and scanning, the real LanTalk 2.0 client finding our
//! server, and DNS-SD over mDNS between two network namespaces.
//!
//! Nothing here sends broadcast or multicast out of the machine's real
//! interfaces:
//!
//! * Servers run with `--bind 127.0.0.1 --beacon-addr 127.255.255.255
//!   --no-mdns`, scanners with `--no-mdns`: beacons go to the loopback
//!   broadcast address only. (On Linux a datagram to 127.255.255.255 is
//!   delivered to every socket bound to `0.0.0.0:<port>` with
//!   `SO_REUSEADDR`, which is exactly how a scanner listens; checked by
//!   experiment before these tests were written.) Each test has a discovery
//!   port of its own, so tests running in parallel never meet — except the
//!   LanTalk 2.0 test, which must use the fixed port 5051 and so runs one
//!   binary at a time.
//! * mDNS and the automatic directed-broadcast addresses run only inside two
//!   network namespaces that the test creates (`ip netns`, joined by a veth
//!   pair) and deletes. Creating them needs root; where `ip netns add`
//!   fails, that test fails saying so, unless
//!   `LANTALK_TEST_SKIP_UNAVAILABLE=1` is set (then it says so and passes:
//!   the only skip here).
//!
//! Every child is killed when its handle drops, panics included, and every
//! wait is bounded.

use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Bound for anything that should happen (a line, a process exiting).
const TIMEOUT: Duration = Duration::from_secs(30);

// ═════════════════════════════════════════════════════════════════════════════
// Instantiation for both runtimes
// ═════════════════════════════════════════════════════════════════════════════

macro_rules! discovery_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            discovery_tests!(@tests $bin;
                scan_finds_our_server,
                two_servers_on_one_host_are_both_listed,
                two_scanners_at_once_both_see_the_server,
                hostile_datagrams_are_ignored,
                lantalk2_client_finds_our_server,
                lantalk2_beacon_only_when_its_clients_may_join,
                mdns_and_directed_broadcast_between_namespaces,
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

discovery_tests!(smol, env!("CARGO_BIN_EXE_lantalk-smol"));
discovery_tests!(std_rt, env!("CARGO_BIN_EXE_lantalk-std"));

// ═════════════════════════════════════════════════════════════════════════════
// The tests
// ═════════════════════════════════════════════════════════════════════════════

fn scan_finds_our_server(bin: &str) {
    let port = free_udp_port();
    let server = Server::start(bin, "Loopback Room", &loopback_announce(port));
    // A user online shows in the listing.
    let alice_dir = TempDir::new("alice");
    let mut alice = Proc::spawn(
        "client",
        command(bin)
            .args([
                "client",
                &format!("127.0.0.1:{}", server.port),
                "--name",
                "Alice",
                "--accept-new",
                "--data-dir",
            ])
            .arg(alice_dir.path()),
    );
    server
        .proc
        .stdout
        .wait_for("Alice joined", |l| l.contains("Alice joined"));
    // The count reaches the beacons within one beacon interval; give it a
    // few before scanning.
    thread::sleep(Duration::from_millis(600));

    let scan = run_scan(
        bin,
        &[
            "--timeout",
            "1.5",
            "--discovery-port",
            &port.to_string(),
            "--no-mdns",
        ],
    );
    assert!(scan.status.success(), "scan failed:\n{scan}");
    let row = scan.row(server.port);
    assert!(row.contains("Loopback Room"), "{scan}");
    assert_eq!(scan.column(server.port, "SECURITY"), "encrypted", "{scan}");
    assert_eq!(
        scan.column(server.port, "FINGERPRINT"),
        server.fingerprint,
        "{scan}"
    );
    assert_eq!(scan.column(server.port, "USERS"), "1", "{scan}");
    assert_eq!(scan.column(server.port, "PASSWORD"), "no", "{scan}");
    assert_eq!(scan.column(server.port, "SEEN VIA"), "beacon", "{scan}");
    assert!(scan.stdout.contains("Found 1 LanTalk server"), "{scan}");
    alice.close_stdin();

    // Nothing on another port: exit 1, saying why and what to try.
    let other = free_udp_port();
    let none = run_scan(
        bin,
        &[
            "--timeout",
            "0.5",
            "--discovery-port",
            &other.to_string(),
            "--no-mdns",
        ],
    );
    assert_eq!(none.status.code(), Some(1), "{none}");
    assert!(none.stderr.contains("No LanTalk servers found"), "{none}");
    assert!(none.stderr.contains("firewall"), "{none}");
    assert!(none.stderr.contains("different subnet"), "{none}");
    assert!(none.stderr.contains("client HOST[:PORT]"), "{none}");
}

fn two_servers_on_one_host_are_both_listed(bin: &str) {
    let port = free_udp_port();
    let a = Server::start(bin, "First", &loopback_announce(port));
    let b = Server::start(bin, "Second", &loopback_announce(port));
    let scan = run_scan(
        bin,
        &[
            "--timeout",
            "1.5",
            "--discovery-port",
            &port.to_string(),
            "--no-mdns",
        ],
    );
    assert!(scan.status.success(), "{scan}");
    assert!(scan.row(a.port).contains("First"), "{scan}");
    assert!(scan.row(b.port).contains("Second"), "{scan}");
    assert!(scan.stdout.contains("Found 2 LanTalk servers"), "{scan}");
}

fn two_scanners_at_once_both_see_the_server(bin: &str) {
    let port = free_udp_port();
    let server = Server::start(bin, "Shared", &loopback_announce(port));
    let args = [
        "--timeout",
        "1.5",
        "--discovery-port",
        &port.to_string(),
        "--no-mdns",
    ];
    let first = spawn_scan(bin, &args);
    let second = spawn_scan(bin, &args);
    for scan in [first.finish(), second.finish()] {
        assert!(scan.status.success(), "{scan}");
        assert!(scan.row(server.port).contains("Shared"), "{scan}");
    }
}

fn hostile_datagrams_are_ignored(bin: &str) {
    let port = free_udp_port();
    let mut server = Server::start(bin, "Real", &loopback_announce(port));
    let scan = spawn_scan(
        bin,
        &[
            "--timeout",
            "2.5",
            "--discovery-port",
            &port.to_string(),
            "--no-mdns",
        ],
    );
    thread::sleep(Duration::from_millis(500));

    let evil_name = format!(
        "LANTALK_INFO {{\"name\":\"{}\",\"port\":1234,\"ver\":\"1\",\"enc\":false,\"pw\":false,\"users\":0}}",
        "E".repeat(65)
    );
    let info = |name: &str, port: &str| {
        format!(
            "LANTALK_INFO {{\"name\":{name},\"port\":{port},\"ver\":\"1\",\"enc\":false,\"pw\":false,\"users\":0}}"
        )
        .into_bytes()
    };
    let mut nested = b"LANTALK_INFO ".to_vec();
    nested.extend([b'['; 500]);
    nested.extend([b']'; 500]);
    let hostile: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0xff; 64],
        vec![b'A'; 1025],
        [b"LANTALK_SERVER:10.9.8.7:5050".as_slice(), &[b' '; 3000]].concat(),
        b"LANTALK_SERVER:10.9.8.7:0".to_vec(),
        b"LANTALK_SERVER:10.9.8.7:99999".to_vec(),
        b"LANTALK_SERVER:evil.example:5050".to_vec(),
        b"LANTALK_SERVER:10.9.8.7:5050\x00\x1b[2J".to_vec(),
        b"LANTALK_SERVER:\xc3".to_vec(),
        b"LANTALK_INFO {".to_vec(),
        b"LANTALK_INFO null".to_vec(),
        nested,
        evil_name.into_bytes(),
        info("\"evil\\u001b[2J\"", "1234"),
        info("\"evil\\u202e\"", "1234"),
        info("\"evil\"", "0"),
        info("\"evil\"", "70000"),
        info("\"evil\"", "\"1234\""),
        info("[\"evil\"]", "1234"),
    ];
    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a sender");
    sender.set_broadcast(true).expect("SO_BROADCAST");
    for _ in 0..3 {
        for h in &hostile {
            let _ = sender.send_to(h, (Ipv4Addr::LOCALHOST, port));
            let _ = sender.send_to(h, (Ipv4Addr::new(127, 255, 255, 255), port));
        }
        thread::sleep(Duration::from_millis(200));
    }
    let scan = scan.finish();
    assert!(
        scan.status.success(),
        "the scanner did not survive:\n{scan}"
    );
    assert!(scan.row(server.port).contains("Real"), "{scan}");
    assert!(scan.stdout.contains("Found 1 LanTalk server"), "{scan}");
    for bad in ["10.9.8.7", "evil", "EEEE", ":1234", ":70000"] {
        assert!(!scan.stdout.contains(bad), "listed {bad}:\n{scan}");
    }
    // The server is unaffected too.
    assert!(server.proc.alive(), "the server died");
}

fn lantalk2_client_finds_our_server(bin: &str) {
    // LanTalk 2.0 listens on the fixed port 5051: one test at a time.
    static PORT_5051: Mutex<()> = Mutex::new(());
    let _only_us = PORT_5051.lock().unwrap_or_else(|e| e.into_inner());
    let py = python();
    let mut args = loopback_announce(5051);
    args.push("--allow-plaintext".into());
    let server = Server::start(bin, "ForPython", &args);
    let scratch = TempDir::new("py");
    let mut cmd = command(py);
    cmd.args([
        "-c",
        "import json, socket, sys\n\
         probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         try:\n    probe.bind(('', 5051))\n\
         except OSError as e:\n    print('BUSY', e)\n    sys.exit(3)\n\
         probe.close()\n\
         from lantalk.client import discover_servers\n\
         print(json.dumps(discover_servers(2.0)))\n",
    ])
    .current_dir(scratch.path());
    let out = Proc::spawn("LanTalk 2.0 discover_servers()", &mut cmd).finish(TIMEOUT);
    if out.status.code() == Some(3) {
        panic!(
            "UDP port 5051 is busy: something on this machine holds it without SO_REUSEADDR, \
             so LanTalk 2.0's discover_servers() cannot listen. Stop it (`ss -lunp 'sport = 5051'` \
             shows what) and run the test again.\n{out}"
        );
    }
    assert!(out.status.success(), "{out}");
    let found: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("discover_servers() printed no JSON ({e}):\n{out}"));
    let expected = serde_json::json!(["127.0.0.1", server.port]);
    assert!(
        found.as_array().is_some_and(|a| a.contains(&expected)),
        "LanTalk 2.0 did not list 127.0.0.1:{}: {found}",
        server.port
    );
}

/// LanTalk 2.0's beacon goes out only with `--allow-plaintext`: otherwise
/// its clients would list a server that refuses them. Ours goes out always.
fn lantalk2_beacon_only_when_its_clients_may_join(bin: &str) {
    for plaintext in [false, true] {
        let port = free_udp_port();
        let listener = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).expect("bind");
        listener
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut args = loopback_announce(port);
        if plaintext {
            args.push("--allow-plaintext".into());
        }
        let server = Server::start(bin, "Beacons", &args);
        let (mut legacy, mut info) = (0, 0);
        let end = std::time::Instant::now() + Duration::from_millis(1500);
        let mut buf = [0u8; 2048];
        while std::time::Instant::now() < end {
            if let Ok((n, _)) = listener.recv_from(&mut buf) {
                let d = &buf[..n];
                let ours = format!(":{}", server.port);
                if d.starts_with(b"LANTALK_SERVER:") && d.ends_with(ours.as_bytes()) {
                    legacy += 1;
                } else if d.starts_with(b"LANTALK_INFO ") {
                    info += 1;
                }
            }
        }
        assert!(info > 0, "no LANTALK_INFO beacon (plaintext: {plaintext})");
        assert_eq!(
            legacy > 0,
            plaintext,
            "{legacy} LanTalk 2.0 beacons with --allow-plaintext {}",
            if plaintext { "on" } else { "off" }
        );
    }
}

fn mdns_and_directed_broadcast_between_namespaces(bin: &str) {
    let Some(net) = NetnsPair::create() else {
        return;
    };
    // In namespace A: one server announced by mDNS only (its beacons stay on
    // A's loopback), one by beacons only, to the automatic directed broadcast
    // address of A's veth. In namespace B, everything at its defaults.
    let m = Server::start_with(
        net.exec_a(bin),
        "Ns mDNS",
        &["--bind", "0.0.0.0", "--beacon-addr", "127.255.255.255"],
    );
    let b = Server::start_with(
        net.exec_a(bin),
        "Ns Beacon",
        &["--bind", "0.0.0.0", "--no-mdns"],
    );
    b.proc
        .stdout
        .wait_for("beacons to the veth's broadcast address", |l| {
            l.contains("LAN discovery: beacons") && l.contains("198.51.100.255 (as 198.51.100.1)")
        });

    let mut cmd = net.exec_b(bin);
    cmd.args(["scan", "--timeout", "6"]);
    let scan = ScanOutput::from(Proc::spawn("scan in namespace B", &mut cmd).finish(TIMEOUT));
    assert!(scan.status.success(), "{scan}");
    assert!(scan.row(m.port).contains("Ns mDNS"), "{scan}");
    assert!(scan.row(m.port).contains("198.51.100.1:"), "{scan}");
    assert_eq!(scan.column(m.port, "SEEN VIA"), "mdns", "{scan}");
    assert!(scan.row(b.port).contains("Ns Beacon"), "{scan}");
    assert!(scan.row(b.port).contains("198.51.100.1:"), "{scan}");
    assert_eq!(scan.column(b.port, "SEEN VIA"), "beacon", "{scan}");

    assert_eq!(scan.column(m.port, "FINGERPRINT"), m.fingerprint, "{scan}");
    assert_eq!(scan.column(b.port, "FINGERPRINT"), b.fingerprint, "{scan}");

    // The interactive menu offers the scan results and connects to the one
    // chosen ("Ns Beacon" sorts first). Being listed grants no trust: with
    // nobody at a terminal to confirm the server's key, the client refuses
    // it, and pins nothing.
    let client_dir = TempDir::new("menu-client");
    let mut cmd = net.exec_b(bin);
    cmd.env("LANTALK_DATA_DIR", client_dir.path());
    let mut menu = Proc::spawn("menu in namespace B", &mut cmd);
    menu.type_text("2\n1\nBob\n");
    menu.close_stdin();
    let out = menu.finish(TIMEOUT);
    assert!(out.stdout.contains("Found 2 server(s)"), "{out}");
    assert!(out.stdout.contains("[m] Enter manually"), "{out}");
    assert!(out.stdout.contains("Ns mDNS"), "{out}");
    assert!(!out.status.success(), "{out}");
    assert!(out.stderr.contains("not known"), "{out}");
    assert!(out.stderr.contains(&b.fingerprint), "{out}");
    let pinned = std::fs::read_to_string(client_dir.path().join("known_servers"));
    assert!(
        pinned.unwrap_or_default().trim().is_empty(),
        "a listed server's key was pinned without confirmation"
    );
}

// ═════════════════════════════════════════════════════════════════════════════
// Harness
// ═════════════════════════════════════════════════════════════════════════════

/// Server flags that keep every announcement on loopback.
fn loopback_announce(discovery_port: u16) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--beacon-addr",
        "127.255.255.255",
        "--beacon-interval",
        "0.2",
        "--no-mdns",
        "--discovery-port",
        &discovery_port.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// A UDP port nobody uses right now.
fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.local_addr())
        .expect("bind an ephemeral UDP port")
        .port()
}

#[path = "support/output.rs"]
mod output;
#[path = "support/python.rs"]
mod python;
#[path = "support/tempdir.rs"]
mod tempdir;

use output::Output;
use tempdir::TempDir;

/// Lines a child writes to one pipe (tests/support/output.rs), collected as
/// they come.
impl Output {
    /// Everything, once the pipe is closed (or after `limit`).
    fn text(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
        let mut text = state.0.join("\n");
        text.push('\n');
        text
    }
}

/// A child process, killed when dropped.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
}

/// How a child ended and what it printed.
struct Finished {
    what: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// `program` without the environment variables that would change where our
/// binaries keep their files or how much they log.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LANTALK_DATA_DIR")
        .env_remove("LANTALK_LOG_LEVEL");
    cmd
}

impl Proc {
    fn spawn(what: &str, cmd: &mut Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        let stdin = child.stdin.take();
        let stdout = Output::collect(format!("{what} stdout"), child.stdout.take().unwrap());
        let stderr = Output::collect(format!("{what} stderr"), child.stderr.take().unwrap());
        Proc {
            what: what.to_string(),
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    fn type_text(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(text.as_bytes())
            .expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (up to `limit`, then kills it and fails) for the child to exit.
    fn finish(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{} did not exit within {limit:?}\n--- stdout ---\n{}--- stderr ---\n{}",
                        self.what,
                        self.stdout.text(Duration::from_secs(1)),
                        self.stderr.text(Duration::from_secs(1))
                    );
                }
                Err(e) => panic!("waiting for {}: {e}", self.what),
            }
        };
        Finished {
            what: self.what.clone(),
            status,
            stdout: self.stdout.text(Duration::from_secs(5)),
            stderr: self.stderr.text(Duration::from_secs(5)),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `BIN server` with a data directory of its own.
struct Server {
    proc: Proc,
    port: u16,
    /// Its key fingerprint, as its banner shows it.
    fingerprint: String,
    _dir: TempDir,
}

impl Server {
    fn start(bin: &str, name: &str, args: &[String]) -> Server {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_with(command(bin), name, &args)
    }

    /// `cmd` (the binary, maybe behind `ip netns exec`) `server --port 0
    /// --name NAME --data-dir DIR ARGS…`; waits until it listens and
    /// announces.
    fn start_with(mut cmd: Command, name: &str, args: &[&str]) -> Server {
        let dir = TempDir::new("server");
        cmd.args(["server", "--port", "0", "--name", name, "--data-dir"])
            .arg(dir.path())
            .args(args);
        let proc = Proc::spawn(&format!("server {name:?}"), &mut cmd);
        let line = proc
            .stdout
            .wait_for("Listening on ADDR", |l| l.starts_with("Listening on "));
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        proc.stdout
            .wait_for("the announcement starting", |l| l.contains("LAN discovery"));
        let fingerprint = proc
            .stdout
            .wait_for("the key fingerprint", |l| l.contains("Key fingerprint: "))
            .split("Key fingerprint: ")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string();
        Server {
            proc,
            port,
            fingerprint,
            _dir: dir,
        }
    }
}

/// A finished `scan`, with its table.
struct ScanOutput(Finished);

impl std::ops::Deref for ScanOutput {
    type Target = Finished;
    fn deref(&self) -> &Finished {
        &self.0
    }
}

impl std::fmt::Display for ScanOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Finished> for ScanOutput {
    fn from(f: Finished) -> Self {
        ScanOutput(f)
    }
}

impl ScanOutput {
    /// The table row of the server on TCP `port`; exactly one.
    fn row(&self, port: u16) -> &str {
        let needle = format!(":{port} ");
        let rows: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("  ") && l.contains(&needle))
            .collect();
        assert_eq!(rows.len(), 1, "want one row for port {port}:\n{self}");
        rows[0]
    }

    /// The cell under `header` in the row of the server on `port`.
    fn column(&self, port: u16, header: &str) -> String {
        let head = self
            .stdout
            .lines()
            .find(|l| l.contains("NAME") && l.contains("ADDRESS"))
            .unwrap_or_else(|| panic!("no table header:\n{self}"));
        let start = head
            .find(header)
            .unwrap_or_else(|| panic!("no {header} column"));
        let row: Vec<char> = self.row(port).chars().collect();
        let head_chars = head[..start].chars().count();
        let cell: String = row.iter().skip(head_chars).collect();
        // Columns are separated by two or more spaces.
        cell.split("  ").next().unwrap_or("").trim().to_string()
    }
}

struct RunningScan(Proc);

impl RunningScan {
    fn finish(self) -> ScanOutput {
        ScanOutput(self.0.finish(TIMEOUT))
    }
}

fn spawn_scan(bin: &str, args: &[&str]) -> RunningScan {
    let mut cmd = command(bin);
    cmd.arg("scan").args(args);
    RunningScan(Proc::spawn("scan", &mut cmd))
}

fn run_scan(bin: &str, args: &[&str]) -> ScanOutput {
    spawn_scan(bin, args).finish()
}

// ── Two network namespaces and a veth pair ───────────────────────────────────

/// Namespaces `A` (198.51.100.1/24) and `B` (198.51.100.2/24) joined by a
/// veth pair, deleted (with the pair) when dropped.
struct NetnsPair {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What a test does when what it needs from the machine is missing: it
/// fails, saying what is missing, because a test that passes without
/// running hides that nothing was checked. With
/// `LANTALK_TEST_SKIP_UNAVAILABLE=1` it says so and passes instead (for
/// machines that cannot provide it, such as an unprivileged container).
fn unavailable(what: &str) {
    if std::env::var("LANTALK_TEST_SKIP_UNAVAILABLE").as_deref() == Ok("1") {
        eprintln!("SKIPPED (LANTALK_TEST_SKIP_UNAVAILABLE=1): {what}");
        return;
    }
    panic!(
        "{what}\nThis test cannot run here. Set LANTALK_TEST_SKIP_UNAVAILABLE=1 to skip it \
         instead of failing."
    );
}

impl NetnsPair {
    /// `None` (after saying why) where namespaces cannot be created and
    /// `LANTALK_TEST_SKIP_UNAVAILABLE=1` allows that; otherwise that fails
    /// the test (see [`unavailable`]).
    fn create() -> Option<NetnsPair> {
        static N: AtomicU64 = AtomicU64::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let a = format!("lantalk-disc-{tag}-a");
        if let Err(e) = ip(&["netns", "add", &a]) {
            unavailable(&format!(
                "mDNS between network namespaces needs `ip netns add`, which failed here \
                 ({e}). Run the tests as root with iproute2 installed (`cargo xtask test` \
                 installs it)."
            ));
            return None;
        }
        let net = NetnsPair {
            a,
            b: format!("lantalk-disc-{tag}-b"),
        };
        let (va, vb) = (format!("ltd{tag}a"), format!("ltd{tag}b"));
        let steps: [&[&str]; 10] = [
            &["netns", "add", &net.b],
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
            &["link", "set", &va, "netns", &net.a],
            &["link", "set", &vb, "netns", &net.b],
            &["-n", &net.a, "addr", "add", "198.51.100.1/24", "dev", &va],
            &["-n", &net.b, "addr", "add", "198.51.100.2/24", "dev", &vb],
            &["-n", &net.a, "link", "set", "lo", "up"],
            &["-n", &net.b, "link", "set", "lo", "up"],
            &["-n", &net.a, "link", "set", &va, "up"],
            &["-n", &net.b, "link", "set", &vb, "up"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                // Do not leave the veth behind in the root namespace.
                let _ = ip(&["link", "del", &va]);
                panic!("setting up the namespaces: {e}");
            }
        }
        Some(net)
    }

    fn exec(ns: &str, bin: &str) -> Command {
        let mut cmd = command("ip");
        cmd.args(["netns", "exec", ns, bin]);
        cmd
    }

    fn exec_a(&self, bin: &str) -> Command {
        NetnsPair::exec(&self.a, bin)
    }

    fn exec_b(&self, bin: &str) -> Command {
        NetnsPair::exec(&self.b, bin)
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and so the pair.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

// ── The reference client, provisioned as tests/interop.rs does it ────────────

/// The Python interpreter that has `lantalk==2.0.0`, provisioned on first use
/// as tests/interop.rs does it (tests/support/python.rs; both use the same
/// venv).
fn python() -> &'static Path {
    python::interpreter("This test needs")
}
