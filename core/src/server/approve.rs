//! The operator approves each connection (host mode, `server --approve`).
//!
//! A peer that logged in (name free, password proven) is not a user yet. An
//! encrypted peer first runs the commit-then-reveal exchange of
//! [`crate::approval`], which gives both sides the same short code; then it
//! waits for the operator, who is asked about one peer at a time
//! ([`Action::AskOperator`]) and answers with
//! [`Server::handle_approval`] or the next console line. Each waiting peer
//! has its own deadline (`Approval::timeout`), running from the moment it is
//! ready to be asked, whether or not it is the one being asked about. A peer
//! whose key the operator trusted earlier (`--remember`) is let in without
//! asking.

use std::cmp::Reverse;
use std::time::Duration;

use super::{
    Action, ApprovalRequest, CloseReason, ConnId, EventKind, Level, Phase, Server, TrustedPeer,
    Wire,
};
use crate::approval as wire;
use crate::names::name_key;
use crate::protocol;
use crate::secure;
use crate::time::Now;

/// Where a peer is in its approval.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// `approval_needed` sent; the client's commitment is due.
    AwaitCommit,
    /// Our nonce sent; the client's reveal is due.
    AwaitReveal { commit: Vec<u8>, nonce: [u8; 32] },
    /// Ready: waiting to be asked about, or for the operator's answer.
    /// `code` is `None` for an unencrypted peer.
    Waiting { code: Option<String> },
}

/// The refusal a peer gets when the operator says no.
pub(crate) const DENIED: &str = "The host did not approve the connection.";
/// ... when the host leaves before answering.
pub(crate) const HOST_LEFT: &str = "The host left before approving the connection.";

/// Console help for the approval commands.
/// How the operator answers a question, for the console's `/help`.
pub(crate) const APPROVAL_ANSWER: &str =
    "y / n   answer the question about an incoming connection \
(until it is answered, other lines are not sent)\n";

/// `60 s`, `1.5 s`.
fn show_secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

impl Server {
    /// The operator's answer about the peer `id` (an
    /// [`ApprovalRequest::id`]). Answers about peers that are gone or no
    /// longer waiting are ignored.
    pub fn handle_approval(&mut self, now: Now, id: ConnId, approve: bool) {
        self.expire(now);
        self.answer(now, id, approve);
        self.ask_next(now);
    }

    /// The peer the operator is being asked about right now.
    pub fn pending_approval(&self) -> Option<ConnId> {
        self.asked
    }

    /// Peers let in without asking.
    pub fn trusted_peers(&self) -> &[TrustedPeer] {
        match &self.config.approval {
            Some(a) => &a.trusted,
            None => &[],
        }
    }

    /// Whether `name` belongs to a user, or to a peer waiting for approval.
    pub(super) fn name_taken(&self, name: &str) -> bool {
        let key = name_key(name);
        if self.users.contains_key(&key) || self.plugins.is_reserved(name) {
            return true;
        }
        self.config.approval.is_some()
            && self
                .conns
                .values()
                .any(|c| matches!(&c.phase, Phase::Approving { name: n, .. } if name_key(n) == key))
    }

    /// Why a login must be refused because enough users are logged in.
    fn busy(&self) -> Option<String> {
        let max = self.config.max_users?;
        (self.users.len() >= max).then(|| match max {
            1 => "The host is busy: it chats with one peer at a time.".to_string(),
            n => format!("The host is busy: it chats with {n} peers at a time."),
        })
    }

    /// The login checks passed: log in, or start the approval.
    pub(super) fn admit(&mut self, now: Now, conn: ConnId, name: String) {
        if let Some(text) = self.busy() {
            return self.refuse_login(now, conn, &text);
        }
        let Some(approval) = &self.config.approval else {
            return self.complete_login(now, conn, name);
        };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Phase::LoggingIn { deadline, .. } = c.phase else {
            return;
        };
        let ip = c.ip();
        let Wire::Secure(session) = &c.wire else {
            // Unencrypted (LanTalk 2.0): no key to check, no code to show.
            return self.wait_for_operator(now, conn, name, None);
        };
        let peer = session.remote();
        let trusted = approval
            .trusted
            .iter()
            .find(|t| t.key == *peer)
            .map(|t| (t.name.clone(), secure::fingerprint(peer)));
        if let Some((as_name, fingerprint)) = trusted {
            self.event(
                Level::Info,
                EventKind::Approval,
                format!(
                    "Let {name} ({ip}) in without asking: key {fingerprint} is trusted \
                     (approved as {as_name})."
                ),
            );
            return self.complete_login(now, conn, name);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Approving {
                deadline,
                name,
                step: Step::AwaitCommit,
            };
        }
        self.send(conn, wire::needed());
    }

    /// A line from a peer in approval.
    pub(super) fn handle_approval_line(&mut self, now: Now, conn: ConnId, line: &[u8]) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Phase::Approving { name, step, .. } = &c.phase else {
            return;
        };
        let (name, step, ip) = (name.clone(), step.clone(), c.ip());
        match step {
            Step::AwaitCommit => {
                let commit = match wire::parse_commit(line) {
                    Ok(commit) => commit,
                    Err(m) => {
                        let reason = format!("Malformed approval: {}.", m.0);
                        return self.refuse_login(now, conn, &reason);
                    }
                };
                let Some((_, rng)) = self.secure.as_mut() else {
                    return;
                };
                let nonce = rng.seed();
                let timeout = self.approval_timeout();
                let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
                self.set_step(conn, Step::AwaitReveal { commit, nonce });
                self.send(conn, wire::nonce(&nonce, secs));
            }
            Step::AwaitReveal { commit, nonce } => {
                let revealed = match wire::parse_reveal(line) {
                    Ok(n) => n,
                    Err(m) => {
                        let reason = format!("Malformed approval: {}.", m.0);
                        return self.refuse_login(now, conn, &reason);
                    }
                };
                if !secure::approval_commit_matches(&commit, &revealed) {
                    self.event(
                        Level::Warning,
                        EventKind::Approval,
                        format!(
                            "{name} ({ip}) revealed a nonce that does not match its \
                             commitment: refused (tampering?)."
                        ),
                    );
                    return self.refuse_login(
                        now,
                        conn,
                        "The approval exchange failed: the nonce does not match its commitment.",
                    );
                }
                let Some(Wire::Secure(session)) = self.conns.get(&conn).map(|c| &c.wire) else {
                    return;
                };
                let code = secure::approval_code(session.hash(), &revealed, &nonce);
                self.wait_for_operator(now, conn, name, Some(code));
            }
            // Nothing passes before approval; a client of ours sends nothing.
            Step::Waiting { .. } => self.event(
                Level::Debug,
                EventKind::Malformed,
                format!("Ignored a line from {name} ({ip}): not approved yet"),
            ),
        }
    }

    fn approval_timeout(&self) -> Duration {
        self.config
            .approval
            .as_ref()
            .map(|a| a.timeout)
            .unwrap_or_default()
    }

    fn set_step(&mut self, conn: ConnId, next: Step) {
        if let Some(Phase::Approving { step, .. }) = self.conns.get_mut(&conn).map(|c| &mut c.phase)
        {
            *step = next;
        }
    }

    /// The peer is ready to be asked about: its own deadline starts now.
    fn wait_for_operator(&mut self, now: Now, conn: ConnId, name: String, code: Option<String>) {
        let deadline = now.instant + self.approval_timeout();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ip = c.ip();
        let plaintext = c.is_plaintext();
        c.phase = Phase::Approving {
            deadline,
            name: name.clone(),
            step: Step::Waiting { code },
        };
        self.timers.push(Reverse((deadline, conn)));
        if plaintext {
            // A LanTalk 2.0 client gives up if its login is not answered
            // within 10 s, with a traceback; any line answers it (it then
            // waits for chat without a deadline), and this one says why
            // nothing happens yet. Its `auth_ok` or `auth_fail` follows.
            let wait = show_secs(self.approval_timeout());
            let text = format!("Waiting for the host to approve (up to {wait})...");
            self.send(conn, protocol::system(now.wall, &text));
        }
        if self.asked.is_some() || !self.waiting.is_empty() {
            self.event(
                Level::Info,
                EventKind::Approval,
                format!(
                    "{name} ({ip}) is waiting to be approved; you will be asked once the \
                     current question is answered."
                ),
            );
        }
        self.waiting.push_back(conn);
        self.ask_next(now);
    }

    /// Asks the operator about the next waiting peer, unless a question is
    /// open already.
    pub(super) fn ask_next(&mut self, now: Now) {
        while self.asked.is_none() && !self.shut_down {
            let Some(conn) = self.waiting.pop_front() else {
                return;
            };
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            let Phase::Approving {
                name,
                step: Step::Waiting { code },
                ..
            } = &c.phase
            else {
                continue;
            };
            let request = ApprovalRequest {
                id: conn,
                addr: c.addr,
                name: name.clone(),
                fingerprint: match &c.wire {
                    Wire::Secure(session) => Some(secure::fingerprint(session.remote())),
                    _ => None,
                },
                code: code.clone(),
            };
            if let Some(text) = self.busy() {
                self.refuse_login(now, conn, &text);
                continue;
            }
            self.asked = Some(conn);
            self.actions
                .push_back(Action::AskOperator(Box::new(request)));
        }
    }

    fn answer(&mut self, now: Now, id: ConnId, approve: bool) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let Phase::Approving {
            name,
            step: Step::Waiting { .. },
            ..
        } = &c.phase
        else {
            return;
        };
        let (name, ip) = (name.clone(), c.ip());
        let key = match &c.wire {
            Wire::Secure(session) => Some(session.remote().to_vec()),
            _ => None,
        };
        if self.asked == Some(id) {
            self.asked = None;
        } else {
            self.waiting.retain(|&w| w != id);
        }
        if !approve {
            self.event(
                Level::Info,
                EventKind::Approval,
                format!("Refused {name} ({ip})."),
            );
            return self.refuse_login(now, id, DENIED);
        }
        if let Some(text) = self.busy() {
            return self.refuse_login(now, id, &text);
        }
        if self.users.contains_key(&name_key(&name)) || self.plugins.is_reserved(&name) {
            return self.refuse_login(now, id, "Username already taken.");
        }
        self.event(
            Level::Info,
            EventKind::Approval,
            format!("Approved {name} ({ip})."),
        );
        let remember = self.config.approval.as_ref().is_some_and(|a| a.remember);
        if let (true, Some(key)) = (remember, key) {
            let fingerprint = secure::fingerprint(&key);
            if let Some(a) = self.config.approval.as_mut() {
                a.trusted.retain(|t| t.key != key);
                a.trusted.push(TrustedPeer {
                    name: name.clone(),
                    key,
                });
                let list = a.trusted.clone();
                self.event(
                    Level::Info,
                    EventKind::Approval,
                    format!(
                        "Remembered {name}'s key {fingerprint}: let in without asking next time."
                    ),
                );
                self.actions.push_back(Action::PersistTrusted(list));
            }
        }
        self.complete_login(now, id, name);
    }

    /// A peer's deadline passed while it waited for the operator.
    pub(super) fn approval_timed_out(&mut self, now: Now, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (ip, name) = match &c.phase {
            Phase::Approving { name, .. } => (c.ip(), name.clone()),
            _ => return,
        };
        if self.asked == Some(conn) {
            self.asked = None;
            self.withdrawn = true;
        } else {
            self.waiting.retain(|&w| w != conn);
        }
        let secs = show_secs(self.approval_timeout());
        self.event(
            Level::Info,
            EventKind::Approval,
            format!("No answer about {name} ({ip}) within {secs}: refused."),
        );
        let reason = format!("The host did not answer in time ({secs}).");
        self.refuse_login_as(now, conn, &reason, CloseReason::AuthTimeout);
    }

    /// A peer in approval is being forgotten (it left, or was refused).
    pub(super) fn forget_approval(&mut self, conn: ConnId) {
        if self.asked == Some(conn) {
            self.asked = None;
            self.withdrawn = true;
        }
        self.waiting.retain(|&w| w != conn);
    }

    /// A console line (not a command) while a question is open: it answers
    /// it, and is never sent as chat.
    pub(super) fn console_answer(&mut self, now: Now, id: ConnId, line: &str) {
        match line.to_lowercase().as_str() {
            "y" | "yes" => self.answer(now, id, true),
            "n" | "no" => self.answer(now, id, false),
            _ => self.reply("Please answer y or n."),
        }
    }

    pub(super) fn console_trusted(&mut self) {
        let list: Vec<String> = self
            .trusted_peers()
            .iter()
            .map(|t| format!("{} ({})", t.name, secure::fingerprint(&t.key)))
            .collect();
        if list.is_empty() {
            self.reply("No trusted peers.");
        } else {
            self.reply(format!("Trusted peers: {}", list.join(", ")));
        }
    }

    pub(super) fn console_forget(&mut self, who: &str) {
        let key = name_key(who);
        let Some(a) = self.config.approval.as_mut() else {
            return self.reply(format!("No trusted peer named '{who}'."));
        };
        let before = a.trusted.len();
        a.trusted.retain(|t| name_key(&t.name) != key);
        if a.trusted.len() == before {
            return self.reply(format!("No trusted peer named '{who}'."));
        }
        let list = a.trusted.clone();
        self.event(
            Level::Info,
            EventKind::Approval,
            format!("Forgot {who}'s key: they will be asked about next time."),
        );
        self.actions.push_back(Action::PersistTrusted(list));
        self.reply(format!("Forgot {who}."));
    }
}
