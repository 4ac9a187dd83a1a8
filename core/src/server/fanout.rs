//! Where lines go: to one connection, to every user, to our clients only;
//! sealing per connection; events for the operator; forgetting a connection.

use super::*;

impl Server {
    pub(super) fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if self.remove(conn).is_some() {
            self.actions.push_back(Action::Close { conn, reason });
        }
    }

    /// Forgets a connection and everything indexed by it. What was queued
    /// for it goes out first.
    pub(super) fn remove(&mut self, conn: ConnId) -> Option<Conn> {
        let mut c = self.conns.remove(&conn)?;
        // (If sealing fails here, the connection is closing anyway.)
        if let Ok(Some(bytes)) = c.take_sealed() {
            self.actions.push_back(Action::Send { conn, bytes });
        }
        self.release_address(c.ip());
        if let Some(name) = c.name() {
            self.users.remove(&name_key(name));
            self.leave_all_rooms(conn, name);
            self.session_gone(conn);
        }
        if matches!(c.phase, Phase::Side) {
            self.side_gone(conn);
        }
        if matches!(c.phase, Phase::Approving { .. }) {
            self.forget_approval(conn);
        }
        Some(c)
    }

    /// One connection fewer from `ip`.
    pub(super) fn release_address(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
    }

    pub(super) fn announce_left(&mut self, now: Now, name: &str) {
        let notice = protocol::system(now.wall, &format!("{name} left the chat."));
        self.broadcast(notice, None);
        self.broadcast_ours(protocol::presence(now.wall, name, false), None);
    }

    pub(super) fn send(&mut self, conn: ConnId, line: String) {
        let bytes = match self.conns.get_mut(&conn) {
            Some(c) if c.is_secure() => {
                if c.queue_sealed(line.as_bytes()) {
                    self.to_seal.push(conn);
                }
                return;
            }
            // Plain: always sayable; mid-handshake: nothing can be said.
            Some(c) => match c.encode(line.as_bytes()) {
                Ok(Some(bytes)) => bytes,
                Ok(None) | Err(_) => return,
            },
            // Refused at connect: never registered, always plaintext.
            None => line.into_bytes().into(),
        };
        self.actions.push_back(Action::Send { conn, bytes });
    }

    /// Sends `line` to every logged-in user but `except`: encoded once and
    /// shared by every plaintext recipient; queued to be sealed per recipient
    /// otherwise (each session has its own keys).
    pub(super) fn broadcast(&mut self, line: String, except: Option<ConnId>) {
        let bytes: Payload = line.into_bytes().into();
        let (actions, to_seal) = (&mut self.actions, &mut self.to_seal);
        for (&id, c) in self.conns.iter_mut() {
            if Some(id) == except || c.name().is_none() {
                continue;
            }
            if c.is_secure() {
                if c.queue_sealed(&bytes) {
                    to_seal.push(id);
                }
            } else if c.is_plaintext() {
                actions.push_back(Action::Send {
                    conn: id,
                    bytes: Arc::clone(&bytes),
                });
            }
        }
    }

    /// Sends `line` to every logged-in client of ours (encrypted) but
    /// `except`: lines LanTalk 2.0 clients would not understand.
    pub(super) fn broadcast_ours(&mut self, line: String, except: Option<ConnId>) {
        let to_seal = &mut self.to_seal;
        for (&id, c) in self.conns.iter_mut() {
            if Some(id) != except
                && c.name().is_some()
                && c.is_secure()
                && c.queue_sealed(line.as_bytes())
            {
                to_seal.push(id);
            }
        }
    }

    pub(super) fn event(&mut self, level: Level, kind: EventKind, message: impl Into<String>) {
        self.actions
            .push_back(Action::Event(ServerEvent::new(level, kind, message)));
    }

    /// An event about `user` arriving (`online`) or going, with the typed
    /// fact beside the sentence.
    pub(super) fn presence_event(
        &mut self,
        level: Level,
        kind: EventKind,
        message: String,
        user: &str,
        online: bool,
    ) {
        let detail = EventDetail::Presence {
            user: user.to_string(),
            online,
        };
        self.detailed_event(level, kind, message, detail);
    }

    pub(super) fn detailed_event(
        &mut self,
        level: Level,
        kind: EventKind,
        message: impl Into<String>,
        detail: EventDetail,
    ) {
        let event = ServerEvent::new(level, kind, message).with_detail(detail);
        self.actions.push_back(Action::Event(event));
    }

    /// Seals what every encrypted connection has queued, one payload each.
    ///
    /// Sealing costs about as much for one chat line as for a dozen (the
    /// cipher's setup dominates small messages), so lines are sealed per
    /// input handled rather than per line: a sender's read of many messages
    /// fans out as one frame per recipient. Nothing waits for it: this runs
    /// as soon as the runtime asks for the actions of the same input, and
    /// before a connection is closed.
    pub(super) fn seal_pending(&mut self) {
        for id in std::mem::take(&mut self.to_seal) {
            match self.conns.get_mut(&id).map(Conn::take_sealed) {
                Some(Ok(Some(bytes))) => self.actions.push_back(Action::Send { conn: id, bytes }),
                Some(Err(SealFailed)) => {
                    self.event(
                        Level::Warning,
                        EventKind::Connection,
                        format!("Closed connection {id}: its encrypted session is used up"),
                    );
                    self.close(id, CloseReason::Encryption);
                }
                Some(Ok(None)) | None => {}
            }
        }
    }
}
