//! The web port, driven by hand as a browser would: the page's files with
//! their headers, refusals, the request head's deadline, the WebSocket
//! upgrade and its frames, and a whole encrypted login and chat carried in
//! WebSocket frames by our own `Client`.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;

use common::ws::{binary, frame, upgrade_request, ServerFrames};
use common::{addr, at, ServerScript};
use lantalk_core::client::{Client, ClientAction, ClientConfig, ClientEvent, ClientSecure, NewKey};
use lantalk_core::password::PasswordCheck;
use lantalk_core::secure::StaticKey;
use lantalk_core::server::{Action, ConnId, EventKind, Level, SecureConfig};
use lantalk_core::web::{content_type, WebAsset, WebConfig};
use lantalk_core::{BanList, Now, Server, ServerConfig};

const PAGE: &[u8] = b"<!doctype html><p>LanTalk</p>";
const PAGE_GZ: &[u8] = b"(pretend gzip)";
const WASM: &[u8] = b"\0asm\x01\0\0\0";

fn web_config() -> ServerConfig {
    let asset = |path: &str, body: &[u8], gzip: Option<&[u8]>| WebAsset {
        path: path.into(),
        content_type: content_type(path),
        body: Arc::from(body),
        gzip: gzip.map(Arc::from),
    };
    ServerConfig {
        web: Some(WebConfig {
            assets: vec![
                asset("/index.html", PAGE, Some(PAGE_GZ)),
                asset("/lantalk_web.wasm", WASM, None),
            ],
        }),
        ..ServerConfig::default()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The answer to `request` on a new web connection: it always closes.
fn ask(request: &str) -> String {
    let mut s = ServerScript::new(web_config());
    let conn = s.connect_web("10.0.0.9:40000");
    s.input(conn, request).unwrap();
    assert!(
        s.closed(conn),
        "closed after the answer:\n{}",
        s.transcript()
    );
    text(&s.bytes_to(conn))
}

fn status(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[test]
fn the_page_is_served_gzipped_with_its_security_headers() {
    let answer = ask("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip, deflate\r\n\r\n");
    assert_eq!(status(&answer), "HTTP/1.1 200 OK");
    for header in [
        "Content-Type: text/html; charset=utf-8",
        &format!("Content-Length: {}", PAGE_GZ.len()),
        "Content-Encoding: gzip",
        "Vary: Accept-Encoding",
        "Cache-Control: no-cache",
        "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer",
        "X-Frame-Options: DENY",
        "Content-Security-Policy: default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ] {
        assert!(
            answer.contains(&format!("\r\n{header}\r\n")),
            "{header} in\n{answer}"
        );
    }
    assert!(answer.ends_with(&format!("\r\n\r\n{}", text(PAGE_GZ))));

    let plain = ask("GET /index.html?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(!plain.contains("Content-Encoding"));
    assert!(plain.ends_with(&format!("\r\n\r\n{}", text(PAGE))));
}

#[test]
fn wasm_has_its_type_and_no_page_policy_and_head_has_no_body() {
    let answer = ask("GET /lantalk_web.wasm HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n");
    assert!(answer.contains("\r\nContent-Type: application/wasm\r\n"));
    assert!(!answer.contains("Content-Security-Policy"));
    assert!(!answer.contains("Content-Encoding"));
    assert!(answer.ends_with(&text(WASM)));
    let head = ask("HEAD /lantalk_web.wasm HTTP/1.1\r\n\r\n");
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", WASM.len())));
    assert!(head.ends_with("\r\n\r\n"));
}

#[test]
fn only_exact_asset_paths_are_served() {
    for path in [
        "/nope",
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/..%2fetc%2fpasswd",
        "//etc/passwd",
        "/./index.html",
        "/index.html/",
        "/INDEX.HTML",
    ] {
        let answer = ask(&format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert_eq!(status(&answer), "HTTP/1.1 404 Not Found", "{path}");
        assert!(answer.contains("X-Content-Type-Options: nosniff"));
    }
    assert_eq!(
        status(&ask("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(status(&ask("GET\r\n\r\n")), "HTTP/1.1 400 Bad Request");
}

#[test]
fn an_oversized_head_is_refused_as_it_grows() {
    let mut s = ServerScript::new(web_config());
    let conn = s.connect_web("10.0.0.9:40000");
    s.input(conn, "GET / HTTP/1.1\r\n").unwrap();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    for _ in 0..10 {
        s.input(conn, &filler).unwrap();
        if s.closed(conn) {
            break;
        }
    }
    assert!(s.closed(conn), "{}", s.transcript());
    assert_eq!(
        status(&text(&s.bytes_to(conn))),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Nothing more is read.
    s.input(conn, "\r\n").unwrap();
    assert!(s.last.is_empty());
}

#[test]
fn too_many_headers_are_refused() {
    let headers = "A: b\r\n".repeat(65);
    let answer = ask(&format!("GET / HTTP/1.1\r\n{headers}\r\n"));
    assert_eq!(
        status(&answer),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[test]
fn a_slow_head_is_closed_after_ten_seconds() {
    let mut s = ServerScript::new(web_config());
    let conn = s.connect_web("10.0.0.9:40000");
    assert_eq!(s.server.poll_timeout(), Some(at(10.0).instant));
    s.at(9.0);
    s.input(conn, "GET / HT").unwrap();
    s.timeout_at(9.9);
    assert!(!s.closed(conn));
    s.timeout();
    assert!(s.closed(conn), "{}", s.transcript());
    assert!(s.bytes_to(conn).is_empty());
    // A new connection is counted again: the address was released.
    let again = s.connect_web("10.0.0.9:40001");
    s.input(again, "GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(status(&text(&s.bytes_to(again))), "HTTP/1.1 200 OK");
}

/// An upgrade to `host` from a page at `origin` is refused with a 403 and
/// a warning naming the origin, and leaves no connection behind.
fn refused_upgrade(host: &str, origin: &str) {
    let mut s = ServerScript::new(web_config());
    let conn = s.connect_web("10.0.0.9:40000");
    s.input(conn, upgrade_request(host, Some(origin))).unwrap();
    assert!(s.closed(conn), "{host} from {origin}");
    assert_eq!(status(&text(&s.bytes_to(conn))), "HTTP/1.1 403 Forbidden");
    assert!(s.last.iter().any(|a| matches!(a,
        Action::Event(e) if e.level == Level::Warning && e.kind == EventKind::Connection
            && e.message.contains("evil.example"))));
    assert_eq!(s.server.connection_count(), 0);
}

#[test]
fn a_websocket_from_another_site_is_refused() {
    refused_upgrade("192.168.1.5:5080", "http://evil.example");
}

/// DNS rebinding: `evil.example` made to resolve to the server's address
/// is same-origin with itself, but its `Host` is no LAN name.
#[test]
fn a_websocket_from_a_rebound_name_is_refused() {
    refused_upgrade("evil.example:5080", "http://evil.example:5080");
}

/// A web connection upgraded to a WebSocket; the frames it was sent.
fn upgraded(s: &mut ServerScript, origin: Option<&str>) -> (ConnId, Vec<(u8, Vec<u8>)>) {
    let conn = s.connect_web("10.0.0.9:40000");
    s.input(conn, upgrade_request("192.168.1.5:5080", origin))
        .unwrap();
    let bytes = s.bytes_to(conn);
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = text(&bytes[..end]);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    (conn, ServerFrames::default().push(&bytes[end..]))
}

#[test]
fn the_upgrade_answers_101_and_the_greeting_comes_in_a_binary_frame() {
    let mut s = ServerScript::new(web_config());
    let (conn, frames) = upgraded(&mut s, Some("http://192.168.1.5:5080"));
    assert!(!s.closed(conn));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, 0x2, "binary");
    assert!(text(&frames[0].1).starts_with(r#"{"type": "auth_request""#));
    // The request's deadline no longer applies; the login timer does.
    s.timeout();
    assert!(!s.closed(conn));
    assert_eq!(s.server.poll_timeout(), Some(at(15.0).instant));

    // A login split across frames and reads: one line to the server.
    let login = common::login("ana", "");
    let framed = [
        binary(&login.as_bytes()[..5]),
        binary(&login.as_bytes()[5..]),
    ]
    .concat();
    let (a, b) = framed.split_at(7);
    s.input(conn, a).unwrap();
    s.input(conn, b).unwrap();
    assert_eq!(s.server.usernames(), ["ana"]);
    let welcome = ServerFrames::default().push(&s.bytes_to(conn));
    assert!(welcome.iter().all(|(op, _)| *op == 0x2));
    assert!(
        text(&welcome[0].1).contains("auth_ok"),
        "{}",
        s.transcript()
    );
}

#[test]
fn an_unmasked_frame_closes_with_a_protocol_error() {
    let mut s = ServerScript::new(web_config());
    let (conn, _) = upgraded(&mut s, None);
    s.input(conn, [0x82, 0x01, b'x']).unwrap();
    assert!(s.closed(conn));
    let frames = ServerFrames::default().push(&s.bytes_to(conn));
    assert_eq!(frames, [(0x8, 1002u16.to_be_bytes().to_vec())]);
    assert_eq!(s.server.connection_count(), 0);
}

#[test]
fn a_text_frame_closes_as_unsupported() {
    let mut s = ServerScript::new(web_config());
    let (conn, _) = upgraded(&mut s, None);
    s.input(conn, frame(0x1, b"{}\n")).unwrap();
    let frames = ServerFrames::default().push(&s.bytes_to(conn));
    assert_eq!(frames, [(0x8, 1003u16.to_be_bytes().to_vec())]);
}

#[test]
fn ping_is_answered_and_close_is_returned() {
    let mut s = ServerScript::new(web_config());
    let (conn, _) = upgraded(&mut s, None);
    s.input(conn, frame(0x9, b"hi")).unwrap();
    let frames = ServerFrames::default().push(&s.bytes_to(conn));
    assert_eq!(frames, [(0xa, b"hi".to_vec())]);
    s.input(conn, binary(common::login("ana", "").as_bytes()))
        .unwrap();
    s.input(conn, frame(0x8, &1000u16.to_be_bytes())).unwrap();
    assert!(s.closed(conn));
    let frames = ServerFrames::default().push(&s.bytes_to(conn));
    assert_eq!(frames.last(), Some(&(0x8, 1000u16.to_be_bytes().to_vec())));
    assert!(s.server.usernames().is_empty());
}

#[test]
fn shutdown_closes_websockets_as_going_away() {
    let mut s = ServerScript::new(web_config());
    let (conn, _) = upgraded(&mut s, None);
    let waiting = s.connect_web("10.0.0.9:40001");
    s.shutdown();
    assert!(s.closed(conn) && s.closed(waiting));
    let frames = ServerFrames::default().push(&s.bytes_to(conn));
    assert_eq!(frames.last(), Some(&(0x8, 1001u16.to_be_bytes().to_vec())));
}

// ── A whole encrypted session over WebSockets ───────────────────────────────

/// One browser: our client, its connection, and what it has heard.
struct Browser {
    client: Client,
    conn: ConnId,
    frames: ServerFrames,
    /// The bytes before the 101's end are the HTTP answer.
    upgraded: bool,
    head: Vec<u8>,
    events: Vec<ClientEvent>,
}

fn secure_server() -> Server {
    let config = ServerConfig {
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([0x11; 32]),
            rng_seed: [5; 32],
            suites: Vec::new(),
        }),
        allow_plaintext: false,
        ..web_config()
    };
    Server::new(config, at(0.0), BanList::new())
}

fn browser(server: &mut Server, now: Now, name: &str, port: u16, key: u8) -> Browser {
    let mut config = ClientConfig::new(name, None);
    config.allow_plaintext = false;
    config.secure = Some(ClientSecure {
        identity: StaticKey::from_private([key; 32]),
        rng_seed: [key; 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    let conn = server.handle_connect_web(now, addr(&format!("10.0.0.9:{port}")));
    let request = upgrade_request("10.0.0.1:5080", Some("http://10.0.0.1:5080"));
    server.handle_input(now, conn, request.as_bytes()).unwrap();
    Browser {
        client: Client::new(config, now),
        conn,
        frames: ServerFrames::default(),
        upgraded: false,
        head: Vec::new(),
        events: Vec::new(),
    }
}

/// Moves bytes both ways (the client's in masked binary frames, the
/// server's out of its frames) until neither side has more to say.
fn drive(server: &mut Server, now: Now, browsers: &mut [Browser]) {
    for _ in 0..1000 {
        let mut moved = false;
        let mut to_server = VecDeque::new();
        while let Some(action) = server.poll_action() {
            moved = true;
            match action {
                Action::Send { conn, bytes } => {
                    let b = browsers.iter_mut().find(|b| b.conn == conn).unwrap();
                    let mut bytes = &bytes[..];
                    if !b.upgraded {
                        b.head.extend_from_slice(bytes);
                        let Some(end) = b.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        assert!(b.head.starts_with(b"HTTP/1.1 101 "));
                        b.upgraded = true;
                        let rest = b.head.split_off(end + 4);
                        for (op, payload) in b.frames.push(&rest) {
                            assert_eq!(op, 0x2);
                            b.client.handle_input(now, &payload);
                        }
                        bytes = &[];
                    }
                    for (op, payload) in b.frames.push(bytes) {
                        assert_eq!(op, 0x2, "only binary frames carry LanTalk");
                        b.client.handle_input(now, &payload);
                    }
                }
                Action::CheckPassword(check) => {
                    to_server.push_back(PasswordCheck::clone(&check).run());
                }
                Action::Close { conn, .. } => panic!("{conn} closed"),
                _ => {}
            }
        }
        for answer in to_server {
            server.handle_password_checked(now, answer);
        }
        for b in browsers.iter_mut() {
            while let Some(action) = b.client.poll_action() {
                moved = true;
                match action {
                    ClientAction::Send(bytes) => {
                        server.handle_input(now, b.conn, &binary(&bytes)).unwrap();
                    }
                    ClientAction::Event(e) => b.events.push(e),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        if !moved {
            return;
        }
    }
    panic!("never settled");
}

#[test]
fn an_encrypted_login_and_chat_over_websockets() {
    let now = at(0.0);
    let mut server = secure_server();
    let mut browsers = [
        browser(&mut server, now, "ana", 40000, 0x21),
        browser(&mut server, now, "ben", 40001, 0x22),
    ];
    drive(&mut server, now, &mut browsers);
    assert_eq!(server.usernames(), ["ana", "ben"]);
    let later = at(1.0);
    browsers[0]
        .client
        .handle_user_line(later, "hello over a WebSocket");
    drive(&mut server, later, &mut browsers);
    assert!(
        browsers[1].events.iter().any(|e| matches!(e,
            ClientEvent::Message { user, text, .. }
                if user == "ana" && text == "hello over a WebSocket")),
        "{:#?}",
        browsers[1].events
    );
    assert!(server.roster().iter().all(|u| !u.contains("unencrypted")));
}
