//! The contract between the core, the runtimes and the application.
//!
//! A runtime moves bytes and wakes at deadlines; the application (the CLI)
//! stores files, writes logs and talks to the person. Neither decides anything
//! about the protocol. The pieces both runtimes would otherwise write twice —
//! carrying out the server's actions, bounding each connection's outbound
//! queue — live here, written once, with no I/O of their own.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use core::net::SocketAddr;

use crate::bans::BanList;
use crate::client::{Client, ClientAction, ClientConfig, ClientEvent};
use crate::password::PasswordCheck;
use crate::protocol::Refusal;
use crate::server::{
    Action, ApprovalRequest, ConnId, DisconnectCause, Payload, Server, ServerEvent, TrustedPeer,
};
use crate::time::{Now, WallTime};

/// What the application does with everything that is not the network.
pub trait ServerHost: Send + 'static {
    /// The local time of day, for the `ts` field.
    fn wall_time(&mut self) -> WallTime;
    /// The ban list changed: store it (atomically).
    fn persist_bans(&mut self, bans: &BanList);
    /// The trusted peers changed: store the whole list (atomically).
    fn persist_trusted(&mut self, peers: &[TrustedPeer]);
    /// Ask the operator about `request` (its `Display` is the question);
    /// the answer comes back as a console line or `Server::handle_approval`.
    fn ask_operator(&mut self, request: &ApprovalRequest);
    /// Show and/or log an event.
    fn event(&mut self, event: &ServerEvent);
    /// The listener is bound and the server is running; `control` feeds it
    /// console lines and shutdown requests from any thread.
    fn ready(&mut self, local_addr: SocketAddr, control: Control);
}

/// What the application does for a client.
pub trait ClientHost: Send + 'static {
    fn wall_time(&mut self) -> WallTime;
    /// Show an event to the user.
    fn event(&mut self, event: &ClientEvent);
    /// Connected (not yet logged in); `control` feeds the user's input.
    fn ready(&mut self, server_addr: SocketAddr, control: Control);
}

/// Input from outside the network, delivered to a running server or client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A line the operator or user typed.
    Line(String),
    /// The password the user was asked for.
    Password(String),
    /// The user's answer about a server key seen for the first time.
    Trust(bool),
    /// End of input (stdin closed): the server keeps running, the client
    /// finishes sending and leaves.
    EndOfInput,
    /// Stop: a signal or the user giving up.
    Shutdown,
}

/// A thread-safe way to deliver [`Command`]s to a running loop.
pub type Control = Arc<dyn Fn(Command) + Send + Sync>;

/// How a client session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOutcome {
    /// The user left on purpose (exit status 0); otherwise it was refused or lost.
    pub expected: bool,
    /// The session never got past the login.
    pub refused: bool,
    pub reason: String,
    /// Why it was refused, as a value (what to ask the user next).
    pub why: Option<Refusal>,
}

/// One way of running the core on real sockets.
pub trait Runtime {
    /// Binds `bind`, serves until shut down, then flushes and returns.
    fn serve(bind: SocketAddr, server: Server, host: Box<dyn ServerHost>) -> io::Result<()>;
    /// Connects to the first of `addrs` that answers and runs the client until
    /// it is done.
    fn connect(
        addrs: &[SocketAddr],
        config: ClientConfig,
        host: Box<dyn ClientHost>,
    ) -> io::Result<ClientOutcome>;
}

/// A connection's outbound queue has no room: its reader is too slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

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
            Action::PersistTrusted(peers) => host.persist_trusted(&peers),
            Action::AskOperator(request) => host.ask_operator(&request),
            Action::Event(event) => host.event(&event),
            Action::Shutdown => shut_down = true,
        }
    }
    shut_down
}

/// Carries out every pending client action: bytes to send are appended to
/// `out` (the runtime writes them, in one go), events go to the host, and the
/// session's outcome is recorded. Returns true when the client asked to close.
pub fn dispatch_client(
    client: &mut Client,
    host: &mut dyn ClientHost,
    out: &mut Vec<u8>,
    outcome: &mut Option<ClientOutcome>,
) -> bool {
    let mut close = false;
    while let Some(action) = client.poll_action() {
        match action {
            ClientAction::Send(bytes) => out.extend_from_slice(&bytes),
            ClientAction::Event(event) => {
                match &event {
                    ClientEvent::Refused { reason, why } => {
                        *outcome = Some(ClientOutcome {
                            expected: false,
                            refused: true,
                            reason: reason.clone(),
                            why: Some(*why),
                        })
                    }
                    // A refusal already said why; keep that reason.
                    ClientEvent::Disconnected { reason, expected } if outcome.is_none() => {
                        *outcome = Some(ClientOutcome {
                            expected: *expected,
                            refused: false,
                            reason: reason.clone(),
                            why: None,
                        });
                    }
                    _ => {}
                }
                host.event(&event);
            }
            ClientAction::Close => close = true,
        }
    }
    close
}

/// A bounded FIFO of payloads for one connection. Bounded by bytes, not by
/// count, because one stuck reader must not hold megabytes of everyone's chat.
#[derive(Debug)]
pub struct OutQueue {
    items: VecDeque<Payload>,
    bytes: usize,
    limit: usize,
}

/// Default bound of a connection's outbound queue.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;

impl OutQueue {
    pub fn new(limit: usize) -> Self {
        OutQueue {
            items: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub fn push(&mut self, bytes: Payload) -> Result<(), QueueFull> {
        if self.bytes + bytes.len() > self.limit {
            return Err(QueueFull);
        }
        self.bytes += bytes.len();
        self.items.push_back(bytes);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves everything queued into `buf` (cleared first), so one write
    /// carries many messages.
    pub fn drain_into(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.reserve(self.bytes);
        for item in self.items.drain(..) {
            buf.extend_from_slice(&item);
        }
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_by_bytes_and_batches() {
        let mut q = OutQueue::new(10);
        q.push(Arc::from(&b"hello"[..])).unwrap();
        q.push(Arc::from(&b"world"[..])).unwrap();
        assert_eq!(q.push(Arc::from(&b"!"[..])), Err(QueueFull));
        let mut buf = Vec::new();
        q.drain_into(&mut buf);
        assert_eq!(buf, b"helloworld");
        assert!(q.is_empty());
        q.push(Arc::from(&b"again"[..])).unwrap();
    }
}
