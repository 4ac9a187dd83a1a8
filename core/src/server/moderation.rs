//! Removing a user (flood control and the console share it).

use super::*;

impl Server {
    /// Sends `notice` to `conn`, closes it, and tells everyone else that the
    /// user `what` (e.g. "was kicked").
    pub(super) fn kick(
        &mut self,
        now: Now,
        conn: ConnId,
        notice: &str,
        reason: CloseReason,
        what: &str,
    ) {
        self.send(conn, protocol::system(now.wall, notice));
        if let Some(c) = self.remove(conn) {
            self.actions.push_back(Action::Close { conn, reason });
            if let Phase::Active { name, .. } = c.phase {
                let level = match reason {
                    CloseReason::Kicked | CloseReason::Banned => Level::Info,
                    _ => Level::Warning,
                };
                let kind = match reason {
                    CloseReason::Flooding => EventKind::RateLimit,
                    CloseReason::LineTooLong | CloseReason::Malformed => EventKind::Malformed,
                    _ => EventKind::Moderation,
                };
                self.presence_event(level, kind, format!("{name} {what}"), &name, false);
                let others = protocol::system(now.wall, &format!("{name} {what}."));
                self.broadcast(others, None);
                self.broadcast_ours(protocol::presence(now.wall, &name, false), None);
            }
        }
    }
}
