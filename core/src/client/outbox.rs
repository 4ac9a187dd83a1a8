//! What the user types: commands answered here, lines queued and paced
//! to the server's rate limit, keepalives.

use super::*;

/// A line the user typed, waiting to be sent.
#[derive(Clone, Debug)]
pub(super) struct Outgoing {
    /// The message text as the server gets it.
    pub(super) text: String,
    pub(super) kind: OutKind,
    /// The room it was typed in (servers of ours): a line held back by
    /// pacing still goes where it was typed, whatever the user did since.
    pub(super) room: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum OutKind {
    Chat,
    /// Text that starts with `/` but is not a command (typed as `//text`).
    Literal,
    /// `/me <action>`.
    Action(String),
    /// `/pm <to> <text>`.
    Pm {
        to: String,
        text: String,
    },
    /// Any other command: its answer is the server's.
    Command,
    /// A protocol line of ours (`/history`, `/search`), sent as it is.
    Request,
}

/// The pace the client keeps for a server limit of `rate`: one line fewer
/// per a slightly longer window. The server counts lines as they arrive and
/// we count them as they leave; without a margin, one line delayed on the
/// way makes the next burst look too fast (a pasted block used to end in
/// warnings and a kick for flooding).
pub fn paced(rate: Rate) -> Rate {
    Rate::new(
        rate.count.saturating_sub(1).max(1),
        rate.window + rate.window / 10 + Duration::from_millis(200),
    )
}

impl Client {
    pub(super) fn user_line(&mut self, now: Now, line: &str) {
        if matches!(self.phase, Phase::Closed | Phase::Leaving) {
            return;
        }
        if self.phase.is_logging_in() || self.awaiting_lobby {
            return self.early.push_back(line.to_string());
        }
        // Trimmed as the server will (Python's white space): a line of only
        // U+001C..U+001F must not go out as an empty message.
        let text = protocol::py_trim(line);
        if text.is_empty() {
            return;
        }
        // Said in a room (a message, `/me`, `//literal`) while we are not
        // yet back in the room the user spoke in: it waits for that room.
        let said_in_room = !text.starts_with('/')
            || text.starts_with("//")
            || protocol::split_word(text).0.eq_ignore_ascii_case("/me");
        if said_in_room && self.rejoin_hold.is_some() {
            return self.early.push_back(line.to_string());
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return self.notice(format!(
                "Not sent: the message has {chars} characters; the limit is {MAX_TEXT_CHARS}."
            ));
        }
        let kind = if let Some(literal) = text.strip_prefix("//") {
            // IRC's convention: `//usr/bin/env` says `/usr/bin/env`.
            return self.queue(now, format!("/{literal}"), OutKind::Literal);
        } else if !text.starts_with('/') {
            OutKind::Chat
        } else {
            let (cmd, rest) = protocol::split_word(text);
            match cmd.to_lowercase().as_str() {
                "/quit" | "/exit" | "/q" => return self.handle_quit(now),
                "/help" => {
                    let ours = !self.rooms.list.is_empty();
                    let help = crate::commands::chat_help(true, ours)
                        + &protocol::plugin_help(&self.plugin_commands);
                    return self.notice(help);
                }
                "/switch" if !self.rooms.list.is_empty() => return self.switch_command(rest),
                "/join" if !self.rooms.list.is_empty() && self.join_command(rest) => return,
                "/history" if !self.rooms.list.is_empty() => {
                    return self.history_command(now, rest)
                }
                "/search" if !self.rooms.list.is_empty() => return self.search_command(now, rest),
                "/send" if !self.rooms.list.is_empty() => return self.send_command(rest),
                "/files" if !self.rooms.list.is_empty() => return self.files_command(),
                "/get" if !self.rooms.list.is_empty() => return self.get_command(rest),
                "/cancel" if !self.rooms.list.is_empty() => return self.cancel_command(now, rest),
                "/clear" => return self.event(ClientEvent::Clear),
                "/me" if protocol::py_trim(rest).is_empty() => {
                    return self.notice("Usage: /me <action>".to_string())
                }
                "/me" => OutKind::Action(protocol::py_trim(rest).to_string()),
                "/pm" => {
                    let (to, body) = protocol::split_word(rest);
                    if to.is_empty() || protocol::py_trim(body).is_empty() {
                        return self.notice("Usage: /pm <user> <message>".to_string());
                    }
                    OutKind::Pm {
                        to: to.to_string(),
                        text: protocol::py_trim(body).to_string(),
                    }
                }
                _ => OutKind::Command,
            }
        };
        self.queue(now, text.to_string(), kind);
    }

    /// Takes up the lines typed before the server was known, in order.
    pub(super) fn replay_early(&mut self, now: Now) {
        self.awaiting_lobby = false;
        // One at a time, the rest still queued (a leaving client waits for
        // them), and each only once: a line may be held again at the back
        // (see `rejoin_hold`).
        for _ in 0..self.early.len() {
            let Some(line) = self.early.pop_front() else {
                break;
            };
            self.user_line(now, &line);
        }
    }

    /// The room spoken in before a reconnection did not take us back in
    /// time (refused, or gone): the lines kept for it are not said
    /// elsewhere; they are shown, so nothing typed is lost silently.
    pub(super) fn give_up_rejoin_hold(&mut self, now: Now) {
        let Some((room, until)) = self.rejoin_hold.take() else {
            return;
        };
        if now.instant < until {
            self.rejoin_hold = Some((room, until));
            return;
        }
        for line in std::mem::take(&mut self.early) {
            self.notice(format!("Not sent (not back in {room}): {line}"));
        }
    }

    /// Puts a line in the outbox; says so if pacing holds it back.
    pub(super) fn queue(&mut self, now: Now, text: String, kind: OutKind) {
        let room = self.speaking_in();
        self.outbox.push_back(Outgoing { text, kind, room });
        self.flush(now);
        if self.phase == Phase::Chatting {
            if let Some(held) = self.outbox.back().filter(|o| o.kind != OutKind::Request) {
                let (text, ahead) = (held.text.clone(), self.outbox.len() - 1);
                self.event(ClientEvent::Queued { text, ahead });
            }
        }
    }

    /// Sends a typed line, and reports it as sent.
    pub(super) fn send_outgoing(&mut self, out: Outgoing) {
        let secure = matches!(self.wire, Wire::Secure(_));
        let literal = out.kind == OutKind::Literal;
        let line = match (&out.kind, &out.room) {
            (OutKind::Request, _) => out.text.clone(),
            (_, Some(room)) => protocol::chat_in(room, &out.text, literal),
            // A server of ours relays it as text; LanTalk 2.0 has no way to.
            _ if literal && secure => protocol::chat_literal(&out.text),
            _ => protocol::chat(&out.text),
        };
        self.send_line(line);
        let room = out.room;
        match out.kind {
            OutKind::Chat | OutKind::Literal => self.event(ClientEvent::Sent {
                text: out.text,
                room,
            }),
            OutKind::Action(text) => self.event(ClientEvent::ActionSent { text, room }),
            // A server of ours confirms delivery (or says there is no such
            // user); LanTalk 2.0 says nothing on success.
            OutKind::Pm { to, text } if !secure => self.event(ClientEvent::PmSent { to, text }),
            OutKind::Pm { .. } | OutKind::Command | OutKind::Request => {}
        }
    }

    /// Sends what pacing allows (or a keepalive when nothing was sent for
    /// a while); closes when leaving and nothing is left.
    pub(super) fn flush(&mut self, now: Now) {
        if self.phase == Phase::Chatting {
            while !self.outbox.is_empty() {
                if let Some(w) = self.pacing.as_mut() {
                    if !w.try_hit(now.instant) {
                        break;
                    }
                }
                if let Some(out) = self.outbox.pop_front() {
                    self.send_outgoing(out);
                    self.last_sent = now.instant;
                }
            }
            if let Some(every) = self.keepalive {
                if !self.leaving && now.instant >= self.last_sent + every {
                    self.send_line(protocol::keepalive());
                    self.last_sent = now.instant;
                }
            }
        }
        if !self.leaving {
            return;
        }
        match self.phase {
            Phase::Chatting
                if self.outbox.is_empty() && self.early.is_empty() && !self.transfers.busy() =>
            {
                self.phase = Phase::Leaving;
                self.actions.push_back(ClientAction::Close);
            }
            // Lines typed before the login completes wait for it, unless the
            // user gave up on it (or it needs a password nobody can give).
            Phase::AwaitingRequest
            | Phase::Handshaking
            | Phase::AwaitingPake
            | Phase::AwaitingResult
            | Phase::AwaitingApproval
            | Phase::NeedTrust
            | Phase::NeedPassword
                if self.abandon_login
                    || matches!(self.phase, Phase::NeedPassword | Phase::NeedTrust) =>
            {
                self.outbox.clear();
                self.early.clear();
                self.phase = Phase::Closed;
                self.deadline = None;
                self.event(ClientEvent::Disconnected {
                    reason: "You left.".to_string(),
                    expected: true,
                });
                self.actions.push_back(ClientAction::Close);
            }
            _ => {}
        }
    }
}
