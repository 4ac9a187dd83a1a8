//! Host mode: the operator approves each connection. The server and real
//! client state machines talk to each other directly, with fixed keys,
//! seeded randomness and simulated time, so every transcript (questions,
//! answers, codes, timeouts) is pinned down byte for byte.
//!
//! Encrypted bytes are not shown (they carry nothing a reader could check);
//! what each side decides is: server events, client events, and closes.

use std::fmt::Write as _;

use insta::assert_snapshot;
use lantalk_core::client::{Client, ClientAction, ClientConfig, ClientEvent, ClientSecure, NewKey};
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::secure::StaticKey;
use lantalk_core::server::{
    Action, Approval, ApprovalRequest, ConnId, DisconnectCause, EventDetail, SecureConfig,
    TrustedPeer,
};
use lantalk_core::{Now, Server, ServerConfig};

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

/// One connection to the server: our client, or a raw plaintext peer that
/// speaks LanTalk 2.0 by hand.
struct Peer {
    label: String,
    conn: ConnId,
    client: Option<Client>,
    /// The peer's transport is gone (either side closed it).
    closed: bool,
    events: Vec<ClientEvent>,
    /// What a raw peer received.
    received: Vec<String>,
}

/// A server and its peers in simulated time.
struct Net {
    server: Server,
    now: Now,
    log: String,
    peers: Vec<Peer>,
    /// Every question asked of the operator.
    questions: Vec<ApprovalRequest>,
    /// The last trusted list the server asked to store.
    persisted: Option<Vec<TrustedPeer>>,
}

impl Net {
    fn new(config: ServerConfig) -> Net {
        let now = Now::from_secs_f64(0.0);
        Net {
            server: Server::new(config, now, Default::default()),
            now,
            log: String::new(),
            peers: Vec::new(),
            questions: Vec::new(),
            persisted: None,
        }
    }

    fn header(&mut self, what: &str) {
        let t = self.now.instant.since_epoch().as_secs_f64();
        let _ = writeln!(self.log, "@{t:.3} {what}");
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.log, "# {text}");
    }

    fn at(&mut self, secs: f64) {
        let next = Now::from_secs_f64(secs);
        assert!(next.instant >= self.now.instant, "time goes back");
        self.now = next;
    }

    /// Our client `label` connects from `addr` and runs until it waits.
    fn join(&mut self, label: &str, addr: &str, config: ClientConfig) -> usize {
        self.header(&format!("{label} connects from {addr}"));
        let conn = self.server.handle_connect(self.now, addr.parse().unwrap());
        self.peers.push(Peer {
            label: label.to_string(),
            conn,
            client: Some(Client::new(config, self.now)),
            closed: false,
            events: Vec::new(),
            received: Vec::new(),
        });
        self.pump();
        self.peers.len() - 1
    }

    /// A raw plaintext peer connects; what it receives is logged as text.
    fn raw(&mut self, label: &str, addr: &str) -> usize {
        self.header(&format!("{label} (raw, plaintext) connects from {addr}"));
        let conn = self.server.handle_connect(self.now, addr.parse().unwrap());
        self.peers.push(Peer {
            label: label.to_string(),
            conn,
            client: None,
            closed: false,
            events: Vec::new(),
            received: Vec::new(),
        });
        self.pump();
        self.peers.len() - 1
    }

    fn raw_send(&mut self, i: usize, line: &str) {
        let label = self.peers[i].label.clone();
        self.header(&format!("{label} sends {}", line.trim_end()));
        let conn = self.peers[i].conn;
        let _ = self.server.handle_input(self.now, conn, line.as_bytes());
        self.pump();
    }

    fn console(&mut self, line: &str) {
        self.header(&format!("console {line:?}"));
        self.server.handle_console(self.now, line);
        self.pump();
    }

    fn answer(&mut self, id: ConnId, approve: bool) {
        self.header(&format!("handle_approval {id} {approve}"));
        self.server.handle_approval(self.now, id, approve);
        self.pump();
    }

    fn types(&mut self, i: usize, line: &str) {
        let label = self.peers[i].label.clone();
        self.header(&format!("{label} types {line:?}"));
        if let Some(c) = self.peers[i].client.as_mut() {
            c.handle_user_line(self.now, line);
        }
        self.pump();
    }

    /// The user gives up (Ctrl-C): the client closes at once.
    fn interrupt(&mut self, i: usize) {
        let label = self.peers[i].label.clone();
        self.header(&format!("{label} interrupts"));
        if let Some(c) = self.peers[i].client.as_mut() {
            c.handle_interrupt(self.now);
        }
        self.pump();
    }

    fn shutdown(&mut self) {
        self.header("host shuts down");
        self.server.shutdown(self.now);
        self.pump();
    }

    /// Jumps to the earliest deadline anyone asked for and fires it; a
    /// deadline may be early (nothing happens then), so this goes on to the
    /// next one until something does.
    fn timeout(&mut self) {
        for _ in 0..20 {
            let mut next = self.server.poll_timeout();
            for p in &self.peers {
                if let Some(t) = p.client.as_ref().and_then(|c| c.poll_timeout()) {
                    if !p.closed {
                        next = Some(next.map_or(t, |n| n.min(t)));
                    }
                }
            }
            let t = next.expect("somebody waits for a deadline");
            assert!(t >= self.now.instant);
            self.now = Now::from_secs_f64(t.since_epoch().as_secs_f64());
            let before = self.log.len();
            self.header("timeout");
            let header_end = self.log.len();
            self.server.handle_timeout(self.now);
            for p in &mut self.peers {
                if let (Some(c), false) = (p.client.as_mut(), p.closed) {
                    c.handle_timeout(self.now);
                }
            }
            self.pump();
            if self.log.len() > header_end {
                return;
            }
            self.log.truncate(before);
        }
        panic!("no deadline did anything:\n{}", self.log);
    }

    fn peer_of(&self, conn: ConnId) -> Option<usize> {
        self.peers.iter().position(|p| p.conn == conn)
    }

    /// Moves bytes until nobody has anything more to do.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(action) = self.server.poll_action() {
                moved = true;
                self.server_action(action);
            }
            for i in 0..self.peers.len() {
                let Some(mut client) = self.peers[i].client.take() else {
                    continue;
                };
                while let Some(action) = client.poll_action() {
                    moved = true;
                    self.client_action(i, action);
                }
                self.peers[i].client = Some(client);
            }
            if !moved {
                return;
            }
        }
        panic!("never settled:\n{}", self.log);
    }

    fn server_action(&mut self, action: Action) {
        match action {
            Action::Send { conn, bytes } => {
                let Some(i) = self.peer_of(conn) else { return };
                let now = self.now;
                let p = &mut self.peers[i];
                if p.closed {
                    return;
                }
                match p.client.as_mut() {
                    Some(c) => c.handle_input(now, &bytes),
                    None => {
                        let text = String::from_utf8_lossy(&bytes).trim_end().to_string();
                        let _ = writeln!(self.log, "  {} receives {text}", p.label);
                        p.received.push(text);
                    }
                }
            }
            Action::Close { conn, reason } => {
                let Some(i) = self.peer_of(conn) else { return };
                let now = self.now;
                let p = &mut self.peers[i];
                let _ = writeln!(self.log, "  server closes {} ({reason:?})", p.label);
                if !p.closed {
                    p.closed = true;
                    if let Some(c) = p.client.as_mut() {
                        c.handle_disconnect(now);
                    }
                }
            }
            Action::AskOperator(r) => {
                let _ = writeln!(
                    self.log,
                    "  server asks the operator: {r} [ask about {}]",
                    r.id
                );
                self.questions.push(*r);
            }
            Action::PersistTrusted(list) => {
                let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
                let _ = writeln!(self.log, "  server persists trusted: {}", names.join(", "));
                self.persisted = Some(list);
            }
            Action::Event(e) => {
                let _ = write!(self.log, "  server {} {:?}: {}", e.level, e.kind, e.message);
                match e.detail.as_deref() {
                    None => {}
                    Some(EventDetail::Chat { user, text }) => {
                        let _ = write!(self.log, " [chat {user}: {text}]");
                    }
                    Some(EventDetail::Presence { user, online }) => {
                        let _ = write!(self.log, " [presence {user}: {online}]");
                    }
                }
                self.log.push('\n');
            }
            other => {
                let _ = writeln!(self.log, "  server {other:?}");
            }
        }
    }

    fn client_action(&mut self, i: usize, action: ClientAction) {
        let now = self.now;
        let label = self.peers[i].label.clone();
        match action {
            ClientAction::Send(bytes) => {
                let conn = self.peers[i].conn;
                if !self.peers[i].closed {
                    let _ = self.server.handle_input(now, conn, &bytes);
                }
            }
            ClientAction::Event(e) => {
                let shown = match &e {
                    ClientEvent::Secured { fingerprint, .. } => {
                        format!("Secured {{ fingerprint: {fingerprint:?} }}")
                    }
                    other => format!("{other:?}"),
                };
                let _ = writeln!(self.log, "  {label}: {shown}");
                self.peers[i].events.push(e);
            }
            ClientAction::Close => {
                let _ = writeln!(self.log, "  {label} closes");
                let conn = self.peers[i].conn;
                if !self.peers[i].closed {
                    self.peers[i].closed = true;
                    let _ = self
                        .server
                        .handle_disconnect(now, conn, DisconnectCause::PeerClosed);
                }
            }
        }
    }

    /// The code the client `i` was shown.
    fn code_shown(&self, i: usize) -> Option<String> {
        self.peers[i].events.iter().find_map(|e| match e {
            ClientEvent::AwaitingApproval { code } => Some(code.clone()),
            _ => None,
        })
    }

    fn question_about(&self, i: usize) -> Option<&ApprovalRequest> {
        let conn = self.peers[i].conn;
        self.questions.iter().rev().find(|q| q.id == conn)
    }

    fn joined(&self, i: usize) -> bool {
        self.peers[i]
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Joined { .. }))
    }

    fn refusal(&self, i: usize) -> Option<String> {
        self.peers[i].events.iter().find_map(|e| match e {
            ClientEvent::Refused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    fn got_chat_before_joining(&self, i: usize) -> bool {
        for e in &self.peers[i].events {
            match e {
                ClientEvent::Joined { .. } => return false,
                ClientEvent::Message { .. } | ClientEvent::Pm { .. } => return true,
                _ => {}
            }
        }
        false
    }
}

/// The codes on both sides are the same, and the question says so.
fn assert_codes_match(net: &Net, i: usize) {
    let shown = net.code_shown(i).expect("the client was shown a code");
    let q = net.question_about(i).expect("the operator was asked");
    assert_eq!(q.code.as_deref(), Some(shown.as_str()), "{}", net.log);
    assert!(q.fingerprint.is_some());
    assert_eq!(shown.len(), 7, "{shown}");
}

#[test]
fn approve() {
    let mut net = Net::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    assert_codes_match(&net, bob);
    assert!(!net.joined(bob));
    assert_eq!(net.server.pending_approval(), Some(net.peers[bob].conn));
    assert!(net.server.usernames().is_empty(), "not a user yet");
    net.console("maybe");
    net.console("y");
    assert!(net.joined(bob));
    assert_eq!(net.server.pending_approval(), None);
    net.types(bob, "hello host");
    net.types(bob, "/me waves");
    net.console("hi Bob");
    assert!(net.peers[bob].events.iter().any(|e| matches!(
        e,
        ClientEvent::Message { user, text, .. } if user == "Hub (server)" && text == "hi Bob"
    )));
    assert_snapshot!(net.log);
}

#[test]
fn deny() {
    let mut net = Net::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    assert_codes_match(&net, bob);
    net.note("the operator says no");
    net.console("N");
    assert_eq!(
        net.refusal(bob).as_deref(),
        Some("The host did not approve the connection.")
    );
    assert!(net.peers[bob].client.as_ref().unwrap().is_closed());
    net.note("no question is open: the console chats again (with nobody, here)");
    net.console("hello?");
    assert_snapshot!(net.log);
}

#[test]
fn timeout() {
    let mut net = Net::new(host_config(Some(1), false));
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
    assert_snapshot!(net.log);
}

#[test]
fn second_peer_waits_while_one_is_pending() {
    let mut net = Net::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.at(5.0);
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
    assert_snapshot!(net.log);
}

#[test]
fn queued_peers_are_refused_when_the_host_becomes_busy() {
    let mut net = Net::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    let carol = net.join("Carol", "192.168.1.24:40000", client_config("Carol", 0x22));
    net.console("yes");
    assert!(net.joined(bob));
    assert_eq!(
        net.refusal(carol).as_deref(),
        Some("The host is busy: it chats with one peer at a time.")
    );
    assert_snapshot!(net.log);
}

#[test]
fn each_waiting_peer_has_its_own_deadline() {
    let mut net = Net::new(host_config(None, false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.at(10.0);
    let carol = net.join("Carol", "192.168.1.24:40000", client_config("Carol", 0x22));
    net.timeout();
    assert!(net.refusal(bob).is_some());
    assert!(
        net.question_about(carol).is_some(),
        "asked once Bob's time ran out"
    );
    net.note("Carol's 60 s ran from when she was ready, not from when she was asked about");
    net.timeout();
    assert_eq!(net.now.instant.since_epoch().as_secs(), 70);
    assert!(net.refusal(carol).is_some());
    assert_snapshot!(net.log);
}

#[test]
fn peer_leaving_while_pending() {
    let mut net = Net::new(host_config(Some(1), false));
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
    assert_snapshot!(net.log);
}

#[test]
fn peer_leaving_while_pending_closes_the_question() {
    let mut net = Net::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.interrupt(bob);
    assert_eq!(net.server.pending_approval(), None);
    net.note("the operator's answer comes too late");
    net.console("y");
    net.console("y");
    assert_snapshot!(net.log);
}

#[test]
fn host_leaving_while_pending() {
    let mut net = Net::new(host_config(Some(1), false));
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
    assert_snapshot!(net.log);
}

#[test]
fn remembered_peers_are_let_in_without_asking() {
    let mut net = Net::new(host_config(Some(1), true));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.console("y");
    assert!(net.joined(bob));
    let stored = net.persisted.clone().expect("the trusted list was stored");
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
    assert_eq!(net.persisted.as_deref(), Some(&[][..]));
    let third = net.join(
        "Bob third",
        "192.168.1.23:40001",
        client_config("Bob", 0x21),
    );
    assert!(net.question_about(third).is_some(), "asked about again");
    net.console("/trusted");
    net.console("/help");
    assert_snapshot!(net.log);
}

#[test]
fn trusted_keys_from_the_config_skip_the_question() {
    let mut config = host_config(Some(1), false);
    config.approval.as_mut().unwrap().trusted = vec![TrustedPeer {
        name: "Bob".into(),
        key: client_key(0x21).public().to_vec(),
    }];
    let mut net = Net::new(config);
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    assert!(net.joined(bob));
    assert!(net.questions.is_empty());
    let mallory = net.join("Mallory", "192.168.1.66:40000", client_config("Bob", 0x66));
    assert_eq!(
        net.refusal(mallory).as_deref(),
        Some("Username already taken.")
    );
    assert_snapshot!(net.log);
}

#[test]
fn password_then_approval() {
    let mut config = host_config(Some(1), false);
    config.password = Some(PasswordHash::new(
        "hunter2",
        [3; 16],
        HashParams::INSECURE_FAST,
    ));
    let mut net = Net::new(config);
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
    net.answer(net.peers[bob].conn, true);
    assert!(net.joined(bob));
    assert_snapshot!(net.log);
}

#[test]
fn no_chat_passes_before_approval() {
    // A group server with approval: members chat while a newcomer waits.
    let mut config = host_config(None, false);
    config.allow_plaintext = true;
    let mut net = Net::new(config);
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
    assert!(!net.got_chat_before_joining(bob), "{}", net.log);
    assert!(
        !net.peers[old].received.iter().any(|l| l.contains("secret")),
        "{}",
        net.log
    );
    assert!(!net.peers[alice]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Message { text, .. } if text == "sneaky" || text == "early words")));
    net.console("y");
    assert!(net.joined(bob));
    let q = net.questions.last().unwrap();
    assert_eq!((q.fingerprint.as_deref(), q.code.as_deref()), (None, None));
    net.answer(net.peers[old].conn, false);
    assert!(net.peers[old].closed);
    assert!(net.peers[old]
        .received
        .iter()
        .any(|l| l.contains("auth_fail") && l.contains("did not approve")));
    assert_snapshot!(net.log);
}

#[test]
fn answers_about_unknown_or_settled_peers_are_ignored() {
    let mut net = Net::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.answer(ConnId(999), true);
    assert!(!net.joined(bob));
    net.answer(net.peers[bob].conn, true);
    assert!(net.joined(bob));
    net.answer(net.peers[bob].conn, false);
    assert!(!net.peers[bob].closed, "a user is not unapproved");
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
    let mut net = Net::new(host_config(Some(1), false));
    let bob = net.join("Bob", "192.168.1.23:40000", client_config("Bob", 0x21));
    net.shutdown();
    assert_eq!(
        net.refusal(bob).as_deref(),
        Some("The host left before approving the connection.")
    );
}
