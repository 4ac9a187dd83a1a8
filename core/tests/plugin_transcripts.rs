//! Plugins as the server sees them: the events it sends a plugin process,
//! the actions it takes from one, and how it copes with a plugin that
//! crashes, floods, stops reading or writes garbage. Transcripts in
//! simulated time; the processes are the application's (`PluginRequest`).

mod common;

use common::*;
use insta::assert_snapshot;
use lantalk_core::plugin::{PluginExit, PluginId, PluginReply, PluginRequest};
use lantalk_core::server::{Action, PluginSpec};
use lantalk_core::ServerConfig;

fn dice_config() -> ServerConfig {
    ServerConfig {
        name: "Hub".to_string(),
        plugins: vec![PluginSpec {
            name: "dice".to_string(),
            command: "python3 dice.py".to_string(),
            rooms: Vec::new(),
        }],
        ..ServerConfig::default()
    }
}

fn line(id: u64, text: &str) -> PluginReply {
    PluginReply::Line {
        id: PluginId(id),
        line: text.as_bytes().to_vec(),
    }
}

/// The lines sent to plugin run `id` in the last step.
fn to_plugin(actions: &[Action], id: u64) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Plugin(r) => match &**r {
                PluginRequest::Send { id: i, line } if *i == PluginId(id) => {
                    Some(String::from_utf8_lossy(line).into_owned())
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn started(actions: &[Action]) -> Vec<PluginId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Plugin(r) => match &**r {
                PluginRequest::Start { id, .. } => Some(*id),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn hello_register_command_and_reply() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    s.note("the server starts the plugin and says hello first");
    s.plugin(line(
        1,
        r#"{"type":"register","commands":[{"name":"roll","args":"<NdM>","help":"roll dice"}]}"#,
    ));
    assert_eq!(
        to_plugin(&s.last, 1),
        ["{\"type\":\"registered\",\"commands\":[\"roll\"]}\n"]
    );
    let alice = s.at(1.0).join("10.0.0.1:5000", "alice");
    let bob = s.at(1.5).join("10.0.0.2:5000", "bob");
    s.at(2.0).say(alice, "/help").unwrap();
    let help = s.sent_to(alice).concat();
    assert!(help.contains("/roll <NdM> (roll dice; dice bot)"), "{help}");
    s.at(3.0).say(alice, "/roll 2d6").unwrap();
    assert_eq!(
        to_plugin(&s.last, 1),
        ["{\"type\":\"command\",\"id\":1,\"command\":\"roll\",\"args\":\"2d6\",\"user\":\"alice\",\"room\":\"#lobby\"}\n"]
    );
    s.at(3.1).plugin(line(
        1,
        r#"{"type":"reply","id":1,"text":"alice rolled 2d6: 3+4 = 7"}"#,
    ));
    // LanTalk 2.0 clients see a plain name; every member sees the answer.
    for who in [alice, bob] {
        assert_eq!(
            s.sent_to(who),
            ["{\"type\": \"message\", \"ts\": \"12:00\", \"user\": \"dice\", \"text\": \"alice rolled 2d6: 3+4 = 7\"}\n"]
        );
    }
    s.at(3.5).say(bob, "/users").unwrap();
    assert!(
        s.sent_to(bob)[0].contains("Online: alice, bob, dice [bot]"),
        "{:?}",
        s.sent_to(bob)
    );
    s.at(4.0).say(bob, "hello dice").unwrap();
    s.at(4.5).say(bob, "/pm dice secret").unwrap();
    assert_snapshot!(s.transcript());
}

#[test]
fn registration_clashes_are_refused() {
    let mut config = dice_config();
    config.plugins.push(PluginSpec {
        name: "poll".to_string(),
        command: "python3 poll.py".to_string(),
        rooms: Vec::new(),
    });
    let mut s = ServerScript::new(config);
    s.timeout();
    s.plugin(line(1, r#"{"type":"register","commands":[{"name":"roll"},{"name":"/PM"},{"name":"me"},{"name":"bad name"}]}"#));
    let told = to_plugin(&s.last, 1).concat();
    assert!(told.contains("/pm is a built-in command"), "{told}");
    assert!(told.contains("/me is a built-in command"), "{told}");
    assert!(
        told.contains("{\"type\":\"registered\",\"commands\":[\"roll\"]}"),
        "{told}"
    );
    s.plugin(line(
        2,
        r#"{"type":"register","commands":[{"name":"roll"},{"name":"vote"}]}"#,
    ));
    let told = to_plugin(&s.last, 2).concat();
    assert!(
        told.contains("/roll is already the command of plugin dice"),
        "{told}"
    );
    assert!(
        told.contains("{\"type\":\"registered\",\"commands\":[\"vote\"]}"),
        "{told}"
    );
    assert_snapshot!(s.transcript());
}

#[test]
fn a_plugins_name_is_reserved() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    let c = s.connect("10.0.0.1:5000");
    s.login(c, "Dice").unwrap();
    assert!(s.sent_to(c)[0].contains("Username already taken."));
}

#[test]
fn plugins_see_only_their_rooms() {
    let mut config = dice_config();
    config.plugins[0].rooms = vec!["#games".to_string()];
    let mut s = ServerScript::new(config);
    s.timeout();
    assert!(to_plugin(&s.last, 1)[0].contains("\"rooms\":[\"#games\"]"));
    s.plugin(line(
        1,
        r#"{"type":"register","commands":[{"name":"roll"}]}"#,
    ));
    let alice = s.at(1.0).join("10.0.0.1:5000", "alice");
    assert!(to_plugin(&s.last, 1).is_empty(), "no join in the lobby");
    s.at(2.0).say(alice, "secret lobby talk").unwrap();
    assert!(
        to_plugin(&s.last, 1).is_empty(),
        "nothing said in the lobby"
    );
    s.at(3.0).say(alice, "/roll 2d6").unwrap();
    assert!(to_plugin(&s.last, 1).is_empty());
    assert!(s.sent_to(alice)[0].contains("/roll is not available in #lobby"));
    s.at(4.0)
        .plugin(line(1, r##"{"type":"say","room":"#lobby","text":"hi"}"##));
    assert!(s.sent_to(alice).is_empty(), "it cannot speak there either");
    assert!(to_plugin(&s.last, 1)[0].contains("not allowed to speak in #lobby"));
    s.at(5.0)
        .disconnect(alice, lantalk_core::server::DisconnectCause::PeerClosed)
        .unwrap();
    assert!(to_plugin(&s.last, 1).is_empty(), "no leave from the lobby");
}

#[test]
fn pms_reach_the_plugin_and_it_answers_privately() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    let alice = s.at(1.0).join("10.0.0.1:5000", "alice");
    let bob = s.at(1.0).join("10.0.0.2:5000", "bob");
    s.at(2.0).say(alice, "/pm bob not for dice").unwrap();
    assert!(
        to_plugin(&s.last, 1).is_empty(),
        "others' PMs are not shown"
    );
    s.at(3.0).say(alice, "/pm dice hi").unwrap();
    assert_eq!(
        to_plugin(&s.last, 1),
        ["{\"type\":\"pm\",\"user\":\"alice\",\"text\":\"hi\"}\n"]
    );
    s.at(4.0).plugin(line(
        1,
        r#"{"type":"pm","user":"alice","text":"hello alice"}"#,
    ));
    assert_eq!(
        s.sent_to(alice),
        ["{\"type\": \"pm\", \"ts\": \"12:00\", \"from_user\": \"dice\", \"text\": \"hello alice\"}\n"]
    );
    assert!(s.sent_to(bob).is_empty());
}

#[test]
fn a_crashing_plugin_is_restarted_with_back_off() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    s.plugin(line(
        1,
        r#"{"type":"register","commands":[{"name":"roll"}]}"#,
    ));
    s.at(1.0).plugin(PluginReply::Exited {
        id: PluginId(1),
        why: PluginExit::Exited(Some(1)),
    });
    let alice = s.at(1.5).join("10.0.0.1:5000", "alice");
    s.at(1.6).say(alice, "/roll 2d6").unwrap();
    assert!(s.sent_to(alice)[0].contains("Unknown command: /roll"));
    s.timeout();
    assert_eq!(started(&s.last), [PluginId(2)]);
    s.note("a late line from the first run is not taken for the second's");
    s.plugin(line(
        1,
        r##"{"type":"say","room":"#lobby","text":"ghost"}"##,
    ));
    assert!(s.last.is_empty());
    s.plugin(PluginReply::Exited {
        id: PluginId(2),
        why: PluginExit::CutOff,
    });
    s.timeout();
    assert_eq!(started(&s.last), [PluginId(3)]);
    s.plugin(PluginReply::Exited {
        id: PluginId(3),
        why: PluginExit::CannotStart("No such file or directory".into()),
    });
    s.timeout();
    assert_snapshot!(s.transcript());
}

#[test]
fn garbage_is_answered_with_errors_then_the_plugin_is_stopped() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    let alice = s.at(1.0).join("10.0.0.1:5000", "alice");
    s.summarised(true);
    for i in 0..9 {
        s.at(2.0 + f64::from(i) * 0.1).plugin(line(1, "not json"));
        assert!(to_plugin(&s.last, 1)[0].starts_with("{\"type\":\"error\""));
    }
    s.at(3.0).plugin(PluginReply::TooLong { id: PluginId(1) });
    assert!(s
        .last
        .iter()
        .any(|a| matches!(a, Action::Plugin(r) if matches!(**r, PluginRequest::Stop { .. }))));
    s.at(3.5).say(alice, "chat goes on").unwrap();
    assert!(s.server.poll_timeout().is_some(), "the idle deadline");
    s.summarised(false);
    s.timeout_at(100.0);
    assert!(started(&s.last).is_empty(), "not started again");
    assert_snapshot!(s.transcript());
}

#[test]
fn plugin_speech_is_rate_limited_and_checked_like_a_persons() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    let alice = s.at(1.0).join("10.0.0.1:5000", "alice");
    s.at(2.0).plugin(line(
        1,
        "{\"type\":\"say\",\"room\":\"#lobby\",\"text\":\"bell\\u0007\"}",
    ));
    assert!(s.sent_to(alice).is_empty());
    assert!(to_plugin(&s.last, 1)[0].contains("U+0007"));
    let long = "x".repeat(2001);
    s.plugin(line(
        1,
        &format!(r##"{{"type":"say","room":"#lobby","text":"{long}"}}"##),
    ));
    assert!(s.sent_to(alice).is_empty());
    let mut delivered = 0;
    for _ in 0..50 {
        s.plugin(line(
            1,
            r##"{"type":"say","room":"#lobby","text":"flood"}"##,
        ));
        delivered += s.sent_to(alice).len();
    }
    assert_eq!(delivered, 10, "the default rate: 10 lines in 5 s");
    s.at(10.0).plugin(line(
        1,
        r##"{"type":"say","room":"#lobby","text":"later"}"##,
    ));
    assert_eq!(s.sent_to(alice).len(), 1);
}

#[test]
fn timers_tick() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    s.plugin(line(
        1,
        r#"{"type":"timer","name":"every","every_ms":60000}"#,
    ));
    s.plugin(line(
        1,
        r#"{"type":"timer","name":"once","after_ms":90000}"#,
    ));
    s.plugin(line(1, r#"{"type":"timer","name":"fast","every_ms":10}"#));
    assert!(to_plugin(&s.last, 1)[0].contains("the shortest timer is 1000 ms"));
    s.timeout();
    assert_eq!(
        to_plugin(&s.last, 1),
        ["{\"type\":\"tick\",\"timer\":\"every\"}\n"]
    );
    s.timeout();
    assert_eq!(
        to_plugin(&s.last, 1),
        ["{\"type\":\"tick\",\"timer\":\"once\"}\n"]
    );
    s.timeout();
    assert_eq!(
        to_plugin(&s.last, 1),
        ["{\"type\":\"tick\",\"timer\":\"every\"}\n"]
    );
    s.plugin(line(1, r#"{"type":"timer","name":"every"}"#));
    assert_eq!(s.server.poll_timeout(), None, "cancelled");
    assert_snapshot!(s.transcript());
}

#[test]
fn shutdown_stops_plugins() {
    let mut s = ServerScript::new(dice_config());
    s.timeout();
    s.shutdown();
    assert!(s
        .last
        .iter()
        .any(|a| matches!(a, Action::Plugin(r) if **r == PluginRequest::Stop { id: PluginId(1) })));
}

/// `register` costs what a line said does, and only a change of commands
/// is told to clients of ours: a plugin cannot flood them with it.
#[test]
fn registering_again_and_again_does_not_flood_clients() {
    use common::pair::Pair;
    use common::secure_peer::SecurePeer;
    use lantalk_core::secure::StaticKey;
    use lantalk_core::server::SecureConfig;
    let mut config = dice_config();
    config.secure = Some(SecureConfig {
        identity: StaticKey::from_private([0x11; 32]),
        rng_seed: [5; 32],
        suites: Vec::new(),
    });
    let mut pair = Pair::new(config);
    pair.with_server(|s, now| s.handle_timeout(now));
    let mut alice = SecurePeer::join(&mut pair, "alice", "10.0.0.1:4000", [0x21; 32]);
    pair.drive();
    let _ = alice.lines(&pair);
    for _ in 0..500 {
        pair.with_server(|s, now| {
            s.handle_plugin(now, line(1, r#"{"type":"register","commands":[{"name":"roll","help":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]}"#))
        });
    }
    pair.drive();
    let got = alice.lines(&pair);
    assert!(
        got.len() <= 1,
        "{} lines pushed to alice in one instant",
        got.len()
    );
}
