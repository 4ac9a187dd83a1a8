//! The web port end to end, for both binaries: the URL printed at start,
//! the page and the wasm over raw HTTP with their headers, the WebSocket
//! upgrade (a page from elsewhere refused, our own answered with the
//! greeting in a binary frame), `--no-web`, and a `--web-port` that cannot
//! be had.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/tempdir.rs"]
mod tempdir;

use ours::{bin_label, server_command, OurServer, SMOL, STD};
use proc::{Proc, START};
use tempdir::TempDir;

macro_rules! web_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            web_tests!(@tests $bin;
                the_page_and_the_wasm_are_served_with_their_headers,
                websockets_from_other_sites_are_refused_and_ours_are_greeted,
                no_web_prints_no_url,
                a_web_port_that_is_taken_is_an_error,
            );
        }
    };
    (@tests $bin:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                super::$name($bin)
            }
        )*
    };
}

web_tests!(smol, super::SMOL);
web_tests!(std_rt, super::STD);

/// The port of the `Web client: http://127.0.0.1:PORT/` line.
fn web_port(server: &OurServer) -> u16 {
    server
        .proc
        .wait_out("\"Web client: http://127.0.0.1:PORT/\"", START, |text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("Web client: http://127.0.0.1:"))
                .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        })
}

/// Sends `request` and reads until the server closes (or, for an upgrade,
/// until `enough` says it has what it needs).
fn exchange(port: u16, request: &str, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the web port");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    while !enough(&got) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading the answer: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    got
}

fn get(port: u16, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    String::from_utf8_lossy(&exchange(port, &request, |_| false)).into_owned()
}

fn the_page_and_the_wasm_are_served_with_their_headers(bin: &str) {
    let server = OurServer::start(bin, &[]);
    let port = web_port(&server);
    let page = get(port, "/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("\r\nContent-Security-Policy: default-src 'none'; "));
    assert!(page.contains("\r\nX-Content-Type-Options: nosniff\r\n"));
    assert!(page.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"));
    let wasm = get(port, "/lantalk_web.wasm");
    assert!(wasm.starts_with("HTTP/1.1 200 OK\r\n"), "{wasm}");
    assert!(wasm.contains("\r\nContent-Type: application/wasm\r\n"));
    let missing = get(port, "/../Cargo.toml");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
}

fn upgrade(port: u16, origin: &str) -> String {
    upgrade_to(&format!("127.0.0.1:{port}"), origin)
}

fn upgrade_to(host: &str, origin: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

fn websockets_from_other_sites_are_refused_and_ours_are_greeted(bin: &str) {
    let server = OurServer::start(bin, &[]);
    let port = web_port(&server);
    let refused = exchange(port, &upgrade(port, "http://evil.example"), |_| false);
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.starts_with("HTTP/1.1 403 "), "{refused}");
    // DNS rebinding: a page on evil.example whose name was made to resolve
    // to this server is same-origin with itself; its Host gives it away.
    let rebound = exchange(
        port,
        &upgrade_to(
            &format!("evil.example:{port}"),
            &format!("http://evil.example:{port}"),
        ),
        |_| false,
    );
    let rebound = String::from_utf8_lossy(&rebound);
    assert!(rebound.starts_with("HTTP/1.1 403 "), "{rebound}");

    let origin = format!("http://127.0.0.1:{port}");
    let head_end = |b: &[u8]| b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    // The 101, then a whole binary frame (its length within the first 4 bytes).
    let greeted = exchange(port, &upgrade(port, &origin), |b| {
        head_end(b).is_some_and(|end| {
            let f = &b[end..];
            f.len() >= 4 && {
                let (len, at) = match f[1] {
                    126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
                    n => (n as usize, 2),
                };
                f.len() >= at + len
            }
        })
    });
    let end = head_end(&greeted).expect("an answer");
    let head = String::from_utf8_lossy(&greeted[..end]);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    let frame = &greeted[end..];
    assert_eq!(frame[0], 0x82, "a final binary frame");
    let payload = String::from_utf8_lossy(&frame[2..]);
    assert!(payload.contains("\"auth_request\""), "{payload}");
}

fn no_web_prints_no_url(bin: &str) {
    let server = OurServer::start(bin, &["--no-web"]);
    // The URLs are printed with the "Listening on" line, which was seen.
    assert!(
        !server.proc.has_line(|l| l.contains("Web client")),
        "{}",
        server.proc.report()
    );
}

fn a_web_port_that_is_taken_is_an_error(bin: &str) {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = TempDir::new("server");
    let cmd = server_command(bin, dir.path(), &["--web-port", &port]);
    let mut proc = Proc::spawn(format!("{} server", bin_label(bin)), cmd);
    let said = proc.expect_failure();
    assert!(said.contains("cannot serve the web client"), "{said}");
}
