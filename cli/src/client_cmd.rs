//! `client`: join a server and show the chat, one plain line per event.

use std::io::{ErrorKind, IsTerminal};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use lantalk_core::client::{ClientConfig, ClientEvent};
use lantalk_core::driver::{ClientHost, Command, Control, Runtime};
use lantalk_core::names::validate_username;

use crate::args::{ClientArgs, DEFAULT_PORT};
use crate::term;

pub fn run<R: Runtime>(args: ClientArgs) -> ExitCode {
    match start::<R>(args) {
        Ok(code) => code,
        Err(msg) => {
            term::eprint(&format!("error: {msg}\n"));
            ExitCode::FAILURE
        }
    }
}

fn start<R: Runtime>(args: ClientArgs) -> Result<ExitCode, String> {
    let interactive = std::io::stdin().is_terminal();
    let server = match args.server.clone() {
        Some(s) => s,
        None if interactive => crate::menu::ask("Server address (host or host:port): ", |s| {
            (!s.is_empty())
                .then(|| s.to_string())
                .ok_or("An address is required.".into())
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
    connect::<R>(&server, &addrs, name, password, interactive)
}

/// Joins and runs the session; shared with the interactive menu.
pub fn connect<R: Runtime>(
    server: &str,
    addrs: &[SocketAddr],
    name: String,
    password: Option<String>,
    interactive: bool,
) -> Result<ExitCode, String> {
    let mut config = ClientConfig::new(name, password);
    config.ask_password = interactive;
    let host = CliClientHost {
        interactive,
        control: None,
        reading: false,
    };
    let outcome =
        R::connect(addrs, config, Box::new(host)).map_err(|e| connect_error(server, e))?;
    if outcome.expected {
        Ok(ExitCode::SUCCESS)
    } else {
        let hint = if outcome.reason.contains("needs a password") {
            " Pass it with --password-env VAR or --password-file FILE."
        } else {
            ""
        };
        term::eprint(&format!("{}{hint}\n", outcome.reason));
        Ok(ExitCode::FAILURE)
    }
}

fn connect_error(server: &str, e: std::io::Error) -> String {
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

struct CliClientHost {
    interactive: bool,
    control: Option<Control>,
    /// Whether the thread reading the user's lines has started.
    reading: bool,
}

impl CliClientHost {
    fn start_reading(&mut self) {
        if self.reading {
            return;
        }
        let Some(control) = self.control.clone() else {
            return;
        };
        self.reading = true;
        let _ = std::thread::Builder::new()
            .name("input".into())
            .spawn(move || {
                term::for_each_stdin_line(|line| control(Command::Line(line)));
                control(Command::EndOfInput);
            });
    }
}

impl ClientHost for CliClientHost {
    fn wall_time(&mut self) -> lantalk_core::WallTime {
        crate::clock::wall_time()
    }

    fn event(&mut self, event: &ClientEvent) {
        let line = match event {
            ClientEvent::PasswordRequired => {
                if let Some(control) = self.control.clone() {
                    let _ =
                        std::thread::Builder::new().spawn(move || {
                            match crate::password::prompt("Password: ") {
                                Some(pw) => control(Command::Password(pw)),
                                None => control(Command::Shutdown),
                            }
                        });
                }
                return;
            }
            ClientEvent::Joined {
                username,
                server_name,
            } => {
                self.start_reading();
                format!(
                    "Connected as {username} to {server_name}. Type /help for commands, /quit to leave."
                )
            }
            ClientEvent::Message { ts, user, text } => format!("[{ts}] {user}: {text}"),
            ClientEvent::Pm {
                ts,
                from_user,
                text,
            } => format!("[{ts}] PM from {from_user}: {text}"),
            ClientEvent::PmSent { to, text } => {
                format!("[{}] PM to {to}: {text}", crate::clock::hhmm())
            }
            ClientEvent::System { ts, text } if ts.is_empty() => format!("*** {text} ***"),
            ClientEvent::System { ts, text } => format!("[{ts}] *** {text} ***"),
            ClientEvent::Notice(text) => format!("[{}] ! {text}", crate::clock::hhmm()),
            // Said once, on exit, by `connect`.
            ClientEvent::Refused { .. } | ClientEvent::Disconnected { .. } => return,
        };
        term::print(&format!("{line}\n"));
    }

    fn ready(&mut self, _server_addr: SocketAddr, control: Control) {
        let on_signal = control.clone();
        let _ = ctrlc::set_handler(move || on_signal(Command::Shutdown));
        self.control = Some(control);
        // Piped input is read at once: lines sent before the login completes
        // wait in the core. On a terminal, reading starts after the login so
        // that a password prompt has the terminal to itself.
        if !self.interactive {
            self.start_reading();
        }
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
