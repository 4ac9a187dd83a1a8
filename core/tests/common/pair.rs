//! A simulated network: one [`Server`] and any number of peers, each on a
//! connection of its own to it, with time that moves only when the test says.
//!
//! Modelled on quinn-proto's test `Pair` (`quinn-proto/src/tests/util.rs`):
//! the state machines talk to each other directly, [`Pair::drive`] moves
//! bytes both ways until neither side has anything more to say, and time
//! jumps from one `poll_timeout` to the next instead of passing. The pumping
//! is written once, here; what a transcript looks like belongs to each test
//! file, which renders [`Pair::trace`] (everything that happened, in order)
//! in its own format and asserts on it.
//!
//! A peer is either our [`Client`] or a *raw* peer: a LanTalk 2.0 program
//! played by the test, which writes its bytes by hand ([`Pair::send_raw`])
//! and only collects what it receives.

use lantalk_core::client::{Client, ClientAction, ClientConfig, ClientEvent};
use lantalk_core::password::PasswordCheck;
use lantalk_core::server::{
    Action, ApprovalRequest, CloseReason, ConnId, DisconnectCause, Server, ServerConfig,
};
use lantalk_core::transfer::{FileReply, SideId};
use lantalk_core::{BanList, Instant, Now};

use super::disk::MemDisk;
use super::{addr, at, secs};

/// Which way bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// What the network does to bytes in flight: it returns the chunks that
/// arrive instead (none: lost; two: replayed; changed: tampered with), so a
/// test can play an attacker on the path.
pub type Wire = Box<dyn FnMut(Dir, Vec<u8>) -> Vec<Vec<u8>>>;

/// A peer of the pair: peers are numbered from 0 in the order they connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerId(pub usize);

/// Who ended a connection. Once ended, nothing more crosses it either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    ByServer(CloseReason),
    /// Our client closed it (`ClientAction::Close`) or the peer hung up.
    ByPeer,
}

/// One thing that happened, in the order it happened.
#[derive(Debug)]
pub enum Seen {
    /// A line the test wrote: a step's heading or a note.
    Mark(String),
    /// Bytes as they left the wire (after [`Wire`]), whether or not the
    /// connection was still open to take them.
    Bytes {
        peer: PeerId,
        dir: Dir,
        bytes: Vec<u8>,
    },
    /// A server action other than `Send` (those are [`Seen::Bytes`]).
    Server(Action),
    /// An event our client reported.
    Event { peer: PeerId, event: ClientEvent },
    /// Our client closed its connection.
    Closes { peer: PeerId },
}

struct Peer {
    label: String,
    address: String,
    conn: ConnId,
    /// `None` for a raw peer.
    client: Option<Client>,
    closed: Option<Closed>,
    /// The files our client reads and writes.
    disk: MemDisk,
}

/// A side connection our client opened (for a file transfer).
struct SideLink {
    peer: PeerId,
    side: SideId,
    conn: ConnId,
    closed: bool,
    /// The client paused reading: what the server sends waits here.
    paused: bool,
    held: Vec<Vec<u8>>,
}

/// Something that happens after the round that asked for it, as a
/// runtime's answers do.
enum Later {
    ServerDrained(ConnId),
    SideDrained(PeerId, SideId),
    ServerFiles(FileReply),
    ClientFiles(PeerId, FileReply),
}

pub struct Pair {
    pub server: Server,
    peers: Vec<Peer>,
    now: Now,
    wire: Wire,
    /// Everything that happened, in order; a test may clear it to look at
    /// what follows only.
    pub trace: Vec<Seen>,
    /// The server's files.
    pub server_disk: MemDisk,
    sides: Vec<SideLink>,
    /// Connections the server stopped reading, with what waits for it.
    server_paused: std::collections::HashMap<ConnId, Vec<Vec<u8>>>,
    later: Vec<Later>,
    /// Cut the side connection that carries the server's bytes past this
    /// many (once: a network that drops a transfer midway).
    pub cut_side_after: Option<usize>,
    side_bytes: usize,
}

/// Rounds of [`Pair::drive`] after which two sides that keep answering each
/// other are taken to be stuck (a runaway exchange fails instead of hanging).
const MAX_ROUNDS: usize = 1000;

/// Deadlines [`Pair::jump_to`] fires before it takes time to be stuck.
const MAX_DEADLINES: usize = 100_000;

impl Pair {
    /// A server at time 0 behind a wire that delivers every byte unchanged.
    pub fn new(config: ServerConfig) -> Pair {
        Pair::with_wire(config, Box::new(|_, bytes| vec![bytes]))
    }

    pub fn with_wire(config: ServerConfig, wire: Wire) -> Pair {
        let now = at(0.0);
        Pair {
            server: Server::new(config, now, BanList::new()),
            peers: Vec::new(),
            now,
            wire,
            trace: Vec::new(),
            server_disk: MemDisk::default(),
            sides: Vec::new(),
            server_paused: Default::default(),
            later: Vec::new(),
            cut_side_after: None,
            side_bytes: 0,
        }
    }

    /// Our client connects from `address` and runs until both sides wait.
    pub fn connect(&mut self, label: &str, address: &str, config: ClientConfig) -> PeerId {
        let client = Client::new(config, self.now);
        self.open(label, address, Some(client))
    }

    /// Our client, already given input (lines typed before it connected),
    /// connects from `address` and runs until both sides wait.
    pub fn connect_client(&mut self, label: &str, address: &str, client: Client) -> PeerId {
        self.open(label, address, Some(client))
    }

    /// A raw peer connects from `address`; it says nothing until
    /// [`Pair::send_raw`].
    pub fn connect_raw(&mut self, label: &str, address: &str) -> PeerId {
        self.open(label, address, None)
    }

    fn open(&mut self, label: &str, address: &str, client: Option<Client>) -> PeerId {
        let conn = self.server.handle_connect(self.now, addr(address));
        self.peers.push(Peer {
            label: label.to_string(),
            address: address.to_string(),
            conn,
            client,
            closed: None,
            disk: MemDisk::default(),
        });
        self.drive();
        PeerId(self.peers.len() - 1)
    }

    /// Bytes a raw peer writes.
    pub fn send_raw(&mut self, peer: PeerId, bytes: &[u8]) {
        assert!(self.is_raw(peer), "our client writes its own bytes");
        self.send_to_server(peer, bytes.to_vec());
        self.drive();
    }

    /// Gives the server an input (a console line, an operator's answer,
    /// a shutdown...) and drives.
    pub fn with_server(&mut self, f: impl FnOnce(&mut Server, Now)) {
        f(&mut self.server, self.now);
        self.drive();
    }

    /// Gives our client `peer` an input (a typed line, Ctrl-C...) and drives.
    pub fn with_client(&mut self, peer: PeerId, f: impl FnOnce(&mut Client, Now)) {
        let now = self.now;
        f(self.client_mut(peer), now);
        self.drive();
    }

    /// The peer's transport goes away under it (a pulled cable, a killed
    /// program): the server is told, and so is our client if it is one.
    pub fn hang_up(&mut self, peer: PeerId) {
        let now = self.now;
        let p = &mut self.peers[peer.0];
        if p.closed.is_some() {
            return;
        }
        p.closed = Some(Closed::ByPeer);
        if let Some(client) = p.client.as_mut() {
            client.handle_disconnect(now);
        }
        self.server
            .handle_disconnect(now, p.conn, DisconnectCause::PeerClosed)
            .expect("an open connection is known to the server");
        self.drive();
    }

    /// Moves bytes both ways until neither side has anything more to do:
    /// the server's actions first, then each client's, round after round.
    /// Password checks are run here and answered at once, as a runtime does
    /// on a worker; questions to the operator wait for the test to answer
    /// (see [`Pair::questions`]).
    pub fn drive(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut moved = false;
            while let Some(action) = self.server.poll_action() {
                moved = true;
                self.server_action(action);
            }
            for i in 0..self.peers.len() {
                while let Some(action) = self.peers[i].client.as_mut().and_then(Client::poll_action)
                {
                    moved = true;
                    self.client_action(PeerId(i), action);
                }
            }
            if !moved {
                let later = std::mem::take(&mut self.later);
                if later.is_empty() {
                    return;
                }
                for l in later {
                    self.happen(l);
                }
            }
        }
        panic!("the two sides never settled");
    }

    fn server_action(&mut self, action: Action) {
        let now = self.now;
        if let Some(i) = self.side_index(&action) {
            return self.side_server_action(i, action);
        }
        match action {
            Action::WatchDrain(conn) => self.later.push(Later::ServerDrained(conn)),
            Action::PauseReading { conn, paused } => {
                if paused {
                    self.server_paused.entry(conn).or_default();
                } else if let Some(held) = self.server_paused.remove(&conn) {
                    for chunk in held {
                        let _ = self.server.handle_input(now, conn, &chunk);
                    }
                }
            }
            Action::Files(request) => {
                if let Some(reply) = self.server_disk.carry_out(*request) {
                    self.later.push(Later::ServerFiles(reply));
                }
            }
            Action::Send { conn, bytes } => {
                let peer = self
                    .peer_of(conn)
                    .expect("the server sends on a connection");
                for chunk in (self.wire)(Dir::ToClient, bytes.to_vec()) {
                    let p = &mut self.peers[peer.0];
                    if let (Some(client), None) = (p.client.as_mut(), p.closed) {
                        client.handle_input(now, &chunk);
                    }
                    self.trace.push(Seen::Bytes {
                        peer,
                        dir: Dir::ToClient,
                        bytes: chunk,
                    });
                }
            }
            other => {
                match &other {
                    Action::Close { conn, reason } => {
                        let peer = self.peer_of(*conn).expect("the server closes a connection");
                        let p = &mut self.peers[peer.0];
                        if p.closed.is_none() {
                            p.closed = Some(Closed::ByServer(*reason));
                            if let Some(client) = p.client.as_mut() {
                                client.handle_disconnect(now);
                            }
                        }
                    }
                    Action::CheckPassword(check) => {
                        let answer = PasswordCheck::clone(check).run();
                        self.server.handle_password_checked(now, answer);
                    }
                    _ => {}
                }
                self.trace.push(Seen::Server(other));
            }
        }
    }

    fn client_action(&mut self, peer: PeerId, action: ClientAction) {
        let now = self.now;
        match action {
            ClientAction::Open(side) => {
                let address = self.peers[peer.0].address.clone();
                let conn = self.server.handle_connect(now, addr(&address));
                self.sides.push(SideLink {
                    peer,
                    side,
                    conn,
                    closed: false,
                    paused: false,
                    held: Vec::new(),
                });
                self.client_mut(peer).handle_side_opened(now, side);
            }
            ClientAction::SideSend(side, bytes) => {
                if let Some(l) = self.link(peer, side) {
                    if !l.closed {
                        let conn = l.conn;
                        match self.server_paused.get_mut(&conn) {
                            Some(held) => held.push(bytes),
                            None => {
                                let _ = self.server.handle_input(now, conn, &bytes);
                            }
                        }
                    }
                }
            }
            ClientAction::SideWatchDrain(side) => self.later.push(Later::SideDrained(peer, side)),
            ClientAction::SidePause(side, paused) => {
                let mut release = Vec::new();
                if let Some(l) = self.link(peer, side) {
                    l.paused = paused;
                    if !paused {
                        release = std::mem::take(&mut l.held);
                    }
                }
                for chunk in release {
                    self.client_mut(peer).handle_side_input(now, side, &chunk);
                }
            }
            ClientAction::SideClose(side) => {
                if let Some(l) = self.link(peer, side) {
                    if !l.closed {
                        l.closed = true;
                        let conn = l.conn;
                        let _ =
                            self.server
                                .handle_disconnect(now, conn, DisconnectCause::PeerClosed);
                    }
                }
            }
            ClientAction::Files(request) => {
                if let Some(reply) = self.peers[peer.0].disk.carry_out(*request) {
                    self.later.push(Later::ClientFiles(peer, reply));
                }
            }
            ClientAction::Send(bytes) => self.send_to_server(peer, bytes),
            ClientAction::Event(event) => self.trace.push(Seen::Event { peer, event }),
            ClientAction::Close => {
                self.trace.push(Seen::Closes { peer });
                let p = &mut self.peers[peer.0];
                if p.closed.is_none() {
                    p.closed = Some(Closed::ByPeer);
                    // The server may have closed this connection in this very
                    // round, its `Close` not yet polled: then it is unknown
                    // to the server, which is no error.
                    let _ = self.server.handle_disconnect(
                        self.now,
                        p.conn,
                        DisconnectCause::PeerClosed,
                    );
                }
            }
        }
    }

    fn link(&mut self, peer: PeerId, side: SideId) -> Option<&mut SideLink> {
        self.sides
            .iter_mut()
            .find(|l| l.peer == peer && l.side == side)
    }

    /// The side connection an action of the server's is about, if it is
    /// about one.
    fn side_index(&self, action: &Action) -> Option<usize> {
        let conn = match action {
            Action::Send { conn, .. } | Action::Close { conn, .. } => *conn,
            _ => return None,
        };
        self.sides.iter().position(|l| l.conn == conn)
    }

    fn side_server_action(&mut self, i: usize, action: Action) {
        let now = self.now;
        let (peer, side) = (self.sides[i].peer, self.sides[i].side);
        match action {
            Action::Send { bytes, .. } => {
                self.side_bytes += bytes.len();
                if self.cut_side_after.is_some_and(|n| self.side_bytes > n) {
                    self.cut_side_after = None;
                    let l = &mut self.sides[i];
                    if !l.closed {
                        l.closed = true;
                        let conn = l.conn;
                        let _ =
                            self.server
                                .handle_disconnect(now, conn, DisconnectCause::PeerClosed);
                        self.client_mut(peer).handle_side_closed(now, side);
                    }
                    return;
                }
                let l = &mut self.sides[i];
                if l.closed {
                    return;
                }
                if l.paused {
                    l.held.push(bytes.to_vec());
                } else {
                    self.client_mut(peer).handle_side_input(now, side, &bytes);
                }
            }
            Action::Close { .. } => {
                let l = &mut self.sides[i];
                if !l.closed {
                    l.closed = true;
                    self.client_mut(peer).handle_side_closed(now, side);
                }
            }
            _ => {}
        }
    }

    fn happen(&mut self, later: Later) {
        let now = self.now;
        match later {
            Later::ServerDrained(conn) => self.server.handle_drained(now, conn),
            Later::ServerFiles(reply) => self.server.handle_file_reply(now, reply),
            Later::SideDrained(peer, side) => {
                if self.link(peer, side).is_some_and(|l| !l.closed) {
                    self.client_mut(peer).handle_side_drained(now, side);
                }
            }
            Later::ClientFiles(peer, reply) => self.client_mut(peer).handle_file_reply(now, reply),
        }
    }

    /// The files of our client `peer`.
    pub fn disk(&mut self, peer: PeerId) -> &mut MemDisk {
        &mut self.peers[peer.0].disk
    }

    /// Cuts every side connection of `peer` (a killed transfer).
    pub fn cut_sides(&mut self, peer: PeerId) {
        let now = self.now;
        for i in 0..self.sides.len() {
            let l = &mut self.sides[i];
            if l.peer == peer && !l.closed {
                l.closed = true;
                let (conn, side) = (l.conn, l.side);
                let _ = self
                    .server
                    .handle_disconnect(now, conn, DisconnectCause::PeerClosed);
                self.client_mut(peer).handle_side_closed(now, side);
            }
        }
        self.drive();
    }

    fn send_to_server(&mut self, peer: PeerId, bytes: Vec<u8>) {
        for chunk in (self.wire)(Dir::ToServer, bytes) {
            let p = &self.peers[peer.0];
            if p.closed.is_none() {
                // As in `client_action`: the server may have just closed it.
                let _ = self.server.handle_input(self.now, p.conn, &chunk);
            }
            self.trace.push(Seen::Bytes {
                peer,
                dir: Dir::ToServer,
                bytes: chunk,
            });
        }
    }

    // ── Time ─────────────────────────────────────────────────────────────

    pub fn now(&self) -> Now {
        self.now
    }

    /// The earliest deadline anyone asked for. A peer whose connection ended
    /// asks for none: nothing it does can reach the server any more.
    pub fn next_timeout(&self) -> Option<Instant> {
        let clients = self
            .peers
            .iter()
            .filter(|p| p.closed.is_none())
            .filter_map(|p| p.client.as_ref()?.poll_timeout());
        clients.chain(self.server.poll_timeout()).min()
    }

    /// Jumps to the next deadline, fires it on every side and drives
    /// (quinn's `time_step`); false if nobody waits for one. A side whose
    /// deadline is later finds it early and does nothing.
    pub fn time_step(&mut self) -> bool {
        let Some(t) = self.next_timeout() else {
            return false;
        };
        self.now = at(secs(t.max(self.now.instant)));
        let now = self.now;
        self.server.handle_timeout(now);
        for p in self.peers.iter_mut().filter(|p| p.closed.is_none()) {
            if let Some(client) = p.client.as_mut() {
                client.handle_timeout(now);
            }
        }
        self.drive();
        true
    }

    /// Lets time run to `secs`, firing every deadline on the way in order,
    /// as a runtime would.
    pub fn jump_to(&mut self, secs: f64) {
        let end = at(secs);
        assert!(end.instant >= self.now.instant, "time goes back to {secs}");
        for _ in 0..MAX_DEADLINES {
            match self.next_timeout() {
                Some(t) if t <= end.instant => {
                    self.time_step();
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
        panic!("deadlines never stop coming before {secs}");
    }

    // ── What the test looks at ───────────────────────────────────────────

    /// A line of the test's own in the trace: a step's heading or a note.
    pub fn mark(&mut self, line: String) {
        self.trace.push(Seen::Mark(line));
    }

    pub fn client(&self, peer: PeerId) -> &Client {
        self.peers[peer.0]
            .client
            .as_ref()
            .expect("a client of ours, not a raw peer")
    }

    fn client_mut(&mut self, peer: PeerId) -> &mut Client {
        self.peers[peer.0]
            .client
            .as_mut()
            .expect("a client of ours, not a raw peer")
    }

    pub fn is_raw(&self, peer: PeerId) -> bool {
        self.peers[peer.0].client.is_none()
    }

    pub fn label(&self, peer: PeerId) -> &str {
        &self.peers[peer.0].label
    }

    pub fn conn(&self, peer: PeerId) -> ConnId {
        self.peers[peer.0].conn
    }

    pub fn peer_of(&self, conn: ConnId) -> Option<PeerId> {
        self.peers.iter().position(|p| p.conn == conn).map(PeerId)
    }

    pub fn closed(&self, peer: PeerId) -> Option<Closed> {
        self.peers[peer.0].closed
    }

    /// What our client `peer` reported, in order.
    pub fn events(&self, peer: PeerId) -> impl Iterator<Item = &ClientEvent> {
        self.trace.iter().filter_map(move |s| match s {
            Seen::Event { peer: p, event } if *p == peer => Some(event),
            _ => None,
        })
    }

    /// The bytes that came out of the wire towards `peer`, one per chunk.
    pub fn received(&self, peer: PeerId) -> impl Iterator<Item = &[u8]> {
        self.trace.iter().filter_map(move |s| match s {
            Seen::Bytes {
                peer: p,
                dir: Dir::ToClient,
                bytes,
            } if *p == peer => Some(bytes.as_slice()),
            _ => None,
        })
    }

    /// The server's actions other than `Send`, in order.
    pub fn server_actions(&self) -> impl Iterator<Item = &Action> {
        self.trace.iter().filter_map(|s| match s {
            Seen::Server(action) => Some(action),
            _ => None,
        })
    }

    /// Every question the server asked the operator; the test answers with
    /// `Server::handle_approval` or a console line.
    pub fn questions(&self) -> impl Iterator<Item = &ApprovalRequest> {
        self.server_actions().filter_map(|a| match a {
            Action::AskOperator(request) => Some(&**request),
            _ => None,
        })
    }
}
