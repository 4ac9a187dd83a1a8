//! The server's lines: the login (password, approval) and then chat,
//! turned into events.

use super::*;

impl Client {
    pub(super) fn handle_line(&mut self, now: Now, line: &[u8]) {
        if self.phase == Phase::AwaitingResult {
            if let Some(approval) = approval::parse_server(line) {
                return self.handle_approval_line(now, approval);
            }
        }
        let msg = match protocol::parse_server_line(line) {
            Ok(msg) => msg,
            Err(m) => {
                return self.notice(format!(
                    "Ignored a malformed line from the server ({}).",
                    m.0
                ))
            }
        };
        match (self.phase, msg) {
            (
                Phase::AwaitingRequest,
                ServerLine::AuthRequest {
                    needs_password,
                    offer,
                },
            ) => {
                self.needs_password = needs_password;
                let offer = offer.filter(Offer::is_supported);
                let pinned = self
                    .config
                    .secure
                    .as_ref()
                    .is_some_and(|s| s.pinned.is_some());
                match (&self.config.secure, offer) {
                    (Some(_), Some(offer)) => self.start_handshake(now, line, offer),
                    (Some(_), None) if pinned => self.fail(
                        "This server's key is pinned in known_servers, but it no longer offers \
                         encryption. Someone may be downgrading the connection; refusing.",
                    ),
                    (Some(_), None) if !self.config.allow_plaintext => self.fail(
                        "The server does not offer encryption (LanTalk 2.0?): anyone on the \
                         network could read the chat and the password. Join anyway with \
                         --allow-plaintext.",
                    ),
                    _ => self.log_in(now),
                }
            }
            (Phase::AwaitingPake, ServerLine::Pake { msg, proof }) => {
                let hash = match &self.wire {
                    Wire::Secure(session) => session.hash().to_vec(),
                    _ => return self.fail("The server sent a password check outside encryption."),
                };
                let Some(pake) = self.pake.take() else {
                    return self.fail("The server sent an unexpected password check.");
                };
                match pake.finish(&msg, &proof, &hash) {
                    Some(proof) => {
                        self.send_line(protocol::pake_confirm(&proof));
                        self.phase = Phase::AwaitingResult;
                    }
                    // The server could not prove it knows the same password.
                    None => self.fail_as("Wrong password.", Refusal::WrongPassword),
                }
            }
            (phase, ServerLine::AuthFail { reason, why }) if phase.is_logging_in() => {
                self.phase = Phase::Closed;
                self.event(ClientEvent::Refused { reason, why });
                self.actions.push_back(ClientAction::Close);
            }
            (
                Phase::AwaitingResult | Phase::AwaitingApproval,
                ServerLine::AuthOk {
                    username,
                    server_name,
                    session,
                },
            ) => {
                self.phase = Phase::Chatting;
                self.deadline = None;
                self.last_sent = now.instant;
                if !username.is_empty() {
                    self.config.username = username;
                }
                // The roster first: a user interface learns from it that the
                // server is one of ours (rooms follow) before it is told the
                // login is through.
                self.awaiting_lobby = session.is_some();
                if let Some(session) = session {
                    // The server's own limits replace our guesses.
                    self.pacing = session.rate_limit.map(|r| Window::new(paced(r)));
                    self.keepalive = session
                        .idle_timeout
                        .map(|t| (t / 3).max(Duration::from_millis(100)));
                    self.event(ClientEvent::Roster {
                        users: session.users,
                    });
                }
                self.event(ClientEvent::Joined {
                    username: self.config.username.clone(),
                    server_name,
                });
                // Lines typed while logging in go out now, before anything
                // that follows in the same read; with a server of ours once
                // the lobby (where they are said) has arrived.
                if !self.awaiting_lobby {
                    self.replay_early(now);
                }
                self.flush(now);
            }
            (phase, _) if phase.is_logging_in() => {
                self.fail("The server did not follow the LanTalk login handshake.")
            }
            (
                Phase::Chatting | Phase::Leaving,
                ServerLine::Message {
                    ts,
                    user,
                    text,
                    room,
                    id,
                    at_ms,
                },
            ) => {
                if let Some(room) = &room {
                    self.room_message(room, id);
                }
                self.event(ClientEvent::Message {
                    ts,
                    user,
                    text,
                    room,
                    id,
                    at_ms,
                })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::Room(view)) => {
                self.room_state(now, view)
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::RoomLeft { room, reason }) => {
                self.room_left(room, reason)
            }
            (
                Phase::Chatting | Phase::Leaving,
                ServerLine::RoomMember {
                    room,
                    user,
                    joined,
                    text,
                },
            ) => self.room_member(room, user, joined, text),
            (
                Phase::Chatting | Phase::Leaving,
                ServerLine::History {
                    place,
                    reason,
                    lines,
                    more,
                },
            ) => self.history(now, place, reason, lines, more),
            (
                Phase::Chatting | Phase::Leaving,
                ServerLine::Pm {
                    ts,
                    from_user,
                    text,
                },
            ) => self.event(ClientEvent::Pm {
                ts,
                from_user,
                text,
            }),
            (Phase::Chatting | Phase::Leaving, ServerLine::System { ts, text, room }) => {
                self.event(ClientEvent::System { ts, text, room })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::Presence { user, online }) => {
                if !online {
                    self.gone_from_rooms(&user);
                }
                self.event(ClientEvent::Presence { user, online })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::PluginCommands(commands)) => {
                self.plugin_commands = commands.clone();
                self.event(ClientEvent::PluginCommands { commands })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::PmSent { to_user, text, .. }) => {
                self.event(ClientEvent::PmSent { to: to_user, text })
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::File(news)) => {
                self.handle_file_news(now, news)
            }
            (Phase::Chatting | Phase::Leaving, ServerLine::AuthFail { reason, .. }) => {
                self.event(ClientEvent::System {
                    ts: String::new(),
                    text: reason,
                    room: None,
                })
            }
            // Chatting, leaving or closed: other lines are ignored (the
            // login phases were all handled above).
            _ => {}
        }
    }

    /// The host approves each connection: commit to our nonce, then reveal
    /// it once the server's is in, and show the code both sides derive.
    pub(super) fn handle_approval_line(
        &mut self,
        now: Now,
        line: Result<ServerApproval, Malformed>,
    ) {
        let hash = match &self.wire {
            Wire::Secure(session) => session.hash().to_vec(),
            _ => return self.fail("The server asked for approval outside encryption."),
        };
        match (line, self.approval_nonce) {
            (Ok(ServerApproval::Needed), None) => {
                let Some(rng) = self.rng.as_mut() else {
                    return;
                };
                let nonce = rng.seed();
                self.approval_nonce = Some(nonce);
                self.send_line(approval::commit(&secure::approval_commit(&nonce)));
            }
            (
                Ok(ServerApproval::Nonce {
                    nonce: theirs,
                    timeout_secs,
                }),
                Some(ours),
            ) => {
                let code = secure::approval_code(&hash, &ours, &theirs);
                self.send_line(approval::reveal(&ours));
                self.phase = Phase::AwaitingApproval;
                // The host's own deadline governs now, with the usual
                // allowance for the answer to arrive.
                self.deadline = timeout_secs.map(|secs| {
                    now.instant + Duration::from_secs(secs.min(86_400)) + self.config.auth_timeout
                });
                self.event(ClientEvent::AwaitingApproval { code });
            }
            (Err(m), _) => self.fail(&format!(
                "The server sent a malformed approval line ({}).",
                m.0
            )),
            _ => self.fail("The server did not follow the LanTalk approval exchange."),
        }
    }

    /// Sends the login: in plaintext as LanTalk 2.0 does, or inside the
    /// encrypted session, where a password is proven with SPAKE2 instead.
    pub(super) fn log_in(&mut self, now: Now) {
        self.deadline = Some(now.instant + self.config.auth_timeout);
        let secure = matches!(self.wire, Wire::Secure(_));
        if self.needs_password && self.config.password.is_none() {
            if !self.config.ask_password {
                return self.fail_as("This server needs a password.", Refusal::NeedsPassword);
            }
            self.phase = Phase::NeedPassword;
            self.deadline = None;
            return self.event(ClientEvent::PasswordRequired);
        }
        let name = self.config.username.clone();
        if !secure {
            let password = self.config.password.as_deref().unwrap_or("");
            self.send_line(protocol::login(&name, password));
            self.phase = Phase::AwaitingResult;
            return;
        }
        if !self.needs_password {
            self.send_line(protocol::secure_login(&name, None));
            self.phase = Phase::AwaitingResult;
            return;
        }
        let (Some(kdf), Some(password), Some(rng)) =
            (&self.kdf, &self.config.password, self.rng.as_mut())
        else {
            return self.fail("The server wants a password but offered no way to prove it.");
        };
        let secret = crate::password::derive(password.as_bytes(), &kdf.salt, kdf.params);
        let (pake, msg) = secure::pake_client_start(&secret, rng.seed());
        self.pake = Some(pake);
        self.send_line(protocol::secure_login(&name, Some(&msg)));
        self.phase = Phase::AwaitingPake;
    }
}
