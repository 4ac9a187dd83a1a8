//! Writing to the terminal from several threads without interleaving lines.

use std::io::{self, Write};

/// Prints `text` to standard output as one write, and flushes it; while a
/// line editor is active, above its prompt.
pub fn print(text: &str) {
    if let Some(printer) = PRINTER.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if printer
            .send(text.trim_end_matches('\n').to_string())
            .is_ok()
        {
            return;
        }
    }
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints `text` to standard error as one write.
pub fn eprint(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
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
