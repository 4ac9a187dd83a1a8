//! The `lantalk-smol` and `lantalk-std` programs: the same command line over
//! either runtime. Everything here is generic over
//! [`lantalk_core::driver::Runtime`]; each binary only picks one.

mod args;
mod client_cmd;
mod clock;
mod discovery;
mod editor;
mod files;
mod folder;
mod history;
mod host_cmd;
mod keys;
mod logger;
mod menu;
mod password;
mod plugins;
mod rooms;
mod scan_cmd;
mod server_cmd;
mod style;
mod term;
mod transfer_io;
mod transfers;
mod web;
mod web_assets;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use lantalk_os::Runtime;

use args::{Cli, Command, HostArgs, ServerArgs};

/// Runs the program named after `runtime_name` on runtime `R`.
pub fn main<R: Runtime>(runtime_name: &str) -> ExitCode {
    // Named after the binary, so `--version` says `lantalk-smol 0.1.0`.
    let name: &'static str = match runtime_name {
        "smol" => "lantalk-smol",
        "std" => "lantalk-std",
        _ => "lantalk",
    };
    let matches = Cli::command().name(name).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Some(Command::Server(args)) => server_cmd::run::<R>(args, runtime_name),
        Some(Command::Host(args)) => host_cmd::run::<R>(args, runtime_name),
        Some(Command::Client(args)) => client_cmd::run::<R>(args),
        Some(Command::Fingerprint(args)) => fingerprint(args),
        Some(Command::Scan(args)) => scan_cmd::run(args, runtime_name),
        Some(Command::History(args::HistoryCommand::Export(args))) => history::export(args),
        None => menu::run::<R>(runtime_name),
    }
}

/// `fingerprint`: the keys' fingerprints, to compare out of band.
fn fingerprint(args: args::FingerprintArgs) -> ExitCode {
    let show = || -> Result<String, String> {
        let dir = files::data_dir(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        for (what, file) in [("Server key", "server_key"), ("Client key", "client_key")] {
            let path = dir.join(file);
            let key = keys::load_or_create(&path)?;
            out.push_str(&format!(
                "{what}: {} ({})\n",
                key.fingerprint(),
                path.display()
            ));
        }
        Ok(out)
    };
    match show() {
        Ok(text) => {
            term::print(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            term::eprint(&format!("error: {e}\n"));
            ExitCode::FAILURE
        }
    }
}

/// `server` with every flag at its default, as the menu starts it.
fn default_server_args() -> ServerArgs {
    match Cli::parse_from(["lantalk", "server"]).command {
        Some(Command::Server(args)) => args,
        _ => unreachable!("`server` parses as the server command"),
    }
}

fn default_host_args() -> HostArgs {
    match Cli::parse_from(["lantalk", "host"]).command {
        Some(Command::Host(args)) => args,
        _ => unreachable!("`host` parses as the host command"),
    }
}
