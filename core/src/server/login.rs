//! Logging in: name checks, the password (in the clear for LanTalk 2.0, by
//! SPAKE2 inside the encrypted session), the failed-login limit per address,
//! and the welcome.

use super::*;
use crate::password::PasswordHash;
use crate::protocol::Refusal;

/// Addresses whose failed logins are tracked at most; beyond this the idle
/// records are dropped first, so the table cannot grow without bound.
const MAX_TRACKED_ADDRESSES: usize = 4096;

impl Server {
    pub(super) fn handle_login(&mut self, now: Now, conn: ConnId, line: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ip = c.ip();
        let plaintext = c.is_plaintext();
        if let Phase::LoggingIn { pake, .. } = &mut c.phase {
            if let Some((name, check)) = pake.take() {
                return self.finish_pake(now, conn, line, name, check);
            }
        }

        let login = match protocol::parse_login(line) {
            Ok(login) => login,
            Err(m) => {
                return self.refuse_login(now, conn, &format!("Malformed login: {}.", m.0));
            }
        };
        if plaintext && self.secure.is_some() && !self.config.allow_plaintext {
            return self.refuse_login(
                now,
                conn,
                "This server only accepts encrypted connections, and your client does not \
                 encrypt (LanTalk 2.0?). Use a LanTalk client that does, or ask the operator \
                 to allow plaintext clients.",
            );
        }
        if let Some(w) = self.failed_logins.get_mut(&ip) {
            if w.is_full(now.instant) {
                let wait = w
                    .frees_at()
                    .map(|t| {
                        t.saturating_since(now.instant)
                            .as_secs_f64()
                            .ceil()
                            .max(1.0) as u64
                    })
                    .unwrap_or(1);
                let text = format!("Too many failed logins; try again in {wait} s.");
                return self.refuse_login(now, conn, &text);
            }
        }
        if let Err(reason) = validate_username(&login.username) {
            return self.refuse_login_why(now, conn, &reason, Refusal::InvalidName);
        }
        if self.name_taken(&login.username) {
            return self.refuse_login_why(now, conn, "Username already taken.", Refusal::NameTaken);
        }
        let Some(hash) = self.config.password.clone() else {
            return self.admit(now, conn, login.username);
        };
        if plaintext {
            return self.check_password(conn, hash, login);
        }
        // Encrypted: the password never crosses the wire; run SPAKE2 instead.
        let Some(client_msg) = login.pake else {
            return self.refuse_login_why(
                now,
                conn,
                "This server needs a password.",
                Refusal::NeedsPassword,
            );
        };
        let seed = match self.secure.as_mut() {
            Some((_, rng)) => rng.seed(),
            None => return,
        };
        let Some(Wire::Secure(session)) = self.conns.get(&conn).map(|c| &c.wire) else {
            return;
        };
        match secure::pake_server_respond(hash.secret(), &client_msg, session.hash(), seed) {
            Some((msg, proof, check)) => {
                if let Some(Phase::LoggingIn { pake, .. }) =
                    self.conns.get_mut(&conn).map(|c| &mut c.phase)
                {
                    *pake = Some((login.username, check));
                }
                self.send(conn, protocol::pake_reply(&msg, &proof));
            }
            None => self.wrong_password(now, conn, ip, &login.username),
        }
    }

    /// The client's proof that it knows the password.
    pub(super) fn finish_pake(
        &mut self,
        now: Now,
        conn: ConnId,
        line: &[u8],
        name: String,
        check: PakeServer,
    ) {
        let ip = match self.conns.get(&conn) {
            Some(c) => c.ip(),
            None => return,
        };
        match protocol::parse_pake_confirm(line) {
            Ok(proof) if check.verify(&proof) => {
                // The name may have been taken while the check ran.
                if self.name_taken(&name) {
                    return self.refuse_login_why(
                        now,
                        conn,
                        "Username already taken.",
                        Refusal::NameTaken,
                    );
                }
                self.admit(now, conn, name)
            }
            _ => self.wrong_password(now, conn, ip, &name),
        }
    }

    /// Hands the password out to be checked off the event loop (at most
    /// `max_password_checks` at once); the login resumes in
    /// [`Server::handle_password_checked`].
    fn check_password(&mut self, conn: ConnId, hash: PasswordHash, login: protocol::Login) {
        let id = self.new_check_id();
        if let Some(Phase::LoggingIn { check, .. }) =
            self.conns.get_mut(&conn).map(|c| &mut c.phase)
        {
            *check = Some((id, login.username));
        }
        self.checks.insert(id, Waiter::Login(conn));
        self.hand_out(PasswordCheck::new(id, hash, login.password));
    }

    pub(super) fn new_check_id(&mut self) -> CheckId {
        let id = CheckId(self.next_check);
        self.next_check += 1;
        id
    }

    /// Hands a password job out, or queues it while `max_password_checks`
    /// are under way (its waiter is already in `checks`).
    pub(super) fn hand_out(&mut self, job: PasswordCheck) {
        if self.checks.len() - self.checks_waiting.len() <= self.config.max_password_checks.max(1) {
            self.actions.push_back(Action::CheckPassword(Box::new(job)));
        } else {
            self.checks_waiting.push_back(job);
        }
    }

    /// The answer to an [`Action::CheckPassword`]. An answer for a login
    /// that is gone (the peer left, its time ran out) is dropped.
    pub fn handle_password_checked(&mut self, now: Now, answer: PasswordChecked) {
        self.expire(now);
        match self.checks.remove(&answer.id) {
            Some(Waiter::Login(conn)) => self.password_checked(now, conn, answer),
            Some(Waiter::Room(wait)) => self.room_checked(now, wait, answer),
            None => {}
        }
        // A slot is free: the next waiting check (for a login still there).
        while let Some(job) = self.checks_waiting.pop_front() {
            if self
                .checks
                .get(&job.id)
                .is_some_and(|w| self.conns.contains_key(&w.conn()))
            {
                self.actions.push_back(Action::CheckPassword(Box::new(job)));
                break;
            }
            self.checks.remove(&job.id);
        }
        self.ask_next(now);
    }

    fn password_checked(&mut self, now: Now, conn: ConnId, answer: PasswordChecked) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ip = c.ip();
        let Phase::LoggingIn { check, .. } = &mut c.phase else {
            return;
        };
        let Some((id, name)) = check.take() else {
            return;
        };
        if id != answer.id {
            return;
        }
        if !answer.ok {
            return self.wrong_password(now, conn, ip, &name);
        }
        // The name may have been taken while the check ran.
        if self.name_taken(&name) {
            return self.refuse_login_why(now, conn, "Username already taken.", Refusal::NameTaken);
        }
        self.admit(now, conn, name);
        // Lines that arrived meanwhile (a client may send chat right after
        // its login) are handled now, in order.
        self.drain_lines(now, conn);
    }

    pub(super) fn wrong_password(&mut self, now: Now, conn: ConnId, ip: IpAddr, name: &str) {
        self.record_failed_login(now, ip);
        self.event(
            Level::Warning,
            EventKind::Auth,
            format!("Wrong password attempt for '{name}' from {ip}"),
        );
        self.refuse_login_why(now, conn, "Wrong password.", Refusal::WrongPassword);
    }

    pub(super) fn complete_login(&mut self, now: Now, conn: ConnId, name: String) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ip = c.ip();
        c.phase = Phase::Active {
            name: name.clone(),
            joined: self.logins,
        };
        self.logins += 1;
        let how = match &c.wire {
            Wire::Secure(session) => format!(" (key {})", secure::fingerprint(session.remote())),
            _ if self.secure.is_some() => " (unencrypted)".to_string(),
            _ => String::new(),
        };
        let ours = c.is_secure();
        self.users.insert(name_key(&name), conn);
        // The idle deadline may come before the login deadline still armed.
        if let Some(idle) = self.config.idle_timeout {
            self.timers.push(Reverse((now.instant + idle, conn)));
        }
        let ok = if ours {
            let info = protocol::SessionInfo {
                rate_limit: self.config.rate_limit,
                idle_timeout: self.config.idle_timeout,
                users: self.usernames().into_iter().map(str::to_string).collect(),
            };
            protocol::auth_ok_ours(now.wall, &name, &self.config.name, &info)
        } else {
            protocol::auth_ok(now.wall, &name, &self.config.name)
        };
        self.send(conn, ok);
        if ours {
            self.send_plugin_commands(now, conn);
        }
        self.enter_lobby(now, conn);
        let message = format!("{name} joined from {ip}{how}");
        self.presence_event(Level::Info, EventKind::Join, message, &name, true);
        // Everyone is told when a member can be read by the whole network.
        let marker = if how == " (unencrypted)" {
            how.as_str()
        } else {
            ""
        };
        let notice = protocol::system(now.wall, &format!("{name} joined from {ip}{marker}."));
        self.broadcast(notice, Some(conn));
        self.broadcast_ours(protocol::presence(now.wall, &name, true), Some(conn));
    }

    pub(super) fn refuse_login(&mut self, now: Now, conn: ConnId, reason: &str) {
        self.refuse_login_as(now, conn, reason, CloseReason::AuthFailed);
    }

    /// [`Server::refuse_login`] saying why as a value too (to clients of
    /// ours; LanTalk 2.0 clients get the same bytes as ever).
    pub(super) fn refuse_login_why(&mut self, now: Now, conn: ConnId, reason: &str, why: Refusal) {
        self.refuse(now, conn, reason, CloseReason::AuthFailed, Some(why));
    }

    pub(super) fn refuse_login_as(
        &mut self,
        now: Now,
        conn: ConnId,
        reason: &str,
        close: CloseReason,
    ) {
        self.refuse(now, conn, reason, close, None);
    }

    fn refuse(
        &mut self,
        now: Now,
        conn: ConnId,
        reason: &str,
        close: CloseReason,
        why: Option<Refusal>,
    ) {
        let ours = match self.conns.get(&conn) {
            Some(c) => {
                let addr = c.addr;
                let ours = c.is_secure();
                self.event(
                    Level::Info,
                    EventKind::Auth,
                    format!("Login refused for {addr}: {reason}"),
                );
                ours
            }
            None => false,
        };
        let line = match why {
            Some(why) if ours => protocol::auth_fail_ours(now.wall, reason, why),
            _ => protocol::auth_fail(now.wall, reason),
        };
        self.send(conn, line);
        self.close(conn, close);
    }

    pub(super) fn record_failed_login(&mut self, now: Now, ip: IpAddr) {
        if !self.failed_logins.contains_key(&ip)
            && self.failed_logins.len() >= MAX_TRACKED_ADDRESSES
        {
            self.failed_logins.retain(|_, w| !w.is_idle(now.instant));
            if self.failed_logins.len() >= MAX_TRACKED_ADDRESSES {
                if let Some(&victim) = self.failed_logins.keys().next() {
                    self.failed_logins.remove(&victim);
                }
            }
        }
        let rate = self.config.failed_logins;
        self.failed_logins
            .entry(ip)
            .or_insert_with(|| Window::new(rate))
            .hit(now.instant);
    }
}
