//! The server state machine.
//!
//! A runtime owns one [`Server`] and feeds it everything that happens — a
//! connection opened, bytes arrived, a connection dropped, time passed, the
//! operator typed a line — then drains [`Server::poll_action`] and carries the
//! actions out in order. It sleeps until [`Server::poll_timeout`] when idle.
//! Nothing here blocks, allocates per recipient, or can be made to panic by a
//! peer.

mod approve;
mod config;
mod console;
mod event;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use core::net::{IpAddr, SocketAddr};

pub use config::{Approval, SecureConfig, ServerConfig, TrustedPeer};
pub use console::console_help;
pub use event::{ApprovalRequest, EventDetail, EventKind, Level, ServerEvent};

use crate::bans::{canonical, BanList};
use crate::framing::{Frame, LineBuffer};
use crate::names::{name_key, validate_username};
use crate::protocol::{self, ClientLine, MAX_TEXT_CHARS};
use crate::ratelimit::Window;
use crate::secure::{self, grow, FrameBuffer, Kdf, Offer, PakeServer, SeededRng, Suite};
use crate::time::{Instant, Now};

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
    /// The ban list changed; store the whole list.
    PersistBans(BanList),
    /// Tell the operator and/or the log.
    Event(ServerEvent),
    /// The server has shut down: every connection was closed; flush and exit.
    Shutdown,
}

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

enum Phase {
    LoggingIn {
        deadline: Instant,
        /// A password check under way: the name asked for, and what the
        /// client's proof must be.
        pake: Option<(String, PakeServer)>,
    },
    /// Logged in (name and password checked), waiting to be approved by
    /// the operator: first the commit-then-reveal exchange for the code,
    /// then the operator's answer. Not a user yet: sees and sends no chat.
    Approving {
        deadline: Instant,
        name: String,
        step: approve::Step,
    },
    /// Logged in; `joined` orders users by login, as LanTalk lists them.
    Active { name: String, joined: u64 },
}

/// How bytes travel on a connection.
enum Wire {
    /// JSON lines in the clear. Until the first line arrives (`offer` is
    /// still held), that line may be a hello that switches to frames.
    Plain { offer: Option<Vec<u8>> },
    Handshake {
        noise: Box<snow::HandshakeState>,
        frames: FrameBuffer,
    },
    Secure {
        noise: Box<snow::TransportState>,
        frames: FrameBuffer,
        /// Binds the password check to this one session.
        hash: Vec<u8>,
        /// The client's long-term key.
        peer: Vec<u8>,
    },
}

struct Conn {
    addr: SocketAddr,
    wire: Wire,
    /// JSON lines: as received, or as decrypted.
    lines: LineBuffer,
    /// Lines for an encrypted peer not sealed yet: everything the server
    /// says to it while handling one input goes out in one frame (see
    /// [`Server::seal_pending`]).
    unsealed: Vec<u8>,
    phase: Phase,
    last_input: Instant,
    malformed_in_a_row: u32,
    rate: Option<Window>,
    flood_warnings: Window,
}

impl Conn {
    /// When this connection must have done something by, if ever.
    fn deadline(&self, idle_timeout: Option<Duration>) -> Option<Instant> {
        match self.phase {
            Phase::LoggingIn { deadline, .. } | Phase::Approving { deadline, .. } => Some(deadline),
            Phase::Active { .. } => idle_timeout.map(|t| self.last_input + t),
        }
    }

    fn name(&self) -> Option<&str> {
        match &self.phase {
            Phase::Active { name, .. } => Some(name),
            Phase::LoggingIn { .. } | Phase::Approving { .. } => None,
        }
    }

    fn ip(&self) -> IpAddr {
        canonical(self.addr.ip())
    }

    fn is_plaintext(&self) -> bool {
        matches!(self.wire, Wire::Plain { .. })
    }

    /// Queues `line` to be sealed with whatever else follows it; true if it
    /// is the first line queued since the last seal. Only for secure wires.
    fn queue_sealed(&mut self, line: &[u8]) -> bool {
        let first = self.unsealed.is_empty();
        self.unsealed.extend_from_slice(line);
        first
    }

    /// The queued lines in one sealed payload, if any.
    fn take_sealed(&mut self) -> Option<Payload> {
        if self.unsealed.is_empty() {
            return None;
        }
        let mut lines = std::mem::take(&mut self.unsealed);
        let bytes = self.encode(&lines);
        // A burst may have grown it; an idle connection should not keep that.
        if lines.capacity() <= KEEP_UNSEALED {
            lines.clear();
            self.unsealed = lines;
        }
        Some(bytes)
    }

    fn is_secure(&self) -> bool {
        matches!(self.wire, Wire::Secure { .. })
    }

    /// `line` as it must go on this connection's wire. In the middle of a
    /// handshake there is no way to say anything: an empty payload.
    fn encode(&mut self, line: &[u8]) -> Payload {
        match &mut self.wire {
            // Only fails if the nonce space (2^64 messages) is exhausted.
            Wire::Secure { noise, .. } => {
                secure::seal_shared(noise, line).unwrap_or_else(|_| Payload::from(&[][..]))
            }
            Wire::Handshake { .. } => Payload::from(&[][..]),
            Wire::Plain { .. } => line.into(),
        }
    }
}

/// Capacity of a connection's unsealed lines kept between bursts.
const KEEP_UNSEALED: usize = 16 * 1024;

/// Addresses whose failed logins are tracked at most; beyond this the idle
/// records are dropped first, so the table cannot grow without bound.
const MAX_TRACKED_ADDRESSES: usize = 4096;

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
}

impl Server {
    pub fn new(config: ServerConfig, now: Now, bans: BanList) -> Self {
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
        Server {
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
        }
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
        self.expire(now);
        let conn = ConnId(self.next_id);
        self.next_id += 1;
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
        } else if !(self.config.exempt_loopback && ip.is_loopback())
            && self.per_address.get(&ip).copied().unwrap_or(0) >= self.config.max_per_address
        {
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
            return conn;
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
        conn
    }

    /// Bytes received on a connection, in whatever chunks the transport gave.
    pub fn handle_input(&mut self, now: Now, conn: ConnId, bytes: &[u8]) -> Result<(), Error> {
        let result = self.input(now, conn, bytes);
        self.ask_next(now);
        result
    }

    fn input(&mut self, now: Now, conn: ConnId, bytes: &[u8]) -> Result<(), Error> {
        let known = self.conns.contains_key(&conn);
        self.expire(now);
        if !known {
            return Err(Error::UnknownConnection(conn));
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(()); // it timed out just now
        };
        c.last_input = now.instant;
        if matches!(c.wire, Wire::Plain { .. }) {
            c.lines.push(bytes);
            self.drain_lines(now, conn);
        } else {
            self.handle_frames(now, conn, bytes);
        }
        Ok(())
    }

    /// Handles every complete line buffered for `conn`.
    fn drain_lines(&mut self, now: Now, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // Take the buffer out so each line can be handled with `&mut self`.
        let mut lines = std::mem::replace(&mut c.lines, LineBuffer::new(0));
        while let Some(frame) = lines.next_frame() {
            match frame {
                Frame::Line(line) => {
                    if let Some(suite) = self.hello(conn, line) {
                        let hello = line.to_vec();
                        let rest = lines.take_rest();
                        return self.start_handshake(now, conn, &hello, suite, &rest);
                    }
                    self.handle_line(now, conn, line)
                }
                Frame::TooLong => self.line_too_long(now, conn),
            }
            if !self.conns.contains_key(&conn) {
                return;
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.lines = lines;
        }
    }

    /// The suite `line` asks for, if it is the first line of `conn` and a
    /// hello for a suite we offered.
    fn hello(&mut self, conn: ConnId, line: &[u8]) -> Option<Suite> {
        let offered = &self.secure.as_ref()?.0.suites;
        let c = self.conns.get_mut(&conn)?;
        match &mut c.wire {
            Wire::Plain { offer } if offer.is_some() => {
                let suite =
                    secure::hello_suite(line).filter(|s| offered.iter().any(|o| o == s.name()));
                if suite.is_none() {
                    // The first line decides: this one is a plaintext login.
                    *offer = None;
                }
                suite
            }
            _ => None,
        }
    }

    fn start_handshake(&mut self, now: Now, conn: ConnId, hello: &[u8], suite: Suite, rest: &[u8]) {
        let Some((_, rng)) = self.secure.as_mut() else {
            return;
        };
        let seed = rng.seed();
        let Some(identity) = self.config.secure.as_ref().map(|s| s.identity.clone()) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Wire::Plain { offer: Some(offer) } = &c.wire else {
            return;
        };
        let mut hello_line = hello.to_vec();
        hello_line.push(b'\n');
        let prologue = secure::prologue(offer, &hello_line);
        match secure::handshake(false, &identity, &prologue, seed, suite) {
            Ok(noise) => {
                c.wire = Wire::Handshake {
                    noise: Box::new(noise),
                    frames: FrameBuffer::default(),
                };
                c.lines = LineBuffer::new(self.config.max_line);
                self.handle_frames(now, conn, rest);
            }
            Err(_) => self.drop_secure(now, conn, "the handshake could not start"),
        }
    }

    /// Bytes on a connection that speaks frames: advance the handshake, or
    /// decrypt and handle the lines inside.
    fn handle_frames(&mut self, now: Now, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut out = Vec::new();
        let mut failure = None;
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let frames = match &mut c.wire {
            Wire::Handshake { frames, .. } | Wire::Secure { frames, .. } => frames,
            Wire::Plain { .. } => return,
        };
        frames.push(bytes);
        let mut pending = std::mem::take(frames);
        while let Some(frame) = pending.next_frame() {
            match &mut c.wire {
                Wire::Handshake { noise, .. } => {
                    // Our handshake messages carry no payload; one that does
                    // is not ours (the first message is not even
                    // authenticated, so this is checked by hand).
                    if !matches!(
                        noise.read_message(frame, grow(&mut buf, frame.len())),
                        Ok(0)
                    ) {
                        failure = Some("the handshake failed (tampered or not LanTalk)");
                        break;
                    }
                    if !noise.is_handshake_finished() {
                        match noise.write_message(&[], &mut buf) {
                            Ok(n) => out.extend_from_slice(&secure::frame(&buf[..n])),
                            Err(_) => {
                                failure = Some("the handshake failed");
                                break;
                            }
                        }
                        continue;
                    }
                    let Wire::Handshake { noise, .. } =
                        std::mem::replace(&mut c.wire, Wire::Plain { offer: None })
                    else {
                        unreachable!("matched above")
                    };
                    let hash = noise.get_handshake_hash().to_vec();
                    let peer = noise.get_remote_static().unwrap_or_default().to_vec();
                    match noise.into_transport_mode() {
                        Ok(transport) => {
                            c.wire = Wire::Secure {
                                noise: Box::new(transport),
                                frames: FrameBuffer::default(),
                                hash,
                                peer,
                            }
                        }
                        Err(_) => {
                            failure = Some("the handshake failed");
                            break;
                        }
                    }
                }
                Wire::Secure { noise, .. } => {
                    match noise.read_message(frame, grow(&mut buf, frame.len())) {
                        Ok(n) => c.lines.push(&buf[..n]),
                        Err(_) => {
                            failure = Some("a frame failed to decrypt (tampered or replayed)");
                            break;
                        }
                    }
                }
                Wire::Plain { .. } => break,
            }
        }
        if let Wire::Handshake { frames, .. } | Wire::Secure { frames, .. } = &mut c.wire {
            *frames = pending;
            if frames.buffered() > secure::MAX_FRAME + 2 {
                failure = Some("a frame was too large");
            }
        }
        if !out.is_empty() {
            self.actions.push_back(Action::Send {
                conn,
                bytes: out.into(),
            });
        }
        // Lines that decrypted before a bad frame are authentic: handle them
        // first, so the outcome does not depend on how TCP split the bytes.
        self.drain_lines(now, conn);
        if let Some(why) = failure {
            self.drop_secure(now, conn, why);
        }
    }

    /// Closes a connection whose encrypted transport failed. Nothing is sent:
    /// there is no channel left to say it on.
    fn drop_secure(&mut self, now: Now, conn: ConnId, why: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let addr = c.addr;
        let name = c.name().map(str::to_string);
        self.event(
            Level::Warning,
            EventKind::Auth,
            format!("Closed encrypted connection from {addr}: {why}"),
        );
        self.close(conn, CloseReason::Encryption);
        if let Some(name) = name {
            self.announce_left(now, &name);
        }
    }

    /// The transport under `conn` is gone. No `Close` action follows: the
    /// runtime has already dropped (or is dropping) the connection.
    pub fn handle_disconnect(
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
            return Err(Error::UnknownConnection(conn));
        };
        self.expire(now);
        // Leaving in the middle of a password check counts as a failed guess:
        // otherwise guesses would cost nothing against the limit.
        if let Phase::LoggingIn {
            pake: Some((name, _)),
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
                    self.event(level, EventKind::Leave, format!("{name} {why}."));
                    self.announce_left(now, &name);
                }
                Phase::LoggingIn { .. } => self.event(
                    Level::Debug,
                    EventKind::Connection,
                    format!("Connection {conn} from {} {why} before logging in.", c.addr),
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

    /// Time passed; fire every deadline that is due.
    pub fn handle_timeout(&mut self, now: Now) {
        self.expire(now);
        self.ask_next(now);
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        if !self.to_seal.is_empty() {
            self.seal_pending();
        }
        self.actions.pop_front()
    }

    /// Seals what every encrypted connection has queued, one payload each.
    ///
    /// Sealing costs about as much for one chat line as for a dozen (the
    /// cipher's setup dominates small messages), so lines are sealed per
    /// input handled rather than per line: a sender's read of many messages
    /// fans out as one frame per recipient. Nothing waits for it: this runs
    /// as soon as the runtime asks for the actions of the same input, and
    /// before a connection is closed.
    fn seal_pending(&mut self) {
        for id in std::mem::take(&mut self.to_seal) {
            if let Some(bytes) = self.conns.get_mut(&id).and_then(Conn::take_sealed) {
                self.actions.push_back(Action::Send { conn: id, bytes });
            }
        }
    }

    /// When [`Server::handle_timeout`] should be called next. May be early
    /// (then nothing happens), never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
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
                        Arc::clone(&notice)
                    } else {
                        c.encode(&notice)
                    };
                    self.actions.push_back(Action::Send { conn, bytes });
                }
                self.actions.push_back(Action::Close {
                    conn,
                    reason: CloseReason::Shutdown,
                });
            }
        }
        self.timers.clear();
        self.actions.push_back(Action::Shutdown);
    }

    // ── Introspection (tests, fuzzing, statistics) ─────────────────────────

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
                Phase::LoggingIn { .. } | Phase::Approving { .. } => None,
            })
            .collect();
        users.sort_unstable();
        users.into_iter().map(|(_, name)| name).collect()
    }

    /// Logged-in users as `/users` shows them: in login order, and marked
    /// when they are not encrypted (only when encryption is on offer).
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
                Phase::LoggingIn { .. } | Phase::Approving { .. } => None,
            })
            .collect();
        users.sort_unstable();
        users.into_iter().map(|(_, name)| name).collect()
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

    // ── Lines ──────────────────────────────────────────────────────────────

    fn handle_line(&mut self, now: Now, conn: ConnId, line: &[u8]) {
        // Blank lines are keep-alives at most; LanTalk ignores them too.
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match self.conns.get(&conn).map(|c| &c.phase) {
            Some(Phase::Active { .. }) => self.handle_chat_line(now, conn, line),
            Some(Phase::Approving { .. }) => self.handle_approval_line(now, conn, line),
            _ => self.handle_login(now, conn, line),
        }
    }

    fn handle_login(&mut self, now: Now, conn: ConnId, line: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ip = c.ip();
        let plaintext = c.is_plaintext();
        if let Phase::LoggingIn { pake, .. } = &mut c.phase {
            if let Some((name, check)) = pake.take() {
                return self.finish_pake(now, conn, line, name, check);
            }
        }

        let login = match protocol::parse_login(line) {
            Ok(login) => login,
            Err(m) => {
                return self.refuse_login(now, conn, &format!("Malformed login: {}.", m.0));
            }
        };
        if plaintext && self.secure.is_some() && !self.config.allow_plaintext {
            return self.refuse_login(
                now,
                conn,
                "This server only accepts encrypted connections, and your client does not \
                 encrypt (LanTalk 2.0?). Use a LanTalk client that does, or ask the operator \
                 to allow plaintext clients.",
            );
        }
        if let Some(w) = self.failed_logins.get_mut(&ip) {
            if w.is_full(now.instant) {
                let wait = w
                    .frees_at()
                    .map(|t| {
                        t.saturating_since(now.instant)
                            .as_secs_f64()
                            .ceil()
                            .max(1.0) as u64
                    })
                    .unwrap_or(1);
                let text = format!("Too many failed logins; try again in {wait} s.");
                return self.refuse_login(now, conn, &text);
            }
        }
        if let Err(reason) = validate_username(&login.username) {
            return self.refuse_login(now, conn, &reason);
        }
        if self.name_taken(&login.username) {
            return self.refuse_login(now, conn, "Username already taken.");
        }
        let Some(hash) = self.config.password.clone() else {
            return self.admit(now, conn, login.username);
        };
        if plaintext {
            if hash.verify(&login.password) {
                return self.admit(now, conn, login.username);
            }
            return self.wrong_password(now, conn, ip, &login.username);
        }
        // Encrypted: the password never crosses the wire; run SPAKE2 instead.
        let Some(client_msg) = login.pake else {
            return self.refuse_login(now, conn, "This server needs a password.");
        };
        let seed = match self.secure.as_mut() {
            Some((_, rng)) => rng.seed(),
            None => return,
        };
        let Some(Wire::Secure { hash: session, .. }) = self.conns.get(&conn).map(|c| &c.wire)
        else {
            return;
        };
        match secure::pake_server_respond(hash.secret(), &client_msg, session, seed) {
            Some((msg, proof, check)) => {
                if let Some(Phase::LoggingIn { pake, .. }) =
                    self.conns.get_mut(&conn).map(|c| &mut c.phase)
                {
                    *pake = Some((login.username, check));
                }
                self.send(conn, protocol::pake_reply(&msg, &proof));
            }
            None => self.wrong_password(now, conn, ip, &login.username),
        }
    }

    /// The client's proof that it knows the password.
    fn finish_pake(
        &mut self,
        now: Now,
        conn: ConnId,
        line: &[u8],
        name: String,
        check: PakeServer,
    ) {
        let ip = match self.conns.get(&conn) {
            Some(c) => c.ip(),
            None => return,
        };
        match protocol::parse_pake_confirm(line) {
            Ok(proof) if check.verify(&proof) => {
                // The name may have been taken while the check ran.
                if self.name_taken(&name) {
                    return self.refuse_login(now, conn, "Username already taken.");
                }
                self.admit(now, conn, name)
            }
            _ => self.wrong_password(now, conn, ip, &name),
        }
    }

    fn wrong_password(&mut self, now: Now, conn: ConnId, ip: IpAddr, name: &str) {
        self.record_failed_login(now, ip);
        self.event(
            Level::Warning,
            EventKind::Auth,
            format!("Wrong password attempt for '{name}' from {ip}"),
        );
        self.refuse_login(now, conn, "Wrong password.");
    }

    fn complete_login(&mut self, now: Now, conn: ConnId, name: String) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ip = c.ip();
        c.phase = Phase::Active {
            name: name.clone(),
            joined: self.logins,
        };
        self.logins += 1;
        let how = match &c.wire {
            Wire::Secure { peer, .. } => format!(" (key {})", secure::fingerprint(peer)),
            _ if self.secure.is_some() => " (unencrypted)".to_string(),
            _ => String::new(),
        };
        let ours = c.is_secure();
        self.users.insert(name_key(&name), conn);
        // The idle deadline may come before the login deadline still armed.
        if let Some(idle) = self.config.idle_timeout {
            self.timers.push(Reverse((now.instant + idle, conn)));
        }
        let ok = if ours {
            let info = protocol::SessionInfo {
                rate_limit: self.config.rate_limit,
                idle_timeout: self.config.idle_timeout,
                users: self.usernames().into_iter().map(str::to_string).collect(),
            };
            protocol::auth_ok_ours(now.wall, &name, &self.config.name, &info)
        } else {
            protocol::auth_ok(now.wall, &name, &self.config.name)
        };
        self.send(conn, ok);
        self.event(
            Level::Info,
            EventKind::Join,
            format!("{name} joined from {ip}{how}"),
        );
        // Everyone is told when a member can be read by the whole network.
        let marker = if how == " (unencrypted)" {
            how.as_str()
        } else {
            ""
        };
        let notice = protocol::system(now.wall, &format!("{name} joined from {ip}{marker}."));
        self.broadcast(notice, Some(conn));
        self.broadcast_ours(protocol::presence(now.wall, &name, true), Some(conn));
    }

    fn refuse_login(&mut self, now: Now, conn: ConnId, reason: &str) {
        self.refuse_login_as(now, conn, reason, CloseReason::AuthFailed);
    }

    fn refuse_login_as(&mut self, now: Now, conn: ConnId, reason: &str, close: CloseReason) {
        if let Some(c) = self.conns.get(&conn) {
            let addr = c.addr;
            self.event(
                Level::Info,
                EventKind::Auth,
                format!("Login refused for {addr}: {reason}"),
            );
        }
        self.send(conn, protocol::auth_fail(now.wall, reason));
        self.close(conn, close);
    }

    fn record_failed_login(&mut self, now: Now, ip: IpAddr) {
        if !self.failed_logins.contains_key(&ip)
            && self.failed_logins.len() >= MAX_TRACKED_ADDRESSES
        {
            self.failed_logins.retain(|_, w| !w.is_idle(now.instant));
            if self.failed_logins.len() >= MAX_TRACKED_ADDRESSES {
                if let Some(&victim) = self.failed_logins.keys().next() {
                    self.failed_logins.remove(&victim);
                }
            }
        }
        let rate = self.config.failed_logins;
        self.failed_logins
            .entry(ip)
            .or_insert_with(|| Window::new(rate))
            .hit(now.instant);
    }

    fn handle_chat_line(&mut self, now: Now, conn: ConnId, line: &[u8]) {
        let max_malformed = self.config.max_malformed_in_a_row;
        let parsed = protocol::parse_client_line(line);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (text, literal) = match parsed {
            Ok(ClientLine::Message(text)) => {
                c.malformed_in_a_row = 0;
                (text, false)
            }
            Ok(ClientLine::Literal(text)) => {
                c.malformed_in_a_row = 0;
                (text, true)
            }
            // Input of any kind already counts against the idle timeout.
            Ok(ClientLine::Keepalive) => {
                c.malformed_in_a_row = 0;
                return;
            }
            Ok(ClientLine::Other) => {
                c.malformed_in_a_row = 0;
                let name = c.name().unwrap_or_default().to_string();
                return self.event(
                    Level::Debug,
                    EventKind::Malformed,
                    format!("Ignored a non-message line from {name}"),
                );
            }
            Err(m) => {
                c.malformed_in_a_row += 1;
                let too_many = c.malformed_in_a_row >= max_malformed;
                let name = c.name().unwrap_or_default().to_string();
                self.event(
                    Level::Debug,
                    EventKind::Malformed,
                    format!("Malformed line from {name} ignored: {}", m.0),
                );
                if too_many {
                    return self.kick(
                        now,
                        conn,
                        "Too many malformed messages — disconnecting.",
                        CloseReason::Malformed,
                        "was disconnected for sending malformed data",
                    );
                }
                return self.send(
                    conn,
                    protocol::system(now.wall, &format!("Ignored a malformed message ({}).", m.0)),
                );
            }
        };
        if text.is_empty() {
            return;
        }
        if !self.check_rate(now, conn) {
            return;
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            let notice = format!("Message not sent: longer than {MAX_TEXT_CHARS} characters.");
            return self.send(conn, protocol::system(now.wall, &notice));
        }
        // LanTalk 2.0 clients print what they receive as it is: a control
        // character would reach their terminals raw (our clients make it
        // visible whatever a server sends). Refused here, for everyone.
        if let Some(bad) = protocol::first_control(&text) {
            let notice = format!(
                "Message not sent: it contains the control character U+{:04X}, which could \
                 disrupt other people's terminals.",
                bad as u32
            );
            return self.send(conn, protocol::system(now.wall, &notice));
        }
        // The sender's name is borrowed, not copied, on the way to the
        // broadcast (commands, rarer, take a copy).
        let Some(name) = self.conns.get(&conn).and_then(Conn::name) else {
            return;
        };
        if text.starts_with('/') && !literal {
            let name = name.to_string();
            return self.handle_client_command(now, conn, &name, &text);
        }
        let line = protocol::message(now.wall, name, &text);
        if self.config.chat_events {
            let name = name.to_string();
            let message = format!("<{name}> {text}");
            let chat = EventDetail::Chat { user: name, text };
            self.detailed_event(Level::Debug, EventKind::Chat, message, chat);
        }
        self.relayed += 1;
        self.broadcast(line, Some(conn));
    }

    /// Applies the rate limit; `false` when the line must be dropped.
    fn check_rate(&mut self, now: Now, conn: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let Some(rate) = c.rate.as_mut() else {
            return true;
        };
        if rate.try_hit(now.instant) {
            return true;
        }
        c.flood_warnings.hit(now.instant);
        let kick = c.flood_warnings.is_full(now.instant);
        let name = c.name().unwrap_or_default().to_string();
        self.event(
            Level::Warning,
            EventKind::RateLimit,
            format!("{name} hit rate limit"),
        );
        if kick {
            self.kick(
                now,
                conn,
                "You have been kicked for flooding.",
                CloseReason::Flooding,
                "was kicked for flooding",
            );
        } else {
            self.send(
                conn,
                protocol::system(
                    now.wall,
                    "\u{26a0} Slow down \u{2014} you're sending too fast.",
                ),
            );
        }
        false
    }

    fn handle_client_command(&mut self, now: Now, conn: ConnId, name: &str, text: &str) {
        let (cmd, rest) = protocol::split_word(text);
        let cmd = cmd.to_lowercase();
        match cmd.as_str() {
            "/users" => {
                let list = format!("Online: {}", self.roster().join(", "));
                self.send(conn, protocol::system(now.wall, &list));
            }
            "/pm" => {
                let (target, body) = protocol::split_word(rest);
                let body = body.trim();
                if target.is_empty() || body.is_empty() {
                    return self.send(
                        conn,
                        protocol::system(now.wall, "Usage: /pm <user> <message>"),
                    );
                }
                match self.users.get(&name_key(target)).copied() {
                    Some(to) => {
                        self.event(
                            Level::Debug,
                            EventKind::Chat,
                            format!("PM {name} -> {target}"),
                        );
                        self.send(to, protocol::pm(now.wall, name, body));
                        if self.conns.get(&conn).is_some_and(Conn::is_secure) {
                            let to_name = self
                                .conns
                                .get(&to)
                                .and_then(Conn::name)
                                .unwrap_or(target)
                                .to_string();
                            self.send(conn, protocol::pm_sent(now.wall, &to_name, body));
                        }
                    }
                    None => self.send(
                        conn,
                        protocol::system(now.wall, &format!("User '{target}' not found.")),
                    ),
                }
            }
            "/quit" | "/exit" | "/q" => {
                self.send(conn, protocol::system(now.wall, "Goodbye!"));
                if let Some(c) = self.remove(conn) {
                    self.actions.push_back(Action::Close {
                        conn,
                        reason: CloseReason::Quit,
                    });
                    if let Phase::Active { name, .. } = c.phase {
                        self.event(Level::Info, EventKind::Leave, format!("{name} left."));
                        self.announce_left(now, &name);
                    }
                }
            }
            "/me" => {
                let action = rest.trim();
                if action.is_empty() {
                    return self.send(conn, protocol::system(now.wall, "Usage: /me <action>"));
                }
                // Sent on as the command itself: our clients show `* name
                // action`, LanTalk 2.0 clients show it as a plain line.
                let chat = EventDetail::Chat {
                    user: name.to_string(),
                    text: format!("/me {action}"),
                };
                let message = format!("* {name} {action}");
                self.detailed_event(Level::Debug, EventKind::Chat, message, chat);
                self.relayed += 1;
                let line = protocol::message(now.wall, name, &format!("/me {action}"));
                self.broadcast(line, Some(conn));
            }
            "/help" => {
                let help = crate::commands::chat_help(false);
                self.send(conn, protocol::system(now.wall, &help));
            }
            _ => self.send(
                conn,
                protocol::system(
                    now.wall,
                    &format!("Unknown command: {cmd}. Type /help for the list."),
                ),
            ),
        }
    }

    fn line_too_long(&mut self, now: Now, conn: ConnId) {
        let max = self.config.max_line;
        let notice = format!("Line longer than {max} bytes — disconnecting.");
        let logged_in = self.conns.get(&conn).and_then(Conn::name).is_some();
        if logged_in {
            self.kick(
                now,
                conn,
                &notice,
                CloseReason::LineTooLong,
                "was disconnected for sending an oversized line",
            );
        } else {
            self.refuse_login_as(now, conn, &notice, CloseReason::LineTooLong);
        }
    }

    // ── Moderation (shared by flood control and the console) ──────────────

    /// Sends `notice` to `conn`, closes it, and tells everyone else that the
    /// user `what` (e.g. "was kicked").
    fn kick(&mut self, now: Now, conn: ConnId, notice: &str, reason: CloseReason, what: &str) {
        self.send(conn, protocol::system(now.wall, notice));
        if let Some(c) = self.remove(conn) {
            self.actions.push_back(Action::Close { conn, reason });
            if let Phase::Active { name, .. } = c.phase {
                let level = match reason {
                    CloseReason::Kicked | CloseReason::Banned => Level::Info,
                    _ => Level::Warning,
                };
                let kind = match reason {
                    CloseReason::Flooding => EventKind::RateLimit,
                    CloseReason::LineTooLong | CloseReason::Malformed => EventKind::Malformed,
                    _ => EventKind::Moderation,
                };
                self.event(level, kind, format!("{name} {what}"));
                let others = protocol::system(now.wall, &format!("{name} {what}."));
                self.broadcast(others, None);
                self.broadcast_ours(protocol::presence(now.wall, &name, false), None);
            }
        }
    }

    // ── Plumbing ───────────────────────────────────────────────────────────

    fn expire(&mut self, now: Now) {
        while let Some(&Reverse((at, conn))) = self.timers.peek() {
            if at > now.instant {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            let Some(real) = c.deadline(self.config.idle_timeout) else {
                continue;
            };
            if real > now.instant {
                self.timers.push(Reverse((real, conn)));
                continue;
            }
            match c.phase {
                Phase::Approving {
                    step: approve::Step::Waiting { .. },
                    ..
                } => self.approval_timed_out(now, conn),
                Phase::LoggingIn { .. } | Phase::Approving { .. } => {
                    self.refuse_login_as(now, conn, "Login timed out.", CloseReason::AuthTimeout)
                }
                Phase::Active { .. } => self.kick(
                    now,
                    conn,
                    "Idle timeout \u{2014} disconnecting.",
                    CloseReason::IdleTimeout,
                    "timed out",
                ),
            }
        }
    }

    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if self.remove(conn).is_some() {
            self.actions.push_back(Action::Close { conn, reason });
        }
    }

    /// Forgets a connection and everything indexed by it. What was queued
    /// for it goes out first.
    fn remove(&mut self, conn: ConnId) -> Option<Conn> {
        let mut c = self.conns.remove(&conn)?;
        if let Some(bytes) = c.take_sealed() {
            self.actions.push_back(Action::Send { conn, bytes });
        }
        let ip = c.ip();
        if let Some(n) = self.per_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
        if let Some(name) = c.name() {
            self.users.remove(&name_key(name));
        }
        if matches!(c.phase, Phase::Approving { .. }) {
            self.forget_approval(conn);
        }
        Some(c)
    }

    fn announce_left(&mut self, now: Now, name: &str) {
        let notice = protocol::system(now.wall, &format!("{name} left the chat."));
        self.broadcast(notice, None);
        self.broadcast_ours(protocol::presence(now.wall, name, false), None);
    }

    fn send(&mut self, conn: ConnId, line: String) {
        let bytes = match self.conns.get_mut(&conn) {
            Some(c) if c.is_secure() => {
                if c.queue_sealed(line.as_bytes()) {
                    self.to_seal.push(conn);
                }
                return;
            }
            Some(c) => c.encode(line.as_bytes()),
            // Refused at connect: never registered, always plaintext.
            None => line.into_bytes().into(),
        };
        self.actions.push_back(Action::Send { conn, bytes });
    }

    /// Sends `line` to every logged-in user but `except`: encoded once and
    /// shared by every plaintext recipient; queued to be sealed per recipient
    /// otherwise (each session has its own keys).
    fn broadcast(&mut self, line: String, except: Option<ConnId>) {
        let bytes: Payload = line.into_bytes().into();
        let (actions, to_seal) = (&mut self.actions, &mut self.to_seal);
        for (&id, c) in self.conns.iter_mut() {
            if Some(id) == except || c.name().is_none() {
                continue;
            }
            if c.is_secure() {
                if c.queue_sealed(&bytes) {
                    to_seal.push(id);
                }
            } else if c.is_plaintext() {
                actions.push_back(Action::Send {
                    conn: id,
                    bytes: Arc::clone(&bytes),
                });
            }
        }
    }

    /// Sends `line` to every logged-in client of ours (encrypted) but
    /// `except`: lines LanTalk 2.0 clients would not understand.
    fn broadcast_ours(&mut self, line: String, except: Option<ConnId>) {
        let to_seal = &mut self.to_seal;
        for (&id, c) in self.conns.iter_mut() {
            if Some(id) != except
                && c.name().is_some()
                && c.is_secure()
                && c.queue_sealed(line.as_bytes())
            {
                to_seal.push(id);
            }
        }
    }

    fn event(&mut self, level: Level, kind: EventKind, message: impl Into<String>) {
        self.actions
            .push_back(Action::Event(ServerEvent::new(level, kind, message)));
    }

    fn detailed_event(
        &mut self,
        level: Level,
        kind: EventKind,
        message: impl Into<String>,
        detail: EventDetail,
    ) {
        let event = ServerEvent::new(level, kind, message).with_detail(detail);
        self.actions.push_back(Action::Event(event));
    }
}
