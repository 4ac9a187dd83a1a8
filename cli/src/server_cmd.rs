//! `server`: configure the core from the command line, keep its files, log,
//! and read the operator's console.

use std::io::{ErrorKind, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, LazyLock};

use lantalk_core::commands;
use lantalk_core::driver::{Command, Control, ServerHost};
use lantalk_core::history::StoreRequest;
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::secure::Suite;
use lantalk_core::server::SecureConfig;
use lantalk_core::server::{
    ApprovalRequest, EventDetail, EventKind, Level, ServerEvent, TrustedPeer,
};
use lantalk_core::server::{FilesConfig, HistoryConfig};
use lantalk_core::text::is_forbidden;
use lantalk_core::{BanList, Now, Server, ServerConfig};
use lantalk_os::Runtime;

/// How long history stays on disk unless `--history-keep` says otherwise.
const DEFAULT_HISTORY_KEEP: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// Records each room keeps in memory.
const HISTORY_WINDOW: usize = 512;

use crate::args::{Keep, ServerArgs};
use crate::discovery::{AnnounceSettings, Announcer};
use crate::editor::{self, Input, LineEditor, Names};
use crate::files;
use crate::history::{self, History};
use crate::logger::Logger;
use crate::style::{colour_wanted, lines, Line, Style};
use crate::term;

pub fn run<R: Runtime>(args: ServerArgs, runtime_name: &str) -> ExitCode {
    run_as::<R>(args, None, runtime_name)
}

/// `server`, or with `max_peers`, `host` (see `host_cmd`).
pub fn run_as<R: Runtime>(
    args: ServerArgs,
    max_peers: Option<usize>,
    runtime_name: &str,
) -> ExitCode {
    match start::<R>(args, max_peers, runtime_name) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            term::eprint(&Line::plain(format!("error: {msg}")));
            ExitCode::FAILURE
        }
    }
}

fn start<R: Runtime>(
    args: ServerArgs,
    max_peers: Option<usize>,
    runtime_name: &str,
) -> Result<(), String> {
    let data_dir = files::data_dir(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let bans_path = data_dir.join("bans.json");
    let bans = files::load_bans(&bans_path)?;
    let approval = crate::host_cmd::approval(&args.approval, max_peers.is_some(), &data_dir)?;
    let password = match crate::password::from_args(&args.password)? {
        Some(pw) => Some(pw),
        None => crate::password::prompt("Set password (leave blank for none): "),
    };
    let password =
        password.map(|pw| PasswordHash::new(&pw, random_salt(), HashParams::RECOMMENDED));

    // Host mode (one to one) keeps nothing on disk unless asked.
    let keep = args.history_keep.unwrap_or(if max_peers.is_some() {
        Keep::Nothing
    } else {
        Keep::For(DEFAULT_HISTORY_KEEP)
    });
    let history = match (args.no_history, keep) {
        (true, _) | (false, Keep::Nothing) => None,
        (false, keep) => Some(History::open(&data_dir, keep)?),
    };
    // A host's chats are one to one: the next peer must not read the last
    // one's conversation, so a host keeps none unless told to.
    let host_private = max_peers.is_some() && args.history_keep.is_none();
    let no_history = args.no_history || host_private;
    let history_said = match (&history, no_history, keep) {
        (_, true, _) if host_private => {
            "none kept (host mode: each peer sees only its own chat; --history-keep keeps it)"
                .to_string()
        }
        (_, true, _) => "none kept (--no-history)".to_string(),
        (Some(h), _, Keep::For(d)) => {
            format!("kept {} in {}", history::describe(d), h.path().display())
        }
        (Some(h), _, _) => format!("kept forever in {}", h.path().display()),
        (None, _, _) => {
            format!("recent lines in memory only ({HISTORY_WINDOW} per room), none on disk")
        }
    };

    // Shared files: their bytes in files/, the list of offers in
    // files.json (offers survive a restart).
    let files_dir = data_dir.join("files");
    let offers_path = data_dir.join("files.json");
    let kept = if args.no_files {
        Vec::new()
    } else {
        std::fs::create_dir_all(&files_dir)
            .map_err(|e| format!("cannot create {}: {e}", files_dir.display()))?;
        crate::transfer_io::load_offers(&offers_path)
            .map_err(|e| format!("{}: {e}", offers_path.display()))?
    };
    let files_config = FilesConfig {
        enabled: !args.no_files,
        max_file_size: args.max_file_size,
        quota: args.files_quota,
        keep: match args.files_keep {
            Keep::For(d) => Some(d),
            Keep::Forever | Keep::Nothing => None,
        },
        kept,
        ..FilesConfig::default()
    };
    let files_said = if args.no_files {
        "sharing off (--no-files)".to_string()
    } else {
        let keep = match args.files_keep {
            Keep::For(d) => history::describe(d),
            _ => "forever".to_string(),
        };
        format!(
            "up to {} each, {} in all, kept {keep}, in {} ({} kept from before)",
            binary_size(args.max_file_size),
            binary_size(args.files_quota),
            files_dir.display(),
            files_config
                .kept
                .iter()
                .filter(|f| f.hash.is_some())
                .count()
        )
    };

    let plugins = crate::plugins::specs(&args.plugins, &args.plugin_rooms)?;
    let plugins_said = if plugins.is_empty() {
        "none (--plugin CMD runs one)".to_string()
    } else {
        plugins
            .iter()
            .map(|p| {
                let rooms = if p.rooms.is_empty() {
                    lantalk_core::rooms::LOBBY.to_string()
                } else {
                    p.rooms.join(",")
                };
                format!("{} ({}, in {rooms})", p.name, p.command)
            })
            .collect::<Vec<_>>()
            .join("; ")
    };

    let identity = crate::keys::load_or_create(&data_dir.join("server_key"))?;
    let fingerprint = identity.fingerprint();
    let mut rng_seed = [0u8; 32];
    getrandom::getrandom(&mut rng_seed).map_err(|e| format!("no secure randomness: {e}"))?;
    let mut config = ServerConfig {
        name: args.name.clone(),
        password,
        secure: Some(SecureConfig {
            identity,
            rng_seed,
            suites: Suite::preferred(aes_hardware()),
        }),
        allow_plaintext: args.allow_plaintext,
        rate_limit: args.rate_limit.0,
        auth_timeout: args.auth_timeout,
        idle_timeout: args.idle_timeout.0,
        max_clients: args.max_clients,
        // Chat is logged only at debug level; a server shows none, a host
        // shows its peers' lines on the console.
        chat_events: args.log_level == Level::Debug || max_peers.is_some(),
        max_users: max_peers,
        approval: approval.as_ref().map(|(a, _)| a.clone()),
        history: HistoryConfig {
            enabled: !no_history,
            store: history.is_some(),
            on_join: args.history_on_join,
            window: HISTORY_WINDOW,
        },
        first_message_id: history.as_ref().map_or(1, History::next_id),
        files: files_config,
        plugins,
        ..ServerConfig::default()
    };
    let (logger, log_err) = Logger::open(args.log_level, &data_dir.join("lantalk.log"));
    print_banner(
        &args,
        &config,
        &bans,
        &data_dir,
        runtime_name,
        &fingerprint,
        &[
            ("History", &history_said),
            ("Files", &files_said),
            ("Plugins", &plugins_said),
        ],
    );
    if let Some((a, path)) = &approval {
        term::print(&crate::host_cmd::banner(a, max_peers, path));
    }
    if let Some(e) = log_err {
        term::eprint(&Line::plain(format!(
            "warning: cannot open {}: {e}; logging to the console only",
            data_dir.join("lantalk.log").display()
        )));
    }

    let bind = SocketAddr::new(args.bind, args.port);
    let web = crate::web::bind(&args)?;
    let web_addr = web.as_ref().and_then(|l| l.local_addr().ok());
    if web.is_some() {
        config.web = Some(crate::web_assets::config());
    }
    let has_password = config.password.is_some();
    let server = Server::new(
        config,
        Now::new(Default::default(), crate::clock::wall_time()),
        bans,
    );
    let names: Names = Arc::default();
    let announce = (!args.no_discovery).then(|| {
        let settings = AnnounceSettings {
            name: args.name.clone(),
            discovery_port: args.discovery_port,
            beacon_addrs: args.beacon_addr.clone(),
            interval: args.beacon_interval,
            mdns: !args.no_mdns,
            password: has_password,
            encrypted: true,
            fingerprint: Some(fingerprint.clone()),
            legacy_beacon: args.allow_plaintext,
        };
        let (names, level, log_path) = (
            Arc::clone(&names),
            args.log_level,
            data_dir.join("lantalk.log"),
        );
        Box::new(move |local| {
            let (mut logger, _) = Logger::open(level, &log_path);
            let users = move || names.lock().unwrap_or_else(|e| e.into_inner()).len();
            Announcer::start(
                settings,
                local,
                users,
                Box::new(move |l, m| logger.log(l, m)),
            )
        }) as StartAnnouncer
    });
    let (console_tx, console_rx) = channel();
    let interactive = std::io::stdin().is_terminal();
    let host = CliServerHost {
        program: format!("lantalk-{runtime_name}"),
        web: web_addr,
        logger,
        bans_path,
        names: Arc::clone(&names),
        console: interactive.then_some(console_tx.clone()),
        announce,
        announcer: None,
        history,
        control: None,
        files: (!args.no_files).then_some((files_dir, offers_path)),
        download_dir: args
            .download_dir
            .clone()
            .unwrap_or_else(crate::transfer_io::default_download_dir),
        file_worker: None,
        plugins: None,
        plugins_early: Vec::new(),
        approval: approval.map(|(_, trusted_path)| crate::host_cmd::ApprovalConsole {
            trusted_path,
            show_chat: max_peers.is_some(),
            style: Style {
                colour: colour_wanted(std::io::stdout().is_terminal()),
            },
        }),
    };
    if !interactive {
        return R::serve(bind, web, server, Box::new(host)).map_err(|e| listen_error(bind, e));
    }

    // On a terminal, the console gets the line editor on this thread while
    // the server runs on another.
    std::thread::spawn(move || {
        let result = R::serve(bind, web, server, Box::new(host)).map_err(|e| listen_error(bind, e));
        if EDITING.load(Ordering::SeqCst) {
            // Stopped by a signal while the operator had a line open: the
            // editor cannot be interrupted, so restore the terminal and go.
            editor::restore_terminal();
            term::print("\n");
            std::process::exit(if result.is_ok() { 0 } else { 1 });
        }
        let _ = console_tx.send(Console::Done(result));
    });
    let control = match console_rx.recv() {
        Ok(Console::Ready(control)) => control,
        Ok(Console::Done(result)) => return result,
        Err(_) => return Err("the server stopped unexpectedly".into()),
    };
    let style = Style {
        colour: colour_wanted(std::io::stdout().is_terminal()),
    };
    let (role, commands) = match (max_peers, args.approval.approve) {
        (Some(_), _) => ("host", &APPROVAL_COMMANDS),
        (None, true) => ("console", &APPROVAL_COMMANDS),
        (None, false) => ("console", &CONSOLE_COMMANDS),
    };
    let mut editor = LineEditor::new(
        style,
        format!("[{} | {role}] > ", args.name),
        commands,
        names,
    );
    EDITING.store(true, Ordering::SeqCst);
    loop {
        match editor.readline() {
            Input::Line(line) => {
                let quitting = matches!(
                    line.split_whitespace().next(),
                    Some("/quit" | "/exit" | "/q")
                );
                control(Command::Line(line));
                if quitting {
                    break;
                }
            }
            Input::Interrupt => {
                control(Command::Shutdown);
                break;
            }
            Input::End => {
                term::print("Console closed; the server keeps running. Ctrl-C stops it.\n");
                break;
            }
            // The console's editor is never told to let go.
            Input::Break(_) => {}
        }
    }
    EDITING.store(false, Ordering::SeqCst);
    drop(editor);
    loop {
        match console_rx.recv() {
            Ok(Console::Done(result)) => return result,
            Ok(Console::Ready(_)) => {}
            Err(_) => return Ok(()),
        }
    }
}

/// Whether the console's line editor holds the terminal (in raw mode).
static EDITING: AtomicBool = AtomicBool::new(false);

/// Commands offered by Tab completion on the console: the command tables'.
static CONSOLE_COMMANDS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| commands::names(&[commands::CONSOLE]));
/// ... when connections are approved.
static APPROVAL_COMMANDS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| commands::names(&[commands::CONSOLE, commands::APPROVAL]));

/// What the server thread tells the console's thread.
enum Console {
    Ready(Control),
    Done(Result<(), String>),
}

fn listen_error(bind: SocketAddr, e: std::io::Error) -> String {
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {bind}: the port is already in use. Is another server running? \
             Pick another with --port N (0 picks a free one)."
        ),
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {bind}: permission denied. Ports below 1024 need \
             administrator rights; pick another with --port N."
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {bind}: this machine has no such address. Use --bind 0.0.0.0 \
             for every interface."
        ),
        _ => format!("cannot listen on {bind}: {e}"),
    }
}

/// A limit as it is usually given: `2 GiB`, `500 MiB`, else decimal.
fn binary_size(bytes: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    lantalk_core::transfer::human_size(bytes)
}

fn print_banner(
    args: &ServerArgs,
    config: &ServerConfig,
    bans: &BanList,
    data_dir: &std::path::Path,
    runtime_name: &str,
    fingerprint: &str,
    kept: &[(&str, &str)],
) {
    let rule = "═".repeat(54);
    let what = if config.max_users.is_some() {
        "Host"
    } else {
        "Server"
    };
    let mut s = format!(
        "{rule}\n  LanTalk {what} v{} ({runtime_name} runtime)  —  {}\n",
        env!("CARGO_PKG_VERSION"),
        args.name
    );
    s.push_str(&format!("  Data directory: {}\n", data_dir.display()));
    s.push_str(&format!("  Key fingerprint: {fingerprint}\n"));
    s.push_str(&format!(
        "  Encryption: on; LanTalk 2.0 (plaintext) clients {}\n",
        if config.allow_plaintext {
            "allowed (--allow-plaintext)"
        } else {
            "refused"
        }
    ));
    s.push_str(&format!(
        "  Password protection: {}\n",
        if config.password.is_some() {
            "ON"
        } else {
            "OFF"
        }
    ));
    // What is kept on disk: history, shared files.
    for (what, said) in kept {
        s.push_str(&format!("  {what}: {said}\n"));
    }
    if !bans.is_empty() {
        s.push_str(&format!("  Loaded {} persistent ban(s)\n", bans.len()));
    }
    s.push_str(&format!("  /help for server commands\n{rule}\n"));
    term::print(&s);
}

/// Tells the operator which address to give the others: with a wildcard
/// bind, every non-loopback interface address.
fn join_hint(program: &str, local: SocketAddr) -> String {
    let port = local.port();
    let mut hint = String::new();
    for ip in lan_ips(local) {
        let addr = SocketAddr::new(ip, port);
        hint.push_str(&format!("  Others join with: {program} client {addr}\n"));
    }
    hint
}

/// The addresses others on the LAN reach a listener bound to `local` at:
/// with a wildcard bind, every non-loopback interface address; none for a
/// loopback bind.
pub(crate) fn lan_ips(local: SocketAddr) -> Vec<std::net::IpAddr> {
    if local.ip().is_unspecified() {
        if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| !ip.is_loopback() && ip.is_ipv4() == local.is_ipv4())
            .collect()
    } else if local.ip().is_loopback() {
        Vec::new()
    } else {
        vec![local.ip()]
    }
}

/// Salt for the password hash, from the operating system's secure RNG.
fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    if getrandom::getrandom(&mut salt).is_err() {
        // No OS randomness at all is exotic; a time-derived salt still
        // separates this server's hash from every other one.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        salt.copy_from_slice(&t.to_le_bytes());
    }
    salt
}

struct CliServerHost {
    /// `lantalk-smol` or `lantalk-std`, for the hints it prints.
    program: String,
    /// Where the web client is served, if it is.
    web: Option<SocketAddr>,
    logger: Logger,
    /// Who is online, for the console's completion.
    names: Names,
    /// With a terminal console: where to hand the control once running.
    console: Option<Sender<Console>>,
    bans_path: PathBuf,
    /// Starts LAN discovery once the listener's address is known; the
    /// announcer stops (saying goodbye on mDNS) when the host is dropped.
    announce: Option<StartAnnouncer>,
    announcer: Option<Announcer>,
    /// The history on disk, if kept there.
    history: Option<History>,
    /// Where the store's answers go (known once running).
    control: Option<Control>,
    /// Shared files: their folder and the list of offers (`None`: sharing
    /// is off).
    files: Option<(PathBuf, PathBuf)>,
    /// Where the console's `/get` saves files.
    download_dir: PathBuf,
    /// Carries out file requests off the event loop (started once running).
    file_worker: Option<crate::transfer_io::FileWorker>,
    /// Plugin processes (started once running).
    plugins: Option<crate::plugins::PluginRunner>,
    /// Plugin requests made before the server was running.
    plugins_early: Vec<lantalk_core::plugin::PluginRequest>,
    /// Questions, trusted peers and (host mode) chat, when connections are
    /// approved.
    approval: Option<crate::host_cmd::ApprovalConsole>,
}

type StartAnnouncer = Box<dyn FnOnce(SocketAddr) -> Announcer + Send>;

impl ServerHost for CliServerHost {
    fn wall_time(&mut self) -> lantalk_core::WallTime {
        crate::clock::wall_time()
    }

    fn persist_bans(&mut self, bans: &BanList) {
        if let Err(e) = files::write_atomic(&self.bans_path, &bans.to_file_bytes()) {
            self.logger.log(
                Level::Warning,
                &format!("Could not save bans to {}: {e}", self.bans_path.display()),
            );
        }
    }

    fn persist_trusted(&mut self, peers: &[TrustedPeer]) {
        if let Some(approval) = self.approval.as_mut() {
            approval.persist(peers, &mut self.logger);
        }
    }

    fn ask_operator(&mut self, request: &ApprovalRequest) {
        match self.approval.as_mut() {
            Some(approval) => approval.ask(request, &mut self.logger),
            // Only a server that approves connections asks.
            None => self.logger.log(Level::Info, &request.to_string()),
        }
    }

    fn event(&mut self, event: &ServerEvent) {
        // Keep the console's name completion in step with who is online,
        // from the typed fact (never from the sentence).
        if let Some(EventDetail::Presence { user, online }) = event.detail.as_deref() {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            if !*online {
                names.remove(user);
            } else if !user.contains(is_forbidden) {
                names.insert(user.clone());
            }
        }
        if let Some(approval) = self.approval.as_mut() {
            if approval.event(event, &mut self.logger) {
                return;
            }
        }
        if event.kind == EventKind::Reply {
            // The core's answers to console commands, several lines for
            // `/help`; each line is still made visible.
            term::print(&lines(&event.message));
        } else {
            self.logger.log(event.level, &event.message);
        }
    }

    fn store(&mut self, request: StoreRequest) {
        // Asked only when a history is kept on disk, and queries only come
        // from connected clients, after `ready`.
        if let (Some(history), Some(control)) = (&self.history, &self.control) {
            history.carry_out(request, control);
        }
    }

    fn files(&mut self, request: lantalk_core::transfer::FileRequest) {
        match &self.file_worker {
            Some(worker) => worker.request(request),
            None => self.logger.log(
                Level::Warning,
                "A file request came with file sharing off; ignored.",
            ),
        }
    }

    fn persist_files(&mut self, list: &[lantalk_core::transfer::SharedFile]) {
        let Some((_, offers_path)) = &self.files else {
            return;
        };
        if let Err(e) = crate::transfer_io::save_offers(offers_path, list) {
            self.logger.log(
                Level::Warning,
                &format!(
                    "Could not save the list of files to {}: {e}",
                    offers_path.display()
                ),
            );
        }
    }

    fn plugin(&mut self, request: lantalk_core::plugin::PluginRequest) {
        match &mut self.plugins {
            Some(runner) => runner.request(request),
            None => self.plugins_early.push(request),
        }
    }

    fn ready(&mut self, local_addr: SocketAddr, control: Control) {
        self.control = Some(control.clone());
        let mut runner = crate::plugins::PluginRunner::new(control.clone());
        for request in self.plugins_early.drain(..) {
            runner.request(request);
        }
        self.plugins = Some(runner);
        if let Some((files_dir, _)) = &self.files {
            let answer = control.clone();
            let downloads = Some(self.download_dir.clone());
            match crate::transfer_io::FileWorker::spawn(
                Some(files_dir.clone()),
                downloads,
                move |r| answer(Command::Files(Box::new(r))),
            ) {
                Ok(worker) => self.file_worker = Some(worker),
                Err(e) => self.logger.log(
                    Level::Warning,
                    &format!("Cannot keep shared files in {}: {e}", files_dir.display()),
                ),
            }
        }
        // Signals first: from the moment the address is printed, a SIGTERM
        // must mean a clean shutdown.
        let on_signal = control.clone();
        if let Err(e) = ctrlc::set_handler(move || on_signal(Command::Shutdown)) {
            term::eprint(&Line::plain(format!("warning: cannot handle Ctrl-C: {e}")));
        }
        term::print(&format!(
            "Listening on {local_addr}\n{}{}",
            join_hint(&self.program, local_addr),
            self.web.map(crate::web::announce).unwrap_or_default()
        ));
        self.logger
            .log(Level::Info, &format!("Server started on {local_addr}"));
        if let Some(start) = self.announce.take() {
            self.announcer = Some(start(local_addr));
        }
        if let Some(console) = &self.console {
            let _ = console.send(Console::Ready(control));
            return;
        }
        // End of input ends the console only; the server keeps serving.
        let _ = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || term::for_each_stdin_line(|line| control(Command::Line(line))));
    }
}

/// Whether this CPU has AES instructions (and the carry-less multiply GCM
/// needs): then AES-GCM seals faster than ChaCha20-Poly1305, and the server
/// offers it first.
fn aes_hardware() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}
