//! Our two programs, for the end-to-end tests (shared test support): their
//! paths, a label for messages, and a server started the common way.
//!
//! Included with `#[path = "support/ours.rs"] mod ours;`, next to
//! `proc.rs` and `tempdir.rs`, which it uses.

#![allow(dead_code)]

use std::process::Command;

use crate::proc::{Proc, START};
use crate::tempdir::TempDir;

pub const SMOL: &str = env!("CARGO_BIN_EXE_lantalk-smol");
pub const STD: &str = env!("CARGO_BIN_EXE_lantalk-std");

/// `lantalk-smol` or `lantalk-std`, for messages.
pub fn bin_label(bin: &str) -> &'static str {
    if bin == SMOL {
        "lantalk-smol"
    } else {
        "lantalk-std"
    }
}

/// The command [`OurServer::start`] runs, for a test that runs it itself
/// (to see it refuse to start, say).
pub fn server_command(bin: &str, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "server",
        "--bind",
        "127.0.0.1",
        "--no-discovery",
        "--port",
        "0",
    ])
    .arg("--data-dir")
    .arg(dir)
    .args(args)
    .env_remove("LANTALK_DATA_DIR")
    .env_remove("LANTALK_LOG_LEVEL")
    .current_dir(dir);
    cmd
}

/// A running `BIN server` on 127.0.0.1, with a data directory of its own.
pub struct OurServer {
    pub proc: Proc,
    pub port: u16,
    /// From the banner's `Key fingerprint:` line.
    pub fingerprint: String,
    pub dir: TempDir,
}

impl OurServer {
    /// `BIN server --bind 127.0.0.1 --no-discovery --port 0 --data-dir DIR
    /// ARGS…`, with no LanTalk variables inherited from the environment.
    pub fn start(bin: &str, args: &[&str]) -> OurServer {
        OurServer::start_in(bin, TempDir::new("server"), args)
    }

    /// [`OurServer::start`] with a data directory given (one a server used
    /// before, say).
    pub fn start_in(bin: &str, dir: TempDir, args: &[&str]) -> OurServer {
        let cmd = server_command(bin, dir.path(), args);
        let proc = Proc::spawn(format!("{} server", bin_label(bin)), cmd);
        let port = proc.wait_out("\"Listening on 127.0.0.1:PORT\"", START, |text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Listening on 127.0.0.1:"))
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        let fingerprint = proc.wait_out("\"Key fingerprint:\"", START, |text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("Key fingerprint: "))
                .map(|f| f.trim().to_string())
        });
        OurServer {
            proc,
            port,
            fingerprint,
            dir,
        }
    }
}
