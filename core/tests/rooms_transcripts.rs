//! Rooms and history on the server, in simulated time: encrypted peers
//! written by hand ([`SecurePeer`]) say exactly the lines a client of ours
//! could send (and some it never would), and a LanTalk 2.0 peer stays in
//! the lobby. Each transcript shows what every peer received.

mod common;

use common::pair::{Pair, PeerId, Seen};
use common::secs;
use common::secure_peer::SecurePeer;
use insta::assert_snapshot;
use lantalk_core::history::{QueryId, Record, RecordKind, Scope, StoreReply, StoreRequest, Want};
use lantalk_core::password::HashParams;
use lantalk_core::protocol::{self, Place};
use lantalk_core::secure::StaticKey;
use lantalk_core::server::{Action, HistoryConfig, RoomLimits, SecureConfig};
use lantalk_core::ServerConfig;

fn config() -> ServerConfig {
    ServerConfig {
        name: "Hub".into(),
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([0x11; 32]),
            rng_seed: [5; 32],
            suites: Vec::new(),
        }),
        allow_plaintext: true,
        rate_limit: None,
        rooms: RoomLimits {
            key_params: HashParams::INSECURE_FAST,
            ..RoomLimits::default()
        },
        ..ServerConfig::default()
    }
}

/// A room of people: encrypted peers by name, and what each has seen.
struct Hub {
    pair: Pair,
    peers: Vec<(String, SecurePeer)>,
    log: String,
}

impl Hub {
    fn new(config: ServerConfig) -> Hub {
        Hub {
            pair: Pair::new(config),
            peers: Vec::new(),
            log: String::new(),
        }
    }

    fn join(&mut self, name: &str, key: u8) {
        let address = format!("10.0.0.{}:4000", self.peers.len() + 10);
        let peer = SecurePeer::join(&mut self.pair, name, &address, [key; 32]);
        self.peers.push((name.to_string(), peer));
        self.log.push_str(&format!("@ {name} logs in\n"));
        self.collect();
    }

    /// `name` says `text` in `room` (a message or a command).
    fn say(&mut self, name: &str, room: &str, text: &str) {
        self.line(name, &protocol::chat_in(room, text, false));
    }

    /// `name` sends `line` as it is.
    fn line(&mut self, name: &str, line: &str) {
        self.log
            .push_str(&format!("@ {name} sends {}\n", line.trim_end()));
        let Hub { pair, peers, .. } = self;
        let (_, peer) = peers.iter_mut().find(|(n, _)| n == name).expect("a peer");
        peer.send(pair, line);
        self.collect();
    }

    /// Appends what every peer received since last time.
    fn collect(&mut self) {
        let Hub { pair, peers, log } = self;
        for (name, peer) in peers.iter_mut() {
            for line in peer.lines(pair) {
                log.push_str(&format!("  {name} <- {}\n", strip_ts(&line)));
            }
        }
    }
}

/// A line without its `ts` (the snapshots are about what is said).
fn strip_ts(line: &str) -> String {
    line.trim_end()
        .replace(", \"ts\": \"12:00\"", "")
        .replace(", \"ts\": \"12:01\"", "")
}

/// A LanTalk 2.0 member: logs in with the plain login line.
fn lantalk_member(pair: &mut Pair, name: &str) -> PeerId {
    let peer = pair.connect_raw(name, "10.0.0.99:4000");
    pair.send_raw(peer, protocol::login(name, "").as_bytes());
    peer
}

fn plain_received(pair: &Pair, peer: PeerId) -> String {
    let bytes: Vec<u8> = pair.received(peer).flatten().copied().collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn rooms_from_join_to_part() {
    let mut hub = Hub::new(config());
    let dave = lantalk_member(&mut hub.pair, "dave");
    hub.join("alice", 0x21);
    hub.join("bob", 0x22);
    hub.join("carol", 0x23);
    hub.say("alice", "#lobby", "/join #Team");
    hub.say("bob", "#lobby", "/join #team");
    hub.say("alice", "#team", "ship it today?");
    hub.say("bob", "#team", "/me nods");
    hub.say("carol", "#team", "can I see this?");
    hub.say("bob", "#lobby", "hello lobby");
    hub.say("carol", "#lobby", "/rooms");
    hub.say("carol", "#lobby", "/who #team");
    hub.say("alice", "#team", "/topic Friday release");
    hub.say("bob", "#team", "/topic mine now");
    hub.say("bob", "#team", "/part");
    hub.say("alice", "#team", "/part");
    hub.say("carol", "#lobby", "/rooms");
    assert_snapshot!(hub.log);

    // The LanTalk 2.0 member heard the lobby only, as LanTalk says it.
    let heard = plain_received(&hub.pair, dave);
    assert!(heard.contains(
        "{\"type\": \"message\", \"ts\": \"12:00\", \"user\": \"bob\", \"text\": \"hello lobby\"}\n"
    ));
    assert!(!heard.contains("ship it"), "{heard}");
    assert!(
        !heard.contains("room"),
        "no room field for LanTalk 2.0: {heard}"
    );
}

#[test]
fn bad_names_limits_and_rooms_of_others() {
    let mut hub = Hub::new(ServerConfig {
        rooms: RoomLimits {
            max_rooms: 3,
            max_rooms_per_user: 2,
            key_params: HashParams::INSECURE_FAST,
            ..RoomLimits::default()
        },
        ..config()
    });
    hub.join("alice", 0x21);
    hub.join("bob", 0x22);
    hub.say("alice", "#lobby", "/join team");
    hub.say("alice", "#lobby", "/join #");
    hub.say("alice", "#lobby", "/join #a\u{1b}[2Jb");
    hub.say("alice", "#lobby", &format!("/join #{}", "x".repeat(33)));
    hub.say("alice", "#lobby", "/join #one");
    hub.say("alice", "#lobby", "/join #two");
    hub.say("bob", "#lobby", "/join #two");
    hub.say("bob", "#lobby", "/join #three");
    hub.say("bob", "#lobby", "/join #four");
    // Speaking where one is not: refused, told, nothing relayed.
    hub.say("bob", "#one", "sneaky");
    hub.line(
        "bob",
        "{\"type\": \"message\", \"text\": \"x\", \"room\": 5}\n",
    );
    assert_snapshot!(hub.log);
}

#[test]
fn keys_invitations_and_operators() {
    let mut hub = Hub::new(config());
    hub.join("alice", 0x21);
    hub.join("bob", 0x22);
    hub.join("carol", 0x23);
    hub.say("alice", "#lobby", "/join #ops s3cret");
    hub.say("bob", "#lobby", "/join #ops");
    hub.say("bob", "#lobby", "/join #ops wrong");
    hub.say("bob", "#lobby", "/join #ops s3cret");
    hub.say("bob", "#ops", "/key other");
    hub.say("alice", "#ops", "/invite-only on");
    hub.say("carol", "#lobby", "/join #ops s3cret");
    hub.say("carol", "#lobby", "/rooms");
    hub.say("alice", "#ops", "/invite carol");
    hub.say("carol", "#lobby", "/join #ops");
    hub.say("alice", "#ops", "/kick carol");
    hub.say("carol", "#lobby", "/join #ops");
    hub.say("bob", "#ops", "/part");
    hub.say("alice", "#ops", "/part");
    // Empty, but invite-only: it stays, so nobody takes its name.
    hub.say("carol", "#lobby", "/join #ops");
    hub.say("alice", "#lobby", "/join #ops");
    assert_snapshot!(hub.log);
}

#[test]
fn the_console_sees_and_moderates_every_room() {
    let mut hub = Hub::new(config());
    hub.join("alice", 0x21);
    hub.join("bob", 0x22);
    hub.say("alice", "#lobby", "/join #secret");
    hub.say("alice", "#secret", "/invite-only on");
    hub.say("alice", "#secret", "/invite bob");
    hub.say("bob", "#lobby", "/join #secret");
    hub.pair
        .with_server(|s, now| s.handle_console(now, "/rooms"));
    hub.pair
        .with_server(|s, now| s.handle_console(now, "/topic #lobby Welcome!"));
    hub.pair
        .with_server(|s, now| s.handle_console(now, "/kick bob #secret"));
    hub.collect();
    let replies: Vec<String> = hub
        .pair
        .trace
        .iter()
        .filter_map(|s| match s {
            Seen::Server(Action::Event(e)) if e.kind == lantalk_core::server::EventKind::Reply => {
                Some(e.message.clone())
            }
            _ => None,
        })
        .collect();
    hub.log
        .push_str(&format!("console:\n{}\n", replies.join("\n")));
    assert_snapshot!(hub.log);
}

#[test]
fn history_from_memory_on_join_and_by_page() {
    let mut hub = Hub::new(ServerConfig {
        history: HistoryConfig {
            on_join: 2,
            window: 4,
            ..HistoryConfig::default()
        },
        ..config()
    });
    hub.join("alice", 0x21);
    hub.join("bob", 0x22);
    hub.say("alice", "#lobby", "/join #team");
    for i in 1..=5 {
        hub.say("alice", "#team", &format!("line {i}"));
    }
    hub.say("alice", "#team", "/me waves");
    hub.say("bob", "#lobby", "/join #team");
    let history = |before: Option<u64>| {
        protocol::history_request(
            &Place::Room("#team".into()),
            &Want::Before { before, limit: 3 },
        )
    };
    hub.line("bob", &history(Some(5)));
    // Memory holds 4 lines: what is older is gone (no store).
    hub.line("bob", &history(Some(3)));
    hub.line(
        "bob",
        &protocol::history_request(
            &Place::Room("#team".into()),
            &Want::After {
                after: 4,
                limit: 50,
            },
        ),
    );
    // Nobody reads a room they are not in, nor searches without a store.
    hub.say("bob", "#team", "/part");
    hub.line("bob", &history(None));
    hub.line(
        "alice",
        &protocol::history_request(
            &Place::Room("#team".into()),
            &Want::Search {
                text: "line".into(),
                before: None,
                limit: 5,
            },
        ),
    );
    assert_snapshot!(hub.log);
}

#[test]
fn no_history_keeps_nothing() {
    let mut hub = Hub::new(ServerConfig {
        history: HistoryConfig {
            enabled: false,
            ..HistoryConfig::default()
        },
        ..config()
    });
    hub.join("alice", 0x21);
    hub.say("alice", "#lobby", "said once");
    hub.join("bob", 0x22);
    hub.line(
        "bob",
        &protocol::history_request(
            &Place::Room("#lobby".into()),
            &Want::Before {
                before: None,
                limit: 10,
            },
        ),
    );
    let bob = hub
        .log
        .split("@ bob logs in")
        .nth(1)
        .unwrap_or("")
        .to_string();
    assert!(!bob.contains("said once"), "{bob}");
    assert!(
        !hub.pair
            .server_actions()
            .any(|a| matches!(a, Action::Store(_))),
        "nothing handed to a store"
    );
    assert_snapshot!(hub.log);
}

/// The store's answers are merged with what memory holds (the store writes
/// in batches: its newest lines may not be there yet), without duplicates.
#[test]
fn history_from_the_store_is_merged_and_private() {
    let mut hub = Hub::new(ServerConfig {
        history: HistoryConfig {
            store: true,
            on_join: 3,
            window: 8,
            ..HistoryConfig::default()
        },
        first_message_id: 100,
        ..config()
    });
    hub.join("alice", 0x21);
    hub.say("alice", "#lobby", "today 1");
    hub.say("alice", "#lobby", "today 2");
    hub.say("alice", "#lobby", "/pm bob are you there?");
    let appended: Vec<Record> = hub
        .pair
        .server_actions()
        .filter_map(|a| match a {
            Action::Store(r) => match &**r {
                StoreRequest::Append(rec) => Some(rec.clone()),
                StoreRequest::Query { .. } => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        appended.iter().map(|r| r.id).collect::<Vec<_>>(),
        [100, 101],
        "ids continue from the store's; a PM to nobody is not kept"
    );
    hub.join("bob", 0x22);
    // Bob's join asks the store (memory has fewer lines than he is shown).
    let query = last_query(&hub.pair);
    assert_eq!(query.1, Scope::Room("#lobby".into()), "the lobby's history");
    // The store has older lines, and one memory also has (id 100).
    let old = |id: u64, text: &str| Record {
        id,
        at_ms: 1_000 * id as i64,
        scope: Scope::Room("#lobby".into()),
        from: "zed".into(),
        text: text.into(),
        kind: RecordKind::Message,
    };
    hub.pair.with_server(|s, now| {
        s.handle_store_reply(
            now,
            StoreReply {
                id: query.0,
                records: vec![
                    old(98, "yesterday 1"),
                    old(99, "yesterday 2"),
                    old(100, "today 1"),
                ],
                more: true,
                error: None,
            },
        )
    });
    hub.collect();
    // A failing store is said, not shown as an empty history.
    hub.line(
        "bob",
        &protocol::history_request(
            &Place::Room("#lobby".into()),
            &Want::Before {
                before: Some(98),
                limit: 10,
            },
        ),
    );
    let query = last_query(&hub.pair);
    hub.pair.with_server(|s, now| {
        s.handle_store_reply(
            now,
            StoreReply {
                id: query.0,
                records: Vec::new(),
                more: false,
                error: Some("disk I/O error".into()),
            },
        )
    });
    hub.collect();
    // A PM's history is asked for as the conversation of the asker.
    hub.line(
        "bob",
        &protocol::history_request(
            &Place::Pm("Alice".into()),
            &Want::Before {
                before: None,
                limit: 10,
            },
        ),
    );
    let query = last_query(&hub.pair);
    assert_eq!(query.1, Scope::pm("bob", "alice"));
    assert_snapshot!(hub.log);
}

fn last_query(pair: &Pair) -> (QueryId, Scope) {
    pair.server_actions()
        .filter_map(|a| match a {
            Action::Store(r) => match &**r {
                StoreRequest::Query { id, scope, .. } => Some((*id, scope.clone())),
                StoreRequest::Append(_) => None,
            },
            _ => None,
        })
        .last()
        .expect("a query")
}

/// The configuration of a client of ours called `name`, encrypted only.
fn ours(name: &str, key: u8) -> lantalk_core::client::ClientConfig {
    use lantalk_core::client::{ClientConfig, ClientSecure, NewKey};
    let mut c = ClientConfig::new(name, None);
    c.allow_plaintext = false;
    c.send_rate = None;
    c.secure = Some(ClientSecure {
        identity: StaticKey::from_private([key; 32]),
        rng_seed: [key; 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    c
}

/// The user of client `peer` types `line`.
fn typed(pair: &mut Pair, peer: PeerId, line: &str) {
    let line = line.to_string();
    pair.with_client(peer, move |c, now| c.handle_user_line(now, &line));
}

/// Our client and the server together: a room joined, lines said in the
/// room they were typed in, unread counts, and a reconnection that goes back
/// into the room and shows exactly what was missed.
#[test]
fn our_client_in_rooms_and_back_after_a_reconnection() {
    use lantalk_core::client::{ClientEvent, HistoryReason};

    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    typed(&mut pair, ann, "/join #team");
    typed(&mut pair, bob, "/join #team");
    assert_eq!(pair.client(bob).current_room(), Some("#team"));
    typed(&mut pair, ann, "first");
    typed(&mut pair, bob, "/switch #lobby");
    typed(&mut pair, ann, "second");
    let unread: Vec<(String, usize)> = pair
        .client(bob)
        .rooms()
        .iter()
        .map(|r| (r.view.room.clone(), r.unread))
        .collect();
    assert_eq!(unread, [("#lobby".into(), 0), ("#team".into(), 1)]);
    // A line typed in the lobby is said there, not in the room spoken in before.
    typed(&mut pair, bob, "lobby line");
    let said_in = |pair: &Pair, peer: PeerId, text: &str| {
        pair.events(peer).find_map(|e| match e {
            ClientEvent::Message { text: t, room, .. } if t == text => room.clone(),
            _ => None,
        })
    };
    assert_eq!(said_in(&pair, ann, "lobby line").as_deref(), Some("#lobby"));
    assert_eq!(said_in(&pair, bob, "second").as_deref(), Some("#team"));

    // bob's connection drops; ann goes on talking; bob comes back.
    typed(&mut pair, bob, "/switch #team");
    let rejoin = pair.client(bob).rejoin_points();
    pair.hang_up(bob);
    typed(&mut pair, ann, "while you were away 1");
    typed(&mut pair, ann, "while you were away 2");
    let mut again = ours("bob", 0x32);
    again.rejoin = rejoin;
    let bob2 = pair.connect("bob", "10.0.0.2:2", again);
    assert_eq!(
        pair.client(bob2).current_room(),
        Some("#team"),
        "back where he spoke"
    );
    let caught_up: Vec<(HistoryReason, Vec<String>)> = pair
        .events(bob2)
        .filter_map(|e| match e {
            ClientEvent::History {
                reason,
                lines,
                place: lantalk_core::client::Place::Room(r),
                ..
            } if r == "#team" => Some((*reason, lines.iter().map(|l| l.text.clone()).collect())),
            _ => None,
        })
        .collect();
    assert_eq!(
        caught_up,
        [(
            HistoryReason::Resume,
            vec![
                "while you were away 1".to_string(),
                "while you were away 2".to_string()
            ]
        )],
        "exactly what was missed: no join page, nothing twice"
    );
}

/// After a reconnection, a line typed while the connection was down (or
/// before the room is entered again) is said in the room the user spoke
/// in, never in the lobby the new session starts in; if the room does not
/// take them back, the line is shown as not sent, and said nowhere.
#[test]
fn a_line_kept_through_a_reconnection_is_said_where_it_was_typed() {
    use lantalk_core::client::{Client, ClientEvent};

    let said = |pair: &Pair, peer: PeerId, text: &str| -> Vec<Option<String>> {
        pair.events(peer)
            .filter_map(|e| match e {
                ClientEvent::Message { text: t, room, .. } if t == text => Some(room.clone()),
                _ => None,
            })
            .collect()
    };
    let notices = |pair: &Pair, peer: PeerId| -> Vec<String> {
        pair.events(peer)
            .filter_map(|e| match e {
                ClientEvent::Notice(text) => Some(text.clone()),
                _ => None,
            })
            .collect()
    };

    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    typed(&mut pair, ann, "/join #team");
    typed(&mut pair, bob, "/join #team");
    typed(&mut pair, ann, "/switch #lobby");
    let rejoin = pair.client(bob).rejoin_points();
    pair.hang_up(bob);

    let mut again = ours("bob", 0x32);
    again.rejoin = rejoin.clone();
    let mut client = Client::new(again, pair.now());
    client.handle_user_line(pair.now(), "kept for the team");
    client.handle_user_line(pair.now(), "/me is back");
    let bob2 = pair.connect_client("bob", "10.0.0.2:2", client);
    assert_eq!(pair.client(bob2).current_room(), Some("#team"));
    assert_eq!(
        said(&pair, ann, "kept for the team"),
        [Some("#team".into())]
    );
    assert_eq!(
        pair.events(bob2)
            .filter(|e| matches!(e, ClientEvent::ActionSent { text, room }
                if text == "is back" && room.as_deref() == Some("#team")))
            .count(),
        1
    );

    // The room takes a key while bob is away: his way back in is refused,
    // and what he kept for it is not said in the lobby instead.
    typed(&mut pair, ann, "/switch #team");
    typed(&mut pair, ann, "/key letmein");
    let rejoin = pair.client(bob2).rejoin_points();
    pair.hang_up(bob2);
    let mut again = ours("bob", 0x32);
    again.rejoin = rejoin
        .into_iter()
        .map(|mut r| {
            r.key = None;
            r
        })
        .collect();
    let mut client = Client::new(again, pair.now());
    client.handle_user_line(pair.now(), "meant for the team only");
    let bob3 = pair.connect_client("bob", "10.0.0.2:3", client);
    assert_eq!(pair.client(bob3).current_room(), Some("#lobby"));
    assert!(said(&pair, ann, "meant for the team only").is_empty());
    let at = secs(pair.now().instant) + 11.0;
    pair.jump_to(at);
    assert!(
        said(&pair, ann, "meant for the team only").is_empty(),
        "said nowhere"
    );
    assert!(
        notices(&pair, bob3)
            .iter()
            .any(|n| n == "Not sent (not back in #team): meant for the team only"),
        "{:?}",
        notices(&pair, bob3)
    );
    // Typed now, in the lobby the prompt shows, a line is said there.
    typed(&mut pair, bob3, "hello lobby");
    assert_eq!(said(&pair, ann, "hello lobby"), [Some("#lobby".into())]);
}

/// Once the store has said a room has nothing older than what it sent, the
/// room's history lives in memory: the next joins do not ask the store.
#[test]
fn the_store_is_asked_once_per_room() {
    let mut hub = Hub::new(ServerConfig {
        history: HistoryConfig {
            store: true,
            on_join: 5,
            window: 8,
            ..HistoryConfig::default()
        },
        ..config()
    });
    let queries = |pair: &Pair| {
        pair.server_actions()
            .filter(|a| matches!(a, Action::Store(r) if matches!(**r, StoreRequest::Query { .. })))
            .count()
    };
    hub.join("alice", 0x21);
    assert_eq!(queries(&hub.pair), 1, "the lobby's history, asked once");
    let (id, _) = last_query(&hub.pair);
    hub.pair.with_server(|s, now| {
        s.handle_store_reply(
            now,
            StoreReply {
                id,
                records: Vec::new(),
                more: false,
                error: None,
            },
        )
    });
    hub.say("alice", "#lobby", "hello");
    hub.join("bob", 0x22);
    hub.join("carol", 0x23);
    assert_eq!(queries(&hub.pair), 1, "answered from memory since");
    assert!(hub.log.contains("bob <- {\"type\": \"history\", \"room\": \"#lobby\", \"reason\": \"join\", \"messages\": [{\"id\": 1"), "{}", hub.log);
}

/// `/search` pages: a bare `/search` asks for the matches older than the
/// oldest one shown, until the store says there are no more.
#[test]
fn search_pages_back_with_a_bare_search() {
    use lantalk_core::client::{ClientEvent, HistoryReason};

    let mut pair = Pair::new(ServerConfig {
        history: HistoryConfig {
            store: true,
            ..HistoryConfig::default()
        },
        ..config()
    });
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    // Ann's login asked for the lobby's history; the store has none.
    let answer = |pair: &mut Pair, records: Vec<Record>, more: bool| {
        let (id, _) = last_query(pair);
        pair.with_server(|s, now| {
            s.handle_store_reply(
                now,
                StoreReply {
                    id,
                    records,
                    more,
                    error: None,
                },
            )
        });
    };
    answer(&mut pair, Vec::new(), false);
    let said = |id: u64| Record {
        id,
        at_ms: 1_000 * id as i64,
        scope: Scope::Room("#lobby".into()),
        from: "zed".into(),
        text: format!("deploy number {id}"),
        kind: RecordKind::Message,
    };
    let last_search = |pair: &Pair| {
        pair.server_actions()
            .filter_map(|a| match a {
                Action::Store(r) => match &**r {
                    StoreRequest::Query {
                        want: Want::Search { text, before, .. },
                        ..
                    } => Some((text.clone(), *before)),
                    _ => None,
                },
                _ => None,
            })
            .last()
    };
    let notices = |pair: &Pair| {
        pair.events(ann)
            .filter_map(|e| match e {
                ClientEvent::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };

    typed(&mut pair, ann, "/search");
    assert_eq!(last_search(&pair), None, "nothing to page on yet");
    assert!(notices(&pair).last().unwrap().starts_with("Usage: /search"));

    typed(&mut pair, ann, "/search deploy");
    assert_eq!(last_search(&pair), Some(("deploy".into(), None)));
    answer(&mut pair, vec![said(40), said(50)], true);
    let pages: Vec<Vec<u64>> = pair
        .events(ann)
        .filter_map(|e| match e {
            ClientEvent::History {
                reason: HistoryReason::Search,
                lines,
                ..
            } => Some(lines.iter().map(|l| l.id).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(pages, [vec![40, 50]]);

    typed(&mut pair, ann, "/search");
    assert_eq!(last_search(&pair), Some(("deploy".into(), Some(40))));
    answer(&mut pair, vec![said(10)], false);

    typed(&mut pair, ann, "/search");
    assert_eq!(
        last_search(&pair),
        Some(("deploy".into(), Some(40))),
        "no query once the store said there is nothing older"
    );
    assert_eq!(
        notices(&pair).last().map(String::as_str),
        Some("No older matches for \"deploy\" in #lobby.")
    );

    // A new search starts from the newest again.
    typed(&mut pair, ann, "/search number");
    assert_eq!(last_search(&pair), Some(("number".into(), None)));
}

/// A plugin command typed "in" a room the sender is not a member of never
/// reaches the plugin (nor does its reply reach the room): only members
/// speak in a room, to a bot as to people.
#[test]
fn a_plugin_command_from_outside_a_room_is_refused() {
    use lantalk_core::plugin::{PluginId, PluginReply, PluginRequest};
    use lantalk_core::server::PluginSpec;
    let mut cfg = config();
    cfg.plugins = vec![PluginSpec {
        name: "echo".into(),
        command: "x".into(),
        rooms: vec!["#secret".into()],
    }];
    let mut hub = Hub::new(cfg);
    hub.pair.with_server(|s, now| s.handle_timeout(now));
    hub.pair.with_server(|s, now| {
        s.handle_plugin(
            now,
            PluginReply::Line {
                id: PluginId(1),
                line: br#"{"type":"register","commands":[{"name":"echo"}]}"#.to_vec(),
            },
        )
    });
    hub.join("alice", 0x21);
    hub.join("mallory", 0x23);
    hub.say("alice", "#secret", "/join #secret sesame");
    hub.say("mallory", "#secret", "hello?");
    hub.say("mallory", "#secret", "/echo injected by mallory");
    hub.pair.drive();
    let sent: Vec<String> = hub
        .pair
        .server_actions()
        .filter_map(|a| match a {
            Action::Plugin(r) => match &**r {
                PluginRequest::Send { line, .. } => {
                    Some(String::from_utf8_lossy(line).into_owned())
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    let cmd = sent.iter().find(|l| l.contains("\"type\":\"command\""));
    hub.pair.with_server(|s, now| {
        s.handle_plugin(
            now,
            PluginReply::Line {
                id: PluginId(1),
                line: br#"{"type":"reply","id":1,"text":"injected by mallory"}"#.to_vec(),
            },
        )
    });
    hub.pair.drive();
    hub.collect();
    assert!(
        !hub.log.contains("echo [bot]\", \"text\": \"injected"),
        "the reply went to #secret"
    );
    assert!(
        cmd.is_none(),
        "a non-member's command reached the plugin: {cmd:?}"
    );
    assert!(hub
        .log
        .contains("You are not in #secret: /join #secret first."));
}
