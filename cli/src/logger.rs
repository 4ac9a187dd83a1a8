//! Log lines in LanTalk's format, `[HH:MM:SS] LEVEL  message` on the console
//! and `[2026-12-04T15:42:17+01:00] LEVEL  message` (ISO 8601 local time with
//! its offset) in `lantalk.log` in the data directory. Messages carry text
//! from peers (names, chat at debug level): both go through
//! [`Line`](crate::style::Line), which shows control characters as visible
//! forms, so neither the console nor the file ever holds a raw one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use lantalk_core::server::Level;

use crate::style::Line;

pub struct Logger {
    level: Level,
    file: Option<File>,
}

impl Logger {
    /// A logger at `level`, appending to `path`; if the file cannot be opened
    /// the console still gets everything and the reason is returned.
    pub fn open(level: Level, path: &Path) -> (Logger, Option<io::Error>) {
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => (
                Logger {
                    level,
                    file: Some(file),
                },
                None,
            ),
            Err(e) => (Logger { level, file: None }, Some(e)),
        }
    }

    pub fn log(&mut self, level: Level, message: &str) {
        if level < self.level {
            return;
        }
        crate::term::print(&Line::plain(format!(
            "[{}] {}  {message}",
            chrono::Local::now().format("%H:%M:%S"),
            level.as_str()
        )));
        self.write(&Self::file_line(level, message));
    }

    /// Logs to `lantalk.log` only: for lines the console shows otherwise.
    pub fn log_to_file(&mut self, level: Level, message: &str) {
        if level >= self.level {
            self.write(&Self::file_line(level, message));
        }
    }

    /// One line of `lantalk.log`, line break included.
    fn file_line(level: Level, message: &str) -> String {
        Self::file_line_at(&chrono::Local::now(), level, message)
    }

    fn file_line_at<Tz: chrono::TimeZone>(
        at: &chrono::DateTime<Tz>,
        level: Level,
        message: &str,
    ) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        let line = Line::plain(format!(
            "[{}] {}  {message}",
            at.format("%Y-%m-%dT%H:%M:%S%:z"),
            level.as_str()
        ));
        line.render() + "\n"
    }

    fn write(&mut self, line: &str) {
        if let Some(f) = self.file.as_mut() {
            if f.write_all(line.as_bytes()).is_err() {
                // A full disk must not take the chat down; stop writing there.
                self.file = None;
                crate::term::eprint(&Line::plain(
                    "warning: cannot write lantalk.log any more; logging to the console only",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn file_lines_have_an_iso_date_and_no_controls() {
        let at = chrono::FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2026, 12, 4, 15, 42, 17)
            .unwrap();
        assert_eq!(
            Logger::file_line_at(&at, Level::Info, "Bob joined"),
            "[2026-12-04T15:42:17+01:00] INFO  Bob joined\n"
        );
        let line = Logger::file_line_at(&at, Level::Info, "\x1b]0;PWNED\x07x\ny\rz\u{202e}");
        assert_eq!(
            line,
            "[2026-12-04T15:42:17+01:00] INFO  ␛]0;PWNED␇x␊y␍z<U+202E>\n"
        );
    }
}
