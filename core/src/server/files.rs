//! Files, the server's half: offers, one-time tickets, side connections and
//! their chunks.
//!
//! A client of ours offers a file on its chat session; the server checks the
//! limits, records the offer and answers with a ticket. The client opens a
//! side connection, runs the Noise handshake with the same long-term key,
//! and presents the ticket as its first line: the connection becomes a
//! [`Phase::Side`] for that file. Uploads arrive chunk by chunk; each chunk
//! is checked against its SHA-256 and handed to the application to write
//! ([`FileRequest::Write`]); when writes lag, reading pauses. Downloads read
//! two chunks ahead and send a quarter of a megabyte at a time, each piece only once
//! the one before has left ([`Action::WatchDrain`]), so a slow receiver
//! holds the server to a bounded amount of memory.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::*;
use crate::ratelimit::Rate;
use crate::rooms::room_key;
use crate::transfer::lines::{FileAsk, FileInfo, FileNews};
use crate::transfer::record::{self, Control, Record};
use crate::transfer::{
    self, chunk_len, chunks, file_hash, hex, names, Audience, FileAnswer, FileError, FileErrorKind,
    FileId, FileReply, FileRequest, OpId, Place, SharedFile, Stamp, Ticket, CHUNK,
};

/// What a server offers of file sharing.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    /// Whether files can be shared at all (the application keeps them).
    pub enabled: bool,
    /// Largest file accepted.
    pub max_file_size: u64,
    /// Most bytes kept at once, all files together.
    pub quota: u64,
    /// How long a file is kept after it was offered (`None`: until the
    /// sender cancels it).
    pub keep: Option<Duration>,
    /// Offers per user.
    pub offer_rate: Rate,
    /// The files kept from an earlier run (the application's list).
    pub kept: Vec<SharedFile>,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            enabled: false,
            max_file_size: 2 << 30,
            quota: 10 << 30,
            keep: Some(Duration::from_secs(24 * 3600)),
            offer_rate: Rate::new(10, Duration::from_secs(60)),
            kept: Vec::new(),
        }
    }
}

/// How long a ticket may wait for its side connection.
const TICKET_LIFETIME: Duration = Duration::from_secs(30);
/// Verified chunks waiting to be written before reading pauses.
const MAX_PENDING_WRITES: usize = 4;
/// Chunks read ahead of what is sent.
const READ_AHEAD: usize = 2;
/// Bytes of file data sent before waiting for them to leave. Sealing and
/// hashing a piece is the longest the event loop works for a transfer at
/// once, so a chat line never waits long behind one.
const SEND_PIECE: usize = 256 * 1024;
/// How often expired files are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// An upload that makes no progress for this long is dropped, so offers
/// that never send a byte cannot hold the quota.
const UNFINISHED_KEEP: Duration = Duration::from_secs(3600);
/// Unfinished uploads one person (or one address) may hold at once.
const MAX_UNFINISHED: usize = 3;
/// Tickets one session may hold unused at once (a client of ours runs at
/// most four transfers at a time).
const MAX_TICKETS: usize = 8;
const TOO_MANY_TICKETS: &str = "Too many transfers starting at once; try again in a moment.";
/// Downloads asked for per person and minute (`/get all` counts each file).
const GET_RATE: (u32, Duration) = (120, Duration::from_secs(60));

/// The server's files.
#[derive(Default)]
pub(super) struct Files {
    shared: BTreeMap<FileId, SharedFile>,
    next_id: u64,
    tickets: HashMap<Ticket, Pass>,
    /// Side connections, by connection.
    sides: HashMap<ConnId, Side>,
    /// File requests handed to the application, by id.
    ops: HashMap<OpId, (ConnId, Op)>,
    /// The console's own file requests (`/send`, `/get`), by id.
    console_ops: HashMap<OpId, ConsoleOp>,
    next_op: u64,
    /// Offers per user (by name key).
    offers: HashMap<String, Window>,
    /// Downloads asked for per user (by name key).
    gets: HashMap<String, Window>,
    /// Unfinished uploads: when each last made progress, and from where.
    unfinished: HashMap<FileId, Progress>,
    next_sweep: Option<Instant>,
}

/// An unfinished upload's last progress (a verified chunk, or its offer).
struct Progress {
    at: Instant,
    addr: Option<core::net::IpAddr>,
}

/// What a ticket lets a side connection do.
struct Pass {
    session: ConnId,
    /// The session's long-term key: the side connection must hold it too.
    key: Vec<u8>,
    file: FileId,
    upload: bool,
    expires: Instant,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Prepare,
    Write,
    Finish,
    Read(u64),
}

/// What a console file request is for.
enum ConsoleOp {
    /// `/send`: the file (or folder) was looked at; offer it to `to`.
    Look { to: Audience, path: String },
    /// `/send`: the file is being copied into the shared folder as `FileId`.
    Share(FileId),
    /// `/get`: the shared file is being copied to the download folder.
    Save(FileId),
}

/// A side connection's transfer.
struct Side {
    session: ConnId,
    file: FileId,
    dir: Direction,
}

enum Direction {
    Up(Upload),
    Down(Download),
}

struct Upload {
    /// Chunks verified (including those from an earlier connection); `None`
    /// until the partial file was prepared.
    hashes: Option<Vec<[u8; 32]>>,
    /// The chunk being received, and its hash so far (hashed as records
    /// arrive: no event hashes a whole chunk).
    buf: Vec<u8>,
    hasher: Sha256,
    writes_pending: usize,
    paused: bool,
    /// The sender said it is done; the hash it gave, if any.
    done: Option<Option<[u8; 32]>>,
    finishing: bool,
}

struct Download {
    /// The next chunk to ask the application for.
    next_read: u64,
    reads_pending: usize,
    /// Chunks read and not sent yet, by index.
    ready: BTreeMap<u64, Vec<u8>>,
    /// The chunk being sent, how much of it went, and the hash of that.
    next_send: u64,
    sent_in_chunk: usize,
    hasher: Sha256,
    /// A piece was sent and has not left yet.
    draining: bool,
}

impl Files {
    pub(super) fn new(config: &FilesConfig) -> Self {
        let shared: BTreeMap<FileId, SharedFile> =
            config.kept.iter().map(|f| (f.id, f.clone())).collect();
        let next_id = shared.keys().next_back().map_or(1, |id| id.0 + 1);
        Files {
            shared,
            next_id,
            ..Files::default()
        }
    }

    fn op(&mut self, conn: ConnId, op: Op) -> OpId {
        self.next_op += 1;
        let id = OpId(self.next_op);
        self.ops.insert(id, (conn, op));
        id
    }

    fn used(&self) -> u64 {
        self.shared.values().map(|f| f.size).sum()
    }
}

impl Audience {
    fn shown(&self) -> String {
        match self {
            Audience::Room(r) | Audience::User(r) => r.clone(),
        }
    }
}

fn info(f: &SharedFile) -> FileInfo {
    FileInfo {
        id: f.id.0,
        name: f.name.clone(),
        size: f.size,
        from: f.from.clone(),
        to: f.to.shown(),
        at_ms: f.at_ms,
        sha256: f.hash.map(|h| hex(&h)),
        folder: f.folder,
    }
}

impl Server {
    /// Everything queued on a connection was written (asked for with
    /// [`Action::WatchDrain`]): a download sends its next piece.
    pub fn handle_drained(&mut self, now: Now, conn: ConnId) {
        if let Some(Side {
            dir: Direction::Down(d),
            ..
        }) = self.files.sides.get_mut(&conn)
        {
            d.draining = false;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.last_input = now.instant;
            }
            self.pump_download(conn);
        }
    }

    /// The application's answer to a [`FileRequest`].
    pub fn handle_file_reply(&mut self, now: Now, reply: FileReply) {
        if let Some(op) = self.files.console_ops.remove(&reply.op) {
            return self.console_file_reply(now, op, reply.result);
        }
        let Some((conn, op)) = self.files.ops.remove(&reply.op) else {
            return;
        };
        if !self.files.sides.contains_key(&conn) {
            // The side connection is gone; its partial file stays for a
            // resumed transfer.
            return;
        }
        match (op, reply.result) {
            (_, Err(e)) => self.side_failed_on_disk(now, conn, e),
            (Op::Prepare, Ok(FileAnswer::Prepared { verified })) => {
                self.upload_prepared(now, conn, verified)
            }
            (Op::Write, Ok(FileAnswer::Written)) => {
                if let Some(Side {
                    dir: Direction::Up(u),
                    ..
                }) = self.files.sides.get_mut(&conn)
                {
                    u.writes_pending -= 1;
                    if u.paused && u.writes_pending < MAX_PENDING_WRITES {
                        u.paused = false;
                        self.actions.push_back(Action::PauseReading {
                            conn,
                            paused: false,
                        });
                    }
                }
                self.maybe_finish_upload(now, conn);
            }
            (Op::Finish, Ok(FileAnswer::Finished { .. })) => self.upload_finished(now, conn),
            (Op::Read(index), Ok(FileAnswer::Data(bytes))) => {
                if let Some(Side {
                    dir: Direction::Down(d),
                    ..
                }) = self.files.sides.get_mut(&conn)
                {
                    d.reads_pending -= 1;
                    d.ready.insert(index, bytes);
                }
                self.pump_download(conn);
            }
            (op, Ok(answer)) => {
                debug_assert!(false, "{op:?} answered with {answer:?}");
            }
        }
    }

    /// A `file_*` line from a logged-in client of ours.
    pub(super) fn handle_file_line(&mut self, now: Now, conn: ConnId, ask: FileAsk) {
        if !self.config.files.enabled {
            if let FileAsk::FileOffer { reference, .. } | FileAsk::FileGet { reference, .. } = ask {
                self.refuse_file(conn, reference, "This server does not share files.");
            } else {
                self.send(conn, FileNews::FileList { files: Vec::new() }.to_line());
            }
            return;
        }
        match ask {
            FileAsk::FileOffer {
                reference,
                to,
                name,
                size,
                modified_ms,
                folder,
            } => self.file_offer(now, conn, reference, &to, &name, size, modified_ms, folder),
            FileAsk::FileGet { reference, id } => self.file_get(now, conn, reference, FileId(id)),
            FileAsk::FileList => {
                let name = self.conns.get(&conn).and_then(Conn::name).unwrap_or("");
                let name = name.to_string();
                let files = self
                    .files
                    .shared
                    .values()
                    .filter(|f| f.hash.is_some() && self.may_see(conn, &name, f))
                    .map(info)
                    .collect();
                self.send(conn, FileNews::FileList { files }.to_line());
            }
            FileAsk::FileCancel { id } => self.file_cancel(now, conn, FileId(id)),
        }
    }

    fn refuse_file(&mut self, conn: ConnId, reference: u64, text: &str) {
        let text = crate::text::visible(text).into_owned();
        self.send(conn, FileNews::FileRefused { reference, text }.to_line());
    }

    /// Whether the user `name` on `conn` is offered `f`: its sender, its
    /// recipient, or a member of its room.
    fn may_see(&self, conn: ConnId, name: &str, f: &SharedFile) -> bool {
        let me = name_key(name);
        name_key(&f.from) == me
            || match &f.to {
                Audience::User(u) => name_key(u) == me,
                Audience::Room(r) => self
                    .rooms
                    .get(&room_key(r))
                    .is_some_and(|room| room.members.contains(&conn)),
            }
    }

    #[allow(clippy::too_many_arguments)]
    fn file_offer(
        &mut self,
        now: Now,
        conn: ConnId,
        reference: u64,
        to: &str,
        name: &str,
        size: u64,
        modified_ms: i64,
        folder: bool,
    ) {
        let Some(from) = self
            .conns
            .get(&conn)
            .and_then(Conn::name)
            .map(str::to_string)
        else {
            return;
        };
        let window = self
            .files
            .offers
            .entry(name_key(&from))
            .or_insert_with(|| Window::new(self.config.files.offer_rate));
        if !window.try_hit(now.instant) {
            return self.refuse_file(conn, reference, "Too many files offered; wait a minute.");
        }
        let addr = self.conns.get(&conn).map(|c| c.addr.ip());
        let cfg = &self.config.files;
        if size > cfg.max_file_size {
            let text = format!(
                "{name} is {}; this server takes files up to {}.",
                transfer::human_size(size),
                transfer::human_size(cfg.max_file_size)
            );
            return self.refuse_file(conn, reference, &text);
        }
        let audience = if to.starts_with('#') {
            let key = room_key(to);
            match self.rooms.get(&key) {
                Some(r) if r.members.contains(&conn) => Audience::Room(r.name.clone()),
                _ => {
                    let text = format!("You are not in {to}: /join {to} first.");
                    return self.refuse_file(conn, reference, &text);
                }
            }
        } else {
            match self
                .users
                .get(&name_key(to))
                .and_then(|c| self.conns.get(c))
            {
                Some(c) if name_key(to) != name_key(&from) => {
                    Audience::User(c.name().unwrap_or(to).to_string())
                }
                Some(_) => return self.refuse_file(conn, reference, "That is you."),
                None => {
                    let text = format!("{to} is not online.");
                    return self.refuse_file(conn, reference, &text);
                }
            }
        };
        let name = names::sanitise(name);
        let stamp = Stamp { size, modified_ms };
        // The same file again from the same person, not finished: resume.
        let resumed = self
            .files
            .shared
            .values()
            .find(|f| {
                f.hash.is_none()
                    && name_key(&f.from) == name_key(&from)
                    && f.name == name
                    && f.stamp == stamp
                    && f.folder == folder
                    && f.to == audience
            })
            .map(|f| f.id);
        let id = match resumed {
            Some(id) => id,
            None => {
                let (mine, here) = self.unfinished_of(&from, addr);
                if mine >= MAX_UNFINISHED || here >= MAX_UNFINISHED {
                    let text = format!(
                        "You have {MAX_UNFINISHED} unfinished uploads; finish or /cancel one first."
                    );
                    return self.refuse_file(conn, reference, &text);
                }
                let used = self.files.used();
                if used.saturating_add(size) > cfg.quota {
                    let text = format!(
                        "The server's space for files is full ({} of {} used); try again \
                         when older files have expired.",
                        transfer::human_size(used),
                        transfer::human_size(cfg.quota)
                    );
                    return self.refuse_file(conn, reference, &text);
                }
                let id = FileId(self.files.next_id);
                self.files.next_id += 1;
                self.files.shared.insert(
                    id,
                    SharedFile {
                        id,
                        name: name.clone(),
                        size,
                        from: from.clone(),
                        to: audience.clone(),
                        hash: None,
                        at_ms: now.wall.unix_ms,
                        stamp,
                        folder,
                    },
                );
                self.persist_files();
                self.arm_sweep(now);
                id
            }
        };
        // Offering again is no progress: only verified chunks keep an
        // upload alive.
        self.files.unfinished.entry(id).or_insert(Progress {
            at: now.instant,
            addr,
        });
        let Some(ticket) = self.issue_ticket(now, conn, id, true) else {
            return self.refuse_file(conn, reference, TOO_MANY_TICKETS);
        };
        self.event(
            Level::Info,
            EventKind::Chat,
            format!(
                "{from} is uploading {name}{} ({}) for {}",
                if folder { "/" } else { "" },
                transfer::human_size(size),
                audience.shown()
            ),
        );
        let line = FileNews::FileTicket {
            reference,
            id: id.0,
            ticket: hex(&ticket),
            upload: true,
            name,
            size,
            sha256: None,
            folder,
        };
        self.send(conn, line.to_line());
    }

    fn file_get(&mut self, now: Now, conn: ConnId, reference: u64, id: FileId) {
        let name = self.conns.get(&conn).and_then(Conn::name).unwrap_or("");
        let name = name.to_string();
        let window = self
            .files
            .gets
            .entry(name_key(&name))
            .or_insert_with(|| Window::new(Rate::new(GET_RATE.0, GET_RATE.1)));
        if !window.try_hit(now.instant) {
            return self.refuse_file(
                conn,
                reference,
                "Too many downloads asked for; wait a minute.",
            );
        }
        let file = self
            .files
            .shared
            .get(&id)
            .filter(|f| f.hash.is_some() && self.may_see(conn, &name, f))
            .cloned();
        let Some(f) = file else {
            let text = format!("There is no file {id} for you (see /files).");
            return self.refuse_file(conn, reference, &text);
        };
        let Some(ticket) = self.issue_ticket(now, conn, id, false) else {
            return self.refuse_file(conn, reference, TOO_MANY_TICKETS);
        };
        let line = FileNews::FileTicket {
            reference,
            id: id.0,
            ticket: hex(&ticket),
            upload: false,
            name: f.name.clone(),
            size: f.size,
            sha256: f.hash.map(|h| hex(&h)),
            folder: f.folder,
        };
        self.send(conn, line.to_line());
    }

    fn file_cancel(&mut self, now: Now, conn: ConnId, id: FileId) {
        let name = self.conns.get(&conn).and_then(Conn::name).unwrap_or("");
        let name = name.to_string();
        let Some(f) = self.files.shared.get(&id) else {
            return self.send(
                conn,
                protocol::system(now.wall, &format!("There is no file {id}.")),
            );
        };
        if name_key(&f.from) != name_key(&name) {
            let text = format!("Only {} can withdraw file {id}.", f.from);
            return self.send(conn, protocol::system(now.wall, &text));
        }
        self.remove_file(now, id);
    }

    /// Stops offering `id`: its side connections close, its bytes go, and
    /// whoever was offered it is told.
    fn remove_file(&mut self, now: Now, id: FileId) {
        let Some(f) = self.files.shared.remove(&id) else {
            return;
        };
        self.files.unfinished.remove(&id);
        let sides: Vec<ConnId> = self
            .files
            .sides
            .iter()
            .filter(|(_, s)| s.file == id)
            .map(|(c, _)| *c)
            .collect();
        for side in sides {
            self.side_error(side, &format!("{} is no longer offered.", f.name));
        }
        self.files.tickets.retain(|_, p| p.file != id);
        self.actions
            .push_back(Action::Files(Box::new(FileRequest::Discard {
                place: Place::Shared(id),
            })));
        self.persist_files();
        if f.hash.is_some() {
            let news = FileNews::FileRemoved {
                id: id.0,
                name: f.name.clone(),
            }
            .to_line();
            self.tell_audience(now, &f, &news, None);
        }
    }

    fn issue_ticket(
        &mut self,
        now: Now,
        conn: ConnId,
        file: FileId,
        upload: bool,
    ) -> Option<Ticket> {
        let key = match &self.conns.get(&conn)?.wire {
            Wire::Secure(session) => session.remote().to_vec(),
            _ => return None,
        };
        let (_, rng) = self.secure.as_mut()?;
        let seed = rng.seed();
        let mut ticket = [0u8; 16];
        ticket.copy_from_slice(&seed[..16]);
        let now_i = now.instant;
        self.files.tickets.retain(|_, p| p.expires > now_i);
        if self
            .files
            .tickets
            .values()
            .filter(|p| p.session == conn)
            .count()
            >= MAX_TICKETS
        {
            return None;
        }
        self.files.tickets.insert(
            ticket,
            Pass {
                session: conn,
                key,
                file,
                upload,
                expires: now.instant + TICKET_LIFETIME,
            },
        );
        Some(ticket)
    }

    /// The first line of an encrypted connection that is not a login: a
    /// side connection presenting its ticket. Anything wrong closes it.
    pub(super) fn attach(&mut self, now: Now, conn: ConnId, ticket: Ticket, from: u64) {
        let pass = self
            .files
            .tickets
            .remove(&ticket)
            .filter(|p| p.expires > now.instant);
        let key = match self.conns.get(&conn).map(|c| &c.wire) {
            Some(Wire::Secure(session)) => session.remote().to_vec(),
            _ => return,
        };
        let session_ok = pass.as_ref().is_some_and(|p| {
            p.key == key
                && self
                    .conns
                    .get(&p.session)
                    .is_some_and(|c| c.name().is_some())
        });
        let (Some(pass), true) = (pass, session_ok) else {
            let addr = self.conns.get(&conn).map(|c| c.addr);
            self.event(
                Level::Warning,
                EventKind::Auth,
                format!(
                    "Refused a file connection from {}: its ticket is unknown, used or expired.",
                    addr.map(|a| a.to_string()).unwrap_or_default()
                ),
            );
            self.side_error_unattached(conn, "The ticket is unknown, used or expired.");
            return;
        };
        let Some(file) = self.files.shared.get(&pass.file).cloned() else {
            return self.side_error_unattached(conn, "The file is no longer offered.");
        };
        if pass.upload && file.hash.is_some() {
            // A spare ticket (the offer sent twice): the file is complete and
            // nobody may write it again.
            return self.side_error_unattached(conn, "The file is already complete.");
        }
        // One connection per upload: an earlier one (its client gone, the
        // server not told yet) stops first, so two never write one file.
        // Its writes were asked for before this one's preparation, and the
        // application carries requests out in order.
        let earlier: Vec<ConnId> = self
            .files
            .sides
            .iter()
            .filter(|(_, s)| s.file == file.id && matches!(s.dir, Direction::Up(_)))
            .map(|(c, _)| *c)
            .collect();
        for old in earlier {
            self.files.sides.remove(&old);
            self.close(old, CloseReason::Quit);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Side;
            c.lines = LineBuffer::new(0);
            c.last_input = now.instant;
            self.timers.push(Reverse((now.instant + SIDE_IDLE, conn)));
        }
        let dir = if pass.upload {
            let op = self.files.op(conn, Op::Prepare);
            self.actions
                .push_back(Action::Files(Box::new(FileRequest::Prepare {
                    op,
                    place: Place::Shared(file.id),
                    size: file.size,
                    whole: None,
                })));
            Direction::Up(Upload {
                hashes: None,
                buf: Vec::new(),
                hasher: Sha256::new(),
                writes_pending: 0,
                paused: false,
                done: None,
                finishing: false,
            })
        } else {
            let from = from.min(chunks(file.size));
            Direction::Down(Download {
                next_read: from,
                reads_pending: 0,
                ready: BTreeMap::new(),
                next_send: from,
                sent_in_chunk: 0,
                hasher: Sha256::new(),
                draining: false,
            })
        };
        self.files.sides.insert(
            conn,
            Side {
                session: pass.session,
                file: file.id,
                dir,
            },
        );
        if !pass.upload {
            self.send_control(conn, &Control::Attached { have: 0 });
            self.pump_download(conn);
        }
    }

    fn upload_prepared(&mut self, now: Now, conn: ConnId, verified: Vec<[u8; 32]>) {
        let Some(side) = self.files.sides.get_mut(&conn) else {
            return;
        };
        let Direction::Up(u) = &mut side.dir else {
            return;
        };
        let have = verified.len() as u64;
        u.hashes = Some(verified);
        self.send_control(conn, &Control::Attached { have });
        // Records that came before the partial file was ready wait in the
        // line buffer: none do, as the client waits for `attached`.
        self.maybe_finish_upload(now, conn);
    }

    /// Records on an attached side connection.
    pub(super) fn side_records(&mut self, now: Now, conn: ConnId, plaintexts: Vec<Vec<u8>>) {
        for plaintext in plaintexts {
            if !self.files.sides.contains_key(&conn) {
                return;
            }
            match record::parse(&plaintext) {
                Ok(Record::Data(bytes)) => self.upload_data(conn, bytes),
                Ok(Record::Control(c)) => self.upload_control(now, conn, c),
                Err(_) => self.side_error(conn, "Malformed record."),
            }
        }
    }

    fn upload_data(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(side) = self.files.sides.get_mut(&conn) else {
            return;
        };
        let size = self.files.shared.get(&side.file).map_or(0, |f| f.size);
        let Direction::Up(u) = &mut side.dir else {
            return self.side_error(conn, "Data on a download.");
        };
        let Some(hashes) = &u.hashes else {
            return self.side_error(conn, "Data before the transfer was ready.");
        };
        let index = hashes.len() as u64;
        if (u.buf.len() + bytes.len()) as u64 > chunk_len(size, index) {
            return self.side_error(conn, "A chunk is longer than the file allows.");
        }
        if u.buf.capacity() == 0 {
            u.buf.reserve_exact(CHUNK as usize);
        }
        u.buf.extend_from_slice(bytes);
        u.hasher.update(bytes);
    }

    fn upload_control(&mut self, now: Now, conn: ConnId, control: Control) {
        let Some(side) = self.files.sides.get_mut(&conn) else {
            return;
        };
        let file = side.file;
        let size = self.files.shared.get(&file).map_or(0, |f| f.size);
        let Direction::Up(u) = &mut side.dir else {
            return self.side_error(conn, "Unexpected message on a download.");
        };
        let Some(hashes) = &mut u.hashes else {
            return self.side_error(conn, "A message before the transfer was ready.");
        };
        match control {
            Control::Chunk { index, hash } => {
                let expected = hashes.len() as u64;
                if index != expected || index >= chunks(size) || u.done.is_some() {
                    return self.side_error(conn, &format!("Expected chunk {expected}."));
                }
                let got: [u8; 32] = u.hasher.finalize_reset().into();
                if u.buf.len() as u64 != chunk_len(size, index) || got != hash {
                    return self.side_error(conn, &format!("Chunk {index} failed its check."));
                }
                hashes.push(hash);
                if let Some(p) = self.files.unfinished.get_mut(&file) {
                    p.at = now.instant;
                }
                let bytes = std::mem::take(&mut u.buf);
                u.writes_pending += 1;
                let pause = u.writes_pending >= MAX_PENDING_WRITES && !u.paused;
                if pause {
                    u.paused = true;
                }
                let op = self.files.op(conn, Op::Write);
                self.actions
                    .push_back(Action::Files(Box::new(FileRequest::Write {
                        op,
                        place: Place::Shared(file),
                        offset: index * CHUNK,
                        bytes,
                        hash,
                    })));
                if pause {
                    self.actions
                        .push_back(Action::PauseReading { conn, paused: true });
                }
            }
            Control::Done { hash } => {
                if hashes.len() as u64 != chunks(size) || !u.buf.is_empty() {
                    return self.side_error(conn, "The file is not complete.");
                }
                if hash.is_some_and(|h| h != file_hash(hashes)) {
                    return self.side_error(conn, "The file's hash does not match its chunks.");
                }
                u.done = Some(hash);
                self.maybe_finish_upload(now, conn);
            }
            _ => self.side_error(conn, "Unexpected message."),
        }
    }

    /// Once the sender is done and every chunk is written: give the file its
    /// name.
    fn maybe_finish_upload(&mut self, _now: Now, conn: ConnId) {
        let Some(side) = self.files.sides.get_mut(&conn) else {
            return;
        };
        let file = side.file;
        let Direction::Up(u) = &mut side.dir else {
            return;
        };
        if u.done.is_none() || u.writes_pending > 0 || u.finishing {
            return;
        }
        u.finishing = true;
        let op = self.files.op(conn, Op::Finish);
        self.actions
            .push_back(Action::Files(Box::new(FileRequest::Finish {
                op,
                place: Place::Shared(file),
                unpack: false,
            })));
    }

    fn upload_finished(&mut self, now: Now, conn: ConnId) {
        let Some(side) = self.files.sides.remove(&conn) else {
            return;
        };
        let Direction::Up(u) = side.dir else {
            return;
        };
        let hash = file_hash(&u.hashes.unwrap_or_default());
        self.send_control(conn, &Control::Stored);
        self.close(conn, CloseReason::Quit);
        self.files.unfinished.remove(&side.file);
        // Spare upload tickets (the offer sent twice) are void now.
        let id = side.file;
        self.files
            .tickets
            .retain(|_, p| !(p.file == id && p.upload));
        let Some((_, news)) = self.file_complete(now, side.file, hash, Some(side.session)) else {
            return;
        };
        // The sender hears it too (from any of its connections).
        self.send(side.session, news);
    }

    /// A file is whole (uploaded, or copied from the console): it is
    /// offered from now, kept, and announced to everyone offered it but
    /// `except`. The file and its announcement, unless it was withdrawn
    /// meanwhile.
    fn file_complete(
        &mut self,
        now: Now,
        id: FileId,
        hash: [u8; 32],
        except: Option<ConnId>,
    ) -> Option<(SharedFile, String)> {
        let f = self.files.shared.get_mut(&id)?;
        f.hash = Some(hash);
        // Offered from now: an upload that took a while does not expire
        // sooner for it.
        f.at_ms = now.wall.unix_ms;
        let f = f.clone();
        self.persist_files();
        self.event(
            Level::Info,
            EventKind::Chat,
            format!(
                "{} shared {} ({}) with {} as file {}",
                f.from,
                info(&f).shown_name(),
                transfer::human_size(f.size),
                f.to.shown(),
                f.id
            ),
        );
        let news = FileNews::FileShared { file: info(&f) }.to_line();
        self.tell_audience(now, &f, &news, except);
        Some((f, news))
    }

    /// Tells everyone offered `f` (but `except`): ours get `line`, LanTalk
    /// 2.0 members of the lobby a system line.
    fn tell_audience(&mut self, now: Now, f: &SharedFile, line: &str, except: Option<ConnId>) {
        let members: Vec<ConnId> = match &f.to {
            Audience::Room(r) => self
                .rooms
                .get(&room_key(r))
                .map(|room| room.members.iter().copied().collect())
                .unwrap_or_default(),
            Audience::User(u) => self.users.get(&name_key(u)).copied().into_iter().collect(),
        };
        let plain = format!(
            "{} shared {} ({}). Download it with a newer LanTalk client: /get {}",
            f.from,
            info(f).shown_name(),
            transfer::human_size(f.size),
            f.id
        );
        let plain = crate::text::visible(&plain).into_owned();
        for member in members {
            if Some(member) == except {
                continue;
            }
            match self.conns.get(&member) {
                Some(c) if c.is_secure() => self.send(member, line.to_string()),
                Some(c) if c.is_plaintext() && matches!(f.to, Audience::Room(_)) => {
                    self.send(member, protocol::system(now.wall, &plain))
                }
                _ => {}
            }
        }
    }

    /// Sends the download's next piece, and asks for more chunks.
    fn pump_download(&mut self, conn: ConnId) {
        let Some(side) = self.files.sides.get_mut(&conn) else {
            return;
        };
        let Some(f) = self.files.shared.get(&side.file) else {
            return;
        };
        let (size, id, whole) = (f.size, f.id, f.hash);
        let Direction::Down(d) = &mut side.dir else {
            return;
        };
        let total = chunks(size);
        let mut reads = Vec::new();
        while d.next_read < total && d.reads_pending + d.ready.len() < READ_AHEAD {
            reads.push(d.next_read);
            d.next_read += 1;
            d.reads_pending += 1;
        }
        let mut out = Vec::new();
        let mut finished = false;
        let mut sealed_ok = true;
        if !d.draining {
            if d.next_send >= total {
                finished = true;
            } else if let Some(chunk) = d.ready.get(&d.next_send) {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let Wire::Secure(session) = &mut c.wire else {
                    return;
                };
                let end = (d.sent_in_chunk + SEND_PIECE).min(chunk.len());
                let piece = &chunk[d.sent_in_chunk..end];
                sealed_ok &= record::seal_data(session, piece, &mut out).is_ok();
                d.hasher.update(piece);
                d.sent_in_chunk = end;
                if end == chunk.len() {
                    let hash: [u8; 32] = d.hasher.finalize_reset().into();
                    sealed_ok &= record::seal_control(
                        session,
                        &Control::Chunk {
                            index: d.next_send,
                            hash,
                        },
                        &mut out,
                    )
                    .is_ok();
                    d.ready.remove(&d.next_send);
                    d.next_send += 1;
                    d.sent_in_chunk = 0;
                    if d.next_send >= total {
                        finished = true;
                    }
                }
                d.draining = true;
            }
        }
        for index in reads {
            let op = self.files.op(conn, Op::Read(index));
            self.actions
                .push_back(Action::Files(Box::new(FileRequest::Read {
                    op,
                    place: Place::Shared(id),
                    offset: index * CHUNK,
                    len: chunk_len(size, index) as u32,
                    stamp: None,
                })));
        }
        if !sealed_ok {
            return self.close(conn, CloseReason::Encryption);
        }
        if !out.is_empty() {
            self.actions.push_back(Action::Send {
                conn,
                bytes: out.into(),
            });
            self.actions.push_back(Action::WatchDrain(conn));
        }
        if finished {
            // Everything is queued: the done message, then a close that
            // flushes it all.
            self.send_control(conn, &Control::Done { hash: whole });
            self.files.sides.remove(&conn);
            self.close(conn, CloseReason::Quit);
        }
    }

    /// Seals a control message on a side connection.
    fn send_control(&mut self, conn: ConnId, control: &Control) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Wire::Secure(session) = &mut c.wire else {
            return;
        };
        let mut out = Vec::new();
        if record::seal_control(session, control, &mut out).is_ok() {
            self.actions.push_back(Action::Send {
                conn,
                bytes: out.into(),
            });
        }
    }

    /// Ends a side connection's transfer: tells its peer why and closes it.
    /// The partial file stays, to resume.
    fn side_error(&mut self, conn: ConnId, why: &str) {
        self.files.sides.remove(&conn);
        self.send_control(
            conn,
            &Control::Error {
                text: why.to_string(),
            },
        );
        let addr = self.conns.get(&conn).map(|c| c.addr.to_string());
        self.event(
            Level::Warning,
            EventKind::Malformed,
            format!(
                "File connection from {} closed: {why}",
                addr.unwrap_or_default()
            ),
        );
        self.close(conn, CloseReason::Malformed);
    }

    /// A connection that never became a side connection.
    fn side_error_unattached(&mut self, conn: ConnId, why: &str) {
        self.send_control(
            conn,
            &Control::Error {
                text: why.to_string(),
            },
        );
        self.close(conn, CloseReason::AuthFailed);
    }

    fn side_failed_on_disk(&mut self, _now: Now, conn: ConnId, e: FileError) {
        let text = match e.kind {
            FileErrorKind::NoSpace => format!("The server's disk is full: {}", e.message),
            _ => format!("The server could not store the file: {}", e.message),
        };
        self.event(Level::Warning, EventKind::Connection, text.clone());
        self.side_error(conn, &text);
    }

    /// A side connection is gone (closed by either end).
    pub(super) fn side_gone(&mut self, conn: ConnId) {
        self.files.sides.remove(&conn);
        self.files.ops.retain(|_, (c, _)| *c != conn);
    }

    /// The session `conn` ended: its side connections end with it, and its
    /// tickets are void.
    pub(super) fn session_gone(&mut self, conn: ConnId) {
        self.files.tickets.retain(|_, p| p.session != conn);
        let sides: Vec<ConnId> = self
            .files
            .sides
            .iter()
            .filter(|(_, s)| s.session == conn)
            .map(|(c, _)| *c)
            .collect();
        for side in sides {
            self.files.sides.remove(&side);
            self.close(side, CloseReason::Quit);
        }
    }

    fn persist_files(&mut self) {
        if self.config.files.enabled {
            let list = self.files.shared.values().cloned().collect();
            self.actions.push_back(Action::PersistFiles(list));
        }
    }

    fn arm_sweep(&mut self, now: Now) {
        if self.files.next_sweep.is_none() {
            self.files.next_sweep = Some(now.instant + SWEEP_EVERY);
        }
    }

    /// When files must next be looked at for expiry.
    pub(super) fn files_timeout(&self) -> Option<Instant> {
        self.files.next_sweep
    }

    /// Forgets files kept longer than `--files-keep`.
    pub(super) fn sweep_files(&mut self, now: Now) {
        let Some(at) = self.files.next_sweep else {
            return;
        };
        if at > now.instant {
            return;
        }
        self.files.next_sweep = None;
        let keep_ms = self
            .config
            .files
            .keep
            .map_or(i64::MAX, |k| k.as_millis() as i64);
        let mut expired: Vec<FileId> = self
            .files
            .shared
            .values()
            .filter(|f| f.hash.is_some())
            .filter(|f| now.wall.unix_ms.saturating_sub(f.at_ms) >= keep_ms)
            .filter(|f| !self.files.sides.values().any(|s| s.file == f.id))
            .map(|f| f.id)
            .collect();
        // An upload that stalled (an active side connection that sends
        // nothing included) goes after an hour without progress.
        expired.extend(
            self.files
                .unfinished
                .iter()
                .filter(|(_, p)| now.instant.saturating_since(p.at) >= UNFINISHED_KEEP)
                .map(|(id, _)| *id),
        );
        for id in expired {
            self.remove_file(now, id);
        }
        if !self.files.shared.is_empty() {
            self.arm_sweep(now);
        }
    }

    /// At start: expire what the last run kept too long.
    pub(super) fn start_files(&mut self, now: Now) {
        // Uploads the last run left unfinished get a fresh hour to resume.
        let unfinished: Vec<FileId> = self
            .files
            .shared
            .values()
            .filter(|f| f.hash.is_none())
            .map(|f| f.id)
            .collect();
        for id in unfinished {
            let at = now.instant;
            self.files
                .unfinished
                .insert(id, Progress { at, addr: None });
        }
        if !self.files.shared.is_empty() {
            self.files.next_sweep = Some(now.instant);
        }
    }

    /// Unfinished uploads held by `from`, and from `addr`.
    fn unfinished_of(&self, from: &str, addr: Option<core::net::IpAddr>) -> (usize, usize) {
        let me = name_key(from);
        let mine = self
            .files
            .shared
            .values()
            .filter(|f| f.hash.is_none() && name_key(&f.from) == me)
            .count();
        let here = self
            .files
            .unfinished
            .values()
            .filter(|p| addr.is_some() && p.addr == addr)
            .count();
        (mine, here)
    }
}

/// A side connection that neither sends nor drains for this long is taken
/// for dead.
pub(super) const SIDE_IDLE: Duration = Duration::from_secs(120);

// ── The console: the operator shares and saves files too ─────────────────

impl Server {
    /// Who the operator's files are from (as its messages are).
    fn operator(&self) -> String {
        format!("{} (server)", self.config.name)
    }

    fn console_op(&mut self, op: ConsoleOp) -> OpId {
        self.files.next_op += 1;
        let id = OpId(self.files.next_op);
        self.files.console_ops.insert(id, op);
        id
    }

    /// The console's `/send`, `/files`, `/get` and `/cancel`; false for
    /// another command.
    pub(super) fn console_files(&mut self, now: Now, cmd: &str, arg: &str) -> bool {
        if !matches!(cmd, "/send" | "/files" | "/get" | "/cancel") {
            return false;
        }
        if !self.config.files.enabled {
            self.reply("This server does not share files (started with --no-files).");
            return true;
        }
        match (cmd, arg) {
            ("/send", arg) => self.console_send(arg),
            ("/files", _) => self.console_list(now),
            ("/get", "all") => {
                let ids: Vec<FileId> = self
                    .files
                    .shared
                    .values()
                    .filter(|f| f.hash.is_some())
                    .map(|f| f.id)
                    .collect();
                if ids.is_empty() {
                    self.reply("No files are shared.");
                }
                for id in ids {
                    self.console_get(id);
                }
            }
            ("/get", arg) => match arg.parse::<u64>() {
                Ok(id) => self.console_get(FileId(id)),
                Err(_) => self.reply("Usage: /get <id|all> (see /files)"),
            },
            (_, arg) => match arg.parse::<u64>() {
                Ok(id) if self.files.shared.contains_key(&FileId(id)) => {
                    let name = self.files.shared[&FileId(id)].name.clone();
                    self.remove_file(now, FileId(id));
                    self.reply(format!("File {id} ({name}) is no longer offered."));
                }
                Ok(id) => self.reply(format!("There is no file {id} (see /files).")),
                Err(_) => self.reply("Usage: /cancel <id>"),
            },
        }
        true
    }

    fn console_send(&mut self, arg: &str) {
        let (to, path) = protocol::split_word(arg);
        let path = path.trim();
        if to.is_empty() || path.is_empty() {
            return self.reply("Usage: /send <user|#room> <path>");
        }
        let audience = if to.starts_with('#') {
            match self.rooms.get(&room_key(to)) {
                Some(r) => Audience::Room(r.name.clone()),
                None => return self.reply(format!("No room {to}.")),
            }
        } else {
            match self
                .users
                .get(&name_key(to))
                .and_then(|c| self.conns.get(c))
            {
                Some(c) => Audience::User(c.name().unwrap_or(to).to_string()),
                None => return self.reply(format!("{to} is not online.")),
            }
        };
        let op = self.console_op(ConsoleOp::Look {
            to: audience,
            path: path.to_string(),
        });
        self.actions
            .push_back(Action::Files(Box::new(FileRequest::Stat {
                op,
                place: Place::Local(path.to_string()),
            })));
    }

    fn console_list(&mut self, now: Now) {
        let files: Vec<String> = self
            .files
            .shared
            .values()
            .filter(|f| f.hash.is_some())
            .map(|f| {
                let age = now.wall.unix_ms.saturating_sub(f.at_ms).max(0) / 60_000;
                crate::text::visible(&format!(
                    "{}  {}  {}  from {} for {}, {age} min ago",
                    f.id,
                    info(f).shown_name(),
                    transfer::human_size(f.size),
                    f.from,
                    f.to.shown()
                ))
                .into_owned()
            })
            .collect();
        if files.is_empty() {
            self.reply("No files are shared.");
        } else {
            self.reply(format!("Files:\n{}", files.join("\n")));
        }
    }

    fn console_get(&mut self, id: FileId) {
        let Some(f) = self.files.shared.get(&id).filter(|f| f.hash.is_some()) else {
            return self.reply(format!("There is no file {id} (see /files)."));
        };
        let to = Place::Download {
            id,
            name: f.name.clone(),
        };
        let unpack = f.folder;
        let op = self.console_op(ConsoleOp::Save(id));
        self.actions
            .push_back(Action::Files(Box::new(FileRequest::Copy {
                op,
                from: Place::Shared(id),
                to,
                stamp: None,
                unpack,
            })));
    }

    fn console_file_reply(
        &mut self,
        now: Now,
        op: ConsoleOp,
        result: Result<FileAnswer, FileError>,
    ) {
        match (op, result) {
            (
                ConsoleOp::Look { to, path },
                Ok(FileAnswer::Stat {
                    stamp,
                    name,
                    folder,
                }),
            ) => self.console_offer(now, to, &path, &name, stamp, folder),
            (ConsoleOp::Share(id), Ok(FileAnswer::Copied { hash, .. })) => {
                let Some((f, _)) = self.file_complete(now, id, hash, None) else {
                    return;
                };
                self.reply(format!(
                    "Shared {} ({}, hash {}) with {} as file {}.",
                    info(&f).shown_name(),
                    transfer::human_size(f.size),
                    hex(&hash),
                    f.to.shown(),
                    f.id
                ));
            }
            (ConsoleOp::Save(id), Ok(FileAnswer::Copied { path, hash })) => {
                let size = self.files.shared.get(&id).map_or(0, |f| f.size);
                self.reply(format!(
                    "Saved {} ({}, hash {}).",
                    crate::text::visible(&path),
                    transfer::human_size(size),
                    hex(&hash)
                ));
            }
            (op, Err(e)) => {
                if let ConsoleOp::Share(id) = op {
                    // Nothing is offered: the copy is removed.
                    self.files.shared.remove(&id);
                    self.actions
                        .push_back(Action::Files(Box::new(FileRequest::Discard {
                            place: Place::Shared(id),
                        })));
                    self.persist_files();
                }
                self.reply(crate::text::visible(&e.message).into_owned());
            }
            (_, Ok(_)) => {}
        }
    }

    /// `/send` from the console: the file was looked at; check the limits,
    /// then copy it into the shared folder.
    fn console_offer(
        &mut self,
        now: Now,
        to: Audience,
        path: &str,
        name: &str,
        stamp: Stamp,
        folder: bool,
    ) {
        let cfg = &self.config.files;
        let size = stamp.size;
        let used = self.files.used();
        let refused = if size > cfg.max_file_size {
            Some(format!(
                "{name} is {}; this server takes files up to {} (--max-file-size).",
                transfer::human_size(size),
                transfer::human_size(cfg.max_file_size)
            ))
        } else if used.saturating_add(size) > cfg.quota {
            Some(format!(
                "The space for files is full ({} of {} used, --files-quota).",
                transfer::human_size(used),
                transfer::human_size(cfg.quota)
            ))
        } else {
            None
        };
        if let Some(text) = refused {
            // What the worker read it from (a packed folder) goes.
            self.actions
                .push_back(Action::Files(Box::new(FileRequest::Discard {
                    place: Place::Local(path.to_string()),
                })));
            return self.reply(text);
        }
        let id = FileId(self.files.next_id);
        self.files.next_id += 1;
        let from = self.operator();
        self.files.shared.insert(
            id,
            SharedFile {
                id,
                name: names::sanitise(name),
                size,
                from,
                to,
                hash: None,
                at_ms: now.wall.unix_ms,
                stamp,
                folder,
            },
        );
        self.arm_sweep(now);
        let op = self.console_op(ConsoleOp::Share(id));
        self.actions
            .push_back(Action::Files(Box::new(FileRequest::Copy {
                op,
                from: Place::Local(path.to_string()),
                to: Place::Shared(id),
                stamp: Some(stamp),
                unpack: false,
            })));
    }
}
