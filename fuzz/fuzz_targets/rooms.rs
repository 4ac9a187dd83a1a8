//! Rooms and history under attack: three encrypted members and a LanTalk 2.0
//! one send whatever the input says (room commands, messages claiming any
//! room, raw JSON, history requests), time jumps, and the history store
//! answers queries with whatever records the input makes up.
//!
//! Beyond "no panic, actions drain, nothing after a close": a member never
//! receives a message of a room it is not in (by its own view: the `room`
//! and `room_left` lines it was sent), a member's history answers are only
//! of rooms it is in or conversations it is part of, and the LanTalk 2.0
//! member never sees a line with a room in it.
#![no_main]

use std::collections::{HashMap, HashSet};

use lantalk_core::framing::{Frame, LineBuffer};
use lantalk_core::history::{QueryId, Record, RecordKind, Scope, StoreReply, StoreRequest};
use lantalk_core::password::HashParams;
use lantalk_core::protocol::{self, ServerLine};
use lantalk_core::rooms::room_key;
use lantalk_core::secure::{FrameBuffer, Initiator, Session, StaticKey, Suite};
use lantalk_core::server::{Action, ConnId, HistoryConfig, RoomLimits, SecureConfig};
use lantalk_core::{Now, Server, ServerConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ROOMS: [&str; 5] = ["#lobby", "#a", "#A", "#b-2", "#c"];

struct Member {
    conn: ConnId,
    session: Option<Session>,
    lines: LineBuffer,
    /// Rooms it was told it is in (by key).
    rooms: HashSet<String>,
    name: String,
    closed: bool,
}

struct World {
    server: Server,
    members: Vec<Member>,
    plain: ConnId,
    plain_closed: bool,
    plain_lines: LineBuffer,
    queries: Vec<(QueryId, Scope)>,
    now: f64,
}

impl World {
    fn now(&self) -> Now {
        Now::from_secs_f64(self.now)
    }

    /// Carries out the server's actions, checking what each member gets.
    fn pump(&mut self) {
        let mut steps = 0;
        while let Some(action) = self.server.poll_action() {
            steps += 1;
            assert!(steps < 100_000, "actions never drain");
            match action {
                Action::Send { conn, bytes } => self.deliver(conn, &bytes),
                Action::Close { conn, .. } => {
                    if conn == self.plain {
                        self.plain_closed = true;
                    }
                    for m in &mut self.members {
                        if m.conn == conn {
                            m.closed = true;
                        }
                    }
                }
                Action::Store(request) => {
                    if let StoreRequest::Query { id, scope, .. } = *request {
                        self.queries.push((id, scope));
                    }
                }
                Action::CheckPassword(check) => {
                    let answer = check.run();
                    let now = self.now();
                    self.server.handle_password_checked(now, answer);
                }
                _ => {}
            }
        }
    }

    fn deliver(&mut self, conn: ConnId, bytes: &[u8]) {
        if conn == self.plain {
            assert!(!self.plain_closed, "sent to a closed connection");
            self.plain_lines.push(bytes);
            while let Some(Frame::Line(line)) = self.plain_lines.next_frame() {
                let v: Value = serde_json::from_slice(line).expect("JSON from the server");
                assert!(v.get("room").is_none(), "a room line to LanTalk 2.0: {v}");
            }
            return;
        }
        let Some(m) = self.members.iter_mut().find(|m| m.conn == conn) else {
            return;
        };
        assert!(!m.closed, "sent to a closed connection");
        let Some(session) = m.session.as_mut() else {
            return;
        };
        session
            .open(bytes, &mut m.lines)
            .expect("the server's frames open");
        while let Some(frame) = m.lines.next_frame() {
            let Frame::Line(line) = frame else {
                panic!("an oversized line from the server");
            };
            match protocol::parse_server_line(line).expect("a line we understand") {
                ServerLine::Room(view) => {
                    m.rooms.insert(room_key(&view.room));
                }
                ServerLine::RoomLeft { room, .. } => {
                    m.rooms.remove(&room_key(&room));
                }
                ServerLine::Message {
                    room: Some(room), ..
                } => assert!(
                    m.rooms.contains(&room_key(&room)),
                    "{} got a message of {room}, which it is not in",
                    m.name
                ),
                ServerLine::History {
                    place: protocol::Place::Room(room),
                    ..
                } => assert!(
                    m.rooms.contains(&room_key(&room)),
                    "{} got history of {room}, which it is not in",
                    m.name
                ),
                _ => {}
            }
        }
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([2; 32]),
            rng_seed: [3; 32],
            suites: vec![Suite::ChaChaPoly],
        }),
        allow_plaintext: true,
        rate_limit: None,
        rooms: RoomLimits {
            max_rooms: 4,
            max_rooms_per_user: 3,
            key_params: HashParams::INSECURE_FAST,
            ..RoomLimits::default()
        },
        history: HistoryConfig {
            store: true,
            on_join: 3,
            window: 4,
            ..HistoryConfig::default()
        },
        ..ServerConfig::default()
    }
}

fn world() -> World {
    let now = Now::from_secs_f64(0.0);
    let server = Server::new(config(), now, Default::default());
    let mut w = World {
        server,
        members: Vec::new(),
        plain: ConnId(0),
        plain_closed: false,
        plain_lines: LineBuffer::new(1 << 20),
        queries: Vec::new(),
        now: 0.0,
    };
    for (i, name) in ["ann", "bo", "cy"].into_iter().enumerate() {
        let now = w.now();
        let conn = w
            .server
            .handle_connect(now, format!("10.0.0.{}:1", i + 1).parse().unwrap());
        // The offer, in the clear.
        let mut offer = Vec::new();
        while let Some(action) = w.server.poll_action() {
            if let Action::Send { bytes, .. } = action {
                offer.extend_from_slice(&bytes);
            }
        }
        let key = StaticKey::from_private([10 + i as u8; 32]);
        let (initiator, hello) =
            Initiator::start(&offer, &key, [20 + i as u8; 32], Suite::ChaChaPoly).unwrap();
        let _ = w.server.handle_input(now, conn, &hello);
        let mut reply = FrameBuffer::default();
        while let Some(action) = w.server.poll_action() {
            if let Action::Send { bytes, .. } = action {
                reply.push(&bytes);
            }
        }
        let message = reply.next_frame().unwrap().to_vec();
        let (mut out, mut session) = initiator.finish(&message, FrameBuffer::default()).unwrap();
        session
            .seal_into(protocol::secure_login(name, None).as_bytes(), &mut out)
            .unwrap();
        w.members.push(Member {
            conn,
            session: Some(session),
            lines: LineBuffer::new(1 << 20),
            rooms: HashSet::new(),
            name: name.to_string(),
            closed: false,
        });
        let _ = w.server.handle_input(now, conn, &out);
        w.pump();
    }
    let now = w.now();
    w.plain = w.server.handle_connect(now, "10.0.0.9:1".parse().unwrap());
    let _ = w
        .server
        .handle_input(now, w.plain, protocol::login("dee", "").as_bytes());
    w.pump();
    w
}

fn seal_to_server(w: &mut World, who: usize, line: &str) {
    let now = w.now();
    let m = &mut w.members[who];
    if m.closed {
        return;
    }
    let mut out = Vec::new();
    if let Some(session) = m.session.as_mut() {
        if session.seal_into(line.as_bytes(), &mut out).is_err() {
            return;
        }
    }
    let conn = m.conn;
    let _ = w.server.handle_input(now, conn, &out);
}

fuzz_target!(|data: &[u8]| {
    let mut w = world();
    let mut rest = data;
    let mut next_id: HashMap<(), u64> = HashMap::new();
    while let [op, who, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let payload = String::from_utf8_lossy(&tail[..n]).into_owned();
        rest = &tail[n..];
        let who = (*who as usize) % w.members.len();
        let room = ROOMS[(*len as usize) % ROOMS.len()];
        match op % 8 {
            0 => seal_to_server(&mut w, who, &protocol::chat_in(room, &payload, false)),
            1 => {
                let cmd = [
                    "/join",
                    "/part",
                    "/topic",
                    "/invite",
                    "/kick",
                    "/key",
                    "/invite-only",
                    "/who",
                ][(*len as usize) % 8];
                let line = protocol::chat_in(room, &format!("{cmd} {payload}"), false);
                seal_to_server(&mut w, who, &line);
            }
            2 => seal_to_server(&mut w, who, &format!("{payload}\n")),
            3 => {
                let line = format!(
                    "{{\"type\": \"history\", \"room\": {}, \"before\": {}, \"limit\": {}}}\n",
                    serde_json::to_string(room).unwrap(),
                    tail.first().copied().unwrap_or(0),
                    n
                );
                seal_to_server(&mut w, who, &line);
            }
            4 => w.now += f64::from(*len) * 0.5,
            5 => {
                if let Some((id, scope)) = w.queries.pop() {
                    let id_base = next_id.entry(()).or_insert(1);
                    let records = tail[..n]
                        .iter()
                        .map(|b| {
                            *id_base += 1;
                            Record {
                                id: *id_base,
                                at_ms: i64::from(*b),
                                scope: if b % 2 == 0 {
                                    scope.clone()
                                } else {
                                    Scope::Room("#elsewhere".into())
                                },
                                from: payload.clone(),
                                text: payload.clone(),
                                kind: RecordKind::Message,
                            }
                        })
                        .collect();
                    let now = w.now();
                    w.server.handle_store_reply(
                        now,
                        StoreReply {
                            id,
                            records,
                            more: n % 2 == 0,
                            error: (n == 3).then(|| "disk".into()),
                        },
                    );
                }
            }
            6 => {
                if !w.plain_closed {
                    let now = w.now();
                    let _ = w
                        .server
                        .handle_input(now, w.plain, format!("{payload}\n").as_bytes());
                }
            }
            _ => {
                let now = w.now();
                w.server.handle_console(now, &payload);
            }
        }
        let now = w.now();
        w.server.handle_timeout(now);
        w.pump();
    }
});
