//! Shared harness for the transcript and property tests: scripts for one
//! machine at a time here, and in [`pair`] a server and clients of ours
//! talking to each other.
//!
//! A transcript is a script of steps in simulated time. Every step is written
//! to a readable log together with the actions it produced and the next
//! deadline the machine asks for, so a snapshot of the log pins the behaviour
//! down byte for byte:
//!
//! ```text
//! @0.000 connect 10.0.0.1:5000 -> #1
//!   send #1 {"type": "auth_request", "ts": "12:00", "needs_password": false}
//!   event DEBUG Connection: Connection #1 from 10.0.0.1:5000
//!   poll_timeout @15.000
//! ```
#![allow(dead_code)]

pub mod disk;
pub mod pair;
pub mod secure_peer;
pub mod ws;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use lantalk_core::client::{Client, ClientAction, ClientConfig};
use lantalk_core::history::StoreRequest;
use lantalk_core::password::{HashParams, PasswordCheck, PasswordHash};
use lantalk_core::protocol;
use lantalk_core::server::{Action, ConnId, DisconnectCause, Error, Server, ServerConfig};
use lantalk_core::{BanList, Instant, Now, WallTime};

// ── Small helpers ────────────────────────────────────────────────────────────

/// The moment `secs` after the epoch (wall clock 12:00 plus that offset).
pub fn at(secs: f64) -> Now {
    Now::from_secs_f64(secs)
}

pub fn secs(i: Instant) -> f64 {
    i.since_epoch().as_secs_f64()
}

/// The wall clock the test servers print (`"12:00"`).
pub const NOON: WallTime = WallTime {
    hour: 12,
    minute: 0,
    unix_ms: 0,
};

pub fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad socket address {s:?}: {e}"))
}

/// The hash of the server password `"secret"` used by the tests.
pub fn secret() -> PasswordHash {
    PasswordHash::new("secret", [1; 16], HashParams::INSECURE_FAST)
}

pub fn password_config() -> ServerConfig {
    ServerConfig {
        password: Some(secret()),
        ..ServerConfig::default()
    }
}

/// The client's login line, as LanTalk sends it.
pub fn login(name: &str, password: &str) -> String {
    protocol::login(name, password)
}

/// A chat line, as LanTalk sends it.
pub fn chat(text: &str) -> String {
    protocol::chat(text)
}

/// Longest shown run of characters of one payload; longer ones are cut and
/// their total size is shown instead, so huge lines stay readable.
const SHOW_CHARS: usize = 160;

/// Bytes for the transcript: lossy UTF-8, one trailing `\n` dropped, control
/// characters escaped, long contents shortened.
pub fn show_bytes(bytes: &[u8]) -> String {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let text = String::from_utf8_lossy(trimmed);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOW_CHARS {
            let _ = write!(out, "…[{} bytes]", bytes.len());
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Shortens a long text (an event message) the same way.
pub fn show_text(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut out = show_bytes(first.as_bytes());
    for line in lines {
        // Multi-line texts (console help) continue on indented lines.
        out.push_str("\n      | ");
        out.push_str(&show_bytes(line.as_bytes()));
    }
    out
}

/// Input bytes for the transcript: like [`show_bytes`], but an input that
/// does not end a line says so, and a bare line end is visible.
pub fn show_input(bytes: &[u8]) -> String {
    match bytes {
        b"\n" => "\\n".to_string(),
        [.., b'\n'] => show_bytes(bytes),
        _ => format!("{} (no newline)", show_bytes(bytes)),
    }
}

fn show_time(t: Option<Instant>) -> String {
    match t {
        Some(t) => format!("@{:.3}", secs(t)),
        None => "none".to_string(),
    }
}

/// One server action as a transcript line (without indentation).
pub fn show_action(action: &Action) -> String {
    match action {
        Action::Send { conn, bytes } => format!("send {conn} {}", show_bytes(bytes)),
        Action::Close { conn, reason } => format!("close {conn} {reason:?}"),
        Action::PersistBans(bans) => format!("persist-bans {}", show_bytes(&bans.to_file_bytes())),
        Action::Event(e) => format!("event {} {:?}: {}", e.level, e.kind, show_text(&e.message)),
        Action::Shutdown => "shutdown".to_string(),
        Action::CheckPassword(check) => format!("check-password #{}", check.id.0),
        Action::Store(request) => match &**request {
            StoreRequest::Append(r) => format!(
                "store-append #{} {:?} <{}> {}",
                r.id,
                r.scope,
                r.from,
                show_text(&r.text)
            ),
            StoreRequest::Query { id, scope, want } => {
                format!("store-query q{} {scope:?} {want:?}", id.0)
            }
        },
        Action::AskOperator(r) => format!("ask-operator {}: {}", r.id, show_text(&r.to_string())),
        Action::PersistTrusted(list) => {
            let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
            format!("persist-trusted {}", names.join(", "))
        }
        Action::Files(request) => format!("files {}", show_file_request(request)),
        Action::PersistFiles(list) => {
            let files: Vec<String> = list
                .iter()
                .map(|f| {
                    format!(
                        "{}:{}{}",
                        f.id,
                        f.name,
                        if f.hash.is_some() { "" } else { "(partial)" }
                    )
                })
                .collect();
            format!("persist-files {}", files.join(", "))
        }
        Action::Plugin(request) => show_plugin_request(request),
        Action::WatchDrain(conn) => format!("watch-drain {conn}"),
        Action::PauseReading { conn, paused } => format!("pause-reading {conn} {paused}"),
    }
}

/// A request about a plugin process as a transcript line.
pub fn show_plugin_request(request: &lantalk_core::plugin::PluginRequest) -> String {
    use lantalk_core::plugin::PluginRequest;
    match request {
        PluginRequest::Start { id, name, command } => {
            format!("plugin-start {id} {name}: {}", show_text(command))
        }
        PluginRequest::Send { id, line } => format!("plugin-send {id} {}", show_bytes(line)),
        PluginRequest::Stop { id } => format!("plugin-stop {id}"),
    }
}

/// What counts as "the same kind of action" when a step is summarised.
fn summary_key(action: &Action) -> String {
    match action {
        Action::Send { conn, .. } => format!("send {conn}"),
        Action::Event(e) => format!("event {} {:?}", e.level, e.kind),
        other => show_action(other),
    }
}

fn summarise(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for key in keys {
        let n = counts.entry(key.clone()).or_insert(0);
        if *n == 0 {
            order.push(key);
        }
        *n += 1;
    }
    order
        .into_iter()
        .map(|k| format!("{k} ×{}", counts[&k]))
        .collect()
}

/// Everything the server has queued, bounded so a runaway queue fails the test
/// instead of hanging it. Password checks are run and answered at `now`, as
/// a runtime does off its loop; the check stays in the list, followed by what
/// its answer produced.
pub fn drain_server(server: &mut Server, now: Now) -> Vec<Action> {
    drain_server_holding(server, now, None)
}

/// [`drain_server`], but with `held`, password checks are kept there
/// unanswered (a test answers them when it chooses).
pub fn drain_server_holding(
    server: &mut Server,
    now: Now,
    mut held: Option<&mut Vec<PasswordCheck>>,
) -> Vec<Action> {
    let mut out = Vec::new();
    while let Some(a) = server.poll_action() {
        if let Action::CheckPassword(check) = &a {
            match held.as_deref_mut() {
                Some(held) => held.push(PasswordCheck::clone(check)),
                None => server.handle_password_checked(now, PasswordCheck::clone(check).run()),
            }
        }
        out.push(a);
        assert!(out.len() < 100_000, "poll_action does not run dry");
    }
    out
}

pub fn drain_client(client: &mut Client) -> Vec<ClientAction> {
    let mut out = Vec::new();
    while let Some(a) = client.poll_action() {
        out.push(a);
        assert!(out.len() < 100_000, "poll_action does not run dry");
    }
    out
}

// ── Server transcripts ───────────────────────────────────────────────────────

pub struct ServerScript {
    pub server: Server,
    now: Now,
    log: String,
    summarise: bool,
    /// The actions of the last step.
    pub last: Vec<Action>,
    /// `Some`: password checks are held here instead of answered at once.
    pub held: Option<Vec<PasswordCheck>>,
}

impl ServerScript {
    pub fn new(config: ServerConfig) -> Self {
        ServerScript::with_bans(config, BanList::new())
    }

    pub fn with_bans(config: ServerConfig, bans: BanList) -> Self {
        let now = at(0.0);
        let server = Server::new(config, now, bans);
        let mut s = ServerScript {
            server,
            now,
            log: String::new(),
            summarise: false,
            last: Vec::new(),
            held: None,
        };
        s.step("start".to_string(), |_, _| {});
        s
    }

    /// Sets the clock for the following steps (it never goes back).
    pub fn at(&mut self, secs: f64) -> &mut Self {
        let next = at(secs);
        assert!(next.instant >= self.now.instant, "time goes back to {secs}");
        self.now = next;
        self
    }

    pub fn now(&self) -> Now {
        self.now
    }

    /// From now on, list each kind of action once with a count instead of
    /// every action (for floods).
    pub fn summarised(&mut self, on: bool) -> &mut Self {
        self.summarise = on;
        self
    }

    /// A comment line in the transcript.
    pub fn note(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.log, "# {text}");
        self
    }

    pub fn transcript(&self) -> &str {
        &self.log
    }

    fn step(&mut self, header: String, f: impl FnOnce(&mut Server, Now)) {
        let now = self.now;
        f(&mut self.server, now);
        self.record(header);
    }

    fn record(&mut self, header: String) {
        let actions = drain_server_holding(&mut self.server, self.now, self.held.as_mut());
        let _ = writeln!(self.log, "@{:.3} {header}", secs(self.now.instant));
        if self.summarise {
            for line in summarise(actions.iter().map(summary_key)) {
                let _ = writeln!(self.log, "  {line}");
            }
        } else {
            for a in &actions {
                let _ = writeln!(self.log, "  {}", show_action(a));
            }
        }
        let _ = writeln!(
            self.log,
            "  poll_timeout {}",
            show_time(self.server.poll_timeout())
        );
        self.last = actions;
    }

    pub fn connect(&mut self, address: &str) -> ConnId {
        let a = addr(address);
        let now = self.now;
        let conn = self.server.handle_connect(now, a);
        self.record(format!("connect {address} -> {conn}"));
        conn
    }

    /// A connection on the web listener.
    pub fn connect_web(&mut self, address: &str) -> ConnId {
        let a = addr(address);
        let now = self.now;
        let conn = self.server.handle_connect_web(now, a);
        self.record(format!("connect web {address} -> {conn}"));
        conn
    }

    /// Everything sent to `conn` in the last step, joined.
    pub fn bytes_to(&self, conn: ConnId) -> Vec<u8> {
        self.last
            .iter()
            .filter_map(|a| match a {
                Action::Send { conn: c, bytes } if *c == conn => Some(&bytes[..]),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// Whether the last step closed `conn`.
    pub fn closed(&self, conn: ConnId) -> bool {
        self.last
            .iter()
            .any(|a| matches!(a, Action::Close { conn: c, .. } if *c == conn))
    }

    pub fn input(&mut self, conn: ConnId, bytes: impl AsRef<[u8]>) -> Result<(), Error> {
        let bytes = bytes.as_ref();
        let now = self.now;
        let result = self.server.handle_input(now, conn, bytes);
        let suffix = match result {
            Ok(()) => String::new(),
            Err(e) => format!(" -> Err({e:?})"),
        };
        self.record(format!("input {conn} {}{suffix}", show_input(bytes)));
        result
    }

    /// The login line for `name` with an empty password.
    pub fn login(&mut self, conn: ConnId, name: &str) -> Result<(), Error> {
        self.input(conn, login(name, ""))
    }

    pub fn login_pw(&mut self, conn: ConnId, name: &str, password: &str) -> Result<(), Error> {
        self.input(conn, login(name, password))
    }

    /// Connects from `address` and logs in as `name` (no password).
    pub fn join(&mut self, address: &str, name: &str) -> ConnId {
        let conn = self.connect(address);
        self.login(conn, name).expect("login input accepted");
        assert!(
            self.server.usernames().contains(&name),
            "{name} did not log in:\n{}",
            self.log
        );
        conn
    }

    /// One chat line.
    pub fn say(&mut self, conn: ConnId, text: &str) -> Result<(), Error> {
        self.input(conn, chat(text))
    }

    pub fn disconnect(&mut self, conn: ConnId, cause: DisconnectCause) -> Result<(), Error> {
        let now = self.now;
        let result = self.server.handle_disconnect(now, conn, cause);
        let suffix = match result {
            Ok(()) => String::new(),
            Err(e) => format!(" -> Err({e:?})"),
        };
        self.record(format!("disconnect {conn} {cause:?}{suffix}"));
        result
    }

    pub fn console(&mut self, line: &str) -> &mut Self {
        self.step(format!("console {}", show_text(line)), |s, now| {
            s.handle_console(now, line)
        });
        self
    }

    /// Jumps to the deadline the server asked for and lets it fire.
    pub fn timeout(&mut self) -> &mut Self {
        let t = self
            .server
            .poll_timeout()
            .expect("the server asked for no timeout");
        assert!(t >= self.now.instant, "poll_timeout is in the past");
        self.now = at(secs(t));
        self.step("timeout".to_string(), |s, now| s.handle_timeout(now));
        self
    }

    /// Lets time pass up to `secs` and calls `handle_timeout` there.
    pub fn timeout_at(&mut self, secs: f64) -> &mut Self {
        self.at(secs);
        self.step("timeout".to_string(), |s, now| s.handle_timeout(now));
        self
    }

    /// Answers the held password check `id` (see [`ServerScript::held`]).
    pub fn answer_check(&mut self, id: u64) -> &mut Self {
        let held = self.held.as_mut().expect("checks are held");
        let i = held
            .iter()
            .position(|c| c.id.0 == id)
            .unwrap_or_else(|| panic!("no held check #{id}"));
        let check = held.remove(i);
        self.step(format!("answer check #{id}"), |s, now| {
            s.handle_password_checked(now, check.run())
        });
        self
    }

    /// What the application reports about a plugin process.
    pub fn plugin(&mut self, reply: lantalk_core::plugin::PluginReply) -> &mut Self {
        use lantalk_core::plugin::PluginReply;
        let header = match &reply {
            PluginReply::Line { id, line } => format!("plugin {id} line {}", show_bytes(line)),
            PluginReply::TooLong { id } => format!("plugin {id} too-long"),
            PluginReply::Stderr { id, line } => format!("plugin {id} stderr {}", show_bytes(line)),
            PluginReply::Exited { id, why } => format!("plugin {id} exited: {why}"),
        };
        self.step(header, |s, now| s.handle_plugin(now, reply));
        self
    }

    pub fn shutdown(&mut self) -> &mut Self {
        self.step("shutdown".to_string(), |s, now| s.shutdown(now));
        self
    }

    /// Bytes sent to `conn` in the last step, one string per `Send`.
    pub fn sent_to(&self, conn: ConnId) -> Vec<String> {
        self.last
            .iter()
            .filter_map(|a| match a {
                Action::Send { conn: c, bytes } if *c == conn => {
                    Some(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => None,
            })
            .collect()
    }
}

// ── Client transcripts ───────────────────────────────────────────────────────

pub fn show_client_action(action: &ClientAction) -> String {
    match action {
        ClientAction::Send(bytes) => format!("send {}", show_bytes(bytes)),
        ClientAction::Event(e) => show_text(&format!("event {e:?}")),
        ClientAction::Close => "close".to_string(),
        ClientAction::Open(side) => format!("open side {}", side.0),
        ClientAction::SideSend(side, bytes) => {
            format!("side {} send {} bytes", side.0, bytes.len())
        }
        ClientAction::SideWatchDrain(side) => format!("side {} watch-drain", side.0),
        ClientAction::SidePause(side, paused) => format!("side {} pause {paused}", side.0),
        ClientAction::SideClose(side) => format!("side {} close", side.0),
        ClientAction::Files(request) => format!("files {}", show_file_request(request)),
    }
}

/// A file request without its bytes.
pub fn show_file_request(request: &lantalk_core::transfer::FileRequest) -> String {
    use lantalk_core::transfer::FileRequest as R;
    match request {
        R::Write {
            op,
            place,
            offset,
            bytes,
            ..
        } => format!("write op{} {place:?} @{offset} {} bytes", op.0, bytes.len()),
        other => format!("{other:?}"),
    }
}

fn client_summary_key(action: &ClientAction) -> String {
    match action {
        ClientAction::Send(_) => "send".to_string(),
        other => show_client_action(other),
    }
}

pub struct ClientScript {
    pub client: Client,
    now: Now,
    log: String,
    summarise: bool,
    pub last: Vec<ClientAction>,
}

impl ClientScript {
    pub fn new(config: ClientConfig) -> Self {
        let now = at(0.0);
        let client = Client::new(config, now);
        let mut s = ClientScript {
            client,
            now,
            log: String::new(),
            summarise: false,
            last: Vec::new(),
        };
        s.record("start".to_string());
        s
    }

    pub fn at(&mut self, secs: f64) -> &mut Self {
        let next = at(secs);
        assert!(next.instant >= self.now.instant, "time goes back to {secs}");
        self.now = next;
        self
    }

    pub fn summarised(&mut self, on: bool) -> &mut Self {
        self.summarise = on;
        self
    }

    pub fn note(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.log, "# {text}");
        self
    }

    pub fn transcript(&self) -> &str {
        &self.log
    }

    fn record(&mut self, header: String) {
        let actions = drain_client(&mut self.client);
        let _ = writeln!(self.log, "@{:.3} {header}", secs(self.now.instant));
        if self.summarise {
            for line in summarise(actions.iter().map(client_summary_key)) {
                let _ = writeln!(self.log, "  {line}");
            }
        } else {
            for a in &actions {
                let _ = writeln!(self.log, "  {}", show_client_action(a));
            }
        }
        let _ = writeln!(
            self.log,
            "  poll_timeout {}",
            show_time(self.client.poll_timeout())
        );
        self.last = actions;
    }

    /// Bytes from the server, in one chunk.
    pub fn server(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let bytes = bytes.as_ref();
        self.client.handle_input(self.now, bytes);
        self.record(format!("server {}", show_input(bytes)));
        self
    }

    pub fn user(&mut self, line: &str) -> &mut Self {
        self.client.handle_user_line(self.now, line);
        self.record(format!("user {}", show_text(line)));
        self
    }

    pub fn password(&mut self, password: &str) -> &mut Self {
        self.client.handle_password(self.now, password);
        self.record(format!("password {password}"));
        self
    }

    pub fn quit(&mut self) -> &mut Self {
        self.client.handle_quit(self.now);
        self.record("quit".to_string());
        self
    }

    pub fn interrupt(&mut self) -> &mut Self {
        self.client.handle_interrupt(self.now);
        self.record("interrupt".to_string());
        self
    }

    pub fn disconnect(&mut self) -> &mut Self {
        self.client.handle_disconnect(self.now);
        self.record("disconnect".to_string());
        self
    }

    pub fn timeout(&mut self) -> &mut Self {
        let t = self
            .client
            .poll_timeout()
            .expect("the client asked for no timeout");
        assert!(t >= self.now.instant, "poll_timeout is in the past");
        self.now = at(secs(t));
        self.client.handle_timeout(self.now);
        self.record("timeout".to_string());
        self
    }

    pub fn timeout_at(&mut self, secs: f64) -> &mut Self {
        self.at(secs);
        self.client.handle_timeout(self.now);
        self.record("timeout".to_string());
        self
    }

    /// The protocol lines the client sent in the last step.
    pub fn sent(&self) -> Vec<String> {
        self.last
            .iter()
            .filter_map(|a| match a {
                ClientAction::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }
}

/// Server lines as a LanTalk server at 12:00 sends them.
pub mod srv {
    use super::NOON;
    use lantalk_core::protocol;

    pub fn auth_request(needs_password: bool) -> String {
        protocol::auth_request(NOON, needs_password)
    }
    pub fn auth_ok(name: &str) -> String {
        protocol::auth_ok(NOON, name, "Hub")
    }
    pub fn auth_fail(reason: &str) -> String {
        protocol::auth_fail(NOON, reason)
    }
    pub fn message(user: &str, text: &str) -> String {
        protocol::message(NOON, user, text)
    }
    pub fn pm(from: &str, text: &str) -> String {
        protocol::pm(NOON, from, text)
    }
    pub fn system(text: &str) -> String {
        protocol::system(NOON, text)
    }
}

// ── Splitting inputs into chunks (property tests) ────────────────────────────

/// How one input is handed over: whole, byte by byte, or cut at pseudo-random
/// places derived from a seed.
#[derive(Clone, Copy, Debug)]
pub enum Chunking {
    Whole,
    Bytewise,
    Random(u64),
}

/// Splits `bytes` into non-empty chunks (one empty chunk for empty input, so
/// every strategy makes the same number of calls for it).
pub fn chunks(bytes: &[u8], how: Chunking, salt: u64) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return vec![bytes];
    }
    match how {
        Chunking::Whole => vec![bytes],
        Chunking::Bytewise => bytes.chunks(1).collect(),
        Chunking::Random(seed) => {
            let mut state = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
            let mut out = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                // xorshift64*
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
                let len = 1 + (r % 24) as usize;
                let (a, b) = rest.split_at(len.min(rest.len()));
                out.push(a);
                rest = b;
            }
            out
        }
    }
}
