//! The line editor for terminals: history, Emacs keys (Ctrl-A/E/W/U), Tab
//! completion of commands and user names, and output printed *above* the
//! prompt so incoming chat never scrambles a half-typed line.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use reedline::{
    default_emacs_keybindings, ColumnarMenu, Completer, CompletionResult, Emacs, ExternalPrinter,
    KeyCode, KeyModifiers, MenuBuilder, Prompt, PromptEditMode, PromptHistorySearch, Reedline,
    ReedlineEvent, ReedlineMenu, Signal, Span, Suggestion,
};

use lantalk_core::text::visible;

use crate::style::Style;
use crate::term;

/// Names known to be online, for completion; shared with whoever watches the
/// chat.
pub type Names = Arc<Mutex<BTreeSet<String>>>;

/// A prompt the chat keeps current from another thread (the room spoken in,
/// unread counts); empty: the editor's own.
pub type LivePrompt = Arc<Mutex<LiveText>>;

/// The text of a [`LivePrompt`], and how to have the editor redraw it in
/// place (the half-typed line stays as it is).
#[derive(Default)]
pub struct LiveText {
    text: String,
    /// Lines shown above the prompt (transfers under way).
    status: Vec<String>,
    repaint: Option<Box<dyn Fn() + Send>>,
}

impl LiveText {
    /// Shows `text` as the prompt from now on.
    pub fn set(&mut self, text: String) {
        if text != self.text {
            self.text = text;
            if let Some(repaint) = &self.repaint {
                repaint();
            }
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Shows `lines` above the prompt from now on (none: just the prompt).
    pub fn set_status(&mut self, lines: Vec<String>) {
        if lines != self.status {
            self.status = lines;
            if let Some(repaint) = &self.repaint {
                repaint();
            }
        }
    }

    pub fn status(&self) -> &[String] {
        &self.status
    }
}

/// What the user did at the prompt.
pub enum Input {
    Line(String),
    /// Ctrl-C: leave.
    Interrupt,
    /// Ctrl-D on an empty line: end of input.
    End,
    /// The chat asked the editor to let go (the connection was lost), with
    /// what was half typed.
    Break(String),
}

pub struct LineEditor {
    rl: Reedline,
    prompt: ChatPrompt,
}

/// What completes besides commands: people online, and rooms (`#...`).
#[derive(Clone, Default)]
pub struct Completions {
    pub names: Names,
    pub rooms: Names,
    /// Commands besides the built-in ones: the server's plugins' (`/roll`).
    pub commands: Names,
}

impl LineEditor {
    /// An editor prompting `prompt`, completing `commands` and the names in
    /// `names`. Everything printed through [`term::print`] appears above the
    /// prompt while the editor lives.
    pub fn new(
        style: Style,
        prompt: String,
        commands: &'static [&'static str],
        names: Names,
    ) -> Self {
        Self::with(
            style,
            prompt,
            commands,
            Completions {
                names,
                ..Completions::default()
            },
            None,
            None,
        )
    }

    /// [`LineEditor::new`] with rooms to complete, Alt-1..9 to switch
    /// between them, and a prompt kept current by the chat (`live`).
    pub fn with(
        style: Style,
        prompt: String,
        commands: &'static [&'static str],
        completions: Completions,
        live: Option<LivePrompt>,
        stop: Option<Arc<AtomicBool>>,
    ) -> Self {
        let mut keys = default_emacs_keybindings();
        if live.is_some() {
            // Alt-N speaks in the N-th room, as `/switch N` would.
            for n in 1..=9u8 {
                keys.add_binding(
                    KeyModifiers::ALT,
                    KeyCode::Char(char::from(b'0' + n)),
                    ReedlineEvent::ExecuteHostCommand(format!("/switch {n}")),
                );
            }
        }
        keys.add_binding(
            KeyModifiers::NONE,
            KeyCode::Tab,
            ReedlineEvent::UntilFound(vec![
                ReedlineEvent::Menu("completion".into()),
                ReedlineEvent::MenuNext,
            ]),
        );
        let menu = ColumnarMenu::default().with_name("completion");
        let printer = ExternalPrinter::new(4096);
        term::set_printer(Some(printer.sender()));
        let mut rl = Reedline::create();
        if let Some(stop) = stop {
            rl = rl.with_break_signal(stop);
        }
        if let Some(live) = &live {
            let signal = rl.repaint_signal();
            live.lock().unwrap_or_else(|e| e.into_inner()).repaint =
                Some(Box::new(move || signal.request_repaint()));
        }
        // A submitted line stays on screen with its prompt but without the
        // status lines (progress bars): they belong to the line being typed,
        // and would otherwise be left behind in the scrollback.
        let transient = ChatPrompt {
            text: prompt.clone(),
            colour: style.colour,
            live: live.clone(),
            status_lines: false,
        };
        let rl = rl
            .with_transient_prompt(Box::new(transient))
            .with_edit_mode(Box::new(Emacs::new(keys)))
            .with_completer(Box::new(Completion {
                commands,
                names: completions.names,
                rooms: completions.rooms,
                more: completions.commands,
            }))
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
            .with_quick_completions(true)
            .with_partial_completions(true)
            .with_external_printer(printer)
            .with_ansi_colors(style.colour);
        LineEditor {
            rl,
            prompt: ChatPrompt {
                text: prompt,
                colour: style.colour,
                live,
                status_lines: true,
            },
        }
    }

    pub fn readline(&mut self) -> Input {
        match self.rl.read_line(&self.prompt) {
            // Alt-N: the `/switch N` it stands for; what was being typed
            // stays in the editor for the next read.
            Ok(Signal::Success(line) | Signal::HostCommand(line)) => Input::Line(line),
            Ok(Signal::CtrlC) => Input::Interrupt,
            Ok(Signal::ExternalBreak(half)) => Input::Break(half),
            Ok(_) | Err(_) => Input::End,
        }
    }
}

impl Drop for LineEditor {
    fn drop(&mut self) {
        if let Some(live) = &self.prompt.live {
            live.lock().unwrap_or_else(|e| e.into_inner()).repaint = None;
        }
        term::set_printer(None);
    }
}

/// Leaves raw mode from any thread, for when the program must exit while a
/// line is being edited (the editor restores the terminal only on return).
pub fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
}

/// Status rows the prompt drew above its line at its last paint, and
/// whether a message printed since has cleared them already.
static STATUS_ROWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static STATUS_CLEARED: AtomicBool = AtomicBool::new(true);

/// What a message printed above the prompt starts with: reedline's printer
/// erases only the prompt's last row before it prints, so status lines
/// drawn above that row (progress bars) would stay behind in the
/// scrollback. The first message after a paint moves up over them and
/// clears to the end of the screen; the prompt is drawn again below it.
pub fn clear_status_rows() -> String {
    use std::sync::atomic::Ordering;
    let rows = STATUS_ROWS.load(Ordering::SeqCst);
    if rows == 0 || STATUS_CLEARED.swap(true, Ordering::SeqCst) {
        return String::new();
    }
    format!("\x1b[{rows}A\r\x1b[J")
}

struct ChatPrompt {
    text: String,
    colour: bool,
    live: Option<LivePrompt>,
    /// Whether the live status lines are drawn above the prompt.
    status_lines: bool,
}

impl ChatPrompt {
    fn current(&self) -> String {
        let live = self
            .live
            .as_ref()
            .map(|l| {
                l.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .text()
                    .to_string()
            })
            .unwrap_or_default();
        if live.is_empty() {
            self.text.clone()
        } else {
            live
        }
    }
}

impl ChatPrompt {
    /// The status lines, each made safe and dimmed, each ending its row.
    fn status(&self) -> String {
        let Some(live) = self.live.as_ref().filter(|_| self.status_lines) else {
            return String::new();
        };
        let live = live.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for line in live.status() {
            let line = visible(line);
            if self.colour {
                out.push_str(&format!("\x1b[2m{line}\x1b[0m\n"));
            } else {
                out.push_str(&format!("{line}\n"));
            }
        }
        out
    }
}

impl Prompt for ChatPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        use std::sync::atomic::Ordering;
        let current = self.current();
        let text = visible(&current);
        let status = self.status();
        // Rendered to be painted (the submitted line's prompt has none).
        let rows = status.matches('\n').count();
        STATUS_ROWS.store(rows, Ordering::SeqCst);
        STATUS_CLEARED.store(rows == 0, Ordering::SeqCst);
        if self.colour {
            Cow::Owned(format!("{status}\x1b[1;36m{text}\x1b[0m"))
        } else {
            Cow::Owned(format!("{status}{text}"))
        }
    }

    /// Blank, but as long as the prompt less three: reedline sizes the
    /// half-typed line, when it prints a message above it, from the length of
    /// the *right* prompt plus three, ignoring the left one. Without this a
    /// half-typed line that wraps loses the message printed above it.
    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Owned(" ".repeat(self.current().chars().count().saturating_sub(3)))
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        Cow::Owned(format!("(search: {}) ", visible(&search.term)))
    }
}

struct Completion {
    commands: &'static [&'static str],
    names: Names,
    rooms: Names,
    /// Plugins' commands, kept current by the chat.
    more: Names,
}

impl Completer for Completion {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        CompletionResult::fresh(self.suggest(line, pos))
    }
}

impl Completion {
    fn suggest(&self, line: &str, pos: usize) -> Vec<Suggestion> {
        let before = &line[..pos.min(line.len())];
        let start = before
            .rfind(char::is_whitespace)
            .map(|i| i + before[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        let word = &before[start..];
        let lower = word.to_lowercase();
        let span = Span::new(start, pos);
        let suggest = |value: String| Suggestion {
            value,
            span,
            append_whitespace: true,
            ..Suggestion::default()
        };
        if start == 0 && word.starts_with('/') {
            let more = self.more.lock().unwrap_or_else(|e| e.into_inner());
            let mut found: Vec<String> = self
                .commands
                .iter()
                .map(|c| c.to_string())
                .chain(more.iter().cloned())
                .filter(|c| c.starts_with(&lower))
                .collect();
            found.sort_unstable();
            found.dedup();
            return found.into_iter().map(suggest).collect();
        }
        if word.is_empty() {
            return Vec::new();
        }
        if word.starts_with('#') {
            let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            return rooms
                .iter()
                .filter(|r| r.to_lowercase().starts_with(&lower))
                .map(|r| suggest(r.clone()))
                .collect();
        }
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .iter()
            .filter(|n| n.to_lowercase().starts_with(&lower))
            .map(|n| {
                suggest(if start == 0 {
                    format!("{n}:")
                } else {
                    n.clone()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(names: &[&str]) -> Completion {
        Completion {
            commands: &["/help", "/join", "/pm", "/quit", "/users"],
            names: Arc::new(Mutex::new(names.iter().map(|s| s.to_string()).collect())),
            rooms: Arc::new(Mutex::new(
                ["#lobby", "#Team", "#tea"].map(String::from).into(),
            )),
            more: Arc::new(Mutex::new(["/roll", "/poll"].map(String::from).into())),
        }
    }

    fn values(s: Vec<Suggestion>) -> Vec<String> {
        s.into_iter().map(|s| s.value).collect()
    }

    impl Completion {
        fn complete(&mut self, line: &str, pos: usize) -> Vec<Suggestion> {
            self.suggest(line, pos)
        }
    }

    #[test]
    fn completes_commands_then_names() {
        let mut c = completion(&["Alice", "albert", "Bob"]);
        assert_eq!(values(c.complete("/p", 2)), ["/pm", "/poll"]);
        assert_eq!(values(c.complete("/r", 2)), ["/roll"]);
        assert_eq!(values(c.complete("/pm al", 6)), ["Alice", "albert"]);
        assert_eq!(c.complete("/pm al", 6)[0].span, Span::new(4, 6));
        assert_eq!(values(c.complete("bo", 2)), ["Bob:"]);
        assert!(c.complete("", 0).is_empty());
        assert_eq!(values(c.complete("/join #te", 9)), ["#Team", "#tea"]);
        assert_eq!(values(c.complete("/join #LO", 9)), ["#lobby"]);
    }
}
