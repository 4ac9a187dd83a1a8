//! What a logged-in user says: messages, the rate limit, and the chat
//! commands the server answers.

use super::*;
use crate::rooms::{room_key, LOBBY};

impl Server {
    pub(super) fn handle_chat_line(&mut self, now: Now, conn: ConnId, line: &[u8]) {
        let max_malformed = self.config.max_malformed_in_a_row;
        let parsed = protocol::parse_client_line(line);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (text, room, literal) = match parsed {
            Ok(ClientLine::Message {
                text,
                room,
                literal,
            }) => {
                c.malformed_in_a_row = 0;
                (text, room, literal)
            }
            // Input of any kind already counts against the idle timeout.
            Ok(ClientLine::Keepalive) => {
                c.malformed_in_a_row = 0;
                return;
            }
            Ok(ClientLine::History { place, want }) if c.is_secure() => {
                c.malformed_in_a_row = 0;
                if !self.check_rate(now, conn) {
                    return;
                }
                return self.handle_history_request(now, conn, place, want);
            }
            Ok(ClientLine::File(ask)) if c.is_secure() => {
                c.malformed_in_a_row = 0;
                let listing = matches!(ask, crate::transfer::lines::FileAsk::FileList);
                if listing && !self.check_rate(now, conn) {
                    return;
                }
                return self.handle_file_line(now, conn, ask);
            }
            Ok(ClientLine::Other | ClientLine::History { .. } | ClientLine::File(_)) => {
                c.malformed_in_a_row = 0;
                let name = c.name().unwrap_or_default().to_string();
                return self.event(
                    Level::Debug,
                    EventKind::Malformed,
                    format!("Ignored a non-message line from {name}"),
                );
            }
            Err(m) => {
                c.malformed_in_a_row += 1;
                let too_many = c.malformed_in_a_row >= max_malformed;
                let name = c.name().unwrap_or_default().to_string();
                self.event(
                    Level::Debug,
                    EventKind::Malformed,
                    format!("Malformed line from {name} ignored: {}", m.0),
                );
                if too_many {
                    return self.kick(
                        now,
                        conn,
                        "Too many malformed messages — disconnecting.",
                        CloseReason::Malformed,
                        "was disconnected for sending malformed data",
                    );
                }
                return self.send(
                    conn,
                    protocol::system(now.wall, &format!("Ignored a malformed message ({}).", m.0)),
                );
            }
        };
        if text.is_empty() {
            return;
        }
        if !self.check_rate(now, conn) {
            return;
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            let notice = format!("Message not sent: longer than {MAX_TEXT_CHARS} characters.");
            return self.send(conn, protocol::system(now.wall, &notice));
        }
        // LanTalk 2.0 clients print what they receive as it is: a control
        // character would reach their terminals raw (our clients make it
        // visible whatever a server sends). Refused here, for everyone.
        if let Some(bad) = protocol::first_control(&text) {
            let notice = format!(
                "Message not sent: it contains the control character U+{:04X}, which could \
                 disrupt other people's terminals.",
                bad as u32
            );
            return self.send(conn, protocol::system(now.wall, &notice));
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Some(name) = c.name().map(str::to_string) else {
            return;
        };
        // Only clients of ours know rooms; LanTalk 2.0 clients are in the
        // lobby, whatever a line claims.
        let ours = c.is_secure();
        if text.starts_with('/') && !literal {
            let here = match (&room, ours) {
                (Some(r), true) => Some(room_key(r)),
                (None, true) => Some(LOBBY.to_string()),
                (_, false) => None,
            };
            return self.handle_client_command(now, conn, &name, &text, here.as_deref());
        }
        let room = if ours {
            match self.speaking_room(now, conn, room.as_deref()) {
                Some(r) => r,
                None => return,
            }
        } else {
            LOBBY.to_string()
        };
        self.chat_event(&room, &name, &text);
        self.say_in_room(now, &room, conn, &name, &text);
    }

    /// The operator's view of a message (`#team <alice> hi`; lobby lines as
    /// LanTalk shows them).
    pub(super) fn chat_event(&mut self, room: &str, name: &str, text: &str) {
        if !self.config.chat_events {
            return;
        }
        let shown = self.rooms.get(room).map_or(room, |r| r.name.as_str());
        let said = match text.strip_prefix("/me ") {
            Some(action) => format!("* {name} {action}"),
            None => format!("<{name}> {text}"),
        };
        let message = if room == LOBBY {
            said
        } else {
            format!("{shown} {said}")
        };
        let chat = EventDetail::Chat {
            user: name.to_string(),
            text: text.to_string(),
        };
        self.detailed_event(Level::Debug, EventKind::Chat, message, chat);
    }

    /// Applies the rate limit; `false` when the line must be dropped.
    pub(super) fn check_rate(&mut self, now: Now, conn: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let Some(rate) = c.rate.as_mut() else {
            return true;
        };
        if rate.try_hit(now.instant) {
            return true;
        }
        c.flood_warnings.hit(now.instant);
        let kick = c.flood_warnings.is_full(now.instant);
        let name = c.name().unwrap_or_default().to_string();
        self.event(
            Level::Warning,
            EventKind::RateLimit,
            format!("{name} hit rate limit"),
        );
        if kick {
            self.kick(
                now,
                conn,
                "You have been kicked for flooding.",
                CloseReason::Flooding,
                "was kicked for flooding",
            );
        } else {
            self.send(
                conn,
                protocol::system(
                    now.wall,
                    "\u{26a0} Slow down \u{2014} you're sending too fast.",
                ),
            );
        }
        false
    }

    /// A command from `name`; `here`: the room a client of ours typed it
    /// in (`None` for LanTalk 2.0 clients, who know no room commands).
    pub(super) fn handle_client_command(
        &mut self,
        now: Now,
        conn: ConnId,
        name: &str,
        text: &str,
        here: Option<&str>,
    ) {
        let (cmd, rest) = protocol::split_word(text);
        let cmd = cmd.to_lowercase();
        if let Some(here) = here {
            if self.handle_room_command(now, conn, &cmd, rest, here) {
                return;
            }
        }
        match cmd.as_str() {
            "/users" => {
                let list = format!("Online: {}", self.roster().join(", "));
                self.send(conn, protocol::system(now.wall, &list));
            }
            "/pm" => {
                let (target, body) = protocol::split_word(rest);
                let body = body.trim();
                if target.is_empty() || body.is_empty() {
                    return self.send(
                        conn,
                        protocol::system(now.wall, "Usage: /pm <user> <message>"),
                    );
                }
                match self.users.get(&name_key(target)).copied() {
                    Some(to) => {
                        self.event(
                            Level::Debug,
                            EventKind::Chat,
                            format!("PM {name} -> {target}"),
                        );
                        let to_name = self
                            .conns
                            .get(&to)
                            .and_then(Conn::name)
                            .unwrap_or(target)
                            .to_string();
                        self.record_pm(now, name, &to_name, body);
                        self.send(to, protocol::pm(now.wall, name, body));
                        if self.conns.get(&conn).is_some_and(Conn::is_secure) {
                            let to_name = self
                                .conns
                                .get(&to)
                                .and_then(Conn::name)
                                .unwrap_or(target)
                                .to_string();
                            self.send(conn, protocol::pm_sent(now.wall, &to_name, body));
                        }
                    }
                    None if self.plugin_pm_to(name, target, body) => {
                        self.event(
                            Level::Debug,
                            EventKind::Chat,
                            format!("PM {name} -> {target} (plugin)"),
                        );
                        if self.conns.get(&conn).is_some_and(Conn::is_secure) {
                            self.send(conn, protocol::pm_sent(now.wall, target, body));
                        }
                    }
                    None => self.send(
                        conn,
                        protocol::system(now.wall, &format!("User '{target}' not found.")),
                    ),
                }
            }
            "/quit" | "/exit" | "/q" => {
                self.send(conn, protocol::system(now.wall, "Goodbye!"));
                if let Some(c) = self.remove(conn) {
                    self.actions.push_back(Action::Close {
                        conn,
                        reason: CloseReason::Quit,
                    });
                    if let Phase::Active { name, .. } = c.phase {
                        let message = format!("{name} left.");
                        self.presence_event(Level::Info, EventKind::Leave, message, &name, false);
                        self.announce_left(now, &name);
                    }
                }
            }
            "/me" => {
                let action = rest.trim();
                if action.is_empty() {
                    return self.send(conn, protocol::system(now.wall, "Usage: /me <action>"));
                }
                // Sent on as the command itself: our clients show `* name
                // action`, LanTalk 2.0 clients show it as a plain line.
                let room = match here {
                    Some(_) => match self.speaking_room(now, conn, here) {
                        Some(r) => r,
                        None => return,
                    },
                    None => LOBBY.to_string(),
                };
                let text = format!("/me {action}");
                self.chat_event(&room, name, &text);
                self.say_in_room(now, &room, conn, name, &text);
            }
            "/help" => {
                let help = crate::commands::chat_help(false, false) + &self.plugin_help();
                self.send(conn, protocol::system(now.wall, &help));
            }
            _ if self.plugin_command(now, conn, name, &cmd, rest, here.unwrap_or(LOBBY)) => {}
            _ => self.send(
                conn,
                protocol::system(
                    now.wall,
                    &format!("Unknown command: {cmd}. Type /help for the list."),
                ),
            ),
        }
    }
}
