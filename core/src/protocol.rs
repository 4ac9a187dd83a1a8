//! The LanTalk 2.0 wire protocol: one JSON object per `\n`-terminated line.
//!
//! Encoders produce exactly the bytes LanTalk 2.0 produces (see [`crate::json`]);
//! decoders accept anything LanTalk 2.0 would accept, ignore unknown fields, and
//! turn everything else into a [`Malformed`] reason instead of an error path.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::history::{Record, Want};
use crate::json::ObjectWriter;
use crate::ratelimit::Rate;
use crate::secure::Offer;
use crate::time::WallTime;

/// Longest chat text, in characters (LanTalk 2.0's limit).
pub const MAX_TEXT_CHARS: usize = 2000;

/// Why a line was not understood; the text is shown to the sender and logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

fn ts_str(ts: WallTime) -> String {
    ts.to_string()
}

// ── Server → client ──────────────────────────────────────────────────────────

pub fn auth_request(ts: WallTime, needs_password: bool) -> String {
    ObjectWriter::new()
        .str("type", "auth_request")
        .str("ts", &ts_str(ts))
        .bool("needs_password", needs_password)
        .finish_line()
}

/// `auth_request` with an offer of encryption; LanTalk 2.0 ignores the field.
pub fn auth_request_secure(ts: WallTime, needs_password: bool, offer: &Offer) -> String {
    ObjectWriter::new()
        .str("type", "auth_request")
        .str("ts", &ts_str(ts))
        .bool("needs_password", needs_password)
        .raw("secure", &offer.to_json())
        .finish_line()
}

/// The server's half of the password check (inside an encrypted session).
pub fn pake_reply(msg: &[u8], proof: &[u8]) -> String {
    ObjectWriter::new()
        .str("type", "pake")
        .str("msg", &crate::secure::b64(msg))
        .str("proof", &crate::secure::b64(proof))
        .finish_line()
}

pub fn auth_ok(ts: WallTime, username: &str, server_name: &str) -> String {
    ObjectWriter::new()
        .str("type", "auth_ok")
        .str("ts", &ts_str(ts))
        .str("username", username)
        .str("server_name", server_name)
        .finish_line()
}

/// What a server of ours tells a client of ours at login, beyond LanTalk
/// 2.0's `auth_ok`: the limits it enforces, so the client can pace itself
/// and keep its connection alive instead of guessing, and who is online.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// The server's rate limit for chat lines; `None`: no limit.
    pub rate_limit: Option<Rate>,
    /// The client must send something at least this often, or it is
    /// disconnected as dead; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Who is online, in login order (the new user included).
    pub users: Vec<String>,
}

fn millis(d: Duration) -> String {
    d.as_millis().min(u64::MAX as u128).to_string()
}

/// `auth_ok` for a client of ours (inside an encrypted session): LanTalk
/// 2.0's fields first, then [`SessionInfo`]. Plaintext clients get the plain
/// [`auth_ok`], byte for byte what LanTalk 2.0 sends.
pub fn auth_ok_ours(ts: WallTime, username: &str, server_name: &str, info: &SessionInfo) -> String {
    let rate = match info.rate_limit {
        Some(r) => format!(
            "{{\"lines\": {}, \"window_ms\": {}}}",
            r.count,
            millis(r.window)
        ),
        None => "null".to_string(),
    };
    let idle = info.idle_timeout.map_or("null".to_string(), millis);
    let mut users = String::from("[");
    for (i, name) in info.users.iter().enumerate() {
        if i > 0 {
            users.push_str(", ");
        }
        crate::json::write_str(&mut users, name);
    }
    users.push(']');
    ObjectWriter::new()
        .str("type", "auth_ok")
        .str("ts", &ts_str(ts))
        .str("username", username)
        .str("server_name", server_name)
        .raw("rate_limit", &rate)
        .raw("idle_timeout_ms", &idle)
        .raw("users", &users)
        .finish_line()
}

/// Someone joined or left: the typed twin of the system line everyone sees,
/// for clients of ours (their name lists follow it; nobody parses English).
pub fn presence(ts: WallTime, user: &str, online: bool) -> String {
    ObjectWriter::new()
        .str("type", "presence")
        .str("ts", &ts_str(ts))
        .str("user", user)
        .bool("online", online)
        .finish_line()
}

/// A private message was delivered: the sender's client shows it now, not
/// when it was typed (the recipient may not exist).
pub fn pm_sent(ts: WallTime, to_user: &str, text: &str) -> String {
    ObjectWriter::with_capacity(48 + to_user.len() + text.len())
        .str("type", "pm_sent")
        .str("ts", &ts_str(ts))
        .str("to_user", to_user)
        .str("text", text)
        .finish_line()
}

/// Why a login was refused, as a value a program can act on (ask for
/// another name, the password again, ...) instead of reading the sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    NameTaken,
    InvalidName,
    WrongPassword,
    /// The server wants a password and none was given.
    NeedsPassword,
    /// The server's key is not the one pinned.
    KeyChanged,
    /// The server's key is new and new keys are not accepted.
    UnknownKey,
    /// Anything else (the sentence says what).
    Other,
}

impl Refusal {
    /// The `code` field of an `auth_fail` from a server of ours.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NameTaken => "name_taken",
            Refusal::InvalidName => "invalid_name",
            Refusal::WrongPassword => "wrong_password",
            Refusal::NeedsPassword => "needs_password",
            Refusal::KeyChanged => "key_changed",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Other => "other",
        }
    }

    fn from_code(code: &str) -> Refusal {
        match code {
            "name_taken" => Refusal::NameTaken,
            "invalid_name" => Refusal::InvalidName,
            "wrong_password" => Refusal::WrongPassword,
            "needs_password" => Refusal::NeedsPassword,
            _ => Refusal::Other,
        }
    }

    /// LanTalk 2.0 servers send only a sentence; these are the three they
    /// have (the protocol's fixed wording, matched here and nowhere else).
    fn from_lantalk2(reason: &str) -> Refusal {
        match reason {
            "Username already taken." => Refusal::NameTaken,
            "Invalid username." => Refusal::InvalidName,
            "Wrong password." => Refusal::WrongPassword,
            _ => Refusal::Other,
        }
    }
}

/// `auth_fail` for a client of ours: LanTalk 2.0's fields and the typed
/// [`Refusal`] as `code`.
pub fn auth_fail_ours(ts: WallTime, reason: &str, why: Refusal) -> String {
    ObjectWriter::new()
        .str("type", "auth_fail")
        .str("ts", &ts_str(ts))
        .str("reason", reason)
        .str("code", why.code())
        .finish_line()
}

pub fn auth_fail(ts: WallTime, reason: &str) -> String {
    ObjectWriter::new()
        .str("type", "auth_fail")
        .str("ts", &ts_str(ts))
        .str("reason", reason)
        .finish_line()
}

pub fn message(ts: WallTime, user: &str, text: &str) -> String {
    ObjectWriter::with_capacity(48 + user.len() + text.len())
        .str("type", "message")
        .str("ts", &ts_str(ts))
        .str("user", user)
        .str("text", text)
        .finish_line()
}

pub fn pm(ts: WallTime, from_user: &str, text: &str) -> String {
    ObjectWriter::with_capacity(48 + from_user.len() + text.len())
        .str("type", "pm")
        .str("ts", &ts_str(ts))
        .str("from_user", from_user)
        .str("text", text)
        .finish_line()
}

pub fn system(ts: WallTime, text: &str) -> String {
    ObjectWriter::new()
        .str("type", "system")
        .str("ts", &ts_str(ts))
        .str("text", text)
        .finish_line()
}

// ── Rooms and message ids (servers and clients of ours only) ────────────────
//
// Inside an encrypted session a server of ours says which room a line belongs
// to and gives each message its id and full time. LanTalk 2.0 clients live in
// the lobby alone and get the lines above, byte for byte as before.

/// Where a message was said, its server-assigned id (monotonic, never
/// reused) and when, to the millisecond (Unix time, UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp<'a> {
    pub room: &'a str,
    pub id: u64,
    pub at_ms: i64,
}

/// A chat message for a client of ours: [`message`]'s fields, then the room,
/// id and time.
pub fn message_in(ts: WallTime, stamp: Stamp<'_>, user: &str, text: &str) -> String {
    ObjectWriter::with_capacity(96 + user.len() + text.len() + stamp.room.len())
        .str("type", "message")
        .str("ts", &ts_str(ts))
        .str("user", user)
        .str("text", text)
        .str("room", stamp.room)
        .raw("id", &stamp.id.to_string())
        .raw("at", &stamp.at_ms.to_string())
        .finish_line()
}

/// A notice about one room (someone joined it, its topic, an answer to a
/// command about it): shown in that room.
pub fn system_in(ts: WallTime, room: &str, text: &str) -> String {
    ObjectWriter::new()
        .str("type", "system")
        .str("ts", &ts_str(ts))
        .str("text", text)
        .str("room", room)
        .finish_line()
}

/// What a member is told about a room as they enter it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomView {
    pub room: String,
    pub topic: String,
    /// Members, in the order they joined.
    pub members: Vec<String>,
    /// Operators (may kick, set the topic, key and invite-only).
    pub ops: Vec<String>,
    pub invite_only: bool,
    /// Whether a key is needed to join.
    pub keyed: bool,
}

fn str_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        crate::json::write_str(&mut out, s);
    }
    out.push(']');
    out
}

/// You are in this room now (after `/join`, an invitation accepted, or at
/// login for the lobby), or its settings changed: its whole state.
pub fn room_state(ts: WallTime, view: &RoomView) -> String {
    ObjectWriter::new()
        .str("type", "room")
        .str("ts", &ts_str(ts))
        .str("room", &view.room)
        .str("topic", &view.topic)
        .raw("members", &str_list(&view.members))
        .raw("ops", &str_list(&view.ops))
        .bool("invite_only", view.invite_only)
        .bool("keyed", view.keyed)
        .finish_line()
}

/// You are no longer in `room`; `reason` says why, for people.
pub fn room_left(ts: WallTime, room: &str, reason: &str) -> String {
    ObjectWriter::new()
        .str("type", "room_left")
        .str("ts", &ts_str(ts))
        .str("room", room)
        .str("reason", reason)
        .finish_line()
}

/// Someone entered or left a room you are in (`joined`), with the sentence
/// to show.
pub fn room_member(ts: WallTime, room: &str, user: &str, joined: bool, text: &str) -> String {
    ObjectWriter::new()
        .str("type", "room_member")
        .str("ts", &ts_str(ts))
        .str("room", room)
        .str("user", user)
        .bool("joined", joined)
        .str("text", text)
        .finish_line()
}

/// A command a plugin offers, as clients of ours list and complete it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginCommand {
    /// With its slash (`/roll`).
    pub name: String,
    #[serde(default)]
    pub args: String,
    #[serde(default)]
    pub help: String,
    /// The plugin that answers it.
    #[serde(default)]
    pub plugin: String,
}

/// Most plugin commands a client keeps (a server sends far fewer).
pub const MAX_PLUGIN_COMMANDS: usize = 256;

/// The plugins' commands as `/help` lists them after the built-in ones:
/// ` | /roll <NdM> (roll dice; dice bot)`.
pub fn plugin_help(commands: &[PluginCommand]) -> String {
    let mut out = String::new();
    for c in commands {
        out.push_str(" | ");
        out.push_str(&c.name);
        if !c.args.is_empty() {
            out.push(' ');
            out.push_str(&c.args);
        }
        out.push_str(" (");
        if !c.help.is_empty() {
            out.push_str(&c.help);
            out.push_str("; ");
        }
        out.push_str(&c.plugin);
        out.push_str(" bot)");
    }
    out
}

/// The commands plugins offer now (at login, and whenever they change):
/// for `/help` and Tab completion in clients of ours.
pub fn plugin_commands(ts: WallTime, commands: &[PluginCommand]) -> String {
    let list = serde_json::to_string(commands).unwrap_or_else(|_| "[]".to_string());
    ObjectWriter::new()
        .str("type", "plugin_commands")
        .str("ts", &ts_str(ts))
        .raw("commands", &list)
        .finish_line()
}

// ── Client → server ──────────────────────────────────────────────────────────

/// The login line. LanTalk 2.0 sends it without a `type` field.
pub fn login(username: &str, password: &str) -> String {
    ObjectWriter::new()
        .str("username", username)
        .str("password", password)
        .finish_line()
}

/// The login inside an encrypted session: no password, only (when the
/// server has one) the first SPAKE2 message.
pub fn secure_login(username: &str, pake: Option<&[u8]>) -> String {
    let w = ObjectWriter::new().str("username", username);
    match pake {
        Some(msg) => w.str("pake", &crate::secure::b64(msg)),
        None => w,
    }
    .finish_line()
}

/// The client's proof that it derived the same key.
pub fn pake_confirm(proof: &[u8]) -> String {
    ObjectWriter::new()
        .str("type", "pake_confirm")
        .str("proof", &crate::secure::b64(proof))
        .finish_line()
}

pub fn chat(text: &str) -> String {
    ObjectWriter::with_capacity(32 + text.len())
        .str("type", "message")
        .str("text", text)
        .finish_line()
}

/// A message whose text starts with `/` but is not a command (typed as
/// `//text`). Servers of ours relay it as text; LanTalk 2.0 ignores the
/// flag and takes it for a command.
pub fn chat_literal(text: &str) -> String {
    ObjectWriter::with_capacity(48 + text.len())
        .str("type", "message")
        .str("text", text)
        .bool("literal", true)
        .finish_line()
}

/// A message (or a command) said in `room`, for a server of ours.
/// `literal`: as [`chat_literal`].
pub fn chat_in(room: &str, text: &str, literal: bool) -> String {
    let w = ObjectWriter::with_capacity(48 + text.len() + room.len())
        .str("type", "message")
        .str("text", text)
        .str("room", room);
    if literal {
        w.bool("literal", true).finish_line()
    } else {
        w.finish_line()
    }
}

/// "Still here": keeps a silent client's connection from being taken for
/// dead. Only sent to servers of ours, which say how often they need it.
pub fn keepalive() -> String {
    ObjectWriter::new().str("type", "keepalive").finish_line()
}

/// Python's idea of white space (`str.isspace`), which LanTalk uses to trim
/// and split: Unicode white space plus the separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The first character of `text` that a terminal would act on instead of
/// showing ([`crate::text::is_forbidden`]), tab excepted: a server refuses
/// such a line, since LanTalk 2.0 clients print what they receive as it is.
pub fn first_control(text: &str) -> Option<char> {
    // Every forbidden character is a C0 control, DEL or outside ASCII. This
    // runs on every chat message, most of which are printable ASCII: that is
    // checked first, without an early exit so that it is vectorised; then
    // the printable ASCII prefix is skipped, not decoded.
    if text
        .bytes()
        .fold(true, |printable, b| printable & (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let ascii = text
        .bytes()
        .position(|b| !(b' '..=b'~').contains(&b))
        .unwrap_or(text.len());
    text[ascii..]
        .chars()
        .find(|&c| c != '\t' && crate::text::is_forbidden(c))
}

/// `text` without leading and trailing white space, as `str.strip()` does.
pub fn py_trim(text: &str) -> &str {
    text.trim_matches(is_py_space)
}

/// Splits off the first word of `text`: `("/pm", "bob  hi there")`. Runs of
/// white space between words count as one, as in LanTalk's `str.split`.
pub fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches(is_py_space);
    match text.find(is_py_space) {
        Some(i) => (&text[..i], text[i..].trim_start_matches(is_py_space)),
        None => (text, ""),
    }
}

// ── Decoding ─────────────────────────────────────────────────────────────────

fn object(line: &[u8]) -> Result<Map<String, Value>, Malformed> {
    let text = std::str::from_utf8(line).map_err(|_| Malformed("invalid UTF-8"))?;
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Malformed("not a JSON object")),
        Err(_) => Err(Malformed("malformed JSON")),
    }
}

fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &'static str,
) -> Result<Option<&'a str>, Malformed> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Malformed(match key {
            "username" => "username must be a string",
            "password" => "password must be a string",
            "text" => "text must be a string",
            "type" => "type must be a string",
            _ => "field has the wrong type",
        })),
    }
}

/// A client's first line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// The first SPAKE2 message, in an encrypted session.
    pub pake: Option<Vec<u8>>,
}

pub fn parse_login(line: &[u8]) -> Result<Login, Malformed> {
    let map = object(line)?;
    let username = opt_str(&map, "username")?.ok_or(Malformed("missing username"))?;
    let password = opt_str(&map, "password")?.unwrap_or("");
    let pake = match opt_str(&map, "pake")? {
        Some(b) => Some(crate::secure::unb64(b).ok_or(Malformed("pake is not base64"))?),
        None => None,
    };
    Ok(Login {
        username: py_trim(username).to_string(),
        password: password.to_string(),
        pake,
    })
}

/// The client's `pake_confirm` proof.
pub fn parse_pake_confirm(line: &[u8]) -> Result<Vec<u8>, Malformed> {
    let map = object(line)?;
    if opt_str(&map, "type")? != Some("pake_confirm") {
        return Err(Malformed("expected pake_confirm"));
    }
    let proof = opt_str(&map, "proof")?.ok_or(Malformed("missing proof"))?;
    crate::secure::unb64(proof).ok_or(Malformed("proof is not base64"))
}

/// A line from an authenticated client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientLine {
    /// `{"type": "message", "text": ...}`: a message or a command.
    Message {
        /// Trimmed as LanTalk does.
        text: String,
        /// The room it is said in (clients of ours; LanTalk 2.0 clients
        /// speak in the lobby alone).
        room: Option<String>,
        /// `"literal": true`: text, even if it starts with `/`.
        literal: bool,
    },
    /// `{"type": "keepalive"}`: the client is alive; nothing to do.
    Keepalive,
    /// `{"type": "history", ...}` or `{"type": "search", ...}`: earlier
    /// lines of a room or a private conversation (clients of ours).
    History { place: Place, want: Want },
    /// Sharing files (`file_*` lines; clients of ours).
    File(crate::transfer::lines::FileAsk),
    /// A well-formed object of a type clients do not send; ignored.
    Other,
}

/// Where history is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Room(String),
    /// The private conversation with this user.
    Pm(String),
}

/// Most records one history line carries; a client asking for more gets
/// this many, and pages on.
pub const MAX_HISTORY_PAGE: usize = 200;

pub fn parse_client_line(line: &[u8]) -> Result<ClientLine, Malformed> {
    if let Some(parsed) = parse_client_line_fast(line) {
        return Ok(parsed);
    }
    let map = object(line)?;
    let kind = opt_str(&map, "type")?.ok_or(Malformed("missing type"))?;
    if kind == "keepalive" {
        return Ok(ClientLine::Keepalive);
    }
    if kind == "history" || kind == "search" {
        return parse_history_request(&map, kind == "search");
    }
    if crate::transfer::lines::is_file_type(kind) {
        return serde_json::from_value(Value::Object(map))
            .map(ClientLine::File)
            .map_err(|_| Malformed("bad file request"));
    }
    if kind != "message" {
        return Ok(ClientLine::Other);
    }
    let text = py_trim(opt_str(&map, "text")?.ok_or(Malformed("missing text"))?).to_string();
    let room = match map.get("room") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return Err(Malformed("room must be a string")),
    };
    Ok(ClientLine::Message {
        text,
        room,
        literal: matches!(map.get("literal"), Some(Value::Bool(true))),
    })
}

fn parse_history_request(map: &Map<String, Value>, search: bool) -> Result<ClientLine, Malformed> {
    let place = match (opt_str(map, "room")?, opt_str(map, "with")?) {
        (Some(room), None) => Place::Room(room.to_string()),
        (None, Some(user)) => Place::Pm(user.to_string()),
        _ => return Err(Malformed("history needs a room or a user")),
    };
    let id = |key: &str| -> Result<Option<u64>, Malformed> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or(Malformed("a message id is a number")),
        }
    };
    let limit = match map.get("limit") {
        None | Some(Value::Null) => 50,
        Some(v) => v.as_u64().ok_or(Malformed("limit is a number"))? as usize,
    }
    .clamp(1, MAX_HISTORY_PAGE);
    let want = if search {
        let text = opt_str(map, "text")?.ok_or(Malformed("search needs text"))?;
        Want::Search {
            text: text.to_string(),
            before: id("before")?,
            limit,
        }
    } else if let Some(after) = id("after")? {
        Want::After { after, limit }
    } else {
        Want::Before {
            before: id("before")?,
            limit,
        }
    };
    Ok(ClientLine::History { place, want })
}

/// Asks for earlier lines: `before` an id (the newest if `None`), or
/// `after` one (to catch up after a reconnection).
pub fn history_request(place: &Place, want: &Want) -> String {
    let mut w = ObjectWriter::new().str(
        "type",
        if matches!(want, Want::Search { .. }) {
            "search"
        } else {
            "history"
        },
    );
    w = match place {
        Place::Room(r) => w.str("room", r),
        Place::Pm(u) => w.str("with", u),
    };
    let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    match want {
        Want::Before { before, limit } => w
            .raw("before", &opt(*before))
            .raw("limit", &limit.to_string()),
        Want::After { after, limit } => w
            .raw("after", &after.to_string())
            .raw("limit", &limit.to_string()),
        Want::Search {
            text,
            before,
            limit,
        } => w
            .str("text", text)
            .raw("before", &opt(*before))
            .raw("limit", &limit.to_string()),
    }
    .finish_line()
}

/// Why history is sent: what the client asked, or arriving in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryReason {
    /// Joining a room (the lines before you came).
    Join,
    /// `/history`: a page further back.
    Page,
    /// Catching up from the last id seen (after a reconnection).
    Resume,
    /// `/search`.
    Search,
}

impl HistoryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryReason::Join => "join",
            HistoryReason::Page => "page",
            HistoryReason::Resume => "resume",
            HistoryReason::Search => "search",
        }
    }

    fn parse(s: &str) -> HistoryReason {
        match s {
            "join" => HistoryReason::Join,
            "resume" => HistoryReason::Resume,
            "search" => HistoryReason::Search,
            _ => HistoryReason::Page,
        }
    }
}

/// Earlier lines of a room or a conversation, oldest first; `more`: older
/// ones exist (page on with `before` the first id here).
pub fn history(
    ts: WallTime,
    place: &Place,
    reason: HistoryReason,
    records: &[Record],
    more: bool,
) -> String {
    let mut list = String::from("[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            list.push_str(", ");
        }
        list.push_str(&r.to_json());
    }
    list.push(']');
    let w = ObjectWriter::with_capacity(64 + list.len())
        .str("type", "history")
        .str("ts", &ts_str(ts));
    let w = match place {
        Place::Room(r) => w.str("room", r),
        Place::Pm(u) => w.str("with", u),
    };
    w.str("reason", reason.as_str())
        .raw("messages", &list)
        .bool("more", more)
        .finish_line()
}

/// One record of a `history` line, as the client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastLine {
    pub id: u64,
    pub at_ms: i64,
    pub user: String,
    pub text: String,
    /// `/me`.
    pub action: bool,
}

/// The fields a chat line needs, borrowed from the line when they hold no
/// escapes. Anything unusual (not an object, a field of the wrong type, a
/// duplicate field) makes the fast path give up, and the general path gives
/// the answer, so both always agree.
#[derive(serde::Deserialize)]
struct ChatFields<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "opt_cow")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    room: Option<Cow<'a, str>>,
    /// Present at all: leave it to the general path (rare).
    #[serde(default)]
    literal: Option<serde::de::IgnoredAny>,
}

/// A string (borrowed if it can be) or `null`.
fn opt_cow<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

fn parse_client_line_fast(line: &[u8]) -> Option<ClientLine> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if !text.starts_with('{') {
        return None;
    }
    let fields: ChatFields = serde_json::from_str(text).ok()?;
    if fields.literal.is_some() {
        return None;
    }
    match (fields.kind?, fields.text) {
        (kind, Some(text)) if kind == "message" => Some(ClientLine::Message {
            text: py_trim(&text).to_string(),
            room: fields.room.map(Cow::into_owned),
            literal: false,
        }),
        (kind, _) if kind == "keepalive" => Some(ClientLine::Keepalive),
        // Requests with fields of their own: the general path reads them.
        (kind, _)
            if kind == "history"
                || kind == "search"
                || crate::transfer::lines::is_file_type(&kind) =>
        {
            None
        }
        (kind, _) if kind != "message" => Some(ClientLine::Other),
        _ => None,
    }
}

/// A line from the server, as the client understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerLine {
    AuthRequest {
        needs_password: bool,
        /// The encryption offer, if any (and if it could be read).
        offer: Option<Offer>,
    },
    /// The server's half of the password check.
    Pake {
        msg: Vec<u8>,
        proof: Vec<u8>,
    },
    AuthOk {
        username: String,
        server_name: String,
        /// Present when the server is one of ours.
        session: Option<SessionInfo>,
    },
    AuthFail {
        reason: String,
        /// From the `code` a server of ours sends, else from LanTalk 2.0's
        /// fixed wording.
        why: Refusal,
    },
    Message {
        ts: String,
        user: String,
        text: String,
        /// Where, which message and when: from a server of ours.
        room: Option<String>,
        id: Option<u64>,
        at_ms: Option<i64>,
    },
    Pm {
        ts: String,
        from_user: String,
        text: String,
    },
    System {
        ts: String,
        text: String,
        /// The room it is about (a server of ours); `None`: the whole server.
        room: Option<String>,
    },
    /// You are in this room; its whole state.
    Room(RoomView),
    RoomLeft {
        room: String,
        reason: String,
    },
    RoomMember {
        room: String,
        user: String,
        joined: bool,
        text: String,
    },
    History {
        place: Place,
        reason: HistoryReason,
        lines: Vec<PastLine>,
        more: bool,
    },
    Presence {
        user: String,
        online: bool,
    },
    /// The commands plugins offer now (a server of ours).
    PluginCommands(Vec<PluginCommand>),
    PmSent {
        ts: String,
        to_user: String,
        text: String,
    },
    /// About files (servers of ours).
    File(crate::transfer::lines::FileNews),
    /// A well-formed object of a type this client does not know; ignored.
    Other,
}

pub fn parse_server_line(line: &[u8]) -> Result<ServerLine, Malformed> {
    let map = object(line)?;
    let kind = opt_str(&map, "type")?.ok_or(Malformed("missing type"))?;
    let s = |key: &'static str| -> Result<String, Malformed> {
        Ok(opt_str(&map, key)?.unwrap_or("").to_string())
    };
    Ok(match kind {
        "auth_request" => ServerLine::AuthRequest {
            needs_password: map
                .get("needs_password")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            offer: map.get("secure").and_then(Offer::from_json),
        },
        "pake" => {
            let b = |key: &'static str| -> Result<Vec<u8>, Malformed> {
                crate::secure::unb64(&s(key)?).ok_or(Malformed("pake field is not base64"))
            };
            ServerLine::Pake {
                msg: b("msg")?,
                proof: b("proof")?,
            }
        }
        "auth_ok" => ServerLine::AuthOk {
            username: s("username")?,
            server_name: s("server_name")?,
            session: session_info(&map),
        },
        "auth_fail" => {
            let reason = s("reason")?;
            let why = match opt_str(&map, "code")? {
                Some(code) => Refusal::from_code(code),
                None => Refusal::from_lantalk2(&reason),
            };
            ServerLine::AuthFail { reason, why }
        }
        "message" => ServerLine::Message {
            ts: s("ts")?,
            user: s("user")?,
            text: s("text")?,
            room: opt_str(&map, "room")?.map(str::to_string),
            id: map.get("id").and_then(Value::as_u64),
            at_ms: map.get("at").and_then(Value::as_i64),
        },
        "pm" => ServerLine::Pm {
            ts: s("ts")?,
            from_user: s("from_user")?,
            text: s("text")?,
        },
        "system" => ServerLine::System {
            ts: s("ts")?,
            text: s("text")?,
            room: opt_str(&map, "room")?.map(str::to_string),
        },
        "room" => {
            let list = |key: &str| -> Vec<String> {
                map.get(key)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let flag = |key: &str| map.get(key).and_then(Value::as_bool).unwrap_or(false);
            ServerLine::Room(RoomView {
                room: s("room")?,
                topic: s("topic")?,
                members: list("members"),
                ops: list("ops"),
                invite_only: flag("invite_only"),
                keyed: flag("keyed"),
            })
        }
        "history" => {
            let place = match (opt_str(&map, "room")?, opt_str(&map, "with")?) {
                (Some(r), _) => Place::Room(r.to_string()),
                (None, Some(u)) => Place::Pm(u.to_string()),
                (None, None) => return Err(Malformed("history without a room or a user")),
            };
            let lines = map
                .get("messages")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| {
                            Some(PastLine {
                                id: m.get("id")?.as_u64()?,
                                at_ms: m.get("at")?.as_i64()?,
                                user: m.get("user")?.as_str()?.to_string(),
                                text: m.get("text")?.as_str()?.to_string(),
                                action: m.get("action").and_then(Value::as_bool).unwrap_or(false),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            ServerLine::History {
                place,
                reason: HistoryReason::parse(opt_str(&map, "reason")?.unwrap_or("")),
                lines,
                more: map.get("more").and_then(Value::as_bool).unwrap_or(false),
            }
        }
        "room_left" => ServerLine::RoomLeft {
            room: s("room")?,
            reason: s("reason")?,
        },
        "room_member" => ServerLine::RoomMember {
            room: s("room")?,
            user: s("user")?,
            joined: map.get("joined").and_then(Value::as_bool).unwrap_or(false),
            text: s("text")?,
        },
        "presence" => ServerLine::Presence {
            user: s("user")?,
            online: map.get("online").and_then(Value::as_bool).unwrap_or(false),
        },
        "plugin_commands" => ServerLine::PluginCommands(
            map.get("commands")
                .cloned()
                .and_then(|v| serde_json::from_value::<Vec<PluginCommand>>(v).ok())
                .ok_or(Malformed("bad plugin_commands line"))?
                .into_iter()
                .filter(|c| {
                    c.name.len() > 1
                        && c.name.starts_with('/')
                        && !c.name.contains(char::is_whitespace)
                })
                .take(MAX_PLUGIN_COMMANDS)
                .collect(),
        ),
        "pm_sent" => ServerLine::PmSent {
            ts: s("ts")?,
            to_user: s("to_user")?,
            text: s("text")?,
        },
        kind if crate::transfer::lines::is_file_type(kind) => {
            serde_json::from_value(Value::Object(map.clone()))
                .map(ServerLine::File)
                .map_err(|_| Malformed("bad file line"))?
        }
        _ => ServerLine::Other,
    })
}

/// The fields of [`SessionInfo`] in an `auth_ok`, if the server sent them
/// (LanTalk 2.0 does not). A field that cannot be read counts as absent: a
/// limit we cannot read is one we do not know, and the client keeps its
/// cautious defaults.
fn session_info(map: &Map<String, Value>) -> Option<SessionInfo> {
    if !map.contains_key("rate_limit") && !map.contains_key("idle_timeout_ms") {
        return None;
    }
    let rate_limit = map.get("rate_limit").and_then(|r| {
        let lines = u32::try_from(r.get("lines")?.as_u64()?).ok()?;
        let window = Duration::from_millis(r.get("window_ms")?.as_u64()?);
        (lines > 0).then(|| Rate::new(lines, window))
    });
    let idle_timeout = map
        .get("idle_timeout_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis);
    let users = map
        .get("users")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(SessionInfo {
        rate_limit,
        idle_timeout,
        users,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: WallTime = WallTime {
        hour: 14,
        minute: 2,
        unix_ms: 0,
    };

    #[test]
    fn encodes_like_lantalk() {
        assert_eq!(
            auth_request(TS, true),
            "{\"type\": \"auth_request\", \"ts\": \"14:02\", \"needs_password\": true}\n"
        );
        assert_eq!(
            auth_ok(TS, "Bob", "Alice"),
            "{\"type\": \"auth_ok\", \"ts\": \"14:02\", \"username\": \"Bob\", \"server_name\": \"Alice\"}\n"
        );
        assert_eq!(
            login("Bob", "secret"),
            "{\"username\": \"Bob\", \"password\": \"secret\"}\n"
        );
        assert_eq!(
            chat("Hello!"),
            "{\"type\": \"message\", \"text\": \"Hello!\"}\n"
        );
    }

    /// A refusal is a value: from the `code` a server of ours sends, or
    /// from LanTalk 2.0's three fixed sentences; anything else is `Other`.
    #[test]
    fn refusals_are_values() {
        let why = |line: String| match parse_server_line(line.as_bytes()) {
            Ok(ServerLine::AuthFail { why, .. }) => why,
            other => panic!("{other:?}"),
        };
        for r in [
            Refusal::NameTaken,
            Refusal::InvalidName,
            Refusal::WrongPassword,
            Refusal::NeedsPassword,
        ] {
            assert_eq!(why(auth_fail_ours(TS, "whatever it says", r)), r);
        }
        assert_eq!(
            why(auth_fail(TS, "Username already taken.")),
            Refusal::NameTaken
        );
        assert_eq!(
            why(auth_fail(TS, "Wrong password.")),
            Refusal::WrongPassword
        );
        assert_eq!(
            why(auth_fail(TS, "Invalid username.")),
            Refusal::InvalidName
        );
        assert_eq!(why(auth_fail(TS, "Go away.")), Refusal::Other);
    }

    #[test]
    fn decodes_and_rejects() {
        assert_eq!(
            parse_login(br#"{"username": " Bob ", "password": "x", "extra": 1}"#),
            Ok(Login {
                username: "Bob".into(),
                password: "x".into(),
                pake: None,
            })
        );
        assert_eq!(
            parse_login(br#"{"password": "x"}"#),
            Err(Malformed("missing username"))
        );
        assert_eq!(
            parse_login(br#"{"username": 5}"#),
            Err(Malformed("username must be a string"))
        );
        assert_eq!(parse_client_line(b"\xff"), Err(Malformed("invalid UTF-8")));
        assert_eq!(
            parse_client_line(b"[1]"),
            Err(Malformed("not a JSON object"))
        );
        assert_eq!(parse_client_line(b"{"), Err(Malformed("malformed JSON")));
        assert_eq!(
            parse_client_line(br#"{"type": "message", "text": "  hi "}"#),
            Ok(ClientLine::Message {
                text: "hi".into(),
                room: None,
                literal: false
            })
        );
        // A client of ours says where; both parsers agree on it.
        let said = |line: String| parse_client_line(line.as_bytes());
        assert_eq!(
            said(chat_in("#team", "hi", false)),
            Ok(ClientLine::Message {
                text: "hi".into(),
                room: Some("#team".into()),
                literal: false
            })
        );
        assert_eq!(
            said(chat_in("#team", "/x", true)),
            Ok(ClientLine::Message {
                text: "/x".into(),
                room: Some("#team".into()),
                literal: true
            })
        );
        assert_eq!(
            parse_client_line(br#"{"type": "message", "text": "hi", "room": 7}"#),
            Err(Malformed("room must be a string"))
        );
        assert_eq!(
            parse_client_line(br#"{"type": "ping"}"#),
            Ok(ClientLine::Other)
        );
        assert_eq!(
            parse_server_line(system(TS, "x").as_bytes()),
            Ok(ServerLine::System {
                ts: "14:02".into(),
                text: "x".into(),
                room: None,
            })
        );
        let view = RoomView {
            room: "#team".into(),
            topic: "ship \"it\"".into(),
            members: vec!["a".into(), "b".into()],
            ops: vec!["a".into()],
            invite_only: true,
            keyed: false,
        };
        assert_eq!(
            parse_server_line(room_state(TS, &view).as_bytes()),
            Ok(ServerLine::Room(view))
        );
        let stamp = Stamp {
            room: "#team",
            id: 42,
            at_ms: 1_700_000_000_123,
        };
        assert_eq!(
            parse_server_line(message_in(TS, stamp, "a", "hi").as_bytes()),
            Ok(ServerLine::Message {
                ts: "14:02".into(),
                user: "a".into(),
                text: "hi".into(),
                room: Some("#team".into()),
                id: Some(42),
                at_ms: Some(1_700_000_000_123),
            })
        );
    }

    #[test]
    fn first_control_agrees_with_a_scan_of_every_character() {
        let slow = |t: &str| {
            t.chars()
                .find(|&c| c != '\t' && crate::text::is_forbidden(c))
        };
        for t in [
            "",
            "plain ascii ~",
            "tab\tonly",
            "\tbell\u{7}",
            "del\u{7f}",
            "caf\u{e9} \u{85}",
            "\u{202e}evil",
            "ok \u{2028}",
            "\u{1b}[2J",
            "h\u{e9}llo w\u{f6}rld",
            "\u{61c}",
        ] {
            assert_eq!(first_control(t), slow(t), "{t:?}");
        }
    }
}
