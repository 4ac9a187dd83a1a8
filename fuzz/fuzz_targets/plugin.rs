//! A server with two plugins, fed hostile plugin output: lines (raw bytes,
//! or well-formed actions with fuzzed fields), lines too long, stderr, exits,
//! alongside people chatting, typing the plugins' commands and leaving, and
//! time passing. The server never panics, drains, never asks for a deadline
//! in the past, never sends to a closed connection, never talks to a plugin
//! run that is not the current one, and restarts a stopped plugin only
//! through `Start`.
#![no_main]

use std::collections::HashSet;

use lantalk_core::plugin::{PluginExit, PluginId, PluginReply, PluginRequest};
use lantalk_core::server::{Action, DisconnectCause, PluginSpec};
use lantalk_core::{BanList, ConnId, Now, Server, ServerConfig};
use libfuzzer_sys::fuzz_target;

const ACTIONS: &[&str] = &[
    r#"{"type":"register","commands":[{"name":"roll"},{"name":"pm"},{"name":"x y"}]}"#,
    r##"{"type":"say","room":"#lobby","text":"hi"}"##,
    r##"{"type":"say","room":"#games","text":"hi"}"##,
    r#"{"type":"reply","id":1,"text":"ok"}"#,
    r#"{"type":"pm","user":"u0","text":"psst"}"#,
    r#"{"type":"timer","name":"t","every_ms":1000}"#,
    r#"{"type":"timer","name":"t","after_ms":1}"#,
    r#"{"type":"timer","name":"t"}"#,
];

fuzz_target!(|data: &[u8]| {
    let config = ServerConfig {
        plugins: vec![
            PluginSpec {
                name: "dice".into(),
                command: "dice".into(),
                rooms: vec![],
            },
            PluginSpec {
                name: "spy".into(),
                command: "spy".into(),
                rooms: vec!["#games".into()],
            },
        ],
        ..ServerConfig::default()
    };
    let mut t = 0.0f64;
    let mut server = Server::new(config, Now::from_secs_f64(t), BanList::default());
    let mut current: HashSet<PluginId> = HashSet::new();
    let mut stopped: HashSet<PluginId> = HashSet::new();
    let mut conns: Vec<ConnId> = Vec::new();
    let mut closed: HashSet<ConnId> = HashSet::new();
    let check = |server: &mut Server,
                 now: Now,
                 current: &mut HashSet<PluginId>,
                 stopped: &mut HashSet<PluginId>,
                 closed: &mut HashSet<ConnId>| {
        let mut n = 0;
        while let Some(a) = server.poll_action() {
            n += 1;
            assert!(n < 1_000_000, "poll_action does not run dry");
            match a {
                Action::Plugin(r) => match *r {
                    PluginRequest::Start { id, .. } => {
                        assert!(current.insert(id), "{id} started twice");
                    }
                    PluginRequest::Send { id, line } => {
                        assert!(current.contains(&id), "a line for {id}, not running");
                        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                        assert_eq!(line.last(), Some(&b'\n'));
                    }
                    PluginRequest::Stop { id } => {
                        assert!(current.remove(&id), "stop of {id}, not running");
                        stopped.insert(id);
                    }
                },
                Action::Send { conn, .. } => assert!(!closed.contains(&conn), "send to closed"),
                Action::Close { conn, .. } => {
                    closed.insert(conn);
                }
                _ => {}
            }
        }
        if let Some(d) = server.poll_timeout() {
            assert!(d >= now.instant, "deadline in the past");
        }
    };
    server.handle_timeout(Now::from_secs_f64(t));
    check(
        &mut server,
        Now::from_secs_f64(t),
        &mut current,
        &mut stopped,
        &mut closed,
    );

    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let arg = rest.first().copied().unwrap_or(0);
        // The plugin run an operation is about: one of those started so far.
        let pick = |current: &HashSet<PluginId>| {
            let mut ids: Vec<PluginId> = current.iter().copied().collect();
            ids.sort();
            ids.get(usize::from(arg) % ids.len().max(1))
                .copied()
                .unwrap_or(PluginId(u64::from(arg)))
        };
        match op % 9 {
            0 => {
                // A raw line up to the next 0xff.
                let end = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
                let line = rest[..end].to_vec();
                rest = &rest[(end + 1).min(rest.len())..];
                let id = pick(&current);
                server.handle_plugin(Now::from_secs_f64(t), PluginReply::Line { id, line });
            }
            1 => {
                let id = pick(&current);
                let line = ACTIONS[usize::from(arg >> 4) % ACTIONS.len()]
                    .as_bytes()
                    .to_vec();
                rest = rest.get(1..).unwrap_or_default();
                server.handle_plugin(Now::from_secs_f64(t), PluginReply::Line { id, line });
            }
            2 => {
                let id = pick(&current);
                rest = rest.get(1..).unwrap_or_default();
                let reply = match arg % 4 {
                    0 => PluginReply::TooLong { id },
                    1 => PluginReply::Stderr {
                        id,
                        line: vec![0x1b, b'[', b'2', b'J'],
                    },
                    2 => PluginReply::Exited {
                        id,
                        why: PluginExit::CutOff,
                    },
                    _ => PluginReply::Exited {
                        id,
                        why: PluginExit::Exited(Some(1)),
                    },
                };
                // An exited run is over for the server too.
                if matches!(reply, PluginReply::Exited { .. }) {
                    current.remove(&id);
                }
                server.handle_plugin(Now::from_secs_f64(t), reply);
            }
            3 => {
                let c =
                    server.handle_connect(Now::from_secs_f64(t), "10.0.0.1:5000".parse().unwrap());
                let login = format!(
                    "{{\"username\": \"u{}\", \"password\": \"\"}}\n",
                    conns.len()
                );
                let _ = server.handle_input(Now::from_secs_f64(t), c, login.as_bytes());
                conns.push(c);
            }
            4 | 5 => {
                let end = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
                let text = String::from_utf8_lossy(&rest[..end]).into_owned();
                rest = &rest[(end + 1).min(rest.len())..];
                if let Some(&c) = conns.get(usize::from(arg) % conns.len().max(1)) {
                    let text = if op % 9 == 4 {
                        format!("/roll {text}")
                    } else {
                        text
                    };
                    let line = format!("{}\n", lantalk_core::protocol::chat(&text).trim_end());
                    let _ = server.handle_input(Now::from_secs_f64(t), c, line.as_bytes());
                }
            }
            6 => {
                if let Some(&c) = conns.get(usize::from(arg) % conns.len().max(1)) {
                    let _ = server.handle_disconnect(
                        Now::from_secs_f64(t),
                        c,
                        DisconnectCause::PeerClosed,
                    );
                    closed.insert(c);
                }
            }
            7 => {
                t += f64::from(arg) * 0.5;
                server.handle_timeout(Now::from_secs_f64(t));
            }
            _ => {
                if let Some(d) = server.poll_timeout() {
                    t = t.max(d.saturating_since(Default::default()).as_secs_f64());
                    server.handle_timeout(Now::from_secs_f64(t));
                }
            }
        }
        check(
            &mut server,
            Now::from_secs_f64(t),
            &mut current,
            &mut stopped,
            &mut closed,
        );
    }
    server.shutdown(Now::from_secs_f64(t));
    check(
        &mut server,
        Now::from_secs_f64(t),
        &mut current,
        &mut stopped,
        &mut closed,
    );
    assert!(
        current.is_empty(),
        "a plugin still running after shutdown: {current:?}"
    );
});
