//! LAN discovery parsing: `parse_datagram`, `parse_txt` and `ScanTable` on
//! hostile bytes.
//!
//! Input: a mode byte, then
//! * mode 0 — one datagram (the rest of the input);
//! * mode 1 — a TXT record: `u16` port, then `key=value` entries separated by
//!   `\0` (entries that are not UTF-8 are dropped, as the scanner does);
//! * mode 2 — a scan: repeated `[source byte, u16-length-prefixed datagram]`.
//!
//! Checks: no panic; whatever is accepted is valid and re-encodes to
//! something that parses back to it (the info datagram within LanTalk 2.0's
//! 256-byte buffer, its name possibly shortened); the scan table stays
//! within `MAX_FOUND` and counts every datagram as either accepted or
//! ignored.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use lantalk_core::discovery::{
    encode_info, encode_legacy, parse_datagram, parse_txt, txt_records, Datagram, ScanTable,
    ServerAnnouncement, LEGACY_RECV_BUFFER, MAX_FOUND,
};
use lantalk_fuzz::{show, Reader};
use libfuzzer_sys::fuzz_target;

/// `back` is `a` as re-encoded: the same but for a name that may have been
/// shortened (to a non-empty prefix) and an address that may have been left out.
fn same_but_shortened(a: &ServerAnnouncement, back: &ServerAnnouncement) {
    assert!(back.is_valid(), "re-encoded announcement invalid: {back:?}");
    assert!(
        !back.name.is_empty() && a.name.starts_with(&back.name),
        "name {:?} is not a prefix of {:?}",
        back.name,
        a.name
    );
    assert!(
        back.addr.is_none() || back.addr == a.addr,
        "{a:?} vs {back:?}"
    );
    let strip = |x: &ServerAnnouncement| ServerAnnouncement {
        name: String::new(),
        addr: None,
        ..x.clone()
    };
    assert_eq!(strip(a), strip(back));
}

fn check_datagram(bytes: &[u8]) {
    match parse_datagram(bytes) {
        None => {}
        Some(Datagram::Legacy { ip, port }) => {
            assert_ne!(port, 0);
            let again = encode_legacy(ip, port);
            assert_eq!(
                parse_datagram(&again),
                Some(Datagram::Legacy { ip, port }),
                "legacy beacon does not round-trip: {}",
                show(bytes)
            );
        }
        Some(Datagram::Info(a)) => {
            assert!(a.is_valid(), "accepted an invalid announcement: {a:?}");
            let again = encode_info(&a);
            assert!(again.len() <= LEGACY_RECV_BUFFER, "{} bytes", again.len());
            match parse_datagram(&again) {
                Some(Datagram::Info(back)) => same_but_shortened(&a, &back),
                other => panic!("re-encoded {} parses as {other:?}", show(&again)),
            }
        }
    }
}

fn check_txt(r: &mut Reader) {
    let port = r.u16();
    let rest = r.bytes(usize::MAX);
    let mut props: Vec<(&str, &str)> = Vec::new();
    for entry in rest.split(|&b| b == 0) {
        let Ok(entry) = std::str::from_utf8(entry) else {
            continue;
        };
        props.push(entry.split_once('=').unwrap_or((entry, "")));
    }
    let Some(a) = parse_txt(port, props) else {
        return;
    };
    assert!(a.is_valid(), "accepted an invalid TXT record: {a:?}");
    let txt = txt_records(&a);
    for (k, v) in &txt {
        assert!(k.len() + 1 + v.len() <= 255, "TXT string too long: {k}={v}");
    }
    let back = parse_txt(port, txt.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .expect("our own TXT record parses");
    same_but_shortened(&a, &back);
}

fn check_scan(r: &mut Reader) {
    let mut table = ScanTable::new();
    let mut accepted = 0usize;
    let mut seen = 0usize;
    while !r.is_empty() && seen < 512 {
        let source = IpAddr::V4(Ipv4Addr::new(10, 0, 0, r.u8()));
        let datagram = r.blob16();
        seen += 1;
        if table.add_datagram(source, datagram) {
            accepted += 1;
        }
        assert!(table.len() <= MAX_FOUND);
    }
    assert_eq!(accepted + table.ignored, seen);
    for s in table.servers() {
        assert_ne!(s.port, 0);
        assert!(s.addr.is_some());
        if let Some(name) = &s.name {
            assert!(lantalk_core::discovery::valid_name(name), "{name:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    match r.u8() % 3 {
        0 => check_datagram(r.bytes(usize::MAX)),
        1 => check_txt(&mut r),
        _ => check_scan(&mut r),
    }
});
