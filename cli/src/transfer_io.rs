//! The disk side of file sharing: carries out the core's
//! [`FileRequest`]s on a thread of its own, so no read or write of a file
//! ever holds up the chat, and answers each with a [`FileReply`].
//!
//! Where files go:
//! - The server's (`Place::Shared(id)`): `<data dir>/files/<id>`, named by
//!   number only, so nothing a peer sends chooses a path. While one arrives
//!   it is `<id>.part`, beside `<id>.part.lantalk`, the hashes of the chunks
//!   verified so far.
//! - A download (`Place::Download`): in the download folder, under the
//!   offered name made safe ([`names::sanitise`]), as `<name>.part` (or
//!   `<name (1)>.part` if another file's partial copy has that name) beside
//!   its `.lantalk` list, then under a name that overwrites nothing
//!   (`name (1).ext`).
//!
//! A chunk's hash is recorded only after its bytes are on the disk: hashes
//! are kept in memory and appended to the list after `sync_data`, every
//! [`SYNC_EVERY`] chunks and when the file is finished. A power cut can
//! cost the last few chunks of progress, never record a chunk that is not
//! there. The list's first line names the file (server id and size), so a
//! partial file is only ever resumed as the same file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::UNIX_EPOCH;

use lantalk_core::transfer::{
    chunk_hash, file_hash, hex, names, unhex, Audience, FileAnswer, FileError, FileErrorKind,
    FileId, FileReply, FileRequest, Place, SharedFile, Stamp, CHUNK,
};
use serde::{Deserialize, Serialize};

/// Verified chunks written between two syncs of a partial file (and of its
/// list of hashes).
const SYNC_EVERY: usize = 16;
/// Open files kept for reading (files being sent; the server's, read by
/// several downloads at once).
const MAX_OPEN_READERS: usize = 16;

/// Carries out file requests, in order, on a thread of its own.
pub struct FileWorker {
    tx: mpsc::Sender<FileRequest>,
}

impl FileWorker {
    /// A worker keeping the server's files in `shared_dir` and saving
    /// downloads in `download_dir` (created when the first download
    /// starts); `reply` gets every answer, on the worker's thread.
    pub fn spawn(
        shared_dir: Option<PathBuf>,
        download_dir: Option<PathBuf>,
        reply: impl Fn(FileReply) + Send + 'static,
    ) -> io::Result<FileWorker> {
        let (tx, rx) = mpsc::channel::<FileRequest>();
        let mut disk = Disk {
            shared_dir,
            download_dir,
            readers: HashMap::new(),
            partials: HashMap::new(),
            packed: HashMap::new(),
            pack_dir: None,
        };
        std::thread::Builder::new()
            .name("files".into())
            .spawn(move || {
                for request in rx {
                    let op = request.op();
                    let result = disk.carry_out(request);
                    if let (Some(op), Some(result)) = (op, result) {
                        reply(FileReply { op, result });
                    }
                }
            })?;
        Ok(FileWorker { tx })
    }

    /// Hands `request` to the worker; never blocks.
    pub fn request(&self, request: FileRequest) {
        let _ = self.tx.send(request);
    }
}

/// The platform's Downloads folder (the current directory if it has none).
pub fn default_download_dir() -> PathBuf {
    dirs::download_dir().unwrap_or_else(|| PathBuf::from("."))
}

/// A partial file being written, and the hashes not yet in its list.
struct Partial {
    file: File,
    path: PathBuf,
    list: PathBuf,
    /// Hashes of chunks written since the last sync.
    pending: Vec<[u8; 32]>,
}

struct Disk {
    shared_dir: Option<PathBuf>,
    download_dir: Option<PathBuf>,
    /// Open files to read, by path.
    readers: HashMap<PathBuf, File>,
    /// Partial files, by the place they are for.
    partials: HashMap<PlaceKey, Partial>,
    /// Folders being sent, packed into temporary files (see
    /// [`crate::folder`]), by the folder's path.
    packed: HashMap<PathBuf, Pack>,
    /// Where packs are made: a folder of this worker's own, readable by
    /// its user only (made when the first folder is sent).
    pack_dir: Option<PathBuf>,
}

/// A folder packed for sending, shared by every upload of it under way: the
/// same snapshot for all, removed when the last one is over.
struct Pack {
    file: PathBuf,
    stamp: Stamp,
    users: usize,
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Some(dir) = &self.pack_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A new folder for packs in the system's temporary folder, private to its
/// user where the platform has permissions, with a name nobody can guess
/// ahead (so nobody can plant a link there first).
fn private_temp_dir() -> io::Result<PathBuf> {
    for _ in 0..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!("{}-{nanos}-{:p}", std::process::id(), &nanos);
        let tag = &hex(&chunk_hash(seed.as_bytes()))[..16];
        let dir = std::env::temp_dir().join(format!("lantalk-send-{tag}"));
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name for a temporary folder"))
}

/// A place as a map key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PlaceKey {
    Shared(FileId),
    Download(FileId, String),
    Local(String),
}

fn place_key(place: &Place) -> PlaceKey {
    match place {
        Place::Shared(id) => PlaceKey::Shared(*id),
        Place::Download { id, name } => PlaceKey::Download(*id, names::sanitise(name)),
        Place::Local(p) => PlaceKey::Local(p.clone()),
    }
}

type Answer = Result<FileAnswer, FileError>;

fn error(kind: FileErrorKind, message: impl Into<String>) -> FileError {
    FileError::new(kind, message)
}

/// An I/O error as the core understands it; a full disk is told apart.
fn io_error(e: &io::Error, what: &str) -> FileError {
    let full = e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || (cfg!(unix) && e.raw_os_error() == Some(28))
        || (cfg!(windows) && matches!(e.raw_os_error(), Some(39 | 112)));
    let kind = match e.kind() {
        _ if full => FileErrorKind::NoSpace,
        io::ErrorKind::NotFound => FileErrorKind::NotFound,
        _ => FileErrorKind::Other,
    };
    error(kind, format!("{what}: {e}"))
}

/// `~/x` is the home folder's `x`, as a shell would have it.
fn expand(path: &str) -> PathBuf {
    match path.strip_prefix("~/").or_else(|| path.strip_prefix("~\\")) {
        Some(rest) => dirs::home_dir()
            .map(|h| h.join(rest))
            .unwrap_or_else(|| PathBuf::from(path)),
        None if path == "~" => dirs::home_dir().unwrap_or_else(|| PathBuf::from(path)),
        None => PathBuf::from(path),
    }
}

fn stamp_of(meta: &fs::Metadata) -> Stamp {
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    Stamp {
        size: meta.len(),
        modified_ms,
    }
}

/// The first line of a list of hashes: which file it is for.
fn list_header(id: FileId, size: u64, whole: Option<[u8; 32]>) -> String {
    match whole {
        // A download: bound to the file's contents, so another server's
        // file with the same id and size never passes for it.
        Some(h) => format!("lantalk-part 2 {id} {size} {}\n", hex(&h)),
        None => format!("lantalk-part 1 {id} {size}\n"),
    }
}

impl Disk {
    fn carry_out(&mut self, request: FileRequest) -> Option<Answer> {
        Some(match request {
            FileRequest::Stat { place, .. } => self.stat(&place),
            FileRequest::Read {
                place,
                offset,
                len,
                stamp,
                ..
            } => self.read(&place, offset, len, stamp),
            FileRequest::Prepare {
                place, size, whole, ..
            } => self.prepare(&place, size, whole),
            FileRequest::Write {
                place,
                offset,
                bytes,
                hash,
                ..
            } => self.write(&place, offset, &bytes, hash),
            FileRequest::Finish { place, unpack, .. } => self.finish(&place, unpack),
            FileRequest::Copy {
                from,
                to,
                stamp,
                unpack,
                ..
            } => self.copy(&from, &to, stamp, unpack),
            FileRequest::Discard { place } => {
                self.discard(&place);
                return None;
            }
        })
    }

    fn shared_dir(&self) -> Result<&Path, FileError> {
        self.shared_dir
            .as_deref()
            .ok_or_else(|| error(FileErrorKind::Other, "this program keeps no shared files"))
    }

    fn download_dir(&self) -> Result<&Path, FileError> {
        let dir = self
            .download_dir
            .as_deref()
            .ok_or_else(|| error(FileErrorKind::Other, "this program saves no downloads"))?;
        fs::create_dir_all(dir)
            .map_err(|e| io_error(&e, &format!("cannot create {}", dir.display())))?;
        Ok(dir)
    }

    /// The file a read is for.
    fn source(&self, place: &Place) -> Result<PathBuf, FileError> {
        match place {
            Place::Local(p) => {
                let path = expand(p);
                // A folder is read from its packed copy.
                Ok(self.packed.get(&path).map_or(path, |p| p.file.clone()))
            }
            Place::Shared(id) => Ok(self.shared_dir()?.join(id.to_string())),
            Place::Download { .. } => Err(error(FileErrorKind::Other, "a download is not read")),
        }
    }

    fn stat(&mut self, place: &Place) -> Answer {
        let path = match place {
            Place::Local(p) => expand(p),
            other => self.source(other)?,
        };
        let shown = path.display().to_string();
        let meta = fs::metadata(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                error(FileErrorKind::NotFound, format!("No such file: {shown}"))
            }
            _ => io_error(&e, &format!("Cannot read {shown}")),
        })?;
        if meta.is_dir() {
            return self.pack(&path);
        }
        if !meta.is_file() {
            return Err(error(
                FileErrorKind::NotAFile,
                format!("{shown} is not a regular file"),
            ));
        }
        // Opened now, so that a file we may not read says so at once.
        File::open(&path).map_err(|e| io_error(&e, &format!("Cannot read {shown}")))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        Ok(FileAnswer::Stat {
            stamp: stamp_of(&meta),
            name,
            folder: false,
        })
    }

    /// Packs a folder to send into a temporary file, read in its place from
    /// now until the upload is over ([`FileRequest::Discard`]).
    fn pack(&mut self, folder: &Path) -> Answer {
        let shown = folder.display().to_string();
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "folder".into());
        if let Some(p) = self.packed.get_mut(folder) {
            // Already being sent: the same snapshot.
            p.users += 1;
            return Ok(FileAnswer::Stat {
                stamp: p.stamp,
                name,
                folder: true,
            });
        }
        if self.pack_dir.is_none() {
            let dir =
                private_temp_dir().map_err(|e| io_error(&e, "Cannot make a temporary folder"))?;
            self.pack_dir = Some(dir);
        }
        let dir = self.pack_dir.clone().unwrap_or_default();
        let (pack, _) = crate::folder::first_free(&dir, "pack.tar", |path| {
            OpenOptions::new().write(true).create_new(true).open(path)
        })
        .map_err(|e| io_error(&e, "Cannot make a temporary file"))?;
        let packed = crate::folder::pack(folder, &pack).map_err(|e| {
            let _ = fs::remove_file(&pack);
            io_error(&e, &format!("Cannot pack {shown}"))
        })?;
        let size = fs::metadata(&pack).map(|m| m.len()).unwrap_or(0);
        let stamp = Stamp {
            size,
            modified_ms: packed.identity,
        };
        self.packed.insert(
            folder.to_path_buf(),
            Pack {
                file: pack,
                stamp,
                users: 1,
            },
        );
        Ok(FileAnswer::Stat {
            stamp,
            name,
            folder: true,
        })
    }

    fn read(&mut self, place: &Place, offset: u64, len: u32, stamp: Option<Stamp>) -> Answer {
        let path = self.source(place)?;
        // A packed folder is a snapshot taken when it was offered: it does
        // not change, whatever happens to the folder meanwhile.
        let stamp = stamp.filter(|_| !self.packed.values().any(|p| p.file == path));
        let shown = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !self.readers.contains_key(&path) {
            if self.readers.len() >= MAX_OPEN_READERS {
                self.readers.clear();
            }
            let f = File::open(&path).map_err(|e| io_error(&e, &format!("Cannot read {shown}")))?;
            self.readers.insert(path.clone(), f);
        }
        let file = self.readers.get_mut(&path).expect("just opened");
        if let Some(stamp) = stamp {
            let now = file
                .metadata()
                .map_err(|e| io_error(&e, &format!("Cannot read {shown}")))?;
            if stamp_of(&now) != stamp {
                self.readers.remove(&path);
                return Err(error(
                    FileErrorKind::Changed,
                    format!("{shown} changed while being sent"),
                ));
            }
        }
        let mut buf = vec![0u8; len as usize];
        let result = (|| {
            file.seek(SeekFrom::Start(offset))?;
            let mut got = 0;
            while got < buf.len() {
                match file.read(&mut buf[got..])? {
                    0 => break,
                    n => got += n,
                }
            }
            Ok::<usize, io::Error>(got)
        })();
        match result {
            Ok(got) => {
                buf.truncate(got);
                Ok(FileAnswer::Data(buf))
            }
            Err(e) => {
                self.readers.remove(&path);
                Err(io_error(&e, &format!("Cannot read {shown}")))
            }
        }
    }

    /// Finds or makes the partial file for `place`, and says which chunks
    /// in it are verified.
    fn prepare(&mut self, place: &Place, size: u64, whole: Option<[u8; 32]>) -> Answer {
        let key = place_key(place);
        // A transfer of the same file that stopped: what it wrote is
        // recorded first.
        if let Some(mut old) = self.partials.remove(&key) {
            let _ = old.record_pending();
        }
        let (id, path, list) = match place {
            Place::Shared(id) => {
                let dir = self.shared_dir()?;
                (
                    *id,
                    dir.join(format!("{id}.part")),
                    dir.join(format!("{id}.part.lantalk")),
                )
            }
            Place::Download { id, name } => {
                let dir = self.download_dir()?.to_path_buf();
                let (path, list) =
                    self.download_part(&dir, *id, size, whole, &names::sanitise(name));
                (*id, path, list)
            }
            Place::Local(_) => {
                return Err(error(FileErrorKind::Other, "a local file is not written"))
            }
        };
        let shown = path.display().to_string();
        let verified = read_list(&list, &list_header(id, size, whole), size);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&e, &format!("Cannot create {shown}")))?;
        let on_disk = file.metadata().map(|m| m.len()).unwrap_or(0);
        // Only chunks whose bytes are all there count.
        let full_chunks = usize::try_from(on_disk / CHUNK).unwrap_or(usize::MAX);
        let complete_last = verified.len() as u64 * CHUNK > size && on_disk >= size;
        let keep = if complete_last {
            verified.len()
        } else {
            verified.len().min(full_chunks)
        };
        let verified = verified[..keep].to_vec();
        let kept_bytes = (keep as u64 * CHUNK).min(size);
        file.set_len(kept_bytes)
            .map_err(|e| io_error(&e, &format!("Cannot write {shown}")))?;
        // The list again, exactly as kept (atomically: a crash leaves the old
        // or the new one).
        let mut contents = list_header(id, size, whole).into_bytes();
        for h in &verified {
            contents.extend_from_slice(h);
        }
        replace(&list, &contents)
            .map_err(|e| io_error(&e, &format!("Cannot write {}", list.display())))?;
        let needed = size.saturating_sub(kept_bytes);
        if let Some(free) = free_space(path.parent().unwrap_or(Path::new("."))) {
            if free < needed {
                return Err(error(
                    FileErrorKind::NoSpace,
                    format!(
                        "Not enough space for {}: needs {}, {} free",
                        path.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default(),
                        lantalk_core::transfer::human_size(needed),
                        lantalk_core::transfer::human_size(free)
                    ),
                ));
            }
        }
        self.partials.insert(
            key,
            Partial {
                file,
                path,
                list,
                pending: Vec::new(),
            },
        );
        Ok(FileAnswer::Prepared { verified })
    }

    /// The partial file for a download: `<name>.part`, unless that one is
    /// another file's (by its list), then `<name (1)>.part`, and so on.
    fn download_part(
        &self,
        dir: &Path,
        id: FileId,
        size: u64,
        whole: Option<[u8; 32]>,
        name: &str,
    ) -> (PathBuf, PathBuf) {
        let header = list_header(id, size, whole);
        let in_use: Vec<&PathBuf> = self.partials.values().map(|p| &p.path).collect();
        for n in 0.. {
            let base = if n == 0 {
                name.to_string()
            } else {
                names::numbered(name, n)
            };
            let path = dir.join(format!("{base}.part"));
            let list = dir.join(format!("{base}.part.lantalk"));
            if in_use.contains(&&path) {
                continue;
            }
            let ours = fs::read(&list)
                .ok()
                .is_some_and(|bytes| bytes.starts_with(header.as_bytes()));
            if ours || (!path.exists() && !list.exists()) {
                return (path, list);
            }
        }
        unreachable!("some name is free")
    }

    fn write(&mut self, place: &Place, offset: u64, bytes: &[u8], hash: [u8; 32]) -> Answer {
        let partial = self
            .partials
            .get_mut(&place_key(place))
            .ok_or_else(|| error(FileErrorKind::Other, "the transfer was not prepared"))?;
        if chunk_hash(bytes) != hash {
            return Err(error(
                FileErrorKind::Other,
                "a chunk does not match its hash",
            ));
        }
        let shown = partial.path.display().to_string();
        (|| {
            partial.file.seek(SeekFrom::Start(offset))?;
            partial.file.write_all(bytes)
        })()
        .map_err(|e| io_error(&e, &format!("Cannot write {shown}")))?;
        partial.pending.push(hash);
        if partial.pending.len() >= SYNC_EVERY {
            partial
                .record_pending()
                .map_err(|e| io_error(&e, &format!("Cannot write {shown}")))?;
        }
        Ok(FileAnswer::Written)
    }

    fn finish(&mut self, place: &Place, unpack: bool) -> Answer {
        let key = place_key(place);
        let partial = self
            .partials
            .remove(&key)
            .ok_or_else(|| error(FileErrorKind::Other, "the transfer was not prepared"))?;
        let shown = partial.path.display().to_string();
        partial
            .file
            .sync_all()
            .map_err(|e| io_error(&e, &format!("Cannot write {shown}")))?;
        let target = match place {
            Place::Shared(id) => self.shared_dir()?.join(id.to_string()),
            Place::Download { name, .. } if unpack => {
                let dir = partial
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                drop(partial.file);
                let folder = unpack_into(&partial.path, &dir, name)?;
                let _ = fs::remove_file(&partial.path);
                let _ = fs::remove_file(&partial.list);
                return Ok(FileAnswer::Finished {
                    path: folder.display().to_string(),
                });
            }
            Place::Download { name, .. } => {
                let dir = partial
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                reserve_name(&dir, &names::sanitise(name))
                    .map_err(|e| io_error(&e, &format!("Cannot name {shown}")))?
            }
            Place::Local(_) => {
                return Err(error(FileErrorKind::Other, "a local file is not written"))
            }
        };
        drop(partial.file);
        fs::rename(&partial.path, &target)
            .map_err(|e| io_error(&e, &format!("Cannot name {shown}")))?;
        let _ = fs::remove_file(&partial.list);
        Ok(FileAnswer::Finished {
            path: target.display().to_string(),
        })
    }

    /// Copies `from` to `to` in one pass, hashing chunk by chunk. The copy
    /// is written beside its final name and renamed when whole, so nothing
    /// half-copied is ever offered or saved.
    fn copy(&mut self, from: &Place, to: &Place, stamp: Option<Stamp>, unpack: bool) -> Answer {
        if let (Place::Local(p), Place::Shared(_)) = (from, to) {
            // A folder shared from the console: the pack made when it was
            // looked at (and offered with its size) is what is kept.
            let folder = expand(p);
            if folder.is_dir() {
                if !self.packed.contains_key(&folder) {
                    self.stat(from)?;
                }
                let packed = self.packed.get(&folder).map(|p| p.stamp);
                let answer = if packed.is_some_and(|s| Some(s) == stamp || stamp.is_none()) {
                    self.copy_file(from, to, None, false)
                } else {
                    Err(error(
                        FileErrorKind::Changed,
                        format!("{} changed while it was shared", folder.display()),
                    ))
                };
                self.discard(from);
                return answer;
            }
        }
        self.copy_file(from, to, stamp, unpack)
    }

    fn copy_file(
        &mut self,
        from: &Place,
        to: &Place,
        stamp: Option<Stamp>,
        unpack: bool,
    ) -> Answer {
        let source = self.source(from)?;
        let shown = source.display().to_string();
        let mut input =
            File::open(&source).map_err(|e| io_error(&e, &format!("Cannot read {shown}")))?;
        let size = input.metadata().map(|m| m.len()).unwrap_or(0);
        if let (true, Place::Download { name, .. }) = (unpack, to) {
            // A folder saved from the console: checked, then unpacked.
            let dir = self.download_dir()?.to_path_buf();
            let part_name = format!("{}.part", names::sanitise(name));
            let (part, _) = crate::folder::first_free(&dir, &part_name, |path| {
                OpenOptions::new().write(true).create_new(true).open(path)
            })
            .map_err(|e| io_error(&e, &format!("Cannot save in {}", dir.display())))?;
            let hash = copy_hashing(&mut input, &part, size, stamp, &source);
            let result = hash.and_then(|hash| {
                let folder = unpack_into(&part, &dir, name)?;
                Ok(FileAnswer::Copied {
                    path: folder.display().to_string(),
                    hash,
                })
            });
            let _ = fs::remove_file(&part);
            return result;
        }
        let target = match to {
            Place::Shared(id) => self.shared_dir()?.join(id.to_string()),
            Place::Download { name, .. } => {
                let dir = self.download_dir()?.to_path_buf();
                reserve_name(&dir, &names::sanitise(name))
                    .map_err(|e| io_error(&e, &format!("Cannot save in {}", dir.display())))?
            }
            Place::Local(_) => {
                return Err(error(FileErrorKind::Other, "a local file is not written"))
            }
        };
        let mut part = target.clone().into_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let result = copy_hashing(&mut input, &part, size, stamp, &source);
        let result = result.and_then(|hash| {
            fs::rename(&part, &target)
                .map_err(|e| io_error(&e, &format!("Cannot name {}", target.display())))?;
            Ok(hash)
        });
        match result {
            Ok(hash) => Ok(FileAnswer::Copied {
                path: target.display().to_string(),
                hash,
            }),
            Err(e) => {
                let _ = fs::remove_file(&part);
                if matches!(to, Place::Download { .. }) {
                    // The name reserved for it, still empty.
                    let _ = fs::remove_file(&target);
                }
                Err(e)
            }
        }
    }

    fn discard(&mut self, place: &Place) {
        let key = place_key(place);
        let partial = self.partials.remove(&key);
        match place {
            Place::Shared(id) => {
                if let Ok(dir) = self.shared_dir() {
                    for name in [
                        id.to_string(),
                        format!("{id}.part"),
                        format!("{id}.part.lantalk"),
                    ] {
                        let _ = fs::remove_file(dir.join(name));
                    }
                    self.readers.remove(&dir.join(id.to_string()));
                }
            }
            Place::Download { .. } => {
                if let Some(p) = partial {
                    drop(p.file);
                    let _ = fs::remove_file(&p.path);
                    let _ = fs::remove_file(&p.list);
                }
            }
            Place::Local(p) => {
                // An upload is over: a folder's packed copy goes (the
                // user's own files are never touched).
                let folder = expand(p);
                if let Some(pack) = self.packed.get_mut(&folder) {
                    pack.users -= 1;
                    if pack.users == 0 {
                        let file = pack.file.clone();
                        self.packed.remove(&folder);
                        self.readers.remove(&file);
                        let _ = fs::remove_file(file);
                    }
                }
            }
        }
    }
}

/// Unpacks a downloaded folder `archive` into a new folder for `name` in
/// `dir` (numbered if the name is taken).
fn unpack_into(archive: &Path, dir: &Path, name: &str) -> Result<PathBuf, FileError> {
    let folder = crate::folder::reserve_folder(dir, &names::sanitise(name))
        .map_err(|e| io_error(&e, &format!("Cannot make a folder in {}", dir.display())))?;
    crate::folder::unpack(archive, &folder)
        .map_err(|e| io_error(&e, &format!("Cannot unpack into {}", folder.display())))?;
    Ok(folder)
}

impl Partial {
    /// Syncs what was written, then records its hashes: a hash is never in
    /// the list before its chunk is on the disk.
    fn record_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.sync_data()?;
        let mut list = OpenOptions::new().append(true).open(&self.list)?;
        let mut bytes = Vec::with_capacity(self.pending.len() * 32);
        for h in &self.pending {
            bytes.extend_from_slice(h);
        }
        list.write_all(&bytes)?;
        list.sync_data()?;
        self.pending.clear();
        Ok(())
    }
}

/// Replaces `path` with `bytes` through a temporary file and a rename, so a
/// crash leaves the old list or the new one. (Only this worker writes a
/// partial file's list: no lock is needed.)
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("lantalk-tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

/// The verified chunk hashes a list with `header` holds for a file of
/// `size` bytes; none if it is missing, for another file, or unreadable. A
/// hash cut off by a crash is dropped.
fn read_list(list: &Path, header: &str, size: u64) -> Vec<[u8; 32]> {
    let Ok(bytes) = fs::read(list) else {
        return Vec::new();
    };
    let Some(rest) = bytes.strip_prefix(header.as_bytes()) else {
        return Vec::new();
    };
    let most = lantalk_core::transfer::chunks(size) as usize;
    rest.chunks_exact(32)
        .take(most)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect()
}

/// Copies `input` (`size` bytes, from `source`) into a new file `part`,
/// synced, and answers the whole file's hash ([`file_hash`] of its chunks).
/// If `stamp` is given, the source must still match it afterwards.
fn copy_hashing(
    input: &mut File,
    part: &Path,
    size: u64,
    stamp: Option<Stamp>,
    source: &Path,
) -> Result<[u8; 32], FileError> {
    let shown = part.display().to_string();
    if let Some(free) = free_space(part.parent().unwrap_or(Path::new("."))) {
        if free < size {
            return Err(error(
                FileErrorKind::NoSpace,
                format!(
                    "Not enough space to copy {}: needs {}, {} free",
                    source.display(),
                    lantalk_core::transfer::human_size(size),
                    lantalk_core::transfer::human_size(free)
                ),
            ));
        }
    }
    let mut out =
        File::create(part).map_err(|e| io_error(&e, &format!("Cannot create {shown}")))?;
    let mut hashes = Vec::new();
    let mut buf = vec![0u8; CHUNK as usize];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = input
                .read(&mut buf[filled..])
                .map_err(|e| io_error(&e, &format!("Cannot read {}", source.display())))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        hashes.push(chunk_hash(&buf[..filled]));
        out.write_all(&buf[..filled])
            .map_err(|e| io_error(&e, &format!("Cannot write {shown}")))?;
        if filled < buf.len() {
            break;
        }
    }
    out.sync_all()
        .map_err(|e| io_error(&e, &format!("Cannot write {shown}")))?;
    let now = fs::metadata(source).map(|m| stamp_of(&m)).ok();
    let copied: u64 = out.metadata().map(|m| m.len()).unwrap_or(0);
    if stamp.is_some_and(|s| now != Some(s) || copied != s.size) {
        return Err(error(
            FileErrorKind::Changed,
            format!(
                "{} changed while it was copied: nothing is shared",
                source.display()
            ),
        ));
    }
    Ok(file_hash(&hashes))
}

/// A name in `dir` that no file has, for `name`: `name`, else `name (1)`,
/// `name (2)`... The name is taken (an empty file created) before it is
/// returned, so two downloads finishing at once never pick the same one;
/// renaming over that empty file then gives it its contents.
fn reserve_name(dir: &Path, name: &str) -> io::Result<PathBuf> {
    crate::folder::first_free(dir, name, |path| {
        OpenOptions::new().write(true).create_new(true).open(path)
    })
    .map(|(path, _)| path)
}

/// Bytes free for us on the file system holding `dir`, where the platform
/// says (elsewhere a full disk shows as a failed write, reported the same).
#[cfg(unix)]
fn free_space(dir: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> Option<u64> {
    None
}

// ── The server's list of offers ─────────────────────────────────────────────

#[derive(Serialize, Deserialize)]
struct OffersFile {
    version: u32,
    files: Vec<OfferEntry>,
}

#[derive(Serialize, Deserialize)]
struct OfferEntry {
    id: u64,
    name: String,
    size: u64,
    from: String,
    /// `#room`, or `@user`.
    to: String,
    sha256: Option<String>,
    at_ms: i64,
    modified_ms: i64,
    /// A packed folder (absent in lists written before folders were sent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    folder: bool,
}

/// Writes the list of offers (atomically, under a lock).
pub fn save_offers(path: &Path, files: &[SharedFile]) -> io::Result<()> {
    let file = OffersFile {
        version: 1,
        files: files
            .iter()
            .map(|f| OfferEntry {
                id: f.id.0,
                name: f.name.clone(),
                size: f.size,
                from: f.from.clone(),
                to: match &f.to {
                    Audience::Room(r) => r.clone(),
                    Audience::User(u) => format!("@{u}"),
                },
                sha256: f.hash.map(|h| hex(&h)),
                at_ms: f.at_ms,
                modified_ms: f.stamp.modified_ms,
                folder: f.folder,
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    bytes.push(b'\n');
    crate::files::write_atomic(path, &bytes)
}

/// Reads the list of offers; none if there is no list yet. A damaged list
/// is an error, not an empty list: the files it names would be lost.
pub fn load_offers(path: &Path) -> Result<Vec<SharedFile>, String> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let damaged = |why: String| {
        format!("the list of shared files is damaged ({why}). Fix it or move it aside (the files in files/ are then forgotten).")
    };
    let file: OffersFile = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    if file.version != 1 {
        return Err(format!(
            "the list of shared files was written by a newer LanTalk (version {}); use that \
             version, or move the list aside",
            file.version
        ));
    }
    file.files
        .into_iter()
        .map(|e| {
            let hash = match &e.sha256 {
                None => None,
                Some(h) => Some(
                    unhex::<32>(h).ok_or_else(|| damaged(format!("bad hash for file {}", e.id)))?,
                ),
            };
            let to = match e.to.strip_prefix('@') {
                Some(user) => Audience::User(user.to_string()),
                None => Audience::Room(e.to.clone()),
            };
            Ok(SharedFile {
                id: FileId(e.id),
                name: names::sanitise(&e.name),
                size: e.size,
                from: e.from,
                to,
                hash,
                at_ms: e.at_ms,
                stamp: Stamp {
                    size: e.size,
                    modified_ms: e.modified_ms,
                },
                folder: e.folder,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lantalk_core::transfer::OpId;

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("lantalk-transfer-io-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn disk(dir: &Path) -> Disk {
        Disk {
            shared_dir: Some(dir.join("files")),
            download_dir: Some(dir.join("downloads")),
            readers: HashMap::new(),
            partials: HashMap::new(),
            packed: HashMap::new(),
            pack_dir: None,
        }
    }

    fn run(d: &mut Disk, r: FileRequest) -> Answer {
        d.carry_out(r).expect("an answer")
    }

    fn contents(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + i / 777) as u8).collect()
    }

    /// Writes `data` chunk by chunk into `place`, from chunk `from`.
    fn write_all(d: &mut Disk, place: &Place, data: &[u8], from: usize) {
        for (i, chunk) in data.chunks(CHUNK as usize).enumerate().skip(from) {
            let answer = run(
                d,
                FileRequest::Write {
                    op: OpId(1),
                    place: place.clone(),
                    offset: i as u64 * CHUNK,
                    bytes: chunk.to_vec(),
                    hash: chunk_hash(chunk),
                },
            );
            assert_eq!(answer, Ok(FileAnswer::Written));
        }
    }

    #[test]
    fn a_download_is_prepared_written_finished_and_never_overwrites() {
        let dir = temp("download");
        let mut d = disk(&dir);
        let data = contents(2 * CHUNK as usize + 10);
        let place = Place::Download {
            id: FileId(7),
            name: "../../etc/passwd".into(),
        };
        let prepared = run(
            &mut d,
            FileRequest::Prepare {
                op: OpId(1),
                place: place.clone(),
                size: data.len() as u64,
                whole: None,
            },
        );
        assert_eq!(prepared, Ok(FileAnswer::Prepared { verified: vec![] }));
        assert!(
            dir.join("downloads/passwd.part").exists(),
            "inside the folder, named safely"
        );
        write_all(&mut d, &place, &data, 0);
        let Ok(FileAnswer::Finished { path }) = run(
            &mut d,
            FileRequest::Finish {
                op: OpId(2),
                place: place.clone(),
                unpack: false,
            },
        ) else {
            panic!("finished")
        };
        assert_eq!(PathBuf::from(&path), dir.join("downloads/passwd"));
        assert_eq!(fs::read(&path).unwrap(), data);
        assert!(!dir.join("downloads/passwd.part").exists());
        assert!(!dir.join("downloads/passwd.part.lantalk").exists());

        // The same again: a name of its own.
        run(
            &mut d,
            FileRequest::Prepare {
                op: OpId(3),
                place: place.clone(),
                size: data.len() as u64,
                whole: None,
            },
        )
        .unwrap();
        write_all(&mut d, &place, &data, 0);
        let Ok(FileAnswer::Finished { path }) = run(
            &mut d,
            FileRequest::Finish {
                op: OpId(4),
                place,
                unpack: false,
            },
        ) else {
            panic!("finished")
        };
        assert_eq!(PathBuf::from(&path), dir.join("downloads/passwd (1)"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_interrupted_transfer_resumes_after_its_recorded_chunks() {
        let dir = temp("resume");
        let data = contents(3 * CHUNK as usize + 5);
        let place = Place::Shared(FileId(3));
        {
            let mut d = disk(&dir);
            fs::create_dir_all(dir.join("files")).unwrap();
            run(
                &mut d,
                FileRequest::Prepare {
                    op: OpId(1),
                    place: place.clone(),
                    size: data.len() as u64,
                    whole: None,
                },
            )
            .unwrap();
            write_all(&mut d, &place, &data[..2 * CHUNK as usize], 0);
            // The program stops: its pending hashes are recorded when the
            // same file is prepared again (here, by a new worker they are
            // lost, but the bytes are there: nothing claims more).
            d.partials
                .get_mut(&place_key(&place))
                .unwrap()
                .record_pending()
                .unwrap();
        }
        // Junk after the verified chunks (a chunk half written).
        let part = dir.join("files/3.part");
        let mut f = OpenOptions::new().append(true).open(&part).unwrap();
        f.write_all(b"half a chunk").unwrap();
        drop(f);
        let mut d = disk(&dir);
        let Ok(FileAnswer::Prepared { verified }) = run(
            &mut d,
            FileRequest::Prepare {
                op: OpId(2),
                place: place.clone(),
                size: data.len() as u64,
                whole: None,
            },
        ) else {
            panic!("prepared")
        };
        assert_eq!(verified.len(), 2);
        assert_eq!(
            fs::metadata(&part).unwrap().len(),
            2 * CHUNK,
            "cut after the verified chunks"
        );
        write_all(&mut d, &place, &data, 2);
        run(
            &mut d,
            FileRequest::Finish {
                op: OpId(3),
                place,
                unpack: false,
            },
        )
        .unwrap();
        assert_eq!(fs::read(dir.join("files/3")).unwrap(), data);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Two uploads of one folder share one packed copy, which stays until
    /// the last one ends.
    #[test]
    fn two_sends_of_one_folder_share_its_pack() {
        let dir = temp("twosends");
        let src = dir.join("photos");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.txt"), b"alpha").unwrap();
        let mut d = disk(&dir);
        let folder = Place::Local(src.display().to_string());
        let stat = |op| FileRequest::Stat {
            op: OpId(op),
            place: folder.clone(),
        };
        let Ok(FileAnswer::Stat { stamp, .. }) = run(&mut d, stat(1)) else {
            panic!()
        };
        let Ok(FileAnswer::Stat { .. }) = run(&mut d, stat(2)) else {
            panic!()
        };
        // The first upload ends.
        d.carry_out(FileRequest::Discard {
            place: folder.clone(),
        });
        // The second reads on.
        let read = run(
            &mut d,
            FileRequest::Read {
                op: OpId(3),
                place: folder.clone(),
                offset: 0,
                len: 512,
                stamp: Some(stamp),
            },
        );
        assert!(
            matches!(read, Ok(FileAnswer::Data(_))),
            "second upload broken: {read:?}"
        );
        let pack = d.packed[&src].file.clone();
        d.carry_out(FileRequest::Discard { place: folder });
        assert!(!pack.exists(), "gone with the last upload");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A packed folder is readable by its user only, in a folder of its own
    /// that goes with the worker.
    #[cfg(unix)]
    #[test]
    fn a_pack_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("perm");
        let src = dir.join("secret");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("key.txt"), b"hunter2").unwrap();
        let mut d = disk(&dir);
        let folder = Place::Local(src.display().to_string());
        run(
            &mut d,
            FileRequest::Stat {
                op: OpId(1),
                place: folder,
            },
        )
        .unwrap();
        let pack = d.packed[&src].file.clone();
        let mode = fs::metadata(&pack).unwrap().permissions().mode();
        let dmode = fs::metadata(pack.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        drop(d);
        assert!(!pack.exists(), "removed with the worker");
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(dmode & 0o077, 0, "other users can enter the pack folder");
        let _ = mode;
    }

    /// The console's `/send` of a folder keeps the pack its offer was sized
    /// by, even if the folder changes between the look and the copy.
    #[test]
    fn the_console_keeps_the_pack_it_offered() {
        let dir = temp("consolecopy");
        fs::create_dir_all(dir.join("files")).unwrap();
        let src = dir.join("logs");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.log"), b"alpha").unwrap();
        let mut d = disk(&dir);
        let folder = Place::Local(src.display().to_string());
        let Ok(FileAnswer::Stat { stamp, .. }) = run(
            &mut d,
            FileRequest::Stat {
                op: OpId(1),
                place: folder.clone(),
            },
        ) else {
            panic!()
        };
        // Written to between the look and the copy.
        fs::write(src.join("b.log"), vec![0u8; 10_000]).unwrap();
        let got = run(
            &mut d,
            FileRequest::Copy {
                op: OpId(2),
                from: folder,
                to: Place::Shared(FileId(9)),
                stamp: Some(stamp),
                unpack: false,
            },
        );
        let kept = fs::metadata(dir.join("files/9"))
            .map(|m| m.len())
            .unwrap_or(0);
        let _ = fs::remove_dir_all(&dir);
        assert!(
            got.is_err() || kept == stamp.size,
            "offered as {} bytes, kept {kept} bytes: {got:?}",
            stamp.size
        );
    }

    /// A partial download from another server (same file id and size,
    /// other contents) is not resumed: the list is bound to the file's hash.
    #[test]
    fn a_partial_copy_of_other_contents_is_not_resumed() {
        let dir = temp("contents");
        let place = Place::Download {
            id: FileId(3),
            name: "x.bin".into(),
        };
        let prepare = |op, whole| FileRequest::Prepare {
            op: OpId(op),
            place: place.clone(),
            size: 2 * CHUNK,
            whole: Some(whole),
        };
        let mut d = disk(&dir);
        run(&mut d, prepare(1, [1; 32])).unwrap();
        let chunk = vec![9u8; CHUNK as usize];
        run(
            &mut d,
            FileRequest::Write {
                op: OpId(2),
                place: place.clone(),
                offset: 0,
                bytes: chunk.clone(),
                hash: chunk_hash(&chunk),
            },
        )
        .unwrap();
        // The worker stops (its pending hashes are recorded as it prepares
        // again); a new one resumes the same file, but not another.
        run(&mut d, prepare(3, [1; 32])).unwrap();
        let mut d = disk(&dir);
        assert_eq!(
            run(&mut d, prepare(4, [1; 32])),
            Ok(FileAnswer::Prepared {
                verified: vec![chunk_hash(&chunk)]
            })
        );
        let mut d = disk(&dir);
        assert_eq!(
            run(&mut d, prepare(5, [2; 32])),
            Ok(FileAnswer::Prepared { verified: vec![] })
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_files_partial_copy_is_left_alone() {
        let dir = temp("other");
        let mut d = disk(&dir);
        let a = Place::Download {
            id: FileId(1),
            name: "x.txt".into(),
        };
        let b = Place::Download {
            id: FileId(2),
            name: "x.txt".into(),
        };
        run(
            &mut d,
            FileRequest::Prepare {
                op: OpId(1),
                place: a.clone(),
                size: 5,
                whole: None,
            },
        )
        .unwrap();
        run(
            &mut d,
            FileRequest::Prepare {
                op: OpId(2),
                place: b.clone(),
                size: 6,
                whole: None,
            },
        )
        .unwrap();
        write_all(&mut d, &a, b"aaaaa", 0);
        write_all(&mut d, &b, b"bbbbbb", 0);
        let Ok(FileAnswer::Finished { path: pb }) = run(
            &mut d,
            FileRequest::Finish {
                op: OpId(3),
                place: b,
                unpack: false,
            },
        ) else {
            panic!()
        };
        let Ok(FileAnswer::Finished { path: pa }) = run(
            &mut d,
            FileRequest::Finish {
                op: OpId(4),
                place: a,
                unpack: false,
            },
        ) else {
            panic!()
        };
        assert_eq!(fs::read(&pa).unwrap(), b"aaaaa");
        assert_eq!(fs::read(&pb).unwrap(), b"bbbbbb");
        assert_ne!(pa, pb);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_changed_since_it_was_looked_at_is_refused() {
        let dir = temp("changed");
        let mut d = disk(&dir);
        let path = dir.join("notes.txt");
        fs::write(&path, b"first").unwrap();
        let place = Place::Local(path.display().to_string());
        let Ok(FileAnswer::Stat { stamp, name, .. }) = run(
            &mut d,
            FileRequest::Stat {
                op: OpId(1),
                place: place.clone(),
            },
        ) else {
            panic!()
        };
        assert_eq!(name, "notes.txt");
        assert_eq!(
            run(
                &mut d,
                FileRequest::Read {
                    op: OpId(2),
                    place: place.clone(),
                    offset: 1,
                    len: 3,
                    stamp: Some(stamp)
                }
            ),
            Ok(FileAnswer::Data(b"irs".to_vec()))
        );
        fs::write(&path, b"second, longer").unwrap();
        let Err(e) = run(
            &mut d,
            FileRequest::Read {
                op: OpId(3),
                place,
                offset: 0,
                len: 3,
                stamp: Some(stamp),
            },
        ) else {
            panic!()
        };
        assert_eq!(e.kind, FileErrorKind::Changed);
        // A folder is packed, read in its place, and its packed copy goes
        // when the upload is over; the folder itself stays.
        let folder = Place::Local(dir.display().to_string());
        let Ok(FileAnswer::Stat {
            stamp,
            folder: true,
            ..
        }) = run(
            &mut d,
            FileRequest::Stat {
                op: OpId(4),
                place: folder.clone(),
            },
        )
        else {
            panic!("a folder is packed")
        };
        let pack = d.packed[&dir].file.clone();
        assert_eq!(fs::metadata(&pack).unwrap().len(), stamp.size);
        let Ok(FileAnswer::Data(head)) = run(
            &mut d,
            FileRequest::Read {
                op: OpId(6),
                place: folder.clone(),
                offset: 0,
                len: 512,
                stamp: Some(stamp),
            },
        ) else {
            panic!("the packed copy is read")
        };
        assert!(head.starts_with(b"notes.txt"), "a tar header first");
        d.carry_out(FileRequest::Discard { place: folder });
        assert!(!pack.exists());
        assert!(path.exists());
        let Err(e) = run(
            &mut d,
            FileRequest::Stat {
                op: OpId(5),
                place: Place::Local("/no/such".into()),
            },
        ) else {
            panic!()
        };
        assert_eq!(e.kind, FileErrorKind::NotFound);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn offers_round_trip_and_damage_is_an_error() {
        let dir = temp("offers");
        let path = dir.join("files.json");
        assert_eq!(load_offers(&path), Ok(Vec::new()));
        let files = vec![
            SharedFile {
                id: FileId(1),
                name: "a.pdf".into(),
                size: 10,
                from: "ann".into(),
                to: Audience::Room("#team".into()),
                hash: Some([7; 32]),
                at_ms: 5,
                stamp: Stamp {
                    size: 10,
                    modified_ms: 9,
                },
                folder: false,
            },
            SharedFile {
                id: FileId(2),
                name: "b".into(),
                size: 0,
                from: "bob".into(),
                to: Audience::User("ann".into()),
                hash: None,
                at_ms: 6,
                stamp: Stamp {
                    size: 0,
                    modified_ms: 1,
                },
                folder: false,
            },
        ];
        save_offers(&path, &files).unwrap();
        assert_eq!(load_offers(&path), Ok(files));
        fs::write(&path, b"{\"version\": 1, \"files\": [").unwrap();
        assert!(load_offers(&path).unwrap_err().contains("damaged"));
        let _ = fs::remove_dir_all(&dir);
    }
}
