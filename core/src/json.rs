//! Encoding JSON exactly as LanTalk 2.0 (Python's `json.dumps`) does.
//!
//! Byte compatibility matters for people who diff captures or grep logs made by
//! either implementation, and writing objects by hand lets a broadcast be
//! encoded once without building a `serde_json::Value` first.
//! Python's defaults: `", "` and `": "` separators, `ensure_ascii=True` (every
//! non-ASCII character as a lowercase `\uXXXX` escape, astral characters as
//! surrogate pairs).

use std::fmt::Write as _;

/// Builds one JSON object line (`{...}\n`) field by field.
pub struct ObjectWriter {
    out: String,
    first: bool,
}

impl ObjectWriter {
    pub fn new() -> Self {
        ObjectWriter::with_capacity(64)
    }

    pub fn with_capacity(cap: usize) -> Self {
        let mut out = String::with_capacity(cap);
        out.push('{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push_str(", ");
        }
        self.first = false;
        write_str(&mut self.out, key);
        self.out.push_str(": ");
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        write_str(&mut self.out, value);
        self
    }

    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// A value that is already JSON text (e.g. a nested object).
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    /// Closes the object and appends the line terminator.
    pub fn finish_line(mut self) -> String {
        self.out.push_str("}\n");
        self.out
    }
}

impl Default for ObjectWriter {
    fn default() -> Self {
        ObjectWriter::new()
    }
}

/// Appends `s` as a quoted JSON string in Python's `ensure_ascii` style.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_json_dumps() {
        // Expected strings produced by Python 3.11:
        // json.dumps({"type": "message", "ts": "14:22", "user": "Bob", "text": ...})
        let line = ObjectWriter::new()
            .str("type", "message")
            .str("ts", "14:22")
            .str("user", "Bob")
            .str("text", "h\u{e9}llo \"q\" \\ \n\t\u{1}\u{7f} \u{1F44B}")
            .finish_line();
        assert_eq!(
            line,
            "{\"type\": \"message\", \"ts\": \"14:22\", \"user\": \"Bob\", \
             \"text\": \"h\\u00e9llo \\\"q\\\" \\\\ \\n\\t\\u0001\\u007f \\ud83d\\udc4b\"}\n"
        );
    }

    #[test]
    fn output_is_valid_json_that_round_trips() {
        let text = "a\u{0}b\u{2028}c\u{10FFFF}\u{fffd}";
        let line = ObjectWriter::new()
            .str("text", text)
            .bool("x", false)
            .finish_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["text"], text);
        assert_eq!(v["x"], false);
    }
}
