//! The browser's session glue against the real server core, natively: what
//! the page would see, as the JSON objects it gets, with the bytes carried
//! by hand where the page would use WebSockets.

use std::time::Duration;

use lantalk_core::bans::BanList;
use lantalk_core::driver::ClientInput;
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::secure::StaticKey;
use lantalk_core::server::{Action, ConnId, SecureConfig, Server, ServerConfig};
use lantalk_core::time::{Instant, Now, WallTime};
use lantalk_web::events::hex;
use lantalk_web::session::{Output, Session};
use serde_json::{json, Value};

struct Tab {
    session: Session,
    conn: ConnId,
    seen: Vec<Value>,
}

struct Net {
    server: Server,
    ms: f64,
    /// Bytes for a tab not taking part in this `run`.
    pending: Vec<(ConnId, Vec<u8>)>,
}

impl Net {
    fn new(password: Option<&str>, server_key: u8) -> Net {
        let config = ServerConfig {
            secure: Some(SecureConfig {
                identity: StaticKey::from_private([server_key; 32]),
                rng_seed: [9; 32],
                suites: Vec::new(),
            }),
            password: password.map(|p| PasswordHash::new(p, [1; 16], HashParams::INSECURE_FAST)),
            ..ServerConfig::default()
        };
        Net {
            server: Server::new(config, now(0.0), BanList::default()),
            ms: 0.0,
            pending: Vec::new(),
        }
    }

    fn open(&mut self, name: &str, password: &str, pinned: Option<String>) -> Tab {
        let conn = self
            .server
            .handle_connect(now(self.ms), "127.0.0.1:40000".parse().unwrap());
        let mut session = Session::default();
        session.set_clock(self.ms, 0.0, 12, 0);
        session
            .start(&json!({
                "name": name, "password": password,
                "identity": hex(&[name.len() as u8; 32]), "seed": hex(&[7; 32]),
                "pinned": pinned, "fresh": true,
            }))
            .unwrap();
        let mut tab = Tab {
            session,
            conn,
            seen: Vec::new(),
        };
        self.run(&mut [&mut tab]);
        tab
    }

    /// Carries bytes both ways (and password checks) until all is quiet.
    fn run(&mut self, tabs: &mut [&mut Tab]) {
        for (conn, bytes) in std::mem::take(&mut self.pending) {
            match tabs.iter_mut().find(|t| t.conn == conn) {
                Some(tab) => tab.session.feed(ClientInput::Bytes(&bytes)),
                None => self.pending.push((conn, bytes)),
            }
        }
        for _ in 0..100 {
            self.ms += 10.0;
            let mut moved = false;
            for tab in tabs.iter_mut() {
                tab.session.set_clock(self.ms, 0.0, 12, 0);
                while let Some(out) = tab.session.poll_output() {
                    match out {
                        Output::Transmit(bytes) => {
                            moved = true;
                            self.server
                                .handle_input(now(self.ms), tab.conn, &bytes)
                                .unwrap();
                        }
                        Output::Json(v) => tab.seen.push(v),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            while let Some(action) = self.server.poll_action() {
                match action {
                    Action::Send { conn, bytes } => {
                        moved = true;
                        match tabs.iter_mut().find(|t| t.conn == conn) {
                            Some(tab) => tab.session.feed(ClientInput::Bytes(&bytes)),
                            None => self.pending.push((conn, bytes.to_vec())),
                        }
                    }
                    Action::CheckPassword(check) => {
                        moved = true;
                        let answer = check.run();
                        self.server.handle_password_checked(now(self.ms), answer);
                    }
                    Action::Close { conn, .. } => {
                        if let Some(tab) = tabs.iter_mut().find(|t| t.conn == conn) {
                            tab.session.feed(ClientInput::Closed);
                        }
                    }
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
    }
}

fn now(ms: f64) -> Now {
    Now::new(
        Instant::from_epoch(Duration::from_secs_f64(ms / 1000.0)),
        WallTime {
            hour: 12,
            minute: 0,
            unix_ms: 0,
        },
    )
}

fn events<'a>(tab: &'a Tab, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    tab.seen.iter().filter(move |v| v["e"] == kind)
}

#[test]
fn two_tabs_join_encrypted_and_chat() {
    let mut net = Net::new(Some("hunter2"), 1);
    let mut alice = net.open("alice", "hunter2", None);
    let mut bob = net.open("bob", "hunter2", None);
    let secured = events(&alice, "secured").next().expect("secured");
    assert_eq!(secured["new"], true, "a first visit pins the key");
    assert_eq!(
        secured["key"],
        hex(StaticKey::from_private([1; 32]).public())
    );
    assert!(
        events(&alice, "joined").next().is_some(),
        "{:?}",
        alice.seen
    );
    assert!(events(&bob, "joined").next().is_some(), "{:?}", bob.seen);

    alice
        .session
        .feed(ClientInput::Command(lantalk_core::driver::Command::Line(
            "hello from a browser".into(),
        )));
    net.run(&mut [&mut alice, &mut bob]);
    let said = events(&bob, "message").last().expect("bob hears alice");
    assert_eq!(said["user"], "alice");
    assert_eq!(said["text"], "hello from a browser");
    assert!(events(&alice, "sent").any(|v| v["text"] == "hello from a browser"));
}

#[test]
fn a_wrong_password_is_refused() {
    let mut net = Net::new(Some("hunter2"), 1);
    let tab = net.open("mallory", "guess", None);
    let done = tab.seen.iter().find(|v| v["t"] == "done").expect("done");
    assert_eq!(done["refused"], true);
    assert_eq!(done["why"], "wrong_password");
}

#[test]
fn a_changed_server_key_is_refused_before_anything_is_sent() {
    let mut net = Net::new(None, 2);
    let pinned = hex(StaticKey::from_private([1; 32]).public());
    let tab = net.open("alice", "", Some(pinned));
    let done = tab.seen.iter().find(|v| v["t"] == "done").expect("done");
    assert_eq!(done["why"], "key_changed", "{:?}", tab.seen);
    assert!(events(&tab, "joined").next().is_none());
}
