//! Host mode: the operator approves each connection. The server and real
//! client state machines talk to each other directly (`common::pair`), with
//! fixed keys, seeded randomness and simulated time, so every transcript
//! (questions, answers, codes, timeouts) is pinned down byte for byte.
//!
//! Encrypted bytes are not shown (they carry nothing a reader could check);
//! what each side decides is: server events, client events, and closes.

use std::fmt::Write as _;

mod common;

use common::pair::{Closed, Dir, Pair, PeerId, Seen};
use insta::assert_snapshot;
use lantalk_core::client::{ClientConfig, ClientEvent, ClientSecure, NewKey};
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::secure::StaticKey;
use lantalk_core::server::{
    Action, Approval, ApprovalRequest, ConnId, EventDetail, SecureConfig, TrustedPeer,
};
use lantalk_core::ServerConfig;

fn host_config(max_users: Option<usize>, remember: bool) -> ServerConfig {
    ServerConfig {
        name: "Hub".into(),
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([0x11; 32]),
            rng_seed: [5; 32],
            suites: Vec::new(),
        }),
        allow_plaintext: false,
        max_users,
        approval: Some(Approval {
            remember,
            ..Approval::default()
        }),
        ..ServerConfig::default()
    }
}

fn client_key(seed: u8) -> StaticKey {
    StaticKey::from_private([seed; 32])
}

fn client_config(name: &str, seed: u8) -> ClientConfig {
    let mut c = ClientConfig::new(name, None);
    c.allow_plaintext = false;
    c.secure = Some(ClientSecure {
        identity: client_key(seed),
        rng_seed: [seed.wrapping_add(100); 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    c
}

/// This file's steps and views of a [`Pair`]: each step writes its heading
/// (`@<time> what`) before it acts; the log shows what each side decided
/// (server events, client events, closes), not the encrypted bytes.
trait Host {
    fn header(&mut self, what: &str);
    fn note(&mut self, text: &str);
    /// Our client `label` connects from `addr` and runs until it waits.
    fn join(&mut self, label: &str, addr: &str, config: ClientConfig) -> PeerId;
    /// A raw plaintext peer connects; what it receives is logged as text.
    fn raw(&mut self, label: &str, addr: &str) -> PeerId;
    fn raw_send(&mut self, peer: PeerId, line: &str);
    fn console(&mut self, line: &str);
    fn answer(&mut self, id: ConnId, approve: bool);
    fn types(&mut self, peer: PeerId, line: &str);
    /// The user gives up (Ctrl-C): the client closes at once.
    fn interrupt(&mut self, peer: PeerId);
    fn shutdown(&mut self);
    /// Jumps to the earliest deadline anyone asked for and fires it; a
    /// deadline may be early (nothing happens then), so this goes on to the
    /// next one until something does.
    fn timeout(&mut self);
    /// The code the client `peer` was shown.
    fn code_shown(&self, peer: PeerId) -> Option<String>;
    fn question_about(&self, peer: PeerId) -> Option<&ApprovalRequest>;
    fn joined(&self, peer: PeerId) -> bool;
    fn refusal(&self, peer: PeerId) -> Option<String>;
    fn got_chat_before_joining(&self, peer: PeerId) -> bool;
    /// The last trusted list the server asked to store.
    fn persisted(&self) -> Option<&[TrustedPeer]>;
    fn log(&self) -> String;
}

impl Host for Pair {
    fn header(&mut self, what: &str) {
        let t = self.now().instant.since_epoch().as_secs_f64();
        self.mark(format!("@{t:.3} {what}"));
    }

    fn note(&mut self, text: &str) {
        self.mark(format!("# {text}"));
    }

    fn join(&mut self, label: &str, addr: &str, config: ClientConfig) -> PeerId {
        self.header(&format!("{label} connects from {addr}"));
        self.connect(label, addr, config)
    }

    fn raw(&mut self, label: &str, addr: &str) -> PeerId {
        self.header(&format!("{label} (raw, plaintext) connects from {addr}"));
        self.connect_raw(label, addr)
    }

    fn raw_send(&mut self, peer: PeerId, line: &str) {
        let label = self.label(peer).to_string();
        self.header(&format!("{label} sends {}", line.trim_end()));
        self.send_raw(peer, line.as_bytes());
    }

    fn console(&mut self, line: &str) {
        self.header(&format!("console {line:?}"));
        self.with_server(|s, now| s.handle_console(now, line));
    }

    fn answer(&mut self, id: ConnId, approve: bool) {
        self.header(&format!("handle_approval {id} {approve}"));
        self.with_server(|s, now| s.handle_approval(now, id, approve));
    }

    fn types(&mut self, peer: PeerId, line: &str) {
        let label = self.label(peer).to_string();
        self.header(&format!("{label} types {line:?}"));
        self.with_client(peer, |c, now| c.handle_user_line(now, line));
    }

    fn interrupt(&mut self, peer: PeerId) {
        let label = self.label(peer).to_string();
        self.header(&format!("{label} interrupts"));
        self.with_client(peer, |c, now| c.handle_interrupt(now));
    }

    fn shutdown(&mut self) {
        self.header("host shuts down");
        self.with_server(|s, now| s.shutdown(now));
    }

    fn timeout(&mut self) {
        for _ in 0..20 {
            let t = self.next_timeout().expect("somebody waits for a deadline");
            let heading = self.trace.len();
            self.mark(format!("@{:.3} timeout", t.since_epoch().as_secs_f64()));
            self.time_step();
            if self.trace[heading + 1..]
                .iter()
                .any(|s| show(self, s).is_some())
            {
                return;
            }
            self.trace.truncate(heading);
        }
        panic!("no deadline did anything:\n{}", self.log());
    }

    fn code_shown(&self, peer: PeerId) -> Option<String> {
        self.events(peer).find_map(|e| match e {
            ClientEvent::AwaitingApproval { code } => Some(code.clone()),
            _ => None,
        })
    }

    fn question_about(&self, peer: PeerId) -> Option<&ApprovalRequest> {
        let conn = self.conn(peer);
        self.questions().filter(|q| q.id == conn).last()
    }

    fn joined(&self, peer: PeerId) -> bool {
        self.events(peer)
            .any(|e| matches!(e, ClientEvent::Joined { .. }))
    }

    fn refusal(&self, peer: PeerId) -> Option<String> {
        self.events(peer).find_map(|e| match e {
            ClientEvent::Refused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    fn got_chat_before_joining(&self, peer: PeerId) -> bool {
        for e in self.events(peer) {
            match e {
                ClientEvent::Joined { .. } => return false,
                ClientEvent::Message { .. } | ClientEvent::Pm { .. } => return true,
                _ => {}
            }
        }
        false
    }

    fn persisted(&self) -> Option<&[TrustedPeer]> {
        self.server_actions()
            .filter_map(|a| match a {
                Action::PersistTrusted(list) => Some(list.as_slice()),
                _ => None,
            })
            .last()
    }

    fn log(&self) -> String {
        let mut log = String::new();
        for line in self.trace.iter().filter_map(|s| show(self, s)) {
            log.push_str(&line);
            log.push('\n');
        }
        log
    }
}

/// One line of the log, if what happened is shown at all.
fn show(pair: &Pair, seen: &Seen) -> Option<String> {
    let label = |peer| pair.label(peer).to_string();
    let line = match seen {
        Seen::Mark(line) => line.clone(),
        Seen::Bytes {
            peer,
            dir: Dir::ToClient,
            bytes,
        } if pair.is_raw(*peer) => {
            let text = String::from_utf8_lossy(bytes);
            format!("  {} receives {}", label(*peer), text.trim_end())
        }
        Seen::Bytes { .. } => return None,
        Seen::Server(action) => show_server(pair, action),
        Seen::Event { peer, event } => {
            let shown = match event {
                ClientEvent::Secured { fingerprint, .. } => {
                    format!("Secured {{ fingerprint: {fingerprint:?} }}")
                }
                other => format!("{other:?}"),
            };
            format!("  {}: {shown}", label(*peer))
        }
        Seen::Closes { peer } => format!("  {} closes", label(*peer)),
    };
    Some(line)
}

fn show_server(pair: &Pair, action: &Action) -> String {
    match action {
        Action::Close { conn, reason } => {
            let peer = pair.peer_of(*conn).expect("a peer's connection");
            format!("  server closes {} ({reason:?})", pair.label(peer))
        }
        Action::AskOperator(r) => {
            format!("  server asks the operator: {r} [ask about {}]", r.id)
        }
        Action::PersistTrusted(list) => {
            let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
            format!("  server persists trusted: {}", names.join(", "))
        }
        Action::Event(e) => {
            let mut line = format!("  server {} {:?}: {}", e.level, e.kind, e.message);
            match e.detail.as_deref() {
                None => {}
                Some(EventDetail::Chat { user, text }) => {
                    let _ = write!(line, " [chat {user}: {text}]");
                }
                Some(EventDetail::Presence { user, online }) => {
                    let _ = write!(line, " [presence {user}: {online}]");
                }
            }
            line
        }
        other => format!("  server {other:?}"),
    }
}

/// The codes on both sides are the same, and the question says so.
fn assert_codes_match(net: &Pair, peer: PeerId) {
    let shown = net.code_shown(peer).expect("the client was shown a code");
    let q = net.question_about(peer).expect("the operator was asked");
    assert_eq!(q.code.as_deref(), Some(shown.as_str()), "{}", net.log());
    assert!(q.fingerprint.is_some());
    assert_eq!(shown.len(), 7, "{shown}");
}

#[test]
fn approve() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    assert_codes_match(&net, bob);
    assert!(!net.joined(bob));
    assert_eq!(net.server.pending_approval(), Some(net.conn(bob)));
    assert!(net.server.usernames().is_empty(), "not a user yet");
    net.console("maybe");
    net.console("y");
    assert!(net.joined(bob));
    assert_eq!(net.server.pending_approval(), None);
    net.types(bob, "hello host");
    net.types(bob, "/me waves");
    net.console("hi Bob");
    assert!(net.events(bob).any(|e| matches!(
        e,
        ClientEvent::Message { user, text, .. } if user == "Hub (server)" && text == "hi Bob"
    )));
    assert_snapshot!(net.log());
}

#[test]
fn deny() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    assert_codes_match(&net, bob);
    net.note("the operator says no");
    net.console("N");
    assert_eq!(
        net.refusal(bob).as_deref(),
        Some("The host did not approve the connection.")
    );
    assert!(net.client(bob).is_closed());
    net.note("no question is open: the console chats again (with nobody, here)");
    net.console("hello?");
    assert_snapshot!(net.log());
}

#[test]
fn timeout() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    assert_codes_match(&net, bob);
    net.note("nobody answers: the host's deadline (60 s) comes before the client's own");
    net.timeout();
    assert_eq!(
        net.refusal(bob).as_deref(),
        Some("The host did not answer in time (60 s).")
    );
    net.note("the operator answers too late: the answer is not taken as chat");
    net.console("y");
    assert!(!net.joined(bob));
    assert_snapshot!(net.log());
}

#[test]
fn second_peer_waits_while_one_is_pending() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.jump_to(5.0);
    let carol = net.join("Carol", "192.168.1.24:40000", client_config("Carol", 0x22));
    assert_codes_match(&net, bob);
    assert!(
        net.code_shown(carol).is_some(),
        "Carol already has her code"
    );
    assert!(
        net.question_about(carol).is_none(),
        "one question at a time"
    );
    net.note("the same name as a peer waiting for approval is taken");
    let bob2 = net.join("Bob2", "192.168.1.25:40000", client_config("bob", 0x23));
    assert_eq!(
        net.refusal(bob2).as_deref(),
        Some("Username already taken.")
    );
    net.console("n");
    assert!(net.refusal(bob).is_some());
    assert_codes_match(&net, carol);
    net.console("y");
    assert!(net.joined(carol));
    net.note("one peer at a time: the next one is refused at once");
    let dave = net.join("Dave", "192.168.1.26:40000", client_config("Dave", 0x24));
    assert_eq!(
        net.refusal(dave).as_deref(),
        Some("The host is busy: it chats with one peer at a time.")
    );
    assert!(net.question_about(dave).is_none());
    assert_snapshot!(net.log());
}

#[test]
fn queued_peers_are_refused_when_the_host_becomes_busy() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    let carol = net.join("Carol", "192.168.1.24:40000", client_config("Carol", 0x22));
    net.console("yes");
    assert!(net.joined(bob));
    assert_eq!(
        net.refusal(carol).as_deref(),
        Some("The host is busy: it chats with one peer at a time.")
    );
    assert_snapshot!(net.log());
}

#[test]
fn each_waiting_peer_has_its_own_deadline() {
    let mut net = Pair::new(host_config(None, false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.jump_to(10.0);
    let carol = net.join("Carol", "192.168.1.24:40000", client_config("Carol", 0x22));
    net.timeout();
    assert!(net.refusal(bob).is_some());
    assert!(
        net.question_about(carol).is_some(),
        "asked once Bob's time ran out"
    );
    net.note("Carol's 60 s ran from when she was ready, not from when she was asked about");
    net.timeout();
    assert_eq!(net.now().instant.since_epoch().as_secs(), 70);
    assert!(net.refusal(carol).is_some());
    assert_snapshot!(net.log());
}

#[test]
fn peer_leaving_while_pending() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    let carol = net.join("Carol", "192.168.1.24:40000", client_config("Carol", 0x22));
    net.note("Bob gives up while the operator is being asked about him");
    net.interrupt(bob);
    assert!(
        net.question_about(carol).is_some(),
        "the next peer is asked about"
    );
    net.console("y");
    assert!(net.joined(carol), "the answer was about Carol");
    net.note("Carol leaves the ordinary way");
    net.types(carol, "/quit");
    assert_snapshot!(net.log());
}

#[test]
fn peer_leaving_while_pending_closes_the_question() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.interrupt(bob);
    assert_eq!(net.server.pending_approval(), None);
    net.note("the operator's answer comes too late");
    net.console("y");
    net.console("y");
    assert_snapshot!(net.log());
}

#[test]
fn host_leaving_while_pending() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    let carol = net.join("Carol", "192.168.1.24:40000", client_config("Carol", 0x22));
    net.note("quitting is possible while a question is open");
    net.console("/quit");
    for peer in [bob, carol] {
        assert_eq!(
            net.refusal(peer).as_deref(),
            Some("The host left before approving the connection.")
        );
    }
    assert!(net.server.is_shut_down());
    assert_snapshot!(net.log());
}

#[test]
fn remembered_peers_are_let_in_without_asking() {
    let mut net = Pair::new(host_config(Some(1), true));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.console("y");
    assert!(net.joined(bob));
    let stored = net.persisted().expect("the trusted list was stored");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].key, client_key(0x21).public().to_vec());
    net.types(bob, "/quit");
    net.note("same key, another name and address: let in without asking");
    let again = net.join(
        "Bob again",
        "192.168.1.99:40000",
        client_config("Robert", 0x21),
    );
    assert!(net.joined(again));
    assert!(net.code_shown(again).is_none());
    net.types(again, "/quit");
    net.console("/trusted");
    net.console("/forget nobody");
    net.console("/forget bob");
    assert_eq!(net.persisted(), Some(&[][..]));
    let third = net.join(
        "Bob third",
        "192.168.1.23:40001",
        client_config("Bob", 0x21),
    );
    assert!(net.question_about(third).is_some(), "asked about again");
    net.console("/trusted");
    net.console("/help");
    assert_snapshot!(net.log());
}

#[test]
fn trusted_keys_from_the_config_skip_the_question() {
    let mut config = host_config(Some(1), false);
    config.approval.as_mut().unwrap().trusted = vec![TrustedPeer {
        name: "Bob".into(),
        key: client_key(0x21).public().to_vec(),
    }];
    let mut net = Pair::new(config);
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    assert!(net.joined(bob));
    assert!(net.questions().next().is_none());
    let mallory = net.join("Mallory", "192.168.1.66:40000", client_config("Bob", 0x66));
    assert_eq!(
        net.refusal(mallory).as_deref(),
        Some("Username already taken.")
    );
    assert_snapshot!(net.log());
}

#[test]
fn password_then_approval() {
    let mut config = host_config(Some(1), false);
    config.password = Some(PasswordHash::new(
        "hunter2",
        [3; 16],
        HashParams::INSECURE_FAST,
    ));
    let mut net = Pair::new(config);
    let mut wrong = client_config("Eve", 0x31);
    wrong.password = Some("guess".into());
    let eve = net.join("Eve", "192.168.1.30:40000", wrong);
    assert!(
        net.question_about(eve).is_none(),
        "the host is never bothered"
    );
    assert!(net.refusal(eve).is_some());
    let mut right = client_config("Bob", 0x21);
    right.password = Some("hunter2".into());
    let bob = net.join("Bob", "192.168.1.23:40000", right);
    assert_codes_match(&net, bob);
    net.answer(net.conn(bob), true);
    assert!(net.joined(bob));
    assert_snapshot!(net.log());
}

#[test]
fn no_chat_passes_before_approval() {
    // A group server with approval: members chat while a newcomer waits.
    let mut config = host_config(None, false);
    config.allow_plaintext = true;
    let mut net = Pair::new(config);
    let alice = net.join("Alice", "10.0.0.1:1000", client_config("Alice", 0x41));
    net.console("y");
    assert!(net.joined(alice));
    let bob = net.join("Bob", "10.0.0.2:1000", client_config("Bob", 0x21));
    net.note("Bob types while he waits: held back by his client");
    net.types(bob, "early words");
    net.types(alice, "secret plans");
    net.note("while a question is open, the console's lines answer it, commands still work");
    net.console("operator says hi");
    net.console("/users");
    net.note("a LanTalk 2.0 peer: asked about without a key or a code");
    let old = net.raw("Old", "10.0.0.3:1000");
    net.raw_send(old, "{\"username\": \"Old\", \"password\": \"\"}\n");
    net.raw_send(old, "{\"type\": \"message\", \"text\": \"sneaky\"}\n");
    net.types(alice, "more secrets");
    assert!(!net.got_chat_before_joining(bob), "{}", net.log());
    let received = |net: &Pair| {
        String::from_utf8_lossy(&net.received(old).collect::<Vec<_>>().concat()).into_owned()
    };
    assert!(!received(&net).contains("secret"), "{}", net.log());
    assert!(!net
        .events(alice)
        .any(|e| matches!(e, ClientEvent::Message { text, .. } if text == "sneaky" || text == "early words")));
    net.console("y");
    assert!(net.joined(bob));
    let q = net.questions().last().unwrap();
    assert_eq!((q.fingerprint.as_deref(), q.code.as_deref()), (None, None));
    net.answer(net.conn(old), false);
    assert!(matches!(net.closed(old), Some(Closed::ByServer(_))));
    assert!(received(&net)
        .lines()
        .any(|l| l.contains("auth_fail") && l.contains("did not approve")));
    assert_snapshot!(net.log());
}

#[test]
fn answers_about_unknown_or_settled_peers_are_ignored() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.answer(ConnId(999), true);
    assert!(!net.joined(bob));
    net.answer(net.conn(bob), true);
    assert!(net.joined(bob));
    net.answer(net.conn(bob), false);
    assert_eq!(net.closed(bob), None, "a user is not unapproved");
    assert!(matches!(
        net.server
            .config()
            .approval
            .as_ref()
            .map(|a| a.timeout.as_secs()),
        Some(60)
    ));
}

#[test]
fn signal_while_pending_refuses_with_a_reason() {
    let mut net = Pair::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.shutdown();
    assert_eq!(
        net.refusal(bob).as_deref(),
        Some("The host left before approving the connection.")
    );
}
