//! Long-term keys and the servers we trust, kept in the data directory.
//!
//! `server_key` / `client_key`: the X25519 private key, created on first use
//! (mode 0600 on Unix, written atomically). `known_servers`: one line per
//! server, `HOST:PORT BASE64-KEY`, like SSH's known_hosts: the first key seen
//! for an address is pinned, and a different one later is refused.
//! `trusted_peers` (host mode, `--remember`): one line per peer the operator
//! approved, `NAME BASE64-KEY`; those keys are let in without asking.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lantalk_core::secure::{b64, unb64, StaticKey};
use lantalk_core::server::TrustedPeer;

use crate::files::{update, write_atomic_private};

const KEY_HEADER: &str = "lantalk-x25519-private-v1";
const KNOWN_HEADER: &str = "# LanTalk: pinned server keys (HOST:PORT BASE64-KEY)\n";

/// Loads the key in `path`, creating it if there is none.
///
/// Creation happens under the file's lock, re-checking that no one else made
/// it meanwhile: two programs starting at once with one data directory must
/// end up with one key, not each with its own and the file with the last.
pub fn load_or_create(path: &Path) -> Result<StaticKey, String> {
    let corrupt = || {
        format!(
            "the key file {} is corrupt. Move it aside to make a new key (clients that \
             pinned the old one will then refuse this machine until they remove it).",
            path.display()
        )
    };
    match fs::read_to_string(path) {
        Ok(text) => {
            if let Some(warning) = loose_permissions(path) {
                crate::term::eprint(&format!("warning: {warning}\n"));
            }
            parse_key(&text).ok_or_else(corrupt)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => update(path, true, |current| {
            if let Some(bytes) = current {
                let key = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(parse_key)
                    .ok_or_else(corrupt)?;
                return Ok((None, key));
            }
            let mut private = [0u8; 32];
            getrandom::getrandom(&mut private)
                .map_err(|e| format!("no secure randomness to make a key: {e}"))?;
            let text = format!("{KEY_HEADER} {}\n", b64(&private));
            Ok((Some(text.into_bytes()), StaticKey::from_private(private)))
        })
        .map_err(|e| format!("cannot create the key file {}: {e}", path.display())),
        Err(e) => Err(format!("cannot read the key file {}: {e}", path.display())),
    }
}

/// What to tell the user when the private key in `path` can be read by
/// other users (group or others have any permission bit): whoever reads it
/// can pose as this machine. `None` when it is private, or where Unix modes
/// do not apply (other systems keep the data directory per user).
#[cfg(unix)]
pub fn loose_permissions(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the private key {path} can be read by other users (mode {mode:o}); anyone who \
             reads it can pose as this machine. Fix it with: chmod 600 {path}",
            path = path.display()
        )
    })
}

#[cfg(not(unix))]
pub fn loose_permissions(_path: &Path) -> Option<String> {
    None
}

fn parse_key(text: &str) -> Option<StaticKey> {
    let (header, key) = text.trim().split_once(' ')?;
    if header != KEY_HEADER {
        return None;
    }
    let private: [u8; 32] = unb64(key.trim())?.try_into().ok()?;
    Some(StaticKey::from_private(private))
}

/// The pinned server keys.
pub struct KnownServers {
    path: PathBuf,
    entries: Vec<(String, Vec<u8>)>,
    /// Servers named by a corrupt line: refused until it is fixed, since
    /// the key it pinned cannot be read and accepting whatever key the
    /// server shows would defeat the pin.
    refused: Vec<(String, String)>,
    /// One per corrupt line: file, line number and what is wrong.
    warnings: Vec<String>,
}

/// What [`KnownServers::get`] gives for a server whose line is corrupt: a
/// pin no server key (32 bytes) can match, so the connection is refused as
/// for a changed key, whose advice (remove that server's line from
/// known_servers) is the fix here too.
const UNREADABLE_PIN: &[u8] = &[];

impl KnownServers {
    /// Reads `path`. A corrupt line does not stop the others from being
    /// used: it is reported (a warning on standard error naming the file,
    /// the line and the reason, and in [`KnownServers::warnings`]), and only
    /// the server it names, if that can be made out, is refused.
    pub fn load(path: &Path) -> Result<KnownServers, String> {
        let text = read_lossy(path)?;
        let (entries, bad) = parse_key_lines(&text);
        let mut known = KnownServers {
            path: path.to_path_buf(),
            entries,
            refused: Vec::new(),
            warnings: Vec::new(),
        };
        for b in bad {
            let label = b.label.filter(|l| looks_like_host_port(l));
            let consequence = match &label {
                Some(addr) => format!("connections to {addr} are refused until it is fixed"),
                None => "it names no server that can be made out, so it is ignored".to_string(),
            };
            let warning = format!(
                "{} line {}: {}; {consequence}. Fix or remove that line.",
                path.display(),
                b.line,
                b.why
            );
            if let Some(addr) = label {
                known.refused.push((addr, warning.clone()));
            }
            known.warnings.push(warning);
        }
        for w in &known.warnings {
            warn_once(w);
        }
        Ok(known)
    }

    pub fn get(&self, addr: &str) -> Option<&[u8]> {
        if self.refused.iter().any(|(a, _)| a == addr) {
            return Some(UNREADABLE_PIN);
        }
        self.entries
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, k)| k.as_slice())
    }

    /// The warning about the corrupt line that names `addr`, if one does:
    /// the client refuses to connect there, saying which line to fix,
    /// rather than report the unreadable pin as a changed key.
    pub fn damaged(&self, addr: &str) -> Option<&str> {
        self.refused
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, w)| w.as_str())
    }

    /// The corrupt lines found by [`KnownServers::load`].
    #[cfg(test)]
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Pins `key` for `addr` and saves the file.
    ///
    /// Under the file's lock, the file is read again and the pin merged into
    /// what is there now: other clients sharing the data directory may have
    /// pinned other servers since this one loaded it. Every other line
    /// (comments, corrupt lines) is kept as it is.
    pub fn pin(&mut self, addr: &str, key: &[u8]) -> Result<(), String> {
        let entries = update(&self.path, true, |current| {
            let current = current
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let mut text = String::new();
            if current.trim().is_empty() {
                text.push_str(KNOWN_HEADER);
            }
            for line in current.lines() {
                let same = matches!(parse_key_line(line), Ok(Some((label, _))) if label == addr);
                if !same {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            text.push_str(&format!("{addr} {}\n", b64(key)));
            let entries = parse_key_lines(&text).0;
            Ok((Some(text.into_bytes()), entries))
        })?;
        self.entries = entries;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Prints `warning` on standard error, once per process (a client builds
/// its configuration again for every connection attempt).
fn warn_once(warning: &str) {
    static SHOWN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    if shown
        .get_or_insert_with(HashSet::new)
        .insert(warning.to_string())
    {
        crate::term::eprint(&format!("warning: {warning}\n"));
    }
}

/// Whether a known_servers label is `HOST:PORT` (or `[V6]:PORT`).
fn looks_like_host_port(label: &str) -> bool {
    label
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Reads the trusted peers in `path`; a missing file is an empty list, a
/// corrupt line an error (quietly dropping it would ask about, or worse, let
/// in, the wrong people).
pub fn load_trusted(path: &Path) -> Result<Vec<TrustedPeer>, String> {
    let text = read_lossy(path)?;
    let (entries, bad) = parse_key_lines(&text);
    if let Some(b) = bad.first() {
        return Err(format!(
            "{} line {} is corrupt ({}); fix or remove it",
            path.display(),
            b.line,
            b.why
        ));
    }
    Ok(entries
        .into_iter()
        .map(|(name, key)| TrustedPeer { name, key })
        .collect())
}

/// The text of `path`: empty when it does not exist; bytes that are not
/// UTF-8 spoil only their own line.
fn read_lossy(path: &Path) -> Result<String, String> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A line of a key file that cannot be read.
struct BadLine {
    /// 1-based.
    line: usize,
    /// Its first word, when it has one.
    label: Option<String>,
    why: String,
}

/// Reads a file of `LABEL BASE64-KEY` lines (known_servers, trusted_peers):
/// `#` lines and blank lines are skipped; the lines that cannot be read are
/// returned apart, never silently dropped.
fn parse_key_lines(text: &str) -> (Vec<(String, Vec<u8>)>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_key_line(line) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            Err((label, why)) => bad.push(BadLine {
                line: i + 1,
                label,
                why,
            }),
        }
    }
    (entries, bad)
}

/// One line: `Ok(None)` for a comment or blank line, else the entry or its
/// label (if any) and what is wrong with it.
#[allow(clippy::type_complexity)]
fn parse_key_line(line: &str) -> Result<Option<(String, Vec<u8>)>, (Option<String>, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let label = words.next().unwrap_or_default().to_string();
    let Some(key) = words.next() else {
        return Err((Some(label), "there is no key after the name".into()));
    };
    if words.next().is_some() {
        return Err((Some(label), "there is more than a name and a key".into()));
    }
    let Some(key) = unb64(key) else {
        return Err((Some(label), "the key is not valid base64".into()));
    };
    if key.len() != 32 {
        return Err((
            Some(label),
            format!("the key is {} bytes long, not 32", key.len()),
        ));
    }
    Ok(Some((label, key)))
}

/// Replaces the trusted peers in `path` with `peers` (under the file's lock,
/// like every write of a shared file, so writers take turns).
pub fn save_trusted(path: &Path, peers: &[TrustedPeer]) -> Result<(), String> {
    let mut text = String::from("# LanTalk: peers let in without asking (NAME BASE64-KEY)\n");
    for p in peers {
        text.push_str(&format!("{} {}\n", p.name, b64(&p.key)));
    }
    write_atomic_private(path, text.as_bytes())
        .map_err(|e| format!("cannot save {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lantalk-keys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn key_is_created_once_and_reloaded() {
        let d = temp_dir("key");
        let p = d.join("server_key");
        let a = load_or_create(&p).unwrap();
        let b = load_or_create(&p).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        fs::write(&p, "garbage").unwrap();
        assert!(load_or_create(&p).unwrap_err().contains("server_key"));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn trusted_peers_save_and_reload() {
        let d = temp_dir("trusted");
        let p = d.join("trusted_peers");
        assert!(load_trusted(&p).unwrap().is_empty());
        let peers = vec![
            TrustedPeer {
                name: "Bob".into(),
                key: vec![7; 32],
            },
            TrustedPeer {
                name: "Carol".into(),
                key: vec![8; 32],
            },
        ];
        save_trusted(&p, &peers).unwrap();
        assert_eq!(load_trusted(&p).unwrap(), peers);
        save_trusted(&p, &[]).unwrap();
        assert!(load_trusted(&p).unwrap().is_empty());
        fs::write(&p, "Bob short\n").unwrap();
        assert!(load_trusted(&p).unwrap_err().contains("line 1"));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn known_servers_pin_and_reload() {
        let d = temp_dir("known");
        let p = d.join("known_servers");
        let mut k = KnownServers::load(&p).unwrap();
        assert!(k.get("10.0.0.1:5050").is_none());
        k.pin("10.0.0.1:5050", &[7; 32]).unwrap();
        k.pin("10.0.0.2:5050", &[8; 32]).unwrap();
        let k = KnownServers::load(&p).unwrap();
        assert_eq!(k.get("10.0.0.1:5050"), Some(&[7u8; 32][..]));
        let _ = fs::remove_dir_all(&d);
    }

    /// A corrupt line is reported with file, line and reason; the other
    /// servers are still known, and only the one it names is refused.
    #[test]
    fn corrupt_known_servers_line_refuses_only_its_server() {
        let d = temp_dir("corrupt-known");
        let p = d.join("known_servers");
        let good = b64(&[7; 32]);
        fs::write(
            &p,
            format!(
                "# comment\n10.0.0.1:5050 {good}\n10.0.0.2:5050 notbase64!\n\
                 10.0.0.3:5050 {short}\n",
                short = b64(&[1; 5])
            ),
        )
        .unwrap();
        let k = KnownServers::load(&p).unwrap();
        assert_eq!(k.get("10.0.0.1:5050"), Some(&[7u8; 32][..]));
        assert!(k.get("10.0.0.9:5050").is_none(), "unknown stays unknown");
        for addr in ["10.0.0.2:5050", "10.0.0.3:5050"] {
            let pin = k.get(addr).expect("a corrupt line's server is not unknown");
            assert_ne!(pin.len(), 32, "no server key can match it");
        }
        let w = k.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("known_servers line 3"), "{}", w[0]);
        assert!(w[0].contains("not valid base64"), "{}", w[0]);
        assert!(w[0].contains("10.0.0.2:5050"), "{}", w[0]);
        assert!(
            w[1].contains("line 4") && w[1].contains("5 bytes"),
            "{}",
            w[1]
        );

        // Pinning another server keeps the corrupt lines for the user to fix.
        let mut k = k;
        k.pin("10.0.0.4:5050", &[9; 32]).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("10.0.0.2:5050 notbase64!"), "{text}");
        let pin = KnownServers::load(&p)
            .unwrap()
            .get("10.0.0.2:5050")
            .map(<[u8]>::len);
        assert_eq!(pin, Some(0), "still refused");
        let _ = fs::remove_dir_all(&d);
    }

    /// A corrupt line whose server cannot be made out refuses nothing.
    #[test]
    fn unrecognisable_corrupt_line_refuses_nothing() {
        let d = temp_dir("junk-known");
        let p = d.join("known_servers");
        fs::write(&p, format!("junk\n10.0.0.1:5050 {}\n", b64(&[7; 32]))).unwrap();
        let k = KnownServers::load(&p).unwrap();
        assert_eq!(k.get("10.0.0.1:5050"), Some(&[7u8; 32][..]));
        assert!(k.get("junk").is_none());
        assert_eq!(k.warnings().len(), 1);
        assert!(k.warnings()[0].contains("line 1"), "{:?}", k.warnings());
        assert!(k.warnings()[0].contains("no server"), "{:?}", k.warnings());
        let _ = fs::remove_dir_all(&d);
    }

    /// Pins made by other programs since this one loaded the file survive.
    #[test]
    fn pin_merges_with_what_others_pinned() {
        let d = temp_dir("merge-known");
        let p = d.join("known_servers");
        let mut a = KnownServers::load(&p).unwrap();
        let mut b = KnownServers::load(&p).unwrap();
        a.pin("10.0.0.1:5050", &[1; 32]).unwrap();
        b.pin("10.0.0.2:5050", &[2; 32]).unwrap();
        a.pin("10.0.0.1:5050", &[3; 32]).unwrap();
        let k = KnownServers::load(&p).unwrap();
        assert_eq!(k.get("10.0.0.1:5050"), Some(&[3u8; 32][..]));
        assert_eq!(k.get("10.0.0.2:5050"), Some(&[2u8; 32][..]));
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches("10.0.0.1:5050").count(), 1, "{text}");
        assert_eq!(text.matches("# LanTalk").count(), 1, "{text}");
        let _ = fs::remove_dir_all(&d);
    }

    /// Threads pinning at once (each with its own lock file handle, as
    /// processes would) lose nothing.
    #[test]
    fn concurrent_pins_all_survive() {
        let d = temp_dir("concurrent-known");
        let p = d.join("known_servers");
        let threads: Vec<_> = (0..8u8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut k = KnownServers::load(&p).unwrap();
                    k.pin(&format!("10.0.0.{i}:5050"), &[i; 32]).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let k = KnownServers::load(&p).unwrap();
        for i in 0..8u8 {
            assert_eq!(k.get(&format!("10.0.0.{i}:5050")), Some(&[i; 32][..]));
        }
        let _ = fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_file_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let d = temp_dir("perm");
        let p = d.join("server_key");
        load_or_create(&p).unwrap();
        assert_eq!(loose_permissions(&p), None, "created private");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let w = loose_permissions(&p).expect("mode 644 is warned about");
        assert!(w.contains(&format!("chmod 600 {}", p.display())), "{w}");
        assert!(w.contains("644"), "{w}");
        // Still usable: the warning does not stop the program.
        load_or_create(&p).unwrap();
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn concurrent_key_creation_makes_one_key() {
        let d = temp_dir("concurrent-key");
        let p = d.join("client_key");
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || load_or_create(&p).unwrap())
            })
            .collect();
        let keys: Vec<StaticKey> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let on_disk = load_or_create(&p).unwrap();
        assert!(keys.iter().all(|k| *k == on_disk));
        let _ = fs::remove_dir_all(&d);
    }
}
