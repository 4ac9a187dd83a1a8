//! Bytes to and from the server: plaintext lines, the Noise handshake
//! (with the pause for the user's trust), sealed frames.

use super::*;

impl Client {
    pub(super) fn drain_lines(&mut self, now: Now) {
        let mut lines = std::mem::replace(&mut self.lines, LineBuffer::new(0));
        while let Some(frame) = lines.next_frame() {
            match frame {
                Frame::Line(line) => {
                    let was_plain = matches!(self.wire, Wire::Plain);
                    self.handle_line(now, line);
                    if self.leaving {
                        // A user who left may have to be let go now (asked
                        // for a password, say), before the next line: as if
                        // the next line came in a read of its own.
                        self.flush(now);
                    }
                    if was_plain && !matches!(self.wire, Wire::Plain) {
                        // Switched to frames: what followed the line is frames.
                        let rest = lines.take_rest();
                        self.lines = LineBuffer::new(self.config.max_line);
                        if let Err(why) = self.decrypt(now, &rest) {
                            return self.fail(why);
                        }
                        return self.drain_lines(now);
                    }
                }
                Frame::TooLong => self.fail("The server sent an oversized line."),
            }
            if self.phase == Phase::Closed {
                break;
            }
        }
        self.lines = lines;
    }

    /// Frames from the server: advance the handshake, or decrypt into lines.
    pub(super) fn decrypt(&mut self, now: Now, bytes: &[u8]) -> Result<(), &'static str> {
        let frames = match &mut self.wire {
            Wire::Secure(session) => {
                return session.open(bytes, &mut self.lines).map_err(|e| match e {
                    secure::OpenError::Tampered => {
                        "A message from the server failed to decrypt: the connection was \
                         tampered with."
                    }
                    secure::OpenError::Oversized => "The server sent an oversized frame.",
                })
            }
            Wire::Handshake { frames, .. } | Wire::Paused { frames } => frames,
            Wire::Plain => return Ok(()),
        };
        frames.push(bytes);
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let mut pending = std::mem::take(frames);
        let mut result = Ok(());
        let mut server_hello = false;
        if let Some(frame) = pending.next_frame() {
            match &mut self.wire {
                Wire::Handshake { noise, .. } => {
                    if !matches!(
                        noise.read_message(frame, grow(&mut buf, frame.len())),
                        Ok(0)
                    ) {
                        result = Err("The encrypted handshake failed: the offer was tampered \
                                      with, or the server is not a LanTalk server.");
                    } else {
                        let Wire::Handshake { noise, .. } =
                            std::mem::replace(&mut self.wire, Wire::Plain)
                        else {
                            unreachable!("matched above")
                        };
                        self.pending = Some(noise);
                        self.wire = Wire::Paused {
                            frames: FrameBuffer::default(),
                        };
                        server_hello = true;
                    }
                }
                // The server says nothing more until our half is in.
                _ => result = Err("The server spoke out of turn during the handshake."),
            }
        }
        // Anything after the server's message waits (Paused): a complete
        // frame there is out of turn, found on the next read at the latest.
        if result.is_ok() && pending.next_frame().is_some() {
            result = Err("The server spoke out of turn during the handshake.");
        }
        if let Wire::Handshake { frames, .. } | Wire::Paused { frames } = &mut self.wire {
            *frames = pending;
            if frames.buffered() > secure::MAX_FRAME + 2 {
                result = Err("The server sent an oversized frame.");
            }
        }
        if result.is_ok() && server_hello {
            self.check_server_key(now);
        }
        result
    }

    /// The server proved it holds the key it sent: is it the one we expect?
    pub(super) fn check_server_key(&mut self, now: Now) {
        let Some(key) = self
            .pending
            .as_ref()
            .and_then(|n| n.get_remote_static())
            .map(<[u8]>::to_vec)
        else {
            return self.fail("The server sent no key.");
        };
        let Some(sec) = &self.config.secure else {
            return;
        };
        let fingerprint = secure::fingerprint(&key);
        match (&sec.pinned, sec.on_new_key) {
            (Some(pinned), _) if *pinned == key => {
                self.event(ClientEvent::Secured {
                    fingerprint,
                    key,
                    new: false,
                });
                self.continue_handshake(now);
            }
            (Some(pinned), _) => {
                let was = secure::fingerprint(pinned);
                self.fail_as(
                    &format!(
                        "WARNING: THE SERVER'S KEY HAS CHANGED. It was {was} and is now \
                     {fingerprint}. Someone may be intercepting the connection, or the \
                     server was reinstalled. Refusing to connect."
                    ),
                    Refusal::KeyChanged,
                );
            }
            (None, NewKey::Accept) => {
                self.event(ClientEvent::Secured {
                    fingerprint,
                    key,
                    new: true,
                });
                self.continue_handshake(now);
            }
            (None, NewKey::Ask) => {
                self.phase = Phase::NeedTrust;
                self.deadline = None;
                self.event(ClientEvent::ConfirmServerKey { fingerprint });
            }
            (None, NewKey::Refuse) => self.fail_as(
                &format!(
                    "The server's key {fingerprint} is not known, and new keys are not \
                     accepted without asking."
                ),
                Refusal::UnknownKey,
            ),
        }
    }

    /// Sends our half of the handshake and logs in inside the session.
    pub(super) fn continue_handshake(&mut self, now: Now) {
        let Some(mut noise) = self.pending.take() else {
            return;
        };
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let Ok(n) = noise.write_message(&[], &mut buf) else {
            return self.fail("The handshake failed.");
        };
        let frames = match std::mem::replace(&mut self.wire, Wire::Plain) {
            Wire::Paused { frames } => frames,
            _ => FrameBuffer::default(),
        };
        let Ok(session) = secure::Session::new(*noise, frames) else {
            return self.fail("The handshake failed.");
        };
        self.actions
            .push_back(ClientAction::Send(secure::frame(&buf[..n])));
        self.wire = Wire::Secure(session);
        self.deadline = Some(now.instant + self.config.auth_timeout);
        self.phase = Phase::AwaitingResult;
        self.log_in(now);
    }

    /// Answers the offer: a hello, then the first Noise message.
    pub(super) fn start_handshake(&mut self, now: Now, offer_line: &[u8], offer: Offer) {
        let (Some(sec), Some(rng)) = (&self.config.secure, self.rng.as_mut()) else {
            return;
        };
        // The caller checked that the offer has a suite we speak.
        let suite = offer.choose().unwrap_or(secure::Suite::ChaChaPoly);
        let hello = secure::hello_line(suite);
        let mut offer_line = offer_line.to_vec();
        offer_line.push(b'\n');
        let prologue = secure::prologue(&offer_line, hello.as_bytes());
        let Ok(mut noise) = secure::handshake(true, &sec.identity, &prologue, rng.seed(), suite)
        else {
            return self.fail("The encrypted handshake could not start.");
        };
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let Ok(n) = noise.write_message(&[], &mut buf) else {
            return self.fail("The encrypted handshake could not start.");
        };
        self.kdf = offer.kdf;
        self.actions
            .push_back(ClientAction::Send(hello.into_bytes()));
        self.actions
            .push_back(ClientAction::Send(secure::frame(&buf[..n])));
        self.wire = Wire::Handshake {
            noise: Box::new(noise),
            frames: FrameBuffer::default(),
        };
        self.phase = Phase::Handshaking;
        self.deadline = Some(now.instant + self.config.auth_timeout);
    }

    /// Sends a JSON line on the wire as it is now: plain or encrypted.
    pub(super) fn send_line(&mut self, line: String) {
        let bytes = match &mut self.wire {
            Wire::Secure(session) => {
                let mut out = Vec::with_capacity(line.len() + 18);
                // Only fails once 2^64 messages were sent: nothing more can
                // be said on this session.
                if session.seal_into(line.as_bytes(), &mut out).is_err() {
                    return self.fail("The encrypted session is used up; reconnect.");
                }
                out
            }
            _ => line.into_bytes(),
        };
        self.actions.push_back(ClientAction::Send(bytes));
    }
}
