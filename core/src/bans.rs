//! The ban list and its file format.
//!
//! `bans.json` is LanTalk 2.0's format: a JSON list of address strings, sorted,
//! indented by two spaces. Parsing is strict because a ban file that silently
//! reads as empty would let every banned person back in.

use core::net::IpAddr;
use std::collections::BTreeSet;
use std::fmt;

/// Why a ban file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanFileError(pub String);

impl fmt::Display for BanFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BanFileError {}

/// Banned addresses, kept sorted so the file and `/bans` are stable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BanList(BTreeSet<IpAddr>);

impl BanList {
    pub fn new() -> Self {
        BanList::default()
    }

    /// Parses the contents of a ban file. Empty or whitespace-only content is an
    /// empty list (a freshly created file); anything else must be valid.
    pub fn parse(bytes: &[u8]) -> Result<BanList, BanFileError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| BanFileError(format!("not valid UTF-8 ({e})")))?;
        if text.trim().is_empty() {
            return Ok(BanList::new());
        }
        let items: Vec<serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| BanFileError(format!("not a JSON list of addresses ({e})")))?;
        let mut set = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let s = item
                .as_str()
                .ok_or_else(|| BanFileError(format!("entry {} is not a string: {item}", i + 1)))?;
            let ip = s.trim().parse::<IpAddr>().map_err(|_| {
                BanFileError(format!("entry {} is not an IP address: {s:?}", i + 1))
            })?;
            set.insert(canonical(ip));
        }
        Ok(BanList(set))
    }

    /// The file contents for this list, as LanTalk 2.0 writes them.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        // LanTalk sorts the strings, not the addresses; do the same so a file
        // written by either implementation is byte-identical.
        let mut items: Vec<String> = self.0.iter().map(|ip| ip.to_string()).collect();
        items.sort();
        if items.is_empty() {
            return b"[]".to_vec();
        }
        let mut out = String::from("[\n");
        for (i, item) in items.iter().enumerate() {
            out.push_str("  ");
            crate::json::write_str(&mut out, item);
            if i + 1 < items.len() {
                out.push(',');
            }
            out.push('\n');
        }
        out.push(']');
        out.into_bytes()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }

    /// Adds an address; `false` if it was already banned.
    pub fn insert(&mut self, ip: IpAddr) -> bool {
        self.0.insert(canonical(ip))
    }

    /// Removes an address; `false` if it was not banned.
    pub fn remove(&mut self, ip: IpAddr) -> bool {
        self.0.remove(&canonical(ip))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<IpAddr> for BanList {
    fn from_iter<T: IntoIterator<Item = IpAddr>>(iter: T) -> Self {
        BanList(iter.into_iter().map(canonical).collect())
    }
}

/// An IPv4 client seen through a dual-stack socket arrives as `::ffff:a.b.c.d`;
/// it is the same machine as `a.b.c.d` and must match the same ban.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_lantalk_format() {
        let file = b"[\n  \"10.0.0.2\",\n  \"192.168.1.22\",\n  \"::1\"\n]";
        let list = BanList::parse(file).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.to_file_bytes(), file.to_vec());
        assert_eq!(BanList::new().to_file_bytes(), b"[]".to_vec());
    }

    #[test]
    fn empty_file_is_empty_list_but_garbage_is_an_error() {
        assert!(BanList::parse(b"  \n").unwrap().is_empty());
        assert!(BanList::parse(b"{\"a\":1}").is_err());
        assert!(BanList::parse(b"[\"not-an-ip\"]").is_err());
        assert!(BanList::parse(b"[1]").is_err());
        assert!(BanList::parse(b"[\"1.2.3.4\"").is_err());
        assert!(BanList::parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn mapped_ipv4_matches_plain_ipv4() {
        let mut list = BanList::new();
        list.insert("::ffff:10.0.0.9".parse().unwrap());
        assert!(list.contains("10.0.0.9".parse().unwrap()));
    }
}
