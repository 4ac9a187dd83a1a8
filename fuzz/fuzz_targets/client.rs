//! Drives the client state machine with server bytes, user input and time,
//! checking its invariants after every step. Byte format: README.md ("client").
#![no_main]

use std::fmt;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use lantalk_core::client::{Client, ClientAction, ClientConfig, ClientEvent};
use lantalk_core::protocol::{self, ClientLine, MAX_TEXT_CHARS};
use lantalk_core::ratelimit::Rate;
use lantalk_core::Now;
use lantalk_fuzz::{chunks, show, trace, Reader, MAX_ACTIONS_PER_STEP, MAX_STEPS};
use libfuzzer_sys::fuzz_target;

const USERNAME: &str = "alice";

const USER_CMDS: [&str; 15] = [
    "/quit",
    "/pm bob hi",
    "/pm bob",
    "/help",
    "hello",
    "<long>",
    "",
    "/users",
    "/PM Bob  hey ",
    "/exit",
    "/q",
    "  hi  ",
    "/me waves",
    "/me",
    "/clear",
];

fn config(bits: u8) -> ClientConfig {
    let mut c = ClientConfig::new(USERNAME, (bits & 1 != 0).then(|| "secret".to_string()));
    c.ask_password = bits & 2 != 0;
    c.send_rate = (bits & 4 == 0).then(|| Rate::new(3, Duration::from_secs(1)));
    c.max_line = if bits & 8 != 0 { 64 } else { 4096 };
    c.auth_timeout = Duration::from_secs(10);
    c
}

struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", show(&self.0))
    }
}

#[derive(Debug)]
enum Op {
    ServerBytes { bytes: Bytes, splits: Vec<usize> },
    ServerLine { kind: u8, a: String, b: String },
    UserLine(String),
    Password(String),
    Quit,
    Advance { millis: u64 },
    Disconnect,
    UserCmd(&'static str),
    Interrupt,
}

impl Op {
    fn decode(r: &mut Reader) -> Op {
        match r.u8() % 9 {
            0 => {
                let bytes = r.blob16().to_vec();
                let splits = r.splits(bytes.len(), 3);
                Op::ServerBytes {
                    bytes: Bytes(bytes),
                    splits,
                }
            }
            1 => Op::ServerLine {
                kind: r.u8() % 10,
                a: r.str8(),
                b: r.str8(),
            },
            2 => Op::UserLine(r.str8()),
            3 => Op::Password(r.str8()),
            4 => Op::Quit,
            5 => Op::Advance {
                millis: r.u16() as u64 * 8,
            },
            6 => Op::Disconnect,
            7 => Op::UserCmd(r.pick(&USER_CMDS)),
            _ => Op::Interrupt,
        }
    }
}

#[derive(Debug)]
struct Script {
    config_bits: u8,
    ops: Vec<Op>,
}

impl Script {
    fn decode(data: &[u8]) -> Script {
        let mut r = Reader::new(data);
        let config_bits = r.u8();
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < MAX_STEPS {
            ops.push(Op::decode(&mut r));
        }
        Script { config_bits, ops }
    }
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.len();
        Ok(Script::decode(u.bytes(n)?))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Script::decode(u.take_rest()))
    }
}

struct Harness {
    client: Client,
    /// The same client fed every server read in one piece: its actions must
    /// be the same as `client`'s (the outcome may not depend on chunking).
    twin: Client,
    /// `client`'s actions during the current step.
    log: Vec<ClientAction>,
    config: ClientConfig,
    now: Now,
    step: usize,
    login_sent: bool,
    joined: bool,
    close_actions: usize,
    terminal: Option<ClientEvent>,
}

fn server_line(now: Now, max_line: usize, kind: u8, a: &str, b: &str) -> Vec<u8> {
    let ts = now.wall;
    match kind {
        0 => protocol::auth_request(ts, false).into(),
        1 => protocol::auth_request(ts, true).into(),
        2 => protocol::auth_ok(ts, a, b).into(),
        3 => protocol::auth_fail(ts, a).into(),
        4 => protocol::message(ts, a, b).into(),
        5 => protocol::pm(ts, a, b).into(),
        6 => protocol::system(ts, a).into(),
        7 => format!("{a}\n").into(),
        8 => b"{\"type\": \"ping\"}\n".to_vec(),
        _ => {
            let mut v = vec![b'x'; max_line + 1];
            v.push(b'\n');
            v
        }
    }
}

impl Harness {
    fn after(&mut self, closed_before: bool) {
        let step = self.step;
        let mut n = 0;
        while let Some(action) = self.client.poll_action() {
            self.log.push(action.clone());
            n += 1;
            assert!(
                n <= MAX_ACTIONS_PER_STEP,
                "step {step}: more than {MAX_ACTIONS_PER_STEP} actions in one step (loop?)"
            );
            if trace() {
                match &action {
                    ClientAction::Send(bytes) => eprintln!("    send {}", show(bytes)),
                    a => eprintln!("    {a:?}"),
                }
            }
            assert!(
                !closed_before,
                "step {step}: the client was closed but produced {action:?}"
            );
            match action {
                ClientAction::Send(bytes) => {
                    assert_eq!(
                        self.close_actions,
                        0,
                        "step {step}: Send after Close: {}",
                        show(&bytes)
                    );
                    self.check_send(&bytes);
                }
                ClientAction::Close => {
                    self.close_actions += 1;
                    assert_eq!(self.close_actions, 1, "step {step}: a second Close action");
                }
                ClientAction::Event(e) => self.check_event(e),
                // File transfers: nothing answers them here (no side
                // connection opens, no file request is answered); they may
                // only come while the client is open, as checked above.
                ClientAction::Open(_)
                | ClientAction::SideSend(..)
                | ClientAction::SideWatchDrain(_)
                | ClientAction::SidePause(..)
                | ClientAction::SideClose(_)
                | ClientAction::Files(_) => {}
            }
        }
        let closed = self.client.is_closed();
        let timeout = self.client.poll_timeout();
        if closed {
            assert_eq!(
                timeout, None,
                "step {step}: closed client asks for a timeout"
            );
        } else if let Some(t) = timeout {
            assert!(
                t > self.now.instant,
                "step {step}: poll_timeout {t:?} is not after now {:?}",
                self.now.instant
            );
        }
        if let Some(e) = &self.terminal {
            assert!(
                closed,
                "step {step}: {e:?} shown but the client is not closed"
            );
        }
        assert_eq!(
            self.client.is_joined(),
            self.joined && !closed && !self.client.is_leaving(),
            "step {step}: is_joined disagrees with the events"
        );
    }

    fn check_send(&mut self, bytes: &[u8]) {
        let step = self.step;
        assert!(
            bytes.last() == Some(&b'\n') && !bytes[..bytes.len() - 1].contains(&b'\n'),
            "step {step}: Send is not exactly one line: {}",
            show(bytes)
        );
        let line = &bytes[..bytes.len() - 1];
        if !self.login_sent {
            self.login_sent = true;
            let login = protocol::parse_login(line).unwrap_or_else(|e| {
                panic!(
                    "step {step}: first Send is not a login ({e:?}): {}",
                    show(bytes)
                )
            });
            assert_eq!(
                login.username, USERNAME,
                "step {step}: login with the wrong name"
            );
            return;
        }
        assert!(
            self.joined,
            "step {step}: chat sent before joining: {}",
            show(bytes)
        );
        match protocol::parse_client_line(line) {
            // The server announced it wants to hear from us now and then.
            Ok(ClientLine::Keepalive) => {}
            Ok(ClientLine::Message { text, .. }) => {
                assert!(!text.is_empty(), "step {step}: empty message sent");
                assert!(
                    text.chars().count() <= MAX_TEXT_CHARS,
                    "step {step}: message over {MAX_TEXT_CHARS} characters sent"
                );
            }
            other => panic!("step {step}: not a chat line ({other:?}): {}", show(bytes)),
        }
    }

    fn check_event(&mut self, e: ClientEvent) {
        let step = self.step;
        match &e {
            ClientEvent::Joined { .. } => {
                assert!(!self.joined, "step {step}: joined twice");
                assert!(
                    self.login_sent,
                    "step {step}: joined without sending a login"
                );
                self.joined = true;
            }
            ClientEvent::PasswordRequired => {
                assert!(
                    self.config.ask_password && self.config.password.is_none(),
                    "step {step}: asked for a password it should not ask for"
                );
            }
            ClientEvent::Refused { .. } | ClientEvent::Disconnected { .. } => {
                assert!(
                    self.terminal.is_none(),
                    "step {step}: {e:?} after {:?}",
                    self.terminal
                );
                if let ClientEvent::Refused { reason, .. } = &e {
                    assert!(
                        !self.joined,
                        "step {step}: Refused ({reason:?}) after the login had succeeded"
                    );
                }
                self.terminal = Some(e);
            }
            _ => {}
        }
    }

    fn run(&mut self, op: &Op) {
        self.log.clear();
        let now = self.now;
        if let Op::ServerBytes { bytes, splits } = op {
            for chunk in chunks(&bytes.0, splits) {
                let closed = self.client.is_closed();
                self.client.handle_input(now, chunk);
                self.after(closed);
            }
            self.twin.handle_input(now, &bytes.0);
        } else {
            let closed = self.client.is_closed();
            Self::apply(&mut self.client, &mut self.now, self.config.max_line, op);
            self.after(closed);
            Self::apply(&mut self.twin, &mut { now }, self.config.max_line, op);
        }
        let mut twin = Vec::new();
        while let Some(a) = self.twin.poll_action() {
            twin.push(a);
            assert!(twin.len() <= MAX_ACTIONS_PER_STEP, "twin loops");
        }
        assert!(
            self.log == twin,
            "step {}: the outcome depends on how server bytes were chunked:\n  chunked: \
             {:?}\n  whole:   {twin:?}",
            self.step,
            self.log
        );
    }

    fn apply(client: &mut Client, now_ref: &mut Now, max_line: usize, op: &Op) {
        let now = *now_ref;
        match op {
            Op::ServerBytes { .. } => unreachable!(),
            Op::ServerLine { kind, a, b } => {
                let line = server_line(now, max_line, *kind, a, b);
                client.handle_input(now, &line);
            }
            Op::UserLine(line) => client.handle_user_line(now, line),
            Op::UserCmd(cmd) => {
                let line = match *cmd {
                    "<long>" => "y".repeat(MAX_TEXT_CHARS + 1),
                    cmd => cmd.to_string(),
                };
                client.handle_user_line(now, &line);
            }
            Op::Password(p) => client.handle_password(now, p),
            Op::Quit => client.handle_quit(now),
            Op::Interrupt => client.handle_interrupt(now),
            Op::Advance { millis } => {
                *now_ref = now.advanced_by(Duration::from_millis(*millis));
                client.handle_timeout(*now_ref);
            }
            Op::Disconnect => client.handle_disconnect(now),
        }
    }
}

fuzz_target!(|script: Script| {
    let config = config(script.config_bits);
    let now = Now::from_secs_f64(0.0);
    let mut h = Harness {
        client: Client::new(config.clone(), now),
        twin: Client::new(config.clone(), now),
        log: Vec::new(),
        config,
        now,
        step: 0,
        login_sent: false,
        joined: false,
        close_actions: 0,
        terminal: None,
    };
    if trace() {
        eprintln!("config bits {:#04x}", script.config_bits);
    }
    h.after(false);
    for (i, op) in script.ops.iter().enumerate() {
        h.step = i + 1;
        if trace() {
            eprintln!("step {} @{:?}: {op:?}", h.step, h.now.instant.since_epoch());
        }
        h.run(op);
    }
});
