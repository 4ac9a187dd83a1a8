//! Carrying out the server's actions on a runtime's [`Transport`].

use crate::password::{PasswordCheck, PasswordChecked};
use crate::server::{Action, ConnId, DisconnectCause, Error, Payload, Server};
use crate::time::Now;
use core::net::SocketAddr;

use super::{Command, QueueFull, ServerHost};

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
    /// Once everything queued for `conn` so far has been written to the
    /// socket, feed [`ServerInput::Drained`] for it (once). This is how bulk
    /// data waits for a slow peer instead of filling the queue.
    fn watch_drain(&mut self, conn: ConnId);
    /// Stop (`true`) or resume reading from `conn`: the core cannot take
    /// more of its bulk data yet. The peer's TCP window then fills and it
    /// waits, and nothing piles up in memory.
    fn pause_reading(&mut self, conn: ConnId, paused: bool);
}

/// Everything a runtime hands the server but new connections (those come
/// with the runtime's own socket type): one mapping for every runtime.
#[derive(Debug)]
pub enum ServerInput {
    /// A deadline from [`Server::poll_timeout`] came (or the loop woke).
    Timeout,
    /// Bytes read from a connection.
    Data(ConnId, Vec<u8>),
    /// The connection's peer closed it, or reading failed.
    Closed(ConnId),
    /// The answer to an [`Action::CheckPassword`], from the worker.
    PasswordChecked(PasswordChecked),
    /// Everything queued for the connection was written, as asked by
    /// [`Action::WatchDrain`].
    Drained(ConnId),
    /// The operator's console, or a signal.
    Command(Command),
}

/// Which listener a connection was accepted on: the chat port, or the web
/// port (HTTP, then a WebSocket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Chat,
    Web,
}

/// Tells the server about a connection accepted on `listener`; the runtime
/// keeps the socket under the id it gets.
pub fn accept_server(
    server: &mut Server,
    now: Now,
    listener: Listener,
    addr: SocketAddr,
) -> ConnId {
    match listener {
        Listener::Chat => server.handle_connect(now, addr),
        Listener::Web => server.handle_connect_web(now, addr),
    }
}

/// Hands `input` to the server.
pub fn feed_server(server: &mut Server, now: Now, input: ServerInput) {
    match input {
        ServerInput::Timeout => server.handle_timeout(now),
        ServerInput::Data(id, bytes) => deliver_input(server, now, id, &bytes),
        ServerInput::Closed(id) => deliver_disconnect(server, now, id, DisconnectCause::PeerClosed),
        ServerInput::PasswordChecked(answer) => server.handle_password_checked(now, answer),
        ServerInput::Drained(id) => server.handle_drained(now, id),
        ServerInput::Command(Command::Line(line)) => server.handle_console(now, &line),
        ServerInput::Command(Command::Shutdown) => server.shutdown(now),
        ServerInput::Command(Command::Stored(reply)) => server.handle_store_reply(now, *reply),
        ServerInput::Command(Command::Files(reply)) => server.handle_file_reply(now, *reply),
        ServerInput::Command(Command::Plugin(reply)) => server.handle_plugin(now, *reply),
        // What only a client is asked (passwords, trusting keys), and the end
        // of the console's input, which leaves the server running.
        ServerInput::Command(Command::Password(_) | Command::Trust(_) | Command::EndOfInput) => {}
    }
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
                    deliver_disconnect(server, now, conn, DisconnectCause::SlowReader);
                }
            }
            Action::Close { conn, .. } => transport.close(conn),
            Action::CheckPassword(check) => transport.check_password(*check),
            Action::PersistBans(bans) => host.persist_bans(&bans),
            Action::PersistTrusted(peers) => host.persist_trusted(&peers),
            Action::AskOperator(request) => host.ask_operator(&request),
            Action::Store(request) => host.store(*request),
            Action::Files(request) => host.files(*request),
            Action::Plugin(request) => host.plugin(*request),
            Action::PersistFiles(files) => host.persist_files(&files),
            Action::WatchDrain(conn) => transport.watch_drain(conn),
            Action::PauseReading { conn, paused } => transport.pause_reading(conn, paused),
            Action::Event(event) => host.event(&event),
            Action::Shutdown => shut_down = true,
        }
    }
    shut_down
}

/// Feeds the server bytes that arrived on `conn`.
///
/// The core may have closed `conn` already (a kick, a failed login, a
/// timeout) while its reader was still reading: the core drops the bytes and
/// says `Ok`, since that is what closing means. An error means an id the
/// core never issued: a bug in the runtime. A new kind of error must be
/// decided on here, so the match names every one.
pub fn deliver_input(server: &mut Server, now: Now, conn: ConnId, bytes: &[u8]) {
    match server.handle_input(now, conn, bytes) {
        Ok(()) => {}
        Err(Error::UnknownConnection(c)) => debug_assert!(false, "input for unissued {c}"),
    }
}

/// Tells the server that the transport under `conn` is gone.
///
/// When the core closed `conn` itself, the runtime still reports the socket
/// going away (its peer closing in turn, or an output cut off that the core
/// had already given up on): the core has forgotten the connection and says
/// `Ok`. As with [`deliver_input`], an error is a runtime's bug.
pub fn deliver_disconnect(server: &mut Server, now: Now, conn: ConnId, cause: DisconnectCause) {
    match server.handle_disconnect(now, conn, cause) {
        Ok(()) => {}
        Err(Error::UnknownConnection(c)) => debug_assert!(false, "disconnect of unissued {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bans::BanList;
    use crate::server::ServerConfig;

    #[test]
    fn input_and_disconnect_after_the_core_closed_are_expected() {
        let now = Now::from_secs_f64(0.0);
        let mut server = Server::new(ServerConfig::default(), now, BanList::default());
        let conn = server.handle_connect(now, "192.0.2.7:40000".parse().unwrap());
        server.shutdown(now);
        let mut closed = false;
        while let Some(action) = server.poll_action() {
            closed |= matches!(action, Action::Close { conn: c, .. } if c == conn);
        }
        assert!(closed, "the core closed the connection");
        // Its reader had not noticed yet: more bytes, then the peer's close.
        let later = Now::from_secs_f64(0.5);
        deliver_input(&mut server, later, conn, b"hello\n");
        deliver_disconnect(&mut server, later, conn, DisconnectCause::PeerClosed);
        assert_eq!(server.poll_action(), None, "nothing to carry out for it");
    }
}
