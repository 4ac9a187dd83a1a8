//! Command-line arguments, shared by both binaries.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lantalk_core::commands;
use lantalk_core::discovery::DEFAULT_DISCOVERY_PORT;
use lantalk_core::ratelimit::Rate;
use lantalk_core::server::console_help;

pub const DEFAULT_PORT: u16 = 5050;
/// Where browsers find the web client.
pub const DEFAULT_WEB_PORT: u16 = 5080;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "LanTalk: group chat for the local network. No accounts, no internet, no cloud.",
    long_about = "LanTalk: group chat for the local network. No accounts, no internet, no cloud.\n\n\
        Run without a command for an interactive menu. Every connection is encrypted (Noise, \
        with server keys pinned on first use, and a password that never crosses the network). \
        With --allow-plaintext it also speaks the LanTalk 2.0 protocol, so the Python `lantalk` \
        client and server interoperate with it.",
    after_help = "Examples:\n  \
        lantalk-smol server                          start a server on port 5050 (browsers: 5080)\n  \
        lantalk-smol client 192.168.1.5 --name Bob   join it from another machine\n  \
        lantalk-smol scan                            list the servers on the LAN\n  \
        lantalk-smol                                 the interactive menu"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a chat server; others join it with `client`.
    #[command(after_help = server_after_help())]
    Server(ServerArgs),
    /// Chat one to one: a server where you approve each peer from the console
    /// (comparing a short code with them) and chat with them there.
    #[command(after_help = host_after_help())]
    Host(HostArgs),
    /// Join a chat server.
    #[command(after_help = client_after_help())]
    Client(ClientArgs),
    /// Show this machine's key fingerprints (creating the keys if needed), to
    /// compare with what clients are shown when they first connect.
    Fingerprint(FingerprintArgs),
    /// List the servers announcing themselves on the LAN.
    #[command(after_help = "Examples:\n  \
        lantalk-smol scan\n  \
        lantalk-smol scan --timeout 10\n\n\
        Listens for LanTalk beacons on UDP --discovery-port (those of LanTalk 2.0 servers too) \
        and browses DNS-SD (mDNS) for _lantalk._tcp. Exits 0 when servers were found, 1 \
        (saying why that may be) when none. A listing is only a hint of where to connect: it \
        grants no trust.")]
    Scan(ScanArgs),
    /// Read the history a server kept (history.db in its data directory).
    #[command(subcommand)]
    History(HistoryCommand),
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Write the history as JSON lines (or text) to standard output.
    #[command(after_help = "Examples:\n  \
        lantalk-smol history export > all.jsonl\n  \
        lantalk-smol history export --room '#team' --since 2026-12-01 --text\n\n\
        Reads while a server runs, without disturbing it. One JSON object per line: \
        id, at_ms (Unix time in milliseconds), room or pm (the two names), from, kind \
        (message or action) and text.")]
    Export(ExportArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Only this room (as #name).
    #[arg(long, value_name = "#ROOM", conflicts_with = "pm")]
    pub room: Option<String>,
    /// Only the private conversation between these two people.
    #[arg(long, value_name = "NAME", num_args = 2)]
    pub pm: Vec<String>,
    /// Only from this day on (YYYY-MM-DD, local time).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<chrono::NaiveDate>,
    /// Text for people (`2026-12-04 14:22 #team <bob> hi`) instead of JSON lines.
    #[arg(long)]
    pub text: bool,
    /// The server's data directory [default: the platform's user data directory].
    #[arg(long, value_name = "DIR", env = "LANTALK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("expected a date as YYYY-MM-DD, not {s:?}"))
}

/// `server --help`'s epilogue: examples, then the console's commands from
/// the same table as the console's `/help`.
fn server_after_help() -> String {
    format!(
        "Examples:\n  \
        lantalk-smol server\n  \
        lantalk-smol server --name Hackathon --port 6000\n  \
        LANTALK_PW=secret lantalk-smol server --password-env LANTALK_PW\n  \
        lantalk-smol server --web-port 8080     the web client for browsers on port 8080\n\n\
        Console commands once running:\n{}",
        indent(&console_help(false))
    )
}

fn host_after_help() -> String {
    format!(
        "Examples:\n  \
        lantalk-smol host --name Alice\n  \
        lantalk-smol host --remember --approve-timeout 120\n\n\
        The peer joins with `client HOST[:PORT]`. When it has logged in, the console shows \
        `Incoming connection from ADDR as NAME, key SHA256:..., code 123 456. Approve? (y/n)` \
        and the peer shows the same code; answer y or n. Lines you type go to the peer, its \
        lines appear above the prompt.\n\nConsole commands:\n{}",
        indent(&console_help(true))
    )
}

fn client_after_help() -> String {
    format!(
        "Examples:\n  \
        lantalk-smol client 192.168.1.5 --name Bob\n  \
        lantalk-smol client chat-host.local:6000 --name Bob --password-file pw.txt\n  \
        printf 'hello\\n/users\\n' | lantalk-smol client 127.0.0.1 --name Bot\n\n\
        Chat commands:\n{}  {}\n\n\
        With standard input not a terminal, every line is sent and every event is printed \
        as one plain line; the exit status is 0 after /quit or end of input, 1 when refused \
        or disconnected.",
        indent(&commands::table(commands::CHAT)),
        commands::LITERAL_HINT
    )
}

fn indent(lines: &str) -> String {
    lines.lines().map(|l| format!("  {l}\n")).collect()
}

#[derive(Args, Debug, Clone)]
pub struct FingerprintArgs {
    /// Where the keys are kept [default: the platform's user data directory].
    #[arg(long, value_name = "DIR", env = "LANTALK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PasswordArgs {
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, short, value_name = "N", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// TCP port of the web client, for browsers (HTTP and WebSocket)
    /// [default: 5080; with --port 0, 0 too]. If the default port is taken
    /// the server runs without the web client; a port given here must be free.
    #[arg(long, value_name = "N")]
    pub web_port: Option<u16>,
    /// Do not serve the web client.
    #[arg(long, conflicts_with = "web_port")]
    pub no_web: bool,
    /// The server's display name.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "Server",
        allow_hyphen_values = true
    )]
    pub name: String,
    /// Where bans and logs are kept [default: the platform's user data directory].
    #[arg(long, value_name = "DIR", env = "LANTALK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Messages allowed per user, as N/SECS, or `off`.
    #[arg(long, value_name = "N/SECS|off", default_value = "10/5", value_parser = parse_rate)]
    pub rate_limit: RateLimit,
    /// Seconds of silence after which a connection is taken for dead and
    /// closed, or `off`. Our clients keep their connection alive while
    /// their user only reads; LanTalk 2.0 clients that stay silent are
    /// disconnected, as LanTalk 2.0 does.
    #[arg(long, value_name = "SECS|off", default_value = "300", value_parser = parse_timeout)]
    pub idle_timeout: Timeout,
    /// Seconds a new connection has to log in.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_secs)]
    pub auth_timeout: Duration,
    /// Most connections at once.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = parse_count)]
    pub max_clients: usize,
    /// Also let clients that cannot encrypt (LanTalk 2.0) join. Everyone is
    /// told when such a member joins, and /users marks them.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Do not announce the server on the LAN (neither beacons nor mDNS).
    /// LANTALK_NO_DISCOVERY=1 does the same, and keeps the menu from scanning.
    #[arg(long, env = "LANTALK_NO_DISCOVERY", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_discovery: bool,
    /// UDP port the beacons go to (LanTalk 2.0 clients listen on 5051).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DISCOVERY_PORT,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub discovery_port: u16,
    /// Send beacons to this address instead of every interface's broadcast
    /// address (repeatable), e.g. 127.255.255.255 for this machine only.
    #[arg(long, value_name = "ADDR")]
    pub beacon_addr: Vec<std::net::Ipv4Addr>,
    /// Seconds between beacons.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_interval)]
    pub beacon_interval: Duration,
    /// Do not announce the server over mDNS (DNS-SD); beacons only.
    #[arg(long)]
    pub no_mdns: bool,
    /// Log level for the console and lantalk.log: debug, info or warning.
    #[arg(long, value_name = "LEVEL", env = "LANTALK_LOG_LEVEL", default_value = "info",
          value_parser = parse_level)]
    pub log_level: lantalk_core::server::Level,
    /// How long history stays on disk (history.db in the data directory):
    /// like 7d, 12h, 30m, `forever`, or 0 for none on disk (recent lines are
    /// still shown from memory) [default: 7d; host: 0].
    #[arg(long, value_name = "AGE|forever|0", value_parser = parse_keep)]
    pub history_keep: Option<Keep>,
    /// Keep no history at all, in memory or on disk: people see only what
    /// is said while they are there.
    #[arg(long, conflicts_with = "history_keep")]
    pub no_history: bool,
    /// Lines of a room's history shown on joining it (0: none).
    #[arg(long, value_name = "N", default_value = "50", value_parser = parse_history_lines)]
    pub history_on_join: usize,
    /// Largest file people may share (`/send`), like 2GiB, 500MB or 1000000.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_size)]
    pub max_file_size: u64,
    /// Most bytes of shared files kept at once (files/ in the data
    /// directory); a file that does not fit is refused before it is sent.
    #[arg(long, value_name = "SIZE", default_value = "10GiB", value_parser = parse_size)]
    pub files_quota: u64,
    /// How long a shared file is kept (from when it was complete), like
    /// 24h or 7d, or `forever`.
    #[arg(long, value_name = "AGE|forever", default_value = "24h", value_parser = parse_files_keep)]
    pub files_keep: Keep,
    /// Do not let people share files through this server.
    #[arg(long)]
    pub no_files: bool,
    /// Where files saved from the console (`/get`) go [default: the
    /// platform's Downloads folder].
    #[arg(long, value_name = "DIR", env = "LANTALK_DOWNLOAD_DIR")]
    pub download_dir: Option<PathBuf>,
    /// Run a plugin: a program that reads events and writes actions as
    /// JSON lines (see PLUGINS.md), like "python3 dice.py". Its name is the
    /// program file's (dice), or give one: "dice=python3 dice.py". It is
    /// started again if it stops. Repeatable.
    #[arg(
        long = "plugin",
        value_name = "[NAME=]COMMAND",
        allow_hyphen_values = true
    )]
    pub plugins: Vec<String>,
    /// The rooms a plugin sees and speaks in, like dice=#lobby,#games
    /// (default: #lobby). Repeatable, one per plugin.
    #[arg(long = "plugin-rooms", value_name = "NAME=#ROOM,...")]
    pub plugin_rooms: Vec<String>,
    #[command(flatten)]
    pub approval: ApprovalArgs,
}

/// `2GiB`, `500MB`, `10k`, `1000000`: decimal (kB, MB, GB) and binary
/// (KiB, MiB, GiB) units, case-insensitive; a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let err = || format!("expected a size like 2GiB, 500MB or 1000000, not {s:?}");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let factor: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(err()),
    };
    n.checked_mul(factor).ok_or_else(err)
}

/// Like [`parse_keep`], but a file is always kept for some time: `0` says
/// nothing sensible (use `--no-files`).
fn parse_files_keep(s: &str) -> Result<Keep, String> {
    match parse_keep(s)? {
        Keep::Nothing => Err(
            "a shared file must be kept for some time; --no-files turns \
                              sharing off"
                .to_string(),
        ),
        keep => Ok(keep),
    }
}

/// How long history is kept on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Not on disk at all.
    Nothing,
    For(Duration),
    Forever,
}

/// `7d`, `12h`, `30m`, `90s`, `forever`, or `0`.
pub fn parse_keep(s: &str) -> Result<Keep, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "forever" {
        return Ok(Keep::Forever);
    }
    if t == "0" {
        return Ok(Keep::Nothing);
    }
    let err = || format!("expected an age like 7d, 12h or 30m, `forever`, or 0, not {s:?}");
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?);
    let n: u64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(err()),
    };
    match n.checked_mul(secs) {
        Some(0) => Ok(Keep::Nothing),
        Some(total) => Ok(Keep::For(Duration::from_secs(total))),
        None => Err(err()),
    }
}

pub fn parse_history_lines(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n <= lantalk_core::protocol::MAX_HISTORY_PAGE => Ok(n),
        _ => Err(format!(
            "expected a number of lines from 0 to {}, not {s:?}",
            lantalk_core::protocol::MAX_HISTORY_PAGE
        )),
    }
}

/// Approval of each connection by the operator (`host`, `server --approve`).
#[derive(Args, Debug, Clone)]
pub struct ApprovalArgs {
    /// Ask on the console before letting anyone in (`host` always does). Both
    /// sides are shown a short code to compare.
    #[arg(long)]
    pub approve: bool,
    /// Seconds the operator has to answer before the peer is refused.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub approve_timeout: Duration,
    /// Remember the keys of approved peers (trusted_peers in the data
    /// directory) and let them in without asking next time.
    #[arg(long)]
    pub remember: bool,
}

#[derive(Args, Debug, Clone)]
pub struct HostArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Peers chatting at once; one more is refused ("the host is busy").
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_count)]
    pub max_peers: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Server to join, as HOST or HOST:PORT (IPv6 as [ADDR]:PORT).
    #[arg(value_name = "HOST[:PORT]")]
    pub server: Option<String>,
    /// Your display name (ASCII letters, digits, _ and -; at most 24).
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub name: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Join servers that offer no encryption (LanTalk 2.0): the chat and the
    /// password then cross the network readable by anyone.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Trust a server key seen for the first time without asking (it is still
    /// pinned, and a changed key is still refused).
    #[arg(long)]
    pub accept_new: bool,
    /// Where keys and settings are kept [default: the platform's user data directory].
    #[arg(long, value_name = "DIR", env = "LANTALK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// No terminal bell on private messages and mentions of your name.
    #[arg(long, short)]
    pub quiet: bool,
    /// Where files you download (`/get`) are saved [default: the
    /// platform's Downloads folder].
    #[arg(long, value_name = "DIR", env = "LANTALK_DOWNLOAD_DIR")]
    pub download_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    /// Seconds to listen for.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    pub timeout: Duration,
    /// UDP port to listen for beacons on.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DISCOVERY_PORT,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub discovery_port: u16,
    /// Do not browse mDNS (DNS-SD); beacons only.
    #[arg(long)]
    pub no_mdns: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit(pub Option<Rate>);

pub fn parse_rate(s: &str) -> Result<RateLimit, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(RateLimit(None));
    }
    let err = || format!("expected N/SECS (like 10/5) or off, not {s:?}");
    let (n, secs) = s.split_once('/').ok_or_else(err)?;
    let n: u32 = n.trim().parse().map_err(|_| err())?;
    let secs: f64 = secs.trim().parse().map_err(|_| err())?;
    if n == 0 || !(secs > 0.0 && secs.is_finite()) {
        return Err(err());
    }
    Ok(RateLimit(Some(Rate::new(n, Duration::from_secs_f64(secs)))))
}

/// A duration that can be turned off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

pub fn parse_timeout(s: &str) -> Result<Timeout, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Timeout(None));
    }
    parse_secs(s)
        .map(|d| Timeout(Some(d)))
        .map_err(|_| format!("expected a number of seconds greater than 0, or off, not {s:?}"))
}

pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, not {s:?}")),
    }
}

pub fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "expected a number of seconds greater than 0, not {s:?}"
        )),
    }
}

/// Seconds between beacons: at least 0.1, so a typo cannot flood the LAN.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    match parse_secs(s) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        _ => Err(format!(
            "expected a number of seconds of at least 0.1, not {s:?}"
        )),
    }
}

pub fn parse_level(s: &str) -> Result<lantalk_core::server::Level, String> {
    use lantalk_core::server::Level;
    match s.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok(Level::Debug),
        "info" => Ok(Level::Info),
        "warning" | "warn" => Ok(Level::Warning),
        _ => Err(format!("expected debug, info or warning, not {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("10/5"),
            Ok(RateLimit(Some(Rate::new(10, Duration::from_secs(5)))))
        );
        assert_eq!(parse_rate("OFF"), Ok(RateLimit(None)));
        assert!(parse_rate("0/5").is_err());
        assert!(parse_rate("10").is_err());
        assert!(parse_rate("10/-1").is_err());
    }

    #[test]
    fn discovery_flags() {
        use clap::CommandFactory;
        let cli = Cli::parse_from([
            "lantalk",
            "server",
            "--beacon-addr",
            "127.255.255.255",
            "--beacon-addr",
            "10.0.0.255",
            "--beacon-interval",
            "0.2",
            "--discovery-port",
            "6000",
            "--no-mdns",
        ]);
        let Some(Command::Server(a)) = cli.command else {
            panic!("server")
        };
        assert_eq!(a.beacon_addr.len(), 2);
        assert_eq!(a.beacon_interval, Duration::from_millis(200));
        assert_eq!(a.discovery_port, 6000);
        assert!(a.no_mdns && !a.no_discovery);
        // The variable is read for the flag (tests set it in their
        // environment; this one only checks the flag is declared with it).
        let arg = Cli::command()
            .find_subcommand("server")
            .and_then(|c| {
                c.get_arguments()
                    .find(|a| a.get_id() == "no_discovery")
                    .cloned()
            })
            .expect("--no-discovery");
        assert_eq!(
            arg.get_env(),
            Some(std::ffi::OsStr::new("LANTALK_NO_DISCOVERY"))
        );
        assert!(Cli::try_parse_from(["lantalk", "server", "--beacon-interval", "0.01"]).is_err());
        assert!(Cli::try_parse_from(["lantalk", "server", "--discovery-port", "0"]).is_err());
        assert!(Cli::try_parse_from(["lantalk", "server", "--beacon-addr", "::1"]).is_err());
        let Some(Command::Scan(s)) = Cli::parse_from(["lantalk", "scan"]).command else {
            panic!("scan")
        };
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert_eq!(s.discovery_port, DEFAULT_DISCOVERY_PORT);
    }

    #[test]
    fn web_flags() {
        let Some(Command::Host(h)) =
            Cli::parse_from(["lantalk", "host", "--web-port", "8080"]).command
        else {
            panic!("host")
        };
        assert_eq!(h.server.web_port, Some(8080));
        assert!(!h.server.no_web);
        let Some(Command::Server(a)) = Cli::parse_from(["lantalk", "server", "--no-web"]).command
        else {
            panic!("server")
        };
        assert!(a.no_web && a.web_port.is_none());
        assert!(Cli::try_parse_from(["lantalk", "server", "--no-web", "--web-port", "1"]).is_err());
    }

    #[test]
    fn host_flags() {
        let Some(Command::Host(h)) = Cli::parse_from(["lantalk", "host"]).command else {
            panic!("host")
        };
        assert_eq!(h.max_peers, 1);
        assert_eq!(h.server.port, DEFAULT_PORT);
        assert_eq!(h.server.approval.approve_timeout, Duration::from_secs(60));
        assert!(!h.server.approval.remember);
        let cli = Cli::parse_from([
            "lantalk",
            "host",
            "--max-peers",
            "3",
            "--approve-timeout",
            "2.5",
            "--remember",
            "--name",
            "Alice",
        ]);
        let Some(Command::Host(h)) = cli.command else {
            panic!("host")
        };
        assert_eq!(h.max_peers, 3);
        assert_eq!(h.server.name, "Alice");
        assert_eq!(
            h.server.approval.approve_timeout,
            Duration::from_millis(2500)
        );
        assert!(h.server.approval.remember);
        assert!(Cli::try_parse_from(["lantalk", "host", "--max-peers", "0"]).is_err());
        let Some(Command::Server(a)) = Cli::parse_from(["lantalk", "server", "--approve"]).command
        else {
            panic!("server")
        };
        assert!(a.approval.approve);
    }

    #[test]
    fn zero_limits_dash_names_and_timeouts() {
        let bad = |args: &[&str]| Cli::try_parse_from(args).is_err();
        assert!(bad(&["lantalk", "server", "--max-clients", "0"]));
        assert!(bad(&["lantalk", "server", "--idle-timeout", "0"]));
        assert_eq!(
            parse_keep("7d"),
            Ok(Keep::For(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(parse_keep("0"), Ok(Keep::Nothing));
        assert_eq!(parse_keep("0h"), Ok(Keep::Nothing));
        assert_eq!(parse_keep("Forever"), Ok(Keep::Forever));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("500 MB"), Ok(500_000_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        for nonsense in ["", "GiB", "-1", "1.5GB", "9999999999TiB"] {
            assert!(parse_size(nonsense).is_err(), "{nonsense:?}");
        }
        assert!(bad(&["lantalk", "server", "--files-keep", "0"]));
        for nonsense in ["", "d", "7", "7w", "-1d", "99999999999999999999d"] {
            assert!(parse_keep(nonsense).is_err(), "{nonsense:?}");
        }
        assert!(bad(&[
            "lantalk",
            "server",
            "--no-history",
            "--history-keep",
            "1d"
        ]));
        assert!(bad(&["lantalk", "server", "--history-on-join", "999"]));
        let Some(Command::Server(a)) = Cli::parse_from([
            "lantalk",
            "server",
            "--idle-timeout",
            "off",
            "--name",
            "-x-",
        ])
        .command
        else {
            panic!("server")
        };
        assert_eq!(a.idle_timeout, Timeout(None));
        assert_eq!(a.name, "-x-");
        let Some(Command::Client(c)) =
            Cli::parse_from(["lantalk", "client", "127.0.0.1", "--name", "-dash"]).command
        else {
            panic!("client")
        };
        assert_eq!(c.name.as_deref(), Some("-dash"));
    }

    /// `--help` lists every command `/help` does: both come from one table.
    #[test]
    fn help_lists_the_command_tables() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = |cli: &mut clap::Command, sub: &str| {
            cli.find_subcommand_mut(sub)
                .expect(sub)
                .render_long_help()
                .to_string()
        };
        let client = help(&mut cli, "client");
        for c in commands::CHAT {
            assert!(client.contains(c.name), "client --help lacks {}", c.name);
        }
        let host = help(&mut cli, "host");
        for c in commands::CONSOLE.iter().chain(commands::APPROVAL) {
            assert!(host.contains(c.name), "host --help lacks {}", c.name);
        }
        let server = help(&mut cli, "server");
        for c in commands::CONSOLE {
            assert!(server.contains(c.name), "server --help lacks {}", c.name);
        }
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
