//! Files the program keeps: where they live, and writing them safely.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
/// flush it to disk, then rename it over the original.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, false)
}

/// [`write_atomic`] for secrets: readable by the owner only (on Unix; other
/// systems keep files in per-user directories).
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, true)
}

fn write_atomic_mode(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
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
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
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
