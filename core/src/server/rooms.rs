//! Rooms: who is in which, what is said where, and the room commands.
//!
//! Everyone starts in `#lobby`, the only room LanTalk 2.0 clients know: what
//! they send and receive stays byte for byte as before. Clients of ours (in
//! an encrypted session) can be in several rooms; every line they send says
//! which room it is in, and every line they get about a room says so too.
//!
//! A room's operators are the people who created it or were made operators,
//! recognised by their client's long-term key, not by their name (names are
//! free for anyone to take once their owner has left). A room disappears when
//! its last member leaves, unless it has a key or is invite-only: those keep
//! their settings, operators and invitations, so nobody can take over a
//! private room's name (and its history) by waiting for it to empty.

use std::collections::{BTreeSet, HashSet, VecDeque};

use super::*;
use rand_core::RngCore;

use crate::password::{HashParams, PasswordHash};
use crate::protocol::{RoomView, Stamp};
use crate::rooms::{room_key, validate_room, LOBBY};

/// Someone allowed to run a room, by the key their client proves it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Op {
    /// As they were called when they became one (for `/who` and the list).
    name: String,
    key: Vec<u8>,
}

pub(super) struct Room {
    /// As its creator spelled it.
    pub(super) name: String,
    topic: String,
    /// Members, ordered by connection (that is, by when they arrived).
    pub(super) members: BTreeSet<ConnId>,
    ops: Vec<Op>,
    /// The key's Argon2id hash: the key itself is never kept.
    key: Option<PasswordHash>,
    /// A key is being hashed: nobody joins until it is set.
    key_pending: bool,
    invite_only: bool,
    /// Client keys invited in (an invitation is for a person, not a name).
    invited: HashSet<Vec<u8>>,
    /// The newest records said here, oldest first (`HistoryConfig::window`).
    pub(super) recent: VecDeque<crate::history::Record>,
    /// `recent` is the room's whole history (nothing pushed out, nothing
    /// older in the store): history is answered from memory alone.
    pub(super) complete: bool,
}

impl Room {
    /// `complete`: nothing said here is kept elsewhere (no store), so what
    /// memory will hold is all there is.
    pub(super) fn new(name: &str, complete: bool) -> Self {
        Room {
            name: name.to_string(),
            topic: String::new(),
            members: BTreeSet::new(),
            ops: Vec::new(),
            key: None,
            key_pending: false,
            invite_only: false,
            invited: HashSet::new(),
            recent: VecDeque::new(),
            complete,
        }
    }

    fn is_op(&self, key: Option<&[u8]>) -> bool {
        key.is_some_and(|k| self.ops.iter().any(|op| op.key == k))
    }

    /// Kept when empty: its settings protect it.
    fn is_protected(&self) -> bool {
        self.key.is_some() || self.key_pending || self.invite_only
    }
}

/// What waits for an off-loop password job about a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RoomWait {
    /// `conn` asked to join the keyed room `room` (a key): the answer says
    /// whether the key was right.
    Join { conn: ConnId, room: String },
    /// `conn` set a new key on `room`: the answer carries its hash.
    SetKey { conn: ConnId, room: String },
}

/// What the server's configuration says about rooms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomLimits {
    /// Rooms on the server, the lobby included.
    pub max_rooms: usize,
    /// Rooms one person can be in at once, the lobby included.
    pub max_rooms_per_user: usize,
    /// Longest topic, in characters.
    pub max_topic_chars: usize,
    /// Cost of hashing room keys (Argon2id).
    pub key_params: HashParams,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits {
            max_rooms: 200,
            max_rooms_per_user: 20,
            max_topic_chars: 300,
            key_params: HashParams::RECOMMENDED,
        }
    }
}

impl Server {
    /// The room a client of ours speaks in: `room` as sent (or the lobby),
    /// if the sender is in it. Otherwise the sender is told and `None`.
    pub(super) fn speaking_room(
        &mut self,
        now: Now,
        conn: ConnId,
        room: Option<&str>,
    ) -> Option<String> {
        let key = room.map_or_else(|| LOBBY.to_string(), room_key);
        if self
            .rooms
            .get(&key)
            .is_some_and(|r| r.members.contains(&conn))
        {
            return Some(key);
        }
        let shown = room.unwrap_or(LOBBY);
        let notice = format!("You are not in {shown}: /join {shown} first.");
        self.send(
            conn,
            protocol::system(now.wall, &crate::text::visible(&notice)),
        );
        None
    }

    /// Relays a message (or `/me`) said by `from` in `room` to its members
    /// but the sender: LanTalk 2.0's line, shared by every plaintext member
    /// (only the lobby has any), and ours, with room, id and time, sealed
    /// per member.
    pub(super) fn say_in_room(
        &mut self,
        now: Now,
        room: &str,
        from: ConnId,
        user: &str,
        text: &str,
    ) {
        self.plugins_message(room, user, text);
        self.say_in_room_as(now, room, Some(from), (user, user), text);
    }

    /// [`Server::say_in_room`] for anyone: `from`, the sender's connection
    /// if it has one (it is not sent its own line); `user`: the name shown
    /// to clients of ours, then to LanTalk 2.0 clients (a plugin is marked
    /// as a bot for ours only).
    pub(super) fn say_in_room_as(
        &mut self,
        now: Now,
        room: &str,
        from: Option<ConnId>,
        (user, plain_user): (&str, &str),
        text: &str,
    ) {
        let id = self.record(now, room, user, text);
        self.relayed += 1;
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let stamp = Stamp {
            room: &r.name,
            id,
            at_ms: now.wall.unix_ms,
        };
        let ours = protocol::message_in(now.wall, stamp, user, text);
        let lobby = room == LOBBY;
        let plain: Option<Payload> = lobby.then(|| {
            protocol::message(now.wall, plain_user, text)
                .into_bytes()
                .into()
        });
        let (actions, to_seal) = (&mut self.actions, &mut self.to_seal);
        for &member in &r.members {
            if Some(member) == from {
                continue;
            }
            let Some(c) = self.conns.get_mut(&member) else {
                continue;
            };
            if c.is_secure() {
                if c.queue_sealed(ours.as_bytes()) {
                    to_seal.push(member);
                }
            } else if let Some(bytes) = &plain {
                actions.push_back(Action::Send {
                    conn: member,
                    bytes: Arc::clone(bytes),
                });
            }
        }
    }

    /// Sends `line` to every member of `room` of ours but `except`.
    fn tell_room(&mut self, room: &str, line: &str, except: Option<ConnId>) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let to_seal = &mut self.to_seal;
        for &member in &r.members {
            if Some(member) == except {
                continue;
            }
            if let Some(c) = self.conns.get_mut(&member) {
                if c.is_secure() && c.queue_sealed(line.as_bytes()) {
                    to_seal.push(member);
                }
            }
        }
    }

    fn view(&self, room: &str) -> Option<RoomView> {
        let r = self.rooms.get(room)?;
        Some(RoomView {
            room: r.name.clone(),
            topic: r.topic.clone(),
            members: r
                .members
                .iter()
                .filter_map(|m| self.conns.get(m).and_then(Conn::name))
                .map(str::to_string)
                .collect(),
            ops: r.ops.iter().map(|op| op.name.clone()).collect(),
            invite_only: r.invite_only,
            keyed: r.key.is_some(),
        })
    }

    /// Tells every member of ours the room's state (after a change to it).
    fn send_state(&mut self, now: Now, room: &str) {
        if let Some(view) = self.view(room) {
            self.tell_room(room, &protocol::room_state(now.wall, &view), None);
        }
    }

    /// Puts a user who just logged in into the lobby.
    pub(super) fn enter_lobby(&mut self, now: Now, conn: ConnId) {
        if let Some(lobby) = self.rooms.get_mut(LOBBY) {
            lobby.members.insert(conn);
        }
        if let Some(name) = self.conns.get(&conn).and_then(Conn::name) {
            let name = name.to_string();
            self.plugins_presence(LOBBY, &name, true);
        }
        if self.conns.get(&conn).is_some_and(Conn::is_secure) {
            if let Some(view) = self.view(LOBBY) {
                self.send(conn, protocol::room_state(now.wall, &view));
            }
            self.history_on_join(now, conn, LOBBY);
        }
    }

    /// Takes `conn` out of every room (it is leaving the server: the
    /// presence line everyone gets already says so).
    pub(super) fn leave_all_rooms(&mut self, conn: ConnId, name: &str) {
        let mut emptied = Vec::new();
        let mut left = Vec::new();
        for (key, r) in self.rooms.iter_mut() {
            if r.members.remove(&conn) {
                left.push(key.clone());
                if r.members.is_empty() && key != LOBBY && !r.is_protected() {
                    emptied.push(key.clone());
                }
            }
        }
        for room in left {
            self.plugins_presence(&room, name, false);
        }
        for key in emptied {
            self.rooms.remove(&key);
        }
    }

    /// Room commands, from a client of ours, said in `here`. Returns false
    /// for a command that is not about rooms.
    pub(super) fn handle_room_command(
        &mut self,
        now: Now,
        conn: ConnId,
        cmd: &str,
        rest: &str,
        here: &str,
    ) -> bool {
        let (first, tail) = protocol::split_word(rest);
        match cmd {
            "/join" => self.join(now, conn, first, tail.trim()),
            "/part" => {
                let room = if first.is_empty() {
                    here.to_string()
                } else {
                    room_key(first)
                };
                self.part(now, conn, &room, first);
            }
            "/rooms" => self.list_rooms(now, conn),
            "/who" => {
                let room = if first.is_empty() {
                    here.to_string()
                } else {
                    room_key(first)
                };
                self.who(now, conn, &room, first);
            }
            "/topic" => self.topic(now, conn, here, rest.trim()),
            "/invite" => {
                let room = if tail.trim().is_empty() {
                    here.to_string()
                } else {
                    room_key(tail.trim())
                };
                self.invite(now, conn, first, &room);
            }
            "/kick" => self.kick_from_room(now, conn, first, here),
            "/key" => self.set_key(now, conn, here, rest.trim()),
            "/invite-only" => self.set_invite_only(now, conn, here, rest.trim()),
            _ => return false,
        }
        true
    }

    fn note(&mut self, now: Now, conn: ConnId, room: Option<&str>, text: &str) {
        let text = crate::text::visible(text);
        // Shown in the room only to its members: to anyone else it is an
        // answer, not a line of a room they are not in.
        let line = match room.and_then(|r| self.rooms.get(r)) {
            Some(r) if r.members.contains(&conn) => protocol::system_in(now.wall, &r.name, &text),
            _ => protocol::system(now.wall, &text),
        };
        self.send(conn, line);
    }

    /// The user's name on `conn` (empty if it is gone).
    fn name_of(&self, conn: ConnId) -> String {
        self.name_or(conn, "")
    }

    fn name_or(&self, conn: ConnId, otherwise: &str) -> String {
        self.conns
            .get(&conn)
            .and_then(Conn::name)
            .unwrap_or(otherwise)
            .to_string()
    }

    fn client_key(&self, conn: ConnId) -> Option<Vec<u8>> {
        match &self.conns.get(&conn)?.wire {
            Wire::Secure(session) => Some(session.remote().to_vec()),
            _ => None,
        }
    }

    fn rooms_of(&self, conn: ConnId) -> usize {
        self.rooms
            .values()
            .filter(|r| r.members.contains(&conn))
            .count()
    }

    fn join(&mut self, now: Now, conn: ConnId, name: &str, key: &str) {
        if name.is_empty() {
            return self.note(now, conn, None, "Usage: /join <#room> [key]");
        }
        if let Err(bad) = validate_room(name) {
            return self.note(now, conn, None, &format!("Cannot join {name}: {bad}."));
        }
        let room = room_key(name);
        let client = self.client_key(conn);
        if let Some(r) = self.rooms.get(&room) {
            if r.members.contains(&conn) {
                // Already in: the state again, and the client switches to it.
                if let Some(view) = self.view(&room) {
                    self.send(conn, protocol::room_state(now.wall, &view));
                }
                return;
            }
            let invited = client.as_ref().is_some_and(|k| r.invited.contains(k))
                || r.is_op(client.as_deref());
            if r.invite_only && !invited {
                let shown = r.name.clone();
                return self.note(
                    now,
                    conn,
                    None,
                    &format!(
                        "Cannot join {shown}: it is invite-only (ask a member to /invite you)."
                    ),
                );
            }
            if r.key_pending {
                let shown = r.name.clone();
                return self.note(
                    now,
                    conn,
                    None,
                    &format!(
                        "Cannot join {shown} yet: its key is being set. Try again in a moment."
                    ),
                );
            }
            if self.rooms_of(conn) >= self.config.rooms.max_rooms_per_user {
                let max = self.config.rooms.max_rooms_per_user;
                return self.note(
                    now,
                    conn,
                    None,
                    &format!(
                        "Cannot join {name}: you are in {max} rooms already (/part one first)."
                    ),
                );
            }
            match r.key.clone() {
                // An invitation or being an operator stands in for the key.
                Some(hash) if !invited => {
                    if key.is_empty() {
                        let shown = r.name.clone();
                        return self.note(
                            now,
                            conn,
                            None,
                            &format!("Cannot join {shown}: it needs a key (/join {shown} <key>)."),
                        );
                    }
                    let id = self.new_check_id();
                    self.checks
                        .insert(id, Waiter::Room(RoomWait::Join { conn, room }));
                    self.hand_out(PasswordCheck::new(id, hash, key.to_string()));
                }
                _ => self.enter(now, conn, &room),
            }
            return;
        }
        if self.rooms.len() >= self.config.rooms.max_rooms {
            return self.note(
                now,
                conn,
                None,
                &format!(
                    "Cannot create {name}: the server has its maximum of {} rooms.",
                    self.config.rooms.max_rooms
                ),
            );
        }
        if self.rooms_of(conn) >= self.config.rooms.max_rooms_per_user {
            let max = self.config.rooms.max_rooms_per_user;
            return self.note(
                now,
                conn,
                None,
                &format!("Cannot create {name}: you are in {max} rooms already (/part one first)."),
            );
        }
        let mut r = Room::new(name, !self.config.history.store);
        if let (Some(k), Some(user)) = (client, self.conns.get(&conn).and_then(Conn::name)) {
            r.ops.push(Op {
                name: user.to_string(),
                key: k,
            });
        }
        let who = self.name_of(conn);
        self.event(
            Level::Info,
            EventKind::Rooms,
            format!("{who} created {name}"),
        );
        self.rooms.insert(room.clone(), r);
        self.enter(now, conn, &room);
        if !key.is_empty() {
            self.start_key(now, conn, &room, key);
        }
    }

    /// `conn` is let into `room`: told its state; its members are told.
    fn enter(&mut self, now: Now, conn: ConnId, room: &str) {
        let Some(name) = self
            .conns
            .get(&conn)
            .and_then(Conn::name)
            .map(str::to_string)
        else {
            return;
        };
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.members.insert(conn);
        let shown = r.name.clone();
        let text = format!("{name} joined {shown}.");
        let line = protocol::room_member(now.wall, &shown, &name, true, &text);
        self.tell_room(room, &line, Some(conn));
        self.plugins_presence(room, &name, true);
        if let Some(view) = self.view(room) {
            self.send(conn, protocol::room_state(now.wall, &view));
        }
        self.history_on_join(now, conn, room);
        self.event(Level::Info, EventKind::Rooms, text);
    }

    fn part(&mut self, now: Now, conn: ConnId, room: &str, as_typed: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return self.note(now, conn, None, &format!("You are not in {as_typed}."));
        };
        if !r.members.remove(&conn) {
            let shown = r.name.clone();
            return self.note(now, conn, None, &format!("You are not in {shown}."));
        }
        let shown = r.name.clone();
        let empty = r.members.is_empty() && room != LOBBY && !r.is_protected();
        let name = self.name_of(conn);
        self.send(
            conn,
            protocol::room_left(now.wall, &shown, &format!("You left {shown}.")),
        );
        let text = format!("{name} left {shown}.");
        self.tell_room(
            room,
            &protocol::room_member(now.wall, &shown, &name, false, &text),
            None,
        );
        self.event(Level::Info, EventKind::Rooms, text);
        self.plugins_presence(room, &name, false);
        if empty {
            self.rooms.remove(room);
        }
    }

    fn list_rooms(&mut self, now: Now, conn: ConnId) {
        let mut lines = Vec::new();
        for r in self.rooms.values() {
            let member = r.members.contains(&conn);
            if r.invite_only && !member {
                continue;
            }
            let mut line = format!(
                "{} ({} {})",
                r.name,
                r.members.len(),
                if r.members.len() == 1 {
                    "member"
                } else {
                    "members"
                }
            );
            if r.key.is_some() {
                line.push_str(", key");
            }
            if r.invite_only {
                line.push_str(", invite-only");
            }
            if member {
                line.push_str(", you are in it");
            }
            if !r.topic.is_empty() {
                line.push_str(": ");
                line.push_str(&r.topic);
            }
            lines.push(line);
        }
        self.note(now, conn, None, &format!("Rooms ({}):", lines.len()));
        for line in lines {
            self.note(now, conn, None, &format!("  {line}"));
        }
    }

    fn who(&mut self, now: Now, conn: ConnId, room: &str, as_typed: &str) {
        let visible = self
            .rooms
            .get(room)
            .is_some_and(|r| !r.invite_only || r.members.contains(&conn));
        let Some(view) = self.view(room).filter(|_| visible) else {
            return self.note(
                now,
                conn,
                None,
                &format!("No room {as_typed} (see /rooms)."),
            );
        };
        let members: Vec<String> = view
            .members
            .iter()
            .map(|m| {
                if view.ops.contains(m) {
                    format!("{m} (op)")
                } else {
                    m.clone()
                }
            })
            .collect();
        self.note(
            now,
            conn,
            Some(room),
            &format!(
                "In {} ({}): {}",
                view.room,
                members.len(),
                members.join(", ")
            ),
        );
    }

    /// Whether `conn` may run `room`; if not, it is told.
    fn require_op(&mut self, now: Now, conn: ConnId, room: &str, what: &str) -> bool {
        let key = self.client_key(conn);
        let Some(r) = self.rooms.get(room) else {
            return false;
        };
        if r.is_op(key.as_deref()) {
            return true;
        }
        let text = if room == LOBBY {
            format!("Only the server's operator can {what} in {LOBBY}.")
        } else {
            format!("Only {}'s operators can {what}.", r.name)
        };
        self.note(now, conn, Some(room), &text);
        false
    }

    fn topic(&mut self, now: Now, conn: ConnId, room: &str, text: &str) {
        if text.is_empty() {
            let (shown, topic) = match self.rooms.get(room) {
                Some(r) => (r.name.clone(), r.topic.clone()),
                None => return,
            };
            let line = if topic.is_empty() {
                format!("{shown} has no topic.")
            } else {
                format!("Topic of {shown}: {topic}")
            };
            return self.note(now, conn, Some(room), &line);
        }
        if !self.require_op(now, conn, room, "set the topic") {
            return;
        }
        let max = self.config.rooms.max_topic_chars;
        if text.chars().count() > max {
            return self.note(
                now,
                conn,
                Some(room),
                &format!("Topic not set: longer than {max} characters."),
            );
        }
        if let Some(bad) = protocol::first_control(text) {
            return self.note(
                now,
                conn,
                Some(room),
                &format!(
                    "Topic not set: it contains the control character U+{:04X}.",
                    bad as u32
                ),
            );
        }
        let by = self.name_of(conn);
        self.set_topic(now, room, text, &by);
    }

    pub(super) fn set_topic(&mut self, now: Now, room: &str, text: &str, by: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.topic = text.to_string();
        let shown = r.name.clone();
        let notice = format!("{by} set the topic of {shown}: {text}");
        self.tell_room(room, &protocol::system_in(now.wall, &shown, &notice), None);
        self.send_state(now, room);
        self.event(Level::Info, EventKind::Rooms, notice);
    }

    fn invite(&mut self, now: Now, conn: ConnId, target: &str, room: &str) {
        if target.is_empty() {
            return self.note(now, conn, None, "Usage: /invite <user> [#room]");
        }
        let Some(r) = self.rooms.get(room) else {
            return self.note(now, conn, None, &format!("No room {room} (see /rooms)."));
        };
        if !r.members.contains(&conn) {
            let shown = r.name.clone();
            return self.note(now, conn, None, &format!("You are not in {shown}."));
        }
        if r.invite_only && !self.require_op(now, conn, room, "invite people") {
            return;
        }
        let Some(to) = self.users.get(&name_key(target)).copied() else {
            return self.note(
                now,
                conn,
                Some(room),
                &format!("User '{target}' not found."),
            );
        };
        let Some(key) = self.client_key(to) else {
            return self.note(now, conn, Some(room), &format!("{target} uses a client without rooms (LanTalk 2.0): they can only be in {LOBBY}."));
        };
        let by = self.name_of(conn);
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.invited.insert(key);
        let shown = r.name.clone();
        let to_name = self.name_or(to, target);
        self.note(
            now,
            to,
            None,
            &format!("{by} invites you to {shown}: /join {shown}"),
        );
        self.note(
            now,
            conn,
            Some(room),
            &format!("Invited {to_name} to {shown}."),
        );
        self.event(
            Level::Info,
            EventKind::Rooms,
            format!("{by} invited {to_name} to {shown}"),
        );
    }

    fn kick_from_room(&mut self, now: Now, conn: ConnId, target: &str, room: &str) {
        if target.is_empty() {
            return self.note(
                now,
                conn,
                Some(room),
                "Usage: /kick <user> (from the room you are in)",
            );
        }
        if !self.require_op(now, conn, room, "kick") {
            return;
        }
        let by = self.name_of(conn);
        self.remove_from_room(now, target, room, &by, Some(conn));
    }

    /// Takes `target` out of `room` on `by`'s word (an operator, or the
    /// server's console); `asker` is told if that cannot be done.
    pub(super) fn remove_from_room(
        &mut self,
        now: Now,
        target: &str,
        room: &str,
        by: &str,
        asker: Option<ConnId>,
    ) {
        let to = self.users.get(&name_key(target)).copied();
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let shown = r.name.clone();
        let Some(to) = to.filter(|t| r.members.contains(t)) else {
            let text = format!("{target} is not in {shown}.");
            return match asker {
                Some(a) => self.note(now, a, Some(room), &text),
                None => self.reply(text),
            };
        };
        if room == LOBBY && !self.conns.get(&to).is_some_and(Conn::is_secure) {
            // A LanTalk 2.0 client knows no other room: out of the lobby it
            // would be connected and deaf.
            let text = format!(
                "{target} uses a client without rooms (LanTalk 2.0): /kick {target} disconnects them."
            );
            return match asker {
                Some(a) => self.note(now, a, Some(room), &text),
                None => self.reply(text),
            };
        }
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.members.remove(&to);
        // Out means out: an invitation does not let them straight back.
        if let Some(key) = self.client_key(to) {
            if let Some(r) = self.rooms.get_mut(room) {
                r.invited.remove(&key);
            }
        }
        let name = self.name_or(to, target);
        let text = format!("{name} was removed from {shown} by {by}.");
        let told = format!("You were removed from {shown} by {by}.");
        self.send(to, protocol::room_left(now.wall, &shown, &told));
        self.tell_room(
            room,
            &protocol::room_member(now.wall, &shown, &name, false, &text),
            None,
        );
        self.event(Level::Info, EventKind::Moderation, text);
        self.plugins_presence(room, &name, false);
        if asker.is_none() {
            self.reply(format!("Removed {name} from {shown}."));
        }
    }

    fn set_key(&mut self, now: Now, conn: ConnId, room: &str, arg: &str) {
        if arg.is_empty() {
            return self.note(now, conn, Some(room), "Usage: /key <key|off>");
        }
        if room == LOBBY {
            return self.note(
                now,
                conn,
                Some(room),
                &format!("{LOBBY} is open to everyone: it cannot have a key."),
            );
        }
        if !self.require_op(now, conn, room, "set the key") {
            return;
        }
        if arg.eq_ignore_ascii_case("off") {
            if let Some(r) = self.rooms.get_mut(room) {
                r.key = None;
                let shown = r.name.clone();
                let by = self.name_of(conn);
                let notice = format!("{by} removed the key of {shown}.");
                self.tell_room(room, &protocol::system_in(now.wall, &shown, &notice), None);
                self.send_state(now, room);
            }
            return;
        }
        self.start_key(now, conn, room, arg);
    }

    /// Hands the new key out to be hashed off the event loop; joins wait.
    fn start_key(&mut self, now: Now, conn: ConnId, room: &str, key: &str) {
        let mut salt = [0u8; 16];
        match self.secure.as_mut() {
            Some((_, rng)) => rng.fill_bytes(&mut salt),
            None => {
                return self.note(
                    now,
                    conn,
                    Some(room),
                    "Keys need encryption, which this server does not offer.",
                )
            }
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.key_pending = true;
        }
        let id = self.new_check_id();
        self.checks.insert(
            id,
            Waiter::Room(RoomWait::SetKey {
                conn,
                room: room.to_string(),
            }),
        );
        let params = self.config.rooms.key_params;
        self.hand_out(PasswordCheck::hash(id, key.to_string(), salt, params));
    }

    /// The answer to a room's password job.
    pub(super) fn room_checked(&mut self, now: Now, wait: RoomWait, answer: PasswordChecked) {
        match wait {
            RoomWait::Join { conn, room } => {
                if !self.conns.contains_key(&conn) {
                    return;
                }
                let Some(shown) = self.rooms.get(&room).map(|r| r.name.clone()) else {
                    return self.note(now, conn, None, "That room is gone.");
                };
                if answer.ok {
                    self.enter(now, conn, &room);
                } else {
                    self.note(now, conn, None, &format!("Cannot join {shown}: wrong key."));
                }
            }
            RoomWait::SetKey { conn, room } => {
                let by = self.name_or(conn, "someone");
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                r.key_pending = false;
                r.key = answer.hash;
                let shown = r.name.clone();
                let notice = format!(
                    "{by} set a key on {shown}: joining it needs the key (or an invitation)."
                );
                self.tell_room(&room, &protocol::system_in(now.wall, &shown, &notice), None);
                self.send_state(now, &room);
                if self
                    .rooms
                    .get(&room)
                    .is_some_and(|r| r.members.is_empty() && !r.is_protected())
                {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    fn set_invite_only(&mut self, now: Now, conn: ConnId, room: &str, arg: &str) {
        let on = match arg.to_ascii_lowercase().as_str() {
            "on" => true,
            "off" => false,
            _ => return self.note(now, conn, Some(room), "Usage: /invite-only <on|off>"),
        };
        if room == LOBBY {
            return self.note(
                now,
                conn,
                Some(room),
                &format!("{LOBBY} is open to everyone."),
            );
        }
        if !self.require_op(now, conn, room, "change who may join") {
            return;
        }
        let by = self.name_of(conn);
        // Members stay members: let them back in after a /part.
        let keys: Vec<Vec<u8>> = self
            .rooms
            .get(room)
            .map(|r| {
                r.members
                    .iter()
                    .filter_map(|m| self.client_key(*m))
                    .collect()
            })
            .unwrap_or_default();
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.invite_only = on;
        if on {
            r.invited.extend(keys);
        }
        let shown = r.name.clone();
        let notice = if on {
            format!("{by} made {shown} invite-only.")
        } else {
            format!("{by} opened {shown} to everyone.")
        };
        self.tell_room(room, &protocol::system_in(now.wall, &shown, &notice), None);
        self.send_state(now, room);
    }

    /// The console's `/rooms`: every room, invite-only ones included.
    pub(super) fn console_rooms(&mut self) {
        let mut out = format!("Rooms ({}):", self.rooms.len());
        for r in self.rooms.values() {
            let members: Vec<&str> = r
                .members
                .iter()
                .filter_map(|m| self.conns.get(m).and_then(Conn::name))
                .collect();
            out.push_str(&format!(
                "\n  {} ({}){}{}: {}",
                r.name,
                members.len(),
                if r.key.is_some() { ", key" } else { "" },
                if r.invite_only { ", invite-only" } else { "" },
                members.join(", ")
            ));
            if !r.topic.is_empty() {
                out.push_str(&format!(" | topic: {}", r.topic));
            }
        }
        self.reply(out);
    }
}
