//! Properties of the server and client state machines over generated
//! transcripts: chunking invariance and invariants that hold after every step.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use lantalk_core::client::{Client, ClientAction, ClientConfig};
use lantalk_core::protocol;
use lantalk_core::ratelimit::Rate;
use lantalk_core::server::{Action, ConnId, DisconnectCause, Server, ServerConfig};
use lantalk_core::{BanList, Instant, Now};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

fn config() -> ProptestConfig {
    // 256 cases unless PROPTEST_CASES says otherwise.
    ProptestConfig {
        // Do not write regression files next to the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A moment on the monotonic clock, with the wall clock derived from it.
fn moment(instant: Instant) -> Now {
    Now::new(instant, Now::from_secs_f64(secs(instant)).wall)
}

fn later(now: Now, ms: u64) -> Now {
    moment(now.instant + Duration::from_millis(ms))
}

/// Bytes that print as (lossy, escaped) text in failure reports.
#[derive(Clone, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// An action as text: its Debug form, with payloads shown as text.
fn describe_server(a: &Action) -> String {
    match a {
        Action::Send { conn, bytes } => format!(
            "Send {{ conn: {conn:?}, bytes: {:?} }}",
            Bytes(bytes.to_vec())
        ),
        other => format!("{other:?}"),
    }
}

fn describe_client(a: &ClientAction) -> String {
    match a {
        ClientAction::Send(bytes) => format!("Send({:?})", Bytes(bytes.clone())),
        other => format!("{other:?}"),
    }
}

fn advance() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..500,
        2 => 500u64..6_000,
        1 => 6_000u64..70_000,
    ]
}

// ── Server ───────────────────────────────────────────────────────────────────

const ADDRS: &[&str] = &[
    "10.0.0.1:1000",
    "10.0.0.1:1001",
    "10.0.0.2:2000",
    "[::ffff:10.0.0.2]:2001",
    "127.0.0.1:3000",
    "[::1]:3001",
    "10.0.0.3:4000",
];
const NAMES: &[&str] = &["alice", "ALICE", "bob", "Bob", "carol", "dave_1", "x y", ""];
const PASSWORDS: &[&str] = &["", "secret", "wrong"];
const TEXTS: &[&str] = &[
    "hi",
    "  ",
    "",
    "/users",
    "/pm bob hi",
    "/pm ALICE yo",
    "/pm  bob two spaces",
    "/pm",
    "/quit",
    "/help",
    "/nope",
    "h\u{e9}llo \u{1F44B}",
];
const MALFORMED: &[&str] = &[
    "{",
    "[1]",
    "\"s\"",
    "{\"type\": \"message\", \"text\": 5}",
    "{\"type\": \"ping\"}",
    "{\"text\": \"x\"}",
    "",
    "\r",
];
const CONSOLE: &[&str] = &[
    "/kick alice",
    "/kick bob",
    "/ban alice",
    "/ban BOB",
    "/ban 10.0.0.2",
    "/ban ::ffff:10.0.0.1",
    "/unban 10.0.0.2",
    "/unban 10.0.0.1",
    "/unban nonsense",
    "/users",
    "/stats",
    "/bans",
    "/help",
    "/kick",
    "hello all",
];
const MAX_LINE: usize = 128;

fn server_config(password: bool) -> ServerConfig {
    ServerConfig {
        password: password.then(secret),
        max_line: MAX_LINE,
        max_clients: 5,
        max_per_address: 2,
        auth_timeout: Duration::from_secs(5),
        idle_timeout: Some(Duration::from_secs(20)),
        max_malformed_in_a_row: 4,
        ..ServerConfig::default()
    }
}

/// One piece of what a client might send.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (select(NAMES), select(PASSWORDS)).prop_map(|(n, p)| login(n, p).into_bytes()),
        4 => select(TEXTS).prop_map(|t| chat(t).into_bytes()),
        1 => (1usize..14).prop_map(|n| chat("spam").repeat(n).into_bytes()),
        2 => select(MALFORMED).prop_map(|m| format!("{m}\n").into_bytes()),
        1 => vec(any::<u8>(), 0..40),
        1 => vec(select(vec![b'\n', b'{', b'"', b'a', b'\r', 0xff, b'}']), 0..20),
        1 => (100usize..200).prop_map(|n| {
            let mut v = vec![b'a'; n];
            v.push(b'\n');
            v
        }),
    ]
}

fn input_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid_name = select(&NAMES[..6]);
    prop_oneof![
        2 => vec(fragment(), 1..4).prop_map(|parts| parts.concat()),
        // A session: a login that can succeed, then whatever follows.
        1 => (valid_name, select(&PASSWORDS[..2]), vec(fragment(), 0..3)).prop_map(|(n, p, rest)| {
            [login(n, p).into_bytes(), rest.concat()].concat()
        }),
    ]
}

/// Which connection an operation is about.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The `n`th (modulo) of the connections the server still has open.
    Open(usize),
    /// The `n`th (modulo) of all connections ever made, maybe closed.
    Any(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Connect(usize),
    Input(Target, Bytes),
    Disconnect(Target, bool),
    Console(usize),
    Advance(u64),
    Timeout,
    /// The console's /quit or a signal.
    Shutdown(bool),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        5 => (0usize..8).prop_map(Target::Open),
        1 => (0usize..8).prop_map(Target::Any),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        15 => (0..ADDRS.len()).prop_map(Op::Connect),
        40 => (target(), input_bytes()).prop_map(|(c, b)| Op::Input(c, Bytes(b))),
        5 => (target(), any::<bool>()).prop_map(|(c, slow)| Op::Disconnect(c, slow)),
        10 => (0..CONSOLE.len()).prop_map(Op::Console),
        15 => advance().prop_map(Op::Advance),
        10 => Just(Op::Timeout),
        1 => any::<bool>().prop_map(Op::Shutdown),
    ]
}

#[derive(Clone, Debug)]
struct ServerCase {
    password: bool,
    ops: Vec<Op>,
    seed: u64,
}

fn server_case() -> impl Strategy<Value = ServerCase> {
    (any::<bool>(), vec(op(), 1..40), any::<u64>()).prop_map(|(password, ops, seed)| ServerCase {
        password,
        ops,
        seed,
    })
}

/// What the harness knows about connections, to check the server against.
#[derive(Default)]
struct Tracker {
    opened: Vec<ConnId>,
    closed: HashSet<ConnId>,
    shut_down: bool,
}

impl Tracker {
    /// Checks one step's actions and the server's state after it. `now` is
    /// `Some` when the step handed that moment to the server successfully.
    fn check(&mut self, server: &Server, now: Option<Now>, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Send { conn, .. } => {
                    assert!(
                        !self.closed.contains(conn),
                        "send to closed {conn}: {}",
                        describe_server(a)
                    );
                }
                Action::Close { conn, .. } => {
                    assert!(self.closed.insert(*conn), "second close of {conn}");
                }
                Action::Shutdown => {
                    assert!(!self.shut_down, "second Shutdown");
                    self.shut_down = true;
                }
                Action::PersistBans(_)
                | Action::PersistTrusted(_)
                | Action::AskOperator(_)
                | Action::Event(_)
                | Action::CheckPassword(_)
                | Action::Store(_)
                | Action::Files(_)
                | Action::PersistFiles(_)
                | Action::Plugin(_)
                | Action::WatchDrain(_)
                | Action::PauseReading { .. } => {}
            }
        }
        if let (Some(now), Some(t)) = (now, server.poll_timeout()) {
            assert!(
                t >= now.instant,
                "poll_timeout {:?} before now {:?}",
                t,
                now.instant
            );
        }
        let mut open = 0;
        for &c in &self.opened {
            assert_eq!(
                server.is_open(c),
                !self.closed.contains(&c),
                "{c} open without the harness knowing, or forgotten without a Close"
            );
            if let Some(n) = server.buffered(c) {
                open += 1;
                assert!(n <= MAX_LINE, "{c} buffers {n} bytes");
            }
        }
        assert_eq!(server.connection_count(), open);
        let names = server.usernames();
        let keys: HashSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        assert_eq!(keys.len(), names.len(), "duplicate users: {names:?}");
        if self.shut_down {
            assert_eq!(server.connection_count(), 0);
            assert_eq!(server.poll_timeout(), None);
        }
    }
}

fn pick(server: &Server, opened: &[ConnId], target: Target) -> Option<ConnId> {
    let pool: Vec<ConnId> = match target {
        Target::Open(_) => opened
            .iter()
            .copied()
            .filter(|&c| server.is_open(c))
            .collect(),
        Target::Any(_) => opened.to_vec(),
    };
    let (Target::Open(n) | Target::Any(n)) = target;
    pool.get(n % pool.len().max(1)).copied()
}

/// Runs a case, feeding inputs as `how` splits them; returns every action (and
/// every step) as text. With `check`, asserts the invariants after each call.
/// With `typical`, a due deadline fires (`handle_timeout`) before a
/// disconnect is reported, as a runtime woken by its timer would do.
fn run_server(case: &ServerCase, how: Chunking, check: bool, typical: bool) -> Vec<String> {
    let mut now = moment(Instant::default());
    let mut server = Server::new(server_config(case.password), now, BanList::new());
    let mut t = Tracker::default();
    let mut log = Vec::new();
    let record = |server: &mut Server,
                  t: &mut Tracker,
                  reached: Option<Now>,
                  at: Now,
                  log: &mut Vec<String>| {
        let actions = drain_server(server, at);
        if check {
            t.check(server, reached, &actions);
        }
        log.extend(actions.iter().map(describe_server));
    };
    for (i, op) in case.ops.iter().enumerate() {
        log.push(format!("step {i}: {op:?}"));
        match op {
            Op::Connect(a) => {
                let c = server.handle_connect(now, addr(ADDRS[*a]));
                t.opened.push(c);
                record(&mut server, &mut t, Some(now), now, &mut log);
            }
            Op::Input(target, bytes) => {
                let Some(c) = pick(&server, &t.opened, *target) else {
                    continue;
                };
                for chunk in chunks(&bytes.0, how, i as u64) {
                    // Closed or not, an issued connection is no error: the
                    // bytes of a closed one are dropped (checked: nothing is
                    // sent to it).
                    let r = server.handle_input(now, c, chunk);
                    if check {
                        assert!(r.is_ok(), "input on {c}: {r:?}");
                    }
                    record(&mut server, &mut t, r.is_ok().then_some(now), now, &mut log);
                }
            }
            Op::Disconnect(target, slow) => {
                let Some(c) = pick(&server, &t.opened, *target) else {
                    continue;
                };
                let cause = if *slow {
                    DisconnectCause::SlowReader
                } else {
                    DisconnectCause::PeerClosed
                };
                if typical {
                    server.handle_timeout(now);
                    record(&mut server, &mut t, Some(now), now, &mut log);
                }
                let r = server.handle_disconnect(now, c, cause);
                if check {
                    assert!(r.is_ok(), "disconnect of {c}: {r:?}");
                }
                if r.is_ok() {
                    t.closed.insert(c);
                }
                log.push(format!("{r:?}"));
                record(&mut server, &mut t, r.is_ok().then_some(now), now, &mut log);
            }
            Op::Console(k) => {
                server.handle_console(now, CONSOLE[*k]);
                record(&mut server, &mut t, Some(now), now, &mut log);
            }
            Op::Advance(ms) => now = later(now, *ms),
            Op::Timeout => {
                if let Some(at) = server.poll_timeout() {
                    if at > now.instant {
                        now = moment(at);
                    }
                }
                server.handle_timeout(now);
                record(&mut server, &mut t, Some(now), now, &mut log);
            }
            Op::Shutdown(console) => {
                if *console {
                    server.handle_console(now, "/quit");
                } else {
                    server.shutdown(now);
                }
                record(&mut server, &mut t, Some(now), now, &mut log);
            }
        }
    }
    log
}

proptest! {
    #![proptest_config(config())]

    /// However TCP splits the bytes, the server does exactly the same.
    #[test]
    fn server_chunking_invariance(case in server_case()) {
        let whole = run_server(&case, Chunking::Whole, false, false);
        let bytewise = run_server(&case, Chunking::Bytewise, false, false);
        prop_assert_eq!(&whole, &bytewise);
        let random = run_server(&case, Chunking::Random(case.seed), false, false);
        prop_assert_eq!(&whole, &random);
    }

    /// After every step: nothing is sent to or closed on a closed connection
    /// (closed by a Close action or reported gone by the runtime), the server
    /// forgets connections only that way, the next deadline is not before the
    /// `now` just handed in, buffers stay within max_line, names are unique
    /// ignoring case, and the action queue runs dry. (A misuse call that
    /// returns Err does not look at the clock, so it is not checked for the
    /// deadline.)
    #[test]
    fn server_invariants(case in server_case()) {
        run_server(&case, Chunking::Random(case.seed), true, true);
    }

    /// The same, with disconnects reported at any moment, even when the
    /// connection's own deadline has passed and not fired yet.
    #[test]
    fn server_invariants_any_timing(case in server_case()) {
        run_server(&case, Chunking::Random(case.seed), true, false);
    }
}

// ── Client ───────────────────────────────────────────────────────────────────

const CLIENT_MAX_LINE: usize = 256;
const USER_LINES: &[&str] = &[
    "hello",
    "  ",
    "/quit",
    "/pm bob hi",
    "/pm bob",
    "/help",
    "/users",
    "/PM alice yo",
];

fn server_fragment() -> impl Strategy<Value = Vec<u8>> {
    let text = select(vec!["hi", "", "h\u{e9}llo \u{1F44B}", "/users"]);
    prop_oneof![
        3 => any::<bool>().prop_map(|p| srv::auth_request(p).into_bytes()),
        2 => Just([srv::auth_request(false), srv::auth_ok("alice")].concat().into_bytes()),
        3 => select(vec!["alice", "Alice", ""]).prop_map(|n| srv::auth_ok(n).into_bytes()),
        1 => Just(srv::auth_fail("Wrong password.").into_bytes()),
        3 => text.clone().prop_map(|t| srv::message("bob", t).into_bytes()),
        1 => text.clone().prop_map(|t| srv::pm("bob", t).into_bytes()),
        2 => text.prop_map(|t| srv::system(t).into_bytes()),
        1 => Just(b"{\"type\": \"typing\"}\n".to_vec()),
        1 => select(MALFORMED).prop_map(|m| format!("{m}\n").into_bytes()),
        1 => vec(any::<u8>(), 0..30),
        1 => vec(select(vec![b'\n', b'{', b'"', b'a', b'\r', 0xff]), 0..20),
        1 => (200usize..300).prop_map(|n| {
            let mut v = vec![b'x'; n];
            v.push(b'\n');
            v
        }),
    ]
}

#[derive(Clone, Debug)]
enum COp {
    Server(Bytes),
    User(usize),
    /// Several chat lines typed at the same moment.
    Burst(usize),
    LongLine(bool),
    Password(bool),
    Quit,
    Advance(u64),
    Timeout,
    Disconnect,
}

fn cop() -> impl Strategy<Value = COp> {
    prop_oneof![
        8 => server_bytes().prop_map(COp::Server),
        4 => (0..USER_LINES.len()).prop_map(COp::User),
        1 => (1usize..16).prop_map(COp::Burst),
        1 => any::<bool>().prop_map(COp::LongLine),
        1 => any::<bool>().prop_map(COp::Password),
        1 => Just(COp::Quit),
        3 => advance().prop_map(COp::Advance),
        2 => Just(COp::Timeout),
        1 => Just(COp::Disconnect),
    ]
}

#[derive(Clone, Debug)]
struct ClientCase {
    password: Option<&'static str>,
    ask_password: bool,
    ops: Vec<COp>,
    seed: u64,
}

fn server_bytes() -> impl Strategy<Value = Bytes> {
    vec(server_fragment(), 1..4).prop_map(|p| Bytes(p.concat()))
}

/// Server bytes that start like a real server: an auth request, often with
/// the auth_ok right behind it.
fn handshake() -> impl Strategy<Value = COp> {
    (
        prop_oneof![
            1 => Just(srv::auth_request(false)),
            1 => Just(srv::auth_request(true)),
            3 => Just([srv::auth_request(false), srv::auth_ok("alice")].concat()),
        ],
        vec(server_fragment(), 0..3),
    )
        .prop_map(|(first, rest)| COp::Server(Bytes([first.into_bytes(), rest.concat()].concat())))
}

/// What the user does (no server bytes, no leaving).
fn user_op() -> impl Strategy<Value = COp> {
    prop_oneof![
        4 => (0..USER_LINES.len())
            .prop_filter("not /quit", |&k| USER_LINES[k] != "/quit")
            .prop_map(COp::User),
        1 => (1usize..16).prop_map(COp::Burst),
        1 => any::<bool>().prop_map(COp::LongLine),
        2 => (0u64..3_000).prop_map(COp::Advance),
    ]
}

fn client_case() -> impl Strategy<Value = ClientCase> {
    let ops = prop_oneof![
        1 => vec(cop(), 1..40),
        4 => (vec(user_op(), 0..4), handshake(), vec(cop(), 0..36)).prop_map(|(mut a, h, b)| {
            a.push(h);
            a.extend(b);
            a
        }),
    ];
    (
        select(vec![None, Some("secret"), Some("")]),
        any::<bool>(),
        ops,
        any::<u64>(),
    )
        .prop_map(|(password, ask_password, ops, seed)| ClientCase {
            password,
            ask_password,
            ops,
            seed,
        })
}

/// Runs a client case. `typical` models a runtime that fires a due timeout
/// before it delivers newly arrived bytes and a user who types only once
/// logged in; without it, anything goes.
fn run_client(case: &ClientCase, how: Chunking, typical: bool) -> Vec<String> {
    let mut cfg = ClientConfig::new("alice", case.password.map(str::to_string));
    cfg.ask_password = case.ask_password;
    cfg.max_line = CLIENT_MAX_LINE;
    cfg.send_rate = Some(Rate::new(10, Duration::from_secs(5)));
    let mut now = moment(Instant::default());
    let mut client = Client::new(cfg, now);
    let mut log = Vec::new();
    let mut closed_sent = false;
    // `now`: the step handed this moment to handle_input or handle_timeout,
    // after which no deadline may be in the past. (The user-side entry points
    // do not promise that: e.g. a line that is not sent does not flush lines
    // that pacing would now let through; the next timeout does.)
    let mut record = |client: &mut Client, now: Option<Now>, log: &mut Vec<String>| {
        let actions = drain_client(client);
        for a in &actions {
            if let ClientAction::Send(_) = a {
                assert!(!closed_sent, "send after Close: {a:?}");
            }
            if *a == ClientAction::Close {
                closed_sent = true;
            }
        }
        if let (Some(now), Some(t)) = (now, client.poll_timeout()) {
            assert!(
                t >= now.instant,
                "client poll_timeout {t:?} before now {:?}",
                now.instant
            );
        }
        log.extend(actions.iter().map(describe_client));
    };
    let user_may_type = |client: &Client| !typical || client.is_joined() || client.is_closed();
    for (i, op) in case.ops.iter().enumerate() {
        log.push(format!("step {i}: {op:?}"));
        let closed_before = client.is_closed();
        match op {
            COp::Server(bytes) => {
                if typical {
                    client.handle_timeout(now);
                    record(&mut client, Some(now), &mut log);
                }
                for chunk in chunks(&bytes.0, how, i as u64) {
                    client.handle_input(now, chunk);
                    record(&mut client, Some(now), &mut log);
                }
            }
            COp::User(k) => {
                let typed = user_may_type(&client);
                if typed {
                    client.handle_user_line(now, USER_LINES[*k]);
                }
                record(&mut client, None, &mut log);
            }
            COp::Burst(n) => {
                let typed = user_may_type(&client);
                if typed {
                    for j in 0..*n {
                        client.handle_user_line(now, &format!("line {j}"));
                    }
                }
                record(&mut client, None, &mut log);
            }
            COp::LongLine(pm) => {
                let typed = user_may_type(&client);
                if typed {
                    let text = "y".repeat(2001);
                    let line = if *pm { format!("/pm bob {text}") } else { text };
                    client.handle_user_line(now, &line);
                }
                record(&mut client, None, &mut log);
            }
            COp::Password(right) => {
                client.handle_password(now, if *right { "secret" } else { "nope" });
                record(&mut client, None, &mut log);
            }
            COp::Quit => {
                client.handle_quit(now);
                record(&mut client, None, &mut log);
            }
            COp::Advance(ms) => now = later(now, *ms),
            COp::Timeout => {
                if let Some(at) = client.poll_timeout() {
                    if at > now.instant {
                        now = moment(at);
                    }
                }
                client.handle_timeout(now);
                record(&mut client, Some(now), &mut log);
            }
            COp::Disconnect => {
                client.handle_disconnect(now);
                record(&mut client, None, &mut log);
            }
        }
        if closed_before {
            assert!(
                log.last().is_some_and(|l| l.starts_with("step ")),
                "a closed client acted: {:?}",
                log.last()
            );
        }
    }
    log
}

/// Sanity check of the client harness: a plain login is seen as such.
#[test]
fn client_harness_logs_in() {
    let case = ClientCase {
        password: None,
        ask_password: false,
        ops: vec![
            COp::Server(Bytes(srv::auth_request(false).into_bytes())),
            COp::Server(Bytes(srv::auth_ok("alice").into_bytes())),
            COp::User(0),
        ],
        seed: 0,
    };
    let log = run_client(&case, Chunking::Bytewise, false);
    assert!(log.iter().any(|l| l.contains("Joined")), "{log:#?}");
    let hello = describe_client(&ClientAction::Send(protocol::chat("hello").into_bytes()));
    assert!(log.contains(&hello), "{log:#?}");
}

proptest! {
    #![proptest_config(config())]

    /// However TCP splits the server's bytes, the client does the same (with
    /// a runtime that fires due timeouts before delivering input, and a user
    /// who types once logged in).
    #[test]
    fn client_chunking_invariance(case in client_case()) {
        let whole = run_client(&case, Chunking::Whole, true);
        let bytewise = run_client(&case, Chunking::Bytewise, true);
        prop_assert_eq!(&whole, &bytewise);
        let random = run_client(&case, Chunking::Random(case.seed), true);
        prop_assert_eq!(&whole, &random);
    }

    /// The same without those assumptions: lines typed before login, time
    /// that passed unnoticed. See `chunking_of_auth_ok_and_what_follows` in
    /// client_transcripts.rs for the minimal case.
    #[test]
    fn client_chunking_invariance_any_timing(case in client_case()) {
        let whole = run_client(&case, Chunking::Whole, false);
        let bytewise = run_client(&case, Chunking::Bytewise, false);
        prop_assert_eq!(&whole, &bytewise);
        let random = run_client(&case, Chunking::Random(case.seed), false);
        prop_assert_eq!(&whole, &random);
    }
}
