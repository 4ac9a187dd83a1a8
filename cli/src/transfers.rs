//! Progress of file transfers on a terminal: one indicatif bar per transfer
//! (rate, ETA), drawn in the prompt's area above the line being typed.
//!
//! indicatif draws by moving a terminal's cursor and relying on it to wrap
//! lines; the line editor owns the real terminal, so indicatif draws into
//! [`Screen`], a small model of a terminal, and what it shows becomes the
//! status lines of the live prompt ([`crate::editor::LiveText::set_status`]),
//! which the editor repaints in place. Nothing is printed between chat
//! lines, and the half-typed line is never touched.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use lantalk_core::client::{ClientEvent, Progress};
use lantalk_core::text::visible;

use crate::editor::LivePrompt;

/// Redraws per second at most.
const REFRESH_HZ: u8 = 4;
/// Characters of a file's name shown beside its bar.
const NAME_WIDTH: usize = 32;
/// How long a finished transfer's bar stays: the line saying it finished
/// is printed first, while the status lines are still as painted (see
/// [`crate::editor::clear_status_rows`]).
const LINGER: Duration = Duration::from_millis(400);

/// `name` in at most `width` characters: a long one keeps its start and
/// its end (`very-long-na…ame.pdf`), where the extension is.
fn short(name: &str, width: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= width {
        return format!("{name:<width$}");
    }
    let tail = width / 3;
    let head = width - tail - 1;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// The bars of the transfers under way.
pub struct Bars {
    multi: MultiProgress,
    bars: HashMap<(u64, bool), ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    /// Bars drawn into `prompt`'s status lines.
    pub fn for_prompt(prompt: LivePrompt) -> Bars {
        let width = crossterm::terminal::size()
            .map(|(w, _)| w)
            .unwrap_or(80)
            .saturating_sub(1)
            .max(40);
        let screen = Screen {
            width,
            state: Mutex::new(State::default()),
            prompt,
        };
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(screen), REFRESH_HZ);
        let style = ProgressStyle::with_template(
            "{prefix} {msg} [{bar:24}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
            style,
        }
    }

    /// Follows a client event: a bar appears with a transfer's first
    /// progress and goes when it ends.
    pub fn observe(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::Transfer(Progress {
                id,
                name,
                upload,
                done,
                total,
            }) => {
                let bar = self.bars.entry((*id, *upload)).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new(*total));
                    bar.set_style(self.style.clone());
                    bar.set_prefix(if *upload { "up  " } else { "down" });
                    bar.set_message(short(&visible(name), NAME_WIDTH));
                    // The first position is where an earlier try stopped:
                    // the rate counts only what moves now.
                    bar.set_position(*done);
                    bar.reset_eta();
                    bar.enable_steady_tick(Duration::from_millis(500));
                    bar
                });
                bar.set_position(*done);
            }
            ClientEvent::TransferDone { id, upload, .. }
            | ClientEvent::TransferFailed {
                id: Some(id),
                upload,
                ..
            } => {
                if let Some(bar) = self.bars.remove(&(*id, *upload)) {
                    let multi = self.multi.clone();
                    let _ = std::thread::Builder::new()
                        .name("bar".into())
                        .spawn(move || {
                            std::thread::sleep(LINGER);
                            bar.finish_and_clear();
                            multi.remove(&bar);
                        });
                }
            }
            ClientEvent::Disconnected { .. } => {
                for (_, bar) in self.bars.drain() {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            _ => {}
        }
    }
}

/// A terminal in memory, as wide as the real one: indicatif writes and
/// moves the cursor; each flush hands the rows to the prompt.
struct Screen {
    width: u16,
    state: Mutex<State>,
    prompt: LivePrompt,
}

#[derive(Default)]
struct State {
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
}

impl State {
    fn put(&mut self, c: char, width: usize) {
        match c {
            '\r' => self.col = 0,
            '\n' => {
                self.row += 1;
                self.col = 0;
            }
            c => {
                // Like a terminal, wrap only when the next character comes:
                // a line that fills the width leaves the cursor on it.
                if self.col >= width {
                    self.row += 1;
                    self.col = 0;
                }
                while self.rows.len() <= self.row {
                    self.rows.push(Vec::new());
                }
                let row = &mut self.rows[self.row];
                while row.len() <= self.col {
                    row.push(' ');
                }
                row[self.col] = c;
                self.col += 1;
            }
        }
    }
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen")
            .field("width", &self.width)
            .finish()
    }
}

impl Screen {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TermLike for Screen {
    fn width(&self) -> u16 {
        self.width
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        let mut s = self.state();
        s.row = s.row.saturating_sub(n);
        Ok(())
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.state().row += n;
        Ok(())
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.state().col += n;
        Ok(())
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        let mut s = self.state();
        s.col = s.col.saturating_sub(n);
        Ok(())
    }

    fn write_line(&self, line: &str) -> io::Result<()> {
        self.write_str(line)?;
        let mut s = self.state();
        s.row += 1;
        s.col = 0;
        Ok(())
    }

    fn write_str(&self, text: &str) -> io::Result<()> {
        let width = usize::from(self.width);
        let mut s = self.state();
        for c in text.chars() {
            s.put(c, width);
        }
        Ok(())
    }

    fn clear_line(&self) -> io::Result<()> {
        let mut s = self.state();
        let row = s.row;
        if let Some(r) = s.rows.get_mut(row) {
            r.clear();
        }
        s.col = 0;
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let lines: Vec<String> = {
            let s = self.state();
            let mut lines: Vec<String> = s
                .rows
                .iter()
                .map(|r| r.iter().collect::<String>().trim_end().to_string())
                .collect();
            while lines.last().is_some_and(String::is_empty) {
                lines.pop();
            }
            lines
        };
        self.prompt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_status(lines);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_their_ends() {
        assert_eq!(short("a.pdf", 8), "a.pdf   ");
        let s = short("quarterly-report-final-v2.pdf", 12);
        assert_eq!(s.chars().count(), 12);
        assert!(s.starts_with("quarter") && s.ends_with(".pdf"), "{s}");
    }

    #[test]
    fn the_screen_keeps_what_indicatif_draws_last() {
        let prompt = crate::rooms::live_prompt();
        let screen = Screen {
            width: 10,
            state: Mutex::new(State::default()),
            prompt: prompt.clone(),
        };
        // Two bar lines, padded to the width so that the next one wraps.
        screen.write_str("a 10%     b 20%     ").unwrap();
        screen.flush().unwrap();
        assert_eq!(
            prompt.lock().unwrap().status(),
            ["a 10%".to_string(), "b 20%".to_string()]
        );
        // The next tick: back up to the first line, redraw over it.
        screen.move_cursor_up(1).unwrap();
        screen.write_str("\r").unwrap();
        screen.write_str("a 50%     ").unwrap();
        screen.flush().unwrap();
        assert_eq!(
            prompt.lock().unwrap().status(),
            ["a 50%".to_string(), "b 20%".to_string()]
        );
        // A line cleared and left empty goes.
        screen.move_cursor_down(1).unwrap();
        screen.clear_line().unwrap();
        screen.flush().unwrap();
        assert_eq!(prompt.lock().unwrap().status(), ["a 50%".to_string()]);
    }
}
