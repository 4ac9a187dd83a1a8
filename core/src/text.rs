//! Text from the network made safe to show on a terminal.
//!
//! Everything a peer or a server sends (chat text, user and server names,
//! time stamps, reasons) may contain characters a terminal acts on instead of
//! showing: escape sequences that clear the screen or set the window title, a
//! carriage return that overwrites the start of the line, a newline that fakes
//! a second line, bidirectional overrides that reorder what a line appears to
//! say. [`visible`] turns every such character into a visible stand-in, so a
//! program can print the result and be sure the terminal only shows it.

use std::borrow::Cow;

/// Whether `c` is one [`visible`] replaces: a C0 control (U+0000-U+001F,
/// newline, carriage return and tab included), DEL (U+007F), a C1 control
/// (U+0080-U+009F), a bidirectional or invisible format control (U+061C
/// ARABIC LETTER MARK, U+200E/U+200F LEFT-TO-RIGHT/RIGHT-TO-LEFT MARK,
/// U+202A-U+202E embeddings and overrides, U+2066-U+2069 isolates), or a
/// line or paragraph separator (U+2028, U+2029).
pub fn is_forbidden(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `s` as it may be written to a terminal (or a log, or a pipe) without the
/// terminal acting on any of it: every character [`is_forbidden`] accepts is
/// replaced by a visible form, everything else is kept as it is.
///
/// The visible forms:
/// - a tab becomes one space (it only moves the cursor, and one space keeps
///   the line readable);
/// - every other C0 control becomes its Unicode control picture, U+2400 plus
///   its code: ESC shows as `␛`, newline as `␊`, carriage return as `␍`, NUL
///   as `␀`;
/// - DEL becomes `␡` (U+2421);
/// - a C1 control, a bidirectional or invisible format control and the line
///   and paragraph separators become their code point in angle brackets,
///   `<U+XXXX>` (four upper-case hex digits): U+202E shows as `<U+202E>`.
///
/// The result never contains a forbidden character, so a chat line stays one
/// line, and it is borrowed (no allocation) when `s` contains none: this runs
/// on every line printed. A string that already reads `<U+202E>` or `␛` is left
/// alone; the forms are for people to read, not to be decoded.
pub fn visible(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(is_forbidden) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        push_visible(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_visible(out: &mut String, c: char) {
    match c {
        '\t' => out.push(' '),
        '\u{0}'..='\u{1f}' => {
            out.push(char::from_u32(0x2400 + c as u32).expect("control pictures are chars"))
        }
        '\u{7f}' => out.push('\u{2421}'),
        c if is_forbidden(c) => {
            use std::fmt::Write;
            let _ = write!(out, "<U+{:04X}>", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_and_unchanged() {
        for s in [
            "",
            "hello",
            "héllo wörld",
            "日本語 ok",
            "emoji 👍🏽 ‍",
            "[14:22] Bob: hi",
        ] {
            assert!(matches!(visible(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn escape_sequences_show_as_control_pictures() {
        assert_eq!(visible("\x1b[2J"), "␛[2J");
        assert_eq!(visible("\x1b]0;PWNED\x07"), "␛]0;PWNED␇");
        assert_eq!(visible("a\rb"), "a␍b");
        assert_eq!(visible("x\ny"), "x␊y");
        assert_eq!(visible("\0"), "␀");
        assert_eq!(visible("\x1f"), "␟");
        assert_eq!(visible("del\x7f"), "del␡");
    }

    #[test]
    fn tab_is_one_space() {
        assert_eq!(visible("a\tb"), "a b");
    }

    #[test]
    fn c1_bidi_and_separators_show_as_code_points() {
        assert_eq!(visible("\u{9b}2J"), "<U+009B>2J");
        assert_eq!(visible("\u{80}\u{85}\u{9f}"), "<U+0080><U+0085><U+009F>");
        assert_eq!(visible("abc\u{202e}fed"), "abc<U+202E>fed");
        for c in [
            '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2028}', '\u{2029}',
        ] {
            let s = c.to_string();
            assert_eq!(visible(&s), format!("<U+{:04X}>", c as u32));
        }
    }

    #[test]
    fn neighbours_of_the_forbidden_ranges_are_kept() {
        for c in [
            ' ', '~', '\u{a0}', '\u{61b}', '\u{61d}', '\u{200d}', '\u{2027}', '\u{202f}',
            '\u{2065}', '\u{206a}', '\u{2400}',
        ] {
            let s = c.to_string();
            assert_eq!(visible(&s), s, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn every_forbidden_char_is_replaced_and_nothing_forbidden_remains() {
        for n in 0..=0x10ffffu32 {
            let Some(c) = char::from_u32(n) else { continue };
            let s = format!("a{c}b");
            let out = visible(&s);
            assert!(!out.contains(is_forbidden), "U+{n:04X} -> {out:?}");
            assert_eq!(is_forbidden(c), out != s, "U+{n:04X}");
        }
    }
}
