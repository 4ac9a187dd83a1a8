//! Deadlines: login, approval and idle timeouts.

use super::*;

impl Server {
    /// Time passed; fire every deadline that is due.
    pub fn handle_timeout(&mut self, now: Now) {
        self.expire(now);
        self.sweep_files(now);
        self.plugin_timeouts(now);
        self.ask_next(now);
    }

    pub(super) fn expire(&mut self, now: Now) {
        while let Some(&Reverse((at, conn))) = self.timers.peek() {
            if at > now.instant {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get(&conn) else {
                // Not speaking LanTalk yet: maybe a web request's deadline.
                self.web_expire(now, conn);
                continue;
            };
            let Some(real) = c.deadline(self.config.idle_timeout) else {
                continue;
            };
            if real > now.instant {
                self.timers.push(Reverse((real, conn)));
                continue;
            }
            match c.phase {
                Phase::Approving {
                    step: approve::Step::Waiting { .. },
                    ..
                } => self.approval_timed_out(now, conn),
                Phase::LoggingIn { .. } | Phase::Approving { .. } => {
                    self.refuse_login_as(now, conn, "Login timed out.", CloseReason::AuthTimeout)
                }
                Phase::Side => self.close(conn, CloseReason::IdleTimeout),
                Phase::Active { .. } => self.kick(
                    now,
                    conn,
                    "Idle timeout \u{2014} disconnecting.",
                    CloseReason::IdleTimeout,
                    "timed out",
                ),
            }
        }
    }

    /// When [`Server::handle_timeout`] should be called next. May be early
    /// (then nothing happens), never late.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.timers.peek().map(|Reverse((t, _))| *t);
        [conn, self.files_timeout(), self.plugins.timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}
