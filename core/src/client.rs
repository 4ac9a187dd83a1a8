//! The client state machine.
//!
//! It logs in, turns the user's typed lines into protocol lines, and turns the
//! server's lines into typed [`ClientEvent`]s for a user interface. It paces
//! what it sends to the server's rate limit instead of letting the server drop
//! lines, so piping a file into the client loses nothing.

use std::collections::VecDeque;
use std::time::Duration;

use crate::framing::{Frame, LineBuffer};
use crate::protocol::{self, ServerLine, MAX_TEXT_CHARS};
use crate::ratelimit::{Rate, Window};
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
    /// Outgoing lines are held back to stay within this rate (LanTalk's
    /// default limit), so the server never has to drop them.
    pub send_rate: Option<Rate>,
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
        }
    }
}

/// What happened, for the user interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server wants a password and none was configured: answer with
    /// [`Client::handle_password`] or give up with [`Client::handle_quit`].
    PasswordRequired,
    /// Logged in.
    Joined {
        username: String,
        server_name: String,
    },
    /// The server refused the login; the connection closes.
    Refused {
        reason: String,
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
    /// The user's own private message, as sent (the server does not echo it).
    PmSent {
        to: String,
        text: String,
    },
    /// The user's own `/me` action, as sent (the server does not echo it).
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
    NeedPassword,
    AwaitingResult,
    Chatting,
    /// The user left and the client half-closed; what the server still sends
    /// (answers to the last commands) is shown until it closes its side.
    Leaving,
    Closed,
}

pub struct Client {
    config: ClientConfig,
    phase: Phase,
    lines: LineBuffer,
    /// Login or reply deadline while logging in.
    deadline: Option<Instant>,
    /// Chat lines typed but not yet sent (before login, or held by pacing).
    outbox: VecDeque<String>,
    pacing: Option<Window>,
    /// The user asked to leave once the outbox is empty.
    leaving: bool,
    /// ... and not to wait for a login under way.
    abandon_login: bool,
    actions: VecDeque<ClientAction>,
}

/// The answer to `/help`, which the client gives itself so it works with any
/// server.
pub const HELP: &str = "Commands: /users (who is online) | /pm <user> <message> \
(private message) | /me <action> (say what you do) | /clear (clear the screen) | \
/help (this list) | /quit (leave)";

impl Client {
    /// A client that has just opened its connection.
    pub fn new(config: ClientConfig, now: Now) -> Self {
        let deadline = Some(now.instant + config.auth_timeout);
        let lines = LineBuffer::new(config.max_line);
        let pacing = config.send_rate.map(Window::new);
        Client {
            config,
            phase: Phase::AwaitingRequest,
            lines,
            deadline,
            outbox: VecDeque::new(),
            pacing,
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
        self.lines.push(bytes);
        let mut lines = std::mem::replace(&mut self.lines, LineBuffer::new(0));
        while let Some(frame) = lines.next_frame() {
            match frame {
                Frame::Line(line) => self.handle_line(now, line),
                Frame::TooLong => self.fail("The server sent an oversized line."),
            }
            if self.phase == Phase::Closed {
                break;
            }
        }
        self.lines = lines;
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
        let text = line.trim();
        if text.is_empty() {
            return;
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return self.notice(format!(
                "Not sent: the message has {chars} characters; the limit is {MAX_TEXT_CHARS}."
            ));
        }
        let (cmd, rest) = protocol::split_word(text);
        match cmd.to_lowercase().as_str() {
            "/quit" | "/exit" | "/q" => return self.handle_quit(now),
            "/help" => return self.notice(HELP.to_string()),
            "/clear" => return self.event(ClientEvent::Clear),
            "/me" if rest.trim().is_empty() => {
                return self.notice("Usage: /me <action>".to_string())
            }
            "/me" => self.event(ClientEvent::ActionSent {
                text: rest.trim().to_string(),
            }),
            "/pm" => {
                let (to, body) = protocol::split_word(rest);
                if to.is_empty() || body.trim().is_empty() {
                    return self.notice("Usage: /pm <user> <message>".to_string());
                }
                self.event(ClientEvent::PmSent {
                    to: to.to_string(),
                    text: body.trim().to_string(),
                });
            }
            _ => {}
        }
        self.outbox.push_back(text.to_string());
    }

    /// The user's answer to [`ClientEvent::PasswordRequired`].
    pub fn handle_password(&mut self, now: Now, password: &str) {
        self.expire(now);
        if self.phase != Phase::NeedPassword {
            return;
        }
        self.config.password = Some(password.to_string());
        self.send_login(now);
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

    pub fn poll_action(&mut self) -> Option<ClientAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let pacing = match (&self.pacing, self.outbox.is_empty(), self.phase) {
            (Some(w), false, Phase::Chatting) => w.frees_at(),
            _ => None,
        };
        match (self.deadline, pacing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_line(&mut self, now: Now, line: &[u8]) {
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
            (Phase::AwaitingRequest, ServerLine::AuthRequest { needs_password }) => {
                if needs_password && self.config.password.is_none() && !self.config.ask_password {
                    self.fail("This server needs a password.");
                } else if needs_password && self.config.password.is_none() {
                    self.phase = Phase::NeedPassword;
                    self.deadline = None;
                    self.event(ClientEvent::PasswordRequired);
                } else {
                    self.send_login(now);
                }
            }
            (
                Phase::AwaitingRequest | Phase::AwaitingResult | Phase::NeedPassword,
                ServerLine::AuthFail { reason },
            ) => {
                self.phase = Phase::Closed;
                self.event(ClientEvent::Refused { reason });
                self.actions.push_back(ClientAction::Close);
            }
            (
                Phase::AwaitingResult,
                ServerLine::AuthOk {
                    username,
                    server_name,
                },
            ) => {
                self.phase = Phase::Chatting;
                self.deadline = None;
                if !username.is_empty() {
                    self.config.username = username;
                }
                self.event(ClientEvent::Joined {
                    username: self.config.username.clone(),
                    server_name,
                });
                // Lines typed while logging in go out now, before anything
                // that follows in the same read.
                self.flush(now);
            }
            (Phase::AwaitingRequest | Phase::AwaitingResult | Phase::NeedPassword, _) => {
                self.fail("The server did not follow the LanTalk login handshake.")
            }
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
            (Phase::Chatting | Phase::Leaving, ServerLine::AuthFail { reason }) => {
                self.event(ClientEvent::System {
                    ts: String::new(),
                    text: reason,
                })
            }
            (Phase::Chatting | Phase::Leaving, _) => {}
            (Phase::Closed, _) => {}
        }
    }

    fn send_login(&mut self, now: Now) {
        let password = self.config.password.as_deref().unwrap_or("");
        let line = protocol::login(&self.config.username, password);
        self.actions
            .push_back(ClientAction::Send(line.into_bytes()));
        self.phase = Phase::AwaitingResult;
        self.deadline = Some(now.instant + self.config.auth_timeout);
    }

    /// Sends what pacing allows; closes when leaving and nothing is left.
    fn flush(&mut self, now: Now) {
        if self.phase == Phase::Chatting {
            while let Some(text) = self.outbox.front() {
                if let Some(w) = self.pacing.as_mut() {
                    if !w.try_hit(now.instant) {
                        break;
                    }
                }
                let line = protocol::chat(text);
                self.outbox.pop_front();
                self.actions
                    .push_back(ClientAction::Send(line.into_bytes()));
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
            Phase::AwaitingRequest | Phase::AwaitingResult | Phase::NeedPassword
                if self.abandon_login || self.phase == Phase::NeedPassword =>
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
        if self.phase == Phase::Closed {
            return;
        }
        let during_login = matches!(
            self.phase,
            Phase::AwaitingRequest | Phase::NeedPassword | Phase::AwaitingResult
        );
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
