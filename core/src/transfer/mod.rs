//! Sharing files: the values both ends and the application agree on.
//!
//! File bytes never travel on the chat connection. A client of ours asks the
//! server (on its encrypted chat session) to upload or download a file; the
//! server answers with a one-time [`Ticket`] bound to that session; the
//! client opens a *side connection* to the same port, runs the same Noise
//! handshake with the same key, and presents the ticket. From then on the
//! side connection carries [`record`]s: file data and small control
//! messages, chunk by chunk, each chunk checked against its SHA-256.
//!
//! The core never touches a disk. What it needs done to files leaves as a
//! [`FileRequest`] (read a piece, write a verified chunk, give a finished
//! file its name) and the answer comes back as a [`FileReply`] — the same
//! request/reply shape as the history store. The server's files are named by
//! [`FileId`] only, so nothing a peer sends can choose a path on the server;
//! a receiving client gets a name sanitised by [`names::sanitise`].

pub mod lines;
pub mod names;
pub mod record;

use std::fmt;

use sha2::{Digest, Sha256};

/// Files are sent and verified in chunks of this size (the last one may be
/// shorter). A chunk is the unit of resumption: what was verified is never
/// sent or read again.
pub const CHUNK: u64 = 1 << 20;

/// A file the server keeps, for as long as it keeps it. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u64);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A one-time secret that lets a side connection act for a chat session.
pub type Ticket = [u8; 16];

/// One side connection of a client, for its whole life. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SideId(pub u64);

/// A file request handed to the application, to be answered by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// Where a file is, as the core names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A file the server keeps (`<data dir>/files/<id>`; while it arrives,
    /// `<id>.part` beside the list of its verified chunks).
    Shared(FileId),
    /// A path the user typed (clients only): a file to send.
    Local(String),
    /// A file being downloaded (clients only), by the server's id and the
    /// name it was offered under. The application picks the folder, makes
    /// the name safe ([`names::sanitise`]) and, when it is finished, a name
    /// that overwrites nothing (`name (1).ext`).
    Download { id: FileId, name: String },
}

/// What a file looked like when it was read: a change while it is being
/// sent is noticed by comparing stamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    /// Modification time in milliseconds since the Unix epoch (0: unknown).
    pub modified_ms: i64,
}

/// Something the application does to a file, off the event loop, and
/// answers with a [`FileReply`] carrying the same `op` (every request but
/// [`FileRequest::Discard`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileRequest {
    /// How big a file to send is (and its stamp). Answer: [`FileAnswer::Stat`].
    Stat { op: OpId, place: Place },
    /// `len` bytes from `offset` (fewer only at the end). If `stamp` is
    /// given and the file no longer matches it, fail with
    /// [`FileErrorKind::Changed`]. Answer: [`FileAnswer::Data`].
    Read {
        op: OpId,
        place: Place,
        offset: u64,
        len: u32,
        stamp: Option<Stamp>,
    },
    /// Get ready to receive a file of `size` bytes: create its partial file,
    /// or find the one an interrupted transfer left, and answer with the
    /// hashes of the chunks already verified in it (in order; the partial
    /// file is cut after them). Fails with [`FileErrorKind::NoSpace`] when
    /// the disk cannot hold it. `whole` is the file's hash when it is known
    /// (downloads): a partial file left by another file of the same id and
    /// size (another server's) is not taken for this one. Answer:
    /// [`FileAnswer::Prepared`].
    Prepare {
        op: OpId,
        place: Place,
        size: u64,
        whole: Option<[u8; 32]>,
    },
    /// Write a verified chunk at `offset`, and remember its hash so a
    /// resumed transfer can skip it. Answer: [`FileAnswer::Written`].
    Write {
        op: OpId,
        place: Place,
        offset: u64,
        bytes: Vec<u8>,
        hash: [u8; 32],
    },
    /// Every chunk is in and the whole file's hash checked: flush it to disk
    /// and give it its final name. `unpack`: it is a folder packed by
    /// [`FileAnswer::Stat`]'s `folder`, to unpack into a folder of that name
    /// (each path made safe). Answer: [`FileAnswer::Finished`].
    Finish {
        op: OpId,
        place: Place,
        unpack: bool,
    },
    /// Copy a whole file from `from` to `to` in one pass, hashing it chunk
    /// by chunk on the way: what the server's own console shares
    /// (`Local` to `Shared`) and saves (`Shared` to `Download`). If `stamp`
    /// is given and the source no longer matches it at the end, fail with
    /// [`FileErrorKind::Changed`] and keep nothing. Answer:
    /// [`FileAnswer::Copied`].
    Copy {
        op: OpId,
        from: Place,
        to: Place,
        stamp: Option<Stamp>,
        unpack: bool,
    },
    /// Forget a file (cancelled, expired, or refused): remove it and its
    /// partial file. No answer.
    Discard { place: Place },
}

impl FileRequest {
    pub fn op(&self) -> Option<OpId> {
        match self {
            FileRequest::Stat { op, .. }
            | FileRequest::Read { op, .. }
            | FileRequest::Prepare { op, .. }
            | FileRequest::Write { op, .. }
            | FileRequest::Finish { op, .. }
            | FileRequest::Copy { op, .. } => Some(*op),
            FileRequest::Discard { .. } => None,
        }
    }
}

/// The application's answer to a [`FileRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReply {
    pub op: OpId,
    pub result: Result<FileAnswer, FileError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileAnswer {
    /// The file's size and stamp; `name` is its file name (the last part of
    /// the path), as offered to others. `folder`: the path is a folder, and
    /// what is read from it is the folder packed into one stream (its files
    /// with their paths inside it), which the receiver unpacks.
    Stat {
        stamp: Stamp,
        name: String,
        folder: bool,
    },
    Data(Vec<u8>),
    /// Hashes of the chunks already verified, in order.
    Prepared {
        verified: Vec<[u8; 32]>,
    },
    Written,
    /// Where the file is now, for people (clients: the path it was saved
    /// under).
    Finished {
        path: String,
    },
    /// A copy is done: where it is now, and the whole file's hash
    /// ([`file_hash`] of its chunks).
    Copied {
        path: String,
        hash: [u8; 32],
    },
}

/// Why a file request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub kind: FileErrorKind,
    /// What went wrong, for people ("No space left on device").
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileErrorKind {
    NotFound,
    /// The disk is full (or a quota is reached): keep what is there, to
    /// resume.
    NoSpace,
    /// The file changed while it was being sent.
    Changed,
    /// Not a regular file (a directory, a device).
    NotAFile,
    Other,
}

impl FileError {
    pub fn new(kind: FileErrorKind, message: impl Into<String>) -> Self {
        FileError {
            kind,
            message: message.into(),
        }
    }
}

/// Who a file is offered to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Everyone in the room (by its name as written, e.g. `#team`), and
    /// whoever joins it while the file is kept.
    Room(String),
    /// One person.
    User(String),
}

/// A file the server keeps and offers: what is persisted so offers survive
/// a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFile {
    pub id: FileId,
    /// The name it was offered under (already sanitised by the server).
    pub name: String,
    pub size: u64,
    /// Who sent it.
    pub from: String,
    pub to: Audience,
    /// The whole file's hash ([`file_hash`]), once it is complete.
    pub hash: Option<[u8; 32]>,
    /// When it was offered, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The sender's file as it was when offered: a resumed upload must find
    /// it unchanged.
    pub stamp: Stamp,
    /// A folder, packed (see [`FileAnswer::Stat`]).
    pub folder: bool,
}

/// How many chunks a file of `size` bytes has.
pub fn chunks(size: u64) -> u64 {
    size.div_ceil(CHUNK)
}

/// The length of chunk `index` of a file of `size` bytes.
pub fn chunk_len(size: u64, index: u64) -> u64 {
    CHUNK.min(size.saturating_sub(index * CHUNK))
}

/// A chunk's SHA-256.
pub fn chunk_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The whole file's hash: the SHA-256 of its chunks' SHA-256s, in order.
/// Built from the chunk hashes, so a resumed transfer checks the whole file
/// without reading again what it verified before.
pub fn file_hash(chunk_hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in chunk_hashes {
        h.update(c);
    }
    h.finalize().into()
}

/// Lower-case hex, as hashes are shown and sent.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The bytes of lower-case or upper-case hex; `None` unless it is exactly
/// `N` bytes' worth.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A size for people: `532 B`, `1.4 MB`, `2.0 GB` (decimal units, as file
/// managers show them).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_arithmetic() {
        assert_eq!(chunks(0), 0);
        assert_eq!(chunks(1), 1);
        assert_eq!(chunks(CHUNK), 1);
        assert_eq!(chunks(CHUNK + 1), 2);
        assert_eq!(chunk_len(CHUNK + 5, 0), CHUNK);
        assert_eq!(chunk_len(CHUNK + 5, 1), 5);
        assert_eq!(chunk_len(CHUNK + 5, 2), 0);
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let h = chunk_hash(b"abc");
        assert_eq!(
            hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(unhex::<32>(&hex(&h)), Some(h));
        assert_eq!(unhex::<2>("zz00"), None);
        assert_eq!(unhex::<2>("abc"), None);
        assert_eq!(unhex::<2>("é0"), None);
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(532), "532 B");
        assert_eq!(human_size(1_400_000), "1.4 MB");
        assert_eq!(human_size(2_000_000_000), "2.0 GB");
    }
}
