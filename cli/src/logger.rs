//! Log lines in LanTalk's format, `[HH:MM:SS] LEVEL  message`, to the console
//! and to `lantalk.log` in the data directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use lantalk_core::server::Level;

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
        let line = Self::line(level, message);
        crate::term::print(&line);
        self.write(&line);
    }

    /// Logs to `lantalk.log` only: for lines the console shows otherwise.
    pub fn log_to_file(&mut self, level: Level, message: &str) {
        if level >= self.level {
            self.write(&Self::line(level, message));
        }
    }

    fn line(level: Level, message: &str) -> String {
        format!(
            "[{}] {}  {}\n",
            chrono::Local::now().format("%H:%M:%S"),
            level.as_str(),
            message
        )
    }

    fn write(&mut self, line: &str) {
        if let Some(f) = self.file.as_mut() {
            if f.write_all(line.as_bytes()).is_err() {
                // A full disk must not take the chat down; stop writing there.
                self.file = None;
                crate::term::eprint(
                    "warning: cannot write lantalk.log any more; logging to the console only\n",
                );
            }
        }
    }
}
