//! The client state machine.
//!
//! It logs in, turns the user's typed lines into protocol lines, and turns the
//! server's lines into typed [`ClientEvent`]s for a user interface. It paces
//! what it sends to the server's rate limit instead of letting the server drop
//! lines, so piping a file into the client loses nothing.

use std::collections::VecDeque;
use std::time::Duration;

use crate::approval::{self, ServerApproval};
use crate::framing::{Frame, LineBuffer};
pub use crate::protocol::Refusal;
use crate::protocol::{self, Malformed, ServerLine, MAX_TEXT_CHARS};
use crate::ratelimit::{Rate, Window};
use crate::secure::{self, grow, FrameBuffer, Kdf, Offer, PakeClient, SeededRng, StaticKey};
use crate::time::{Instant, Now};

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub username: String,
    /// The password to log in with, if known.
    pub password: Option<String>,
    /// With no password known and the server asking for one: ask the user
    /// (through [`ClientEvent::PasswordRequired`]) instead of giving up.
    pub ask_password: bool,
    /// How long the server may take to answer during login.
    pub auth_timeout: Duration,
    /// Longest line accepted from the server.
    pub max_line: usize,
    /// The server's rate limit as far as we know before it says (LanTalk's
    /// default): outgoing lines are held back to stay safely within it, so
    /// the server never has to drop them. A server of ours tells its real
    /// limit at login, which replaces this.
    pub send_rate: Option<Rate>,
    /// `None`: never encrypt (log in as LanTalk 2.0 does).
    pub secure: Option<ClientSecure>,
    /// Whether to log in without encryption when the server offers none.
    pub allow_plaintext: bool,
}

/// What the client needs to encrypt and to recognise the server.
#[derive(Clone, Debug)]
pub struct ClientSecure {
    /// The client's long-term key.
    pub identity: StaticKey,
    /// Seed for the handshake's and password check's randomness.
    pub rng_seed: [u8; 32],
    /// The server's key as pinned earlier (trust on first use), if any.
    pub pinned: Option<Vec<u8>>,
    /// What to do with a server key seen for the first time.
    pub on_new_key: NewKey,
}

/// Trust on first use: what to do with a key never seen before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewKey {
    /// Trust it (and report it, to be pinned).
    Accept,
    /// Ask the user ([`ClientEvent::ConfirmServerKey`]).
    Ask,
    /// Refuse to continue.
    Refuse,
}

impl ClientConfig {
    pub fn new(username: impl Into<String>, password: Option<String>) -> Self {
        ClientConfig {
            username: username.into(),
            password,
            ask_password: false,
            auth_timeout: Duration::from_secs(10),
            max_line: 64 * 1024,
            send_rate: Some(Rate::new(10, Duration::from_secs(5))),
            secure: None,
            allow_plaintext: true,
        }
    }
}

/// What happened, for the user interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server wants a password and none was configured: answer with
    /// [`Client::handle_password`] or give up with [`Client::handle_quit`].
    PasswordRequired,
    /// The server's key is new: show its fingerprint and answer with
    /// [`Client::handle_trust`].
    ConfirmServerKey {
        fingerprint: String,
    },
    /// The session is encrypted with the server whose key this is. `new`
    /// when it was not pinned before: the user interface pins it now.
    Secured {
        fingerprint: String,
        key: Vec<u8>,
        new: bool,
    },
    /// The host approves each connection and has been asked about this one.
    /// The same code is shown to the host: compare them (by voice, say).
    /// `Joined` or `Refused` follows.
    AwaitingApproval {
        code: String,
    },
    /// Logged in.
    Joined {
        username: String,
        server_name: String,
    },
    /// The server refused the login; the connection closes. `why` is the
    /// reason as a value, for a program to act on.
    Refused {
        reason: String,
        why: Refusal,
    },
    Message {
        ts: String,
        user: String,
        text: String,
    },
    Pm {
        ts: String,
        from_user: String,
        text: String,
    },
    /// Who is online, as the server said at login (servers of ours only;
    /// [`ClientEvent::Presence`] keeps it current).
    Roster {
        users: Vec<String>,
    },
    /// Someone joined (`online`) or left, as a typed fact; the sentence
    /// everyone sees arrives as a [`ClientEvent::System`] line too.
    Presence {
        user: String,
        online: bool,
    },
    /// The user's own chat message went to the server now (the server does
    /// not echo it). Lines held back by pacing are reported as
    /// [`ClientEvent::Queued`] first.
    Sent {
        text: String,
    },
    /// The user's line waits for the rate limit: `ahead` lines go first.
    Queued {
        text: String,
        ahead: usize,
    },
    /// The user's own private message was delivered (a server of ours
    /// confirms it; to a LanTalk 2.0 server, it was sent).
    PmSent {
        to: String,
        text: String,
    },
    /// The user's own `/me` action went to the server now.
    ActionSent {
        text: String,
    },
    /// The user asked to clear the screen (`/clear`); nothing is sent.
    Clear,
    System {
        ts: String,
        text: String,
    },
    /// Something local the user should know (e.g. a line not sent).
    Notice(String),
    /// The connection is over. `expected` is true when the user asked for it.
    Disconnected {
        reason: String,
        expected: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Write these bytes to the server.
    Send(Vec<u8>),
    Event(ClientEvent),
    /// Flush what was sent, then stop sending (half-close). If the session is
    /// not over yet ([`Client::is_closed`] is false), keep reading: the server's
    /// last answers still arrive until it closes its side; give it a grace
    /// period, then call [`Client::handle_disconnect`].
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingRequest,
    /// Waiting for the server's half of the Noise handshake.
    Handshaking,
    /// Waiting for the user to trust a new server key.
    NeedTrust,
    NeedPassword,
    /// The password check is under way.
    AwaitingPake,
    AwaitingResult,
    /// The login passed; the host's operator is deciding.
    AwaitingApproval,
    Chatting,
    /// The user left and the client half-closed; what the server still sends
    /// (answers to the last commands) is shown until it closes its side.
    Leaving,
    Closed,
}

/// How bytes travel to and from the server.
enum Wire {
    Plain,
    Handshake {
        noise: Box<snow::HandshakeState>,
        frames: FrameBuffer,
    },
    /// The server's half of the handshake is in; ours waits for trust.
    Paused {
        frames: FrameBuffer,
    },
    Secure {
        noise: Box<snow::TransportState>,
        frames: FrameBuffer,
        hash: Vec<u8>,
    },
}

pub struct Client {
    config: ClientConfig,
    phase: Phase,
    wire: Wire,
    /// Randomness for the handshake and the password check.
    rng: Option<SeededRng>,
    /// How to derive the password's secret, when the server offered it.
    kdf: Option<Kdf>,
    /// A half-done Noise handshake waiting for the user's trust.
    pending: Option<Box<snow::HandshakeState>>,
    pake: Option<PakeClient>,
    /// Our approval nonce, once committed to.
    approval_nonce: Option<[u8; 32]>,
    needs_password: bool,
    /// JSON lines: as received, or as decrypted.
    lines: LineBuffer,
    /// Login or reply deadline while logging in.
    deadline: Option<Instant>,
    /// Chat lines typed but not yet sent (before login, or held by pacing).
    outbox: VecDeque<Outgoing>,
    pacing: Option<Window>,
    /// How often to send something so that the server does not take us for
    /// dead (servers of ours say; `None`: never).
    keepalive: Option<Duration>,
    /// When we last sent a line once logged in.
    last_sent: Instant,
    /// The user asked to leave once the outbox is empty.
    leaving: bool,
    /// ... and not to wait for a login under way.
    abandon_login: bool,
    actions: VecDeque<ClientAction>,
}

/// A line the user typed, waiting to be sent.
#[derive(Clone, Debug)]
struct Outgoing {
    /// The message text as the server gets it.
    text: String,
    kind: OutKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum OutKind {
    Chat,
    /// Text that starts with `/` but is not a command (typed as `//text`).
    Literal,
    /// `/me <action>`.
    Action(String),
    /// `/pm <to> <text>`.
    Pm {
        to: String,
        text: String,
    },
    /// Any other command: its answer is the server's.
    Command,
}

/// The pace the client keeps for a server limit of `rate`: one line fewer
/// per a slightly longer window. The server counts lines as they arrive and
/// we count them as they leave; without a margin, one line delayed on the
/// way makes the next burst look too fast (a pasted block used to end in
/// warnings and a kick for flooding).
pub fn paced(rate: Rate) -> Rate {
    Rate::new(
        rate.count.saturating_sub(1).max(1),
        rate.window + rate.window / 10 + Duration::from_millis(200),
    )
}

impl Client {
    /// A client that has just opened its connection.
    pub fn new(config: ClientConfig, now: Now) -> Self {
        let deadline = Some(now.instant + config.auth_timeout);
        let lines = LineBuffer::new(config.max_line);
        let pacing = config.send_rate.map(|r| Window::new(paced(r)));
        let rng = config.secure.as_ref().map(|s| SeededRng::new(s.rng_seed));
        Client {
            config,
            phase: Phase::AwaitingRequest,
            wire: Wire::Plain,
            rng,
            kdf: None,
            pending: None,
            pake: None,
            approval_nonce: None,
            needs_password: false,
            lines,
            deadline,
            outbox: VecDeque::new(),
            pacing,
            keepalive: None,
            last_sent: now.instant,
            leaving: false,
            abandon_login: false,
            actions: VecDeque::new(),
        }
    }

    /// Whether the session is over (nothing more will be sent or shown).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the user left and the client only waits for the server to close.
    pub fn is_leaving(&self) -> bool {
        self.phase == Phase::Leaving
    }

    pub fn is_joined(&self) -> bool {
        self.phase == Phase::Chatting
    }

    pub fn username(&self) -> &str {
        &self.config.username
    }

    /// Bytes from the server.
    pub fn handle_input(&mut self, now: Now, bytes: &[u8]) {
        self.expire(now);
        // Release what pacing allows by now, before anything that arrived:
        // the outcome must not depend on how the bytes were chunked.
        self.flush(now);
        if self.phase == Phase::Closed {
            return;
        }
        if matches!(self.wire, Wire::Plain) {
            self.lines.push(bytes);
        } else if let Err(why) = self.decrypt(now, bytes) {
            return self.fail(why);
        }
        self.drain_lines(now);
    }

    fn drain_lines(&mut self, now: Now) {
        let mut lines = std::mem::replace(&mut self.lines, LineBuffer::new(0));
        while let Some(frame) = lines.next_frame() {
            match frame {
                Frame::Line(line) => {
                    let was_plain = matches!(self.wire, Wire::Plain);
                    self.handle_line(now, line);
                    if self.leaving {
                        // A user who left may have to be let go now (asked
                        // for a password, say), before the next line: as if
                        // the next line came in a read of its own.
                        self.flush(now);
                    }
                    if was_plain && !matches!(self.wire, Wire::Plain) {
                        // Switched to frames: what followed the line is frames.
                        let rest = lines.take_rest();
                        self.lines = LineBuffer::new(self.config.max_line);
                        if let Err(why) = self.decrypt(now, &rest) {
                            return self.fail(why);
                        }
                        return self.drain_lines(now);
                    }
                }
                Frame::TooLong => self.fail("The server sent an oversized line."),
            }
            if self.phase == Phase::Closed {
                break;
            }
        }
        self.lines = lines;
    }

    /// Frames from the server: advance the handshake, or decrypt into lines.
    fn decrypt(&mut self, now: Now, bytes: &[u8]) -> Result<(), &'static str> {
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let frames = match &mut self.wire {
            Wire::Handshake { frames, .. }
            | Wire::Paused { frames }
            | Wire::Secure { frames, .. } => frames,
            Wire::Plain => return Ok(()),
        };
        frames.push(bytes);
        let mut pending = std::mem::take(frames);
        let mut result = Ok(());
        let mut server_hello = false;
        while let Some(frame) = pending.next_frame() {
            match &mut self.wire {
                Wire::Handshake { noise, .. } => {
                    if !matches!(
                        noise.read_message(frame, grow(&mut buf, frame.len())),
                        Ok(0)
                    ) {
                        result = Err("The encrypted handshake failed: the offer was tampered \
                                      with, or the server is not a LanTalk server.");
                        break;
                    }
                    let Wire::Handshake { noise, .. } =
                        std::mem::replace(&mut self.wire, Wire::Plain)
                    else {
                        unreachable!("matched above")
                    };
                    self.pending = Some(noise);
                    self.wire = Wire::Paused {
                        frames: FrameBuffer::default(),
                    };
                    server_hello = true;
                }
                Wire::Paused { .. } => {
                    result = Err("The server spoke out of turn during the handshake.");
                    break;
                }
                Wire::Secure { noise, .. } => {
                    match noise.read_message(frame, grow(&mut buf, frame.len())) {
                        Ok(n) => self.lines.push(&buf[..n]),
                        Err(_) => {
                            result = Err("A message from the server failed to decrypt: the \
                                      connection was tampered with.");
                            break;
                        }
                    }
                }
                Wire::Plain => break,
            }
        }
        if let Wire::Handshake { frames, .. }
        | Wire::Paused { frames }
        | Wire::Secure { frames, .. } = &mut self.wire
        {
            *frames = pending;
            if frames.buffered() > secure::MAX_FRAME + 2 {
                result = Err("The server sent an oversized frame.");
            }
        }
        if result.is_ok() && server_hello {
            self.check_server_key(now);
        }
        result
    }

    /// The server proved it holds the key it sent: is it the one we expect?
    fn check_server_key(&mut self, now: Now) {
        let Some(key) = self
            .pending
            .as_ref()
            .and_then(|n| n.get_remote_static())
            .map(<[u8]>::to_vec)
        else {
            return self.fail("The server sent no key.");
        };
        let Some(sec) = &self.config.secure else {
            return;
        };
        let fingerprint = secure::fingerprint(&key);
        match (&sec.pinned, sec.on_new_key) {
            (Some(pinned), _) if *pinned == key => {
                self.event(ClientEvent::Secured {
                    fingerprint,
                    key,
                    new: false,
                });
                self.continue_handshake(now);
            }
            (Some(pinned), _) => {
                let was = secure::fingerprint(pinned);
                self.fail_as(
                    &format!(
                        "WARNING: THE SERVER'S KEY HAS CHANGED. It was {was} and is now \
                     {fingerprint}. Someone may be intercepting the connection, or the \
                     server was reinstalled. Refusing to connect."
                    ),
                    Refusal::KeyChanged,
                );
            }
            (None, NewKey::Accept) => {
                self.event(ClientEvent::Secured {
                    fingerprint,
                    key,
                    new: true,
                });
                self.continue_handshake(now);
            }
            (None, NewKey::Ask) => {
                self.phase = Phase::NeedTrust;
                self.deadline = None;
                self.event(ClientEvent::ConfirmServerKey { fingerprint });
            }
            (None, NewKey::Refuse) => self.fail_as(
                &format!(
                    "The server's key {fingerprint} is not known, and new keys are not \
                     accepted without asking."
                ),
                Refusal::UnknownKey,
            ),
        }
    }

    /// The user's answer to [`ClientEvent::ConfirmServerKey`].
    pub fn handle_trust(&mut self, now: Now, trusted: bool) {
        self.expire(now);
        if self.phase != Phase::NeedTrust {
            return;
        }
        if !trusted {
            return self.fail("You did not trust the server's key.");
        }
        let key = self
            .pending
            .as_ref()
            .and_then(|n| n.get_remote_static())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        self.event(ClientEvent::Secured {
            fingerprint: secure::fingerprint(&key),
            key,
            new: true,
        });
        self.continue_handshake(now);
    }

    /// Sends our half of the handshake and logs in inside the session.
    fn continue_handshake(&mut self, now: Now) {
        let Some(mut noise) = self.pending.take() else {
            return;
        };
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let Ok(n) = noise.write_message(&[], &mut buf) else {
            return self.fail("The handshake failed.");
        };
        let hash = noise.get_handshake_hash().to_vec();
        let Ok(transport) = noise.into_transport_mode() else {
            return self.fail("The handshake failed.");
        };
        self.actions
            .push_back(ClientAction::Send(secure::frame(&buf[..n])));
        let frames = match std::mem::replace(&mut self.wire, Wire::Plain) {
            Wire::Paused { frames } => frames,
            _ => FrameBuffer::default(),
        };
        self.wire = Wire::Secure {
            noise: Box::new(transport),
            frames,
            hash,
        };
        self.deadline = Some(now.instant + self.config.auth_timeout);
        self.phase = Phase::AwaitingResult;
        self.log_in(now);
    }

    /// A line the user typed: a chat message or a command.
    pub fn handle_user_line(&mut self, now: Now, line: &str) {
        self.expire(now);
        self.user_line(now, line);
        self.flush(now);
    }

    fn user_line(&mut self, now: Now, line: &str) {
        if matches!(self.phase, Phase::Closed | Phase::Leaving) {
            return;
        }
        // Trimmed as the server will (Python's white space): a line of only
        // U+001C..U+001F must not go out as an empty message.
        let text = protocol::py_trim(line);
        if text.is_empty() {
            return;
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return self.notice(format!(
                "Not sent: the message has {chars} characters; the limit is {MAX_TEXT_CHARS}."
            ));
        }
        let kind = if let Some(literal) = text.strip_prefix("//") {
            // IRC's convention: `//usr/bin/env` says `/usr/bin/env`.
            return self.queue(now, format!("/{literal}"), OutKind::Literal);
        } else if !text.starts_with('/') {
            OutKind::Chat
        } else {
            let (cmd, rest) = protocol::split_word(text);
            match cmd.to_lowercase().as_str() {
                "/quit" | "/exit" | "/q" => return self.handle_quit(now),
                "/help" => return self.notice(crate::commands::chat_help(true)),
                "/clear" => return self.event(ClientEvent::Clear),
                "/me" if protocol::py_trim(rest).is_empty() => {
                    return self.notice("Usage: /me <action>".to_string())
                }
                "/me" => OutKind::Action(protocol::py_trim(rest).to_string()),
                "/pm" => {
                    let (to, body) = protocol::split_word(rest);
                    if to.is_empty() || protocol::py_trim(body).is_empty() {
                        return self.notice("Usage: /pm <user> <message>".to_string());
                    }
                    OutKind::Pm {
                        to: to.to_string(),
                        text: protocol::py_trim(body).to_string(),
                    }
                }
                _ => OutKind::Command,
            }
        };
        self.queue(now, text.to_string(), kind);
    }

    /// Puts a line in the outbox; says so if pacing holds it back.
    fn queue(&mut self, now: Now, text: String, kind: OutKind) {
        self.outbox.push_back(Outgoing { text, kind });
        self.flush(now);
        if self.phase == Phase::Chatting {
            if let Some(held) = self.outbox.back() {
                let (text, ahead) = (held.text.clone(), self.outbox.len() - 1);
                self.event(ClientEvent::Queued { text, ahead });
            }
        }
    }

    /// The user's answer to [`ClientEvent::PasswordRequired`].
    pub fn handle_password(&mut self, now: Now, password: &str) {
        self.expire(now);
        if self.phase != Phase::NeedPassword {
            return;
        }
        self.config.password = Some(password.to_string());
        self.log_in(now);
    }

    /// The user leaves (`/quit`, or the end of piped input): finish the login
    /// if it is under way, so a refusal is still reported, send everything
    /// typed, then close.
    pub fn handle_quit(&mut self, now: Now) {
        self.expire(now);
        self.leaving = true;
        self.flush(now);
    }

    /// The user wants out now (Ctrl-C, a signal): like [`Client::handle_quit`]
    /// once logged in, but a login under way is abandoned.
    pub fn handle_interrupt(&mut self, now: Now) {
        self.abandon_login = true;
        self.handle_quit(now);
    }

    /// The connection to the server is gone.
    pub fn handle_disconnect(&mut self, _now: Now) {
        if self.phase == Phase::Closed {
            return;
        }
        let (reason, expected) = match self.phase {
            Phase::Leaving => ("You left.", true),
            Phase::Chatting => ("Connection closed by the server.", false),
            _ => ("The server closed the connection during login.", false),
        };
        self.phase = Phase::Closed;
        self.event(ClientEvent::Disconnected {
            reason: reason.to_string(),
            expected,
        });
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.expire(now);
        self.flush(now);
    }

    #[must_use = "actions must be carried out, in order"]
    pub fn poll_action(&mut self) -> Option<ClientAction> {
        self.actions.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let pacing = match (&self.pacing, self.outbox.is_empty(), self.phase) {
            (Some(w), false, Phase::Chatting) => w.frees_at(),
            _ => None,
        };
        let keepalive = match (self.keepalive, self.phase) {
            (Some(every), Phase::Chatting) => Some(self.last_sent + every),
            _ => None,
        };
        [self.deadline, pacing, keepalive]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_line(&mut self, now: Now, line: &[u8]) {
        if self.phase == Phase::AwaitingResult {
            if let Some(approval) = approval::parse_server(line) {
                return self.handle_approval_line(now, approval);
            }
        }
        let msg = match protocol::parse_server_line(line) {
            Ok(msg) => msg,
            Err(m) => {
                return self.notice(format!(
                    "Ignored a malformed line from the server ({}).",
                    m.0
                ))
            }
        };
        match (self.phase, msg) {
            (
                Phase::AwaitingRequest,
                ServerLine::AuthRequest {
                    needs_password,
                    offer,
                },
            ) => {
                self.needs_password = needs_password;
                let offer = offer.filter(Offer::is_supported);
                let pinned = self
                    .config
                    .secure
                    .as_ref()
                    .is_some_and(|s| s.pinned.is_some());
                match (&self.config.secure, offer) {
                    (Some(_), Some(offer)) => self.start_handshake(now, line, offer),
                    (Some(_), None) if pinned => self.fail(
                        "This server's key is pinned in known_servers, but it no longer offers \
                         encryption. Someone may be downgrading the connection; refusing.",
                    ),
                    (Some(_), None) if !self.config.allow_plaintext => self.fail(
                        "The server does not offer encryption (LanTalk 2.0?): anyone on the \
                         network could read the chat and the password. Join anyway with \
                         --allow-plaintext.",
                    ),
                    _ => self.log_in(now),
                }
            }
            (Phase::AwaitingPake, ServerLine::Pake { msg, proof }) => {
                let hash = match &self.wire {
                    Wire::Secure { hash, .. } => hash.clone(),
                    _ => return self.fail("The server sent a password check outside encryption."),
                };
                let Some(pake) = self.pake.take() else {
                    return self.fail("The server sent an unexpected password check.");
                };
                match pake.finish(&msg, &proof, &hash) {
                    Some(proof) => {
                        self.send_line(protocol::pake_confirm(&proof));
                        self.phase = Phase::AwaitingResult;
                    }
                    // The server could not prove it knows the same password.
                    None => self.fail_as("Wrong password.", Refusal::WrongPassword),
                }
            }
            (
                Phase::AwaitingRequest
                | Phase::AwaitingResult
                | Phase::AwaitingApproval
                | Phase::NeedPassword
                | Phase::AwaitingPake
                | Phase::Handshaking
                | Phase::NeedTrust,
                ServerLine::AuthFail { reason, why },
            ) => {
                self.phase = Phase::Closed;
                self.event(ClientEvent::Refused { reason, why });
                self.actions.push_back(ClientAction::Close);
            }
            (
                Phase::AwaitingResult | Phase::AwaitingApproval,
                ServerLine::AuthOk {
                    username,
                    server_name,
                    session,
                },
            ) => {
                self.phase = Phase::Chatting;
                self.deadline = None;
                self.last_sent = now.instant;
                if !username.is_empty() {
                    self.config.username = username;
                }
                self.event(ClientEvent::Joined {
                    username: self.config.username.clone(),
                    server_name,
                });
                if let Some(session) = session {
                    // The server's own limits replace our guesses.
                    self.pacing = session.rate_limit.map(|r| Window::new(paced(r)));
                    self.keepalive = session
                        .idle_timeout
                        .map(|t| (t / 3).max(Duration::from_millis(100)));
                    self.event(ClientEvent::Roster {
                        users: session.users,
                    });
                }
                // Lines typed while logging in go out now, before anything
                // that follows in the same read.
                self.flush(now);
            }
            (
                Phase::AwaitingRequest
                | Phase::AwaitingResult
                | Phase::AwaitingApproval
                | Phase::NeedPassword
                | Phase::AwaitingPake
                | Phase::Handshaking
                | Phase::NeedTrust,
                _,
            ) => self.fail("The server did not follow the LanTalk login handshake."),
            (Phase::Chatting | Phase::Leaving, ServerLine::Message { ts, user, text }) => {
                self.event(ClientEvent::Message { ts, user, text })
            }
            (
                Phase::Chatting | Phase::Leaving,
                ServerLine::Pm {
                    ts,
                    from_user,
                    text,
                },
            ) => self.event(ClientEvent::Pm {
                ts,
                from_user,
                text,
            }),
            (Phase::Chatting | Phase::Leaving, ServerLine::System { ts, text }) => {
                self.event(ClientEvent::System { ts, text })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::Presence { user, online }) => {
                self.event(ClientEvent::Presence { user, online })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::PmSent { to_user, text, .. }) => {
                self.event(ClientEvent::PmSent { to: to_user, text })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::AuthFail { reason, .. }) => {
                self.event(ClientEvent::System {
                    ts: String::new(),
                    text: reason,
                })
            }
            (Phase::Chatting | Phase::Leaving, _) => {}
            (Phase::Closed, _) => {}
        }
    }

    /// The host approves each connection: commit to our nonce, then reveal
    /// it once the server's is in, and show the code both sides derive.
    fn handle_approval_line(&mut self, now: Now, line: Result<ServerApproval, Malformed>) {
        let hash = match &self.wire {
            Wire::Secure { hash, .. } => hash.clone(),
            _ => return self.fail("The server asked for approval outside encryption."),
        };
        match (line, self.approval_nonce) {
            (Ok(ServerApproval::Needed), None) => {
                let Some(rng) = self.rng.as_mut() else {
                    return;
                };
                let nonce = rng.seed();
                self.approval_nonce = Some(nonce);
                self.send_line(approval::commit(&secure::approval_commit(&nonce)));
            }
            (
                Ok(ServerApproval::Nonce {
                    nonce: theirs,
                    timeout_secs,
                }),
                Some(ours),
            ) => {
                let code = secure::approval_code(&hash, &ours, &theirs);
                self.send_line(approval::reveal(&ours));
                self.phase = Phase::AwaitingApproval;
                // The host's own deadline governs now, with the usual
                // allowance for the answer to arrive.
                self.deadline = timeout_secs.map(|secs| {
                    now.instant + Duration::from_secs(secs.min(86_400)) + self.config.auth_timeout
                });
                self.event(ClientEvent::AwaitingApproval { code });
            }
            (Err(m), _) => self.fail(&format!(
                "The server sent a malformed approval line ({}).",
                m.0
            )),
            _ => self.fail("The server did not follow the LanTalk approval exchange."),
        }
    }

    /// Answers the offer: a hello, then the first Noise message.
    fn start_handshake(&mut self, now: Now, offer_line: &[u8], offer: Offer) {
        let (Some(sec), Some(rng)) = (&self.config.secure, self.rng.as_mut()) else {
            return;
        };
        // The caller checked that the offer has a suite we speak.
        let suite = offer.choose().unwrap_or(secure::Suite::ChaChaPoly);
        let hello = secure::hello_line(suite);
        let mut offer_line = offer_line.to_vec();
        offer_line.push(b'\n');
        let prologue = secure::prologue(&offer_line, hello.as_bytes());
        let Ok(mut noise) = secure::handshake(true, &sec.identity, &prologue, rng.seed(), suite)
        else {
            return self.fail("The encrypted handshake could not start.");
        };
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let Ok(n) = noise.write_message(&[], &mut buf) else {
            return self.fail("The encrypted handshake could not start.");
        };
        self.kdf = offer.kdf;
        self.actions
            .push_back(ClientAction::Send(hello.into_bytes()));
        self.actions
            .push_back(ClientAction::Send(secure::frame(&buf[..n])));
        self.wire = Wire::Handshake {
            noise: Box::new(noise),
            frames: FrameBuffer::default(),
        };
        self.phase = Phase::Handshaking;
        self.deadline = Some(now.instant + self.config.auth_timeout);
    }

    /// Sends the login: in plaintext as LanTalk 2.0 does, or inside the
    /// encrypted session, where a password is proven with SPAKE2 instead.
    fn log_in(&mut self, now: Now) {
        self.deadline = Some(now.instant + self.config.auth_timeout);
        let secure = matches!(self.wire, Wire::Secure { .. });
        if self.needs_password && self.config.password.is_none() {
            if !self.config.ask_password {
                return self.fail_as("This server needs a password.", Refusal::NeedsPassword);
            }
            self.phase = Phase::NeedPassword;
            self.deadline = None;
            return self.event(ClientEvent::PasswordRequired);
        }
        let name = self.config.username.clone();
        if !secure {
            let password = self.config.password.as_deref().unwrap_or("");
            self.send_line(protocol::login(&name, password));
            self.phase = Phase::AwaitingResult;
            return;
        }
        if !self.needs_password {
            self.send_line(protocol::secure_login(&name, None));
            self.phase = Phase::AwaitingResult;
            return;
        }
        let (Some(kdf), Some(password), Some(rng)) =
            (&self.kdf, &self.config.password, self.rng.as_mut())
        else {
            return self.fail("The server wants a password but offered no way to prove it.");
        };
        let secret = crate::password::derive(password.as_bytes(), &kdf.salt, kdf.params);
        let (pake, msg) = secure::pake_client_start(&secret, rng.seed());
        self.pake = Some(pake);
        self.send_line(protocol::secure_login(&name, Some(&msg)));
        self.phase = Phase::AwaitingPake;
    }

    /// Sends a typed line, and reports it as sent.
    fn send_outgoing(&mut self, out: Outgoing) {
        let secure = matches!(self.wire, Wire::Secure { .. });
        let line = match out.kind {
            // A server of ours relays it as text; LanTalk 2.0 has no way to.
            OutKind::Literal if secure => protocol::chat_literal(&out.text),
            _ => protocol::chat(&out.text),
        };
        self.send_line(line);
        match out.kind {
            OutKind::Chat | OutKind::Literal => self.event(ClientEvent::Sent { text: out.text }),
            OutKind::Action(text) => self.event(ClientEvent::ActionSent { text }),
            // A server of ours confirms delivery (or says there is no such
            // user); LanTalk 2.0 says nothing on success.
            OutKind::Pm { to, text } if !secure => self.event(ClientEvent::PmSent { to, text }),
            OutKind::Pm { .. } | OutKind::Command => {}
        }
    }

    /// Sends a JSON line on the wire as it is now: plain or encrypted.
    fn send_line(&mut self, line: String) {
        let bytes = match &mut self.wire {
            Wire::Secure { noise, .. } => {
                let mut out = Vec::with_capacity(line.len() + 18);
                // Only fails once 2^64 messages were sent: nothing more can
                // be said on this session.
                if secure::seal_into(noise, line.as_bytes(), &mut out).is_err() {
                    return self.fail("The encrypted session is used up; reconnect.");
                }
                out
            }
            _ => line.into_bytes(),
        };
        self.actions.push_back(ClientAction::Send(bytes));
    }

    /// Sends what pacing allows (or a keepalive when nothing was sent for
    /// a while); closes when leaving and nothing is left.
    fn flush(&mut self, now: Now) {
        if self.phase == Phase::Chatting {
            while !self.outbox.is_empty() {
                if let Some(w) = self.pacing.as_mut() {
                    if !w.try_hit(now.instant) {
                        break;
                    }
                }
                if let Some(out) = self.outbox.pop_front() {
                    self.send_outgoing(out);
                    self.last_sent = now.instant;
                }
            }
            if let Some(every) = self.keepalive {
                if !self.leaving && now.instant >= self.last_sent + every {
                    self.send_line(protocol::keepalive());
                    self.last_sent = now.instant;
                }
            }
        }
        if !self.leaving {
            return;
        }
        match self.phase {
            Phase::Chatting if self.outbox.is_empty() => {
                self.phase = Phase::Leaving;
                self.actions.push_back(ClientAction::Close);
            }
            // Lines typed before the login completes wait for it, unless the
            // user gave up on it (or it needs a password nobody can give).
            Phase::AwaitingRequest
            | Phase::Handshaking
            | Phase::AwaitingPake
            | Phase::AwaitingResult
            | Phase::AwaitingApproval
            | Phase::NeedTrust
            | Phase::NeedPassword
                if self.abandon_login
                    || matches!(self.phase, Phase::NeedPassword | Phase::NeedTrust) =>
            {
                self.outbox.clear();
                self.phase = Phase::Closed;
                self.deadline = None;
                self.event(ClientEvent::Disconnected {
                    reason: "You left.".to_string(),
                    expected: true,
                });
                self.actions.push_back(ClientAction::Close);
            }
            _ => {}
        }
    }

    fn expire(&mut self, now: Now) {
        if let Some(deadline) = self.deadline {
            if now.instant >= deadline {
                self.fail("The server did not answer the login in time.");
            }
        }
    }

    fn fail(&mut self, reason: &str) {
        self.fail_as(reason, Refusal::Other)
    }

    /// [`Client::fail`], saying why as a value if it ends the login.
    fn fail_as(&mut self, reason: &str, why: Refusal) {
        if self.phase == Phase::Closed {
            return;
        }
        let during_login = !matches!(self.phase, Phase::Chatting | Phase::Leaving | Phase::Closed);
        let was_leaving = self.phase == Phase::Leaving;
        self.phase = Phase::Closed;
        self.deadline = None;
        if was_leaving {
            // The user already left and the connection is half-closed; the
            // failure only cuts the wait for the server's last lines short.
            return self.event(ClientEvent::Disconnected {
                reason: "You left.".to_string(),
                expected: true,
            });
        }
        self.event(if during_login {
            ClientEvent::Refused {
                reason: reason.to_string(),
                why,
            }
        } else {
            ClientEvent::Disconnected {
                reason: reason.to_string(),
                expected: false,
            }
        });
        self.actions.push_back(ClientAction::Close);
    }

    fn notice(&mut self, text: String) {
        self.event(ClientEvent::Notice(text));
    }

    fn event(&mut self, e: ClientEvent) {
        self.actions.push_back(ClientAction::Event(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the client does with `chunks` of server bytes after the user
    /// left before logging in.
    fn events_after_quit(chunks: &[&[u8]]) -> Vec<ClientAction> {
        let now = Now::from_secs_f64(0.0);
        let mut config = ClientConfig::new("alice", None);
        config.ask_password = true;
        let mut client = Client::new(config, now);
        client.handle_quit(now);
        for chunk in chunks {
            client.handle_input(now, chunk);
        }
        std::iter::from_fn(|| client.poll_action()).collect()
    }

    /// A user who left is let go when asked for a password, whether the
    /// server's next line came in the same read or not (found by the
    /// chunking property test).
    #[test]
    fn leaving_during_a_password_request_does_not_depend_on_chunking() {
        let ask = b"{\"type\": \"auth_request\", \"ts\": \"12:00\", \"needs_password\": true}\n";
        let again = b"{\"type\": \"auth_request\", \"ts\": \"12:00\", \"needs_password\": false}\n";
        let whole = events_after_quit(&[&[&ask[..], &again[..]].concat()]);
        let split = events_after_quit(&[ask, again]);
        assert_eq!(whole, split);
        assert!(
            whole.contains(&ClientAction::Event(ClientEvent::Disconnected {
                reason: "You left.".into(),
                expected: true,
            }))
        );
    }
}
