//! Folders sent as one file: packed into a tar stream on the sender's side,
//! unpacked on the receiver's.
//!
//! A folder travels as one offer, one id and one stream of chunks, so it is
//! checked, resumed and kept by the server exactly like a file. tar is the
//! format because every platform can open one by hand if it must, and the
//! `tar` crate reads and writes it without our own parser.
//!
//! Packing is deterministic (entries sorted by name, owner and mode fixed,
//! each file's own modification time): the same folder packs to the same
//! bytes, so a `/send` of it again resumes the upload.
//!
//! Unpacking trusts nothing in the stream: only regular files and folders
//! are made (links and devices are skipped), every path component is made
//! safe with the same rules as a file name ([`names::sanitise`], leading
//! dots kept), `..` and drive letters are refused, absolute paths are taken
//! as relative, the depth, the number of entries and the size of header
//! entries are bounded, and nothing is overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use lantalk_core::transfer::names;

/// Most entries unpacked from one folder.
const MAX_ENTRIES: usize = 100_000;
/// Deepest path unpacked.
const MAX_DEPTH: usize = 64;

/// Longest GNU long-name or PAX header entry accepted: the tar crate reads
/// such an entry whole into memory before the entry it names.
const MAX_META_ENTRY: u64 = 64 * 1024;

/// What packing a folder gave: a digest of every entry's path, kind, size
/// and modification time. It stands for the folder in the offer's stamp, so
/// a resumed upload goes on only from the very same stream (a renamed file
/// keeps the size and the newest time, not the digest).
pub struct Packed {
    pub identity: i64,
}

/// Packs `folder` (its files and subfolders, not following links) into a
/// new tar file at `out`.
pub fn pack(folder: &Path, out: &Path) -> io::Result<Packed> {
    let file = File::create(out)?;
    let mut builder = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, file));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let mut listing: Vec<u8> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = folder.join(&rel);
        let mut entries: Vec<(String, fs::DirEntry)> = fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // Subfolders are visited after this folder's files, in name order.
        let mut subfolders = Vec::new();
        for (name, entry) in entries {
            let kind = entry.file_type()?;
            let path = rel.join(&name);
            if kind.is_dir() {
                builder.append_dir(&path, entry.path())?;
                listing.extend_from_slice(format!("d {}\0", path.display()).as_bytes());
                subfolders.push(path);
            } else if kind.is_file() {
                let mut f = File::open(entry.path())?;
                let meta = f.metadata()?;
                let ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                listing.extend_from_slice(
                    format!("f {} {} {ms}\0", path.display(), meta.len()).as_bytes(),
                );
                let mut header = tar::Header::new_gnu();
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
                header.set_mtime((ms / 1000).max(0) as u64);
                header.set_size(meta.len());
                // A file that shrinks while it is packed is an error (the
                // stream would not match its header), not a short entry.
                builder.append_data(&mut header, &path, (&mut f).take(meta.len()))?;
            }
            // Links, sockets and devices are not sent.
        }
        stack.extend(subfolders.into_iter().rev());
    }
    let mut writer = builder.into_inner()?;
    io::Write::flush(&mut writer)?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    let digest = lantalk_core::transfer::chunk_hash(&listing);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Ok(Packed {
        identity: (u64::from_be_bytes(first) >> 1) as i64,
    })
}

/// What unpacking made.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: usize,
    /// Entries left out: links, devices, unsafe paths.
    pub skipped: usize,
}

/// Unpacks the tar file `archive` into `dest` (an empty folder made for
/// it).
pub fn unpack(archive: &Path, dest: &Path) -> io::Result<Unpacked> {
    refuse_huge_headers(archive)?;
    let mut tar = tar::Archive::new(io::BufReader::with_capacity(1 << 20, File::open(archive)?));
    let mut done = Unpacked::default();
    for (n, entry) in tar.entries()?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(io::Error::other(format!(
                "more than {MAX_ENTRIES} entries in one folder"
            )));
        }
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = safe_path(&String::from_utf8_lossy(&raw)) else {
            done.skipped += 1;
            continue;
        };
        let target = dest.join(&rel);
        if kind.is_dir() {
            fs::create_dir_all(&target)?;
        } else if kind.is_file() {
            let parent = target.parent().unwrap_or(dest);
            fs::create_dir_all(parent)?;
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut out = create_unique(parent, &name)?;
            io::copy(&mut entry, &mut out)?;
            out.sync_all()?;
            done.files += 1;
        } else {
            done.skipped += 1;
        }
    }
    Ok(done)
}

/// Looks through `archive` (seeking past file data) for long-name and PAX
/// header entries too large to hold: the tar crate would read one whole into
/// memory, and a hostile stream could claim gigabytes.
fn refuse_huge_headers(archive: &Path) -> io::Result<()> {
    let mut tar = tar::Archive::new(File::open(archive)?);
    for (n, entry) in tar.entries_with_seek()?.raw(true).enumerate() {
        if n >= 2 * MAX_ENTRIES {
            return Err(io::Error::other(format!(
                "more than {MAX_ENTRIES} entries in one folder"
            )));
        }
        let entry = entry?;
        let kind = entry.header().entry_type();
        let meta = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if meta && entry.size() > MAX_META_ENTRY {
            return Err(io::Error::other(format!(
                "a header entry of {} bytes in the folder: refused",
                entry.size()
            )));
        }
    }
    Ok(())
}

/// A path from a stream, made safe: each part sanitised like a file name,
/// `.` dropped; `None` for `..`, an absolute path, or one too deep.
fn safe_path(raw: &str) -> Option<PathBuf> {
    // Both separators: a folder packed on Windows uses either.
    let mut out = PathBuf::new();
    let mut depth = 0;
    for part in raw.split(['/', '\\']) {
        match Path::new(part).components().next() {
            None | Some(Component::CurDir) => continue,
            Some(Component::ParentDir | Component::RootDir | Component::Prefix(_)) => return None,
            Some(Component::Normal(_)) => {}
        }
        if part.contains(':') && out.as_os_str().is_empty() && part.len() == 2 {
            // `C:` at the start: a Windows drive.
            return None;
        }
        // A name inside a folder keeps its leading dots (`.git`,
        // `.gitignore`): the folder it lands in is new, so nothing hidden
        // appears among the user's own files.
        let dots = part.len() - part.trim_start_matches('.').len();
        let rest = &part[dots..];
        if rest.is_empty() {
            return None;
        }
        out.push(format!("{}{}", &part[..dots], names::sanitise(rest)));
        depth += 1;
        if depth > MAX_DEPTH {
            return None;
        }
    }
    (depth > 0).then_some(out)
}

/// Creates `name` in `dir`, or `name (1)` and so on if it exists.
fn create_unique(dir: &Path, name: &str) -> io::Result<File> {
    first_free(dir, name, |path| {
        OpenOptions::new().write(true).create_new(true).open(path)
    })
    .map(|(_, f)| f)
}

/// Makes a new, empty folder in `dir` named `name`, or `name (1)` and so
/// on: two downloads of one folder never share one.
pub fn reserve_folder(dir: &Path, name: &str) -> io::Result<PathBuf> {
    first_free(dir, name, |p| fs::create_dir(p)).map(|(path, ())| path)
}

/// Makes `name` in `dir` with `make` (which must fail with
/// `AlreadyExists` when it is taken, atomically: `create_new`,
/// `create_dir`), else `name (1)`, `name (2)`...: what it made, and where.
pub fn first_free<T>(
    dir: &Path,
    name: &str,
    make: impl Fn(&Path) -> io::Result<T>,
) -> io::Result<(PathBuf, T)> {
    for n in 0..10_000 {
        let candidate = if n == 0 {
            name.to_string()
        } else {
            names::numbered(name, n)
        };
        let path = dir.join(candidate);
        match make(&path) {
            Ok(made) => return Ok((path, made)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!("too many named like {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lantalk-folder-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_folder_packs_the_same_twice_and_unpacks_whole() {
        let dir = temp("pack");
        let src = dir.join("photos");
        fs::create_dir_all(src.join("2026/dec")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("a.txt"), b"alpha").unwrap();
        fs::write(src.join("2026/dec/b c.jpg"), vec![7u8; 300_000]).unwrap();
        let (one, two) = (dir.join("one.tar"), dir.join("two.tar"));
        pack(&src, &one).unwrap();
        pack(&src, &two).unwrap();
        assert_eq!(fs::read(&one).unwrap(), fs::read(&two).unwrap());

        let dest = reserve_folder(&dir, "photos").unwrap();
        assert_eq!(dest, dir.join("photos (1)"), "the original is kept");
        let got = unpack(&one, &dest).unwrap();
        assert_eq!(
            got,
            Unpacked {
                files: 2,
                skipped: 0
            }
        );
        assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"alpha");
        assert_eq!(
            fs::read(dest.join("2026/dec/b c.jpg")).unwrap(),
            vec![7u8; 300_000]
        );
        assert!(dest.join("empty").is_dir());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn hostile_paths_stay_inside() {
        assert_eq!(safe_path("a/b.txt"), Some(PathBuf::from("a").join("b.txt")));
        assert_eq!(safe_path("./a//b"), Some(PathBuf::from("a").join("b")));
        assert_eq!(safe_path("../etc/passwd"), None);
        assert_eq!(safe_path("a/../../x"), None);
        assert_eq!(
            safe_path("/etc/passwd"),
            Some(PathBuf::from("etc").join("passwd"))
        );
        assert_eq!(safe_path("C:/Windows/x"), None);
        assert_eq!(
            safe_path(".git/config"),
            Some(PathBuf::from(".git").join("config"))
        );
        assert_eq!(
            safe_path("a/.gitignore"),
            Some(PathBuf::from("a").join(".gitignore"))
        );
        assert_eq!(safe_path("a/..."), None);
        assert_eq!(safe_path("a\\..\\x"), None);
        assert_eq!(safe_path(""), None);
        assert_eq!(
            safe_path("dir/CON"),
            Some(PathBuf::from("dir").join(names::sanitise("CON")))
        );
        assert_eq!(safe_path(&"d/".repeat(100)), None);

        // A stream written by hand with a traversal, a link and an absolute
        // path: only the safe file comes out, inside.
        let dir = temp("hostile");
        let archive = dir.join("evil.tar");
        {
            let mut b = tar::Builder::new(File::create(&archive).unwrap());
            let mut add = |path: &[u8], kind: tar::EntryType, data: &[u8]| {
                let mut h = tar::Header::new_old();
                h.as_old_mut().name[..path.len()].copy_from_slice(path);
                h.set_entry_type(kind);
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append(&h, data).unwrap();
            };
            add(b"../escape.txt", tar::EntryType::Regular, b"no");
            add(b"link", tar::EntryType::Symlink, b"");
            add(b"ok/\x1b[31mred.txt", tar::EntryType::Regular, b"yes");
            b.finish().unwrap();
        }
        let dest = reserve_folder(&dir, "in").unwrap();
        let got = unpack(&archive, &dest).unwrap();
        assert_eq!(
            got,
            Unpacked {
                files: 1,
                skipped: 2
            }
        );
        assert!(!dir.join("escape.txt").exists());
        let inside: Vec<String> = fs::read_dir(dest.join("ok"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(inside.len(), 1);
        assert!(!inside[0].contains('\x1b'), "{inside:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A GNU long-name entry claiming 400 MiB is refused before the tar
    /// crate would read it whole into memory.
    #[test]
    fn a_huge_header_entry_is_refused_without_reading_it() {
        fn hwm_kb() -> u64 {
            let s = fs::read_to_string("/proc/self/status").unwrap();
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap()
        }
        let dir = temp("longname");
        let archive = dir.join("bomb.tar");
        let size: u64 = 400 << 20;
        {
            let mut f = File::create(&archive).unwrap();
            let mut h = tar::Header::new_gnu();
            h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            h.set_entry_type(tar::EntryType::GNULongName);
            h.set_size(size);
            h.set_mode(0o644);
            h.set_cksum();
            io::Write::write_all(&mut f, h.as_bytes()).unwrap();
            // Sparse body: the file is 400 MiB of zeros without using disk.
            f.set_len(512 + size).unwrap();
            let mut h2 = tar::Header::new_gnu();
            h2.set_path("x").unwrap();
            h2.set_size(0);
            h2.set_cksum();
            use std::io::{Seek, SeekFrom, Write};
            f.seek(SeekFrom::End(0)).unwrap();
            f.write_all(h2.as_bytes()).unwrap();
            f.write_all(&[0u8; 1024]).unwrap();
        }
        let before = hwm_kb();
        let dest = reserve_folder(&dir, "in").unwrap();
        let got = unpack(&archive, &dest);
        let after = hwm_kb();
        let _ = fs::remove_dir_all(&dir);
        assert!(got.is_err(), "{got:?}");
        assert!(
            after - before < 64 * 1024,
            "unpack buffered {} MiB",
            (after - before) / 1024
        );
    }

    /// Renaming a file inside a folder keeps the packed size and the newest
    /// modification time, but not the pack's identity (the offer's stamp),
    /// so an interrupted upload never resumes onto a different stream.
    #[test]
    fn a_renamed_file_changes_the_folders_identity() {
        let dir = temp("rename");
        let src = dir.join("photos");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.jpg"), vec![1u8; 3 * 1024 * 1024]).unwrap();
        fs::write(src.join("b.jpg"), vec![2u8; 3 * 1024 * 1024]).unwrap();
        let one = dir.join("one.tar");
        let p1 = pack(&src, &one).unwrap();
        fs::rename(src.join("a.jpg"), src.join("z.jpg")).unwrap();
        let two = dir.join("two.tar");
        let p2 = pack(&src, &two).unwrap();
        let (s1, s2) = (
            fs::metadata(&one).unwrap().len(),
            fs::metadata(&two).unwrap().len(),
        );
        let same = fs::read(&one).unwrap() == fs::read(&two).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(s1, s2);
        assert!(!same);
        assert_ne!(p1.identity, p2.identity);
    }

    /// Dot files keep their names, beside a file named like them without
    /// the dot.
    #[test]
    fn dot_files_keep_their_names() {
        let dir = temp("dots");
        let src = dir.join("proj");
        fs::create_dir_all(src.join(".git")).unwrap();
        fs::write(src.join(".gitignore"), b"x").unwrap();
        fs::write(src.join("gitignore"), b"y").unwrap();
        let archive = dir.join("p.tar");
        pack(&src, &archive).unwrap();
        let dest = reserve_folder(&dir, "out").unwrap();
        unpack(&archive, &dest).unwrap();
        let mut names: Vec<String> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(names, [".git", ".gitignore", "gitignore"]);
    }
}
