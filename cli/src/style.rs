//! How chat events look: the plain one-line form (pipes, logs, `NO_COLOR`) and
//! the coloured form for terminals. Both carry the same words, so a script
//! written against the plain form reads the same things a person sees.

use lantalk_core::client::{ClientEvent, HistoryReason, PastLine, Place};
use lantalk_core::text::visible;

/// Whether to colour output: only on a terminal, and never with `NO_COLOR`
/// set to anything non-empty (<https://no-color.org>).
pub fn colour_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// One line of output, built from spans of text, each with a colour of ours
/// (an SGR code) or none. This is the only thing [`crate::term`] and the log
/// print: rendering passes every span's text through
/// [`lantalk_core::text::visible`], so whatever a peer or a server put in it
/// shows as text and never acts on the terminal; the only escape codes in the
/// result are our own colours, and only when colour is on. A line never
/// holds a line break: a newline in a span shows as `␊`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Line {
    spans: Vec<Span>,
    colour: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Span {
    /// An SGR parameter string of ours (`"1;31"`), never text from outside.
    paint: Option<&'static str>,
    text: String,
}

impl Line {
    /// `text` with no colour.
    pub fn plain(text: impl Into<String>) -> Line {
        Line::default().text(text)
    }

    /// Adds `text` with no colour.
    pub fn text(mut self, text: impl Into<String>) -> Line {
        self.spans.push(Span {
            paint: None,
            text: text.into(),
        });
        self
    }

    /// Adds `text` in the SGR rendition `code` (shown only with colour on).
    pub fn painted(mut self, code: &'static str, text: impl Into<String>) -> Line {
        self.spans.push(Span {
            paint: Some(code),
            text: text.into(),
        });
        self
    }

    /// Adds a user name in a colour of its own that stays the same across
    /// runs and machines (a hash of the name, not of the session).
    pub fn name(self, name: &str) -> Line {
        let hash = name
            .to_ascii_lowercase()
            .bytes()
            .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
        self.painted(NAME_COLOURS[hash as usize % NAME_COLOURS.len()], name)
    }

    /// The line as it goes to the terminal, a pipe or the log (no line
    /// break): each span made visible, then coloured when colour is on.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for span in &self.spans {
            let text = visible(&span.text);
            match span.paint {
                Some(code) if self.colour && !text.is_empty() => {
                    out.push_str("\x1b[");
                    out.push_str(code);
                    out.push('m');
                    out.push_str(&text);
                    out.push_str("\x1b[0m");
                }
                _ => out.push_str(&text),
            }
        }
        out
    }
}

/// Our own multi-line text (banners, help, hints), one [`Line`] per line.
/// Every line is still made visible; only the line breaks are kept.
pub fn lines(text: &str) -> Vec<Line> {
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|l| Line::plain(l.strip_suffix('\r').unwrap_or(l)))
        .collect()
}

#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
}

/// Where the user is, so a line can say which room it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Whereabouts {
    /// The room typed lines go to (servers of ours).
    pub current: Option<String>,
    /// How many rooms the user is in.
    pub rooms: usize,
    /// Piped output: every room line starts with its room, for scripts.
    pub piped: bool,
}

impl Whereabouts {
    /// Whether a line of `room` starts with the room's name. Piped: every
    /// room but the lobby, so that a line without a room is the lobby's, as
    /// every line was before rooms (and is with a LanTalk 2.0 server), and
    /// scripts written then keep working. On a terminal: once there is more
    /// than one room to tell apart.
    fn names(&self, room: Option<&str>) -> bool {
        match room {
            None => false,
            Some(room) if self.piped => !room.eq_ignore_ascii_case(lantalk_core::rooms::LOBBY),
            Some(_) => self.rooms > 1,
        }
    }
}

/// Colours for user names: distinct, readable on dark and light backgrounds.
const NAME_COLOURS: [&str; 10] = ["31", "32", "33", "34", "35", "36", "91", "92", "94", "95"];

impl Style {
    /// An empty line, coloured if this style is.
    pub fn line(&self) -> Line {
        Line {
            spans: Vec::new(),
            colour: self.colour,
        }
    }

    fn ts(&self, ts: &str) -> Line {
        self.line().painted("2", format!("[{ts}]"))
    }

    /// A line that starts with `room` (as [`Whereabouts`] says), then `ts`:
    /// the room in bold when it is where the user speaks, dim otherwise.
    fn start(&self, room: Option<&str>, ts: &str, at: &Whereabouts) -> Line {
        let line = match room {
            Some(room) if at.names(Some(room)) => {
                let here = at
                    .current
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(room));
                self.line()
                    .painted(if here { "1" } else { "2" }, room)
                    .text(" ")
            }
            _ => self.line(),
        };
        if ts.is_empty() {
            line
        } else {
            line.painted("2", format!("[{ts}]")).text(" ")
        }
    }

    /// One line for `event`, or `None` for events that are not shown as chat
    /// lines (login progress, the end of the session, earlier lines, which
    /// [`Style::history`] shows).
    pub fn event(
        &self,
        event: &ClientEvent,
        now: &str,
        me: &str,
        at: &Whereabouts,
    ) -> Option<Line> {
        Some(match event {
            ClientEvent::Message {
                ts,
                user,
                text,
                room,
                ..
            } => {
                let line = self.start(room.as_deref(), ts, at);
                match text.strip_prefix("/me ") {
                    Some(action) => line.text("* ").name(user).text(format!(" {action}")),
                    None => line.name(user).text(format!(": {text}")),
                }
            }
            ClientEvent::System { ts, text, room } if room.is_some() => self
                .start(room.as_deref(), ts, at)
                .painted("32", format!("*** {text} ***")),
            ClientEvent::RoomMember { room, text, .. } => self
                .start(Some(room), now, at)
                .painted("32", format!("*** {text} ***")),
            ClientEvent::RoomLeft { room, reason } => self
                .start(Some(room), now, at)
                .painted("32", format!("*** {reason} ***")),
            // The lobby at login goes without saying.
            ClientEvent::RoomEntered(view) if view.room != lantalk_core::rooms::LOBBY => {
                let mut text = format!(
                    "You are in {} ({} {}",
                    view.room,
                    view.members.len(),
                    if view.members.len() == 1 {
                        "member"
                    } else {
                        "members"
                    }
                );
                if !view.topic.is_empty() {
                    text.push_str(&format!("; topic: {}", view.topic));
                }
                text.push_str("). ");
                text.push_str(if at.piped {
                    "Lines go to the room they were typed in; /switch changes it."
                } else {
                    "/switch or Alt-1..9 moves between rooms."
                });
                self.start(Some(&view.room), now, at).painted("36", text)
            }
            ClientEvent::Pm {
                ts,
                from_user,
                text,
            } => self
                .ts(ts)
                .text(" ")
                .painted("1;33", format!("PM from {from_user}: {text}")),
            ClientEvent::PmSent { to, text } => self
                .ts(now)
                .text(" ")
                .painted("33", format!("PM to {to}: {text}")),
            ClientEvent::System { ts, text, .. } if ts.is_empty() => {
                self.line().painted("32", format!("*** {text} ***"))
            }
            ClientEvent::System { ts, text, .. } => self
                .ts(ts)
                .text(" ")
                .painted("32", format!("*** {text} ***")),
            ClientEvent::Notice(text) => {
                self.ts(now).text(" ").painted("1;31", format!("! {text}"))
            }
            ClientEvent::ActionSent { text, room } => self
                .start(room.as_deref(), now, at)
                .text("* ")
                .name(me)
                .text(format!(" {text}")),
            ClientEvent::AwaitingApproval { code } => {
                self.info(format!("Waiting for the host to approve... code {code}"))
            }
            ClientEvent::FileShared(f) => {
                let room = f.to.starts_with('#').then_some(f.to.as_str());
                let size = human_size(f.size);
                let text = if f.from == me {
                    let to = room.map_or_else(|| format!(" to {}", f.to), |r| format!(" in {r}"));
                    format!(
                        "Your file {} ({size}) is offered{to} as file {}",
                        f.shown_name(),
                        f.id
                    )
                } else {
                    let to = if room.is_some() { "" } else { " with you" };
                    let name = f.shown_name();
                    format!("{} shared {name} ({size}){to}: /get {}", f.from, f.id)
                };
                self.start(room, now, at)
                    .painted("32", format!("*** {text} ***"))
            }
            ClientEvent::FileRemoved { id, name } => self.ts(now).text(" ").painted(
                "32",
                format!("*** File {id} ({name}) is no longer offered ***"),
            ),
            ClientEvent::TransferDone {
                name,
                upload: true,
                size,
                ..
            } => self.ts(now).text(" ").painted(
                "36",
                format!(
                    "Sent {name} ({}); the server keeps it for the others.",
                    human_size(*size)
                ),
            ),
            ClientEvent::TransferDone {
                path: Some(path),
                size,
                hash,
                ..
            } => self.ts(now).text(" ").painted(
                "36",
                format!(
                    "Saved {path} ({}{}).",
                    human_size(*size),
                    hash.as_ref()
                        .map(|h| format!(", hash {h}"))
                        .unwrap_or_default()
                ),
            ),
            ClientEvent::TransferFailed {
                name,
                reason,
                upload,
                ..
            } => {
                let what = match (name.is_empty(), upload) {
                    (true, _) => String::new(),
                    (false, true) => format!("Sending {name} failed: "),
                    (false, false) => format!("Downloading {name} failed: "),
                };
                self.ts(now)
                    .text(" ")
                    .painted("1;31", format!("! {what}{reason}"))
            }
            ClientEvent::Joined { .. }
            | ClientEvent::Roster { .. }
            | ClientEvent::PluginCommands { .. }
            | ClientEvent::Presence { .. }
            | ClientEvent::Sent { .. }
            | ClientEvent::Queued { .. }
            | ClientEvent::Secured { .. }
            | ClientEvent::ConfirmServerKey { .. }
            | ClientEvent::Clear
            | ClientEvent::PasswordRequired
            | ClientEvent::Refused { .. }
            | ClientEvent::Disconnected { .. }
            | ClientEvent::RoomEntered(_)
            | ClientEvent::RoomUpdated(_)
            | ClientEvent::Switched { .. }
            | ClientEvent::History { .. }
            | ClientEvent::FileList { .. }
            | ClientEvent::Transfer(_)
            | ClientEvent::TransferDone { .. } => return None,
        })
    }

    /// Every line `event` shows (earlier lines come several at a time).
    pub fn lines_for(&self, event: &ClientEvent, me: &str, at: &Whereabouts) -> Vec<Line> {
        match event {
            ClientEvent::History {
                place,
                reason,
                lines,
                more,
            } => self.history(place, *reason, lines, *more, at),
            ClientEvent::FileList { files, got } => {
                if files.is_empty() {
                    return vec![self.info(
                        "No files are offered to you. /send <user|#room> <path> shares one.",
                    )];
                }
                let mut out = vec![self.info("Files offered to you (/get <id> downloads):")];
                for (f, got) in files.iter().zip(got) {
                    let mut line =
                        format!("  {}  {}", lantalk_core::client::describe(f), age(f.at_ms));
                    if *got {
                        line.push_str("  (downloaded)");
                    }
                    out.push(Line::plain(line));
                }
                out
            }
            _ => self
                .event(event, &crate::clock::hhmm(), me, at)
                .into_iter()
                .collect(),
        }
    }

    /// Earlier lines, told apart from live ones: a heading, then each line
    /// dimmed with its date and time. `day` gives a date as people read it.
    pub fn history(
        &self,
        place: &Place,
        reason: HistoryReason,
        lines: &[PastLine],
        more: bool,
        at: &Whereabouts,
    ) -> Vec<Line> {
        let (room, shown) = match place {
            Place::Room(r) => (Some(r.as_str()), r.clone()),
            Place::Pm(u) => (None, format!("your conversation with {u}")),
        };
        let n = lines.len();
        let plural = if n == 1 { "" } else { "s" };
        let heading = match reason {
            HistoryReason::Search if n == 0 => format!("No matches in {shown}."),
            HistoryReason::Search => format!(
                "{n} match{} in {shown}, oldest first",
                if n == 1 { "" } else { "es" }
            ),
            _ if n == 0 => format!("Nothing earlier in {shown}."),
            HistoryReason::Resume => {
                format!("{n} line{plural} said in {shown} while you were away")
            }
            _ => format!("{n} earlier line{plural} of {shown}"),
        };
        let more_hint = match reason {
            _ if !more || n == 0 => "",
            HistoryReason::Search => " (/search for older matches)",
            _ => " (/history for more)",
        };
        let mut out = vec![self
            .start(room, "", at)
            .painted("2", format!("── {heading}{more_hint} ──"))];
        for l in lines {
            let when = chrono::DateTime::from_timestamp_millis(l.at_ms)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            let line = self.start(room, "", at).painted("2", format!("[{when}] "));
            out.push(if l.action {
                line.painted("2", format!("* {} {}", l.user, l.text))
            } else {
                line.painted("2", format!("{}: {}", l.user, l.text))
            });
        }
        out
    }

    pub fn info(&self, text: impl Into<String>) -> Line {
        self.line().painted("36", text)
    }

    pub fn error(&self, text: impl Into<String>) -> Line {
        self.line().painted("1;31", text)
    }
}

/// A size for people (`1.4 MB`).
fn human_size(bytes: u64) -> String {
    lantalk_core::transfer::human_size(bytes)
}

/// How long ago a file was offered: `5 min ago`, `2 h ago`.
fn age(at_ms: i64) -> String {
    let secs = (chrono::Utc::now().timestamp_millis() - at_ms).max(0) / 1000;
    match secs {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// Whether `event` should ring the terminal bell for user `me`: a private
/// message, or a message that mentions `me` by name (as a whole word).
pub fn wants_bell(event: &ClientEvent, me: &str) -> bool {
    match event {
        ClientEvent::Pm { .. } => true,
        ClientEvent::Message { user, text, .. } if !user.eq_ignore_ascii_case(me) => text
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .any(|word| word.eq_ignore_ascii_case(me)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(user: &str, text: &str) -> ClientEvent {
        ClientEvent::Message {
            ts: "14:22".into(),
            user: user.into(),
            text: text.into(),
            room: None,
            id: None,
            at_ms: None,
        }
    }

    /// Piped, in `room` and one more.
    fn piped(room: &str) -> Whereabouts {
        Whereabouts {
            current: Some(room.into()),
            rooms: 2,
            piped: true,
        }
    }

    fn plain(line: Option<Line>) -> String {
        line.expect("a line").render()
    }

    #[test]
    fn plain_lines() {
        let s = Style { colour: false };
        assert_eq!(
            plain(s.event(&msg("Alice", "hi"), "x", "me", &Whereabouts::default())),
            "[14:22] Alice: hi"
        );
        assert_eq!(
            plain(s.event(
                &msg("Alice", "/me waves"),
                "x",
                "me",
                &Whereabouts::default()
            )),
            "[14:22] * Alice waves"
        );
        let pm = ClientEvent::Pm {
            ts: "14:22".into(),
            from_user: "Alice".into(),
            text: "psst".into(),
        };
        assert_eq!(
            plain(s.event(&pm, "x", "me", &Whereabouts::default())),
            "[14:22] PM from Alice: psst"
        );
        let sys = ClientEvent::System {
            ts: "14:22".into(),
            text: "Bob joined from 10.0.0.2.".into(),
            room: None,
        };
        assert_eq!(
            plain(s.event(&sys, "x", "me", &Whereabouts::default())),
            "[14:22] *** Bob joined from 10.0.0.2. ***"
        );
        assert!(!plain(s.event(&sys, "x", "me", &Whereabouts::default())).contains('\x1b'));
    }

    /// Piped, every room line starts with its room (`#team [14:22] Bob:
    /// hi`); on a terminal, only once there are rooms to tell apart.
    #[test]
    fn room_lines_say_their_room() {
        let s = Style { colour: false };
        let said = ClientEvent::Message {
            ts: "14:22".into(),
            user: "Bob".into(),
            text: "hi".into(),
            room: Some("#team".into()),
            id: None,
            at_ms: None,
        };
        assert_eq!(
            plain(s.event(&said, "x", "me", &piped("#lobby"))),
            "#team [14:22] Bob: hi"
        );
        let alone = Whereabouts {
            current: Some("#team".into()),
            rooms: 1,
            piped: false,
        };
        assert_eq!(plain(s.event(&said, "x", "me", &alone)), "[14:22] Bob: hi");
        let past = PastLine {
            id: 1,
            at_ms: 0,
            user: "Ann".into(),
            text: "earlier".into(),
            action: false,
        };
        let shown = s.history(
            &Place::Room("#team".into()),
            HistoryReason::Join,
            &[past],
            true,
            &piped("#team"),
        );
        assert_eq!(shown.len(), 2);
        assert!(
            shown[0]
                .render()
                .starts_with("#team ── 1 earlier line of #team (/history for more)"),
            "{}",
            shown[0].render()
        );
        assert!(
            shown[1].render().starts_with("#team ["),
            "{}",
            shown[1].render()
        );
        assert!(
            shown[1].render().ends_with("] Ann: earlier"),
            "{}",
            shown[1].render()
        );
    }

    #[test]
    fn colours_are_stable_per_name() {
        let s = Style { colour: true };
        let name = |n: &str| s.line().name(n).render();
        assert_eq!(name("alice"), name("alice"));
        assert!(name("alice").starts_with("\x1b["));
        assert_eq!(name("Alice"), name("alice").replace("alice", "Alice"));
    }

    /// What a hostile peer or server may put in any field.
    const HOSTILE: &str = "\x1b[2J\x1b]0;PWNED\x07a\rb\nc\u{202e}d\u{9b}e\x7f\t";

    fn hostile_events() -> Vec<ClientEvent> {
        let h = || HOSTILE.to_string();
        vec![
            ClientEvent::Message {
                ts: h(),
                user: h(),
                text: h(),
                room: Some(h()),
                id: None,
                at_ms: None,
            },
            ClientEvent::Message {
                ts: h(),
                user: h(),
                text: format!("/me {HOSTILE}"),
                room: None,
                id: None,
                at_ms: None,
            },
            ClientEvent::RoomMember {
                room: h(),
                user: h(),
                joined: true,
                text: h(),
            },
            ClientEvent::RoomLeft {
                room: h(),
                reason: h(),
            },
            ClientEvent::RoomEntered(lantalk_core::client::RoomView {
                room: h(),
                topic: h(),
                members: vec![h()],
                ..Default::default()
            }),
            ClientEvent::Pm {
                ts: h(),
                from_user: h(),
                text: h(),
            },
            ClientEvent::PmSent { to: h(), text: h() },
            ClientEvent::System {
                ts: h(),
                text: h(),
                room: Some(h()),
            },
            ClientEvent::System {
                ts: String::new(),
                text: h(),
                room: None,
            },
            ClientEvent::Notice(h()),
            ClientEvent::ActionSent {
                text: h(),
                room: Some(h()),
            },
            ClientEvent::AwaitingApproval { code: h() },
        ]
    }

    /// Whether `out` holds a control a terminal would act on, other than the
    /// SGR colour codes of ours (`ESC [ digits;… m`).
    fn has_raw_control(out: &str) -> bool {
        let mut rest = out;
        while let Some(i) = rest.find(|c: char| lantalk_core::text::is_forbidden(c)) {
            let after = &rest[i..];
            let Some(sgr) = after.strip_prefix("\x1b[") else {
                return true;
            };
            let end = sgr
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(sgr.len());
            if !sgr[end..].starts_with('m') {
                return true;
            }
            rest = &sgr[end + 1..];
        }
        false
    }

    #[test]
    fn hostile_fields_render_without_controls() {
        for colour in [false, true] {
            let s = Style { colour };
            for event in hostile_events() {
                let out = plain(s.event(&event, HOSTILE, HOSTILE, &piped(HOSTILE)));
                assert!(!has_raw_control(&out), "{event:?} -> {out:?}");
                for c in ['\r', '\n', '\u{202e}', '\u{9b}', '\x07', '\x7f', '\t'] {
                    assert!(!out.contains(c), "{c:?} in {out:?}");
                }
                assert!(out.contains("␛[2J"), "{out:?}");
                assert!(out.contains("␛]0;PWNED␇"), "{out:?}");
                assert!(out.contains("a␍b␊c<U+202E>d<U+009B>e␡ "), "{out:?}");
                if !colour {
                    assert!(!out.contains('\x1b'), "{out:?}");
                }
            }
        }
        let server_name = format!("Connected to {HOSTILE} as {HOSTILE}.");
        let out = Style { colour: true }.info(server_name).render();
        assert!(!has_raw_control(&out), "{out:?}");
        assert!(!has_raw_control(&lines(HOSTILE)[0].render()));
    }

    #[test]
    fn our_lines_keep_their_breaks_only() {
        let l = lines("one\ntwo\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].render(), "two");
    }

    #[test]
    fn colour_only_when_on() {
        let on = Style { colour: true }.error("x").render();
        assert_eq!(on, "\x1b[1;31mx\x1b[0m");
        assert_eq!(Style { colour: false }.error("x").render(), "x");
    }

    #[test]
    fn bell_on_pm_and_mention_only() {
        assert!(wants_bell(&msg("Bob", "hey alice, look"), "Alice"));
        assert!(!wants_bell(&msg("Bob", "malice"), "Alice"));
        assert!(!wants_bell(&msg("Alice", "I am Alice"), "Alice"));
    }
}
