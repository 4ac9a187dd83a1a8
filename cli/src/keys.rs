//! Long-term keys and the servers we trust, kept in the data directory.
//!
//! `server_key` / `client_key`: the X25519 private key, created on first use
//! (mode 0600 on Unix, written atomically). `known_servers`: one line per
//! server, `HOST:PORT BASE64-KEY`, like SSH's known_hosts: the first key seen
//! for an address is pinned, and a different one later is refused.
//! `trusted_peers` (host mode, `--remember`): one line per peer the operator
//! approved, `NAME BASE64-KEY`; those keys are let in without asking.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use lantalk_core::secure::{b64, unb64, StaticKey};
use lantalk_core::server::TrustedPeer;

use crate::files::write_atomic_private;

const KEY_HEADER: &str = "lantalk-x25519-private-v1";

/// Loads the key in `path`, creating it if there is none.
pub fn load_or_create(path: &Path) -> Result<StaticKey, String> {
    match fs::read_to_string(path) {
        Ok(text) => parse_key(&text).ok_or_else(|| {
            format!(
                "the key file {} is corrupt. Move it aside to make a new key (clients that \
                 pinned the old one will then refuse this machine until they remove it).",
                path.display()
            )
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let mut private = [0u8; 32];
            getrandom::getrandom(&mut private)
                .map_err(|e| format!("no secure randomness to make a key: {e}"))?;
            let text = format!("{KEY_HEADER} {}\n", b64(&private));
            write_atomic_private(path, text.as_bytes())
                .map_err(|e| format!("cannot write the key file {}: {e}", path.display()))?;
            Ok(StaticKey::from_private(private))
        }
        Err(e) => Err(format!("cannot read the key file {}: {e}", path.display())),
    }
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
}

impl KnownServers {
    /// Reads `path` (see [`read_key_lines`]).
    pub fn load(path: &Path) -> Result<KnownServers, String> {
        let entries = read_key_lines(path)?;
        Ok(KnownServers {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub fn get(&self, addr: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, k)| k.as_slice())
    }

    /// Pins `key` for `addr` and saves the file.
    pub fn pin(&mut self, addr: &str, key: &[u8]) -> Result<(), String> {
        self.entries.retain(|(a, _)| a != addr);
        self.entries.push((addr.to_string(), key.to_vec()));
        let mut text = String::from("# LanTalk: pinned server keys (HOST:PORT BASE64-KEY)\n");
        for (a, k) in &self.entries {
            text.push_str(&format!("{a} {}\n", b64(k)));
        }
        write_atomic_private(&self.path, text.as_bytes())
            .map_err(|e| format!("cannot save {}: {e}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the trusted peers in `path`; a missing file is an empty list, a
/// corrupt line an error (quietly dropping it would ask about, or worse, let
/// in, the wrong people).
pub fn load_trusted(path: &Path) -> Result<Vec<TrustedPeer>, String> {
    Ok(read_key_lines(path)?
        .into_iter()
        .map(|(name, key)| TrustedPeer { name, key })
        .collect())
}

/// Reads a file of `LABEL BASE64-KEY` lines (known_servers, trusted_peers):
/// a missing file is empty, `#` lines are comments, and a line that cannot
/// be read is an error naming it, never silently dropped.
fn read_key_lines(path: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line
            .split_once(' ')
            .and_then(|(label, key)| Some((label.to_string(), unb64(key.trim())?)));
        match parsed {
            Some((label, key)) if key.len() == 32 => entries.push((label, key)),
            _ => {
                return Err(format!(
                    "{} line {} is corrupt; fix or remove it",
                    path.display(),
                    i + 1
                ))
            }
        }
    }
    Ok(entries)
}

/// Replaces the trusted peers in `path` with `peers`.
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
        fs::write(&p, "10.0.0.1:5050 notbase64!\n").unwrap();
        assert!(KnownServers::load(&p).is_err());
        let _ = fs::remove_dir_all(&d);
    }
}
