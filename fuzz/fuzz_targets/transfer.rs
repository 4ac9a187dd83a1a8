//! File sharing under attack: two real clients of ours and a server, with
//! side connections, disks in memory that fail when the input says, a
//! network that cuts side connections or flips bytes in them, commands
//! typed in any order, and time passing.
//!
//! Beyond "no panic, everything drains, nothing is sent on a closed
//! connection": a download reported done holds exactly the bytes of the
//! file that was sent (whatever was cut, tampered with or failed on the
//! way), the server only finishes a file whose bytes are the sender's, and
//! a side connection that carried a tampered byte is closed.
//!
//! Input: byte 0 and 1 the file's length (little-endian, in KiB, at most
//! 2.5 MiB: two full chunks and a part); then ops, one byte each with the
//! argument bytes it reads (see `step`).
#![no_main]

use std::collections::{BTreeMap, VecDeque};

use lantalk_core::client::{Client, ClientAction, ClientConfig, ClientEvent, ClientSecure, NewKey};
use lantalk_core::secure::StaticKey;
use lantalk_core::server::{Action, ConnId, DisconnectCause, FilesConfig, SecureConfig};
use lantalk_core::transfer::{
    chunk_hash, file_hash, names, FileAnswer, FileError, FileErrorKind, FileReply, FileRequest, Place, SideId, Stamp,
    CHUNK,
};
use lantalk_core::{Now, Server, ServerConfig};
use lantalk_fuzz::Reader;
use libfuzzer_sys::fuzz_target;

const SENDER: usize = 0;
const RECEIVER: usize = 1;

/// A disk in memory, failing the next request when told to.
#[derive(Default)]
struct Disk {
    files: BTreeMap<String, Vec<u8>>,
    /// Everything ever finished, by key (a file withdrawn later included).
    finished: BTreeMap<String, Vec<u8>>,
    partial: BTreeMap<String, (Vec<u8>, Vec<[u8; 32]>)>,
    fail_next: Option<FileErrorKind>,
}

fn key(place: &Place) -> String {
    match place {
        Place::Shared(id) => format!("shared/{id}"),
        Place::Local(p) => p.clone(),
        Place::Download { id, name } => format!("dl/{}@{id}", names::sanitise(name)),
    }
}

impl Disk {
    fn carry_out(&mut self, request: FileRequest) -> Option<FileReply> {
        let op = request.op()?;
        if let Some(kind) = self.fail_next.take() {
            return Some(FileReply {
                op,
                result: Err(FileError::new(kind, "injected")),
            });
        }
        let result = match request {
            FileRequest::Stat { place, .. } => match self.files.get(&key(&place)) {
                Some(b) => Ok(FileAnswer::Stat {
                    stamp: Stamp {
                        size: b.len() as u64,
                        modified_ms: 1,
                    },
                    name: "f.bin".into(),
                    folder: false,
                }),
                None => Err(FileError::new(FileErrorKind::NotFound, "none")),
            },
            FileRequest::Read {
                place, offset, len, ..
            } => match self.files.get(&key(&place)) {
                Some(b) => {
                    let start = (offset as usize).min(b.len());
                    let end = (start + len as usize).min(b.len());
                    Ok(FileAnswer::Data(b[start..end].to_vec()))
                }
                None => Err(FileError::new(FileErrorKind::NotFound, "none")),
            },
            FileRequest::Prepare { place, .. } => {
                let (data, hashes) = self.partial.entry(key(&place)).or_default();
                data.truncate(hashes.len() * CHUNK as usize);
                Ok(FileAnswer::Prepared {
                    verified: hashes.clone(),
                })
            }
            FileRequest::Write {
                place,
                offset,
                bytes,
                hash,
                ..
            } => {
                let (data, hashes) = self.partial.entry(key(&place)).or_default();
                assert_eq!(offset, data.len() as u64, "chunks are written in order");
                assert_eq!(hashes.len() as u64 * CHUNK, offset, "one hash per chunk");
                data.extend_from_slice(&bytes);
                hashes.push(hash);
                Ok(FileAnswer::Written)
            }
            FileRequest::Finish { place, .. } => {
                let (data, _) = self.partial.remove(&key(&place)).unwrap_or_default();
                // A download's final name overwrites nothing: its key with a
                // number.
                let mut name = key(&place);
                let mut n = 0;
                while self.files.contains_key(&name) {
                    n += 1;
                    name = format!("{} ({n})", key(&place));
                }
                self.finished.insert(name.clone(), data.clone());
                self.files.insert(name.clone(), data);
                Ok(FileAnswer::Finished { path: name })
            }
            FileRequest::Copy { from, to, .. } => match self.files.get(&key(&from)).cloned() {
                Some(b) => {
                    let hashes: Vec<[u8; 32]> = b.chunks(CHUNK as usize).map(chunk_hash).collect();
                    self.files.insert(key(&to), b);
                    Ok(FileAnswer::Copied {
                        path: key(&to),
                        hash: file_hash(&hashes),
                    })
                }
                None => Err(FileError::new(FileErrorKind::NotFound, "none")),
            },
            FileRequest::Discard { .. } => unreachable!("has no op"),
        };
        Some(FileReply { op, result })
    }
}

struct Side {
    peer: usize,
    side: SideId,
    conn: ConnId,
    closed: bool,
    /// Flip a bit of the next bytes sent on it.
    tamper: bool,
    tampered: bool,
}

enum Later {
    ServerFiles(FileReply),
    ClientFiles(usize, FileReply),
    ServerDrained(ConnId),
    SideDrained(usize, SideId),
}

struct World {
    server: Server,
    server_disk: Disk,
    clients: Vec<(Client, ConnId, Disk)>,
    sides: Vec<Side>,
    closed: Vec<ConnId>,
    later: VecDeque<Later>,
    now: f64,
    original: Vec<u8>,
}

fn ours(name: &str, k: u8) -> ClientConfig {
    let mut c = ClientConfig::new(name, None);
    c.allow_plaintext = false;
    c.send_rate = None;
    c.secure = Some(ClientSecure {
        identity: StaticKey::from_private([k; 32]),
        rng_seed: [k; 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    c
}

impl World {
    fn now(&self) -> Now {
        Now::from_secs_f64(self.now)
    }

    fn side_of_conn(&self, conn: ConnId) -> Option<usize> {
        self.sides.iter().position(|s| s.conn == conn)
    }

    fn drive(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(action) = self.server.poll_action() {
                moved = true;
                self.server_action(action);
            }
            for i in 0..self.clients.len() {
                while let Some(action) = self.clients[i].0.poll_action() {
                    moved = true;
                    self.client_action(i, action);
                }
            }
            if !moved {
                match self.later.pop_front() {
                    Some(l) => self.happen(l),
                    None => return,
                }
            }
        }
        panic!("never settles");
    }

    fn server_action(&mut self, action: Action) {
        let now = self.now();
        match action {
            Action::Send { conn, bytes } => {
                assert!(!self.closed.contains(&conn), "send on closed {conn}");
                if let Some(i) = self.side_of_conn(conn) {
                    let (peer, side, closed) =
                        (self.sides[i].peer, self.sides[i].side, self.sides[i].closed);
                    if !closed {
                        self.clients[peer].0.handle_side_input(now, side, &bytes);
                    }
                } else if let Some(i) = self.clients.iter().position(|c| c.1 == conn) {
                    self.clients[i].0.handle_input(now, &bytes);
                }
            }
            Action::Close { conn, .. } => {
                assert!(!self.closed.contains(&conn), "second close of {conn}");
                self.closed.push(conn);
                if let Some(i) = self.side_of_conn(conn) {
                    if !self.sides[i].closed {
                        self.sides[i].closed = true;
                        let (peer, side) = (self.sides[i].peer, self.sides[i].side);
                        self.clients[peer].0.handle_side_closed(now, side);
                    }
                } else if let Some(i) = self.clients.iter().position(|c| c.1 == conn) {
                    self.clients[i].0.handle_disconnect(now);
                }
            }
            Action::Files(request) => {
                if let Some(reply) = self.server_disk.carry_out(*request) {
                    self.later.push_back(Later::ServerFiles(reply));
                }
            }
            Action::WatchDrain(conn) => self.later.push_back(Later::ServerDrained(conn)),
            // Delivery is immediate here: pausing changes nothing.
            Action::PauseReading { .. } => {}
            Action::CheckPassword(_) | Action::Store(_) => {}
            _ => {}
        }
    }

    fn client_action(&mut self, i: usize, action: ClientAction) {
        let now = self.now();
        match action {
            ClientAction::Send(bytes) => {
                let conn = self.clients[i].1;
                if !self.closed.contains(&conn) {
                    let _ = self.server.handle_input(now, conn, &bytes);
                }
            }
            ClientAction::Event(ClientEvent::TransferDone {
                id,
                upload: false,
                path: Some(path),
                ..
            }) => {
                let got = self.clients[i].2.files.get(&path);
                let kept = self.server_disk.finished.get(&format!("shared/{id}"));
                assert!(
                    got.is_some() && got == kept,
                    "a finished download holds the bytes the server kept"
                );
            }
            ClientAction::Event(_) => {}
            ClientAction::Close => {
                let conn = self.clients[i].1;
                if !self.closed.contains(&conn) {
                    self.closed.push(conn);
                    let _ = self
                        .server
                        .handle_disconnect(now, conn, DisconnectCause::PeerClosed);
                }
            }
            ClientAction::Open(side) => {
                let conn = self.server.handle_connect(now, "10.0.0.9:1".parse().unwrap());
                self.sides.push(Side {
                    peer: i,
                    side,
                    conn,
                    closed: false,
                    tamper: false,
                    tampered: false,
                });
                self.clients[i].0.handle_side_opened(now, side);
            }
            ClientAction::SideSend(side, mut bytes) => {
                if let Some(s) = self.sides.iter_mut().find(|s| s.peer == i && s.side == side) {
                    if s.closed || self.closed.contains(&s.conn) {
                        return;
                    }
                    if std::mem::take(&mut s.tamper) && !bytes.is_empty() {
                        let at = bytes.len() / 2;
                        bytes[at] ^= 0x40;
                        s.tampered = true;
                    }
                    let conn = s.conn;
                    let _ = self.server.handle_input(now, conn, &bytes);
                }
            }
            ClientAction::SideWatchDrain(side) => self.later.push_back(Later::SideDrained(i, side)),
            ClientAction::SidePause(..) => {}
            ClientAction::SideClose(side) => self.cut(i, side, false),
            ClientAction::Files(request) => {
                if let Some(reply) = self.clients[i].2.carry_out(*request) {
                    self.later.push_back(Later::ClientFiles(i, reply));
                }
            }
        }
    }

    /// Ends a side connection from the client's end (`tell_client`: it did
    /// not ask for it: the network cut it).
    fn cut(&mut self, peer: usize, side: SideId, tell_client: bool) {
        let now = self.now();
        let Some(s) = self
            .sides
            .iter_mut()
            .find(|s| s.peer == peer && s.side == side && !s.closed)
        else {
            return;
        };
        s.closed = true;
        let conn = s.conn;
        if !self.closed.contains(&conn) {
            self.closed.push(conn);
            let _ = self
                .server
                .handle_disconnect(now, conn, DisconnectCause::PeerClosed);
        }
        if tell_client {
            self.clients[peer].0.handle_side_closed(now, side);
        }
    }

    fn happen(&mut self, later: Later) {
        let now = self.now();
        match later {
            Later::ServerFiles(reply) => self.server.handle_file_reply(now, reply),
            Later::ClientFiles(i, reply) => self.clients[i].0.handle_file_reply(now, reply),
            Later::ServerDrained(conn) => {
                if !self.closed.contains(&conn) {
                    self.server.handle_drained(now, conn)
                }
            }
            Later::SideDrained(i, side) => {
                if self
                    .sides
                    .iter()
                    .any(|s| s.peer == i && s.side == side && !s.closed)
                {
                    self.clients[i].0.handle_side_drained(now, side)
                }
            }
        }
    }

    fn typed(&mut self, i: usize, line: &str) {
        let now = self.now();
        self.clients[i].0.handle_user_line(now, line);
        self.drive();
    }

    /// Every side connection that carried a tampered byte is closed.
    fn check_tampered_closed(&self) {
        for s in &self.sides {
            if s.tampered {
                assert!(
                    self.closed.contains(&s.conn),
                    "a tampered side connection stays open"
                );
            }
        }
    }

    /// A file the server finished holds the sender's bytes.
    fn check_server_files(&self) {
        for (k, bytes) in &self.server_disk.finished {
            assert!(k.starts_with("shared/"));
            assert!(*bytes == self.original, "the server kept other bytes");
        }
    }
}

fn step(w: &mut World, r: &mut Reader) {
    match r.u8() % 12 {
        0 => w.typed(SENDER, "/send #lobby f.bin"),
        1 => w.typed(SENDER, "/send bob f.bin"),
        2 => w.typed(RECEIVER, "/get 1"),
        3 => w.typed(RECEIVER, "/get all"),
        4 => w.typed(RECEIVER, "/files"),
        5 => {
            let who = (r.u8() % 2) as usize;
            w.typed(who, "/cancel 1");
        }
        6 => {
            // The network cuts a side connection.
            let n = w.sides.len().max(1);
            let i = r.u8() as usize % n;
            if let Some(s) = w.sides.get(i) {
                let (peer, side) = (s.peer, s.side);
                w.cut(peer, side, true);
                w.drive();
            }
        }
        7 => {
            let which = r.u8() % 3;
            let kind = [
                FileErrorKind::NoSpace,
                FileErrorKind::Changed,
                FileErrorKind::Other,
            ][(r.u8() % 3) as usize];
            match which {
                0 => w.server_disk.fail_next = Some(kind),
                1 => w.clients[SENDER].2.fail_next = Some(kind),
                _ => w.clients[RECEIVER].2.fail_next = Some(kind),
            }
        }
        8 => {
            if let Some(s) = w.sides.iter_mut().rev().find(|s| !s.closed) {
                s.tamper = true;
            }
        }
        9 => {
            w.now += f64::from(r.u8()) * 2.0;
            let now = w.now();
            w.server.handle_timeout(now);
            for c in &mut w.clients {
                c.0.handle_timeout(now);
            }
            w.drive();
        }
        10 => {
            // The sender changes its file.
            if let Some(f) = w.clients[SENDER].2.files.get_mut("f.bin") {
                f.push(r.u8());
            }
        }
        _ => {
            let who = (r.u8() % 2) as usize;
            let now = w.now();
            w.clients[who].0.handle_interrupt(now);
            w.drive();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let kib = (r.u16() as usize) % 2561;
    let original: Vec<u8> = (0..kib * 1024 + (kib % 7))
        .map(|i| (i * 31 + i / 4093) as u8)
        .collect();
    let config = ServerConfig {
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([0x11; 32]),
            rng_seed: [5; 32],
            suites: Vec::new(),
        }),
        allow_plaintext: false,
        rate_limit: None,
        files: FilesConfig {
            enabled: true,
            ..FilesConfig::default()
        },
        ..ServerConfig::default()
    };
    let now = Now::from_secs_f64(0.0);
    let mut w = World {
        server: Server::new(config, now, Default::default()),
        server_disk: Disk::default(),
        clients: Vec::new(),
        sides: Vec::new(),
        closed: Vec::new(),
        later: VecDeque::new(),
        now: 0.0,
        original: original.clone(),
    };
    for (name, k) in [("ann", 0x31u8), ("bob", 0x32)] {
        let conn = w.server.handle_connect(now, "10.0.0.1:1".parse().unwrap());
        let client = Client::new(ours(name, k), now);
        w.clients.push((client, conn, Disk::default()));
        w.drive();
    }
    w.clients[SENDER].2.files.insert("f.bin".into(), original);
    let mut steps = 0;
    while !r.is_empty() && steps < 40 {
        steps += 1;
        step(&mut w, &mut r);
        w.check_tampered_closed();
        // A changed file may legitimately differ once it changed; only an
        // unchanged sender's file must arrive intact.
        if w.clients[SENDER].2.files.get("f.bin") == Some(&w.original) {
            w.check_server_files();
        }
    }
});
