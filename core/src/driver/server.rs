//! Carrying out the server's actions on a runtime's [`Transport`].

use crate::password::PasswordCheck;
use crate::server::{Action, ConnId, DisconnectCause, Payload, Server};
use crate::time::Now;

use super::{QueueFull, ServerHost};

/// The network side of a server, as a runtime provides it.
pub trait Transport {
    /// Queue bytes for `conn` (no-op for an unknown one).
    fn send(&mut self, conn: ConnId, bytes: Payload) -> Result<(), QueueFull>;
    /// Flush what is queued for `conn`, then close it.
    fn close(&mut self, conn: ConnId);
    /// Drop `conn` at once without flushing.
    fn abort(&mut self, conn: ConnId);
    /// Run `check` somewhere blocking is fine (a worker thread, never the
    /// loop that serves connections), then deliver its answer to
    /// [`Server::handle_password_checked`] as one more input.
    fn check_password(&mut self, check: PasswordCheck);
}

/// Carries out every pending server action. Returns true once the server has
/// shut down (the runtime then flushes and exits).
pub fn dispatch_server(
    server: &mut Server,
    now: Now,
    transport: &mut dyn Transport,
    host: &mut dyn ServerHost,
) -> bool {
    let mut shut_down = false;
    while let Some(action) = server.poll_action() {
        match action {
            Action::Send { conn, bytes } => {
                if transport.send(conn, bytes).is_err() {
                    transport.abort(conn);
                    let _ = server.handle_disconnect(now, conn, DisconnectCause::SlowReader);
                }
            }
            Action::Close { conn, .. } => transport.close(conn),
            Action::CheckPassword(check) => transport.check_password(check),
            Action::PersistBans(bans) => host.persist_bans(&bans),
            Action::Event(event) => host.event(&event),
            Action::Shutdown => shut_down = true,
        }
    }
    shut_down
}
