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
//! safe with the same rules as a file name ([`names::sanitise`]), `..` and
//! absolute paths are refused, the depth and the number of entries are
//! bounded, and nothing is overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use lantalk_core::transfer::names;

/// Most entries unpacked from one folder.
const MAX_ENTRIES: usize = 100_000;
/// Deepest path unpacked.
const MAX_DEPTH: usize = 64;

/// What packing a folder gave: the newest modification time in it, for the
/// offer's stamp.
pub struct Packed {
    pub newest_ms: i64,
}

/// Packs `folder` (its files and subfolders, not following links) into a
/// new tar file at `out`.
pub fn pack(folder: &Path, out: &Path) -> io::Result<Packed> {
    let file = File::create(out)?;
    let mut builder = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, file));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let mut newest_ms = 0i64;
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
                subfolders.push(path);
            } else if kind.is_file() {
                let mut f = File::open(entry.path())?;
                let meta = f.metadata()?;
                let ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                newest_ms = newest_ms.max(ms);
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
    Ok(Packed { newest_ms })
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
        out.push(names::sanitise(part));
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
}
