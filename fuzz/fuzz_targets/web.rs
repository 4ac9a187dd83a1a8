//! A web connection fed hostile bytes: the HTTP request head, then (after
//! an upgrade) WebSocket frames carrying LanTalk.
//!
//! Input: `u8` mode (bit 0: a genuine upgrade request goes first, so the
//! stream is frames; bit 1: the server has assets), `u8` split count (mod
//! 33), that many offset bytes (`b * len / 256`), then the stream.
//!
//! Checks: no panic; every step drains; no deadline in the past; an HTTP
//! answer is the first thing sent and starts with `HTTP/1.1 `; nothing is
//! sent after the connection's `Close`, which comes once; a WebSocket's
//! bytes after the 101 parse as whole server frames (unmasked, binary or
//! control) before its close; the connection is closed by the head's
//! deadline at the latest.
#![no_main]

use std::sync::Arc;

use lantalk_core::server::Action;
use lantalk_core::web::{content_type, WebAsset, WebConfig};
use lantalk_core::{BanList, Now, Server, ServerConfig};
use lantalk_fuzz::{chunks, show, Reader, MAX_ACTIONS_PER_STEP};
use libfuzzer_sys::fuzz_target;

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: h:1\r\nOrigin: http://h:1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

fn config(assets: bool) -> ServerConfig {
    let web = assets.then(|| WebConfig {
        assets: vec![WebAsset {
            path: "/index.html".into(),
            content_type: content_type("index.html"),
            body: Arc::from(&b"<p>hi</p>"[..]),
            gzip: Some(Arc::from(&b"gz"[..])),
        }],
    });
    ServerConfig {
        web,
        ..ServerConfig::default()
    }
}

/// What the connection has been sent so far, checked as it grows.
#[derive(Default)]
struct Seen {
    out: Vec<u8>,
    closed: bool,
}

impl Seen {
    fn check(&self, upgrade: bool) {
        if self.out.is_empty() {
            return;
        }
        let start = b"HTTP/1.1 ";
        let n = self.out.len().min(start.len());
        assert_eq!(&self.out[..n], &start[..n], "answer {}", show(&self.out));
        if !upgrade || !self.out.starts_with(b"HTTP/1.1 101 ") {
            return;
        }
        let Some(end) = self.out.windows(4).position(|w| w == b"\r\n\r\n") else {
            return;
        };
        let mut frames = &self.out[end + 4..];
        let mut close_seen = false;
        while frames.len() >= 2 {
            assert!(!close_seen, "a frame after the close frame");
            assert_eq!(frames[1] & 0x80, 0, "server frames are unmasked");
            let op = frames[0] & 0x0f;
            assert!(matches!(op, 0x2 | 0x8 | 0xa), "opcode {op}");
            let (len, at) = match frames[1] & 0x7f {
                126 if frames.len() >= 4 => {
                    (u16::from_be_bytes([frames[2], frames[3]]) as usize, 4)
                }
                127 if frames.len() >= 10 => {
                    let mut b = [0; 8];
                    b.copy_from_slice(&frames[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if frames.len() < at + len {
                break;
            }
            close_seen = op == 0x8;
            frames = &frames[at + len..];
        }
    }
}

fn drain(server: &mut Server, now: Now, seen: &mut Seen, upgrade: bool) {
    for _ in 0..MAX_ACTIONS_PER_STEP {
        let Some(action) = server.poll_action() else {
            seen.check(upgrade);
            if let Some(t) = server.poll_timeout() {
                assert!(t >= now.instant, "a deadline in the past");
            }
            return;
        };
        match action {
            Action::Send { bytes, .. } => {
                assert!(!seen.closed, "sent after close: {}", show(&bytes));
                seen.out.extend_from_slice(&bytes);
            }
            Action::Close { .. } => {
                assert!(!seen.closed, "closed twice");
                seen.closed = true;
            }
            _ => {}
        }
    }
    panic!("actions never drained");
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mode = r.u8();
    let (upgrade, assets) = (mode & 1 != 0, mode & 2 != 0);
    let k = r.u8() % 33;
    let offsets = r.bytes(k as usize).to_vec();
    let mut stream = if upgrade {
        UPGRADE.to_vec()
    } else {
        Vec::new()
    };
    stream.extend_from_slice(r.bytes(usize::MAX));
    let mut offsets: Vec<usize> = offsets
        .iter()
        .map(|&b| b as usize * stream.len() / 256)
        .collect();
    offsets.sort_unstable();

    let mut now = Now::from_secs_f64(0.0);
    let mut server = Server::new(config(assets), now, BanList::new());
    let conn = server.handle_connect_web(now, "10.0.0.9:40000".parse().unwrap());
    let mut seen = Seen::default();
    drain(&mut server, now, &mut seen, upgrade);
    for (i, chunk) in chunks(&stream, &offsets).into_iter().enumerate() {
        now = Now::from_secs_f64(i as f64 * 0.25);
        server
            .handle_input(now, conn, chunk)
            .expect("the id is the server's");
        drain(&mut server, now, &mut seen, upgrade);
    }
    if !upgrade || !seen.out.starts_with(b"HTTP/1.1 101 ") {
        let end = Now::from_secs_f64(60.0);
        server.handle_timeout(end);
        drain(&mut server, end, &mut seen, upgrade);
        assert!(seen.closed, "an HTTP connection outlived its deadline");
    }
});
