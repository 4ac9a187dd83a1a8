//! The interactive start, for people who run the program with no arguments:
//! the LanTalk banner, a menu, and a few questions with sensible defaults.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use lantalk_core::names::validate_username;
use lantalk_os::Runtime;

use crate::args::{ClientArgs, HostArgs, PasswordArgs, ServerArgs, DEFAULT_PORT};
use crate::style::Line;
use crate::term;

const BANNER: &str = r"
  _                 _____     _ _
 | |               |_   _|   | | |
 | |     __ _ _ __  | | __ _| | | __
 | |    / _` | '_ \ | |/ _` | | |/ /
 | |___| (_| | | | || | (_| | |   <
 |______\__,_|_| |_\_/ \__,_|_|_|\_\

  LAN chat — instant, private, no internet needed.
";

pub fn run<R: Runtime>(runtime_name: &str) -> ExitCode {
    term::print(BANNER);
    term::print(
        "\n  [1]  Start a Server\n  [2]  Join as Client\n  \
         [3]  Host a private chat (you approve who joins)\n\n",
    );
    let choice = ask("Choose (1, 2 or 3): ", |s| match s {
        "1" | "2" | "3" => Ok(s.to_string()),
        _ => Err("Please enter 1, 2 or 3.".into()),
    });
    if choice == "1" || choice == "3" {
        let port = ask(&format!("Port (default {DEFAULT_PORT}): "), parse_port);
        let default_name = if choice == "1" { "Server" } else { "Host" };
        let question = format!("{} display name (default {default_name}): ", default_name);
        let name = ask(&question, |s| {
            Ok(if s.is_empty() {
                default_name.to_string()
            } else {
                s.to_string()
            })
        });
        let server = ServerArgs {
            port,
            name,
            ..crate::default_server_args()
        };
        if choice == "3" {
            let args = HostArgs {
                server,
                ..crate::default_host_args()
            };
            return crate::host_cmd::run::<R>(args, runtime_name);
        }
        crate::server_cmd::run::<R>(server, runtime_name)
    } else {
        let server = choose_server();
        let name = ask("Display name: ", |s| {
            validate_username(s).map(|_| s.to_string())
        });
        let args = ClientArgs {
            server: Some(server),
            name: Some(name),
            password: PasswordArgs::default(),
            allow_plaintext: false,
            accept_new: false,
            // Not parsed by clap here, so read its variable by hand.
            data_dir: std::env::var_os("LANTALK_DATA_DIR").map(Into::into),
            quiet: false,
            download_dir: None,
        };
        crate::client_cmd::run::<R>(args)
    }
}

/// Offers the servers a LAN scan finds, as LanTalk 2.0 does, or asks for an
/// address.
fn choose_server() -> String {
    if crate::discovery::disabled_by_env() {
        return ask_address();
    }
    term::print("Scanning for LanTalk servers…\n");
    let found = crate::discovery::scan(&crate::discovery::ScanOptions::default())
        .table
        .servers();
    if found.is_empty() {
        term::print("No servers found via auto-discovery (`scan` says why that may be).\n\n");
    } else {
        let n = found.len();
        // The summaries carry the servers' own names: one Line each.
        let mut list = vec![
            Line::plain(format!("Found {n} server(s):")),
            Line::plain(""),
        ];
        for (i, s) in found.iter().enumerate() {
            list.push(Line::plain(format!(
                "  [{}] {}",
                i + 1,
                crate::scan_cmd::summary(s)
            )));
        }
        list.push(Line::plain("  [m] Enter manually"));
        list.push(Line::plain(""));
        term::print(&list);
        let choice = ask("Choose server: ", |s| match s.parse::<usize>() {
            Ok(i) if (1..=n).contains(&i) => Ok(Some(i - 1)),
            _ if s.is_empty() || s.eq_ignore_ascii_case("m") => Ok(None),
            _ => Err(format!("Please enter a number from 1 to {n}, or m.")),
        });
        if let Some(i) = choice {
            return crate::scan_cmd::address(&found[i]);
        }
    }
    ask_address()
}

fn ask_address() -> String {
    ask("Server address (host or host:port): ", |s| {
        crate::client_cmd::resolve(s).map(|_| s.to_string())
    })
}

fn parse_port(s: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    s.parse::<u16>()
        .map_err(|_| "Please enter a port number from 0 to 65535.".to_string())
}

/// Asks until `check` accepts the (trimmed) answer. End of input exits: there
/// is nobody left to ask.
pub fn ask<T>(question: &str, check: impl Fn(&str) -> Result<T, String>) -> T {
    let stdin = std::io::stdin();
    loop {
        term::prompt(&Line::plain(question));
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                term::eprint("\nNo more input; leaving.");
                std::process::exit(if stdin.is_terminal() { 0 } else { 2 });
            }
            Ok(_) => {}
        }
        match check(line.trim()) {
            Ok(v) => return v,
            Err(msg) => term::print(&Line::plain(msg)),
        }
    }
}
