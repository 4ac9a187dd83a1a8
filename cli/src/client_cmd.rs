//! `client`: join a server.
//!
//! Two faces over the same core client. With standard input piped, every
//! input line is sent and every event is printed as one plain line. On a
//! terminal, a line editor keeps the user's half-typed line intact while chat
//! prints above it, and the errors a person can fix (name taken, wrong
//! password, lost connection) offer to try again instead of exiting.

use std::collections::BTreeSet;
use std::io::{ErrorKind, IsTerminal};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, LazyLock, Mutex};

use lantalk_core::client::{ClientConfig, ClientEvent, ClientSecure, NewKey, Refusal};
use lantalk_core::commands;
use lantalk_core::driver::{ClientHost, ClientOutcome, Command, Control};
use lantalk_core::names::validate_username;
use lantalk_core::text::is_forbidden;
use lantalk_os::Runtime;

use crate::args::{ClientArgs, DEFAULT_PORT};
use crate::editor::{Completions, Input, LineEditor, Names};
use crate::files;
use crate::keys::{self, KnownServers};
use crate::style::{colour_wanted, wants_bell, Line, Style};
use crate::term;

/// Commands offered by Tab completion.
/// Commands offered by Tab completion: the chat command table's.
static COMMANDS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| commands::names(&[commands::CHAT, commands::ROOMS]));

pub fn run<R: Runtime>(args: ClientArgs) -> ExitCode {
    match start::<R>(args) {
        Ok(code) => code,
        Err(msg) => {
            term::eprint(&Line::plain(format!("error: {msg}")));
            ExitCode::FAILURE
        }
    }
}

fn start<R: Runtime>(args: ClientArgs) -> Result<ExitCode, String> {
    let interactive = std::io::stdin().is_terminal();
    let server = match args.server.clone() {
        Some(s) => s,
        None if interactive => crate::menu::ask("Server address (host or host:port): ", |s| {
            resolve(s).map(|_| s.to_string())
        }),
        None => return Err("give the server to join, as HOST or HOST:PORT".into()),
    };
    let name = match args.name.clone() {
        Some(n) => n,
        None if interactive => crate::menu::ask("Display name: ", |s| {
            validate_username(s).map(|_| s.to_string())
        }),
        None => {
            return Err(
                "give your display name with --name NAME (standard input is not a \
                        terminal, so it cannot be asked for)"
                    .into(),
            )
        }
    };
    validate_username(&name).map_err(|e| format!("--name {name:?}: {e}"))?;
    let password = crate::password::from_args(&args.password)?;
    let addrs = resolve(&server)?;
    let trust = Trust {
        download_dir: args
            .download_dir
            .clone()
            .unwrap_or_else(crate::transfer_io::default_download_dir),
        data_dir: files::data_dir(args.data_dir.as_deref()).map_err(|e| e.to_string())?,
        addr_key: addr_key(&server)?,
        accept_new: args.accept_new,
        allow_plaintext: args.allow_plaintext,
    };
    if interactive {
        Ok(interactive_session::<R>(
            &server, &addrs, name, password, args.quiet, &trust,
        ))
    } else {
        piped_session::<R>(&server, &addrs, name, password, &trust)
    }
}

/// Everything about encryption and trust for one server.
struct Trust {
    data_dir: PathBuf,
    /// Where downloads are saved.
    download_dir: PathBuf,
    /// How the server is named in known_servers: `host:port`.
    addr_key: String,
    accept_new: bool,
    allow_plaintext: bool,
}

/// A worker for a session's file requests, saving downloads in
/// `download_dir` and answering through `control`.
fn file_worker(
    download_dir: &std::path::Path,
    control: &Control,
) -> Option<crate::transfer_io::FileWorker> {
    {
        let answer = control.clone();
        match crate::transfer_io::FileWorker::spawn(
            None,
            Some(download_dir.to_path_buf()),
            move |r| answer(Command::Files(Box::new(r))),
        ) {
            Ok(worker) => Some(worker),
            Err(e) => {
                term::eprint(&Line::plain(format!(
                    "warning: file transfers are unavailable: {e}"
                )));
                None
            }
        }
    }
}

impl Trust {
    /// The client configuration, with this machine's key and what is pinned
    /// for the server (read afresh: an earlier attempt may have pinned it).
    fn config(
        &self,
        name: &str,
        password: Option<String>,
        interactive: bool,
    ) -> Result<(ClientConfig, Pins), String> {
        let identity = keys::load_or_create(&self.data_dir.join("client_key"))?;
        let known = KnownServers::load(&self.data_dir.join("known_servers"))?;
        if let Some(warning) = known.damaged(&self.addr_key) {
            return Err(format!(
                "refusing to connect to {}: the key pinned for it cannot be read ({warning})",
                self.addr_key
            ));
        }
        let mut rng_seed = [0u8; 32];
        getrandom::getrandom(&mut rng_seed).map_err(|e| format!("no secure randomness: {e}"))?;
        let on_new_key = match (self.accept_new, interactive) {
            (true, _) => NewKey::Accept,
            (false, true) => NewKey::Ask,
            (false, false) => NewKey::Refuse,
        };
        let mut config = ClientConfig::new(name, password);
        config.ask_password = interactive;
        config.allow_plaintext = self.allow_plaintext;
        config.secure = Some(ClientSecure {
            identity,
            rng_seed,
            pinned: known.get(&self.addr_key).map(<[u8]>::to_vec),
            on_new_key,
        });
        let pins = Pins {
            known,
            addr_key: self.addr_key.clone(),
        };
        Ok((config, pins))
    }

    /// What to add to a refusal so the user knows what to do next: words
    /// for the end of its line, and maybe a line of their own.
    fn hint(&self, why: Option<Refusal>) -> (String, Option<String>) {
        match why {
            Some(Refusal::NeedsPassword) => (
                " Pass it with --password-env VAR or --password-file FILE.".to_string(),
                None,
            ),
            Some(Refusal::KeyChanged) => {
                let line = format!(
                    "If you know why (the server was reinstalled, say), remove the line for {} \
                     from {} and connect again.",
                    self.addr_key,
                    self.data_dir.join("known_servers").display()
                );
                (String::new(), Some(line))
            }
            Some(Refusal::UnknownKey) => (
                " Check the fingerprint with the server's operator (`fingerprint` on the \
                 server), then join from a terminal to confirm it, or pass --accept-new."
                    .to_string(),
                None,
            ),
            _ => (String::new(), None),
        }
    }

    /// The lines saying why the session ended, with the hint: coloured as an
    /// error in `style`.
    fn ending(&self, style: &Style, outcome: &ClientOutcome) -> Vec<Line> {
        let (suffix, extra) = self.hint(outcome.why);
        let mut lines = vec![style.error(describe(outcome)).text(suffix)];
        lines.extend(extra.map(Line::plain));
        lines
    }
}

/// Pins a server key the first time it is trusted.
struct Pins {
    known: KnownServers,
    addr_key: String,
}

impl Pins {
    /// Handles [`ClientEvent::Secured`]; returns the line to show.
    fn secured(&mut self, fingerprint: &str, key: &[u8], new: bool) -> String {
        if !new {
            return format!("Encrypted; server key {fingerprint} (pinned).");
        }
        match self.known.pin(&self.addr_key, key) {
            Ok(()) => format!(
                "Encrypted; server key {fingerprint}, pinned in {}.",
                self.known.path().display()
            ),
            Err(e) => format!("Encrypted; server key {fingerprint} (could not pin it: {e})."),
        }
    }
}

/// `host:port` as known_servers names a server.
fn addr_key(server: &str) -> Result<String, String> {
    let (host, port) = split_host_port(server.trim())?;
    let host = host.to_ascii_lowercase();
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

fn connect_error(server: &str, e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => format!(
            "cannot connect to {server}: connection refused. Is the server running, and on \
             this port?"
        ),
        ErrorKind::TimedOut => format!(
            "cannot connect to {server}: no answer. Check the address, and that a firewall \
             does not block the port."
        ),
        _ => format!("cannot connect to {server}: {e}"),
    }
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address, to socket addresses.
pub fn resolve(server: &str) -> Result<Vec<SocketAddr>, String> {
    let server = server.trim();
    let (host, port) = split_host_port(server)?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(addrs)
}

fn split_host_port(s: &str) -> Result<(&str, u16), String> {
    let bad_port = |p: &str| format!("{p:?} is not a port number (1-65535)");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in {s:?}"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, p.parse().map_err(|_| bad_port(p))?)),
            None if after.is_empty() => Ok((host, DEFAULT_PORT)),
            None => Err(format!("cannot read {s:?} as [ADDRESS]:PORT")),
        };
    }
    match s.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Ok((s, DEFAULT_PORT)),
        Some((host, p)) => Ok((host, p.parse().map_err(|_| bad_port(p))?)),
        None if s.is_empty() => Err("the server address is empty".into()),
        None => Ok((s, DEFAULT_PORT)),
    }
}

// ── Piped ────────────────────────────────────────────────────────────────────

fn piped_session<R: Runtime>(
    server: &str,
    addrs: &[SocketAddr],
    name: String,
    password: Option<String>,
    trust: &Trust,
) -> Result<ExitCode, String> {
    let (config, pins) = trust.config(&name, password, false)?;
    let failed = Arc::new(AtomicBool::new(false));
    let host = PipedHost {
        me: name,
        style: Style { colour: false },
        control: None,
        pins,
        rooms: crate::rooms::Rooms::default(),
        worker: None,
        download_dir: trust.download_dir.clone(),
        failed: Arc::clone(&failed),
    };
    let outcome =
        R::connect(addrs, config, Box::new(host)).map_err(|e| connect_error(server, &e))?;
    if outcome.expected {
        // A transfer that failed makes the whole run fail (scripts check).
        return Ok(if failed.load(Ordering::SeqCst) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    term::eprint(&trust.ending(&Style { colour: false }, &outcome));
    Ok(ExitCode::FAILURE)
}

fn describe(outcome: &ClientOutcome) -> String {
    let what = if outcome.refused {
        "Could not join"
    } else {
        "Disconnected"
    };
    format!("{what}: {}", outcome.reason)
}

/// Prints events as plain lines and feeds standard input to the session.
struct PipedHost {
    me: String,
    style: Style,
    control: Option<Control>,
    pins: Pins,
    /// Where lines belong (each room line is prefixed with its room).
    rooms: crate::rooms::Rooms,
    /// Reads and writes files for transfers (started with the session).
    worker: Option<crate::transfer_io::FileWorker>,
    download_dir: PathBuf,
    /// A transfer failed: the program exits non-zero.
    failed: Arc<AtomicBool>,
}

impl ClientHost for PipedHost {
    fn wall_time(&mut self) -> lantalk_core::WallTime {
        crate::clock::wall_time()
    }

    fn event(&mut self, event: &ClientEvent) {
        if let ClientEvent::Joined {
            username,
            server_name,
        } = event
        {
            self.me = username.clone();
            term::print(&Line::plain(format!(
                "Connected as {username} to {server_name}."
            )));
        }
        if let ClientEvent::Secured {
            fingerprint,
            key,
            new,
        } = event
        {
            term::print(&Line::plain(self.pins.secured(fingerprint, key, *new)));
        }
        if matches!(event, ClientEvent::TransferFailed { .. }) {
            self.failed.store(true, Ordering::SeqCst);
        }
        self.rooms.observe(event, &self.style);
        let at = self.rooms.whereabouts(true);
        term::print(&self.style.lines_for(event, &self.me, &at));
    }

    fn files(&mut self, request: lantalk_core::transfer::FileRequest) {
        if let Some(worker) = &self.worker {
            worker.request(request);
        }
    }

    fn ready(&mut self, _server_addr: SocketAddr, control: Control) {
        self.worker = file_worker(&self.download_dir, &control);
        let on_signal = control.clone();
        let _ = ctrlc::set_handler(move || on_signal(Command::Shutdown));
        // Lines read before the login completes wait in the core.
        let input = control.clone();
        let _ = std::thread::Builder::new()
            .name("input".into())
            .spawn(move || {
                term::for_each_stdin_line(|line| input(Command::Line(line)));
                input(Command::EndOfInput);
            });
        self.control = Some(control);
    }
}

// ── Interactive ──────────────────────────────────────────────────────────────

/// What the session (on the runtime's thread) tells the terminal's thread.
enum Ui {
    Ready(Control),
    PasswordRequired,
    ConfirmKey(String),
    Joined,
    Ended(std::io::Result<ClientOutcome>),
}

/// What the session's thread and the terminal's know about one connection.
#[derive(Default)]
struct Attempt {
    /// The connection is over (refused, or closed by either side).
    closed: AtomicBool,
    /// It was lost after joining: the chat reconnects by itself.
    lost: AtomicBool,
    /// Tells the line editor to let go of the prompt (set with `lost`).
    stop_editing: Arc<AtomicBool>,
}

/// The question after a connection was lost before the chat began.
const RECONNECT_QUESTION: &str = "Reconnect? [Y/n] ";

fn interactive_session<R: Runtime>(
    server: &str,
    addrs: &[SocketAddr],
    mut name: String,
    mut password: Option<String>,
    quiet: bool,
    trust: &Trust,
) -> ExitCode {
    let style = Style {
        colour: colour_wanted(std::io::stdout().is_terminal()),
    };
    let names: Names = Arc::new(Mutex::new(BTreeSet::new()));
    // Lines typed after the connection was lost: sent once reconnected.
    let mut unsent: Vec<String> = Vec::new();
    // A server key the user trusted after the server had already given up
    // waiting: trusted again, without asking, when reconnecting for it.
    let mut trusted_late: Option<String> = None;
    // Whether this connection is the one made by itself because the server
    // gave up while a question was open (only one such reconnection).
    let mut reconnected_by_itself = false;
    // After a lost connection: the rooms to go back into, where to resume,
    // and how many attempts in a row have failed (for the back-off).
    let mut rejoin: Vec<lantalk_core::client::Rejoin> = Vec::new();
    let mut tries: u32 = 0;
    loop {
        let (tx, rx) = channel();
        let (mut config, pins) = match trust.config(&name, password.clone(), true) {
            Ok(c) => c,
            Err(e) => {
                term::eprint(&Line::plain(format!("error: {e}")));
                return ExitCode::FAILURE;
            }
        };
        config.rejoin = rejoin.clone();
        let attempt = Arc::new(Attempt::default());
        // Per connection: a new session starts in the lobby again.
        let live = crate::rooms::live_prompt();
        let room_names = Names::default();
        let plugin_commands = Names::default();
        let host = TtyHost {
            plugin_commands: plugin_commands.clone(),
            rooms: crate::rooms::Rooms::for_terminal(live.clone(), &name, room_names.clone()),
            ours: false,
            prompt_waits: false,
            me: name.clone(),
            style,
            quiet,
            names: Arc::clone(&names),
            ui: tx.clone(),
            pins,
            joined: false,
            attempt: Arc::clone(&attempt),
            queued: 0,
            bars: crate::transfers::Bars::for_prompt(live.clone()),
            worker: None,
            download_dir: trust.download_dir.clone(),
        };
        let owned_addrs = addrs.to_vec();
        std::thread::spawn(move || {
            let result = R::connect(&owned_addrs, config, Box::new(host));
            let _ = tx.send(Ui::Ended(result));
        });

        // Logging in. The server's login timeout runs while a person reads a
        // fingerprint or types a password; an answer that came after the
        // server closed the connection is not lost: it is used to reconnect.
        let mut control = None;
        let mut answered_too_late = false;
        let outcome =
            loop {
                match rx.recv() {
                    Ok(Ui::Ready(c)) => control = Some(c),
                    Ok(Ui::PasswordRequired) => match crate::password::prompt("Password: ") {
                        Some(pw) => {
                            password = Some(pw.clone());
                            answered_too_late |= attempt.closed.load(Ordering::SeqCst);
                            send(&control, Command::Password(pw));
                        }
                        None => send(&control, Command::Shutdown),
                    },
                    Ok(Ui::ConfirmKey(fingerprint)) => {
                        if trusted_late.as_deref() == Some(fingerprint.as_str()) {
                            send(&control, Command::Trust(true));
                            continue;
                        }
                        term::print(&[
                        Line::plain(format!("The server's key fingerprint is {fingerprint}.")),
                        Line::plain(
                            "It is new to this machine. Compare it with what the server shows \
                             (its banner, or `fingerprint` run there).",
                        ),
                    ][..]);
                        let yes = ask_yes("Trust this server? [y/N] ");
                        if yes && attempt.closed.load(Ordering::SeqCst) {
                            answered_too_late = true;
                            trusted_late = Some(fingerprint);
                        }
                        send(&control, Command::Trust(yes));
                    }
                    Ok(Ui::Joined) => break None,
                    Ok(Ui::Ended(result)) => break Some(result),
                    Err(_) => return ExitCode::FAILURE,
                }
            };
        let (outcome, lost) = match outcome {
            Some(result) => (result, false),
            None => {
                reconnected_by_itself = false;
                trusted_late = None;
                for line in unsent.drain(..) {
                    send(&control, Command::Line(line));
                }
                tries = 0;
                let editing = Editing {
                    completions: Completions {
                        names: Arc::clone(&names),
                        rooms: room_names.clone(),
                        commands: plugin_commands.clone(),
                    },
                    live: live.clone(),
                };
                chat(&style, &name, editing, &control, &rx, &attempt, &mut unsent)
            }
        };

        // The session is over: say why, and offer what can be done about it.
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // Reconnecting by itself: the server may take a while to be back.
            Err(e) if !rejoin.is_empty() || tries > 0 => {
                let wait = backoff(tries);
                tries += 1;
                term::eprint(&style.error(format!(
                    "Still cannot reach {server} ({e}); trying again in {} s (Ctrl-C stops).",
                    wait.as_secs()
                )));
                std::thread::sleep(wait);
                continue;
            }
            Err(e) => {
                term::eprint(&style.error(connect_error(server, &e)));
                if ask_yes("Try again? [y/N] ") {
                    continue;
                }
                return give_up(&style, &unsent);
            }
        };
        if outcome.expected {
            return if unsent.is_empty() {
                ExitCode::SUCCESS
            } else {
                give_up(&style, &unsent)
            };
        }
        // Lost while chatting: back by itself, into the same rooms, caught
        // up from the last line seen.
        if lost {
            rejoin = outcome.rejoin.clone();
            // Transfers under way go on from their last checked chunk once
            // back: their commands are typed again, first.
            if !outcome.resume.is_empty() {
                term::print(&style.info(format!(
                    "{} transfer(s) will resume after reconnecting.",
                    outcome.resume.len()
                )));
                unsent.splice(0..0, outcome.resume.iter().cloned());
            }
            let wait = backoff(tries);
            tries += 1;
            term::print(&style.error(format!(
                "Connection lost: {} Reconnecting by itself in {} s; Ctrl-C stops.",
                outcome.reason,
                wait.as_secs()
            )));
            std::thread::sleep(wait);
            continue;
        }
        if answered_too_late && !reconnected_by_itself {
            reconnected_by_itself = true;
            term::print(
                &style.info("The server stopped waiting while you answered; reconnecting."),
            );
            continue;
        }
        term::eprint(&trust.ending(&style, &outcome));
        if matches!(outcome.why, Some(Refusal::NameTaken | Refusal::InvalidName)) {
            name = crate::menu::ask("Pick another name: ", |s| {
                validate_username(s).map(|_| s.to_string())
            });
            continue;
        }
        if outcome.why == Some(Refusal::WrongPassword) {
            match crate::password::prompt("Password (leave blank to give up): ") {
                Some(pw) => {
                    password = Some(pw);
                    continue;
                }
                None => return give_up(&style, &unsent),
            }
        }
        if !outcome.refused && ask_yes(RECONNECT_QUESTION) {
            continue;
        }
        return give_up(&style, &unsent);
    }
}

/// Leaving with lines that were never sent: show them, so nothing typed
/// vanishes without a word.
fn give_up(style: &Style, unsent: &[String]) -> ExitCode {
    for line in unsent {
        term::eprint(&style.error("Not sent: ").text(line.clone()));
    }
    ExitCode::FAILURE
}

/// The chat itself: read lines at the prompt until the session ends.
/// Returns the session's end and whether it was lost while chatting (then
/// the caller reconnects by itself); a line half typed then is kept in
/// `unsent`, to be sent once reconnected.
fn chat(
    style: &Style,
    name: &str,
    editing: Editing,
    control: &Option<Control>,
    rx: &Receiver<Ui>,
    attempt: &Attempt,
    unsent: &mut Vec<String>,
) -> (std::io::Result<ClientOutcome>, bool) {
    let prompt = format!("[{name} | lantalk] > ");
    let mut editor = LineEditor::with(
        *style,
        prompt,
        &COMMANDS,
        editing.completions,
        Some(editing.live),
        Some(Arc::clone(&attempt.stop_editing)),
    );
    loop {
        let input = editor.readline();
        // Lost while the user was typing: what they typed is kept.
        if attempt.lost.load(Ordering::SeqCst) {
            drop(editor);
            // The editor let go in the middle of the prompt's row.
            term::print(&Line::plain(""));
            match input {
                Input::Line(line) | Input::Break(line) if !line.trim().is_empty() => {
                    term::print(
                        &style
                            .line()
                            .painted("2", "(kept, sent once reconnected) ")
                            .text(line.clone()),
                    );
                    unsent.push(line)
                }
                _ => {}
            }
            return (wait_for_end(rx), true);
        }
        if let Ok(Ui::Ended(result)) = rx.try_recv() {
            return (result, false);
        }
        match input {
            Input::Line(line) => {
                let quitting = matches!(
                    line.split_whitespace().next(),
                    Some("/quit" | "/exit" | "/q")
                );
                send(control, Command::Line(line));
                if quitting {
                    drop(editor);
                    return (wait_for_end(rx), false);
                }
            }
            // Only the loss of the connection breaks the editor.
            Input::Break(_) => {}
            Input::Interrupt | Input::End => {
                send(control, Command::Shutdown);
                drop(editor);
                return (wait_for_end(rx), false);
            }
        }
    }
}

/// What the chat's line editor completes and shows, kept current by the
/// session's host.
struct Editing {
    completions: Completions,
    live: crate::editor::LivePrompt,
}

/// How long to wait before the `n`-th attempt to reconnect: 1, 2, 4, 8,
/// 16, then 30 s.
fn backoff(n: u32) -> std::time::Duration {
    std::time::Duration::from_secs((1u64 << n.min(5)).min(30))
}

fn wait_for_end(rx: &Receiver<Ui>) -> std::io::Result<ClientOutcome> {
    loop {
        match rx.recv() {
            Ok(Ui::Ended(result)) => return result,
            Ok(_) => {}
            Err(_) => return Err(std::io::Error::other("the session ended unexpectedly")),
        }
    }
}

fn send(control: &Option<Control>, cmd: Command) {
    if let Some(control) = control {
        control(cmd);
    }
}

fn ask_yes(question: &str) -> bool {
    let default_yes = question.contains("[Y/n]");
    crate::menu::ask(question, |s| match s.to_ascii_lowercase().as_str() {
        "" => Ok(default_yes),
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err("Please answer y or n.".into()),
    })
}

/// Shows events above the prompt, rings the bell, keeps the names for
/// completion, and tells the terminal's thread how the login goes.
struct TtyHost {
    me: String,
    style: Style,
    quiet: bool,
    names: Names,
    ui: Sender<Ui>,
    pins: Pins,
    joined: bool,
    attempt: Arc<Attempt>,
    /// Own lines reported queued and not yet sent.
    queued: usize,
    /// The rooms, for the prompt, completion and where lines belong.
    rooms: crate::rooms::Rooms,
    /// The server's plugins' commands, for completion.
    plugin_commands: Names,
    /// The server is one of ours (it sent a roster).
    ours: bool,
    /// Logged in; the prompt is shown once the first room is known.
    prompt_waits: bool,
    /// Progress bars of transfers under way, above the prompt.
    bars: crate::transfers::Bars,
    worker: Option<crate::transfer_io::FileWorker>,
    download_dir: PathBuf,
}

/// Whether `name` may be offered for completion: names with control
/// characters would be inserted into the line editor as they are.
fn completable(name: &str) -> bool {
    !name.is_empty() && !name.contains(is_forbidden)
}

impl TtyHost {
    /// Keeps the completion list in step with who is online: the roster a
    /// server of ours sends at login and its typed presence events (nothing
    /// is read out of sentences); with LanTalk 2.0, whoever speaks.
    fn track_names(&self, event: &ClientEvent) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ClientEvent::PluginCommands { commands } => {
                let mut more = self
                    .plugin_commands
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                more.clear();
                more.extend(
                    commands
                        .iter()
                        .map(|c| c.name.to_lowercase())
                        .filter(|n| completable(n)),
                );
            }
            ClientEvent::Roster { users } => {
                names.clear();
                names.extend(users.iter().filter(|n| completable(n)).cloned());
            }
            ClientEvent::Presence { user, online: true } if completable(user) => {
                names.insert(user.clone());
            }
            ClientEvent::Presence {
                user,
                online: false,
            } => {
                names.remove(user);
            }
            ClientEvent::Message { user, .. } if !user.contains(' ') && completable(user) => {
                names.insert(user.clone());
            }
            ClientEvent::Pm { from_user, .. } if completable(from_user) => {
                names.insert(from_user.clone());
            }
            _ => {}
        }
    }

    /// The user's own lines: the editor already shows each as typed, which
    /// is true once it went out at once. A line the rate limit holds back is
    /// marked as queued, and shown again when it is actually sent.
    fn own_line(&mut self, event: &ClientEvent) -> Option<Line> {
        match event {
            ClientEvent::Queued { text, ahead } => {
                self.queued += 1;
                let when = match ahead {
                    0 => "next".to_string(),
                    n => format!("after {n} more"),
                };
                Some(self.style.line().painted(
                    "2",
                    format!("(queued, goes {when} at the server's pace) {text}"),
                ))
            }
            ClientEvent::Sent { text, room } if self.queued > 0 => {
                self.queued -= 1;
                let at = self.rooms.whereabouts(false);
                let room = room.as_deref().filter(|_| at.rooms > 1);
                Some(
                    self.style
                        .line()
                        .painted(
                            "2",
                            format!(
                                "{}[{}] ",
                                room.map(|r| format!("{r} ")).unwrap_or_default(),
                                crate::clock::hhmm()
                            ),
                        )
                        .name(&self.me)
                        .text(format!(": {text}"))
                        .painted("2", " (sent)"),
                )
            }
            _ => None,
        }
    }
}

impl ClientHost for TtyHost {
    fn wall_time(&mut self) -> lantalk_core::WallTime {
        crate::clock::wall_time()
    }

    fn event(&mut self, event: &ClientEvent) {
        self.track_names(event);
        self.bars.observe(event);
        if let Some(line) = self.own_line(event) {
            return term::print(&line);
        }
        match event {
            ClientEvent::PasswordRequired => {
                let _ = self.ui.send(Ui::PasswordRequired);
                return;
            }
            ClientEvent::ConfirmServerKey { fingerprint } => {
                let _ = self.ui.send(Ui::ConfirmKey(fingerprint.clone()));
                return;
            }
            ClientEvent::Secured {
                fingerprint,
                key,
                new,
            } => {
                let line = self.pins.secured(fingerprint, key, *new);
                term::print(&self.style.info(line));
                return;
            }
            ClientEvent::Joined {
                username,
                server_name,
            } => {
                self.me = username.clone();
                self.joined = true;
                if completable(username) {
                    self.names
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(username.clone());
                }
                term::print(&self.style.info(format!(
                    "Connected to {server_name} as {username}. /help lists the commands, \
                     Tab completes them and names."
                )));
                // A server of ours (it sent the roster first) says which room
                // we are in next: the prompt waits for it, not to show a
                // room-less prompt for an instant.
                if self.ours {
                    self.prompt_waits = true;
                } else {
                    let _ = self.ui.send(Ui::Joined);
                }
                return;
            }
            ClientEvent::Roster { .. } => self.ours = true,
            ClientEvent::Switched { .. } if self.prompt_waits => {
                self.rooms.observe(event, &self.style);
                self.prompt_waits = false;
                let _ = self.ui.send(Ui::Joined);
                return;
            }
            ClientEvent::Clear => {
                term::clear_screen();
                return;
            }
            ClientEvent::Refused { .. } => {
                self.attempt.closed.store(true, Ordering::SeqCst);
                return;
            }
            ClientEvent::Disconnected { expected, .. } => {
                self.attempt.closed.store(true, Ordering::SeqCst);
                if !*expected && self.joined {
                    // The editor lets go; the chat says why and reconnects
                    // by itself.
                    self.attempt.lost.store(true, Ordering::SeqCst);
                    self.attempt.stop_editing.store(true, Ordering::SeqCst);
                }
                return;
            }
            _ => {}
        }
        if let Some(date) = self.rooms.observe(event, &self.style) {
            term::print(&date);
        }
        let at = self.rooms.whereabouts(false);
        for line in self.style.lines_for(event, &self.me, &at) {
            if !self.quiet && wants_bell(event, &self.me) {
                term::print_ringing(&line);
            } else {
                term::print(&line);
            }
        }
    }

    fn files(&mut self, request: lantalk_core::transfer::FileRequest) {
        if let Some(worker) = &self.worker {
            worker.request(request);
        }
    }

    fn ready(&mut self, _server_addr: SocketAddr, control: Control) {
        self.worker = file_worker(&self.download_dir, &control);
        let _ = self.ui.send(Ui::Ready(control));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("10.0.0.1"), Ok(("10.0.0.1", 5050)));
        assert_eq!(split_host_port("10.0.0.1:6000"), Ok(("10.0.0.1", 6000)));
        assert_eq!(split_host_port("host.lan:1"), Ok(("host.lan", 1)));
        assert_eq!(split_host_port("[::1]:7000"), Ok(("::1", 7000)));
        assert_eq!(split_host_port("[::1]"), Ok(("::1", 5050)));
        assert_eq!(split_host_port("fe80::1"), Ok(("fe80::1", 5050)));
        assert!(split_host_port("host:port").is_err());
        assert!(split_host_port("").is_err());
    }
}
