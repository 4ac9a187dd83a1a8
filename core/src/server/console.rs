//! The operator's console commands.

use core::net::IpAddr;
use std::fmt::Write as _;
use std::time::Duration;

use super::{CloseReason, EventKind, Level, Server};
use crate::commands;
use crate::names::name_key;
use crate::protocol;
use crate::time::Now;

/// The answer to the console's `/help`: the command table, and what a line
/// that is not a command does. With approvals, their commands and `y`/`n`.
pub fn console_help(approvals: bool) -> String {
    let mut out = commands::table(commands::CONSOLE);
    if approvals {
        out.push_str(&commands::table(commands::APPROVAL));
        out.push_str(super::approve::APPROVAL_ANSWER);
    }
    out.push_str("anything else is sent to everyone as a message from the server");
    out
}

impl Server {
    /// A line the operator typed on the server console. While the operator
    /// is asked to approve a connection, the line answers that (`y` or `n`).
    pub fn handle_console(&mut self, now: Now, line: &str) {
        self.expire(now);
        self.console_line(now, line);
        self.ask_next(now);
    }

    fn console_line(&mut self, now: Now, line: &str) {
        let line = line.trim();
        if line.is_empty() || self.shut_down {
            return;
        }
        let withdrawn = std::mem::take(&mut self.withdrawn);
        // An open question takes the next line that is not a command.
        if let (Some(id), false) = (self.asked, line.starts_with('/')) {
            return self.console_answer(now, id, line);
        }
        if withdrawn && matches!(line.to_lowercase().as_str(), "y" | "yes" | "n" | "no") {
            // Meant for a question that closed meanwhile: not chat.
            return self.reply("That question is closed: the peer left or its time ran out.");
        }
        if !line.starts_with('/') {
            return self.console_say(now, line);
        }
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((cmd, arg)) => (cmd, arg.trim()),
            None => (line, ""),
        };
        let cmd = cmd.to_lowercase();
        if self.console_files(now, &cmd, arg) {
            return;
        }
        match (cmd.as_str(), arg) {
            ("/users", _) => {
                let names = self.roster();
                let list = if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                };
                self.reply(format!("Online: {list}"));
            }
            ("/stats", _) => self.reply(self.stats(now)),
            ("/kick", "") => self.reply("Usage: /kick <user> [#room]"),
            ("/kick", target) => match target.split_once(char::is_whitespace) {
                Some((user, room)) if crate::rooms::is_room_word(room.trim()) => {
                    let room = crate::rooms::room_key(room.trim());
                    if !self.rooms.contains_key(&room) {
                        return self.reply(format!("No room {}.", room));
                    }
                    self.remove_from_room(now, user, &room, "the operator", None);
                }
                _ => self.console_kick(now, target),
            },
            ("/rooms", _) => self.console_rooms(),
            ("/topic", arg) => match arg.split_once(char::is_whitespace) {
                Some((room, text)) if crate::rooms::is_room_word(room) => {
                    let key = crate::rooms::room_key(room);
                    if !self.rooms.contains_key(&key) {
                        return self.reply(format!("No room {room}."));
                    }
                    if let Some(bad) = protocol::first_control(text) {
                        return self.reply(format!(
                            "Not set: it contains the control character U+{:04X}.",
                            bad as u32
                        ));
                    }
                    let by = format!("{} (server)", self.config.name);
                    self.set_topic(now, &key, text.trim(), &by);
                }
                _ => self.reply("Usage: /topic <#room> <text>"),
            },
            ("/ban", "") => self.reply("Usage: /ban <user|ip>"),
            ("/ban", target) => self.console_ban(now, target),
            ("/bans", _) => {
                if self.bans.is_empty() {
                    self.reply("No banned IPs.");
                } else {
                    let list: Vec<String> = self.bans.iter().map(|ip| ip.to_string()).collect();
                    self.reply(format!("Banned IPs: {}", list.join(", ")));
                }
            }
            ("/unban", "") => self.reply("Usage: /unban <ip>"),
            ("/unban", ip) => match ip.parse::<IpAddr>().map(crate::bans::canonical) {
                Ok(addr) if self.bans.remove(addr) => {
                    self.event(
                        Level::Info,
                        EventKind::Moderation,
                        format!("Unbanned {addr}"),
                    );
                    self.persist_bans();
                    self.reply(format!("Unbanned {addr}"));
                }
                Ok(addr) => self.reply(format!("IP {addr} is not in the ban list.")),
                Err(_) => self.reply(format!("Not an IP address: {ip}")),
            },
            ("/help", _) => self.reply(console_help(self.config.approval.is_some())),
            ("/trusted", _) => self.console_trusted(),
            ("/forget", "") => self.reply("Usage: /forget <name>"),
            ("/forget", who) => self.console_forget(who),
            ("/quit" | "/exit" | "/q", _) => self.shutdown(now),
            (other, _) => self.reply(format!(
                "Unknown command: {other}. Type /help for the list."
            )),
        }
    }

    fn console_say(&mut self, now: Now, text: &str) {
        if text.chars().count() > protocol::MAX_TEXT_CHARS {
            return self.reply(format!(
                "Not sent: longer than {} characters.",
                protocol::MAX_TEXT_CHARS
            ));
        }
        if let Some(bad) = protocol::first_control(text) {
            return self.reply(format!(
                "Not sent: it contains the control character U+{:04X}.",
                bad as u32
            ));
        }
        if self.users.is_empty() {
            // Said, not dropped in silence: in host mode the operator would
            // otherwise think the peer read it.
            return self.reply("Not sent: nobody is connected to read it.");
        }
        let from = format!("{} (server)", self.config.name);
        self.event(Level::Debug, EventKind::Chat, format!("<{from}> {text}"));
        self.relayed += 1;
        self.broadcast(protocol::message(now.wall, &from, text), None);
    }

    fn console_kick(&mut self, now: Now, target: &str) {
        let Some(conn) = self.users.get(&name_key(target)).copied() else {
            return self.reply(format!("User '{target}' not found."));
        };
        self.kick(
            now,
            conn,
            "You have been kicked.",
            CloseReason::Kicked,
            "was kicked by the operator",
        );
        self.reply(format!("Kicked {target}"));
    }

    fn console_ban(&mut self, now: Now, target: &str) {
        let (ip, who) = match self.users.get(&name_key(target)).copied() {
            Some(conn) => match self.conns.get(&conn) {
                Some(c) => (c.ip(), Some(conn)),
                None => return,
            },
            None => match target.parse::<IpAddr>() {
                Ok(ip) => (crate::bans::canonical(ip), None),
                Err(_) => {
                    return self.reply(format!("No user or IP address '{target}' to ban."));
                }
            },
        };
        let added = self.bans.insert(ip);
        if let Some(conn) = who {
            self.kick(
                now,
                conn,
                "You have been banned.",
                CloseReason::Banned,
                "was banned by the operator",
            );
        }
        // Everyone else connected from that address goes too: the ban is on it.
        let others: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, c)| c.ip() == ip)
            .map(|(&id, _)| id)
            .collect();
        for conn in others {
            let logged_in = self.conns.get(&conn).and_then(|c| c.name()).is_some();
            if logged_in {
                self.kick(
                    now,
                    conn,
                    "You have been banned.",
                    CloseReason::Banned,
                    "was banned by the operator",
                );
            } else {
                let reason = "You are banned from this server.";
                self.refuse_login_as(now, conn, reason, CloseReason::Banned);
            }
        }
        let label = match who {
            Some(_) => format!("{target} ({ip})"),
            None => ip.to_string(),
        };
        if added {
            self.event(
                Level::Info,
                EventKind::Moderation,
                format!("Banned {label}"),
            );
            self.persist_bans();
            self.reply(format!("Banned {label}"));
        } else {
            self.reply(format!("{ip} was already banned."));
        }
    }

    fn stats(&self, now: Now) -> String {
        let users = self.users.len();
        let total = self.conns.len();
        let mut s = format!(
            "Connections: {total} ({users} logged in, {} logging in) | Banned IPs: {} | \
             Messages relayed: {} | Uptime: ",
            total - users,
            self.bans.len(),
            self.relayed
        );
        write_duration(&mut s, now.instant.saturating_since(self.started));
        s
    }

    fn persist_bans(&mut self) {
        self.actions
            .push_back(super::Action::PersistBans(self.bans.clone()));
    }

    pub(super) fn reply(&mut self, text: impl Into<String>) {
        self.event(Level::Info, EventKind::Reply, text);
    }
}

fn write_duration(out: &mut String, d: Duration) {
    let s = d.as_secs();
    let _ = match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => write!(out, "{sec}s"),
        (0, m, sec) => write!(out, "{m}m {sec:02}s"),
        (h, m, sec) => write!(out, "{h}h {m:02}m {sec:02}s"),
    };
}
