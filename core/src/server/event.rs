//! What the server tells its operator and its log.

use std::fmt;

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEvent {
    pub level: Level,
    pub kind: EventKind,
    pub message: String,
}

impl ServerEvent {
    pub(crate) fn new(level: Level, kind: EventKind, message: impl Into<String>) -> Self {
        ServerEvent {
            level,
            kind,
            message: message.into(),
        }
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
