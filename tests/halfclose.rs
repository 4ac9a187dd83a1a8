//! End-to-end tests of how the server lets go of a connection it closed
//! (a refusal, a login timeout): the real `lantalk-smol` and `lantalk-std`
//! binaries and raw TCP peers on loopback.
//!
//! The server half-closes first, so that the peer reads everything it was
//! told before the end of the stream; but a peer that then never closes its
//! side must not keep the socket (a file descriptor, and in the std runtime
//! on Linux an epoll entry) for ever. Within a few seconds the server closes
//! fully, whatever the peer does:
//!
//! * a peer that keeps writing after the end of the stream gets a reset or
//!   a broken pipe;
//! * (Linux) a peer that stays silent: the server's open sockets go back to
//!   what they were before it connected (counted in /proc/PID/fd).
//!
//! Every wait is bounded (well above the server's grace period, which is a
//! few seconds); nothing asserts on timing beyond that bound.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/tempdir.rs"]
mod tempdir;

use ours::{OurServer, SMOL, STD};

/// How long after the end of the stream the server must have closed fully.
const BOUND: Duration = Duration::from_secs(10);

macro_rules! halfclose_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            halfclose_tests!(@tests $bin;
                writing_peer_is_reset_after_login_timeout,
                writing_peer_is_reset_after_refusal,
                #[cfg(target_os = "linux")]
                silent_peers_sockets_are_closed,
            );
        }
    };
    (@tests $bin:expr; $($(#[$meta:meta])* $name:ident,)*) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                super::$name($bin)
            }
        )*
    };
}

halfclose_tests!(smol, super::SMOL);
halfclose_tests!(std_rt, super::STD);

/// `BIN server` on 127.0.0.1 port 0, plaintext allowed (the peers here
/// speak the plain protocol), with `args`.
fn start_server(bin: &str, args: &[&str]) -> OurServer {
    OurServer::start(bin, &[&["--allow-plaintext"], args].concat())
}

/// Connects, sends `first` (if any), and reads until the server ends the
/// stream.
fn connect_until_eof(s: &OurServer, first: Option<&str>) -> TcpStream {
    let mut peer = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    peer.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    if let Some(line) = first {
        peer.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return peer,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the server should end the stream, not fail it: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the server never ended the stream\n{}",
            s.proc.report()
        );
    }
}

/// Keeps writing a byte every 200 ms (and reading) after the end of the
/// stream, never closing; the server must close fully, which shows as a
/// reset or a broken pipe here, within [`BOUND`].
fn expect_reset_while_writing(s: &OurServer, mut peer: TcpStream) {
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = Instant::now() + BOUND;
    let mut buf = [0u8; 64];
    loop {
        if let Err(e) = peer.write_all(b"x") {
            assert!(is_closed(&e), "unexpected write error: {e}");
            return;
        }
        match peer.read(&mut buf) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                assert!(is_closed(&e), "unexpected read error: {e}");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server still held the connection {BOUND:?} after ending the stream\n{}",
            s.proc.report()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// The login deadline is longer than the std runtime's reader idle time
/// (2 s), so the connection waits without a reader when it is closed.
fn writing_peer_is_reset_after_login_timeout(bin: &str) {
    let s = start_server(bin, &["--auth-timeout", "3"]);
    let peer = connect_until_eof(&s, None);
    expect_reset_while_writing(&s, peer);
}

/// A login that is refused at once (an invalid name).
fn writing_peer_is_reset_after_refusal(bin: &str) {
    let s = start_server(bin, &[]);
    let peer = connect_until_eof(&s, Some(r#"{"username": "no spaces allowed"}"#));
    expect_reset_while_writing(&s, peer);
}

/// The sockets the server process has open.
#[cfg(target_os = "linux")]
fn open_sockets(s: &OurServer) -> usize {
    let dir = format!("/proc/{}/fd", s.proc.child.id());
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Peers that read the end of the stream and then say nothing and never
/// close: the server closes their sockets anyway. (Before, in the std
/// runtime, such a connection stayed in the idle watcher for ever.)
#[cfg(target_os = "linux")]
fn silent_peers_sockets_are_closed(bin: &str) {
    let s = start_server(bin, &["--auth-timeout", "3"]);
    let before = open_sockets(&s);
    let peers: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).expect("connect"))
        .collect();
    let peers: Vec<TcpStream> = peers
        .into_iter()
        .map(|mut p| {
            p.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(30);
            while p.read(&mut buf).expect("the stream ends without error") > 0 {
                assert!(Instant::now() < deadline, "the stream never ended");
            }
            p
        })
        .collect();
    let deadline = Instant::now() + BOUND;
    loop {
        let now = open_sockets(&s);
        if now <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{BOUND:?} after the end of the stream, the server still has {now} sockets \
             open ({before} before the peers came)\n{}",
            s.proc.report()
        );
        thread::sleep(Duration::from_millis(200));
    }
    drop(peers);
}
