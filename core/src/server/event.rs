//! What the server tells its operator and its log.

use std::fmt;

use core::net::SocketAddr;

use super::ConnId;

/// Severity, matching LanTalk's log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event is about, so a user interface can style it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Connections opened, refused or dropped before login.
    Connection,
    Join,
    Leave,
    /// Failed or refused logins.
    Auth,
    RateLimit,
    /// Kicks, bans and unbans.
    Moderation,
    /// Input that was dropped as malformed.
    Malformed,
    /// Chat traffic (debug level: it is the users' business, not the log's).
    Chat,
    /// The answer to an operator's console command: shown, not logged.
    Reply,
    Shutdown,
    /// Approval of connections: questions, answers, trusted peers.
    Approval,
    /// Rooms created, joined, left; topics and invitations.
    Rooms,
    /// Plugins started, stopped, refused; what they write on stderr.
    Plugin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEvent {
    pub level: Level,
    pub kind: EventKind,
    /// The line a plain console or the log shows.
    pub message: String,
    /// What a program must act on, beyond showing the message. Boxed: it
    /// is large and rare, and every [`super::Action`] — one per recipient of
    /// every message — is as large as its largest variant.
    pub detail: Option<Box<EventDetail>>,
}

/// The typed facts behind an event's sentence, for programs that follow
/// them (a console's name completion, host mode's chat view). Events only
/// report; what the host must do arrives as an [`super::Action`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventDetail {
    /// A user's chat line as everyone sees it (`/me` actions start with
    /// `"/me "`), for consoles that take part in the chat (host mode).
    Chat { user: String, text: String },
    /// A user logged in (`online`) or is gone, however they went.
    Presence { user: String, online: bool },
}

/// A peer waiting for the operator's approval. Its `Display` is the question
/// for a plain console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// What to answer about.
    pub id: ConnId,
    pub addr: SocketAddr,
    pub name: String,
    /// The peer's key fingerprint; `None` for an unencrypted peer.
    pub fingerprint: Option<String>,
    /// The code both sides show (`123 456`); `None` for an unencrypted peer.
    pub code: Option<String>,
}

impl fmt::Display for ApprovalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = crate::bans::canonical(self.addr.ip());
        let who = match (&self.fingerprint, &self.code) {
            (Some(fp), Some(code)) => format!("key {fp}, code {code}"),
            _ => "no key, no code (unencrypted)".to_string(),
        };
        write!(
            f,
            "Incoming connection from {ip} as {}, {who}. Approve? (y/n)",
            self.name
        )
    }
}

impl ServerEvent {
    pub(crate) fn new(level: Level, kind: EventKind, message: impl Into<String>) -> Self {
        ServerEvent {
            level,
            kind,
            message: message.into(),
            detail: None,
        }
    }

    pub(crate) fn with_detail(mut self, detail: EventDetail) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    /// Whether this belongs in the log (console replies do not).
    pub fn is_log(&self) -> bool {
        self.kind != EventKind::Reply
    }
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
