//! Drives the server state machine with a script of operations and checks its
//! invariants after every step. The byte format is documented in README.md
//! ("protocol") and mirrored by make_corpus.py.
#![no_main]

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use lantalk_core::bans::canonical;
use lantalk_core::json::ObjectWriter;
use lantalk_core::names::{name_key, validate_username};
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::protocol::{self, ServerLine};
use lantalk_core::ratelimit::Rate;
use lantalk_core::server::{
    Action, CloseReason, ConnId, DisconnectCause, Payload, Server, ServerConfig,
};
use lantalk_core::{BanList, Instant, Now};
use lantalk_fuzz::{chunks, show, trace, Reader, MAX_ACTIONS_PER_STEP, MAX_STEPS};
use libfuzzer_sys::fuzz_target;

// ── Vocabulary (indices are part of the input format; keep make_corpus.py in sync) ──

const IPS: [IpAddr; 10] = [
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    // ::ffff:10.0.0.1, the same machine as 10.0.0.1 through a dual-stack socket
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
    // ::ffff:127.0.0.1
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001)),
    IpAddr::V4(Ipv4Addr::new(192, 168, 1, 22)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    // ::ffff:10.0.0.3
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0003)),
];

const JUNK: [&[u8]; 18] = [
    b"{",
    b"[1]",
    b"\xff\xfe",
    b"{\"type\": \"ping\"}",
    b"{\"type\": 5}",
    b"{\"type\": \"message\"}",
    b"{\"type\": \"message\", \"text\": 5}",
    b"{\"username\": 5}",
    b"{\"password\": \"x\"}",
    b"",
    b"   ",
    b"null",
    b"{\"type\": \"message\", \"text\": \"   \"}",
    b"hello",
    b"{\"username\": \"alice\", \"password\": 1}",
    b"{\"username\": null}",
    b"\r",
    b"{\"type\": \"message\", \"text\": \"hi\", \"type\": \"x\"}",
];

const USER_CMDS: [&str; 13] = [
    "/users",
    "/quit",
    "/exit",
    "/q",
    "/help",
    "/QUIT",
    "/pm",
    "/frob",
    "/pm  ",
    "/Users extra",
    "/me waves",
    "/me  ",
    "/ME dances",
];

const CONSOLE_CMDS: [&str; 15] = [
    "/kick", "/ban", "/unban", "/users", "/stats", "/bans", "/quit", "/help", "", "/KICK", "/Ban",
    "/frob", "/exit", "/q", "<long>",
];

// ── Configuration (first input byte) ──

const MAX_CLIENTS: usize = 8;
const MAX_PER_ADDRESS: usize = 3;
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// With config bit 64: shorter than the login timeout, so a user can go idle
/// while the login deadline is still armed.
const SHORT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

fn secret() -> PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| PasswordHash::new("secret", [1; 16], HashParams::INSECURE_FAST))
        .clone()
}

fn config(bits: u8) -> (ServerConfig, BanList) {
    let config = ServerConfig {
        name: "Hub".to_string(),
        password: (bits & 1 != 0).then(secret),
        rate_limit: (bits & 4 == 0).then(|| Rate::new(3, Duration::from_secs(1))),
        flood_kick: Rate::new(2, Duration::from_secs(10)),
        failed_logins: Rate::new(3, Duration::from_secs(60)),
        auth_timeout: AUTH_TIMEOUT,
        idle_timeout: Some(if bits & 64 != 0 {
            SHORT_IDLE_TIMEOUT
        } else {
            IDLE_TIMEOUT
        }),
        max_clients: MAX_CLIENTS,
        max_per_address: MAX_PER_ADDRESS,
        exempt_loopback: bits & 2 != 0,
        max_line: if bits & 8 != 0 { 8192 } else { 256 },
        max_malformed_in_a_row: if bits & 16 != 0 { 3 } else { 10 },
        ..ServerConfig::default()
    };
    let bans = if bits & 32 != 0 {
        [IPS[2]].into_iter().collect()
    } else {
        BanList::new()
    };
    (config, bans)
}

// ── The script ──

struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", show(&self.0))
    }
}

#[derive(Debug)]
enum LineKind {
    Login { name: String, password: String },
    Chat(String),
    Junk(Bytes),
    Raw(Bytes),
    Typed { kind: String, text: String },
    Pm { to: String, text: String },
    Cmd(&'static str),
    Repeat { n: u8, text: String },
}

impl LineKind {
    fn decode(r: &mut Reader) -> (LineKind, bool) {
        let k = r.u8();
        let crlf = k & 0x80 != 0;
        let kind = match k & 0x7f & 7 {
            0 => LineKind::Login {
                name: r.str8(),
                password: r.str8(),
            },
            1 => LineKind::Chat(r.str8()),
            2 => LineKind::Junk(Bytes(r.pick(&JUNK).to_vec())),
            3 => LineKind::Raw(Bytes(r.blob8().to_vec())),
            4 => LineKind::Typed {
                kind: r.str8(),
                text: r.str8(),
            },
            5 => LineKind::Pm {
                to: r.str8(),
                text: r.str8(),
            },
            6 => LineKind::Cmd(r.pick(&USER_CMDS)),
            _ => LineKind::Repeat {
                n: r.u8() % 16,
                text: r.str8(),
            },
        };
        (kind, crlf)
    }

    fn encode(&self, crlf: bool) -> Vec<u8> {
        let one = |mut line: Vec<u8>| {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if crlf {
                line.push(b'\r');
            }
            line.push(b'\n');
            line
        };
        match self {
            LineKind::Login { name, password } => one(protocol::login(name, password).into()),
            LineKind::Chat(text) => one(protocol::chat(text).into()),
            LineKind::Junk(b) | LineKind::Raw(b) => one(b.0.clone()),
            LineKind::Typed { kind, text } => one(ObjectWriter::new()
                .str("type", kind)
                .str("text", text)
                .finish_line()
                .into()),
            LineKind::Pm { to, text } => one(protocol::chat(&format!("/pm {to} {text}")).into()),
            LineKind::Cmd(cmd) => one(protocol::chat(cmd).into()),
            LineKind::Repeat { n, text } => {
                let line = one(protocol::chat(text).into());
                line.repeat(*n as usize)
            }
        }
    }
}

#[derive(Debug)]
enum Op {
    Connect {
        addr: SocketAddr,
    },
    Input {
        conn: u8,
        bytes: Bytes,
        splits: Vec<usize>,
    },
    Line {
        conn: u8,
        line: LineKind,
        crlf: bool,
    },
    Disconnect {
        conn: u8,
        cause: DisconnectCause,
    },
    Advance {
        millis: u64,
    },
    Console {
        line: String,
    },
    Shutdown,
    Bulk {
        conn: u8,
        byte: u8,
        len: usize,
        newline: bool,
    },
    SlowReader {
        conn: u8,
    },
}

const NUM_OPS: u8 = 9;

impl Op {
    fn decode(r: &mut Reader) -> Op {
        match r.u8() % NUM_OPS {
            0 => {
                let ip = r.pick(&IPS);
                let port = 40000 + r.u8() as u16;
                Op::Connect {
                    addr: SocketAddr::new(ip, port),
                }
            }
            1 => {
                let conn = r.u8();
                let bytes = r.blob16().to_vec();
                let splits = r.splits(bytes.len(), 3);
                Op::Input {
                    conn,
                    bytes: Bytes(bytes),
                    splits,
                }
            }
            2 => {
                let conn = r.u8();
                let (line, crlf) = LineKind::decode(r);
                Op::Line { conn, line, crlf }
            }
            3 => Op::Disconnect {
                conn: r.u8(),
                cause: if r.u8() & 1 == 0 {
                    DisconnectCause::PeerClosed
                } else {
                    DisconnectCause::SlowReader
                },
            },
            4 => Op::Advance {
                millis: r.u16() as u64 * 8,
            },
            5 => {
                let cmd = r.pick(&CONSOLE_CMDS);
                let arg = r.str8();
                let line = match cmd {
                    "" => arg,
                    "<long>" => "x".repeat(protocol::MAX_TEXT_CHARS + 1) + &arg,
                    cmd => format!("{cmd} {arg}"),
                };
                Op::Console { line }
            }
            6 => Op::Shutdown,
            7 => Op::Bulk {
                conn: r.u8(),
                byte: r.u8(),
                len: r.u16() as usize,
                newline: r.u8() & 1 != 0,
            },
            _ => Op::SlowReader { conn: r.u8() },
        }
    }
}

#[derive(Debug)]
struct Script {
    config_bits: u8,
    ops: Vec<Op>,
}

impl Script {
    fn decode(data: &[u8]) -> Script {
        let mut r = Reader::new(data);
        let config_bits = r.u8();
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < MAX_STEPS {
            ops.push(Op::decode(&mut r));
        }
        Script { config_bits, ops }
    }
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.len();
        Ok(Script::decode(u.bytes(n)?))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Script::decode(u.take_rest()))
    }
}

// ── The model the server is checked against ──

struct ConnModel {
    id: ConnId,
    ip: IpAddr,
    open: bool,
    /// Why it is no longer open (Close reason or "disconnected by the runtime").
    closed: Option<String>,
    close_reason: Option<CloseReason>,
    got_first: bool,
    connected_at: Instant,
    last_input: Instant,
    /// Set by the `auth_ok` line the server sent.
    name: Option<String>,
    /// Login order (`usernames()` lists users by it).
    joined: u64,
}

impl ConnModel {
    fn deadline(&self, idle_timeout: Duration) -> Instant {
        match self.name {
            Some(_) => self.last_input + idle_timeout,
            None => self.connected_at + AUTH_TIMEOUT,
        }
    }
}

struct Harness {
    server: Server,
    max_line: usize,
    exempt_loopback: bool,
    idle_timeout: Duration,
    now: Now,
    conns: Vec<ConnModel>,
    index: HashMap<ConnId, usize>,
    /// Indices (in `conns`) of the open connections.
    open_set: BTreeSet<usize>,
    /// Closed since the last `check_state`.
    newly_closed: Vec<usize>,
    shutdown_seen: bool,
    /// Connections whose next Send fails as if their outbound queue were full.
    slow: HashSet<ConnId>,
    last_persist: Option<BanList>,
    /// The last payload checked: a broadcast hands the same allocation to
    /// every recipient, so it is parsed once.
    /// With whether it was a message/pm/system line.
    last_payload: Option<(Payload, bool)>,
    logins: u64,
    step: usize,
}

impl Harness {
    fn resolve(&self, b: u8) -> ConnId {
        if self.conns.is_empty() || b == 0xff {
            ConnId(1_000_000 + b as u64) // never opened
        } else {
            self.conns[b as usize % self.conns.len()].id
        }
    }

    fn is_open_model(&self, id: ConnId) -> bool {
        self.index.get(&id).is_some_and(|&i| self.conns[i].open)
    }

    fn conn(&mut self, id: ConnId) -> &mut ConnModel {
        match self.index.get(&id) {
            Some(&i) => &mut self.conns[i],
            None => panic!(
                "step {}: action addresses {id}, which was never opened",
                self.step
            ),
        }
    }

    fn open_conns(&self) -> impl Iterator<Item = &ConnModel> {
        self.open_set.iter().map(|&i| &self.conns[i])
    }

    fn mark_closed(&mut self, id: ConnId, why: String, reason: Option<CloseReason>) {
        let step = self.step;
        let Some(&i) = self.index.get(&id) else {
            panic!("step {step}: {why} for {id}, which was never opened");
        };
        let c = &mut self.conns[i];
        assert!(
            c.open,
            "step {step}: {why} for {id}, which is already closed ({:?})",
            c.closed
        );
        c.open = false;
        c.closed = Some(why);
        c.close_reason = reason;
        self.open_set.remove(&i);
        self.newly_closed.push(i);
    }

    /// Carries out every pending action the way `driver::dispatch_server`
    /// does, checking each one.
    fn drain(&mut self) {
        // Actions moved out of the server's queue when a mid-drain disconnect
        // happened, tagged with how many such disconnects had happened before:
        // those were queued *before* the disconnect, so the runtime drops any of
        // them that still address the connection (Transport::send/close are
        // no-ops for an unknown connection).
        let mut pre: VecDeque<(Action, usize)> = VecDeque::new();
        let mut gone: Vec<ConnId> = Vec::new();
        let mut n = 0usize;
        loop {
            let (action, tag) = match pre.pop_front() {
                Some(x) => x,
                None => match self.server.poll_action() {
                    Some(a) => (a, usize::MAX),
                    None => break,
                },
            };
            n += 1;
            assert!(
                n <= MAX_ACTIONS_PER_STEP,
                "step {}: more than {MAX_ACTIONS_PER_STEP} actions in one step (loop?)",
                self.step
            );
            let stale = |conn: ConnId| tag != usize::MAX && gone[tag..].contains(&conn);
            if trace() {
                match &action {
                    Action::Send { conn, bytes } => eprintln!("    send {conn} {}", show(bytes)),
                    Action::Event(e) => eprintln!("    event {:?} {}", e.kind, e.message),
                    a => eprintln!("    {a:?}"),
                }
            }
            match action {
                Action::Send { conn, bytes } => {
                    if stale(conn) {
                        continue;
                    }
                    self.check_send(conn, &bytes);
                    if self.slow.remove(&conn) {
                        let k = gone.len();
                        while let Some(a) = self.server.poll_action() {
                            pre.push_back((a, k));
                        }
                        // The core may have closed it in this very batch (its
                        // Close is still queued): then the disconnect changes
                        // nothing, and is no error.
                        let was_open = self.server.is_open(conn);
                        let r = self.server.handle_disconnect(
                            self.now,
                            conn,
                            DisconnectCause::SlowReader,
                        );
                        assert!(r.is_ok(), "step {}: disconnect of {conn}: {r:?}", self.step);
                        if was_open {
                            let why = "successful mid-dispatch handle_disconnect(SlowReader)";
                            self.mark_closed(conn, why.into(), None);
                            gone.push(conn);
                        }
                    }
                }
                Action::Close { conn, reason } => {
                    if stale(conn) {
                        continue;
                    }
                    self.mark_closed(conn, format!("Close({reason:?}) action"), Some(reason));
                }
                Action::PersistBans(list) => self.last_persist = Some(list),
                // A runtime answers off its loop; here, within the same step.
                Action::CheckPassword(check) => {
                    self.server.handle_password_checked(self.now, check.run())
                }
                // The fuzzed servers do not approve connections.
                Action::Event(_) | Action::AskOperator(_) | Action::PersistTrusted(_) => {}
                // The fuzzed servers keep history in memory only: a store
                // request would be the core asking a store nobody configured.
                Action::Store(request) => {
                    panic!(
                        "step {}: store request without a store: {request:?}",
                        self.step
                    )
                }
                // File sharing is off on the fuzzed servers (and needs an
                // encrypted session): none of its effects may appear.
                Action::Files(_)
                | Action::PersistFiles(_)
                | Action::WatchDrain(_)
                | Action::PauseReading { .. } => {
                    panic!(
                        "step {}: a file effect with sharing off: {action:?}",
                        self.step
                    )
                }
                // No plugins are configured on the fuzzed servers.
                Action::Plugin(_) => panic!("step {}: a plugin effect: {action:?}", self.step),
                Action::Shutdown => {
                    assert!(
                        !self.shutdown_seen,
                        "step {}: a second Shutdown action",
                        self.step
                    );
                    self.shutdown_seen = true;
                }
            }
        }
    }

    fn check_send(&mut self, conn: ConnId, payload: &Payload) {
        let bytes: &[u8] = payload;
        let seen = self
            .last_payload
            .as_ref()
            .is_some_and(|(p, chat)| *chat && Arc::ptr_eq(p, payload));
        let step = self.step;
        let logins = self.logins;
        let c = self.conn(conn);
        assert!(
            c.open,
            "step {step}: Send to {conn}, which is closed ({:?}): {}",
            c.closed,
            show(bytes)
        );
        assert!(
            seen || bytes.last() == Some(&b'\n') && !bytes[..bytes.len() - 1].contains(&b'\n'),
            "step {step}: Send to {conn} is not exactly one line: {}",
            show(bytes)
        );
        if seen && c.got_first && c.name.is_some() {
            // The same broadcast again (a message/pm/system line, checked).
            return;
        }
        let line = match protocol::parse_server_line(&bytes[..bytes.len() - 1]) {
            Ok(ServerLine::Other) | Err(_) => {
                panic!(
                    "step {step}: client cannot parse what the server sent: {}",
                    show(bytes)
                )
            }
            Ok(line) => line,
        };
        let first = !c.got_first;
        c.got_first = true;
        let chat = matches!(
            line,
            ServerLine::Message { .. } | ServerLine::Pm { .. } | ServerLine::System { .. }
        );
        match (&c.name, line) {
            (None, ServerLine::AuthRequest { .. } | ServerLine::AuthFail { .. }) if first => {}
            (None, ServerLine::AuthFail { .. }) => {}
            (None, ServerLine::AuthOk { username, .. }) if !first => {
                assert!(
                    validate_username(&username).is_ok(),
                    "step {step}: {conn} logged in with an invalid name {username:?}"
                );
                c.name = Some(username);
                c.joined = logins;
                self.logins += 1;
            }
            (
                Some(_),
                ServerLine::Message { .. } | ServerLine::Pm { .. } | ServerLine::System { .. },
            ) => {}
            (name, line) => panic!(
                "step {step}: {conn} (first line: {first}, logged in as {name:?}) was sent \
                 {line:?}"
            ),
        }
        self.last_payload = Some((Arc::clone(payload), chat));
    }

    /// Everything that must hold between steps.
    fn check_state(&mut self) {
        let step = self.step;
        let now = self.now.instant;
        let s = &self.server;
        let mut open = 0;
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        let mut names = Vec::new();
        let mut earliest: Option<Instant> = None;
        for i in self.newly_closed.drain(..) {
            let id = self.conns[i].id;
            assert!(
                !s.is_open(id),
                "step {step}: server still has {id} open, but it was closed ({:?})",
                self.conns[i].closed
            );
            assert_eq!(
                s.buffered(id),
                None,
                "step {step}: closed {id} still buffers input"
            );
        }
        for &i in &self.open_set {
            let c = &self.conns[i];
            let id = c.id;
            assert!(
                s.is_open(id),
                "step {step}: the server forgot {id} without a Close action"
            );
            let buffered = s.buffered(id);
            open += 1;
            let b = buffered.unwrap_or_else(|| panic!("step {step}: open {id} has no buffer"));
            assert!(
                b <= self.max_line,
                "step {step}: {id} buffers {b} bytes, more than max_line {}",
                self.max_line
            );
            *per_ip.entry(c.ip).or_default() += 1;
            assert!(
                !s.bans().contains(c.ip),
                "step {step}: {id} from banned {} is still open",
                c.ip
            );
            if let Some(name) = &c.name {
                names.push((c.joined, name.as_str()));
            }
            let d = c.deadline(self.idle_timeout);
            assert!(
                d > now,
                "step {step}: {id} is still open at {now:?}, past its deadline {d:?} \
                 (logged in: {:?})",
                c.name
            );
            earliest = Some(earliest.map_or(d, |e: Instant| e.min(d)));
        }
        assert_eq!(
            s.connection_count(),
            open,
            "step {step}: connection_count disagrees with the Close actions"
        );
        assert!(
            open <= MAX_CLIENTS,
            "step {step}: {open} > max_clients connections"
        );
        for (ip, n) in &per_ip {
            if !(self.exempt_loopback && ip.is_loopback()) {
                assert!(
                    *n <= MAX_PER_ADDRESS,
                    "step {step}: {n} connections from {ip}, over max_per_address"
                );
            }
        }

        names.sort_unstable();
        let names: Vec<&str> = names.into_iter().map(|(_, n)| n).collect();
        let users = s.usernames();
        let mut keys = HashSet::new();
        for u in &users {
            assert!(
                keys.insert(name_key(u)),
                "step {step}: username {u:?} is not unique (case-insensitively): {users:?}"
            );
        }
        assert_eq!(
            users, names,
            "step {step}: usernames() disagrees with the auth_ok lines sent (in login order)"
        );

        let timeout = s.poll_timeout();
        if let Some(t) = timeout {
            assert!(
                t > now,
                "step {step}: poll_timeout {t:?} is not after now {now:?}"
            );
        }
        if let Some(e) = earliest {
            match timeout {
                Some(t) => assert!(
                    t <= e,
                    "step {step}: poll_timeout {t:?} is later than a connection's deadline {e:?}"
                ),
                None => {
                    panic!("step {step}: no poll_timeout although open connections have deadlines")
                }
            }
        }

        assert_eq!(
            s.is_shut_down(),
            self.shutdown_seen,
            "step {step}: is_shut_down disagrees with the Shutdown action"
        );
        if self.shutdown_seen {
            assert_eq!(open, 0, "step {step}: connections open after shutdown");
            assert_eq!(timeout, None, "step {step}: timers armed after shutdown");
        }

        if let Some(list) = self.last_persist.take() {
            assert_eq!(
                &list,
                s.bans(),
                "step {step}: the last PersistBans is not the current ban list"
            );
            assert_eq!(
                BanList::parse(&list.to_file_bytes()).as_ref(),
                Ok(&list),
                "step {step}: persisted ban file does not read back"
            );
        }
    }

    fn after(&mut self) {
        self.drain();
        self.check_state();
    }

    fn input(&mut self, id: ConnId, bytes: &[u8]) {
        let open = self.is_open_model(id);
        let issued = self.index.contains_key(&id);
        let r = self.server.handle_input(self.now, id, bytes);
        // An issued id, closed or open, is no error (the bytes of a closed
        // one are dropped; `drain` checks nothing is sent); another is.
        assert_eq!(
            r.is_ok(),
            issued,
            "step {}: handle_input({id}) = {r:?} (open={open})",
            self.step
        );
        if open {
            let now = self.now.instant;
            self.conn(id).last_input = now;
        }
        self.after();
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Connect { addr } => {
                let ip = canonical(addr.ip());
                let per = self.open_conns().filter(|c| c.ip == ip).count();
                let refused = self.shutdown_seen
                    || self.server.bans().contains(ip)
                    || self.open_conns().count() >= MAX_CLIENTS
                    || (!(self.exempt_loopback && ip.is_loopback()) && per >= MAX_PER_ADDRESS);
                let id = self.server.handle_connect(self.now, *addr);
                if let Some(last) = self.conns.last() {
                    assert!(
                        id > last.id,
                        "step {}: ConnId {id} reused or out of order",
                        self.step
                    );
                }
                self.index.insert(id, self.conns.len());
                self.open_set.insert(self.conns.len());
                self.conns.push(ConnModel {
                    id,
                    ip,
                    open: true,
                    closed: None,
                    close_reason: None,
                    got_first: false,
                    connected_at: self.now.instant,
                    last_input: self.now.instant,
                    name: None,
                    joined: 0,
                });
                self.after();
                let c = &self.conns[self.conns.len() - 1];
                assert_eq!(
                    c.open, !refused,
                    "step {}: connect from {addr} refused={} but expected refused={refused} \
                     ({:?})",
                    self.step, !c.open, c.closed
                );
            }
            Op::Input {
                conn,
                bytes,
                splits,
            } => {
                let id = self.resolve(*conn);
                for chunk in chunks(&bytes.0, splits) {
                    self.input(id, chunk);
                }
            }
            Op::Line { conn, line, crlf } => {
                let id = self.resolve(*conn);
                self.input(id, &line.encode(*crlf));
            }
            Op::Bulk {
                conn,
                byte,
                len,
                newline,
            } => {
                let id = self.resolve(*conn);
                let mut bytes = vec![*byte; *len];
                if *newline {
                    bytes.push(b'\n');
                }
                self.input(id, &bytes);
            }
            Op::Disconnect { conn, cause } => {
                let id = self.resolve(*conn);
                let open = self.is_open_model(id);
                let issued = self.index.contains_key(&id);
                let r = self.server.handle_disconnect(self.now, id, *cause);
                assert_eq!(
                    r.is_ok(),
                    issued,
                    "step {}: handle_disconnect({id}) = {r:?} (open={open})",
                    self.step
                );
                if open {
                    self.mark_closed(id, format!("handle_disconnect({cause:?})"), None);
                }
                self.after();
            }
            Op::Advance { millis } => {
                self.now = self.now.advanced_by(Duration::from_millis(*millis));
                self.server.handle_timeout(self.now);
                self.after();
            }
            Op::Console { line } => self.console(line),
            Op::Shutdown => {
                self.server.shutdown(self.now);
                self.after();
                assert!(
                    self.shutdown_seen,
                    "step {}: shutdown() without Shutdown action",
                    self.step
                );
            }
            Op::SlowReader { conn } => {
                let id = self.resolve(*conn);
                self.slow.insert(id);
                self.after();
            }
        }
    }

    fn console(&mut self, line: &str) {
        let step = self.step;
        // What the command should do, parsed the way the console does.
        let trimmed = line.trim();
        let active = !trimmed.is_empty() && !self.shutdown_seen && trimmed.starts_with('/');
        let (cmd, arg) = match trimmed.split_once(char::is_whitespace) {
            Some((cmd, arg)) => (cmd.to_lowercase(), arg.trim()),
            None => (trimmed.to_lowercase(), ""),
        };
        let user = |h: &Harness| {
            h.open_conns()
                .find(|c| c.name.as_deref().map(name_key) == Some(name_key(arg)))
                .map(|c| (c.id, c.ip))
        };
        let target = if active && !arg.is_empty() {
            user(self)
        } else {
            None
        };
        self.server.handle_console(self.now, line);
        self.after();
        if !active || arg.is_empty() {
            return;
        }
        let reason_of = |h: &Harness, id: ConnId| h.conns[h.index[&id]].close_reason;
        match cmd.as_str() {
            "/kick" => {
                if let Some((id, _)) = target {
                    assert_eq!(
                        reason_of(self, id),
                        Some(CloseReason::Kicked),
                        "step {step}: /kick {arg} did not kick {id}"
                    );
                }
            }
            "/ban" => {
                let ip = match target {
                    Some((id, ip)) => {
                        assert_eq!(
                            reason_of(self, id),
                            Some(CloseReason::Banned),
                            "step {step}: /ban {arg} did not ban {id}"
                        );
                        Some(ip)
                    }
                    None => arg.parse::<IpAddr>().ok(),
                };
                if let Some(ip) = ip {
                    assert!(
                        self.server.bans().contains(ip),
                        "step {step}: /ban {arg}: {ip} is not in the ban list"
                    );
                }
            }
            "/unban" => {
                if let Ok(ip) = arg.parse::<IpAddr>() {
                    assert!(
                        !self.server.bans().contains(ip),
                        "step {step}: /unban {arg}: {ip} is still banned"
                    );
                }
            }
            _ => {}
        }
    }
}

fuzz_target!(|script: Script| {
    let (config, bans) = config(script.config_bits);
    let max_line = config.max_line;
    let exempt_loopback = config.exempt_loopback;
    let idle_timeout = config.idle_timeout.unwrap_or(IDLE_TIMEOUT);
    let now = Now::from_secs_f64(0.0);
    let mut h = Harness {
        server: Server::new(config, now, bans),
        max_line,
        exempt_loopback,
        idle_timeout,
        now,
        conns: Vec::new(),
        index: HashMap::new(),
        open_set: BTreeSet::new(),
        newly_closed: Vec::new(),
        shutdown_seen: false,
        slow: HashSet::new(),
        last_persist: None,
        last_payload: None,
        logins: 0,
        step: 0,
    };
    if trace() {
        eprintln!("config bits {:#04x}", script.config_bits);
    }
    h.check_state();
    for (i, op) in script.ops.iter().enumerate() {
        h.step = i + 1;
        if trace() {
            eprintln!("step {} @{:?}: {op:?}", h.step, h.now.instant.since_epoch());
        }
        h.run(op);
    }
});
