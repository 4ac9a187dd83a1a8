//! The encrypted session, with the server and client state machines talking
//! to each other directly (`common::pair`): fixed keys, seeded randomness,
//! simulated time. A "wire" function between them lets a test tamper with,
//! replay or inspect the bytes, as an attacker on the network could.

mod common;

use common::pair::{Closed, Dir, Pair, PeerId, Seen, Wire};
use insta::assert_snapshot;
use lantalk_core::client::{ClientConfig, ClientSecure, NewKey};
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::secure::{StaticKey, Suite};
use lantalk_core::server::{Action, CloseReason, SecureConfig};
use lantalk_core::{Now, Server, ServerConfig};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn server_key() -> StaticKey {
    StaticKey::from_private([0x11; 32])
}

fn server_config(password: Option<&str>, allow_plaintext: bool) -> ServerConfig {
    ServerConfig {
        name: "Hub".into(),
        password: password.map(|p| PasswordHash::new(p, [3; 16], HashParams::INSECURE_FAST)),
        secure: Some(SecureConfig {
            identity: server_key(),
            rng_seed: [5; 32],
            suites: Vec::new(),
        }),
        allow_plaintext,
        ..ServerConfig::default()
    }
}

fn client_config(name: &str, password: Option<&str>, pinned: Option<Vec<u8>>) -> ClientConfig {
    let mut c = ClientConfig::new(name, password.map(str::to_string));
    c.allow_plaintext = false;
    c.secure = Some(ClientSecure {
        identity: StaticKey::from_private([0x22; 32]),
        rng_seed: [7; 32],
        pinned,
        on_new_key: NewKey::Accept,
    });
    c
}

/// The client of ours each test runs: the first peer to connect.
const CLIENT: PeerId = PeerId(0);

/// A server and our client on the wire `wire`, run until both wait.
fn linked(server: ServerConfig, client: ClientConfig, wire: Wire) -> Pair {
    let mut pair = Pair::with_wire(server, wire);
    pair.connect("client", "10.0.0.9:4000", client);
    pair
}

/// This file's steps and views of a [`Pair`]: our client (and sometimes
/// LanTalk 2.0 members beside it) and a transcript of what crossed the wire.
trait Link {
    fn note(&mut self, text: &str);
    fn type_line(&mut self, line: &str);
    /// A plaintext (LanTalk 2.0) member beside the encrypted client.
    fn plain_member(&mut self, name: &str) -> PeerId;
    fn joined(&self) -> bool;
    /// Every byte that crossed the wire, both ways.
    fn seen(&self) -> Vec<u8>;
    fn log(&self) -> String;
    fn client_events(&self) -> Vec<String>;
}

impl Link for Pair {
    fn note(&mut self, text: &str) {
        self.mark(format!("# {text}"));
    }

    fn type_line(&mut self, line: &str) {
        self.mark(format!("@ user types {line:?}"));
        self.with_client(CLIENT, |c, now| c.handle_user_line(now, line));
    }

    fn plain_member(&mut self, name: &str) -> PeerId {
        let peer = self.connect_raw(name, "10.0.0.7:4000");
        let login = lantalk_core::protocol::login(name, "");
        self.send_raw(peer, login.as_bytes());
        peer
    }

    fn joined(&self) -> bool {
        self.client(CLIENT).is_joined()
    }

    fn seen(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for seen in &self.trace {
            if let Seen::Bytes { bytes, .. } = seen {
                all.extend_from_slice(bytes);
            }
        }
        all
    }

    /// What each side did: our client's bytes and the server's actions (a
    /// member's own lines are not shown, what the server sends it is).
    fn log(&self) -> String {
        let mut log = String::new();
        for seen in &self.trace {
            let line = match seen {
                Seen::Mark(line) => line.clone(),
                Seen::Bytes { peer, dir, bytes } => match (self.is_raw(*peer), dir) {
                    (false, Dir::ToClient) => format!("  server -> client: {}", show_wire(bytes)),
                    (false, Dir::ToServer) => format!("  client -> server: {}", show_wire(bytes)),
                    (true, Dir::ToClient) => format!(
                        "  server -> {}: {}",
                        self.conn(*peer),
                        String::from_utf8_lossy(bytes).trim_end()
                    ),
                    (true, Dir::ToServer) => continue,
                },
                Seen::Server(Action::Close { conn, reason })
                    if self.peer_of(*conn) == Some(CLIENT) =>
                {
                    format!("  server closes: {reason:?}")
                }
                Seen::Server(Action::Event(e)) => {
                    format!("  server event: {} {}", e.level, e.message)
                }
                Seen::Server(other) => format!("  server: {other:?}"),
                Seen::Event { event, .. } => format!("  client event: {event:?}"),
                Seen::Closes { .. } => "  client closes".to_string(),
            };
            log.push_str(&line);
            log.push('\n');
        }
        log
    }

    fn client_events(&self) -> Vec<String> {
        self.events(CLIENT).map(|e| format!("{e:?}")).collect()
    }
}

/// Readable bytes are shown as text, frames as their sizes only (the
/// ciphertext is deterministic here, but not meaningful to a reader).
fn show_wire(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.ends_with('\n') && text.starts_with('{') => text.trim_end().to_string(),
        _ => {
            let mut sizes = Vec::new();
            let mut rest = bytes;
            while rest.len() >= 2 {
                let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                sizes.push(n.to_string());
                rest = &rest[(2 + n).min(rest.len())..];
            }
            format!("frames of {} bytes", sizes.join(", "))
        }
    }
}

fn transparent() -> Wire {
    Box::new(|_, bytes| vec![bytes])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn handshake_login_and_chat() {
    let mut link = linked(
        server_config(None, false),
        client_config("alice", None, None),
        transparent(),
    );
    assert!(link.joined());
    link.type_line("the secret plan");
    link.type_line("/users");
    assert!(!contains(&link.seen(), b"the secret plan"));
    assert!(
        !contains(&link.seen(), b"alice"),
        "even the name is encrypted"
    );
    assert_snapshot!(link.log());
}

#[test]
fn password_is_proven_without_crossing_the_wire() {
    let mut link = linked(
        server_config(Some("hunter2"), false),
        client_config("alice", Some("hunter2"), None),
        transparent(),
    );
    assert!(link.joined());
    assert!(!contains(&link.seen(), b"hunter2"));
    link.note("a second client with the wrong password");
    let mut bad = linked(
        server_config(Some("hunter2"), false),
        client_config("mallory", Some("hunter3"), None),
        transparent(),
    );
    assert!(!bad.joined());
    assert!(bad.client(CLIENT).is_closed());
    bad.note("the client saw the server's proof fail and left: a failed attempt");
    assert_snapshot!(format!("{}\n{}", link.log(), bad.log()));
}

#[test]
fn pinned_key_is_checked() {
    let right = linked(
        server_config(None, false),
        client_config("alice", None, Some(server_key().public().to_vec())),
        transparent(),
    );
    assert!(right.joined());
    let wrong = linked(
        server_config(None, false),
        client_config("alice", None, Some(vec![9; 32])),
        transparent(),
    );
    assert!(!wrong.joined());
    assert!(wrong.log().contains("KEY HAS CHANGED"), "{}", wrong.log());
    assert_snapshot!(wrong.log());
}

#[test]
fn tampered_offer_fails_the_handshake() {
    // Flip `needs_password` in the offer line: still valid JSON, so only the
    // prologue binding can notice.
    let wire: Wire = Box::new(|dir, bytes| {
        if dir == Dir::ToClient && bytes.starts_with(b"{\"type\": \"auth_request\"") {
            let text = String::from_utf8(bytes).unwrap();
            return vec![text
                .replace("\"ts\": \"12:00\"", "\"ts\": \"12:01\"")
                .into_bytes()];
        }
        vec![bytes]
    });
    let link = linked(
        server_config(None, false),
        client_config("alice", None, None),
        wire,
    );
    assert!(!link.joined());
    // The client notices first (the server's reply does not authenticate
    // under the prologue it saw) and leaves before saying anything more.
    assert!(link.log().contains("handshake failed"), "{}", link.log());
    assert!(link.client(CLIENT).is_closed());
    assert_eq!(link.closed(CLIENT), Some(Closed::ByPeer));
    assert_snapshot!(link.log());
}

#[test]
fn downgrade_is_refused() {
    // An attacker strips the offer: a client that pinned the key refuses even
    // though plaintext would otherwise be allowed.
    let strip: fn() -> Wire = || {
        Box::new(|dir, bytes| {
            if dir == Dir::ToClient && bytes.starts_with(b"{\"type\": \"auth_request\"") {
                let text = String::from_utf8(bytes).unwrap();
                let cut = text.find(", \"secure\"").unwrap();
                return vec![format!("{}}}\n", &text[..cut]).into_bytes()];
            }
            vec![bytes]
        })
    };
    let mut pinned = client_config("alice", None, Some(server_key().public().to_vec()));
    pinned.allow_plaintext = true;
    let link = linked(server_config(None, true), pinned, strip());
    assert!(!link.joined());
    assert!(link.log().contains("no longer offers"), "{}", link.log());
    let unpinned = linked(
        server_config(None, true),
        client_config("bob", None, None),
        strip(),
    );
    assert!(!unpinned.joined());
    assert!(
        unpinned.log().contains("--allow-plaintext"),
        "{}",
        unpinned.log()
    );
    assert_snapshot!(format!("{}\n{}", link.log(), unpinned.log()));
}

#[test]
fn replayed_frame_closes_the_connection() {
    use std::cell::Cell;
    use std::rc::Rc;
    let replay = Rc::new(Cell::new(false));
    let armed = Rc::clone(&replay);
    let wire: Wire = Box::new(move |dir, bytes| {
        if dir == Dir::ToServer && armed.replace(false) {
            return vec![bytes.clone(), bytes];
        }
        vec![bytes]
    });
    let mut link = linked(
        server_config(None, false),
        client_config("alice", None, None),
        wire,
    );
    assert!(link.joined());
    link.note("an attacker sends the next frame twice");
    replay.set(true);
    link.type_line("hello");
    assert_eq!(
        link.closed(CLIENT),
        Some(Closed::ByServer(CloseReason::Encryption))
    );
    assert_snapshot!(link.log());
}

#[test]
fn oversized_and_corrupt_frames_close_the_connection() {
    let mut flipped = false;
    let wire: Wire = Box::new(move |dir, mut bytes| {
        if dir == Dir::ToServer && !flipped && bytes.len() > 40 && bytes.starts_with(&[0]) {
            flipped = true;
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
        vec![bytes]
    });
    let link = linked(
        server_config(None, false),
        client_config("alice", None, None),
        wire,
    );
    assert_eq!(
        link.closed(CLIENT),
        Some(Closed::ByServer(CloseReason::Encryption))
    );

    // A frame that claims the maximum length and never ends holds at most one
    // frame's worth of bytes, then the line limit inside applies.
    let now = Now::from_secs_f64(0.0);
    let mut server = Server::new(server_config(None, false), now, Default::default());
    let conn = server.handle_connect(now, "10.0.0.9:1".parse().unwrap());
    server
        .handle_input(
            now,
            conn,
            lantalk_core::secure::hello_line(Suite::ChaChaPoly).as_bytes(),
        )
        .unwrap();
    let junk = vec![0xAB; 70_000];
    let _ = server.handle_input(now, conn, &[&[0xFF, 0xFF][..], &junk].concat());
    assert!(!server.is_open(conn));
    let mut closes = Vec::new();
    while let Some(a) = server.poll_action() {
        if let Action::Close { reason, .. } = a {
            closes.push(reason);
        }
    }
    assert_eq!(closes, [CloseReason::Encryption]);
    assert_snapshot!(link.log());
}

#[test]
fn legacy_login_allowed_or_refused() {
    let legacy = || {
        let mut c = ClientConfig::new("old", None);
        c.secure = None;
        c
    };
    let allowed = linked(server_config(None, true), legacy(), transparent());
    assert!(allowed.joined());
    let refused = linked(server_config(None, false), legacy(), transparent());
    assert!(!refused.joined());
    assert!(matches!(
        refused.closed(CLIENT),
        Some(Closed::ByServer(CloseReason::AuthFailed))
    ));
    assert_snapshot!(format!("{}\n{}", allowed.log(), refused.log()));
}

#[test]
fn unencrypted_members_are_marked() {
    let mut net = Pair::new(server_config(None, true));
    let a = net.plain_member("old");
    let b = net.connect_raw("older", "10.0.0.2:1");
    net.send_raw(b, b"{\"username\": \"older\", \"password\": \"\"}\n");
    net.send_raw(a, b"{\"type\": \"message\", \"text\": \"/users\"}\n");
    let to_a = String::from_utf8_lossy(&net.received(a).collect::<Vec<_>>().concat()).into_owned();
    for line in [
        "older joined from 10.0.0.2 (unencrypted).",
        "Online: old (unencrypted), older (unencrypted)",
    ] {
        assert!(to_a.contains(line), "{line} missing:\n{to_a}");
    }
}

#[test]
fn lines_handled_together_are_sealed_together() {
    let mut link = linked(
        server_config(None, true),
        client_config("alice", None, None),
        transparent(),
    );
    assert!(link.joined());
    // A LanTalk 2.0 member, whose lines reach the server in one read.
    let old = link.plain_member("old");
    link.trace.clear();
    let three = "{\"type\": \"message\", \"text\": \"one\"}\n\
                 {\"type\": \"message\", \"text\": \"two\"}\n\
                 {\"type\": \"message\", \"text\": \"three\"}\n";
    link.send_raw(old, three.as_bytes());
    let log = link.log();
    let sent: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("  server -> client"))
        .collect();
    // One frame for the three messages: sealing per input, not per line.
    assert_eq!(sent.len(), 1, "{}", link.log());
    assert!(!sent[0].contains(','), "a single frame: {}", sent[0]);
    for text in ["one", "two", "three"] {
        let event = format!("user: \"old\", text: \"{text}\"");
        assert!(
            link.log().contains(&event),
            "{event} missing:\n{}",
            link.log()
        );
    }
}

#[test]
fn the_client_takes_the_servers_first_suite() {
    for (preferred, suite) in [
        (true, lantalk_core::secure::SUITE_AESGCM),
        (false, lantalk_core::secure::SUITE),
    ] {
        let mut config = server_config(None, false);
        if let Some(sc) = config.secure.as_mut() {
            sc.suites = Suite::preferred(preferred);
        }
        let mut link = linked(config, client_config("alice", None, None), transparent());
        assert!(link.joined(), "{}", link.log());
        link.type_line("the secret plan");
        let hello = format!("\"suite\": \"{suite}\"");
        assert!(contains(&link.seen(), hello.as_bytes()), "{}", link.log());
        assert!(!contains(&link.seen(), b"the secret plan"));
        assert!(
            link.log()
                .contains("server event: DEBUG <alice> the secret plan"),
            "{}",
            link.log()
        );
    }
}

// ── What a server of ours tells a client of ours ─────────────────────────────

/// The server says how often it needs to hear from the client; a client that
/// only reads keeps its connection (here for more than 3x the timeout), and
/// one whose bytes stop arriving is still cleared.
#[test]
fn a_silent_client_stays_and_a_dead_one_is_cleared() {
    let dead = Rc::new(Cell::new(false));
    let cut = Rc::clone(&dead);
    let wire: Wire = Box::new(move |dir, bytes| {
        if dir == Dir::ToServer && cut.get() {
            Vec::new()
        } else {
            vec![bytes]
        }
    });
    let mut link = linked(
        ServerConfig {
            idle_timeout: Some(Duration::from_secs(3)),
            ..server_config(None, false)
        },
        client_config("alice", None, None),
        wire,
    );
    assert!(link.joined());
    link.note("the user only reads for 10 s");
    link.jump_to(10.0);
    assert!(
        link.joined() && link.closed(CLIENT).is_none(),
        "{}",
        link.log()
    );
    link.note("the client's machine vanishes: nothing reaches the server");
    dead.set(true);
    link.jump_to(14.0);
    assert_eq!(
        link.closed(CLIENT),
        Some(Closed::ByServer(CloseReason::IdleTimeout)),
        "{}",
        link.log()
    );
    assert_snapshot!(link.log());
}

/// The client paces itself to the limit the server announces (here 3 lines
/// per second, not the default 10 per 5 s): a burst is delivered whole,
/// with no warning and no kick.
#[test]
fn the_client_paces_itself_to_the_announced_rate_limit() {
    let mut link = linked(
        ServerConfig {
            rate_limit: Some(lantalk_core::ratelimit::Rate::new(
                3,
                Duration::from_secs(1),
            )),
            ..server_config(None, true)
        },
        client_config("alice", None, None),
        transparent(),
    );
    let bob = link.plain_member("bob");
    for i in 1..=12 {
        link.type_line(&format!("line {i}"));
    }
    link.jump_to(30.0);
    let to_bob = format!("  server -> {}:", link.conn(bob));
    let relayed = link
        .log()
        .lines()
        .filter(|l| l.starts_with(&to_bob) && l.contains("line "))
        .count();
    assert_eq!(relayed, 12, "{}", link.log());
    assert!(!link.log().contains("Slow down"), "{}", link.log());
    assert!(!link.log().contains("hit rate limit"), "{}", link.log());
    let sent = link
        .client_events()
        .iter()
        .filter(|e| e.starts_with("Sent"))
        .count();
    let queued = link
        .client_events()
        .iter()
        .filter(|e| e.starts_with("Queued"))
        .count();
    assert_eq!((sent, queued), (12, 10));
}

/// A private message is shown as sent only once the server confirms it; to
/// nobody, only the server's answer is shown.
#[test]
fn a_pm_is_shown_when_the_server_confirms_it() {
    let mut link = linked(
        server_config(None, true),
        client_config("alice", None, None),
        transparent(),
    );
    let bob = link.plain_member("bob");
    link.type_line("/pm Nobody hi");
    link.type_line("/pm BOB see you at 5");
    let events = link.client_events();
    assert!(
        !events.iter().any(|e| e.contains("to: \"Nobody\"")),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| e.contains("User 'Nobody' not found.")));
    assert!(
        events
            .iter()
            .any(|e| e == "PmSent { to: \"bob\", text: \"see you at 5\" }"),
        "{events:?}"
    );
    assert!(link
        .log()
        .contains(&format!("server -> {}: {{\"type\": \"pm\"", link.conn(bob))));
}

/// The roster comes with the login and stays current through typed presence
/// events (nobody parses "bob joined").
#[test]
fn roster_at_login_and_presence_after() {
    let mut link = linked(
        server_config(None, true),
        client_config("alice", None, None),
        transparent(),
    );
    let bob = link.plain_member("bob");
    link.jump_to(1.0);
    link.hang_up(bob);
    let events = link.client_events();
    let want = [
        "Roster { users: [\"alice\"] }",
        "Presence { user: \"bob\", online: true }",
        "Presence { user: \"bob\", online: false }",
    ];
    for w in want {
        assert!(events.iter().any(|e| e == w), "{w} missing from {events:?}");
    }
    assert!(!link.log().contains(&format!(
        "server -> {}: {{\"type\": \"presence\"",
        link.conn(bob)
    )));
}

/// `//usr/bin/env` says `/usr/bin/env` instead of running a command.
#[test]
fn a_double_slash_sends_a_literal_line() {
    let mut link = linked(
        server_config(None, true),
        client_config("alice", None, None),
        transparent(),
    );
    let bob = link.plain_member("bob");
    link.type_line("//usr/bin/env");
    assert!(
        link.log().contains(&format!(
            "server -> {}: {{\"type\": \"message\", \"ts\": \"12:00\", \"user\": \"alice\", \"text\": \"/usr/bin/env\"}}",
            link.conn(bob)
        )),
        "{}",
        link.log()
    );
    assert!(link
        .client_events()
        .iter()
        .any(|e| e == "Sent { text: \"/usr/bin/env\", room: Some(\"#lobby\") }"));
}
