//! Plugins: the JSON-lines protocol a plugin process speaks (`PLUGINS.md`),
//! and the requests and replies between the server and the application that
//! runs the processes.
//!
//! A plugin reads [`Event`]s on its standard input, one JSON object a line,
//! and writes [`PluginAction`]s on its standard output. The server's state
//! about plugins (registrations, permissions, restarts) is in
//! `server/plugins.rs`; the processes themselves are the application's
//! (`cli/src/plugins.rs`), reached through [`PluginRequest`] and answered
//! with [`PluginReply`].

use serde::{Deserialize, Serialize};

/// The version of the protocol this server speaks, sent in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest line a plugin may write, in bytes; the application cuts a longer
/// one off and reports [`PluginReply::TooLong`] (garbage).
pub const MAX_PLUGIN_LINE: usize = 16 * 1024;

/// Events queued for one plugin's input before it counts as not reading
/// and is cut off (the application's bounded queue).
pub const PLUGIN_QUEUE: usize = 256;

/// One run of one plugin process. Never reused: a restarted plugin gets a
/// new id, so a late line from the process before cannot be taken for the
/// new one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginId(pub u64);

impl core::fmt::Display for PluginId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// What the server asks of the application about plugin processes
/// (`Action::Plugin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginRequest {
    /// Start `command` (split like a shell would, or given to the system's
    /// shell) as plugin `name`, with its standard input and output piped.
    Start {
        id: PluginId,
        name: String,
        command: String,
    },
    /// Write one line (with its newline) to the plugin's standard input,
    /// through a bounded queue: when it is full the application stops the
    /// process and answers [`PluginExit::CutOff`]. Never waits.
    Send { id: PluginId, line: Vec<u8> },
    /// Stop the process (kill it if it does not go at once). No answer is
    /// needed; an [`PluginReply::Exited`] for it may still come and is
    /// ignored.
    Stop { id: PluginId },
}

/// The application's answers (`Command::Plugin`), for
/// `Server::handle_plugin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginReply {
    /// One line the plugin wrote, without its newline.
    Line { id: PluginId, line: Vec<u8> },
    /// The plugin wrote a line longer than [`MAX_PLUGIN_LINE`]; it was
    /// dropped without being kept.
    TooLong { id: PluginId },
    /// A line the plugin wrote on its standard error (for the log).
    Stderr { id: PluginId, line: Vec<u8> },
    /// The process is gone (or never started).
    Exited { id: PluginId, why: PluginExit },
}

/// Why a plugin process is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginExit {
    /// It exited on its own; the status, if it had one (not killed).
    Exited(Option<i32>),
    /// It stopped reading and its input queue filled: it was killed.
    CutOff,
    /// It could not be started (the system's reason).
    CannotStart(String),
}

impl core::fmt::Display for PluginExit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PluginExit::Exited(Some(code)) => write!(f, "exited with status {code}"),
            PluginExit::Exited(None) => write!(f, "was killed by a signal"),
            PluginExit::CutOff => write!(f, "stopped reading its input and was cut off"),
            PluginExit::CannotStart(why) => write!(f, "could not be started: {why}"),
        }
    }
}

/// A command a plugin offers, as it registers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandDecl {
    /// Without its slash (`roll`).
    pub name: String,
    /// Its arguments as shown in help (`<NdM>`).
    #[serde(default)]
    pub args: String,
    /// What it does, in a few words.
    #[serde(default)]
    pub help: String,
}

/// What the server tells a plugin (one line on its standard input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The first line: the protocol's version, the plugin's name, the
    /// server's name and the rooms it may see and speak in.
    Hello {
        version: u32,
        name: &'a str,
        server: &'a str,
        rooms: Vec<&'a str>,
    },
    /// The answer to `register`: the commands now routed to this plugin.
    Registered { commands: Vec<&'a str> },
    /// Something the plugin did was refused or not understood.
    Error { message: &'a str },
    /// Someone said something in a room the plugin sees.
    Message {
        room: &'a str,
        user: &'a str,
        text: &'a str,
    },
    /// Someone came into a room the plugin sees.
    Join { room: &'a str, user: &'a str },
    /// Someone left a room the plugin sees (or the server).
    Leave { room: &'a str, user: &'a str },
    /// Someone typed one of the plugin's commands; answer with `reply`
    /// and this `id`.
    Command {
        id: u64,
        command: &'a str,
        args: &'a str,
        user: &'a str,
        room: &'a str,
    },
    /// A private message to the plugin.
    Pm { user: &'a str, text: &'a str },
    /// A timer the plugin asked for came due.
    Tick { timer: &'a str },
}

impl Event<'_> {
    /// The event as one line, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// What a plugin asks of the server (one line on its standard output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PluginAction {
    /// Route these commands to the plugin (replaces earlier ones).
    Register { commands: Vec<CommandDecl> },
    /// Say `text` in `room`.
    Say { room: String, text: String },
    /// Send `text` privately to `user`.
    Pm { user: String, text: String },
    /// Answer the command `id`: said in the room it was typed in.
    Reply { id: u64, text: String },
    /// Ask for `tick` events named `name`: every `every_ms`, or once after
    /// `after_ms`; neither cancels the timer.
    Timer {
        name: String,
        #[serde(default)]
        every_ms: Option<u64>,
        #[serde(default)]
        after_ms: Option<u64>,
    },
}

/// Why a plugin's line was not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Garbage(pub String);

/// Reads one line a plugin wrote. Never panics; unknown types and fields
/// are garbage (a plugin written for a later version is told so).
pub fn parse_action(line: &[u8]) -> Result<PluginAction, Garbage> {
    if line.len() > MAX_PLUGIN_LINE {
        return Err(Garbage(format!("line longer than {MAX_PLUGIN_LINE} bytes")));
    }
    let text = std::str::from_utf8(line).map_err(|_| Garbage("not UTF-8".into()))?;
    let text = text.strip_suffix('\r').unwrap_or(text);
    serde_json::from_str(text).map_err(|e| {
        // serde's message names the field or type; never the whole line.
        let mut why = e.to_string();
        why.truncate(200);
        Garbage(why)
    })
}

impl PluginAction {
    /// The action as one line, with its newline (SDKs and tests).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse() {
        assert_eq!(
            parse_action(br##"{"type":"say","room":"#lobby","text":"hi"}"##),
            Ok(PluginAction::Say {
                room: "#lobby".into(),
                text: "hi".into()
            })
        );
        assert_eq!(
            parse_action(br#"{"type":"timer","name":"t","every_ms":1000}"#),
            Ok(PluginAction::Timer {
                name: "t".into(),
                every_ms: Some(1000),
                after_ms: None
            })
        );
        let reg = parse_action(br#"{"type":"register","commands":[{"name":"roll"}]}"#);
        assert!(
            matches!(reg, Ok(PluginAction::Register { commands }) if commands[0].name == "roll")
        );
    }

    #[test]
    fn garbage_is_refused() {
        for line in [
            &b"hello"[..],
            b"{}",
            b"{\"type\":\"kick\",\"user\":\"bob\"}",
            b"{\"type\":\"say\",\"room\":1,\"text\":\"x\"}",
            b"{\"type\":\"say\",\"room\":\"#a\",\"text\":\"x\",\"as\":\"alice\"}",
            b"\xff\xfe",
            b"[1,2]",
        ] {
            assert!(parse_action(line).is_err(), "{line:?}");
        }
        assert!(parse_action(&vec![b' '; MAX_PLUGIN_LINE + 1]).is_err());
    }

    #[test]
    fn events_are_one_line_each() {
        let line = Event::Message {
            room: "#lobby",
            user: "alice",
            text: "a\nb",
        }
        .to_line();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(
            Event::Hello {
                version: PROTOCOL_VERSION,
                name: "dice",
                server: "Hub",
                rooms: vec!["#lobby"]
            }
            .to_line(),
            b"{\"type\":\"hello\",\"version\":1,\"name\":\"dice\",\"server\":\"Hub\",\"rooms\":[\"#lobby\"]}\n"
        );
    }
}
