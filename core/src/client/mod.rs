//! The client state machine.
//!
//! It logs in, turns the user's typed lines into protocol lines, and turns the
//! server's lines into typed [`ClientEvent`]s for a user interface. It paces
//! what it sends to the server's rate limit instead of letting the server drop
//! lines, so piping a file into the client loses nothing.
//!
//! One file per concern: `wire` (bytes, the handshake, sealed frames),
//! `login` (the server's lines: login, approval, then chat), `outbox` (what
//! the user types: commands, pacing, keepalives). This file holds the types
//! and the entry points.

use std::collections::VecDeque;
use std::time::Duration;

use crate::approval::{self, ServerApproval};
use crate::framing::{Frame, LineBuffer};
pub use crate::protocol::Refusal;
use crate::protocol::{self, Malformed, ServerLine, MAX_TEXT_CHARS};
use crate::ratelimit::{Rate, Window};
use crate::secure::{self, grow, FrameBuffer, Kdf, Offer, PakeClient, SeededRng, StaticKey};
use crate::time::{Instant, Now};
use crate::transfer::{FileRequest, SideId};

mod login;
mod outbox;
mod rooms;
mod transfer;
mod wire;

pub use crate::protocol::{HistoryReason, PastLine, Place, RoomView};
pub use outbox::paced;
use outbox::Outgoing;
pub use rooms::{Rejoin, RoomState};
pub use transfer::{describe, Progress};

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
    /// After a reconnection: the rooms to go back into, and where to resume
    /// (servers of ours).
    pub rejoin: Vec<Rejoin>,
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
            rejoin: Vec::new(),
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
    ConfirmServerKey { fingerprint: String },
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
    AwaitingApproval { code: String },
    /// Logged in.
    Joined {
        username: String,
        server_name: String,
    },
    /// The server refused the login; the connection closes. `why` is the
    /// reason as a value, for a program to act on.
    Refused { reason: String, why: Refusal },
    Message {
        ts: String,
        user: String,
        text: String,
        /// The room it was said in (servers of ours).
        room: Option<String>,
        /// The room's number for it (servers of ours): what a client that
        /// lost its connection resumes after, and how a page that shows a
        /// line twice (live, then in a catch-up) knows it is the same one.
        id: Option<u64>,
        /// When, in milliseconds since the Unix epoch (servers of ours).
        at_ms: Option<i64>,
    },
    Pm {
        ts: String,
        from_user: String,
        text: String,
    },
    /// Who is online, as the server said at login (servers of ours only;
    /// [`ClientEvent::Presence`] keeps it current).
    Roster { users: Vec<String> },
    /// Someone joined (`online`) or left, as a typed fact; the sentence
    /// everyone sees arrives as a [`ClientEvent::System`] line too.
    Presence { user: String, online: bool },
    /// The commands the server's plugins offer now (for completion; our
    /// `/help` lists them already).
    PluginCommands {
        commands: Vec<crate::protocol::PluginCommand>,
    },
    /// The user's own chat message went to the server now (the server does
    /// not echo it). Lines held back by pacing are reported as
    /// [`ClientEvent::Queued`] first.
    Sent {
        text: String,
        /// Where it was said (servers of ours).
        room: Option<String>,
    },
    /// The user's line waits for the rate limit: `ahead` lines go first.
    Queued { text: String, ahead: usize },
    /// The user's own private message was delivered (a server of ours
    /// confirms it; to a LanTalk 2.0 server, it was sent).
    PmSent { to: String, text: String },
    /// The user's own `/me` action went to the server now.
    ActionSent { text: String, room: Option<String> },
    /// The user asked to clear the screen (`/clear`); nothing is sent.
    Clear,
    System {
        ts: String,
        text: String,
        /// The room it is about; `None`: the whole server.
        room: Option<String>,
    },
    /// We are in a room we were not in (joined, invited in, or the lobby
    /// at login): its whole state.
    RoomEntered(RoomView),
    /// A room we are in changed (topic, key, invite-only, operators).
    RoomUpdated(RoomView),
    /// We are no longer in `room`; `reason` says why, for people.
    RoomLeft { room: String, reason: String },
    /// Someone entered or left a room we are in.
    RoomMember {
        room: String,
        user: String,
        joined: bool,
        text: String,
    },
    /// Typed lines go to `room` now.
    Switched { room: String },
    /// Earlier lines, oldest first: on joining a room, a page of
    /// `/history`, the answer to `/search`, or what was said while we were
    /// away. `more`: there are older ones.
    History {
        place: Place,
        reason: HistoryReason,
        lines: Vec<PastLine>,
        more: bool,
    },
    /// A file is offered to us (in a room we are in, or to us alone), or
    /// our upload is complete and offered.
    FileShared(crate::transfer::lines::FileInfo),
    /// The answer to `/files`; `got[i]`: `files[i]` was downloaded in this
    /// session.
    FileList {
        files: Vec<crate::transfer::lines::FileInfo>,
        got: Vec<bool>,
    },
    /// A file is no longer offered.
    FileRemoved { id: u64, name: String },
    /// A transfer moved on (a chunk was verified).
    Transfer(Progress),
    /// A transfer is complete and verified. `path`: where a download was
    /// saved. `hash`: the whole file's hash ([`crate::transfer::file_hash`]),
    /// when known.
    TransferDone {
        id: u64,
        name: String,
        upload: bool,
        size: u64,
        hash: Option<String>,
        path: Option<String>,
    },
    /// A transfer (or a `/send` before it started) failed or was
    /// cancelled.
    TransferFailed {
        id: Option<u64>,
        name: String,
        upload: bool,
        reason: String,
    },
    /// Something local the user should know (e.g. a line not sent).
    Notice(String),
    /// The connection is over. `expected` is true when the user asked for it.
    Disconnected { reason: String, expected: bool },
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
    /// Open a side connection to the same server (for a file transfer);
    /// report [`Client::handle_side_opened`], or
    /// [`Client::handle_side_closed`] if it cannot be opened.
    Open(SideId),
    /// Write these bytes on a side connection.
    SideSend(SideId, Vec<u8>),
    /// Once everything written to the side connection so far has gone out,
    /// call [`Client::handle_side_drained`] (once).
    SideWatchDrain(SideId),
    /// Stop (`true`) or resume reading from a side connection.
    SidePause(SideId, bool),
    /// Flush and close a side connection; nothing more is reported for it.
    SideClose(SideId),
    /// Carry out a file request; answer with [`Client::handle_file_reply`].
    Files(Box<FileRequest>),
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

impl Phase {
    /// Before the login is through (or refused).
    fn is_logging_in(self) -> bool {
        !matches!(self, Phase::Chatting | Phase::Leaving | Phase::Closed)
    }
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
    /// The session's hash binds the password check and the approval code
    /// to it.
    Secure(secure::Session),
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
    /// Rooms (servers of ours).
    rooms: rooms::Rooms,
    /// The room a `/join` asked for, to switch to when the server says so.
    join_asked: Option<String>,
    /// Lines typed before the client knows what the server is (while logging
    /// in, and with a server of ours until the lobby is entered): whether
    /// `/search` or `/history` is ours to answer, and which room a line is
    /// said in, depend on it. Replayed in order once it is known.
    early: VecDeque<String>,
    /// Logged in to a server of ours whose lobby has not arrived yet.
    awaiting_lobby: bool,
    /// After a reconnection: the room the user was speaking in, asked for
    /// again, and until when typed lines wait in `early` for it. Lines kept
    /// while the connection was down were meant for that room; said in the
    /// lobby instead they would reach people they were not written for.
    rejoin_hold: Option<(String, Instant)>,
    /// Files being offered, sent and received.
    transfers: transfer::Transfers,
    /// The commands the server's plugins offer (for `/help`).
    plugin_commands: Vec<protocol::PluginCommand>,
    actions: VecDeque<ClientAction>,
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
            rooms: rooms::Rooms::default(),
            join_asked: None,
            early: VecDeque::new(),
            awaiting_lobby: false,
            rejoin_hold: None,
            transfers: transfer::Transfers::default(),
            plugin_commands: Vec::new(),
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

    /// A line the user typed: a chat message or a command.
    pub fn handle_user_line(&mut self, now: Now, line: &str) {
        self.expire(now);
        self.user_line(now, line);
        self.flush(now);
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
        self.abandon_transfers();
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
        self.give_up_rejoin_hold(now);
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
        let hold = self.rejoin_hold.as_ref().map(|(_, until)| *until);
        [self.deadline, pacing, keepalive, hold]
            .into_iter()
            .flatten()
            .min()
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
        let during_login = self.phase.is_logging_in();
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
