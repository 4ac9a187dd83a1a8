//! From bytes to lines: plaintext lines, the encrypted handshake and sealed
//! frames, and the dispatch of each complete line to the phase it belongs to.

use super::*;

impl Server {
    /// Bytes received on a connection, in whatever chunks the transport gave.
    pub fn handle_input(&mut self, now: Now, conn: ConnId, bytes: &[u8]) -> Result<(), Error> {
        let result = if self.web.carries(conn) {
            self.web_input(now, conn, bytes)
        } else {
            self.input(now, conn, bytes)
        };
        self.ask_next(now);
        result
    }

    pub(super) fn input(&mut self, now: Now, conn: ConnId, bytes: &[u8]) -> Result<(), Error> {
        let known = self.conns.contains_key(&conn);
        self.expire(now);
        if !known {
            // Closed by us already (its reader was still reading): the
            // bytes are dropped, which is what closing means.
            return self.closed_or_unknown(conn);
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(()); // it timed out just now
        };
        c.last_input = now.instant;
        if matches!(c.wire, Wire::Plain { .. }) {
            c.lines.push(bytes);
            if c.is_checking() && c.lines.buffered() > self.config.max_line {
                // Held while its password is checked, and more than a line.
                self.line_too_long(now, conn);
            } else {
                self.drain_lines(now, conn);
            }
        } else {
            self.handle_frames(now, conn, bytes);
        }
        Ok(())
    }

    /// Handles every complete line buffered for `conn`.
    pub(super) fn drain_lines(&mut self, now: Now, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // Take the buffer out so each line can be handled with `&mut self`.
        let mut lines = std::mem::replace(&mut c.lines, LineBuffer::new(0));
        while !self.conns.get(&conn).is_some_and(Conn::is_checking) {
            let Some(frame) = lines.next_frame() else {
                break;
            };
            match frame {
                Frame::Line(line) => {
                    if let Some(suite) = self.hello(conn, line) {
                        let hello = line.to_vec();
                        let rest = lines.take_rest();
                        return self.start_handshake(now, conn, &hello, suite, &rest);
                    }
                    self.handle_line(now, conn, line)
                }
                Frame::TooLong => self.line_too_long(now, conn),
            }
            if !self.conns.contains_key(&conn) {
                return;
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.lines = lines;
        }
    }

    /// The suite `line` asks for, if it is the first line of `conn` and a
    /// hello for a suite we offered.
    pub(super) fn hello(&mut self, conn: ConnId, line: &[u8]) -> Option<Suite> {
        let offered = &self.secure.as_ref()?.0.suites;
        let c = self.conns.get_mut(&conn)?;
        match &mut c.wire {
            Wire::Plain { offer } if offer.is_some() => {
                let suite =
                    secure::hello_suite(line).filter(|s| offered.iter().any(|o| o == s.name()));
                if suite.is_none() {
                    // The first line decides: this one is a plaintext login.
                    *offer = None;
                }
                suite
            }
            _ => None,
        }
    }

    pub(super) fn start_handshake(
        &mut self,
        now: Now,
        conn: ConnId,
        hello: &[u8],
        suite: Suite,
        rest: &[u8],
    ) {
        let Some((_, rng)) = self.secure.as_mut() else {
            return;
        };
        let seed = rng.seed();
        let Some(identity) = self.config.secure.as_ref().map(|s| s.identity.clone()) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Wire::Plain { offer: Some(offer) } = &c.wire else {
            return;
        };
        let mut hello_line = hello.to_vec();
        hello_line.push(b'\n');
        let prologue = secure::prologue(offer, &hello_line);
        match secure::handshake(false, &identity, &prologue, seed, suite) {
            Ok(noise) => {
                c.wire = Wire::Handshake {
                    noise: Box::new(noise),
                    frames: FrameBuffer::default(),
                };
                c.lines = LineBuffer::new(self.config.max_line);
                self.handle_frames(now, conn, rest);
            }
            Err(_) => self.drop_secure(now, conn, "the handshake could not start"),
        }
    }

    /// Bytes on a connection that speaks frames: advance the handshake, or
    /// decrypt and handle the lines inside.
    pub(super) fn handle_frames(&mut self, now: Now, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut out = Vec::new();
        if let (Phase::Side, Wire::Secure(session)) = (&c.phase, &mut c.wire) {
            // Records, one per frame: those before a bad frame are authentic.
            let mut records = Vec::new();
            let failure = session
                .open_frames(bytes, |p| records.push(p.to_vec()))
                .err()
                .map(open_failure);
            self.side_records(now, conn, records);
            if let Some(why) = failure {
                self.drop_secure(now, conn, why);
            }
            return;
        }
        let failure = match &mut c.wire {
            Wire::Handshake { .. } => advance_handshake(c, bytes, &mut out),
            Wire::Secure(session) => session.open(bytes, &mut c.lines).err().map(open_failure),
            Wire::Plain { .. } => return,
        };
        if !out.is_empty() {
            self.actions.push_back(Action::Send {
                conn,
                bytes: out.into(),
            });
        }
        // Lines that decrypted before a bad frame are authentic: handle them
        // first, so the outcome does not depend on how TCP split the bytes.
        self.drain_lines(now, conn);
        if let Some(why) = failure {
            self.drop_secure(now, conn, why);
        }
    }

    /// Closes a connection whose encrypted transport failed. Nothing is sent:
    /// there is no channel left to say it on.
    pub(super) fn drop_secure(&mut self, now: Now, conn: ConnId, why: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let addr = c.addr;
        let name = c.name().map(str::to_string);
        let message = format!("Closed encrypted connection from {addr}: {why}");
        match &name {
            Some(user) => {
                self.presence_event(Level::Warning, EventKind::Auth, message, user, false)
            }
            None => self.event(Level::Warning, EventKind::Auth, message),
        }
        self.close(conn, CloseReason::Encryption);
        if let Some(name) = name {
            self.announce_left(now, &name);
        }
    }

    pub(super) fn handle_line(&mut self, now: Now, conn: ConnId, line: &[u8]) {
        // Blank lines are keep-alives at most; LanTalk ignores them too.
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match self.conns.get(&conn).map(|c| (&c.phase, c.is_secure())) {
            Some((Phase::Active { .. }, _)) => self.handle_chat_line(now, conn, line),
            Some((Phase::Approving { .. }, _)) => self.handle_approval_line(now, conn, line),
            // Lines end when a connection becomes a side connection.
            Some((Phase::Side, _)) => {}
            // An encrypted connection's first line may be a side
            // connection's ticket rather than a login.
            Some((
                Phase::LoggingIn {
                    pake: None,
                    check: None,
                    ..
                },
                true,
            )) if line.starts_with(b"{\"type\":\"attach\"") => {
                match crate::transfer::record::parse(line) {
                    Ok(crate::transfer::record::Record::Control(
                        crate::transfer::record::Control::Attach { ticket, from },
                    )) => self.attach(now, conn, ticket, from),
                    _ => self.refuse_login(now, conn, "Malformed file connection."),
                }
            }
            _ => self.handle_login(now, conn, line),
        }
    }

    pub(super) fn line_too_long(&mut self, now: Now, conn: ConnId) {
        let max = self.config.max_line;
        let notice = format!("Line longer than {max} bytes — disconnecting.");
        let logged_in = self.conns.get(&conn).and_then(Conn::name).is_some();
        if logged_in {
            self.kick(
                now,
                conn,
                &notice,
                CloseReason::LineTooLong,
                "was disconnected for sending an oversized line",
            );
        } else {
            self.refuse_login_as(now, conn, &notice, CloseReason::LineTooLong);
        }
    }
}

/// The responder's side of the Noise handshake: answers the client's
/// messages (into `out`), and once it is done turns the connection into a
/// [`secure::Session`], which reads whatever frames came with the last
/// message. Says why if it failed.
fn advance_handshake(c: &mut Conn, bytes: &[u8], out: &mut Vec<u8>) -> Option<&'static str> {
    let Wire::Handshake { noise, frames } = &mut c.wire else {
        return None;
    };
    frames.push(bytes);
    let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
    while let Some(frame) = frames.next_frame() {
        // Our handshake messages carry no payload; one that does is not
        // ours (the first message is not even authenticated, so this is
        // checked by hand).
        if !matches!(
            noise.read_message(frame, grow(&mut buf, frame.len())),
            Ok(0)
        ) {
            return Some("the handshake failed (tampered or not LanTalk)");
        }
        if !noise.is_handshake_finished() {
            match noise.write_message(&[], &mut buf) {
                Ok(n) => out.extend_from_slice(&secure::frame(&buf[..n])),
                Err(_) => return Some("the handshake failed"),
            }
            continue;
        }
        let Wire::Handshake { noise, frames } =
            std::mem::replace(&mut c.wire, Wire::Plain { offer: None })
        else {
            unreachable!("matched above")
        };
        let Ok(mut session) = secure::Session::new(*noise, frames) else {
            return Some("the handshake failed");
        };
        let opened = session.open(&[], &mut c.lines);
        c.wire = Wire::Secure(session);
        return opened.err().map(open_failure);
    }
    (frames.buffered() > secure::MAX_FRAME + 2).then_some("a frame was too large")
}

fn open_failure(e: secure::OpenError) -> &'static str {
    match e {
        secure::OpenError::Tampered => "a frame failed to decrypt (tampered or replayed)",
        secure::OpenError::Oversized => "a frame was too large",
    }
}
