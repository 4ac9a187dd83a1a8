//! The announcement datagrams and TXT records, and the table a scan builds.

use core::net::{IpAddr, Ipv4Addr};
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// The UDP port LanTalk 2.0 clients listen on for beacons.
pub const DEFAULT_DISCOVERY_PORT: u16 = 5051;
/// How often LanTalk 2.0 servers send their beacon.
pub const DEFAULT_BEACON_INTERVAL: Duration = Duration::from_secs(2);
/// The DNS-SD service type our servers register.
pub const MDNS_SERVICE_TYPE: &str = "_lantalk._tcp.local.";
/// LanTalk 2.0's beacon: `LANTALK_SERVER:<ip>:<port>`.
pub const LEGACY_PREFIX: &str = "LANTALK_SERVER:";
/// Our datagram: this prefix, then one JSON object.
pub const INFO_PREFIX: &str = "LANTALK_INFO ";
/// Longest datagram [`parse_datagram`] looks at.
pub const MAX_DATAGRAM: usize = 1024;
/// LanTalk 2.0 receives beacons into a buffer of this many bytes; our info
/// datagram never exceeds it.
pub const LEGACY_RECV_BUFFER: usize = 256;
/// Longest server name announced or accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest version string accepted, in characters.
pub const MAX_VERSION_CHARS: usize = 32;
/// Longest key fingerprint accepted, in characters.
pub const MAX_FINGERPRINT_CHARS: usize = 96;
/// Most users a server may claim to have online (more is nonsense).
pub const MAX_USERS: u32 = 1_000_000;
/// Most distinct servers one scan keeps (a flood of forged beacons cannot
/// make it grow without bound).
pub const MAX_FOUND: usize = 256;
/// Longest DNS-SD instance name, in bytes (one DNS label).
pub const MAX_INSTANCE_BYTES: usize = 63;

/// What a server says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAnnouncement {
    /// Display name: 1–[`MAX_NAME_CHARS`] characters, no control characters.
    pub name: String,
    /// The address to connect to, when the announcer states it; otherwise the
    /// datagram's source address is used.
    pub addr: Option<IpAddr>,
    /// The TCP port of the chat server.
    pub port: u16,
    /// The server program's version.
    pub version: String,
    /// Whether the server speaks the encrypted protocol.
    pub encrypted: bool,
    /// Whether joining needs a password.
    pub password: bool,
    /// Users online.
    pub users: u32,
    /// The server's public key fingerprint, for encrypted servers. Only a
    /// hint for display: the encryption layer checks the real key.
    pub fingerprint: Option<String>,
}

/// One parsed discovery datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// LanTalk 2.0's `LANTALK_SERVER:<ip>:<port>`.
    Legacy { ip: Ipv4Addr, port: u16 },
    /// Our `LANTALK_INFO {…}`.
    Info(ServerAnnouncement),
}

// ── Validation ───────────────────────────────────────────────────────────────

/// Characters a name may not contain: control characters, and the invisible
/// ones that reorder text (a name must look like what it is).
fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Whether `name` is acceptable as an announced server name (what
/// [`sanitize_name`] makes: no surrounding spaces either).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.trim() == name
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(is_forbidden_char)
}

fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VERSION_CHARS
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'_'))
}

fn valid_fingerprint(fp: &str) -> bool {
    !fp.is_empty()
        && fp.len() <= MAX_FINGERPRINT_CHARS
        && fp.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b':' | b'+' | b'/' | b'=' | b'-' | b'_')
        })
}

/// A port as decimal digits only (no sign, no spaces), 1–65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

/// `name` made announceable: forbidden characters dropped, surrounding
/// spaces trimmed, cut to [`MAX_NAME_CHARS`]; `LanTalk` if nothing is left.
pub fn sanitize_name(name: &str) -> String {
    let cleaned: String = name.chars().filter(|c| !is_forbidden_char(*c)).collect();
    let cut: String = cleaned.trim().chars().take(MAX_NAME_CHARS).collect();
    let cut = cut.trim_end().to_string();
    if cut.is_empty() {
        "LanTalk".to_string()
    } else {
        cut
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ── Datagrams ────────────────────────────────────────────────────────────────

/// Parses one discovery datagram; `None` for anything that is not exactly one
/// of the two formats, within bounds.
pub fn parse_datagram(bytes: &[u8]) -> Option<Datagram> {
    if bytes.is_empty() || bytes.len() > MAX_DATAGRAM {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if let Some(rest) = text.strip_prefix(LEGACY_PREFIX) {
        let (ip, port) = rest.split_once(':')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let port = parse_port(port)?;
        return Some(Datagram::Legacy { ip, port });
    }
    let json = text.strip_prefix(INFO_PREFIX)?;
    parse_info_json(json).map(Datagram::Info)
}

fn parse_info_json(json: &str) -> Option<ServerAnnouncement> {
    let Value::Object(obj) = serde_json::from_str::<Value>(json).ok()? else {
        return None;
    };
    let name = obj.get("name")?.as_str()?;
    let port = u16::try_from(obj.get("port")?.as_u64()?).ok()?;
    let version = obj.get("ver")?.as_str()?;
    let encrypted = obj.get("enc")?.as_bool()?;
    let password = obj.get("pw")?.as_bool()?;
    let users = u32::try_from(obj.get("users")?.as_u64()?).ok()?;
    let addr = match obj.get("addr") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str()?.parse::<IpAddr>().ok()?),
    };
    let fingerprint = match obj.get("fp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str()?.to_string()),
    };
    let a = ServerAnnouncement {
        name: name.to_string(),
        addr,
        port,
        version: version.to_string(),
        encrypted,
        password,
        users,
        fingerprint,
    };
    a.is_valid().then_some(a)
}

impl ServerAnnouncement {
    /// Whether every field is within bounds (what the parsers insist on).
    pub fn is_valid(&self) -> bool {
        valid_name(&self.name)
            && self.port != 0
            && valid_version(&self.version)
            && self.users <= MAX_USERS
            && match self.fingerprint.as_deref() {
                None => true,
                Some(fp) => valid_fingerprint(fp),
            }
            // A fingerprint without encryption would be a contradiction.
            && (self.encrypted || self.fingerprint.is_none())
    }
}

/// LanTalk 2.0's beacon for a server at `ip:port`.
pub fn encode_legacy(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    format!("{LEGACY_PREFIX}{ip}:{port}").into_bytes()
}

fn info_json(a: &ServerAnnouncement, name: &str, with_addr: bool) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let mut out = format!("{INFO_PREFIX}{{\"name\":{}", s(name));
    if let (true, Some(addr)) = (with_addr, a.addr) {
        out.push_str(&format!(",\"addr\":\"{addr}\""));
    }
    out.push_str(&format!(
        ",\"port\":{},\"ver\":{},\"enc\":{},\"pw\":{},\"users\":{}",
        a.port,
        s(&a.version),
        a.encrypted,
        a.password,
        a.users.min(MAX_USERS)
    ));
    if let Some(fp) = &a.fingerprint {
        out.push_str(&format!(",\"fp\":{}", s(fp)));
    }
    out.push('}');
    out
}

/// Our datagram for `a`, at most [`LEGACY_RECV_BUFFER`] bytes: a name too
/// long for that is shortened (the full name is in the mDNS TXT record), and
/// when even a one-character name would not fit, `addr` is left out (the
/// receiver then uses the source address). `a` should be valid (its name
/// [`sanitize_name`]d); the result parses back to it, but for the shortening.
pub fn encode_info(a: &ServerAnnouncement) -> Vec<u8> {
    let name = sanitize_name(&a.name);
    let with_addr = a.addr.is_some() && {
        let first: String = name.chars().take(1).collect();
        info_json(a, &first, true).len() <= LEGACY_RECV_BUFFER
    };
    let mut chars: Vec<char> = name.chars().collect();
    loop {
        let candidate: String = chars.iter().collect();
        let out = info_json(a, candidate.trim_end(), with_addr);
        if out.len() <= LEGACY_RECV_BUFFER || chars.len() <= 1 {
            return out.into_bytes();
        }
        chars.pop();
    }
}

// ── DNS-SD TXT records ───────────────────────────────────────────────────────

/// The TXT record of our DNS-SD service: the same facts as the info datagram
/// (the port is in the SRV record). Each `key=value` stays within DNS's
/// 255 bytes.
pub fn txt_records(a: &ServerAnnouncement) -> Vec<(String, String)> {
    let name = sanitize_name(&a.name);
    let mut txt = vec![
        ("txtvers".to_string(), "1".to_string()),
        (
            "name".to_string(),
            truncate_bytes(&name, 255 - "name=".len()).to_string(),
        ),
        ("ver".to_string(), a.version.clone()),
        ("enc".to_string(), a.encrypted.to_string()),
        ("pw".to_string(), a.password.to_string()),
        ("users".to_string(), a.users.min(MAX_USERS).to_string()),
    ];
    if let Some(fp) = &a.fingerprint {
        txt.push(("fp".to_string(), fp.clone()));
    }
    txt
}

/// Reads an announcement back from a TXT record (`port` comes from the SRV
/// record); `None` unless every required key is present and valid. Keys are
/// matched without regard to case, as DNS-SD asks; a repeated key is refused.
pub fn parse_txt<'a>(
    port: u16,
    props: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<ServerAnnouncement> {
    let mut map: BTreeMap<String, &str> = BTreeMap::new();
    for (k, v) in props.into_iter().take(64) {
        if map.insert(k.to_ascii_lowercase(), v).is_some() {
            return None;
        }
    }
    let flag = |k: &str| match *map.get(k)? {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    };
    let users = map.get("users")?;
    if users.is_empty() || users.len() > 7 || !users.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let a = ServerAnnouncement {
        name: map.get("name")?.to_string(),
        addr: None,
        port,
        version: map.get("ver")?.to_string(),
        encrypted: flag("enc")?,
        password: flag("pw")?,
        users: users.parse().ok()?,
        fingerprint: map.get("fp").map(|s| s.to_string()),
    };
    a.is_valid().then_some(a)
}

/// The DNS-SD instance name for a server called `name`: sanitized and cut to
/// one DNS label ([`MAX_INSTANCE_BYTES`]).
pub fn mdns_instance_name(name: &str) -> String {
    let name = sanitize_name(name);
    truncate_bytes(&name, MAX_INSTANCE_BYTES)
        .trim_end()
        .to_string()
}

// ── Addresses ────────────────────────────────────────────────────────────────

/// The directed broadcast address of the IPv4 network `ip`/`netmask`, or
/// `None` where there is none (a /31 or /32, a loopback, unspecified or
/// multicast address, or a netmask that is not a prefix).
pub fn directed_broadcast(ip: Ipv4Addr, netmask: Ipv4Addr) -> Option<Ipv4Addr> {
    let mask = u32::from(netmask);
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return None;
    }
    // A valid netmask is some ones followed by zeros; /31 and /32 have no
    // broadcast address.
    if mask == 0 || mask.leading_ones() + mask.trailing_zeros() != 32 || mask.leading_ones() > 30 {
        return None;
    }
    Some(Ipv4Addr::from(u32::from(ip) | !mask))
}

/// Whether `a` and `b` are on the same IPv4 network under `netmask`.
pub fn same_network(a: Ipv4Addr, b: Ipv4Addr, netmask: Ipv4Addr) -> bool {
    let m = u32::from(netmask);
    u32::from(a) & m == u32::from(b) & m
}

/// The address an announcement should be listed under: the stated one,
/// unless it is useless (unspecified, multicast, broadcast) or points at the
/// announcer's own loopback while the datagram came from elsewhere — LanTalk
/// 2.0 announces `127.0.0.1` when it cannot find its LAN address.
pub fn listing_addr(stated: Option<IpAddr>, source: IpAddr) -> IpAddr {
    let useless = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    match stated {
        Some(ip) if useless(ip) => source,
        Some(ip) if ip.is_loopback() && !source.is_loopback() => source,
        Some(ip) => ip,
        None => source,
    }
}

// ── What a scan found ────────────────────────────────────────────────────────

/// One server found by a scan, merged from every source that mentioned it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundServer {
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// Our details (from the info datagram or mDNS), when any arrived; a
    /// server known only from a LanTalk 2.0 beacon has none.
    pub name: Option<String>,
    pub version: Option<String>,
    pub encrypted: Option<bool>,
    pub password: Option<bool>,
    pub users: Option<u32>,
    pub fingerprint: Option<String>,
    /// Seen through a LanTalk 2.0 beacon.
    pub via_beacon: bool,
    /// Seen through our info datagram.
    pub via_info: bool,
    /// Seen through DNS-SD over mDNS.
    pub via_mdns: bool,
}

impl FoundServer {
    /// How it was seen, for display: e.g. `beacon+mdns`.
    pub fn via(&self) -> String {
        let mut parts = Vec::new();
        if self.via_beacon || self.via_info {
            parts.push("beacon");
        }
        if self.via_mdns {
            parts.push("mdns");
        }
        parts.join("+")
    }

    fn apply(&mut self, a: &ServerAnnouncement) {
        self.name = Some(a.name.clone());
        self.version = Some(a.version.clone());
        self.encrypted = Some(a.encrypted);
        self.password = Some(a.password);
        self.users = Some(a.users);
        self.fingerprint = a.fingerprint.clone();
    }
}

/// Servers found so far, each listed once per (address, port), at most
/// [`MAX_FOUND`] of them.
#[derive(Clone, Debug, Default)]
pub struct ScanTable {
    found: BTreeMap<(IpAddr, u16), FoundServer>,
    /// Datagrams that were not announcements.
    pub ignored: usize,
}

impl ScanTable {
    pub fn new() -> Self {
        ScanTable::default()
    }

    fn entry(&mut self, addr: IpAddr, port: u16) -> Option<&mut FoundServer> {
        if !self.found.contains_key(&(addr, port)) && self.found.len() >= MAX_FOUND {
            return None;
        }
        Some(
            self.found
                .entry((addr, port))
                .or_insert_with(|| FoundServer {
                    addr: Some(addr),
                    port,
                    ..FoundServer::default()
                }),
        )
    }

    /// A datagram arrived from `source`: parse it and record what it says.
    /// Returns whether it was an announcement.
    pub fn add_datagram(&mut self, source: IpAddr, bytes: &[u8]) -> bool {
        match parse_datagram(bytes) {
            Some(Datagram::Legacy { ip, port }) => {
                let addr = listing_addr(Some(IpAddr::V4(ip)), source);
                if let Some(e) = self.entry(addr, port) {
                    e.via_beacon = true;
                }
                true
            }
            Some(Datagram::Info(a)) => {
                let addr = listing_addr(a.addr, source);
                if let Some(e) = self.entry(addr, a.port) {
                    e.apply(&a);
                    e.via_info = true;
                }
                true
            }
            None => {
                self.ignored += 1;
                false
            }
        }
    }

    /// A DNS-SD service resolved to `addrs` with announcement `a`. It is
    /// merged into an entry that already has one of these addresses and its
    /// port; otherwise listed under its first IPv4 address (or, failing that,
    /// a global IPv6 one). Link-local IPv6 addresses are unusable without
    /// their interface and are skipped.
    pub fn add_mdns(&mut self, addrs: &[IpAddr], a: &ServerAnnouncement) {
        let mut usable: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|ip| match ip {
                IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
                IpAddr::V6(v6) => {
                    !(v6.is_unspecified()
                        || v6.is_multicast()
                        || (v6.segments()[0] & 0xffc0) == 0xfe80)
                }
            })
            .collect();
        usable.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6(), *ip));
        let known = usable
            .iter()
            .copied()
            .find(|ip| self.found.contains_key(&(*ip, a.port)));
        let Some(addr) = known.or(usable.first().copied()) else {
            return;
        };
        if let Some(e) = self.entry(addr, a.port) {
            e.apply(a);
            e.via_mdns = true;
        }
    }

    /// Everything found, by name (unnamed LanTalk 2.0 servers last), then
    /// address and port.
    pub fn servers(&self) -> Vec<FoundServer> {
        let mut all: Vec<FoundServer> = self.found.values().cloned().collect();
        all.sort_by(|a, b| {
            let key =
                |s: &FoundServer| (s.name.is_none(), s.name.as_ref().map(|n| n.to_lowercase()));
            key(a)
                .cmp(&key(b))
                .then(a.addr.cmp(&b.addr))
                .then(a.port.cmp(&b.port))
        });
        all
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub fn len(&self) -> usize {
        self.found.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ServerAnnouncement {
        ServerAnnouncement {
            name: "Hackathon".into(),
            addr: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5))),
            port: 5050,
            version: "0.1.0".into(),
            encrypted: false,
            password: true,
            users: 3,
            fingerprint: None,
        }
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn legacy_beacon_is_byte_for_byte_lantalk_2() {
        assert_eq!(
            encode_legacy(Ipv4Addr::new(192, 168, 1, 5), 5050),
            b"LANTALK_SERVER:192.168.1.5:5050"
        );
        assert_eq!(
            parse_datagram(b"LANTALK_SERVER:192.168.1.5:5050"),
            Some(Datagram::Legacy {
                ip: Ipv4Addr::new(192, 168, 1, 5),
                port: 5050
            })
        );
    }

    #[test]
    fn info_round_trips_and_is_compact() {
        let a = sample();
        let bytes = encode_info(&a);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "LANTALK_INFO {\"name\":\"Hackathon\",\"addr\":\"192.168.1.5\",\"port\":5050,\
             \"ver\":\"0.1.0\",\"enc\":false,\"pw\":true,\"users\":3}"
        );
        assert_eq!(parse_datagram(&bytes), Some(Datagram::Info(a.clone())));
        let enc = ServerAnnouncement {
            encrypted: true,
            fingerprint: Some("SHA256:q1w2e3r4t5y6u7i8o9p0AaSsDdFfGgHhJjKkLlZzXx+/=".into()),
            addr: None,
            ..a
        };
        assert_eq!(
            parse_datagram(&encode_info(&enc)),
            Some(Datagram::Info(enc))
        );
    }

    #[test]
    fn info_never_exceeds_the_lantalk_2_buffer() {
        // Every field at its largest: 64 four-byte characters, an IPv6
        // address, the longest version and fingerprint.
        let a = ServerAnnouncement {
            name: "\u{1F600}".repeat(MAX_NAME_CHARS),
            addr: Some(
                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                    .parse()
                    .unwrap(),
            ),
            port: 65535,
            version: "9".repeat(MAX_VERSION_CHARS),
            encrypted: true,
            password: true,
            users: MAX_USERS,
            fingerprint: Some("F".repeat(MAX_FINGERPRINT_CHARS)),
        };
        let bytes = encode_info(&a);
        assert!(bytes.len() <= LEGACY_RECV_BUFFER, "{} bytes", bytes.len());
        let Some(Datagram::Info(back)) = parse_datagram(&bytes) else {
            panic!("does not parse: {}", String::from_utf8_lossy(&bytes));
        };
        assert!(a.name.starts_with(&back.name) && !back.name.is_empty());
        assert_eq!(back.fingerprint, a.fingerprint);
        assert_eq!(back.port, 65535);

        // A long ASCII name keeps as much as fits.
        let long = ServerAnnouncement {
            name: "N".repeat(MAX_NAME_CHARS),
            ..sample()
        };
        let bytes = encode_info(&long);
        assert!(bytes.len() <= LEGACY_RECV_BUFFER);
        assert_eq!(parse_datagram(&bytes), Some(Datagram::Info(long)));
    }

    #[test]
    fn names_are_sanitized_for_announcing() {
        assert_eq!(
            sanitize_name("  Team\u{7}\n Room \u{202E}1 "),
            "Team Room 1"
        );
        assert_eq!(sanitize_name("\u{1}\u{2}"), "LanTalk");
        assert_eq!(sanitize_name(&"x".repeat(100)).len(), MAX_NAME_CHARS);
        let a = ServerAnnouncement {
            name: "Bad\u{0}Name\u{1b}[31m".into(),
            ..sample()
        };
        let Some(Datagram::Info(back)) = parse_datagram(&encode_info(&a)) else {
            panic!("sanitized name must parse");
        };
        assert_eq!(back.name, "BadName[31m");
    }

    #[test]
    fn hostile_datagrams_are_ignored() {
        let long_name = format!(
            "LANTALK_INFO {{\"name\":\"{}\",\"port\":1,\"ver\":\"1\",\"enc\":false,\"pw\":false,\"users\":0}}",
            "n".repeat(MAX_NAME_CHARS + 1)
        );
        let deep = format!("LANTALK_INFO {}{}", "[".repeat(500), "]".repeat(500));
        let oversized = format!("LANTALK_SERVER:1.2.3.4:5050{}", " ".repeat(MAX_DATAGRAM));
        let ok_json = |fields: &str| format!("LANTALK_INFO {{{fields}}}");
        let base =
            "\"name\":\"A\",\"port\":5050,\"ver\":\"1\",\"enc\":false,\"pw\":false,\"users\":0";
        let hostile: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"LANTALK_SERVER:".to_vec(),
            b"LANTALK_SERVER:1.2.3.4".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:0".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:65536".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:99999999999999999999".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:+50".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:-1".to_vec(),
            b"LANTALK_SERVER:1.2.3.4: 5050".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:5050\n".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:5050\0".to_vec(),
            b"LANTALK_SERVER:1.2.3.4:50:50".to_vec(),
            b"LANTALK_SERVER:01.2.3.4:5050".to_vec(),
            b"LANTALK_SERVER:1.2.3:5050".to_vec(),
            b"LANTALK_SERVER:example.com:5050".to_vec(),
            b"LANTALK_SERVER:::1:5050".to_vec(),
            b"LANTALK_SERVER:\xff\xfe:5050".to_vec(),
            b"lantalk_server:1.2.3.4:5050".to_vec(),
            b" LANTALK_SERVER:1.2.3.4:5050".to_vec(),
            oversized.into_bytes(),
            vec![0xff; 300],
            b"LANTALK_INFO".to_vec(),
            b"LANTALK_INFO ".to_vec(),
            b"LANTALK_INFO {".to_vec(),
            b"LANTALK_INFO null".to_vec(),
            b"LANTALK_INFO []".to_vec(),
            b"LANTALK_INFO \"x\"".to_vec(),
            deep.into_bytes(),
            long_name.into_bytes(),
            ok_json(&base.replace("\"A\"", "\"\"")).into_bytes(),
            ok_json(&base.replace("\"A\"", "\"   \"")).into_bytes(),
            ok_json(&base.replace("\"A\"", "\" A\"")).into_bytes(),
            ok_json(&base.replace("\"A\"", "\"a\\u0000b\"")).into_bytes(),
            ok_json(&base.replace("\"A\"", "\"a\\nb\"")).into_bytes(),
            ok_json(&base.replace("\"A\"", "\"\\u202egnp.exe\"")).into_bytes(),
            ok_json(&base.replace("\"A\"", "5")).into_bytes(),
            ok_json(&base.replace("5050", "0")).into_bytes(),
            ok_json(&base.replace("5050", "65536")).into_bytes(),
            ok_json(&base.replace("5050", "-1")).into_bytes(),
            ok_json(&base.replace("5050", "50.5")).into_bytes(),
            ok_json(&base.replace("5050", "\"5050\"")).into_bytes(),
            ok_json(&base.replace("\"ver\":\"1\"", "\"ver\":\"1 beta\"")).into_bytes(),
            ok_json(&base.replace("\"enc\":false", "\"enc\":0")).into_bytes(),
            ok_json(&base.replace("\"users\":0", "\"users\":4294967296")).into_bytes(),
            ok_json(&base.replace("\"users\":0", "\"users\":2000000")).into_bytes(),
            ok_json(&base.replace(",\"pw\":false", "")).into_bytes(),
            ok_json(&format!("{base},\"addr\":\"not an ip\"")).into_bytes(),
            ok_json(&format!("{base},\"addr\":7")).into_bytes(),
            ok_json(&format!("{base},\"fp\":\"AB CD\"")).into_bytes(),
            // A fingerprint on a plaintext server is a contradiction.
            ok_json(&format!("{base},\"fp\":\"ABCD\"")).into_bytes(),
            ok_json(&format!(
                "{base},\"fp\":\"{}\"",
                "A".repeat(MAX_FINGERPRINT_CHARS + 1)
            ))
            .into_bytes(),
            format!("LANTALK_INFO{{{base}}}").into_bytes(),
            format!("LANTALK_INFO {{{base}}} trailing").into_bytes(),
        ];
        for h in hostile {
            assert_eq!(
                parse_datagram(&h),
                None,
                "accepted {:?}",
                String::from_utf8_lossy(&h)
            );
        }
        // Unknown fields are fine (later versions may add some); so are
        // spaces around the JSON.
        let fine = format!("LANTALK_INFO  {{{base},\"future\":[1,2,{{}}]}} ");
        assert!(matches!(
            parse_datagram(fine.as_bytes()),
            Some(Datagram::Info(_))
        ));
    }

    #[test]
    fn txt_round_trips() {
        let a = ServerAnnouncement {
            addr: None,
            ..sample()
        };
        let txt = txt_records(&a);
        assert!(txt.iter().all(|(k, v)| k.len() + 1 + v.len() <= 255));
        let props: Vec<(&str, &str)> = txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(parse_txt(5050, props.clone()), Some(a));
        assert_eq!(parse_txt(0, props.clone()), None);
        // Missing, repeated or bad keys.
        assert_eq!(parse_txt(5050, props[..3].to_vec()), None);
        let mut twice = props.clone();
        twice.push(("NAME", "Other"));
        assert_eq!(parse_txt(5050, twice), None);
        let bad: Vec<(&str, &str)> = props
            .iter()
            .map(|&(k, v)| if k == "users" { (k, "-1") } else { (k, v) })
            .collect();
        assert_eq!(parse_txt(5050, bad), None);
        let bad: Vec<(&str, &str)> = props
            .iter()
            .map(|&(k, v)| if k == "name" { (k, "a\u{7}") } else { (k, v) })
            .collect();
        assert_eq!(parse_txt(5050, bad), None);
        // A name of 64 four-byte characters is cut to fit one TXT string.
        let big = ServerAnnouncement {
            name: "\u{1F600}".repeat(MAX_NAME_CHARS),
            addr: None,
            ..sample()
        };
        let txt = txt_records(&big);
        assert!(txt.iter().all(|(k, v)| k.len() + 1 + v.len() <= 255));
    }

    #[test]
    fn instance_names_fit_one_label() {
        assert_eq!(mdns_instance_name("Hackathon"), "Hackathon");
        let long = mdns_instance_name(&"\u{e9}".repeat(60));
        assert!(long.len() <= MAX_INSTANCE_BYTES);
        assert_eq!(long, "\u{e9}".repeat(31));
    }

    #[test]
    fn broadcast_addresses() {
        let ip = Ipv4Addr::new(192, 168, 1, 5);
        assert_eq!(
            directed_broadcast(ip, Ipv4Addr::new(255, 255, 255, 0)),
            Some(Ipv4Addr::new(192, 168, 1, 255))
        );
        assert_eq!(
            directed_broadcast(Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(255, 0, 0, 0)),
            Some(Ipv4Addr::new(10, 255, 255, 255))
        );
        assert_eq!(
            directed_broadcast(ip, Ipv4Addr::new(255, 255, 255, 252)),
            Some(Ipv4Addr::new(192, 168, 1, 7))
        );
        assert_eq!(
            directed_broadcast(ip, Ipv4Addr::new(255, 255, 255, 254)),
            None
        );
        assert_eq!(
            directed_broadcast(ip, Ipv4Addr::new(255, 255, 255, 255)),
            None
        );
        assert_eq!(directed_broadcast(ip, Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(
            directed_broadcast(Ipv4Addr::LOCALHOST, Ipv4Addr::new(255, 0, 0, 0)),
            None
        );
        assert!(same_network(
            ip,
            Ipv4Addr::new(192, 168, 1, 255),
            Ipv4Addr::new(255, 255, 255, 0)
        ));
        assert!(!same_network(
            ip,
            Ipv4Addr::new(192, 168, 2, 255),
            Ipv4Addr::new(255, 255, 255, 0)
        ));
    }

    #[test]
    fn scan_table_merges_by_address_and_port() {
        let mut t = ScanTable::new();
        let src = v4(192, 168, 1, 5);
        assert!(t.add_datagram(src, b"LANTALK_SERVER:192.168.1.5:5050"));
        assert!(t.add_datagram(src, b"LANTALK_SERVER:192.168.1.5:6000"));
        assert!(t.add_datagram(src, &encode_info(&sample())));
        assert!(!t.add_datagram(src, b"garbage"));
        assert_eq!(t.ignored, 1);
        let mdns = ServerAnnouncement {
            addr: None,
            users: 4,
            ..sample()
        };
        t.add_mdns(&[v4(192, 168, 1, 5), "fe80::1".parse().unwrap()], &mdns);
        let all = t.servers();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0].name.as_deref(), Some("Hackathon"));
        assert_eq!(all[0].port, 5050);
        assert_eq!(all[0].users, Some(4));
        assert_eq!(all[0].via(), "beacon+mdns");
        assert_eq!(all[1].name, None);
        assert_eq!(all[1].port, 6000);
        assert_eq!(all[1].via(), "beacon");
    }

    #[test]
    fn scan_table_addresses() {
        let mut t = ScanTable::new();
        // LanTalk 2.0 without a LAN route says 127.0.0.1: use the source.
        t.add_datagram(v4(10, 0, 0, 7), b"LANTALK_SERVER:127.0.0.1:5050");
        t.add_datagram(v4(10, 0, 0, 8), b"LANTALK_SERVER:0.0.0.0:5050");
        // On this machine, loopback is right.
        t.add_datagram(v4(127, 0, 0, 1), b"LANTALK_SERVER:127.0.0.1:5050");
        let addrs: Vec<_> = t.servers().iter().map(|s| s.addr.unwrap()).collect();
        assert_eq!(addrs, [v4(10, 0, 0, 7), v4(10, 0, 0, 8), v4(127, 0, 0, 1)]);
        // mDNS with only link-local IPv6 is unusable.
        let mut t = ScanTable::new();
        t.add_mdns(&["fe80::1".parse().unwrap()], &sample());
        assert!(t.is_empty());
        t.add_mdns(
            &["2001:db8::1".parse().unwrap(), v4(10, 0, 0, 1)],
            &sample(),
        );
        assert_eq!(t.servers()[0].addr, Some(v4(10, 0, 0, 1)));
    }

    #[test]
    fn scan_table_is_bounded() {
        let mut t = ScanTable::new();
        for i in 0..(MAX_FOUND as u32 + 100) {
            let beacon = encode_legacy(Ipv4Addr::from(0x0a00_0000 + i), 5050);
            t.add_datagram(v4(10, 0, 0, 1), &beacon);
        }
        assert_eq!(t.len(), MAX_FOUND);
    }
}
