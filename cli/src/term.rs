//! The only way this program writes to the terminal (or to a pipe in its
//! place): whole [`Line`]s, written from several threads without interleaving.
//!
//! Nothing here writes a string as it is. A [`Line`] renders each piece of
//! text through [`lantalk_core::text::visible`], so a peer's or a server's
//! text can never act on the terminal (clear it, set its title, move the
//! cursor, fake a line); the only escape codes written are our own colours
//! and the deliberate operations below ([`clear_screen`], [`print_ringing`]'s
//! bell). A plain `str` is taken too, for our own fixed text (banners, help,
//! errors from the system): it is split at its line breaks and every line is
//! made visible all the same, but since its line breaks are kept, text from
//! outside goes in a [`Line`] (where a line break shows as `␊`), never in a
//! `str`.

use std::io::{self, Write};

use crate::style::Line;

/// What can be printed: lines, rendered safe.
pub trait Lines {
    /// Every line, rendered (made visible, coloured), without line breaks.
    fn rendered(&self) -> Vec<String>;
}

impl Lines for Line {
    fn rendered(&self) -> Vec<String> {
        vec![self.render()]
    }
}

impl Lines for [Line] {
    fn rendered(&self) -> Vec<String> {
        self.iter().map(Line::render).collect()
    }
}

impl Lines for Vec<Line> {
    fn rendered(&self) -> Vec<String> {
        self.as_slice().rendered()
    }
}

/// Our own text only (see the module's documentation).
impl Lines for str {
    fn rendered(&self) -> Vec<String> {
        crate::style::lines(self).rendered()
    }
}

impl Lines for String {
    fn rendered(&self) -> Vec<String> {
        self.as_str().rendered()
    }
}

/// Prints `lines`, each with a line break, to standard output as one write;
/// while a line editor is active, above its prompt.
pub fn print<L: Lines + ?Sized>(lines: &L) {
    emit(lines.rendered().join("\n"), true);
}

/// Prints `line` and then rings the terminal's bell (a mention, a private
/// message, a question for the operator).
pub fn print_ringing(line: &Line) {
    let mut text = line.render();
    text.push('\x07');
    emit(text, true);
}

/// Clears the screen and puts the cursor at the top (`/clear`).
pub fn clear_screen() {
    emit("\x1b[2J\x1b[H".to_string(), false);
}

/// Prints `question` with no line break after it, for an answer typed on
/// the same row (not through the line editor).
pub fn prompt(question: &Line) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(question.render().as_bytes());
    let _ = out.flush();
}

/// Prints `lines`, each with a line break, to standard error as one write.
pub fn eprint<L: Lines + ?Sized>(lines: &L) {
    let mut text = String::new();
    for line in lines.rendered() {
        text.push_str(&line);
        text.push('\n');
    }
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Writes `text` (already rendered: safe) to the line editor's printer or to
/// standard output; `newline` ends it with a line break.
fn emit(text: String, newline: bool) {
    if let Some(printer) = PRINTER.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        // The printer shows each message as a line of its own above the
        // prompt; it adds the line break itself. It knows only the prompt's
        // last row: status lines drawn above it are cleared first.
        let message = format!("{}{text}", crate::editor::clear_status_rows());
        if printer.send(message).is_ok() {
            return;
        }
    }
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if newline {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Calls `each` with every line of standard input (invalid UTF-8 replaced,
/// line ending removed) until end of input or a read error.
pub fn for_each_stdin_line(mut each: impl FnMut(String)) {
    use std::io::BufRead;
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                each(String::from_utf8_lossy(&buf).into_owned());
            }
        }
    }
}

type Printer = std::sync::mpsc::SyncSender<String>;

/// Where [`print`] goes while a line editor owns the terminal.
static PRINTER: std::sync::Mutex<Option<Printer>> = std::sync::Mutex::new(None);

/// Routes [`print`] through a line editor's printer (or back to stdout).
pub fn set_printer(printer: Option<Printer>) {
    *PRINTER.lock().unwrap_or_else(|e| e.into_inner()) = printer;
}
