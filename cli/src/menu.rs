//! The interactive start, for people who run the program with no arguments:
//! the LanTalk banner, a menu, and a few questions with sensible defaults.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use lantalk_core::driver::Runtime;
use lantalk_core::names::validate_username;

use crate::args::{ClientArgs, PasswordArgs, ServerArgs, DEFAULT_PORT};
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
    term::print("\n  [1]  Start a Server\n  [2]  Join as Client\n\n");
    let choice = ask("Choose (1 or 2): ", |s| match s {
        "1" | "2" => Ok(s.to_string()),
        _ => Err("Please enter 1 or 2.".into()),
    });
    if choice == "1" {
        let port = ask(&format!("Port (default {DEFAULT_PORT}): "), parse_port);
        let name = ask("Server display name (default Server): ", |s| {
            Ok(if s.is_empty() {
                "Server".to_string()
            } else {
                s.to_string()
            })
        });
        let args = ServerArgs {
            port,
            name,
            ..crate::default_server_args()
        };
        crate::server_cmd::run::<R>(args, runtime_name)
    } else {
        let server = ask("Server address (host or host:port): ", |s| {
            crate::client_cmd::resolve(s).map(|_| s.to_string())
        });
        let name = ask("Display name: ", |s| {
            validate_username(s).map(|_| s.to_string())
        });
        let args = ClientArgs {
            server: Some(server),
            name: Some(name),
            password: PasswordArgs::default(),
            allow_plaintext: false,
            accept_new: false,
            data_dir: None,
            quiet: false,
        };
        crate::client_cmd::run::<R>(args)
    }
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
        term::print(question);
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                term::eprint("\nNo more input; leaving.\n");
                std::process::exit(if stdin.is_terminal() { 0 } else { 2 });
            }
            Ok(_) => {}
        }
        match check(line.trim()) {
            Ok(v) => return v,
            Err(msg) => term::print(&format!("{msg}\n")),
        }
    }
}
