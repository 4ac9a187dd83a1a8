//! The server's behaviour, one transcript per behaviour, pinned by snapshots.
//!
//! Each transcript lists the inputs (connect, bytes, console lines, time) and
//! every action the server produced, with the deadline it asked for after each
//! step. See `common/mod.rs` for the format.

mod common;

use common::*;
use insta::assert_snapshot;
use lantalk_core::server::{Action, CloseReason, DisconnectCause, Error};
use lantalk_core::{protocol, BanList, ConnId, ServerConfig};
use std::time::Duration;

fn closes(actions: &[Action]) -> Vec<(ConnId, CloseReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { conn, reason } => Some((*conn, *reason)),
            _ => None,
        })
        .collect()
}

// ── Login ────────────────────────────────────────────────────────────────────

#[test]
fn login_ok_and_join_notices() {
    let mut s = ServerScript::new(ServerConfig {
        name: "Hub".to_string(),
        ..ServerConfig::default()
    });
    let alice = s.connect("10.0.0.1:5000");
    s.at(0.1).login(alice, "alice").unwrap();
    assert_eq!(
        s.sent_to(alice),
        ["{\"type\": \"auth_ok\", \"ts\": \"12:00\", \"username\": \"alice\", \"server_name\": \"Hub\"}\n"]
    );
    s.note("carol is connected but not logged in: she gets no join notices");
    let carol = s.at(1.0).connect("10.0.0.3:5002");
    let bob = s.at(2.0).connect("10.0.0.2:5001");
    s.at(2.5).login(bob, " bob ").unwrap();
    assert!(s.sent_to(carol).is_empty());
    assert_eq!(
        s.sent_to(bob).len(),
        1,
        "bob gets auth_ok, not his own join notice"
    );
    s.at(10.0).login(carol, "carol").unwrap();
    // Listed in login order, as LanTalk 2.0 does.
    assert_eq!(s.server.usernames(), ["alice", "bob", "carol"]);
    assert_snapshot!(s.transcript());
}

#[test]
fn invalid_usernames_are_refused() {
    let mut s = ServerScript::new(ServerConfig::default());
    let cases: &[(&str, String)] = &[
        ("empty", login("", "")),
        ("only spaces", login("   ", "")),
        ("25 characters", login(&"a".repeat(25), "")),
        ("a space inside", login("al ice", "")),
        ("non-ASCII", login("\u{e5}lice", "")),
        ("a dot", login("alice.b", "")),
        ("no username field", "{\"password\": \"\"}\n".to_string()),
        ("username null", "{\"username\": null}\n".to_string()),
        (
            "username not a string",
            "{\"username\": 5, \"password\": \"\"}\n".to_string(),
        ),
        (
            "password not a string",
            "{\"username\": \"alice\", \"password\": 1}\n".to_string(),
        ),
        ("not JSON", "hello\n".to_string()),
        ("not an object", "[\"alice\"]\n".to_string()),
    ];
    for (what, line) in cases {
        s.note(what);
        let c = s.connect("10.0.0.1:5000");
        s.input(c, line).unwrap();
        assert_eq!(closes(&s.last), [(c, CloseReason::AuthFailed)], "{what}");
        assert!(s.sent_to(c)[0].contains("\"auth_fail\""), "{what}");
        assert!(!s.server.is_open(c));
    }
    s.note("real invalid UTF-8 bytes");
    let c = s.connect("10.0.0.1:5000");
    s.input(c, b"{\"username\": \"\xff\xfe\"}\n").unwrap();
    assert_eq!(closes(&s.last), [(c, CloseReason::AuthFailed)]);
    s.note("24 characters, letters, digits, _ and - are fine");
    let c = s.connect("10.0.0.1:5000");
    s.login(c, "Al_ice-9xxxxxxxxxxxxxxxx").unwrap();
    assert_eq!(s.server.usernames(), ["Al_ice-9xxxxxxxxxxxxxxxx"]);
    assert_snapshot!(s.transcript());
}

#[test]
fn duplicate_names_case_insensitive_and_freed_on_leave() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let imp = s.at(1.0).connect("10.0.0.2:5000");
    s.login(imp, "ALICE").unwrap();
    assert_eq!(closes(&s.last), [(imp, CloseReason::AuthFailed)]);
    let imp = s.at(1.5).connect("10.0.0.2:5001");
    s.login(imp, "alice").unwrap();
    assert_eq!(closes(&s.last), [(imp, CloseReason::AuthFailed)]);
    s.at(2.0)
        .disconnect(alice, DisconnectCause::PeerClosed)
        .unwrap();
    let again = s.at(3.0).connect("10.0.0.2:5002");
    s.login(again, "ALICE").unwrap();
    assert_eq!(s.server.usernames(), ["ALICE"]);
    assert_snapshot!(s.transcript());
}

// ── Passwords ────────────────────────────────────────────────────────────────

#[test]
fn password_right_and_wrong() {
    let mut s = ServerScript::new(password_config());
    let alice = s.connect("10.0.0.1:5000");
    s.login_pw(alice, "alice", "secret").unwrap();
    assert_eq!(s.server.usernames(), ["alice"]);
    let bob = s.at(1.0).connect("10.0.0.2:5000");
    s.login_pw(bob, "bob", "Secret").unwrap();
    assert_eq!(closes(&s.last), [(bob, CloseReason::AuthFailed)]);
    let bob = s.at(2.0).connect("10.0.0.2:5001");
    s.note("no password field at all is the empty password");
    s.input(bob, "{\"username\": \"bob\"}\n").unwrap();
    assert_eq!(closes(&s.last), [(bob, CloseReason::AuthFailed)]);
    assert_eq!(s.server.usernames(), ["alice"]);
    assert_snapshot!(s.transcript());
}

#[test]
fn failed_login_limit_per_address() {
    let mut s = ServerScript::new(password_config());
    for i in 1..=5 {
        let c = s.at(i as f64).connect("10.0.0.7:4000");
        s.login_pw(c, "mallory", "guess").unwrap();
        assert!(s.sent_to(c)[0].contains("Wrong password."));
    }
    s.note("the sixth attempt is refused even with the right password");
    let c = s.at(6.0).connect("10.0.0.7:4001");
    s.login_pw(c, "mallory", "secret").unwrap();
    assert!(s.sent_to(c)[0].contains("Too many failed logins"));
    s.note("an IPv4-mapped address is the same address");
    let c = s.at(7.0).connect("[::ffff:10.0.0.7]:4002");
    s.login_pw(c, "mallory", "secret").unwrap();
    assert!(s.sent_to(c)[0].contains("Too many failed logins"));
    s.note("another address is not affected");
    let c = s.at(8.0).connect("10.0.0.8:4000");
    s.login_pw(c, "trent", "secret").unwrap();
    assert_eq!(s.server.usernames(), ["trent"]);
    s.note("just before the first failure leaves the one-minute window");
    let c = s.at(60.5).connect("10.0.0.7:4003");
    s.login_pw(c, "mallory", "secret").unwrap();
    assert!(s.sent_to(c)[0].contains("try again in 1 s"));
    s.note("the window has passed");
    let c = s.at(61.0).connect("10.0.0.7:4004");
    s.login_pw(c, "mallory", "secret").unwrap();
    assert_eq!(s.server.usernames(), ["trent", "mallory"]);
    assert_snapshot!(s.transcript());
}

// ── Timeouts ─────────────────────────────────────────────────────────────────

/// Login timeout without the close reason in the picture (see
/// `auth_timeout_transcript` for the whole transcript).
#[test]
fn auth_timeout_refuses_and_closes() {
    let mut s = ServerScript::new(ServerConfig::default());
    let c = s.connect("10.0.0.1:5000");
    assert_eq!(s.server.poll_timeout(), Some(at(15.0).instant));
    s.at(5.0).input(c, "{\"username\": \"al").unwrap();
    assert_eq!(
        s.server.poll_timeout(),
        Some(at(15.0).instant),
        "bytes do not extend the login deadline"
    );
    s.timeout_at(14.999);
    assert!(s.last.is_empty());
    s.timeout();
    assert_eq!(
        s.sent_to(c),
        ["{\"type\": \"auth_fail\", \"ts\": \"12:00\", \"reason\": \"Login timed out.\"}\n"]
    );
    assert_eq!(closes(&s.last).len(), 1);
    assert!(!s.server.is_open(c));
    assert_eq!(s.server.poll_timeout(), None);
}

#[test]
fn auth_timeout_transcript() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let c = s.at(1.0).connect("10.0.0.2:5000");
    s.at(5.0).input(c, "{\"username\": \"al").unwrap();
    s.timeout();
    s.timeout();
    assert!(s.server.is_open(alice));
    assert_snapshot!(s.transcript());
    assert_eq!(closes(&s.last), [(c, CloseReason::AuthTimeout)]);
}

#[test]
fn idle_timeout_after_last_inbound_byte() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.connect("10.0.0.1:5000");
    s.at(0.1).login(alice, "alice").unwrap();
    s.note("the login deadline comes up early and is re-armed to the idle deadline");
    s.timeout();
    let bob = s.at(100.0).join("10.0.0.2:5000", "bob");
    s.note("an unfinished line counts as activity too");
    s.at(200.0).input(alice, "{\"type\": \"mess").unwrap();
    s.timeout();
    assert!(s.server.is_open(alice));
    s.timeout_at(399.9);
    s.note("bob times out at 400, alice at 500");
    s.timeout();
    assert_eq!(closes(&s.last), [(bob, CloseReason::IdleTimeout)]);
    s.timeout();
    assert_eq!(closes(&s.last), [(alice, CloseReason::IdleTimeout)]);
    assert_eq!(s.server.poll_timeout(), None);
    assert_snapshot!(s.transcript());
}

// ── Chat ─────────────────────────────────────────────────────────────────────

#[test]
fn broadcast_to_others_in_order() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let carol = s.join("10.0.0.3:5000", "carol");
    let lines = [chat("one"), chat("two"), chat("three \u{1F44B} \"q\"")].concat();
    s.at(1.0).input(alice, lines).unwrap();
    assert!(s.sent_to(alice).is_empty(), "never echoed to the sender");
    let texts = |v: Vec<String>| -> Vec<String> {
        v.iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        texts(s.sent_to(bob)),
        ["one", "two", "three \u{1F44B} \"q\""]
    );
    assert_eq!(
        texts(s.sent_to(carol)),
        ["one", "two", "three \u{1F44B} \"q\""]
    );
    s.note("a message split across chunks, with \\r\\n");
    s.at(2.0).input(bob, "{\"type\": \"message\", ").unwrap();
    s.input(bob, "\"text\": \"  hi all  \"}\r").unwrap();
    s.input(bob, "\n").unwrap();
    assert_snapshot!(s.transcript());
}

#[test]
fn client_commands() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let _carol = s.connect("10.0.0.3:5000");
    s.at(1.0).say(alice, "/users").unwrap();
    s.say(alice, "/pm bob psst, a secret").unwrap();
    assert_eq!(
        s.sent_to(bob),
        ["{\"type\": \"pm\", \"ts\": \"12:00\", \"from_user\": \"alice\", \"text\": \"psst, a secret\"}\n"]
    );
    s.say(alice, "/PM BOB case does not matter").unwrap();
    s.say(alice, "/pm nobody hi").unwrap();
    s.say(alice, "/pm bob").unwrap();
    s.say(alice, "/pm bob    ").unwrap();
    s.say(alice, "/pm").unwrap();
    s.say(alice, "/help").unwrap();
    s.say(alice, "/frobnicate now").unwrap();
    s.say(bob, "/quit").unwrap();
    assert_eq!(closes(&s.last), [(bob, CloseReason::Quit)]);
    assert_eq!(s.server.usernames(), ["alice"]);
    // Closed by the server: what still arrives is dropped, not an error.
    assert_eq!(s.say(bob, "still there?"), Ok(()));
    assert_snapshot!(s.transcript());
}

#[test]
fn pm_with_extra_spaces() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    s.say(alice, "/pm  bob  hi there").unwrap();
    assert_eq!(
        s.sent_to(bob),
        ["{\"type\": \"pm\", \"ts\": \"12:00\", \"from_user\": \"alice\", \"text\": \"hi there\"}\n"]
    );
    assert!(s.sent_to(alice).is_empty());
}

#[test]
fn bytes_after_the_login_line_are_chat() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.connect("10.0.0.2:5000");
    let chunk = [
        login("bob", ""),
        chat("hi, I'm new"),
        chat("/users"),
        "{\"type\": \"mess".to_string(),
    ]
    .concat();
    s.at(1.0).input(bob, chunk).unwrap();
    assert_eq!(s.sent_to(alice).len(), 2, "join notice and the message");
    assert_eq!(s.server.buffered(bob), Some(14));
    s.input(bob, "age\", \"text\": \"rest\"}\n").unwrap();
    assert_eq!(s.sent_to(alice).len(), 1);
    assert_snapshot!(s.transcript());
}

// ── Rate limit ───────────────────────────────────────────────────────────────

#[test]
fn rate_limit_warns_on_the_eleventh_line() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let burst: String = (1..=11).map(|i| chat(&format!("m{i}"))).collect();
    s.at(10.0).input(alice, &burst).unwrap();
    assert_eq!(s.sent_to(bob).len(), 10);
    assert_eq!(
        s.sent_to(alice),
        ["{\"type\": \"system\", \"ts\": \"12:00\", \"text\": \"\\u26a0 Slow down \\u2014 you're sending too fast.\"}\n"]
    );
    s.note("empty lines do not count");
    s.at(14.9).say(alice, "   ").unwrap();
    s.note("commands count");
    s.say(alice, "/users").unwrap();
    s.note("the window has moved on");
    s.at(15.0).say(alice, "/users").unwrap();
    s.say(alice, "back").unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    assert_snapshot!(s.transcript());
}

#[test]
fn flooding_gets_kicked_on_the_third_warning() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let burst: String = (1..=11).map(|i| chat(&format!("m{i}"))).collect();
    s.summarised(true);
    s.at(10.0).input(alice, &burst).unwrap();
    s.at(20.0).input(alice, &burst).unwrap();
    assert!(s.server.is_open(alice));
    s.summarised(false);
    s.at(30.0)
        .input(alice, &burst[..burst.len() - chat("m11").len()])
        .unwrap();
    s.note("third rate-limit hit within 60 s");
    s.say(alice, "m11").unwrap();
    assert_eq!(closes(&s.last), [(alice, CloseReason::Flooding)]);
    assert_eq!(s.sent_to(bob).len(), 1);
    assert_snapshot!(s.transcript());
}

#[test]
fn flood_warnings_expire_after_a_minute() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let burst: String = (1..=11).map(|i| chat(&format!("m{i}"))).collect();
    s.summarised(true);
    s.at(10.0).input(alice, &burst).unwrap();
    s.at(20.0).input(alice, &burst).unwrap();
    s.note("the first warning is 60 s old: still only two in the window");
    s.at(70.0).input(alice, &burst).unwrap();
    assert!(s.server.is_open(alice));
    assert_snapshot!(s.transcript());
}

#[test]
fn rate_limit_off() {
    let mut s = ServerScript::new(ServerConfig {
        rate_limit: None,
        ..ServerConfig::default()
    });
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let burst: String = (1..=100).map(|i| chat(&format!("m{i}"))).collect();
    s.summarised(true);
    s.at(1.0).input(alice, &burst).unwrap();
    assert_eq!(s.sent_to(bob).len(), 100);
    assert!(s.sent_to(alice).is_empty());
    assert!(s.sent_to(bob)[99].contains("\"m100\""));
    assert_snapshot!(s.transcript());
}

// ── Validation ───────────────────────────────────────────────────────────────

#[test]
fn text_length_limit_in_characters() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    s.at(1.0).say(alice, &"a".repeat(2000)).unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    assert!(s.sent_to(bob)[0].contains(&"a".repeat(2000)));
    s.say(alice, &"a".repeat(2001)).unwrap();
    assert!(s.sent_to(bob).is_empty());
    s.note("characters, not bytes: 2000 × é (4000 bytes of UTF-8) is fine");
    s.say(alice, &"\u{e9}".repeat(2000)).unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    s.say(alice, &"\u{e9}".repeat(2001)).unwrap();
    assert!(s.sent_to(bob).is_empty());
    s.note("surrounding whitespace is trimmed before counting");
    s.say(alice, &format!("  {}  ", "b".repeat(2000))).unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    assert_snapshot!(s.transcript());
}

#[test]
fn malformed_lines_are_dropped_with_a_notice() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    s.at(1.0);
    s.note("empty and whitespace-only texts are ignored silently");
    s.say(alice, "").unwrap();
    s.say(alice, " \t ").unwrap();
    s.note("malformed");
    s.input(alice, "\n").unwrap();
    s.input(alice, "{\"type\": \"message\", \"text\": \"oops\"\n")
        .unwrap();
    s.input(alice, b"{\"type\": \"message\", \"text\": \"\xff\"}\n")
        .unwrap();
    s.input(alice, "{\"type\": \"message\", \"text\": 5}\n")
        .unwrap();
    s.input(alice, "{\"type\": \"message\"}\n").unwrap();
    s.note("well-formed but not a message: ignored without a notice");
    s.input(alice, "{\"type\": \"ping\", \"text\": \"x\"}\n")
        .unwrap();
    s.input(alice, "{\"text\": \"no type\"}\n").unwrap();
    s.input(alice, "{\"type\": 1, \"text\": \"x\"}\n").unwrap();
    s.input(alice, "[\"message\"]\n").unwrap();
    s.input(alice, "\"just a string\"\n").unwrap();
    s.input(alice, "42\n").unwrap();
    s.note("unknown fields are fine");
    s.input(
        alice,
        "{\"type\": \"message\", \"text\": \"ok\", \"extra\": [1]}\n",
    )
    .unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    assert!(s.server.is_open(alice));
    assert_snapshot!(s.transcript());
}

#[test]
fn ten_malformed_lines_in_a_row_close_the_connection() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let _bob = s.join("10.0.0.2:5000", "bob");
    s.summarised(true);
    s.at(1.0).input(alice, "{\n".repeat(9)).unwrap();
    s.note("a good line resets the count");
    s.input(alice, chat("fine")).unwrap();
    s.input(alice, "{\n".repeat(9)).unwrap();
    s.note("a non-message object resets it too");
    s.input(alice, "{\"type\": \"ping\"}\n").unwrap();
    s.input(alice, "{\n".repeat(9)).unwrap();
    assert!(s.server.is_open(alice));
    s.summarised(false);
    s.input(alice, "{\n").unwrap();
    assert_eq!(closes(&s.last), [(alice, CloseReason::Malformed)]);
    assert_snapshot!(s.transcript());
}

#[test]
fn overlong_lines_close_the_connection() {
    let mut s = ServerScript::new(ServerConfig {
        max_line: 64,
        ..ServerConfig::default()
    });
    s.note("before login: 65 bytes without a newline");
    let c = s.connect("10.0.0.9:5000");
    s.input(c, "x".repeat(65)).unwrap();
    assert_eq!(closes(&s.last).len(), 1);
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let line64 = {
        let overhead = chat("").len() - 1;
        chat(&"y".repeat(64 - overhead))
    };
    assert_eq!(line64.len(), 65, "64 bytes and the newline");
    s.note("a line of exactly max_line bytes passes");
    s.at(1.0).input(alice, &line64).unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    s.note("an unfinished line may grow up to max_line");
    s.input(alice, &line64[..64]).unwrap();
    assert_eq!(s.server.buffered(alice), Some(64));
    s.input(alice, "zz").unwrap();
    assert_eq!(closes(&s.last), [(alice, CloseReason::LineTooLong)]);
    s.note("over the limit with the newline in the same chunk");
    s.input(bob, format!("{}\n", "w".repeat(65))).unwrap();
    assert_eq!(closes(&s.last), [(bob, CloseReason::LineTooLong)]);
    assert_snapshot!(s.transcript());
}

// ── Bans ─────────────────────────────────────────────────────────────────────

#[test]
fn banned_address_refused_at_connect() {
    let bans = BanList::parse(b"[\n  \"10.0.0.9\",\n  \"fe80::1\"\n]").unwrap();
    let mut s = ServerScript::with_bans(ServerConfig::default(), bans);
    let c = s.connect("10.0.0.9:5000");
    assert_eq!(closes(&s.last), [(c, CloseReason::Banned)]);
    assert!(!s.server.is_open(c));
    s.connect("[::ffff:10.0.0.9]:5001");
    s.connect("[fe80::1]:5002");
    s.connect("10.0.0.10:5003");
    assert_eq!(s.server.connection_count(), 1);
    assert_snapshot!(s.transcript());
}

#[test]
fn console_ban_user() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    s.at(1.0).console("/ban ALICE");
    assert_eq!(closes(&s.last), [(alice, CloseReason::Banned)]);
    assert!(s
        .last
        .iter()
        .any(|a| matches!(a, Action::PersistBans(b) if b.len() == 1)));
    assert_eq!(s.sent_to(bob).len(), 1);
    s.note("she cannot come back");
    s.at(2.0).connect("10.0.0.1:6000");
    s.console("/ban alice");
    s.console("/ban");
    s.console("/bans");
    assert_snapshot!(s.transcript());
}

#[test]
fn console_ban_ip_disconnects_everyone_from_it() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.9:5000", "alice");
    let bob = s.join("10.0.0.9:5001", "bob");
    let carol = s.join("10.0.0.3:5000", "carol");
    s.at(1.0).console("/ban 10.0.0.9");
    assert_eq!(
        closes(&s.last),
        [(alice, CloseReason::Banned), (bob, CloseReason::Banned)]
    );
    assert_eq!(s.sent_to(carol).len(), 2);
    s.console("/ban 10.0.0.9");
    assert!(!s.last.iter().any(|a| matches!(a, Action::PersistBans(_))));
    s.note("banning an address nobody uses");
    s.console("/ban 192.168.1.22");
    s.console("/ban not-an-address");
    s.console("/bans");
    assert_snapshot!(s.transcript());
}

#[test]
fn console_ban_ip_refuses_connection_logging_in() {
    let mut s = ServerScript::new(ServerConfig::default());
    let c = s.connect("10.0.0.9:5000");
    s.at(1.0).console("/ban 10.0.0.9");
    assert_eq!(closes(&s.last), [(c, CloseReason::Banned)]);
    assert_eq!(
        s.sent_to(c),
        ["{\"type\": \"auth_fail\", \"ts\": \"12:00\", \"reason\": \"You are banned from this server.\"}\n"]
    );
}

#[test]
fn console_unban() {
    let bans: BanList = ["10.0.0.9".parse().unwrap(), "10.0.0.10".parse().unwrap()]
        .into_iter()
        .collect();
    let mut s = ServerScript::with_bans(ServerConfig::default(), bans);
    s.console("/bans");
    s.at(1.0).console("/unban 10.0.0.9");
    assert!(s
        .last
        .iter()
        .any(|a| matches!(a, Action::PersistBans(b) if b.len() == 1)));
    s.console("/unban 10.0.0.9");
    s.console("/unban nonsense");
    s.console("/unban");
    s.note("the mapped form of a banned IPv4 address lifts it too");
    s.console("/unban ::ffff:10.0.0.10");
    s.console("/bans");
    let c = s.connect("10.0.0.9:5000");
    assert!(s.server.is_open(c));
    assert_snapshot!(s.transcript());
}

#[test]
fn ipv4_mapped_ipv6_is_the_ipv4_address() {
    let mut s = ServerScript::new(ServerConfig::default());
    let eve = s.join("[::ffff:10.0.0.5]:1", "eve");
    let _bob = s.join("10.0.0.2:5000", "bob");
    s.at(1.0).console("/ban 10.0.0.5");
    assert_eq!(closes(&s.last), [(eve, CloseReason::Banned)]);
    s.connect("10.0.0.5:2");
    s.connect("[::ffff:10.0.0.5]:3");
    s.note("banning the mapped form stores the plain IPv4 address");
    s.console("/ban ::ffff:10.0.0.6");
    s.connect("10.0.0.6:4");
    s.console("/bans");
    assert_eq!(s.server.bans().len(), 2);
    assert_snapshot!(s.transcript());
}

// ── Console ──────────────────────────────────────────────────────────────────

#[test]
fn console_commands() {
    let mut s = ServerScript::new(ServerConfig::default());
    s.console("/users");
    s.console("   ");
    let _alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let _carol = s.at(120.0).connect("10.0.0.3:5000");
    s.at(125.0).console("/USERS");
    s.console("hello everyone");
    s.console("/stats");
    s.console("/help");
    s.console("/frobnicate");
    s.console("/kick");
    s.console("/kick nobody");
    s.console("/kick   BOB  ");
    assert_eq!(closes(&s.last), [(bob, CloseReason::Kicked)]);
    s.console("/stats");
    assert_snapshot!(s.transcript());
}

#[test]
fn console_say_goes_to_logged_in_users_only() {
    let mut s = ServerScript::new(ServerConfig {
        name: "Hub".to_string(),
        ..ServerConfig::default()
    });
    s.note("nobody there");
    s.console("anyone?");
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let carol = s.connect("10.0.0.3:5000");
    s.at(1.0).console("  Welcome, \"friends\" \u{e9}  ");
    assert_eq!(s.sent_to(alice), s.sent_to(bob));
    assert!(s.sent_to(carol).is_empty());
    assert_eq!(
        s.sent_to(alice),
        ["{\"type\": \"message\", \"ts\": \"12:00\", \"user\": \"Hub (server)\", \"text\": \"Welcome, \\\"friends\\\" \\u00e9\"}\n"]
    );
    s.console(&"x".repeat(2001));
    assert!(s.sent_to(alice).is_empty());
    assert_snapshot!(s.transcript());
}

#[test]
fn console_quit_shuts_down() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let carol = s.connect("10.0.0.3:5000");
    s.at(1.0).console("/quit");
    assert_eq!(
        closes(&s.last),
        [
            (alice, CloseReason::Shutdown),
            (bob, CloseReason::Shutdown),
            (carol, CloseReason::Shutdown)
        ]
    );
    assert!(matches!(s.last.last(), Some(Action::Shutdown)));
    assert!(s.server.is_shut_down());
    assert_eq!(s.server.connection_count(), 0);
    s.note("after shutdown");
    s.at(2.0).connect("10.0.0.4:5000");
    s.console("hello?");
    s.console("/quit");
    s.shutdown();
    assert_eq!(s.input(alice, chat("hi")), Ok(()));
    assert_snapshot!(s.transcript());
}

#[test]
fn shutdown_by_signal() {
    let mut s = ServerScript::new(ServerConfig::default());
    let _alice = s.join("10.0.0.1:5000", "alice");
    s.at(1.0).shutdown();
    assert_eq!(s.server.poll_timeout(), None);
    assert_snapshot!(s.transcript());
}

// ── Limits ───────────────────────────────────────────────────────────────────

#[test]
fn max_clients() {
    let mut s = ServerScript::new(ServerConfig {
        max_clients: 2,
        ..ServerConfig::default()
    });
    let alice = s.join("10.0.0.1:5000", "alice");
    let _pending = s.connect("10.0.0.2:5000");
    let third = s.connect("10.0.0.3:5000");
    assert_eq!(closes(&s.last), [(third, CloseReason::ServerFull)]);
    s.at(1.0)
        .disconnect(alice, DisconnectCause::PeerClosed)
        .unwrap();
    let c = s.connect("10.0.0.3:5001");
    assert!(s.server.is_open(c));
    assert_snapshot!(s.transcript());
}

#[test]
fn max_per_address() {
    let mut s = ServerScript::new(ServerConfig {
        max_per_address: 2,
        ..ServerConfig::default()
    });
    let a = s.connect("10.0.0.1:5000");
    s.connect("10.0.0.1:5001");
    let third = s.connect("10.0.0.1:5002");
    assert_eq!(closes(&s.last), [(third, CloseReason::TooManyFromAddress)]);
    s.note("the mapped form counts as the same address");
    s.connect("[::ffff:10.0.0.1]:5003");
    s.note("other addresses are fine");
    s.connect("10.0.0.2:5000");
    s.note("loopback is exempt by default");
    for port in 1..=3 {
        s.connect(&format!("127.0.0.1:{port}"));
    }
    s.connect("[::1]:4");
    s.connect("[::1]:5");
    s.connect("[::1]:6");
    s.note("a slot frees up when a connection goes");
    s.at(1.0)
        .disconnect(a, DisconnectCause::PeerClosed)
        .unwrap();
    let c = s.connect("10.0.0.1:5004");
    assert!(s.server.is_open(c));
    assert_eq!(s.server.connection_count(), 9);
    assert_snapshot!(s.transcript());
}

#[test]
fn max_per_address_loopback_not_exempt() {
    let mut s = ServerScript::new(ServerConfig {
        max_per_address: 1,
        exempt_loopback: false,
        ..ServerConfig::default()
    });
    s.connect("127.0.0.1:1");
    let c = s.connect("127.0.0.1:2");
    assert_eq!(closes(&s.last), [(c, CloseReason::TooManyFromAddress)]);
}

// ── Disconnects ──────────────────────────────────────────────────────────────

#[test]
fn handle_disconnect() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let carol = s.join("10.0.0.3:5000", "carol");
    let dave = s.connect("10.0.0.4:5000");
    s.at(1.0)
        .disconnect(alice, DisconnectCause::PeerClosed)
        .unwrap();
    s.note("someone still logging in leaves without a notice");
    s.disconnect(dave, DisconnectCause::PeerClosed).unwrap();
    s.note("a slow reader is a warning");
    s.disconnect(bob, DisconnectCause::SlowReader).unwrap();
    s.note("already closed connections are no error; unknown ones are");
    assert_eq!(s.disconnect(alice, DisconnectCause::PeerClosed), Ok(()));
    assert_eq!(
        s.disconnect(ConnId(99), DisconnectCause::PeerClosed),
        Err(Error::UnknownConnection(ConnId(99)))
    );
    assert_eq!(s.input(bob, chat("hi")), Ok(()));
    assert_eq!(
        s.input(ConnId(99), chat("hi")),
        Err(Error::UnknownConnection(ConnId(99)))
    );
    assert_eq!(s.server.usernames(), ["carol"]);
    assert!(s.server.is_open(carol));
    assert_snapshot!(s.transcript());
}

#[test]
fn disconnect_after_the_deadline_passed() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    let c = s.connect("10.0.0.3:5000");
    s.at(20.0)
        .disconnect(c, DisconnectCause::PeerClosed)
        .unwrap();
    assert!(
        s.last.iter().all(
            |a| !matches!(a, Action::Send { conn, .. } | Action::Close { conn, .. } if *conn == c)
        ),
        "{:?}",
        s.last
    );
    // Bob stays active; only Alice's deadline has passed when she goes.
    s.at(250.0).input(bob, "\n").unwrap();
    s.at(400.0)
        .disconnect(alice, DisconnectCause::PeerClosed)
        .unwrap();
    assert!(
        s.last.iter().all(|a| !matches!(a, Action::Send { conn, .. } | Action::Close { conn, .. } if *conn == alice)),
        "{:?}",
        s.last
    );
    assert_eq!(
        s.sent_to(bob),
        ["{\"type\": \"system\", \"ts\": \"12:06\", \"text\": \"alice left the chat.\"}\n"]
    );
}

#[test]
fn refused_connection_is_not_open() {
    let mut s = ServerScript::with_bans(
        ServerConfig::default(),
        ["10.0.0.9".parse().unwrap()].into_iter().collect(),
    );
    let c = s.connect("10.0.0.9:1");
    // Refused at connect, so closed: its late input and close are no error.
    assert_eq!(s.input(c, login("x", "")), Ok(()));
    assert_eq!(
        s.server
            .handle_disconnect(at(0.0), c, DisconnectCause::PeerClosed),
        Ok(())
    );
    assert!(drain_server(&mut s.server, at(0.0)).is_empty());
}

// ── Terminal safety, keepalives, literal lines ───────────────────────────────

/// A line with a control character would reach LanTalk 2.0 clients' terminals
/// raw (they print what they get): the server refuses it with a notice, for
/// messages, actions and private messages alike. A tab is harmless.
#[test]
fn control_characters_are_refused_with_a_notice() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    for text in [
        "clear \u{1b}[2J",
        "title \u{1b}]0;PWNED\u{7}",
        "over\rwrite",
        "two\nlines",
        "/me waves \u{202e}sdrawkcab",
        "/pm bob psst\u{9b}31m",
        "del\u{7f}",
    ] {
        s.say(alice, text).unwrap();
        assert!(s.sent_to(bob).is_empty(), "{text:?} reached bob");
        let notice = s.sent_to(alice).concat();
        assert!(
            notice.contains("Message not sent: it contains the control character U+"),
            "{text:?}: {notice}"
        );
    }
    s.say(alice, "tab\there").unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    assert_snapshot!(s.transcript());
}

/// `--idle-timeout off`: nobody is ever disconnected for silence.
#[test]
fn idle_timeout_off() {
    let mut s = ServerScript::new(ServerConfig {
        idle_timeout: None,
        ..ServerConfig::default()
    });
    let alice = s.join("10.0.0.1:5000", "alice");
    s.note("only the login deadline was armed; it fires and finds nothing to do");
    s.timeout();
    assert_eq!(s.server.poll_timeout(), None);
    s.timeout_at(100_000.0);
    assert!(s.server.is_open(alice));
}

/// A keepalive keeps a connection from timing out, and is neither relayed,
/// nor counted against the rate limit, nor logged.
#[test]
fn keepalive_counts_as_activity_and_nothing_else() {
    let mut s = ServerScript::new(ServerConfig {
        idle_timeout: Some(Duration::from_secs(10)),
        ..ServerConfig::default()
    });
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    for i in 1..=30 {
        s.at(i as f64 * 0.1)
            .input(alice, "{\"type\": \"keepalive\"}\n")
            .unwrap();
        assert!(s.last.is_empty(), "{:?}", s.last);
    }
    s.at(3.5).say(alice, "not flooding").unwrap();
    assert_eq!(s.sent_to(bob).len(), 1);
    s.timeout_at(12.0);
    assert_eq!(closes(&s.last), [(bob, CloseReason::IdleTimeout)]);
    assert!(s.server.is_open(alice));
}

/// `//text` reaches the server as a literal message: relayed as text even
/// though it starts with `/`.
#[test]
fn literal_messages_are_relayed_as_text() {
    let mut s = ServerScript::new(ServerConfig::default());
    let alice = s.join("10.0.0.1:5000", "alice");
    let bob = s.join("10.0.0.2:5000", "bob");
    s.input(alice, protocol::chat_literal("/usr/bin/env"))
        .unwrap();
    assert_eq!(
        s.sent_to(bob),
        [protocol::message(NOON, "alice", "/usr/bin/env")]
    );
    s.note("without the flag it is a command");
    s.say(alice, "/usr/bin/env").unwrap();
    assert!(s.sent_to(bob).is_empty());
    assert!(s
        .sent_to(alice)
        .concat()
        .contains("Unknown command: /usr/bin/env"));
}

/// The console says so when a line it would send reaches nobody.
#[test]
fn console_line_with_nobody_online_is_not_lost_in_silence() {
    let mut s = ServerScript::new(ServerConfig::default());
    s.console("anyone there?");
    let replies: Vec<String> = s
        .last
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e.message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(replies, ["Not sent: nobody is connected to read it."]);
}

// ── Password checks off the event loop ───────────────────────────────────────

/// A plaintext password is checked by the runtime off its loop: while it
/// runs, everyone else is served, and the lines the peer sent after its
/// login wait for the answer, then come in order.
#[test]
fn password_check_runs_off_the_loop_and_holds_later_lines() {
    let mut s = ServerScript::new(password_config());
    s.held = Some(Vec::new());
    let bob = s.connect("10.0.0.2:5000");
    s.login_pw(bob, "bob", "secret").unwrap();
    s.answer_check(0);
    let alice = s.connect("10.0.0.1:5000");
    let both = format!("{}{}", login("alice", "secret"), chat("first words"));
    s.input(alice, both).unwrap();
    s.note("alice's check is out; bob chats meanwhile and is served at once");
    s.say(bob, "anyone?").unwrap();
    assert_eq!(s.sent_to(bob).len(), 0);
    assert!(s.last.iter().any(|a| matches!(a, Action::Event(_))));
    s.answer_check(1);
    let to_bob = s.sent_to(bob).concat();
    let joined = to_bob.find("alice joined").expect("join notice");
    let words = to_bob.find("first words").expect("alice's first line");
    assert!(joined < words, "{to_bob}");
    assert_snapshot!(s.transcript());
}

/// At most `max_password_checks` run at once; the next waits for a slot.
/// A peer that leaves during its check counts a failed login, and the late
/// answer changes nothing.
#[test]
fn password_checks_are_bounded_and_answers_for_the_gone_are_dropped() {
    let mut s = ServerScript::new(ServerConfig {
        max_password_checks: 1,
        ..password_config()
    });
    s.held = Some(Vec::new());
    let a = s.connect("10.0.0.1:5000");
    let b = s.connect("10.0.0.2:5000");
    s.login_pw(a, "alice", "secret").unwrap();
    s.login_pw(b, "bob", "secret").unwrap();
    assert_eq!(s.held.as_ref().map(Vec::len), Some(1), "one slot");
    s.disconnect(a, DisconnectCause::PeerClosed).unwrap();
    assert!(s
        .last
        .iter()
        .any(|x| matches!(x, Action::Event(e) if e.message.contains("abandoned"))));
    s.answer_check(0);
    assert_eq!(
        s.held.as_ref().map(Vec::len),
        Some(1),
        "bob's check got the slot"
    );
    s.answer_check(1);
    assert_eq!(s.server.usernames(), ["bob"]);
}

/// A peer cannot pile up data while its password is checked.
#[test]
fn data_held_during_a_check_is_bounded() {
    let mut s = ServerScript::new(password_config());
    s.held = Some(Vec::new());
    let a = s.connect("10.0.0.1:5000");
    s.login_pw(a, "alice", "secret").unwrap();
    let line = chat(&"x".repeat(1000));
    let mut closed = Vec::new();
    for _ in 0..20 {
        s.input(a, &line).unwrap();
        assert!(s.server.buffered(a).unwrap_or(0) <= 16 * 1024);
        closed = closes(&s.last);
        if !closed.is_empty() {
            break;
        }
    }
    assert_eq!(closed, [(a, CloseReason::LineTooLong)]);
}
