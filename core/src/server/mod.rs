//! The server state machine.
//!
//! A runtime owns one [`Server`] and feeds it everything that happens — a
//! connection opened, bytes arrived, a connection dropped, time passed, the
//! operator typed a line — then drains [`Server::poll_action`] and carries the
//! actions out in order. It sleeps until [`Server::poll_timeout`] when idle.
//! Nothing here blocks, allocates per recipient, or can be made to panic by a
//! peer.
//!
//! One file per concern: `conn` (a connection's phase and wire), `wire`
//! (bytes to lines), `login`, `approve` (host mode), `chat` (messages, rate
//! limit, chat commands), `console` (the operator), `moderation`, `plugins`
//! (plugin processes: permissions, commands, restarts), `timers`, `web`
//! (connections from the web listener: HTTP, then a WebSocket),
//! `fanout` (where lines go, events), `config` and `event` (what goes in and
//! out besides bytes). This file holds the types and the entry points.

mod approve;
mod chat;
mod config;
mod conn;
mod console;
mod event;
mod fanout;
mod files;
mod history;
mod login;
mod moderation;
mod plugins;
mod rooms;
mod timers;
mod web;
mod wire;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use core::net::{IpAddr, SocketAddr};

pub use config::{Approval, SecureConfig, ServerConfig, TrustedPeer};
pub use console::console_help;
pub use event::{ApprovalRequest, EventDetail, EventKind, Level, ServerEvent};
pub use files::FilesConfig;
pub use history::HistoryConfig;
pub use plugins::PluginSpec;
pub use rooms::RoomLimits;

use crate::bans::{canonical, BanList};
use crate::framing::{Frame, LineBuffer};
use crate::names::{name_key, validate_username};
use crate::password::{CheckId, PasswordCheck, PasswordChecked};
use crate::protocol::{self, ClientLine, MAX_TEXT_CHARS};
use crate::ratelimit::Window;
use crate::secure::{self, grow, FrameBuffer, Kdf, Offer, PakeServer, SeededRng, Suite};
use crate::time::{Instant, Now};

use crate::secure::SealFailed;
use conn::{Conn, Phase, Wire};
use rooms::{Room, RoomWait};

/// What an off-loop password job's answer is for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Waiter {
    /// A login on this connection.
    Login(ConnId),
    /// A room's key: a join or a new key.
    Room(RoomWait),
}

impl Waiter {
    fn conn(&self) -> ConnId {
        match self {
            Waiter::Login(c)
            | Waiter::Room(RoomWait::Join { conn: c, .. } | RoomWait::SetKey { conn: c, .. }) => *c,
        }
    }
}

/// Identifies one connection for its whole life. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Bytes ready for the wire. One broadcast is encoded once and the same
/// allocation is handed to every recipient.
pub type Payload = Arc<[u8]>;

/// Why the server closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Banned,
    ServerFull,
    TooManyFromAddress,
    AuthFailed,
    AuthTimeout,
    IdleTimeout,
    Quit,
    Kicked,
    Flooding,
    LineTooLong,
    Malformed,
    /// A handshake or frame failed (tampering, replay, not LanTalk).
    Encryption,
    Shutdown,
}

/// Why the transport under a connection went away (told to the server by the
/// runtime through [`Server::handle_disconnect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectCause {
    /// The peer closed the connection or it failed.
    PeerClosed,
    /// The peer stopped reading and its outbound queue overflowed.
    SlowReader,
}

/// What the runtime must do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue these bytes on the connection.
    Send { conn: ConnId, bytes: Payload },
    /// Flush what is queued on the connection, then close it. The server has
    /// already forgotten it.
    Close { conn: ConnId, reason: CloseReason },
    /// Run this password check where blocking is fine (not on the event
    /// loop), then give its answer to [`Server::handle_password_checked`].
    /// (Boxed, like [`Action::AskOperator`]'s request: every chat delivery
    /// is an action, moved into and out of the queue, so the enum is kept as
    /// small as its common variants.)
    CheckPassword(Box<PasswordCheck>),
    /// Ask the operator whether to let this peer in (its `Display` is the
    /// question). The answer comes back as [`Server::handle_approval`], or
    /// as the next console line (`y` or `n`) given to
    /// [`Server::handle_console`].
    AskOperator(Box<ApprovalRequest>),
    /// The trusted peers changed: store the whole list (atomically).
    PersistTrusted(Vec<TrustedPeer>),
    /// The ban list changed; store the whole list.
    PersistBans(BanList),
    /// Keep a record, or answer a query with [`Server::handle_store_reply`]
    /// (the application's history store; only with `HistoryConfig::store`).
    Store(Box<crate::history::StoreRequest>),
    /// Carry out a file request in the server's files folder and give the
    /// answer to [`Server::handle_file_reply`].
    Files(Box<crate::transfer::FileRequest>),
    /// Start, feed or stop a plugin process; what it says comes back
    /// through [`Server::handle_plugin`].
    Plugin(Box<crate::plugin::PluginRequest>),
    /// The files kept changed: store the whole list.
    PersistFiles(Vec<crate::transfer::SharedFile>),
    /// Feed `ServerInput::Drained` once everything queued for this
    /// connection has been written (bulk data waits for it).
    WatchDrain(ConnId),
    /// Stop or resume reading from a connection whose bulk data cannot be
    /// taken yet.
    PauseReading { conn: ConnId, paused: bool },
    /// Tell the operator and/or the log.
    Event(ServerEvent),
    /// The server has shut down: every connection was closed; flush and exit.
    Shutdown,
}

// An action per delivery is pushed, moved out by `poll_action` and dropped:
// at 112 bytes (the password check and the operator's question inline) that
// cost the plaintext fan-out ~20 % more instructions per delivery than at
// 40 (see BENCHMARKS.md, *Instructions per delivery*).
const _: () = assert!(std::mem::size_of::<Action>() <= 40);

/// Misuse by the caller (never caused by a peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The connection is not open: it was never opened, or it was closed.
    UnknownConnection(ConnId),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownConnection(c) => write!(f, "unknown connection {c}"),
        }
    }
}

impl std::error::Error for Error {}

pub struct Server {
    config: ServerConfig,
    started: Instant,
    bans: BanList,
    next_id: u64,
    conns: BTreeMap<ConnId, Conn>,
    /// Logged-in users by [`name_key`].
    users: HashMap<String, ConnId>,
    per_address: HashMap<IpAddr, usize>,
    failed_logins: HashMap<IpAddr, Window>,
    /// One entry per connection, possibly earlier than its real deadline;
    /// a stale entry is re-armed when it comes up.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    actions: VecDeque<Action>,
    /// Encrypted connections with lines queued to seal.
    to_seal: Vec<ConnId>,
    relayed: u64,
    /// Logins so far, to order users by when they joined.
    logins: u64,
    shut_down: bool,
    /// Present when encryption is offered.
    secure: Option<(Offer, SeededRng)>,
    /// The peer the operator is being asked about.
    asked: Option<ConnId>,
    /// Peers ready to be asked about, in the order they got ready.
    waiting: VecDeque<ConnId>,
    /// The open question was closed without an answer (the peer left or its
    /// time ran out): a `y` or `n` typed next is not meant as chat.
    withdrawn: bool,
    /// Password jobs handed out and not answered yet, by id.
    checks: HashMap<CheckId, Waiter>,
    next_check: u64,
    /// Checks waiting for one of the `max_password_checks` slots.
    checks_waiting: VecDeque<PasswordCheck>,
    /// Rooms by [`crate::rooms::room_key`]; the lobby always.
    rooms: BTreeMap<String, Room>,
    /// The id the next message gets.
    next_message: u64,
    /// History queries handed to the store, by id.
    queries: HashMap<crate::history::QueryId, history::Pending>,
    next_query: u64,
    /// Files kept and offered, tickets, side connections.
    files: files::Files,
    /// Plugins: what they may do, their runs, commands and timers.
    plugins: plugins::Plugins,
    /// Connections from the web listener: their HTTP phase, then the
    /// WebSocket that carries them.
    web: web::WebConns,
}

impl Server {
    pub fn new(config: ServerConfig, now: Now, bans: BanList) -> Self {
        let config_first_message = config.first_message_id.max(1);
        let lobby = Room::new(crate::rooms::LOBBY, !config.history.store);
        let secure = config.secure.as_ref().map(|sc| {
            let offer = Offer {
                version: secure::VERSION,
                suites: if sc.suites.is_empty() {
                    vec![secure::SUITE.to_string()]
                } else {
                    sc.suites.iter().map(|s| s.name().to_string()).collect()
                },
                kdf: config.password.as_ref().map(|p| Kdf {
                    salt: p.salt(),
                    params: p.params(),
                }),
            };
            (offer, SeededRng::new(sc.rng_seed))
        });
        let files = files::Files::new(&config.files);
        let plugins = plugins::Plugins::new(&config.plugins, config.rate_limit);
        let mut server = Server {
            secure,
            config,
            started: now.instant,
            bans,
            next_id: 1,
            conns: BTreeMap::new(),
            users: HashMap::new(),
            per_address: HashMap::new(),
            failed_logins: HashMap::new(),
            timers: BinaryHeap::new(),
            actions: VecDeque::new(),
            to_seal: Vec::new(),
            relayed: 0,
            logins: 0,
            shut_down: false,
            asked: None,
            waiting: VecDeque::new(),
            withdrawn: false,
            checks: HashMap::new(),
            next_check: 0,
            checks_waiting: VecDeque::new(),
            rooms: BTreeMap::from([(crate::rooms::LOBBY.to_string(), lobby)]),
            next_message: config_first_message,
            queries: HashMap::new(),
            next_query: 0,
            files,
            plugins,
            web: web::WebConns::default(),
        };
        server.start_files(now);
        server.start_plugins(now);
        server
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn bans(&self) -> &BanList {
        &self.bans
    }

    /// A new transport connection from `addr`. Refusals (ban, full server,
    /// too many from one address, shutting down) come out as actions.
    pub fn handle_connect(&mut self, now: Now, addr: SocketAddr) -> ConnId {
        let conn = self.new_conn_id();
        self.connect_as(now, conn, addr);
        conn
    }

    fn new_conn_id(&mut self) -> ConnId {
        let conn = ConnId(self.next_id);
        self.next_id += 1;
        conn
    }

    /// Whether `ip` already has as many connections as one address may.
    fn address_full(&self, ip: IpAddr) -> bool {
        !(self.config.exempt_loopback && ip.is_loopback())
            && self.per_address.get(&ip).copied().unwrap_or(0) >= self.config.max_per_address
    }

    /// `conn` starts speaking LanTalk: the checks of a new connection, then
    /// the greeting (on a web connection, once it is a WebSocket).
    fn connect_as(&mut self, now: Now, conn: ConnId, addr: SocketAddr) {
        self.expire(now);
        let ip = canonical(addr.ip());

        let refusal = if self.shut_down {
            Some((
                CloseReason::Shutdown,
                "The server is shutting down.".to_string(),
            ))
        } else if self.bans.contains(ip) {
            Some((
                CloseReason::Banned,
                "You are banned from this server.".to_string(),
            ))
        } else if self.conns.len() >= self.config.max_clients {
            Some((
                CloseReason::ServerFull,
                format!(
                    "Server is full ({} connections). Try again later.",
                    self.config.max_clients
                ),
            ))
        } else if self.address_full(ip) {
            Some((
                CloseReason::TooManyFromAddress,
                "Too many connections from your address.".to_string(),
            ))
        } else {
            None
        };

        if let Some((reason, text)) = refusal {
            self.send(conn, protocol::auth_fail(now.wall, &text));
            self.actions.push_back(Action::Close { conn, reason });
            self.event(
                Level::Info,
                EventKind::Connection,
                format!("Refused {ip}: {text}"),
            );
            return;
        }

        let deadline = now.instant + self.config.auth_timeout;
        self.conns.insert(
            conn,
            Conn {
                addr,
                wire: Wire::Plain { offer: None },
                lines: LineBuffer::new(self.config.max_line),
                unsealed: Vec::new(),
                phase: Phase::LoggingIn {
                    deadline,
                    pake: None,
                    check: None,
                },
                last_input: now.instant,
                malformed_in_a_row: 0,
                rate: self.config.rate_limit.map(Window::new),
                flood_warnings: Window::new(self.config.flood_kick),
            },
        );
        *self.per_address.entry(ip).or_insert(0) += 1;
        self.timers.push(Reverse((deadline, conn)));
        let needs_password = self.config.password.is_some();
        let request = match &self.secure {
            Some((offer, _)) => {
                let line = protocol::auth_request_secure(now.wall, needs_password, offer);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.wire = Wire::Plain {
                        offer: Some(line.as_bytes().to_vec()),
                    };
                }
                line
            }
            None => protocol::auth_request(now.wall, needs_password),
        };
        self.send(conn, request);
        self.event(
            Level::Debug,
            EventKind::Connection,
            format!("Connection {conn} from {addr}"),
        );
    }

    /// The transport under `conn` is gone. No `Close` action follows: the
    /// runtime has already dropped (or is dropping) the connection.
    pub fn handle_disconnect(
        &mut self,
        now: Now,
        conn: ConnId,
        cause: DisconnectCause,
    ) -> Result<(), Error> {
        self.web_gone(conn);
        self.disconnected(now, conn, cause)
    }

    /// The peer is gone (its transport, or its WebSocket closing).
    fn disconnected(
        &mut self,
        now: Now,
        conn: ConnId,
        cause: DisconnectCause,
    ) -> Result<(), Error> {
        // Forget the connection before firing deadlines: one that passed
        // meanwhile must not address the connection that is already gone.
        let Some(c) = self.remove(conn) else {
            self.expire(now);
            self.ask_next(now);
            // Closed by us already: nothing left to tell.
            return self.closed_or_unknown(conn);
        };
        self.expire(now);
        // Leaving in the middle of a password check counts as a failed guess:
        // otherwise guesses (and the checks' cost) would be free.
        if let Phase::LoggingIn {
            pake: Some((name, _)),
            ..
        }
        | Phase::LoggingIn {
            check: Some((_, name)),
            ..
        } = &c.phase
        {
            let name = name.clone();
            let ip = c.ip();
            self.record_failed_login(now, ip);
            self.event(
                Level::Warning,
                EventKind::Auth,
                format!("Password check abandoned for '{name}' from {ip}"),
            );
        }
        {
            let why = match cause {
                DisconnectCause::PeerClosed => "left",
                DisconnectCause::SlowReader => {
                    "was disconnected: not reading (outbound queue full)"
                }
            };
            let ip = c.ip();
            match c.phase {
                Phase::Active { name, .. } => {
                    let level = match cause {
                        DisconnectCause::PeerClosed => Level::Info,
                        DisconnectCause::SlowReader => Level::Warning,
                    };
                    let message = format!("{name} {why}.");
                    self.presence_event(level, EventKind::Leave, message, &name, false);
                    self.announce_left(now, &name);
                }
                Phase::LoggingIn { .. } => self.event(
                    Level::Debug,
                    EventKind::Connection,
                    format!("Connection {conn} from {} {why} before logging in.", c.addr),
                ),
                Phase::Side => self.event(
                    Level::Debug,
                    EventKind::Connection,
                    format!("File connection {conn} from {} closed.", c.addr),
                ),
                // Gave up waiting for the operator (the question, if it
                // was open, closed in `remove`).
                Phase::Approving { name, .. } => self.event(
                    Level::Info,
                    EventKind::Approval,
                    format!("{name} ({ip}) {why} before being approved."),
                ),
            }
        }
        self.ask_next(now);
        Ok(())
    }

    /// The next action to carry out, in order.
    #[must_use = "actions must be carried out, in order"]
    pub fn poll_action(&mut self) -> Option<Action> {
        if !self.to_seal.is_empty() {
            self.seal_pending();
        }
        if self.web.is_empty() {
            return self.actions.pop_front();
        }
        self.poll_web()
    }

    /// Tell everyone the server is closing, close every connection, and emit
    /// [`Action::Shutdown`]. Used by the console's `/quit` and by signals.
    pub fn shutdown(&mut self, now: Now) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.event(Level::Info, EventKind::Shutdown, "Server shutting down.");
        let notice: Payload = protocol::system(now.wall, "Server is shutting down.")
            .into_bytes()
            .into();
        // Nobody is left to answer: peers waiting for approval are refused.
        self.asked = None;
        self.waiting.clear();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in ids {
            let approving = matches!(
                self.conns.get(&conn).map(|c| &c.phase),
                Some(Phase::Approving { .. })
            );
            if approving {
                self.send(conn, protocol::auth_fail(now.wall, approve::HOST_LEFT));
            }
            if let Some(mut c) = self.remove(conn) {
                if c.name().is_some() {
                    // Shared as is on plaintext; sealed in the connection's
                    // own session otherwise.
                    let bytes = if c.is_plaintext() {
                        Some(Arc::clone(&notice))
                    } else {
                        c.encode(&notice).ok().flatten()
                    };
                    if let Some(bytes) = bytes {
                        self.actions.push_back(Action::Send { conn, bytes });
                    }
                }
                self.actions.push_back(Action::Close {
                    conn,
                    reason: CloseReason::Shutdown,
                });
            }
        }
        self.web_shutdown();
        self.timers.clear();
        self.stop_plugins(now);
        self.actions.push_back(Action::Shutdown);
    }

    // ── Introspection (tests, fuzzing, statistics) ─────────────────────────

    /// `Ok` for a connection this server issued and has closed since (a
    /// runtime routinely reports on those); an error only for an id it never
    /// issued, which is a runtime's bug.
    fn closed_or_unknown(&self, conn: ConnId) -> Result<(), Error> {
        if (1..self.next_id).contains(&conn.0) {
            Ok(())
        } else {
            Err(Error::UnknownConnection(conn))
        }
    }

    /// Whether `conn` is open as far as the server knows.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Logged-in users in the order they logged in.
    pub fn usernames(&self) -> Vec<&str> {
        let mut users: Vec<(u64, &str)> = self
            .conns
            .values()
            .filter_map(|c| match &c.phase {
                Phase::Active { name, joined } => Some((*joined, name.as_str())),
                Phase::LoggingIn { .. } | Phase::Approving { .. } | Phase::Side => None,
            })
            .collect();
        users.sort_unstable();
        users.into_iter().map(|(_, name)| name).collect()
    }

    /// Logged-in users as `/users` shows them: in login order, and marked
    /// when they are not encrypted (only when encryption is on offer); then
    /// the plugins running, marked as bots.
    pub fn roster(&self) -> Vec<String> {
        let mut users: Vec<(u64, String)> = self
            .conns
            .values()
            .filter_map(|c| match &c.phase {
                Phase::Active { name, joined } => {
                    let mark = if self.secure.is_some() && c.is_plaintext() {
                        " (unencrypted)"
                    } else {
                        ""
                    };
                    Some((*joined, format!("{name}{mark}")))
                }
                Phase::LoggingIn { .. } | Phase::Approving { .. } | Phase::Side => None,
            })
            .collect();
        users.sort_unstable();
        users
            .into_iter()
            .map(|(_, name)| name)
            .chain(self.plugins.bots())
            .collect()
    }

    /// Bytes of an unfinished line held for `conn`.
    pub fn buffered(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn).map(|c| c.lines.buffered())
    }

    /// Open connections, logged in or not.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }
}
