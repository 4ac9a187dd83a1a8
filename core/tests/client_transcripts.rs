//! The client's behaviour, one transcript per behaviour, pinned by snapshots.
//!
//! Server lines are produced with the crate's own encoders (`common::srv`), at
//! wall clock 12:00. See `common/mod.rs` for the transcript format.

mod common;

use common::*;
use insta::assert_snapshot;
use lantalk_core::client::{ClientAction, ClientConfig, ClientEvent};

fn config(name: &str) -> ClientConfig {
    ClientConfig::new(name, None)
}

fn events(actions: &[ClientAction]) -> Vec<ClientEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            ClientAction::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// A client that has logged in as `name` at 0.1 s.
fn joined(name: &str) -> ClientScript {
    let mut c = ClientScript::new(config(name));
    c.server(srv::auth_request(false));
    c.at(0.1).server(srv::auth_ok(name));
    assert!(c.client.is_joined());
    c
}

#[test]
fn normal_login() {
    let mut c = ClientScript::new(config("alice"));
    assert_eq!(c.client.poll_timeout(), Some(at(10.0).instant));
    c.at(0.5).server(srv::auth_request(false));
    assert_eq!(
        c.sent(),
        ["{\"username\": \"alice\", \"password\": \"\"}\n"]
    );
    assert_eq!(
        c.client.poll_timeout(),
        Some(at(10.5).instant),
        "a fresh deadline for the answer"
    );
    c.at(0.6).server(srv::auth_ok("alice"));
    assert!(c.client.is_joined());
    assert_eq!(c.client.poll_timeout(), None);
    assert_snapshot!(c.transcript());
}

#[test]
fn server_decides_the_spelling_of_the_name() {
    let mut c = ClientScript::new(ClientConfig::new("alice", Some("secret".to_string())));
    c.note("a configured password is sent even when none is asked for");
    c.server(srv::auth_request(false));
    c.server(srv::auth_ok("Alice"));
    assert_eq!(c.client.username(), "Alice");
    assert_snapshot!(c.transcript());
}

#[test]
fn password_required_but_not_known() {
    let mut c = ClientScript::new(config("alice"));
    c.server(srv::auth_request(true));
    assert!(c.client.is_closed());
    assert!(c.sent().is_empty());
    assert_snapshot!(c.transcript());
}

#[test]
fn password_required() {
    let mut cfg = config("alice");
    cfg.ask_password = true;
    let mut c = ClientScript::new(cfg);
    c.at(0.2).server(srv::auth_request(true));
    assert_eq!(events(&c.last), [ClientEvent::PasswordRequired]);
    assert_eq!(
        c.client.poll_timeout(),
        None,
        "waiting for the person, not the server"
    );
    c.note("lines typed while the password is asked for wait for the login");
    c.at(3.0).user("hello");
    assert!(c.sent().is_empty());
    c.at(20.0).password("secret");
    assert_eq!(
        c.sent(),
        ["{\"username\": \"alice\", \"password\": \"secret\"}\n"]
    );
    c.note("only one answer is taken");
    c.password("again");
    assert!(c.last.is_empty());
    c.at(20.1).server(srv::auth_ok("alice"));
    assert_eq!(c.sent(), [chat("hello")]);
    assert_snapshot!(c.transcript());
}

#[test]
fn password_configured() {
    let mut c = ClientScript::new(ClientConfig::new("alice", Some("secret".to_string())));
    c.server(srv::auth_request(true));
    assert_eq!(
        c.sent(),
        ["{\"username\": \"alice\", \"password\": \"secret\"}\n"]
    );
    c.server(srv::auth_fail("Wrong password."));
    assert!(c.client.is_closed());
    assert_snapshot!(c.transcript());
}

#[test]
fn quit_while_the_password_is_asked_for() {
    let mut cfg = config("alice");
    cfg.ask_password = true;
    let mut c = ClientScript::new(cfg);
    c.server(srv::auth_request(true));
    c.user("never sent");
    c.at(1.0).quit();
    assert!(c.client.is_closed());
    assert!(c.sent().is_empty());
    assert_snapshot!(c.transcript());
}

#[test]
fn auth_fail_is_refused_and_closes() {
    let mut c = ClientScript::new(config("alice"));
    c.server(srv::auth_request(false));
    c.at(0.1).server(srv::auth_fail("Username already taken."));
    assert_eq!(
        events(&c.last),
        [ClientEvent::Refused {
            reason: "Username already taken.".to_string(),
            // LanTalk 2.0's fixed wording, understood as a value.
            why: lantalk_core::client::Refusal::NameTaken,
        }]
    );
    assert_eq!(c.last.last(), Some(&ClientAction::Close));
    c.note("everything after is ignored");
    c.server(srv::message("bob", "hi"));
    c.user("hello?");
    c.disconnect();
    c.quit();
    assert!(c.last.is_empty());
    assert_snapshot!(c.transcript());
}

#[test]
fn refused_at_connect() {
    let mut c = ClientScript::new(config("alice"));
    c.server(srv::auth_fail("You are banned from this server."));
    assert!(c.client.is_closed());
    assert_snapshot!(c.transcript());
}

#[test]
fn nonsense_during_login() {
    let mut c = ClientScript::new(config("alice"));
    c.note("lines that are not JSON objects are skipped with a notice");
    c.server("SSH-2.0-OpenSSH_9.6\r\n");
    c.server(b"\xff\xfe\n");
    c.server("[1, 2]\n");
    assert!(!c.client.is_closed());
    c.note("a well-formed line out of turn ends the login");
    c.server(srv::system("welcome!"));
    assert!(c.client.is_closed());
    let mut c2 = ClientScript::new(config("alice"));
    c2.server(srv::auth_ok("alice"));
    assert!(c2.client.is_closed(), "auth_ok before auth_request");
    let mut c3 = ClientScript::new(config("alice"));
    c3.server(srv::auth_request(false));
    c3.server(srv::auth_request(false));
    assert!(c3.client.is_closed(), "auth_request twice");
    let mut c4 = ClientScript::new(config("alice"));
    c4.server("{\"type\": \"hello\"}\n");
    assert!(c4.client.is_closed(), "unknown type during login");
    assert_snapshot!(format!(
        "{}\n{}\n{}\n{}",
        c.transcript(),
        c2.transcript(),
        c3.transcript(),
        c4.transcript()
    ));
}

#[test]
fn login_timeout() {
    let mut c = ClientScript::new(config("alice"));
    c.timeout_at(9.999);
    assert!(!c.client.is_closed());
    c.timeout();
    assert!(c.client.is_closed());
    assert_eq!(c.client.poll_timeout(), None);
    c.note("the answer to the login has its own deadline");
    let mut c2 = ClientScript::new(config("bob"));
    c2.at(4.0).server(srv::auth_request(false));
    c2.timeout();
    assert!(c2.client.is_closed());
    assert_snapshot!(format!("{}\n{}", c.transcript(), c2.transcript()));
}

#[test]
fn chat_events() {
    let mut c = joined("alice");
    c.at(1.0)
        .server(srv::message("bob", "hi \u{1F44B} \"alice\""));
    c.server(srv::pm("bob", "psst"));
    c.server(srv::system("carol joined from 10.0.0.3."));
    c.note("several lines in one chunk, the last one unfinished");
    let chunk = [
        srv::message("bob", "one"),
        srv::message("carol", "two"),
        "{\"type\": \"sys".to_string(),
    ]
    .concat();
    c.server(chunk);
    c.server("tem\", \"ts\": \"12:01\", \"text\": \"three\"}\r\n");
    c.note("an auth_fail after login is shown as a system line; unknown types are ignored");
    c.server(srv::auth_fail("odd"));
    c.server("{\"type\": \"typing\", \"user\": \"bob\"}\n");
    c.server(srv::auth_ok("alice"));
    c.note("malformed lines are skipped with a notice");
    c.server("{\"type\": \"message\", \"text\": 5}\n");
    c.server("not json\n");
    c.note("missing fields are empty");
    c.server("{\"type\": \"message\"}\n");
    assert!(c.client.is_joined());
    assert_snapshot!(c.transcript());
}

#[test]
fn user_lines_and_local_commands() {
    let mut c = joined("alice");
    c.at(1.0).user("  hello world  ");
    assert_eq!(c.sent(), [chat("hello world")]);
    c.user("   ");
    assert!(c.last.is_empty());
    c.note("/pm echoes locally (the server does not) and goes to the server");
    c.user("/pm bob  see you at 5 ");
    assert_eq!(
        events(&c.last),
        [ClientEvent::PmSent {
            to: "bob".to_string(),
            text: "see you at 5".to_string()
        }]
    );
    assert_eq!(c.sent(), [chat("/pm bob  see you at 5")]);
    c.user("/PM bob hi");
    c.user("/pm bob");
    c.user("/pm");
    assert!(c.sent().is_empty());
    c.note("/help is answered locally");
    c.user("/help");
    assert!(c.sent().is_empty());
    c.note("other commands go to the server");
    c.user("/users");
    c.user("/whatever x");
    assert_snapshot!(c.transcript());
}

#[test]
fn overlong_text_is_not_sent() {
    let mut c = joined("alice");
    c.at(1.0).user(&"a".repeat(2000));
    assert_eq!(c.sent().len(), 1);
    c.user(&"a".repeat(2001));
    assert!(c.sent().is_empty());
    c.note("characters, not bytes");
    c.user(&"\u{e9}".repeat(2000));
    assert_eq!(c.sent().len(), 1);
    c.user(&format!("  {}  ", "b".repeat(2000)));
    assert_eq!(c.sent().len(), 1);
    assert_snapshot!(c.transcript());
}

#[test]
fn overlong_pm_is_not_echoed() {
    let mut c = joined("alice");
    c.user(&format!("/pm bob {}", "a".repeat(2000)));
    assert!(c.sent().is_empty());
    assert!(
        !events(&c.last)
            .iter()
            .any(|e| matches!(e, ClientEvent::PmSent { .. })),
        "{:?}",
        events(&c.last)
    );
}

/// Pacing keeps a margin below the server's limit (10 lines per 5 s by
/// default): 9 lines per 5.7 s, so a line delayed on the way cannot make
/// the next burst look too fast to the server.
#[test]
fn pacing_holds_lines_back() {
    let mut c = joined("alice");
    c.summarised(true);
    c.at(1.0);
    for i in 1..=15 {
        c.user(&format!("line {i}"));
    }
    c.summarised(false);
    assert_eq!(c.client.poll_timeout(), Some(at(6.7).instant));
    c.timeout_at(6.699);
    assert!(c.sent().is_empty());
    c.timeout();
    assert_eq!(
        c.sent(),
        (10..=15)
            .map(|i| chat(&format!("line {i}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(c.client.poll_timeout(), None);
    c.note("the window slides: 6 slots are taken since 6.7");
    c.summarised(true);
    c.at(7.2);
    for i in 16..=30 {
        c.user(&format!("line {i}"));
    }
    c.summarised(false);
    assert_eq!(c.client.poll_timeout(), Some(at(12.4).instant));
    c.timeout();
    assert_eq!(c.sent().len(), 6);
    assert_eq!(c.client.poll_timeout(), Some(at(12.9).instant));
    c.timeout();
    assert_eq!(
        c.sent(),
        (25..=27)
            .map(|i| chat(&format!("line {i}")))
            .collect::<Vec<_>>()
    );
    assert_snapshot!(c.transcript());
}

#[test]
fn pacing_off() {
    let mut cfg = config("alice");
    cfg.send_rate = None;
    let mut c = ClientScript::new(cfg);
    c.server(srv::auth_request(false));
    c.server(srv::auth_ok("alice"));
    for i in 1..=50 {
        c.client.handle_user_line(at(0.0), &format!("line {i}"));
    }
    let sent = drain_client(&mut c.client)
        .into_iter()
        .filter(|a| matches!(a, ClientAction::Send(_)))
        .count();
    assert_eq!(sent, 50);
    assert_eq!(c.client.poll_timeout(), None);
}

#[test]
fn lines_typed_before_login_are_sent_after_auth_ok() {
    let mut c = ClientScript::new(config("alice"));
    c.user("early one");
    c.user("/pm bob early two");
    c.server(srv::auth_request(false));
    assert_eq!(c.sent(), [login("alice", "")]);
    c.at(0.1).server(srv::auth_ok("alice"));
    assert_eq!(c.sent(), [chat("early one"), chat("/pm bob early two")]);
    assert_snapshot!(c.transcript());
}

#[test]
fn quit_after_queued_lines_closes_once_they_are_sent() {
    let mut c = joined("alice");
    c.summarised(true);
    c.at(1.0);
    for i in 1..=15 {
        c.user(&format!("line {i}"));
    }
    c.summarised(false);
    c.user("/quit");
    assert!(!c.client.is_leaving());
    assert!(!c.last.contains(&ClientAction::Close));
    c.note("the user may still type");
    c.user("one more");
    c.timeout();
    assert_eq!(c.sent().len(), 7);
    assert_eq!(c.last.last(), Some(&ClientAction::Close));
    assert!(c.client.is_leaving());
    c.note("half-closed: late answers are still shown, typing is not");
    c.at(6.8).server(srv::system("Online: alice, bob"));
    c.user("too late");
    assert!(c.last.is_empty());
    c.at(6.9).disconnect();
    assert_eq!(
        events(&c.last),
        [ClientEvent::Disconnected {
            reason: "You left.".to_string(),
            expected: true
        }]
    );
    assert!(c.client.is_closed());
    assert_snapshot!(c.transcript());
}

#[test]
fn quit_before_login_waits_for_queued_lines() {
    let mut c = ClientScript::new(config("alice"));
    c.user("hello");
    c.user("/q");
    assert!(!c.client.is_closed());
    c.server(srv::auth_request(false));
    c.at(0.1).server(srv::auth_ok("alice"));
    assert_eq!(c.sent(), [chat("hello")]);
    assert!(c.client.is_leaving());
    c.disconnect();
    assert!(c.client.is_closed());
    c.note("nothing queued: /exit leaves at once");
    let mut c2 = joined("bob");
    c2.user("/EXIT");
    assert!(c2.client.is_leaving());
    assert_eq!(c2.last, [ClientAction::Close]);
    c2.note("interrupted before login, the session ends at once");
    let mut c3 = ClientScript::new(config("carol"));
    c3.server(srv::auth_request(false));
    c3.interrupt();
    assert!(c3.client.is_closed());
    assert_snapshot!(format!(
        "{}\n{}\n{}",
        c.transcript(),
        c2.transcript(),
        c3.transcript()
    ));
}

#[test]
fn server_disconnect() {
    let mut c = joined("alice");
    c.at(1.0).disconnect();
    assert_eq!(
        events(&c.last),
        [ClientEvent::Disconnected {
            reason: "Connection closed by the server.".to_string(),
            expected: false
        }]
    );
    assert_eq!(c.client.poll_timeout(), None);
    c.disconnect();
    assert!(c.last.is_empty());
    c.note("during login");
    let mut c2 = ClientScript::new(config("bob"));
    c2.server(srv::auth_request(false));
    c2.disconnect();
    assert!(matches!(
        events(&c2.last)[..],
        [ClientEvent::Disconnected {
            expected: false,
            ..
        }]
    ));
    assert_snapshot!(format!("{}\n{}", c.transcript(), c2.transcript()));
}

#[test]
fn oversized_server_line() {
    let mut cfg = config("alice");
    cfg.max_line = 100;
    let mut c = ClientScript::new(cfg);
    c.server(srv::auth_request(false));
    c.server(srv::auth_ok("alice"));
    c.at(1.0).server(srv::message("bob", &"x".repeat(100)));
    assert!(c.client.is_closed());
    assert_snapshot!(c.transcript());
}

#[test]
fn chunking_of_auth_ok_and_what_follows() {
    fn run(tail: &[u8], split: bool) -> Vec<ClientAction> {
        let mut cfg = config("alice");
        cfg.max_line = 100;
        let mut c = ClientScript::new(cfg);
        c.user("typed early");
        c.server(srv::auth_request(false));
        let ok = srv::auth_ok("alice");
        let mut all = Vec::new();
        if split {
            c.server(&ok);
            all.extend(c.last.clone());
            c.server(tail);
        } else {
            c.server([ok.as_bytes(), tail].concat());
        }
        all.extend(c.last.clone());
        all
    }
    let message = srv::message("bob", "hi");
    assert_eq!(
        run(message.as_bytes(), false),
        run(message.as_bytes(), true)
    );
    let oversized = "x".repeat(101);
    assert_eq!(
        run(oversized.as_bytes(), false),
        run(oversized.as_bytes(), true)
    );
}

#[test]
fn failure_while_leaving_is_not_a_refused_login() {
    let mut cfg = config("alice");
    cfg.max_line = 100;
    let mut c = ClientScript::new(cfg);
    c.server(srv::auth_request(false));
    c.server(srv::auth_ok("alice"));
    c.quit();
    assert!(c.client.is_leaving());
    c.server("x".repeat(101));
    assert!(c.client.is_closed());
    assert!(
        matches!(events(&c.last)[..], [ClientEvent::Disconnected { .. }]),
        "{:?}",
        c.last
    );
}

/// Found by `cargo fuzz run client` (fuzz/regressions/client/
/// user-line-of-only-py-space-is-sent-as-empty-message): a line of only the
/// separators U+001C..U+001F, which the server trims away as Python does,
/// went out as an empty message and used up a pacing slot.
#[test]
fn line_of_only_python_white_space_is_not_sent() {
    let mut c = joined("alice");
    c.user("\u{1e}");
    c.user("\u{1c} \u{1f}\t");
    assert!(c.sent().is_empty(), "{:?}", c.sent());
    c.user("\u{1d}hi\u{1f}");
    assert_eq!(c.sent(), [chat("hi")]);
}

#[test]
fn plugin_commands_join_help_and_are_reported() {
    let mut c = joined("alice");
    c.at(1.0).server(
        "{\"type\": \"plugin_commands\", \"ts\": \"12:00\", \"commands\": [{\"name\": \"/roll\", \"args\": \"<NdM>\", \"help\": \"roll dice\", \"plugin\": \"dice\"}, {\"name\": \"not a command\"}]}\n",
    );
    let [ClientEvent::PluginCommands { commands }] = &events(&c.last)[..] else {
        panic!("{:?}", c.last);
    };
    assert_eq!(commands.len(), 1, "a name that is not a command is dropped");
    assert_eq!(commands[0].name, "/roll");
    c.user("/help");
    let shown = format!("{:?}", events(&c.last));
    assert!(
        shown.contains("/roll <NdM> (roll dice; dice bot)"),
        "{shown}"
    );
    c.note("the plugin's command goes to the server like any other");
    c.user("/roll 2d6");
    assert_eq!(c.sent(), [chat("/roll 2d6")]);
}
