//! Files, the client's half: `/send`, `/files`, `/get`, `/cancel`, and the
//! side connections that carry the bytes.
//!
//! Each transfer has a side connection of its own (see
//! [`crate::transfer`]): it runs the Noise handshake with our key, insists on
//! the key the chat session's server has (no question to ask: the session
//! already trusts it), presents the server's one-time ticket, then sends or
//! receives chunks. Reading and writing files are requests to the host
//! ([`ClientAction::Files`]); sending waits for each chunk to leave
//! ([`ClientAction::SideWatchDrain`]) and receiving pauses while writes lag,
//! so a transfer holds a few megabytes at most.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};

use super::*;
use crate::transfer::lines::{FileAsk, FileInfo, FileNews};
use crate::transfer::record::{self, Control, Record};
use crate::transfer::{
    chunk_hash, chunk_len, chunks, file_hash, unhex, FileAnswer, FileErrorKind, FileId, FileReply,
    OpId, Place, Stamp, Ticket, CHUNK,
};

/// Chunks read ahead of what is sent.
const READ_AHEAD: usize = 2;
/// Verified chunks waiting to be written before reading pauses.
const MAX_PENDING_WRITES: usize = 4;
/// Tries of a transfer whose side connection keeps being lost.
const MAX_TRIES: u32 = 3;
/// Transfers under way at once; more wait their turn (`/get all` of fifty
/// files runs four at a time, and the server holds few tickets per session).
const MAX_RUNNING: usize = 4;

/// How a transfer is going, for a progress bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub id: u64,
    pub name: String,
    pub upload: bool,
    /// Bytes verified so far (including those of an earlier, interrupted
    /// transfer).
    pub done: u64,
    pub total: u64,
}

/// The client's transfers.
#[derive(Default)]
pub(super) struct Transfers {
    next_ref: u64,
    next_side: u64,
    next_op: u64,
    /// Requests sent to the server, waiting for its answer, by `ref`.
    asked: HashMap<u64, Asked>,
    /// `/send`s waiting for the file's size, by op.
    stats: HashMap<OpId, Redo>,
    /// File requests of side connections, by op.
    ops: HashMap<OpId, (SideId, SideOp)>,
    sides: BTreeMap<SideId, Active>,
    /// `/get all` asked for the list.
    get_all: bool,
    /// Files downloaded this session (for `/files` and `/get all`).
    got: HashSet<u64>,
    /// Transfers waiting for one under way to end.
    waiting: VecDeque<Redo>,
}

enum Asked {
    Offer { redo: Redo, stamp: Stamp },
    Get { redo: Redo },
}

/// How to start a transfer again: what the user typed, and how many times
/// it was tried.
#[derive(Clone, Debug)]
struct Redo {
    what: Again,
    tries: u32,
}

#[derive(Clone, Debug)]
enum Again {
    Send { to: String, path: String },
    Get { id: u64 },
}

impl Redo {
    /// The command that does it again, as the user would type it.
    fn line(&self) -> String {
        match &self.what {
            Again::Send { to, path } => format!("/send {to} {path}"),
            Again::Get { id } => format!("/get {id}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum SideOp {
    Prepare,
    Read(u64),
    Write,
    Finish,
}

/// One transfer on its side connection.
struct Active {
    id: FileId,
    name: String,
    size: u64,
    ticket: Ticket,
    wire: SideWire,
    dir: Dir,
    /// Chunk hashes verified, in order.
    hashes: Vec<[u8; 32]>,
    /// Chunks verified before this connection (a resumed transfer).
    resumed_from: u64,
    /// How to start it again if its connection is lost.
    redo: Redo,
}

enum SideWire {
    /// Waiting for the connection to open.
    Opening,
    /// Waiting for the server's first line (its offer).
    Offer(LineBuffer),
    Handshake {
        noise: Box<snow::HandshakeState>,
        frames: FrameBuffer,
    },
    /// The ticket is presented; waiting for `attached`.
    Attaching(secure::Session),
    Attached(secure::Session),
}

enum Dir {
    Up {
        path: String,
        stamp: Stamp,
        next_read: u64,
        reads_pending: usize,
        ready: BTreeMap<u64, Vec<u8>>,
        next_send: u64,
        draining: bool,
        sent_all: bool,
    },
    Down {
        /// The whole file's hash, as the server announced it.
        expected: Option<[u8; 32]>,
        /// A folder, unpacked once it is whole.
        folder: bool,
        /// Prepared (the partial file found or made).
        prepared: bool,
        /// The chunk arriving, and its hash so far (hashed as it arrives).
        buf: Vec<u8>,
        hasher: Sha256,
        writes_pending: usize,
        paused: bool,
        done: bool,
        finishing: bool,
    },
}

impl Transfers {
    fn reference(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    fn op(&mut self) -> OpId {
        self.next_op += 1;
        OpId(self.next_op)
    }

    /// Whether anything is being sent or received (leaving waits for it).
    pub(super) fn busy(&self) -> bool {
        self.running() > 0 || !self.waiting.is_empty()
    }

    /// Transfers started and not ended.
    fn running(&self) -> usize {
        self.asked.len() + self.stats.len() + self.sides.len()
    }

    /// Whether file `id` is being (or about to be) downloaded.
    fn getting(&self, id: u64) -> bool {
        let is = |r: &Redo| matches!(r.what, Again::Get { id: i } if i == id);
        self.sides.values().any(|a| a.id.0 == id && is(&a.redo))
            || self.asked.values().any(|a| match a {
                Asked::Get { redo } => is(redo),
                Asked::Offer { .. } => false,
            })
            || self.waiting.iter().any(is)
    }

    /// The commands that would take up the transfers under way again.
    pub(super) fn resume_lines(&self) -> Vec<String> {
        let asked = self.asked.values().map(|a| match a {
            Asked::Offer { redo, .. } | Asked::Get { redo } => redo,
        });
        let mut lines: Vec<String> = self
            .stats
            .values()
            .chain(asked)
            .chain(self.sides.values().map(|a| &a.redo))
            .chain(self.waiting.iter())
            .map(Redo::line)
            .collect();
        lines.sort();
        lines.dedup();
        lines
    }
}

impl Client {
    // ── Commands ────────────────────────────────────────────────────────

    /// `/send <user|#room> <path>`: the path is the rest of the line.
    pub(super) fn send_command(&mut self, rest: &str) {
        let (to, path) = protocol::split_word(rest);
        let path = path.trim();
        if to.is_empty() || path.is_empty() {
            return self.notice("Usage: /send <user|#room> <path>".to_string());
        }
        let redo = Redo {
            what: Again::Send {
                to: to.to_string(),
                path: path.to_string(),
            },
            tries: 1,
        };
        self.begin(redo);
    }

    /// Starts a transfer the user asked for, or queues it behind those
    /// under way.
    fn begin(&mut self, redo: Redo) {
        if let Again::Get { id } = redo.what {
            if self.transfers.getting(id) {
                return self.notice(format!("File {id} is already being downloaded."));
            }
        }
        if self.transfers.running() >= MAX_RUNNING {
            self.notice(format!(
                "{} waits until one of the {MAX_RUNNING} transfers under way ends.",
                redo.line()
            ));
            return self.transfers.waiting.push_back(redo);
        }
        match redo.what {
            Again::Send { .. } => self.start_send(redo),
            Again::Get { .. } => self.ask_get(redo),
        }
    }

    /// Looks at the file, then offers it (a first try, or again).
    fn start_send(&mut self, redo: Redo) {
        let Again::Send { path, .. } = &redo.what else {
            return;
        };
        let path = path.clone();
        let op = self.transfers.op();
        self.transfers.stats.insert(op, redo);
        self.actions
            .push_back(ClientAction::Files(Box::new(FileRequest::Stat {
                op,
                place: Place::Local(path.to_string()),
            })));
    }

    /// `/files`: what is offered to us.
    pub(super) fn files_command(&mut self) {
        self.send_line(FileAsk::FileList.to_line());
    }

    /// `/get <id>` or `/get all`.
    pub(super) fn get_command(&mut self, rest: &str) {
        let arg = rest.trim();
        if arg.eq_ignore_ascii_case("all") {
            self.transfers.get_all = true;
            return self.send_line(FileAsk::FileList.to_line());
        }
        let Ok(id) = arg.parse::<u64>() else {
            return self.notice("Usage: /get <id|all> (see /files)".to_string());
        };
        self.begin(Redo {
            what: Again::Get { id },
            tries: 1,
        });
    }

    fn ask_get(&mut self, redo: Redo) {
        let Again::Get { id } = redo.what else {
            return;
        };
        let reference = self.transfers.reference();
        self.transfers.asked.insert(reference, Asked::Get { redo });
        self.send_line(FileAsk::FileGet { reference, id }.to_line());
    }

    /// `/cancel <id>`: stop a transfer of ours; for a file we offered, stop
    /// offering it.
    pub(super) fn cancel_command(&mut self, now: Now, rest: &str) {
        let Ok(id) = rest.trim().parse::<u64>() else {
            return self.notice("Usage: /cancel <id>".to_string());
        };
        let sides: Vec<SideId> = self
            .transfers
            .sides
            .iter()
            .filter(|(_, a)| a.id.0 == id)
            .map(|(s, _)| *s)
            .collect();
        // Not started yet, or waiting for the server's ticket (which is then
        // ignored): nothing to close.
        let is = |r: &Redo| matches!(r.what, Again::Get { id: i } if i == id);
        let queued = self.transfers.waiting.len();
        self.transfers.waiting.retain(|r| !is(r));
        let asked = self.transfers.asked.len();
        self.transfers.asked.retain(|_, a| match a {
            Asked::Get { redo } => !is(redo),
            Asked::Offer { .. } => true,
        });
        if queued != self.transfers.waiting.len() || asked != self.transfers.asked.len() {
            self.notice(format!("Download of file {id} cancelled."));
            return self.transfer_settled(now);
        }
        let mut cancelled_upload = false;
        for side in &sides {
            if let Some(a) = self.transfers.sides.remove(side) {
                self.actions.push_back(ClientAction::SideClose(*side));
                self.upload_over(&a);
                match a.dir {
                    Dir::Down { .. } => {
                        self.actions.push_back(ClientAction::Files(Box::new(
                            FileRequest::Discard {
                                place: Place::Download {
                                    id: a.id,
                                    name: a.name.clone(),
                                },
                            },
                        )));
                    }
                    Dir::Up { .. } => cancelled_upload = true,
                }
                self.event(ClientEvent::TransferFailed {
                    id: Some(id),
                    name: a.name,
                    upload: cancelled_upload,
                    reason: "Cancelled.".to_string(),
                });
            }
        }
        // Ours on the server (an upload, finished or not): withdraw it. The
        // server refuses if it is not ours.
        if sides.is_empty() || cancelled_upload {
            self.send_line(FileAsk::FileCancel { id }.to_line());
        }
        self.transfer_settled(now);
    }

    /// Ctrl-C: every transfer stops where it is (partial files stay, to
    /// resume).
    pub(super) fn abandon_transfers(&mut self) {
        let sides: Vec<SideId> = self.transfers.sides.keys().copied().collect();
        for side in sides {
            self.actions.push_back(ClientAction::SideClose(side));
        }
        self.transfers = Transfers::default();
    }

    /// A transfer ended: a user leaving once it is done can go now.
    fn transfer_settled(&mut self, now: Now) {
        while self.transfers.running() < MAX_RUNNING {
            let Some(redo) = self.transfers.waiting.pop_front() else {
                break;
            };
            match redo.what {
                Again::Send { .. } => self.start_send(redo),
                Again::Get { .. } => self.ask_get(redo),
            }
        }
        if self.leaving {
            self.flush(now);
        }
    }

    // ── The server's lines ──────────────────────────────────────────────

    pub(super) fn handle_file_news(&mut self, now: Now, news: FileNews) {
        match news {
            FileNews::FileTicket {
                reference,
                id,
                ticket,
                upload,
                name,
                size,
                sha256,
                folder,
            } => {
                let asked = self.transfers.asked.remove(&reference);
                let Some(ticket) = unhex::<16>(&ticket) else {
                    return self.notice("The server sent a bad ticket.".to_string());
                };
                let (dir, redo) = match (asked, upload) {
                    (Some(Asked::Offer { redo, stamp, .. }), true) => {
                        let Again::Send { path, .. } = &redo.what else {
                            return;
                        };
                        let dir = Dir::Up {
                            path: path.clone(),
                            stamp,
                            next_read: 0,
                            reads_pending: 0,
                            ready: BTreeMap::new(),
                            next_send: 0,
                            draining: false,
                            sent_all: false,
                        };
                        (dir, redo)
                    }
                    (Some(Asked::Get { redo }), false) => (
                        Dir::Down {
                            expected: sha256.as_deref().and_then(unhex::<32>),
                            folder,
                            prepared: false,
                            buf: Vec::new(),
                            hasher: Sha256::new(),
                            writes_pending: 0,
                            paused: false,
                            done: false,
                            finishing: false,
                        },
                        redo,
                    ),
                    // Not something we asked for.
                    _ => return,
                };
                // Shown to people and handed to the host as one name.
                let name = crate::text::visible(&name).into_owned();
                // An upload's name is only shown: a folder's ends with `/`.
                let name = if upload && folder {
                    format!("{name}/")
                } else {
                    name
                };
                self.transfers.next_side += 1;
                let side = SideId(self.transfers.next_side);
                let down = matches!(dir, Dir::Down { .. });
                let expected = match &dir {
                    Dir::Down { expected, .. } => *expected,
                    Dir::Up { .. } => None,
                };
                self.transfers.sides.insert(
                    side,
                    Active {
                        id: FileId(id),
                        name: name.clone(),
                        size,
                        ticket,
                        wire: SideWire::Opening,
                        dir,
                        hashes: Vec::new(),
                        resumed_from: 0,
                        redo,
                    },
                );
                if down {
                    // Find (or make) the partial file first: where to resume
                    // from goes with the ticket.
                    let op = self.transfers.op();
                    self.transfers.ops.insert(op, (side, SideOp::Prepare));
                    self.actions
                        .push_back(ClientAction::Files(Box::new(FileRequest::Prepare {
                            op,
                            place: Place::Download {
                                id: FileId(id),
                                name,
                            },
                            size,
                            whole: expected,
                        })));
                } else {
                    self.actions.push_back(ClientAction::Open(side));
                }
            }
            FileNews::FileRefused { reference, text } => {
                if let Some(Asked::Offer { redo, .. }) = self.transfers.asked.remove(&reference) {
                    // What the host read it from (a packed folder) goes.
                    if let Again::Send { path, .. } = redo.what {
                        let place = Place::Local(path);
                        self.actions.push_back(ClientAction::Files(Box::new(
                            FileRequest::Discard { place },
                        )));
                    }
                }
                self.event(ClientEvent::TransferFailed {
                    id: None,
                    name: String::new(),
                    upload: false,
                    reason: text,
                });
                self.transfer_settled(now);
            }
            FileNews::FileShared { file } => self.event(ClientEvent::FileShared(file)),
            FileNews::FileList { files } => {
                if std::mem::take(&mut self.transfers.get_all) {
                    let me = crate::names::name_key(&self.config.username);
                    let wanted: Vec<u64> = files
                        .iter()
                        .filter(|f| {
                            crate::names::name_key(&f.from) != me
                                && !self.transfers.got.contains(&f.id)
                        })
                        .map(|f| f.id)
                        .collect();
                    if wanted.is_empty() {
                        return self.notice("Nothing new to download.".to_string());
                    }
                    for id in wanted {
                        self.begin(Redo {
                            what: Again::Get { id },
                            tries: 1,
                        });
                    }
                } else {
                    let got = files
                        .iter()
                        .map(|f| self.transfers.got.contains(&f.id))
                        .collect();
                    self.event(ClientEvent::FileList { files, got });
                }
            }
            FileNews::FileRemoved { id, name } => self.event(ClientEvent::FileRemoved { id, name }),
        }
    }

    // ── Side connections ────────────────────────────────────────────────

    /// The commands that would take up the transfers under way again (after
    /// a reconnection), from their last checked chunk.
    pub fn resume_lines(&self) -> Vec<String> {
        self.transfers.resume_lines()
    }

    pub fn handle_side_opened(&mut self, _now: Now, side: SideId) {
        let max = self.config.max_line;
        if let Some(a) = self.transfers.sides.get_mut(&side) {
            a.wire = SideWire::Offer(LineBuffer::new(max));
        }
    }

    pub fn handle_side_closed(&mut self, now: Now, side: SideId) {
        match self.transfers.sides.get(&side) {
            // Everything arrived; the server closing is its goodbye. What is
            // left (writing, naming the file) is ours.
            Some(Active {
                dir: Dir::Down { done: true, .. },
                ..
            }) => {}
            Some(_) => self.side_lost(now, side, "The file connection was lost."),
            None => {}
        }
    }

    /// The side connection broke (closed under us, or tampered with): the
    /// transfer starts again, from its last verified chunk, a few times.
    fn side_lost(&mut self, now: Now, side: SideId, reason: &str) {
        let Some(a) = self.transfers.sides.get(&side) else {
            return;
        };
        let redo = a.redo.clone();
        if redo.tries >= MAX_TRIES || self.phase != Phase::Chatting {
            return self.side_failed(now, side, reason);
        }
        let name = a.name.clone();
        if let Some(a) = self.transfers.sides.remove(&side) {
            // Looked at again as it starts over.
            self.upload_over(&a);
        }
        self.transfers.ops.retain(|_, (s, _)| *s != side);
        self.actions.push_back(ClientAction::SideClose(side));
        let again = Redo {
            tries: redo.tries + 1,
            ..redo
        };
        self.notice(format!(
            "{reason} Resuming {name} after its last checked chunk (try {} of {MAX_TRIES}).",
            again.tries
        ));
        match again.what {
            Again::Send { .. } => self.start_send(again),
            Again::Get { .. } => self.ask_get(again),
        }
    }

    pub fn handle_side_drained(&mut self, now: Now, side: SideId) {
        if let Some(Active {
            dir: Dir::Up { draining, .. },
            ..
        }) = self.transfers.sides.get_mut(&side)
        {
            *draining = false;
        }
        self.pump_upload(now, side);
    }

    pub fn handle_side_input(&mut self, now: Now, side: SideId, bytes: &[u8]) {
        let Some(a) = self.transfers.sides.get_mut(&side) else {
            return;
        };
        match &mut a.wire {
            SideWire::Opening => {}
            SideWire::Offer(lines) => {
                lines.push(bytes);
                let (line, rest) = match lines.next_frame() {
                    Some(Frame::Line(line)) => (line.to_vec(), lines.take_rest()),
                    Some(Frame::TooLong) => {
                        return self.side_failed(now, side, "The server sent an oversized line.")
                    }
                    None => return,
                };
                self.side_offer(now, side, &line);
                if !rest.is_empty() {
                    self.handle_side_input(now, side, &rest);
                }
            }
            SideWire::Handshake { .. } => self.side_handshake(now, side, bytes),
            SideWire::Attaching(session) | SideWire::Attached(session) => {
                let mut records = Vec::new();
                let opened = session.open_frames(bytes, |p| records.push(p.to_vec()));
                for r in records {
                    if !self.transfers.sides.contains_key(&side) {
                        return;
                    }
                    match record::parse(&r) {
                        Ok(Record::Data(data)) => self.side_data(now, side, data),
                        Ok(Record::Control(c)) => self.side_control(now, side, c),
                        Err(_) => return self.side_failed(now, side, "The server sent junk."),
                    }
                }
                if opened.is_err() && self.transfers.sides.contains_key(&side) {
                    self.side_lost(now, side, "The file connection was tampered with.");
                }
            }
        }
    }

    /// The server's first line on a side connection: its offer. We answer
    /// with a hello and the first handshake message.
    fn side_offer(&mut self, now: Now, side: SideId, line: &[u8]) {
        let offer = match protocol::parse_server_line(line) {
            Ok(ServerLine::AuthRequest {
                offer: Some(offer), ..
            }) if offer.is_supported() => offer,
            _ => return self.side_failed(now, side, "The server did not offer encryption."),
        };
        let (Some(sec), Some(rng)) = (&self.config.secure, self.rng.as_mut()) else {
            return self.side_failed(now, side, "Files need an encrypted session.");
        };
        let suite = offer.choose().unwrap_or(secure::Suite::ChaChaPoly);
        let hello = secure::hello_line(suite);
        let mut offer_line = line.to_vec();
        offer_line.push(b'\n');
        let prologue = secure::prologue(&offer_line, hello.as_bytes());
        let Ok(mut noise) = secure::handshake(true, &sec.identity, &prologue, rng.seed(), suite)
        else {
            return self.side_failed(now, side, "The encrypted handshake could not start.");
        };
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let Ok(n) = noise.write_message(&[], &mut buf) else {
            return self.side_failed(now, side, "The encrypted handshake could not start.");
        };
        let mut out = hello.into_bytes();
        out.extend_from_slice(&secure::frame(&buf[..n]));
        self.actions.push_back(ClientAction::SideSend(side, out));
        if let Some(a) = self.transfers.sides.get_mut(&side) {
            a.wire = SideWire::Handshake {
                noise: Box::new(noise),
                frames: FrameBuffer::default(),
            };
        }
    }

    /// The server's handshake message: it must hold the key our chat
    /// session's server holds. Then our last message and the ticket.
    fn side_handshake(&mut self, now: Now, side: SideId, bytes: &[u8]) {
        let expected = match &self.wire {
            Wire::Secure(session) => session.remote().to_vec(),
            _ => return self.side_failed(now, side, "The chat session is not encrypted."),
        };
        let Some(a) = self.transfers.sides.get_mut(&side) else {
            return;
        };
        let SideWire::Handshake { noise, frames } = &mut a.wire else {
            return;
        };
        frames.push(bytes);
        let mut buf = vec![0u8; secure::MAX_HANDSHAKE];
        let Some(frame) = frames.next_frame() else {
            if frames.buffered() > secure::MAX_FRAME + 2 {
                return self.side_failed(now, side, "The server sent an oversized frame.");
            }
            return;
        };
        if !matches!(
            noise.read_message(frame, grow(&mut buf, frame.len())),
            Ok(0)
        ) {
            return self.side_failed(now, side, "The encrypted handshake failed.");
        }
        if noise.get_remote_static() != Some(&expected[..]) {
            return self.side_failed(
                now,
                side,
                "The file connection reached a server with another key: refusing it.",
            );
        }
        let Ok(n) = noise.write_message(&[], &mut buf) else {
            return self.side_failed(now, side, "The encrypted handshake failed.");
        };
        let SideWire::Handshake { noise, frames } =
            std::mem::replace(&mut a.wire, SideWire::Opening)
        else {
            return;
        };
        let Ok(mut session) = secure::Session::new(*noise, frames) else {
            return self.side_failed(now, side, "The encrypted handshake failed.");
        };
        let mut out = secure::frame(&buf[..n]);
        let from = a.hashes.len() as u64;
        let attach = Control::Attach {
            ticket: a.ticket,
            from,
        };
        if record::seal_control(&mut session, &attach, &mut out).is_err() {
            return self.side_failed(now, side, "The encrypted handshake failed.");
        }
        a.wire = SideWire::Attaching(session);
        self.actions.push_back(ClientAction::SideSend(side, out));
    }

    fn side_data(&mut self, now: Now, side: SideId, data: &[u8]) {
        let Some(a) = self.transfers.sides.get_mut(&side) else {
            return;
        };
        let index = a.hashes.len() as u64;
        let size = a.size;
        let Dir::Down { buf, hasher, .. } = &mut a.dir else {
            return self.side_failed(now, side, "The server sent data on an upload.");
        };
        if (buf.len() + data.len()) as u64 > chunk_len(size, index) {
            return self.side_failed(now, side, "The server sent a chunk too long.");
        }
        if buf.capacity() == 0 {
            buf.reserve_exact(CHUNK as usize);
        }
        hasher.update(data);
        buf.extend_from_slice(data);
    }

    fn side_control(&mut self, now: Now, side: SideId, control: Control) {
        let Some(a) = self.transfers.sides.get_mut(&side) else {
            return;
        };
        match control {
            Control::Attached { have } => {
                let SideWire::Attaching(_) = &a.wire else {
                    return self.side_failed(now, side, "The server attached twice.");
                };
                let SideWire::Attaching(session) =
                    std::mem::replace(&mut a.wire, SideWire::Opening)
                else {
                    return;
                };
                a.wire = SideWire::Attached(session);
                if let Dir::Up {
                    next_read,
                    next_send,
                    ..
                } = &mut a.dir
                {
                    let have = have.min(chunks(a.size));
                    *next_read = have;
                    *next_send = have;
                    a.resumed_from = have;
                    self.progress(side);
                    self.pump_upload(now, side);
                }
            }
            Control::Chunk { index, hash } => {
                let expected_index = a.hashes.len() as u64;
                let size = a.size;
                let id = a.id;
                let name = a.name.clone();
                let Dir::Down {
                    buf,
                    hasher,
                    writes_pending,
                    paused,
                    ..
                } = &mut a.dir
                else {
                    return self.side_failed(now, side, "Unexpected chunk on an upload.");
                };
                if index != expected_index
                    || index >= chunks(size)
                    || buf.len() as u64 != chunk_len(size, index)
                    || <[u8; 32]>::from(hasher.finalize_reset()) != hash
                {
                    return self.side_failed(
                        now,
                        side,
                        &format!("Chunk {index} failed its check."),
                    );
                }
                a.hashes.push(hash);
                let bytes = std::mem::take(buf);
                *writes_pending += 1;
                let pause = *writes_pending >= MAX_PENDING_WRITES && !*paused;
                if pause {
                    *paused = true;
                }
                let op = self.transfers.op();
                self.transfers.ops.insert(op, (side, SideOp::Write));
                self.actions
                    .push_back(ClientAction::Files(Box::new(FileRequest::Write {
                        op,
                        place: Place::Download { id, name },
                        offset: index * CHUNK,
                        bytes,
                        hash,
                    })));
                if pause {
                    self.actions.push_back(ClientAction::SidePause(side, true));
                }
            }
            Control::Done { hash } => {
                let whole = file_hash(&a.hashes);
                let complete = a.hashes.len() as u64 == chunks(a.size);
                let Dir::Down { expected, done, .. } = &mut a.dir else {
                    return self.side_failed(now, side, "Unexpected message on an upload.");
                };
                if !complete {
                    return self.side_failed(now, side, "The server ended before the last chunk.");
                }
                if hash != Some(whole) || *expected != Some(whole) {
                    // Every chunk matched what the server sent, so what was
                    // kept from before (a partial file left by something
                    // else) is wrong: start again from nothing.
                    let place = Place::Download {
                        id: a.id,
                        name: a.name.clone(),
                    };
                    self.actions
                        .push_back(ClientAction::Files(Box::new(FileRequest::Discard {
                            place,
                        })));
                    return self.side_failed(
                        now,
                        side,
                        "The file's hash does not match; its partial copy was removed: /get it \
                         again.",
                    );
                }
                *done = true;
                self.maybe_finish_download(side);
            }
            Control::Stored => {
                let Dir::Up { sent_all: true, .. } = a.dir else {
                    return self.side_failed(now, side, "Unexpected message.");
                };
                let a = self.transfers.sides.remove(&side);
                self.actions.push_back(ClientAction::SideClose(side));
                if let Some(a) = a {
                    self.upload_over(&a);
                    self.event(ClientEvent::TransferDone {
                        id: a.id.0,
                        name: a.name,
                        upload: true,
                        size: a.size,
                        // A resumed upload did not hash what went before;
                        // the server's announcement carries the hash.
                        hash: (a.resumed_from == 0)
                            .then(|| crate::transfer::hex(&file_hash(&a.hashes))),
                        path: None,
                    });
                }
                self.transfer_settled(now);
            }
            Control::Error { text } => {
                let text = format!("The server stopped the transfer: {text}");
                self.side_failed(now, side, &text)
            }
            Control::Attach { .. } => self.side_failed(now, side, "Unexpected message."),
        }
    }

    /// Reads ahead and sends the next chunk once the last one has left.
    fn pump_upload(&mut self, now: Now, side: SideId) {
        let Some(a) = self.transfers.sides.get_mut(&side) else {
            return;
        };
        let total = chunks(a.size);
        let size = a.size;
        let SideWire::Attached(session) = &mut a.wire else {
            return;
        };
        let Dir::Up {
            path,
            stamp,
            next_read,
            reads_pending,
            ready,
            next_send,
            draining,
            sent_all,
        } = &mut a.dir
        else {
            return;
        };
        let mut reads = Vec::new();
        while *next_read < total && *reads_pending + ready.len() < READ_AHEAD {
            reads.push(*next_read);
            *next_read += 1;
            *reads_pending += 1;
        }
        let (path, stamp) = (path.clone(), *stamp);
        let mut out = Vec::new();
        let mut sealed = true;
        let mut sent_chunk = false;
        if !*draining && !*sent_all {
            if let Some(bytes) = ready.remove(next_send) {
                let hash = chunk_hash(&bytes);
                a.hashes.push(hash);
                sealed &= record::seal_data(session, &bytes, &mut out).is_ok();
                let chunk = Control::Chunk {
                    index: *next_send,
                    hash,
                };
                sealed &= record::seal_control(session, &chunk, &mut out).is_ok();
                *next_send += 1;
                sent_chunk = true;
            }
            if *next_send >= total {
                // An upload that started at chunk 0 knows every hash.
                let whole = (a.resumed_from == 0).then(|| file_hash(&a.hashes));
                sealed &=
                    record::seal_control(session, &Control::Done { hash: whole }, &mut out).is_ok();
                *sent_all = true;
            }
            if !out.is_empty() {
                *draining = true;
            }
        }
        for index in reads {
            let op = self.transfers.op();
            self.transfers.ops.insert(op, (side, SideOp::Read(index)));
            self.actions
                .push_back(ClientAction::Files(Box::new(FileRequest::Read {
                    op,
                    place: Place::Local(path.clone()),
                    offset: index * CHUNK,
                    len: chunk_len(size, index) as u32,
                    stamp: Some(stamp),
                })));
        }
        if !sealed {
            return self.side_failed(now, side, "The encrypted session is used up.");
        }
        if !out.is_empty() {
            self.actions.push_back(ClientAction::SideSend(side, out));
            self.actions.push_back(ClientAction::SideWatchDrain(side));
        }
        if sent_chunk {
            self.progress(side);
        }
    }

    fn maybe_finish_download(&mut self, side: SideId) {
        let Some(a) = self.transfers.sides.get_mut(&side) else {
            return;
        };
        let Dir::Down {
            writes_pending: 0,
            done: true,
            finishing,
            folder,
            ..
        } = &mut a.dir
        else {
            return;
        };
        if *finishing {
            return;
        }
        let unpack = *folder;
        *finishing = true;
        let place = Place::Download {
            id: a.id,
            name: a.name.clone(),
        };
        let op = self.transfers.op();
        self.transfers.ops.insert(op, (side, SideOp::Finish));
        self.actions
            .push_back(ClientAction::Files(Box::new(FileRequest::Finish {
                op,
                place,
                unpack,
            })));
    }

    fn progress(&mut self, side: SideId) {
        if let Some(a) = self.transfers.sides.get(&side) {
            let upload = matches!(a.dir, Dir::Up { .. });
            // An upload knows the hashes of what it sent itself; a download
            // was told those of what an earlier try verified.
            let verified = a.hashes.len() as u64 + if upload { a.resumed_from } else { 0 };
            let done = (verified * CHUNK).min(a.size);
            self.event(ClientEvent::Transfer(Progress {
                id: a.id.0,
                name: a.name.clone(),
                upload,
                done,
                total: a.size,
            }));
        }
    }

    fn side_failed(&mut self, now: Now, side: SideId, reason: &str) {
        let Some(a) = self.transfers.sides.remove(&side) else {
            return;
        };
        self.transfers.ops.retain(|_, (s, _)| *s != side);
        self.actions.push_back(ClientAction::SideClose(side));
        self.upload_over(&a);
        self.event(ClientEvent::TransferFailed {
            id: Some(a.id.0),
            name: a.name,
            upload: matches!(a.dir, Dir::Up { .. }),
            reason: reason.to_string(),
        });
        self.transfer_settled(now);
    }

    /// An upload ended (sent, failed or cancelled): the host may let go of
    /// what it read it from (a packed folder's temporary file goes).
    fn upload_over(&mut self, a: &Active) {
        if let Dir::Up { path, .. } = &a.dir {
            let place = Place::Local(path.clone());
            self.actions
                .push_back(ClientAction::Files(Box::new(FileRequest::Discard {
                    place,
                })));
        }
    }

    // ── The host's answers ──────────────────────────────────────────────

    pub fn handle_file_reply(&mut self, now: Now, reply: FileReply) {
        if let Some(redo) = self.transfers.stats.remove(&reply.op) {
            return self.stat_answered(now, redo, reply);
        }
        let Some((side, op)) = self.transfers.ops.remove(&reply.op) else {
            return;
        };
        let answer = match reply.result {
            Ok(answer) => answer,
            Err(e) => {
                let why = match e.kind {
                    FileErrorKind::NoSpace => {
                        format!("{} (the partial file is kept: /get it again)", e.message)
                    }
                    _ => e.message,
                };
                return self.side_failed(now, side, &why);
            }
        };
        let Some(a) = self.transfers.sides.get_mut(&side) else {
            return;
        };
        match (op, answer) {
            (SideOp::Prepare, FileAnswer::Prepared { verified }) => {
                a.resumed_from = verified.len() as u64;
                a.hashes = verified;
                if let Dir::Down { prepared, .. } = &mut a.dir {
                    *prepared = true;
                }
                self.progress(side);
                self.actions.push_back(ClientAction::Open(side));
            }
            (SideOp::Read(index), FileAnswer::Data(bytes)) => {
                if let Dir::Up {
                    reads_pending,
                    ready,
                    ..
                } = &mut a.dir
                {
                    *reads_pending -= 1;
                    ready.insert(index, bytes);
                }
                self.pump_upload(now, side);
            }
            (SideOp::Write, FileAnswer::Written) => {
                if let Dir::Down {
                    writes_pending,
                    paused,
                    ..
                } = &mut a.dir
                {
                    *writes_pending -= 1;
                    if *paused && *writes_pending < MAX_PENDING_WRITES {
                        *paused = false;
                        self.actions.push_back(ClientAction::SidePause(side, false));
                    }
                }
                self.progress(side);
                self.maybe_finish_download(side);
            }
            (SideOp::Finish, FileAnswer::Finished { path }) => {
                let a = self.transfers.sides.remove(&side);
                self.actions.push_back(ClientAction::SideClose(side));
                if let Some(a) = a {
                    self.transfers.got.insert(a.id.0);
                    self.event(ClientEvent::TransferDone {
                        id: a.id.0,
                        name: a.name,
                        upload: false,
                        size: a.size,
                        hash: Some(crate::transfer::hex(&file_hash(&a.hashes))),
                        path: Some(path),
                    });
                }
                self.transfer_settled(now);
            }
            (_, _) => self.side_failed(now, side, "The file store answered out of turn."),
        }
    }

    /// The file to `/send` was found (or not): offer it.
    fn stat_answered(&mut self, now: Now, redo: Redo, reply: FileReply) {
        let Again::Send { to, path } = redo.what.clone() else {
            return;
        };
        match reply.result {
            Ok(FileAnswer::Stat {
                stamp,
                name,
                folder,
            }) => {
                let reference = self.transfers.reference();
                self.transfers
                    .asked
                    .insert(reference, Asked::Offer { redo, stamp });
                let ask = FileAsk::FileOffer {
                    reference,
                    to,
                    name,
                    size: stamp.size,
                    modified_ms: stamp.modified_ms,
                    folder,
                };
                self.send_line(ask.to_line());
            }
            Ok(_) => {}
            Err(e) => {
                self.event(ClientEvent::TransferFailed {
                    id: None,
                    name: path,
                    upload: true,
                    reason: e.message,
                });
                self.transfer_settled(now);
            }
        }
    }
}

/// A file as listed, for people: `3  slides.pdf  1.4 MB  from alice in #team`.
pub fn describe(f: &FileInfo) -> String {
    let to = if f.to.starts_with('#') {
        format!(" in {}", f.to)
    } else {
        " to you".to_string()
    };
    format!(
        "{}  {}  {}  from {}{to}",
        f.id,
        f.shown_name(),
        crate::transfer::human_size(f.size),
        crate::text::visible(&f.from)
    )
}
