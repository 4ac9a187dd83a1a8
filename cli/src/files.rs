//! Files the program keeps: where they live, and writing them safely.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lantalk_core::BanList;

/// The data directory: the one given, else the platform's user data directory
/// (`~/.local/share/lantalk`, `~/Library/Application Support/lantalk`,
/// `%APPDATA%\lantalk`), else the current directory. Created if missing.
pub fn data_dir(given: Option<&Path>) -> io::Result<PathBuf> {
    let dir = match given {
        Some(dir) => dir.to_path_buf(),
        None => dirs::data_dir()
            .map(|d| d.join("lantalk"))
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    fs::create_dir_all(&dir).map_err(|e| annotate(e, &dir, "create the data directory"))?;
    Ok(dir)
}

/// Replaces `path` with `bytes` so that a crash or power cut leaves either the
/// old or the new contents, never a mix: write a temporary file beside it,
/// flush it to disk, then rename it over the original. Writers (in this and
/// other processes) take turns under [`lock`], so a whole-file write from
/// one never interleaves with another's read-modify-write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let _lock = lock(path)?;
    write_atomic_mode(path, bytes, false)
}

/// [`write_atomic`] for secrets: readable by the owner only (on Unix; other
/// systems keep files in per-user directories).
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let _lock = lock(path)?;
    write_atomic_mode(path, bytes, true)
}

/// Read-modify-write of a shared file: under [`lock`], reads `path` (`None`
/// when it does not exist), and when `change` returns new contents writes
/// them atomically (owner-only when `private`). Several programs share one
/// data directory (four clients pinning at once, say); without the lock each
/// would write back what it read before the others' changes, and only the
/// last writer's change would survive.
pub fn update<T>(
    path: &Path,
    private: bool,
    change: impl FnOnce(Option<Vec<u8>>) -> Result<(Option<Vec<u8>>, T), String>,
) -> Result<T, String> {
    let _lock = lock(path).map_err(|e| e.to_string())?;
    let current = match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let (new, value) = change(current)?;
    if let Some(new) = new {
        write_atomic_mode(path, &new, private)
            .map_err(|e| format!("cannot save {}: {e}", path.display()))?;
    }
    Ok(value)
}

/// An advisory lock on a shared file, held until dropped.
pub struct FileLock {
    _file: File,
}

/// Takes the exclusive advisory lock for `path`, waiting for other holders.
///
/// The lock is on a sibling file (`known_servers.lock` for `known_servers`),
/// never on `path` itself: writes replace `path` by renaming a new file over
/// it, and a lock on the old file would not stop a writer who opened the new
/// one. The lock file stays (deleting it would race with a waiter who has it
/// open). Where the platform has no file locks (`Unsupported`), writers go
/// unserialised rather than not at all.
pub fn lock(path: &Path) -> io::Result<FileLock> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let lock_path = path.with_file_name(format!("{name}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| annotate(e, &lock_path, "open the lock file"))?;
    match file.lock() {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
        Err(e) => return Err(annotate(e, &lock_path, "lock")),
    }
    Ok(FileLock { _file: file })
}

fn write_atomic_mode(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // Unique per process and call, so that even unserialised writers (no
    // file locks on this platform) never write into each other's temp file.
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes the rename itself durable. Only possible (and needed) on Unix.
#[cfg(unix)]
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}

/// Loads the ban list. A missing file is an empty list; an unreadable or
/// corrupt one is an error that says what to do, because treating it as empty
/// would quietly let banned people back in.
pub fn load_bans(path: &Path) -> Result<BanList, String> {
    match fs::read(path) {
        Ok(bytes) => BanList::parse(&bytes).map_err(|e| {
            format!(
                "the ban list {} is corrupt: {e}.\n\
                 Fix it (a JSON list of IP addresses, like [\"192.168.1.22\"]), \
                 or move it aside to start with no bans.",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BanList::new()),
        Err(e) => Err(format!(
            "cannot read the ban list {}: {e}.\nCheck its permissions, or move it aside \
             to start with no bans.",
            path.display()
        )),
    }
}

fn annotate(e: io::Error, path: &Path, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lantalk-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let d = temp_dir("atomic");
        let p = d.join("bans.json");
        write_atomic(&p, b"[]").unwrap();
        write_atomic(&p, b"[\n  \"10.0.0.1\"\n]").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"[\n  \"10.0.0.1\"\n]");
        let mut names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["bans.json", "bans.json.lock"]);
        let _ = fs::remove_dir_all(&d);
    }

    /// Read-modify-writes from many threads (each its own lock handle, as
    /// separate processes would have) all land.
    #[test]
    fn concurrent_updates_are_serialised() {
        let d = temp_dir("update");
        let p = d.join("list");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    update(&p, false, |cur| {
                        let mut v = cur.unwrap_or_default();
                        // Widen the window between read and write.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        v.extend_from_slice(format!("{i}\n").as_bytes());
                        Ok((Some(v), ()))
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 8, "{text}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn corrupt_bans_are_an_error_naming_the_file() {
        let d = temp_dir("corrupt");
        let p = d.join("bans.json");
        assert!(load_bans(&p).unwrap().is_empty());
        fs::write(&p, b"[\"10.0.0.1\", oops").unwrap();
        let err = load_bans(&p).unwrap_err();
        assert!(err.contains("bans.json"), "{err}");
        let _ = fs::remove_dir_all(&d);
    }
}
