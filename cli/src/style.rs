//! How chat events look: the plain one-line form (pipes, logs, `NO_COLOR`) and
//! the coloured form for terminals. Both carry the same words, so a script
//! written against the plain form reads the same things a person sees.

use lantalk_core::client::ClientEvent;

/// Whether to colour output: only on a terminal, and never with `NO_COLOR`
/// set to anything non-empty (<https://no-color.org>).
pub fn colour_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
}

/// Colours for user names: distinct, readable on dark and light backgrounds.
const NAME_COLOURS: [&str; 10] = ["31", "32", "33", "34", "35", "36", "91", "92", "94", "95"];

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A user name in a colour of its own that stays the same across runs
    /// and machines (a hash of the name, not of the session).
    pub fn name(&self, name: &str) -> String {
        let hash = name
            .to_ascii_lowercase()
            .bytes()
            .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
        self.paint(NAME_COLOURS[hash as usize % NAME_COLOURS.len()], name)
    }

    fn ts(&self, ts: &str) -> String {
        self.paint("2", &format!("[{ts}]"))
    }

    /// One line for `event`, or `None` for events that are not shown as chat
    /// lines (login progress, the end of the session).
    pub fn event(&self, event: &ClientEvent, now: &str, me: &str) -> Option<String> {
        Some(match event {
            ClientEvent::Message { ts, user, text } => match text.strip_prefix("/me ") {
                Some(action) => format!("{} * {} {action}", self.ts(ts), self.name(user)),
                None => format!("{} {}: {text}", self.ts(ts), self.name(user)),
            },
            ClientEvent::Pm {
                ts,
                from_user,
                text,
            } => format!(
                "{} {}",
                self.ts(ts),
                self.paint("1;33", &format!("PM from {from_user}: {text}"))
            ),
            ClientEvent::PmSent { to, text } => format!(
                "{} {}",
                self.ts(now),
                self.paint("33", &format!("PM to {to}: {text}"))
            ),
            ClientEvent::System { ts, text } if ts.is_empty() => {
                self.paint("32", &format!("*** {text} ***"))
            }
            ClientEvent::System { ts, text } => {
                format!(
                    "{} {}",
                    self.ts(ts),
                    self.paint("32", &format!("*** {text} ***"))
                )
            }
            ClientEvent::Notice(text) => {
                format!(
                    "{} {}",
                    self.ts(now),
                    self.paint("1;31", &format!("! {text}"))
                )
            }
            ClientEvent::ActionSent { text } => {
                format!("{} * {} {text}", self.ts(now), self.name(me))
            }
            ClientEvent::AwaitingApproval { code } => {
                self.info(&format!("Waiting for the host to approve... code {code}"))
            }
            ClientEvent::Joined { .. }
            | ClientEvent::Roster { .. }
            | ClientEvent::Presence { .. }
            | ClientEvent::Sent { .. }
            | ClientEvent::Queued { .. }
            | ClientEvent::Secured { .. }
            | ClientEvent::ConfirmServerKey { .. }
            | ClientEvent::Clear
            | ClientEvent::PasswordRequired
            | ClientEvent::Refused { .. }
            | ClientEvent::Disconnected { .. } => return None,
        })
    }

    pub fn info(&self, text: &str) -> String {
        self.paint("36", text)
    }

    pub fn error(&self, text: &str) -> String {
        self.paint("1;31", text)
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
        }
    }

    #[test]
    fn plain_lines() {
        let s = Style { colour: false };
        assert_eq!(
            s.event(&msg("Alice", "hi"), "x", "me").unwrap(),
            "[14:22] Alice: hi"
        );
        assert_eq!(
            s.event(&msg("Alice", "/me waves"), "x", "me").unwrap(),
            "[14:22] * Alice waves"
        );
        let pm = ClientEvent::Pm {
            ts: "14:22".into(),
            from_user: "Alice".into(),
            text: "psst".into(),
        };
        assert_eq!(
            s.event(&pm, "x", "me").unwrap(),
            "[14:22] PM from Alice: psst"
        );
        let sys = ClientEvent::System {
            ts: "14:22".into(),
            text: "Bob joined from 10.0.0.2.".into(),
        };
        assert_eq!(
            s.event(&sys, "x", "me").unwrap(),
            "[14:22] *** Bob joined from 10.0.0.2. ***"
        );
        assert!(!s.event(&sys, "x", "me").unwrap().contains('\x1b'));
    }

    #[test]
    fn colours_are_stable_per_name() {
        let s = Style { colour: true };
        assert_eq!(s.name("alice"), s.name("alice"));
        assert!(s.name("alice").starts_with("\x1b["));
        assert_eq!(s.name("Alice"), s.name("alice").replace("alice", "Alice"));
    }

    #[test]
    fn bell_on_pm_and_mention_only() {
        assert!(wants_bell(&msg("Bob", "hey alice, look"), "Alice"));
        assert!(!wants_bell(&msg("Bob", "malice"), "Alice"));
        assert!(!wants_bell(&msg("Alice", "I am Alice"), "Alice"));
    }
}
