//! `host` (one-to-one chat where the host approves each connection) and
//! `server --approve` (the same approval on a group server).
//!
//! The core decides everything: it asks the operator
//! ([`lantalk_core::server::Action::AskOperator`]) and takes the next console line as the
//! answer. This file configures it, keeps `trusted_peers` in the data
//! directory, and shows the question and, in host mode, the peers' chat on
//! the console. The rest is the `server` command's (see `server_cmd`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lantalk_core::client::ClientEvent;
use lantalk_core::server::{
    Approval, ApprovalRequest, EventDetail, Level, ServerEvent, TrustedPeer,
};
use lantalk_os::Runtime;

use crate::args::{ApprovalArgs, HostArgs};
use crate::keys;
use crate::logger::Logger;
use crate::style::Style;
use crate::term;

pub fn run<R: Runtime>(args: HostArgs, runtime_name: &str) -> ExitCode {
    crate::server_cmd::run_as::<R>(args.server, Some(args.max_peers), runtime_name)
}

/// The approval settings and where the trusted peers are kept; `None` when
/// nobody approves connections (a plain `server`).
pub fn approval(
    args: &ApprovalArgs,
    host: bool,
    data_dir: &Path,
) -> Result<Option<(Approval, PathBuf)>, String> {
    if !(host || args.approve) {
        return Ok(None);
    }
    let path = data_dir.join("trusted_peers");
    let trusted = keys::load_trusted(&path)?;
    let approval = Approval {
        timeout: args.approve_timeout,
        remember: args.remember,
        trusted,
    };
    Ok(Some((approval, path)))
}

/// Lines for the banner.
pub fn banner(approval: &Approval, max_peers: Option<usize>, trusted_path: &Path) -> String {
    let secs = approval.timeout.as_secs_f64();
    let mut s = format!("  Approval: you approve each connection (y/n, {secs} s to answer)\n");
    if let Some(n) = max_peers {
        let peers = if n == 1 {
            "one peer".to_string()
        } else {
            format!("{n} peers")
        };
        s.push_str(&format!("  Chats with {peers} at a time\n"));
    }
    let n = approval.trusted.len();
    if approval.remember || n > 0 {
        s.push_str(&format!(
            "  Trusted peers: {n} in {}{}\n",
            trusted_path.display(),
            if approval.remember {
                "; approved peers are added"
            } else {
                ""
            }
        ));
    }
    s
}

/// The console's side of approval.
pub struct ApprovalConsole {
    pub trusted_path: PathBuf,
    /// Host mode: the peers' chat lines are shown on the console.
    pub show_chat: bool,
    pub style: Style,
}

impl ApprovalConsole {
    /// Carries out what `event` asks of the console. Returns true when it
    /// was shown here (it then goes to the log file only).
    /// Asks the operator about a peer: the question on the console (with
    /// the bell on a terminal), and in the log.
    pub fn ask(&mut self, request: &ApprovalRequest, logger: &mut Logger) {
        // The question names the peer as it asked to be called.
        let question = request.to_string();
        let line = self.style.info(question.clone());
        if self.style.colour {
            term::print_ringing(&line);
        } else {
            term::print(&line);
        }
        logger.log_to_file(Level::Info, &question);
    }

    /// Stores the trusted peers (the whole list, atomically, under a lock).
    pub fn persist(&mut self, peers: &[TrustedPeer], logger: &mut Logger) {
        if let Err(e) = keys::save_trusted(&self.trusted_path, peers) {
            logger.log(
                Level::Warning,
                &format!("Could not save trusted peers: {e}"),
            );
        }
    }

    pub fn event(&mut self, event: &ServerEvent, logger: &mut Logger) -> bool {
        match event.detail.as_deref() {
            Some(EventDetail::Chat { user, text }) if self.show_chat => {
                let now = crate::clock::hhmm();
                let message = ClientEvent::Message {
                    ts: now.clone(),
                    user: user.clone(),
                    text: text.clone(),
                    room: None,
                    id: None,
                    at_ms: None,
                };
                let at = crate::style::Whereabouts::default();
                if let Some(line) = self.style.event(&message, &now, "", &at) {
                    term::print(&line);
                }
                logger.log_to_file(event.level, &event.message);
                true
            }
            _ => false,
        }
    }
}
