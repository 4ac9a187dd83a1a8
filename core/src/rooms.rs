//! Room names, as both ends check them.
//!
//! A room is named `#` and 1 to 32 letters, digits, `-` or `_` (`#team-2`).
//! Names compare without regard to case, as user names do: `#Team` and
//! `#team` are one room, shown as its creator spelled it. The same rules run
//! on the server (which refuses a bad name) and in the client (which
//! completes and switches between names), so they live here.

/// Where everyone starts, and the only room LanTalk 2.0 clients know.
pub const LOBBY: &str = "#lobby";

/// Longest room name, in characters after the `#`.
pub const MAX_ROOM_CHARS: usize = 32;

/// Why a room name was refused (its `Display` is the sentence shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRoomName {
    NoHash,
    Empty,
    TooLong,
    /// A character that is not a letter, a digit, `-` or `_`.
    Character(char),
}

impl std::fmt::Display for BadRoomName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadRoomName::NoHash => f.write_str("a room name starts with # (as in #team)"),
            BadRoomName::Empty => f.write_str("a room name needs something after the #"),
            BadRoomName::TooLong => write!(
                f,
                "a room name has at most {MAX_ROOM_CHARS} characters after the #"
            ),
            BadRoomName::Character(c) => write!(
                f,
                "a room name holds only letters, digits, - and _ (not {:?})",
                crate::text::visible(&c.to_string())
            ),
        }
    }
}

/// Checks `name` (with its `#`).
pub fn validate_room(name: &str) -> Result<(), BadRoomName> {
    let rest = name.strip_prefix('#').ok_or(BadRoomName::NoHash)?;
    if rest.is_empty() {
        return Err(BadRoomName::Empty);
    }
    if rest.chars().count() > MAX_ROOM_CHARS {
        return Err(BadRoomName::TooLong);
    }
    match rest
        .chars()
        .find(|&c| !(c.is_alphanumeric() || c == '-' || c == '_'))
    {
        Some(c) => Err(BadRoomName::Character(c)),
        None => Ok(()),
    }
}

/// The form two spellings of one room share.
pub fn room_key(name: &str) -> String {
    name.to_lowercase()
}

/// Whether `word` looks meant as a room (starts with `#`), valid or not.
pub fn is_room_word(word: &str) -> bool {
    word.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "#lobby",
            "#a",
            "#team-2",
            "#x_y",
            "#Équipe",
            &format!("#{}", "a".repeat(32)),
        ] {
            assert_eq!(validate_room(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_room("lobby"), Err(BadRoomName::NoHash));
        assert_eq!(validate_room("#"), Err(BadRoomName::Empty));
        assert_eq!(
            validate_room(&format!("#{}", "a".repeat(33))),
            Err(BadRoomName::TooLong)
        );
        assert_eq!(validate_room("#a b"), Err(BadRoomName::Character(' ')));
        assert_eq!(
            validate_room("#a\u{1b}"),
            Err(BadRoomName::Character('\u{1b}'))
        );
        assert_eq!(validate_room("##"), Err(BadRoomName::Character('#')));
        assert_eq!(room_key("#Team"), room_key("#team"));
    }

    #[test]
    fn a_refusal_shows_a_control_character_safely() {
        let shown = BadRoomName::Character('\u{1b}').to_string();
        assert!(!shown.contains('\u{1b}'), "{shown:?}");
    }
}
