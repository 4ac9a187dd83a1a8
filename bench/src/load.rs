//! The load generator: every simulated client on one thread and one poller.
//!
//! On a 2-core machine a generator with a thread per client would measure
//! itself. Here each client is a non-blocking socket and a few bytes of state;
//! received bytes are split into lines in place and only the fields that
//! matter are looked at (the message's `text`, which carries the sequence
//! number, the sender and the send time), without parsing the JSON.
//!
//! Per connection, everything that depends on the wire format goes through
//! [`Wire`]: plaintext LanTalk 2.0, or our encrypted sessions, where the
//! client answers `auth_request` with a Noise handshake (the core's own
//! [`secure`] functions, so the same cipher as our client), then seals every
//! line it sends and opens every frame before the lines reach
//! [`Gen::on_line`].

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lantalk_core::secure::{self, FrameBuffer, Offer, StaticKey};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

use crate::procstats::{self, CpuSample};

/// How clients talk to the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Wire {
    /// LanTalk 2.0: JSON lines in the clear.
    #[default]
    Plain,
    /// Our secure sessions: Noise XX, then every line sealed in a frame.
    Encrypted,
}

/// Where a connection's session stands, on the encrypted wire.
enum Session {
    /// Plaintext lines (LanTalk 2.0, and `auth_request` on either wire).
    Clear,
    /// Our first handshake message is sent; the server's answer is awaited.
    Handshake {
        noise: Box<snow::HandshakeState>,
        frames: FrameBuffer,
    },
    Secure {
        noise: Box<snow::TransportState>,
        /// A frame begun in an earlier read. Whole frames are opened where
        /// they were read, without copying them anywhere first.
        partial: Vec<u8>,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Clients that join.
    pub clients: usize,
    /// How many of them send (the first to join).
    pub senders: usize,
    /// Messages each sender sends, as fast as its socket accepts them.
    pub messages: usize,
    /// Bytes of chat text per message (at least what the header needs).
    pub size: usize,
    /// Open every connection at once instead of keeping at most
    /// [`JOIN_WINDOW`] logins in flight.
    pub connect_burst: bool,
    /// Join, settle, measure memory, hold, leave: no messages.
    pub idle: bool,
    /// Idle mode: how long the clients stay connected and quiet before the
    /// server's memory is measured.
    pub hold: Duration,
    /// Bound for each phase (joining, settling, delivering).
    pub timeout: Duration,
    pub wire: Wire,
    /// The server's password: every client sends it in its login line
    /// (plaintext only; the generator does not run SPAKE2).
    pub password: Option<String>,
    /// Paced sending: messages per second per sender, instead of as fast as
    /// the sockets accept them.
    pub rate: Option<f64>,
    /// With `rate` and `password`: plaintext logins with the password per
    /// second, on a thread of their own, during the second half of the
    /// message phase (see [`SideLogins`]).
    pub password_logins: Option<f64>,
    /// Rooms (encrypted only): after logging in, client `i` joins room
    /// `#r{i % rooms}` ([`room_of`]); senders speak in their room, and a
    /// message is expected by the other members of that room only.
    pub rooms: Option<usize>,
    /// Joining a room with history (encrypted only): client 0 joins this
    /// room and says `expect_history` lines in it; then every other client
    /// joins it at once and waits for its `history` line. No chat phase.
    pub join_room: Option<String>,
    /// With `join_room`: lines of history seeded, and expected by each joiner.
    pub expect_history: usize,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            clients: 100,
            senders: 10,
            messages: 200,
            size: 64,
            connect_burst: false,
            idle: false,
            hold: Duration::ZERO,
            timeout: Duration::from_secs(60),
            wire: Wire::Plain,
            password: None,
            rate: None,
            password_logins: None,
            rooms: None,
            join_room: None,
            expect_history: 50,
        }
    }
}

impl Scenario {
    /// What this scenario cannot do, said before anything starts.
    pub fn check(&self) -> Result<(), String> {
        let rooms = self.rooms.is_some() || self.join_room.is_some();
        if rooms && self.wire != Wire::Encrypted {
            return Err("rooms are for clients of ours: add --encrypted".into());
        }
        if self.rooms == Some(0) {
            return Err("--rooms: at least one room".into());
        }
        if let Some(room) = &self.join_room {
            if lantalk_core::rooms::validate_room(room).is_err() {
                return Err(format!("--join-room: `{room}` is not a room name"));
            }
            if self.clients < 2 {
                return Err("--join-room needs a seeding client and at least one joiner".into());
            }
            if self.rooms.is_some() || self.idle {
                return Err("--join-room is a mode of its own (no --rooms, no --idle)".into());
            }
        }
        Ok(())
    }
}

/// The room client `i` joins with `rooms` rooms: round robin.
pub fn room_of(i: usize, rooms: usize) -> u32 {
    (i % rooms) as u32
}

/// Messages each receiver expects: every message of every sender in its
/// room but its own. `rooms[c]` is receiver `c`'s room (`None`: everyone is
/// in one room, the lobby), `senders` the receivers that send, each
/// `messages` times.
pub fn expected_deliveries(rooms: &[Option<u32>], senders: &[usize], messages: usize) -> Vec<u64> {
    rooms
        .iter()
        .enumerate()
        .map(|(c, room)| {
            let heard = senders
                .iter()
                .filter(|&&s| s != c && rooms[s] == *room)
                .count();
            (heard * messages) as u64
        })
        .collect()
}

/// Logins in flight at once unless `connect_burst`.
pub const JOIN_WINDOW: usize = 64;
/// The join phase gives up after this long without a single login.
const JOIN_STALL: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// The logins made beside the chat: each a new connection that reads
/// `auth_request`, sends a LanTalk 2.0 login line with the password, reads
/// `auth_ok` or `auth_fail` and closes.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SideLogins {
    /// Logins attempted.
    pub attempted: usize,
    /// Answered with `auth_ok`.
    pub ok: usize,
    /// Answered with `auth_fail`, or that failed on the way.
    pub failed: usize,
    /// Time from connect to the answer.
    pub p50_ms: f64,
    pub max_ms: f64,
}

/// What one run measured. Times in milliseconds, memory in bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub server: String,
    pub mode: &'static str,
    pub wire: Wire,
    pub clients: usize,
    pub senders: usize,
    pub messages: usize,
    pub size: usize,
    pub connect_burst: bool,
    /// Clients that got `auth_ok`.
    pub joined: usize,
    /// Connections refused, reset or answered with `auth_fail`.
    pub join_failures: usize,
    pub first_failure: Option<String>,
    /// From the first connect to the last `auth_ok`.
    pub join_ms: f64,
    /// From the last `auth_ok` until every join notice had arrived.
    pub settle_ms: f64,
    pub expected: u64,
    pub delivered: u64,
    /// Messages a receiver got before an earlier one from the same sender.
    pub out_of_order: u64,
    /// Clients the server disconnected while messages were being delivered.
    pub lost_clients: usize,
    /// From the first message sent to the last one delivered.
    pub completion_ms: f64,
    pub deliveries_per_sec: f64,
    pub latency: Option<Latency>,
    /// With side logins: latency of the messages sent in the first half of
    /// the message phase (no logins) and in the second (logins running).
    pub latency_quiet: Option<Latency>,
    pub latency_logins: Option<Latency>,
    pub side_logins: Option<SideLogins>,
    /// Server CPU (user + system) during the message phase.
    pub server_cpu_ms: Option<f64>,
    pub server_cpu_ns_per_delivery: Option<f64>,
    /// Server memory before any client connected.
    pub server_rss_start: Option<u64>,
    /// Server memory with every client joined and idle (after settling, and
    /// in idle mode after holding).
    pub server_rss_joined: Option<u64>,
    /// Server peak memory (VmHWM) at the end.
    pub server_peak_rss: Option<u64>,
    /// (rss_joined - rss_start) / joined.
    pub rss_per_client: Option<f64>,
    pub server_threads: Option<u64>,
    /// The generator's own CPU during the message phase.
    pub generator_cpu_ms: Option<f64>,
    pub timed_out: bool,
    /// `--rooms`: how many rooms the clients were spread over.
    pub rooms: Option<usize>,
    /// With rooms: from the first `/join` sent to the last client in its
    /// room (its `room` line received).
    pub rooms_ms: Option<f64>,
    /// Messages a receiver got from a room it is not in (must be 0).
    pub misrouted: u64,
    /// `--join-room`: from the first joiner's `/join` to the last joiner's
    /// `room` line.
    pub room_join_ms: Option<f64>,
    /// `--join-room`: from the first joiner's `/join` to the last joiner's
    /// `history` line with at least `expect_history` records.
    pub history_ms: Option<f64>,
    /// `--join-room`: joiners that got their whole history.
    pub histories: usize,
    /// `--join-room`: lines of history each joiner waited for.
    pub expect_history: usize,
}

impl Report {
    /// Every expected message arrived and every client joined.
    pub fn complete(&self) -> bool {
        self.joined == self.clients
            && self.delivered == self.expected
            && self.misrouted == 0
            && !self.timed_out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    AwaitRequest,
    AwaitOk,
    Joined,
    Dead,
}

struct Conn {
    sock: TcpStream,
    phase: Phase,
    session: Session,
    /// Start of a line whose end has not arrived yet.
    carry: Vec<u8>,
    /// Bytes to send and how far they have been sent.
    out: Vec<u8>,
    out_pos: usize,
    /// Sender number, if this client sends.
    sender: Option<u32>,
    /// Messages encoded so far (senders).
    produced: usize,
    /// Chat messages received, and how many are expected.
    got: u64,
    expect: u64,
    /// Per sender: one more than the last sequence number seen.
    next_seq: Vec<u32>,
    /// With rooms: the room (`#r<n>`) this client joins and speaks in.
    room: Option<u32>,
    /// `room` lines received for that room (or for `--join-room`'s).
    room_lines: u32,
    /// `--join-room`: its history line arrived, whole.
    history_ok: bool,
}

/// Bytes a sender encodes ahead of what its socket has taken.
const SEND_AHEAD: usize = 64 * 1024;
const READ_BUF: usize = 256 * 1024;

struct Gen<'a> {
    sc: &'a Scenario,
    addr: SocketAddr,
    poll: Poll,
    events: Events,
    conns: Vec<Option<Conn>>,
    t0: Instant,
    rbuf: Vec<u8>,
    /// Lines opened from frames, before they are split.
    opened: Vec<u8>,
    /// Scratch for one frame's plaintext.
    frame_buf: Vec<u8>,
    /// Seeds every client's keys; differs per run.
    key_seed: u64,
    /// Usernames are `<prefix><index>`, unique per run.
    prefix: String,
    started: usize,
    in_flight: usize,
    joined: usize,
    failures: usize,
    first_failure: Option<String>,
    last_join: Instant,
    join_notices: u64,
    messaging: bool,
    delivered: u64,
    out_of_order: u64,
    latencies: Vec<u64>,
    /// With side logins: latencies of the messages sent while they run
    /// (sequence numbers from `split` on).
    latencies_late: Vec<u64>,
    split: Option<u32>,
    /// When the message phase began, in nanoseconds since `t0` (pacing).
    msg_t0: u64,
    receivers_done: usize,
    lost: usize,
    last_delivery: Instant,
    last_activity: Instant,
    /// With rooms: clients in their room, and when the last one got there.
    in_rooms: usize,
    last_in_room: Instant,
    /// Per sender: its room (with rooms).
    sender_rooms: Vec<Option<u32>>,
    misrouted: u64,
    /// `--join-room`: joiners with their whole history, the last one's time.
    histories: usize,
    last_history: Instant,
}

/// Runs `sc` against the server at `addr`; `pid`, if known, is sampled for
/// CPU time and memory.
pub fn run(
    server: &str,
    addr: SocketAddr,
    pid: Option<u32>,
    sc: &Scenario,
) -> Result<Report, String> {
    sc.check()?;
    let want_fds = sc.clients as u64 + 256;
    if let Some(limit) = procstats::raise_fd_limit(want_fds) {
        if limit < want_fds {
            return Err(format!(
                "{} clients need about {want_fds} file descriptors; the limit is {limit} \
                 (raise it with `ulimit -n`)",
                sc.clients
            ));
        }
    }
    let poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
    let now = Instant::now();
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut g = Gen {
        sc,
        addr,
        poll,
        events: Events::with_capacity(1024),
        conns: (0..sc.clients).map(|_| None).collect(),
        t0: now,
        rbuf: vec![0; READ_BUF],
        opened: Vec::new(),
        frame_buf: vec![0; secure::MAX_FRAME],
        key_seed: now.elapsed().as_nanos() as u64 ^ (u64::from(std::process::id()) << 32),
        prefix: format!("b{}p{run}u", std::process::id() % 10_000),
        started: 0,
        in_flight: 0,
        joined: 0,
        failures: 0,
        first_failure: None,
        last_join: now,
        join_notices: 0,
        messaging: false,
        delivered: 0,
        out_of_order: 0,
        latencies: Vec::new(),
        latencies_late: Vec::new(),
        split: None,
        msg_t0: 0,
        receivers_done: 0,
        lost: 0,
        last_delivery: now,
        last_activity: now,
        in_rooms: 0,
        last_in_room: now,
        sender_rooms: Vec::new(),
        misrouted: 0,
        histories: 0,
        last_history: now,
    };
    let mem_start = pid.and_then(procstats::memory);

    // ── Join ──
    let join_start = Instant::now();
    let window = if sc.connect_burst {
        sc.clients
    } else {
        JOIN_WINDOW
    };
    let mut timed_out = false;
    let mut progress = (0, Instant::now());
    while g.joined + g.failures < sc.clients {
        while g.started < sc.clients && g.in_flight < window {
            g.start_connect();
        }
        let done = g.joined + g.failures;
        if done != progress.0 {
            progress = (done, Instant::now());
        }
        // A connection whose handshake the server dropped (a full listen
        // backlog answered with a SYN cookie) waits for a greeting that
        // never comes: no point waiting out the whole timeout for it.
        let stalled = progress.1.elapsed() > JOIN_STALL;
        if join_start.elapsed() > sc.timeout || stalled {
            timed_out = true;
            let count = |p: Phase| g.conns.iter().flatten().filter(|c| c.phase == p).count();
            g.first_failure.get_or_insert(format!(
                "join {} with {} connecting, {} awaiting auth_request, {} awaiting auth_ok, {} not started",
                if stalled { "stalled" } else { "timed out" },
                count(Phase::Connecting),
                count(Phase::AwaitRequest),
                count(Phase::AwaitOk),
                sc.clients - g.started,
            ));
            break;
        }
        g.turn(Duration::from_millis(50));
    }
    let join_ms = ms(g.last_join.saturating_duration_since(join_start));

    // ── Settle: every join notice delivered, then quiet ──
    let settle_start = Instant::now();
    let j = g.joined as u64;
    let want_notices = j * j.saturating_sub(1) / 2;
    // With rooms, also every client in its room.
    while !timed_out
        && (g.join_notices < want_notices || (sc.rooms.is_some() && g.in_rooms < g.alive()))
    {
        if settle_start.elapsed() > sc.timeout {
            timed_out = true;
            break;
        }
        g.turn(Duration::from_millis(50));
    }
    let settle_ms = ms(settle_start.elapsed());
    let quiet = Duration::from_millis(100);
    let quiet_deadline = Instant::now() + Duration::from_secs(3);
    g.last_activity = Instant::now();
    while g.last_activity.elapsed() < quiet && Instant::now() < quiet_deadline {
        g.turn(Duration::from_millis(20));
    }
    if sc.idle {
        // Idle means idle: output buffers and threads that only live while
        // there is traffic have had time to go.
        let hold_end = Instant::now() + sc.hold;
        while Instant::now() < hold_end {
            g.turn(Duration::from_millis(100));
        }
    }
    let mem_joined = pid.and_then(procstats::memory);
    let threads = pid.and_then(procstats::threads);

    let mut report = Report {
        server: server.to_string(),
        mode: if sc.idle { "idle" } else { "fanout" },
        wire: sc.wire,
        clients: sc.clients,
        senders: if sc.idle { 0 } else { sc.senders },
        messages: if sc.idle { 0 } else { sc.messages },
        size: sc.size,
        connect_burst: sc.connect_burst,
        joined: g.joined,
        join_failures: g.failures,
        first_failure: g.first_failure.clone(),
        join_ms,
        settle_ms,
        expected: 0,
        delivered: 0,
        out_of_order: 0,
        lost_clients: 0,
        completion_ms: 0.0,
        deliveries_per_sec: 0.0,
        latency: None,
        latency_quiet: None,
        latency_logins: None,
        side_logins: None,
        server_cpu_ms: None,
        server_cpu_ns_per_delivery: None,
        server_rss_start: mem_start.map(|m| m.rss),
        server_rss_joined: mem_joined.map(|m| m.rss),
        server_peak_rss: None,
        rss_per_client: match (mem_start, mem_joined) {
            (Some(a), Some(b)) if g.joined > 0 => {
                Some((b.rss as f64 - a.rss as f64) / g.joined as f64)
            }
            _ => None,
        },
        server_threads: threads,
        generator_cpu_ms: None,
        timed_out,
        rooms: sc.rooms,
        rooms_ms: sc
            .rooms
            .map(|_| ms(g.last_in_room.saturating_duration_since(join_start))),
        misrouted: 0,
        room_join_ms: None,
        history_ms: None,
        histories: 0,
        expect_history: 0,
    };

    if sc.idle {
        report.server_peak_rss = pid.and_then(procstats::memory).map(|m| m.peak);
        return Ok(report);
    }
    if timed_out {
        report.server_peak_rss = pid.and_then(procstats::memory).map(|m| m.peak);
        return Ok(report);
    }
    let joined: Vec<usize> = (0..sc.clients)
        .filter(|&i| matches!(&g.conns[i], Some(c) if c.phase == Phase::Joined))
        .collect();
    if let Some(room) = &sc.join_room {
        g.join_room(room, &joined, pid, &mut report);
        report.server_peak_rss = pid.and_then(procstats::memory).map(|m| m.peak);
        return Ok(report);
    }

    // ── Messages ──
    // The senders are the first clients to have joined.
    let senders: Vec<usize> = joined.iter().copied().take(sc.senders).collect();
    let n_senders = senders.len();
    for (k, &i) in senders.iter().enumerate() {
        if let Some(c) = g.conns[i].as_mut() {
            c.sender = Some(k as u32);
        }
    }
    let room = |g: &Gen, i: usize| g.conns[i].as_ref().and_then(|c| c.room);
    g.sender_rooms = senders.iter().map(|&i| room(&g, i)).collect();
    let rooms: Vec<Option<u32>> = joined.iter().map(|&i| room(&g, i)).collect();
    let sender_at: Vec<usize> = (0..n_senders).collect();
    let mut expected = 0;
    for (&i, expect) in joined
        .iter()
        .zip(expected_deliveries(&rooms, &sender_at, sc.messages))
    {
        let Some(c) = g.conns[i].as_mut() else {
            continue;
        };
        c.expect = expect;
        c.next_seq = vec![0; n_senders];
        expected += expect;
        if expect == 0 {
            g.receivers_done += 1;
        }
    }
    g.latencies.reserve(expected as usize);
    report.expected = expected;

    let cpu0 = pid.and_then(CpuSample::take);
    let own0 = procstats::own_cpu();
    let msg_start = Instant::now();
    g.msg_t0 = g.now_ns();
    g.messaging = true;
    // Paced: the phase lasts as long as the last message takes to fall due.
    let paced = sc
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(sc.messages as f64 / r));
    let side = match (sc.rate, sc.password_logins, &sc.password) {
        (Some(rate), Some(per_sec), Some(pw)) if rate > 0.0 && per_sec > 0.0 => {
            let half = sc.messages / 2;
            g.split = Some(half as u32);
            let start = msg_start + Duration::from_secs_f64(half as f64 / rate);
            let end = msg_start + paced.unwrap_or_default();
            let (prefix, pw) = (format!("{}s", g.prefix), pw.clone());
            Some(std::thread::spawn(move || {
                side_logins(addr, &prefix, &pw, per_sec, start, end)
            }))
        }
        _ => None,
    };
    for &i in &senders {
        g.pump(i);
    }
    while g.receivers_done + g.lost < g.joined {
        if msg_start.elapsed() > sc.timeout + paced.unwrap_or_default() {
            report.timed_out = true;
            break;
        }
        if paced.is_some() {
            // Wake often enough to send each message when it falls due.
            g.turn(Duration::from_millis(1));
            for &i in &senders {
                g.pump(i);
            }
        } else {
            g.turn(Duration::from_millis(50));
        }
    }
    if let Some(side) = side {
        report.side_logins = side.join().ok();
    }
    let cpu1 = pid.and_then(CpuSample::take);
    let own1 = procstats::own_cpu();
    let elapsed = if report.timed_out {
        msg_start.elapsed()
    } else {
        g.last_delivery.saturating_duration_since(msg_start)
    };

    report.delivered = g.delivered;
    report.out_of_order = g.out_of_order;
    report.misrouted = g.misrouted;
    report.lost_clients = g.lost;
    report.completion_ms = ms(elapsed);
    report.deliveries_per_sec = g.delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    if g.split.is_some() {
        report.latency_quiet = percentiles(&mut g.latencies);
        report.latency_logins = percentiles(&mut g.latencies_late);
        g.latencies.extend_from_slice(&g.latencies_late);
    }
    report.latency = percentiles(&mut g.latencies);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu = a.until(&b);
        report.server_cpu_ms = Some(ms(cpu));
        if g.delivered > 0 {
            report.server_cpu_ns_per_delivery = Some(cpu.as_nanos() as f64 / g.delivered as f64);
        }
    }
    if let (Some(a), Some(b)) = (own0, own1) {
        report.generator_cpu_ms = Some(ms(b.saturating_sub(a)));
    }
    report.server_peak_rss = pid.and_then(procstats::memory).map(|m| m.peak);
    Ok(report)
}

/// Logins beside the chat, `per_sec` of them from `start` until `end`, one
/// after another (a login that takes longer than its share delays the next).
fn side_logins(
    addr: SocketAddr,
    prefix: &str,
    password: &str,
    per_sec: f64,
    start: Instant,
    end: Instant,
) -> SideLogins {
    let mut out = SideLogins::default();
    let mut took = Vec::new();
    loop {
        let at = start + Duration::from_secs_f64(out.attempted as f64 / per_sec);
        if at >= end {
            break;
        }
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        let name = format!("{prefix}{}", out.attempted);
        match side_login(addr, &name, password) {
            Ok(true) => out.ok += 1,
            Ok(false) | Err(_) => out.failed += 1,
        }
        took.push(t.elapsed());
        out.attempted += 1;
    }
    took.sort_unstable();
    if let Some(max) = took.last() {
        out.p50_ms = ms(took[(took.len() - 1) / 2]);
        out.max_ms = ms(*max);
    }
    out
}

/// One LanTalk 2.0 login with a password: true if it got `auth_ok`.
fn side_login(addr: SocketAddr, name: &str, password: &str) -> std::io::Result<bool> {
    use std::io::BufRead;
    let sock = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut lines = std::io::BufReader::new(sock.try_clone()?);
    let mut line = String::new();
    let mut next = |line: &mut String| -> std::io::Result<()> {
        line.clear();
        if lines.read_line(line)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    };
    loop {
        next(&mut line)?;
        if line.starts_with("{\"type\": \"auth_request\"") {
            break;
        }
    }
    (&sock).write_all(login_line(name, Some(password)).as_bytes())?;
    loop {
        next(&mut line)?;
        if line.starts_with("{\"type\": \"auth_ok\"") {
            return Ok(true);
        }
        if line.starts_with("{\"type\": \"auth_fail\"") {
            return Ok(false);
        }
    }
}

/// A LanTalk 2.0 login line.
fn login_line(name: &str, password: Option<&str>) -> String {
    let pw = serde_json::Value::from(password.unwrap_or(""));
    format!("{{\"username\": \"{name}\", \"password\": {pw}}}\n")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentiles(lat: &mut [u64]) -> Option<Latency> {
    if lat.is_empty() {
        return None;
    }
    lat.sort_unstable();
    let at = |q: f64| {
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1e3
    };
    Some(Latency {
        p50_us: at(0.50),
        p99_us: at(0.99),
        max_us: lat[lat.len() - 1] as f64 / 1e3,
    })
}

impl Gen<'_> {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    /// Clients logged in and still connected.
    fn alive(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .filter(|c| c.phase == Phase::Joined)
            .count()
    }

    /// Client `i` says `text` in `room` (a chat line of ours, sealed).
    fn say(&mut self, i: usize, room: &str, text: &str) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        seal(
            c,
            lantalk_core::protocol::chat_in(room, text, false).as_bytes(),
        );
        self.pump(i);
    }

    /// Turns the poller until `done` or the phase's timeout; false on timeout.
    fn turn_until(&mut self, done: impl Fn(&Self) -> bool) -> bool {
        let start = Instant::now();
        while !done(self) {
            if start.elapsed() > self.sc.timeout {
                return false;
            }
            self.turn(Duration::from_millis(20));
        }
        true
    }

    /// `--join-room`: the first of `joined` joins `room` and says
    /// `expect_history` lines in it; then every other one joins it at once,
    /// and the time until each has its `room` and whole `history` line is
    /// measured.
    fn join_room(&mut self, room: &str, joined: &[usize], pid: Option<u32>, report: &mut Report) {
        let want = self.sc.expect_history;
        report.mode = "join-room";
        report.expect_history = want;
        let Some((&seeder, joiners)) = joined.split_first() else {
            report.timed_out = true;
            return;
        };
        report.senders = 1;
        report.messages = want;
        report.expected = joiners.len() as u64;
        let lines = |g: &Self| g.conns[seeder].as_ref().map_or(u32::MAX, |c| c.room_lines);
        // Seeding. A `/join` of a room one is in is answered with its state
        // again, after the lines sent before it: then they are recorded.
        self.say(seeder, lantalk_core::rooms::LOBBY, &format!("/join {room}"));
        let mut ok = self.turn_until(|g| lines(g) >= 1);
        if ok {
            for k in 0..want {
                let mut text = format!("seed {k} ");
                while text.len() < self.sc.size {
                    text.push('x');
                }
                self.say(seeder, room, &text);
            }
            self.say(seeder, room, &format!("/join {room}"));
            ok = self.turn_until(|g| lines(g) >= 2);
        }
        if !ok {
            report.timed_out = true;
            report
                .first_failure
                .get_or_insert("seeding the room timed out".into());
            return;
        }
        // Quiet again before the measurement.
        let quiet_deadline = Instant::now() + Duration::from_secs(3);
        self.last_activity = Instant::now();
        while self.last_activity.elapsed() < Duration::from_millis(100)
            && Instant::now() < quiet_deadline
        {
            self.turn(Duration::from_millis(20));
        }

        let cpu0 = pid.and_then(CpuSample::take);
        self.in_rooms = 0;
        self.histories = 0;
        let start = Instant::now();
        for &i in joiners {
            self.say(i, lantalk_core::rooms::LOBBY, &format!("/join {room}"));
        }
        let n = joiners.len();
        // Done when every joiner has its history or is gone.
        let ok = self.turn_until(|g| g.histories + (n + 1).saturating_sub(g.alive()) >= n);
        if let (Some(a), Some(b)) = (cpu0, pid.and_then(CpuSample::take)) {
            report.server_cpu_ms = Some(ms(a.until(&b)));
        }
        report.timed_out = !ok;
        report.delivered = self.histories as u64;
        report.histories = self.histories;
        report.lost_clients = (n + 1).saturating_sub(self.alive());
        report.room_join_ms = Some(ms(self.last_in_room.saturating_duration_since(start)));
        report.history_ms = Some(ms(self.last_history.saturating_duration_since(start)));
    }

    fn start_connect(&mut self) {
        let i = self.started;
        self.started += 1;
        match TcpStream::connect(self.addr) {
            Ok(mut sock) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self.poll.registry().register(&mut sock, Token(i), interest) {
                    self.fail_join(format!("register: {e}"));
                    return;
                }
                self.in_flight += 1;
                self.conns[i] = Some(Conn {
                    sock,
                    phase: Phase::Connecting,
                    session: Session::Clear,
                    carry: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    sender: None,
                    produced: 0,
                    got: 0,
                    expect: 0,
                    next_seq: Vec::new(),
                    room: self.sc.rooms.map(|n| room_of(i, n)),
                    room_lines: 0,
                    history_ok: false,
                });
            }
            Err(e) => self.fail_join(format!("connect: {e}")),
        }
    }

    fn fail_join(&mut self, why: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(why);
    }

    /// Waits for events (at most `timeout`) and handles them.
    fn turn(&mut self, timeout: Duration) {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                panic!("poll failed: {e}");
            }
            return;
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|ev| {
                (
                    ev.token().0,
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable(),
                )
            })
            .collect();
        if !ready.is_empty() {
            self.last_activity = Instant::now();
        }
        for (i, readable, writable) in ready {
            self.on_event(i, readable, writable);
        }
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        if c.phase == Phase::Connecting {
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.kill(i, format!("connect: {e}")),
            }
            match c.sock.peer_addr() {
                Ok(_) => {
                    let _ = c.sock.set_nodelay(true);
                    c.phase = Phase::AwaitRequest;
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => return self.kill(i, format!("connect: {e}")),
            }
            // The readable edge may have come with this very event.
            self.read(i);
            return;
        }
        if readable {
            self.read(i);
        }
        if writable {
            self.pump(i);
        }
    }

    /// Reads until the socket is drained, handling every complete line.
    fn read(&mut self, i: usize) {
        let mut buf = std::mem::take(&mut self.rbuf);
        while let Some(c) = self.conns[i].as_mut() {
            match c.sock.read(&mut buf) {
                Ok(0) => {
                    self.kill(i, "closed by the server".into());
                    break;
                }
                Ok(n) => {
                    let now = self.now_ns();
                    let before = self.delivered;
                    self.on_bytes(i, &buf[..n], now);
                    // Once per read, not per delivery: reading the clock
                    // would be a good part of the generator's work.
                    if self.delivered != before {
                        self.last_delivery = Instant::now();
                    }
                    // A short read drained the socket; whatever arrives
                    // later raises a new (edge-triggered) event. This saves
                    // the read that would only say "would block".
                    if n < buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.kill(i, format!("read: {e}"));
                    break;
                }
            }
        }
        self.rbuf = buf;
    }

    /// Received bytes: lines in the clear, or frames once a handshake began.
    fn on_bytes(&mut self, i: usize, bytes: &[u8], now: u64) {
        let clear = self.conns[i]
            .as_ref()
            .is_some_and(|c| matches!(c.session, Session::Clear));
        if clear {
            let rest = self.on_clear_bytes(i, bytes, now);
            if rest.is_empty() {
                return;
            }
            // The greeting started a handshake: what follows it is frames.
            self.on_frames(i, rest, now);
        } else {
            self.on_frames(i, bytes, now);
        }
    }

    /// Adds `bytes` to the connection's frames and handles every complete
    /// one: the end of the handshake (then the login, inside the session),
    /// then sealed lines.
    fn on_frames(&mut self, i: usize, bytes: &[u8], now: u64) {
        let mut opened = std::mem::take(&mut self.opened);
        opened.clear();
        let result = match self.conns[i].as_mut() {
            Some(c) => open_frames(c, i, &self.prefix, bytes, &mut self.frame_buf, &mut opened),
            None => Ok(false),
        };
        match result {
            Err(why) => self.kill(i, why),
            Ok(logged_in) => {
                if logged_in {
                    self.pump(i);
                }
                if !opened.is_empty() {
                    self.on_clear_bytes(i, &opened, now);
                }
            }
        }
        self.opened = opened;
    }

    /// Splits bytes into lines and handles them. Returns what follows a line
    /// that started a handshake (frames, not lines); otherwise nothing.
    fn on_clear_bytes<'b>(&mut self, i: usize, mut bytes: &'b [u8], now: u64) -> &'b [u8] {
        let in_clear = |g: &Self| {
            g.conns[i]
                .as_ref()
                .is_some_and(|c| matches!(c.session, Session::Clear))
        };
        let was_clear = in_clear(self);
        // Finish a line begun in an earlier read.
        let pending = self.conns[i].as_ref().is_some_and(|c| !c.carry.is_empty());
        if pending {
            let Some(nl) = memchr::memchr(b'\n', bytes) else {
                if let Some(c) = self.conns[i].as_mut() {
                    c.carry.extend_from_slice(bytes);
                }
                return &[];
            };
            let mut line = match self.conns[i].as_mut() {
                Some(c) => std::mem::take(&mut c.carry),
                None => return &[],
            };
            line.extend_from_slice(&bytes[..nl]);
            self.on_line(i, &line, now);
            bytes = &bytes[nl + 1..];
            if let Some(c) = self.conns[i].as_mut() {
                line.clear();
                c.carry = line;
            }
            if was_clear && !in_clear(self) {
                return bytes;
            }
        }
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            self.on_line(i, &bytes[..nl], now);
            bytes = &bytes[nl + 1..];
            if was_clear && !in_clear(self) {
                return bytes;
            }
        }
        if !bytes.is_empty() {
            if let Some(c) = self.conns[i].as_mut() {
                c.carry.extend_from_slice(bytes);
            }
        }
        &[]
    }

    fn on_line(&mut self, i: usize, line: &[u8], now: u64) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        match c.phase {
            Phase::Joined => {
                if let Some(text) = message_text(line) {
                    if !self.messaging {
                        return;
                    }
                    let Some((seq, sender, sent)) = parse_stamp(text) else {
                        return;
                    };
                    if let Some(&from) = self.sender_rooms.get(sender as usize) {
                        if from != c.room {
                            self.misrouted += 1;
                            return;
                        }
                    }
                    if let Some(next) = c.next_seq.get_mut(sender as usize) {
                        if seq < *next {
                            self.out_of_order += 1;
                        }
                        *next = seq + 1;
                    }
                    c.got += 1;
                    if c.got == c.expect {
                        self.receivers_done += 1;
                    }
                    self.delivered += 1;
                    let latency = now.saturating_sub(sent);
                    match self.split {
                        Some(half) if seq >= half => self.latencies_late.push(latency),
                        _ => self.latencies.push(latency),
                    }
                } else if line.starts_with(b"{\"type\": \"system\"") && !self.messaging {
                    self.join_notices += 1;
                } else if line.starts_with(b"{\"type\": \"room\"") {
                    let Some(room) = wanted_room(self.sc, c) else {
                        return;
                    };
                    if memchr::memmem::find(line, format!("\"room\": \"{room}\"").as_bytes())
                        .is_some()
                    {
                        c.room_lines += 1;
                        if c.room_lines == 1 {
                            self.in_rooms += 1;
                            self.last_in_room = Instant::now();
                        }
                    }
                } else if line.starts_with(b"{\"type\": \"history\"")
                    && self.sc.join_room.is_some()
                    && !c.history_ok
                    && history_records(line) >= self.sc.expect_history
                {
                    c.history_ok = true;
                    self.histories += 1;
                    self.last_history = Instant::now();
                }
            }
            Phase::AwaitRequest => {
                if line.starts_with(b"{\"type\": \"auth_request\"") {
                    if self.sc.wire == Wire::Encrypted {
                        let seed = client_seed(self.key_seed, i);
                        return match start_handshake(line, seed) {
                            Ok((session, first)) => {
                                c.session = session;
                                c.out.extend_from_slice(&first);
                                self.pump(i);
                            }
                            Err(why) => self.kill(i, why),
                        };
                    }
                    c.phase = Phase::AwaitOk;
                    let login =
                        login_line(&format!("{}{i}", self.prefix), self.sc.password.as_deref());
                    c.out.extend_from_slice(login.as_bytes());
                    self.pump(i);
                } else if line.starts_with(b"{\"type\": \"auth_fail\"") {
                    let why = String::from_utf8_lossy(line).into_owned();
                    self.kill(i, why);
                }
            }
            Phase::AwaitOk => {
                if line.starts_with(b"{\"type\": \"auth_ok\"") {
                    c.phase = Phase::Joined;
                    self.joined += 1;
                    self.in_flight -= 1;
                    self.last_join = Instant::now();
                    if let Some(k) = c.room {
                        self.say(i, lantalk_core::rooms::LOBBY, &format!("/join #r{k}"));
                    }
                } else if line.starts_with(b"{\"type\": \"auth_fail\"") {
                    let why = String::from_utf8_lossy(line).into_owned();
                    self.kill(i, why);
                }
            }
            Phase::Connecting | Phase::Dead => {}
        }
    }

    /// Encodes messages (senders) and writes until the socket is full.
    fn pump(&mut self, i: usize) {
        let messaging = self.messaging;
        let now = self.now_ns();
        let size = self.sc.size;
        // Paced: only the messages due by now (the first at once).
        let total = match self.sc.rate {
            Some(rate) if rate > 0.0 => {
                let secs = now.saturating_sub(self.msg_t0) as f64 / 1e9;
                self.sc.messages.min((secs * rate) as usize + 1)
            }
            _ => self.sc.messages,
        };
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        loop {
            if c.out_pos == c.out.len() {
                c.out.clear();
                c.out_pos = 0;
                match c.sender {
                    Some(k) if messaging && c.produced < total => {
                        while c.produced < total && c.out.len() < SEND_AHEAD {
                            if matches!(c.session, Session::Secure { .. }) {
                                // One frame per line, as our client sends.
                                let mut line = Vec::with_capacity(size + 64);
                                let room = c.room;
                                encode_message(&mut line, c.produced as u32, k, now, size, room);
                                seal(c, &line);
                            } else {
                                encode_message(&mut c.out, c.produced as u32, k, now, size, None);
                            }
                            c.produced += 1;
                        }
                    }
                    _ => return,
                }
            }
            match c.sock.write(&c.out[c.out_pos..]) {
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.kill(i, format!("write: {e}")),
            }
        }
    }

    fn kill(&mut self, i: usize, why: String) {
        let Some(mut c) = self.conns[i].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        match c.phase {
            Phase::Connecting | Phase::AwaitRequest | Phase::AwaitOk => {
                self.in_flight -= 1;
                self.fail_join(why);
            }
            Phase::Joined => {
                if self.messaging && c.got < c.expect {
                    self.lost += 1;
                }
            }
            Phase::Dead => {}
        }
        c.phase = Phase::Dead;
    }
}

/// The room whose `room` lines `c` counts.
fn wanted_room(sc: &Scenario, c: &Conn) -> Option<String> {
    match (&sc.join_room, c.room) {
        (Some(room), _) => Some(room.clone()),
        (None, Some(k)) => Some(format!("#r{k}")),
        (None, None) => None,
    }
}

/// A distinct 32-byte seed per client and run.
fn client_seed(run: u64, i: usize) -> [u8; 32] {
    let mut seed = [0u8; 32];
    let mut x = run ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in seed.chunks_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    seed
}

/// Answers an `auth_request` (without its newline) that offers encryption:
/// the session in its handshake, and the bytes to send (the hello and the
/// first handshake message), as our client does.
fn start_handshake(request: &[u8], seed: [u8; 32]) -> Result<(Session, Vec<u8>), String> {
    let request_json: serde_json::Value =
        serde_json::from_slice(request).map_err(|e| format!("auth_request: {e}"))?;
    let Some(suite) = Offer::from_json(&request_json["secure"]).and_then(|o| o.choose()) else {
        return Err("the server offers no encryption we speak".into());
    };
    let mut offer_line = request.to_vec();
    offer_line.push(b'\n');
    let hello = secure::hello_line(suite);
    let prologue = secure::prologue(&offer_line, hello.as_bytes());
    let identity = StaticKey::from_private(seed);
    let mut noise = secure::handshake(true, &identity, &prologue, seed, suite)
        .map_err(|e| format!("handshake: {e}"))?;
    let mut buf = [0u8; secure::MAX_HANDSHAKE];
    let n = noise
        .write_message(&[], &mut buf)
        .map_err(|e| format!("handshake: {e}"))?;
    let mut out = hello.into_bytes();
    out.extend_from_slice(&secure::frame(&buf[..n]));
    let session = Session::Handshake {
        noise: Box::new(noise),
        frames: FrameBuffer::default(),
    };
    Ok((session, out))
}

/// Reads the server's handshake message; returns our last one, framed.
fn finish_handshake(
    noise: &mut snow::HandshakeState,
    frame: &[u8],
    scratch: &mut [u8],
) -> Result<Vec<u8>, String> {
    noise
        .read_message(frame, scratch)
        .map_err(|e| format!("the server's handshake message: {e}"))?;
    let mut buf = [0u8; secure::MAX_HANDSHAKE];
    let n = noise
        .write_message(&[], &mut buf)
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(secure::frame(&buf[..n]))
}

/// Feeds `bytes` to a connection that has left the clear: finishes the
/// handshake when the server's message is complete (queueing our last message
/// and the login, sealed), and appends what every sealed frame holds to
/// `opened`. True if it queued output.
fn open_frames(
    c: &mut Conn,
    i: usize,
    prefix: &str,
    bytes: &[u8],
    scratch: &mut [u8],
    opened: &mut Vec<u8>,
) -> Result<bool, String> {
    c.session = match std::mem::replace(&mut c.session, Session::Clear) {
        Session::Handshake {
            mut noise,
            mut frames,
        } => {
            frames.push(bytes);
            let Some(frame) = frames.next_frame() else {
                c.session = Session::Handshake { noise, frames };
                return Ok(false);
            };
            let last = finish_handshake(&mut noise, frame, scratch)?;
            if frames.buffered() > 0 {
                // Nothing may follow until our last handshake message.
                return Err("the server spoke out of turn in the handshake".into());
            }
            let transport = noise
                .into_transport_mode()
                .map_err(|e| format!("handshake: {e}"))?;
            c.out.extend_from_slice(&last);
            c.phase = Phase::AwaitOk;
            let mut session = Session::Secure {
                noise: Box::new(transport),
                partial: Vec::new(),
            };
            let login = lantalk_core::protocol::secure_login(&format!("{prefix}{i}"), None);
            if let Session::Secure { noise, .. } = &mut session {
                // Fails only after 2^64 messages.
                let _ = secure::seal_into(noise, login.as_bytes(), &mut c.out);
            }
            c.session = session;
            return Ok(true);
        }
        Session::Secure {
            mut noise,
            mut partial,
        } => {
            open_sealed(&mut noise, &mut partial, bytes, scratch, opened)?;
            Session::Secure { noise, partial }
        }
        Session::Clear => return Ok(false),
    };
    Ok(false)
}

/// Opens every whole frame in `partial` + `input` into `opened`, and keeps
/// what is left of an unfinished frame in `partial`.
fn open_sealed(
    noise: &mut snow::TransportState,
    partial: &mut Vec<u8>,
    mut input: &[u8],
    scratch: &mut [u8],
    opened: &mut Vec<u8>,
) -> Result<(), String> {
    let mut open = |frame: &[u8]| -> Result<(), String> {
        let n = noise
            .read_message(frame, scratch)
            .map_err(|e| format!("a frame did not open: {e}"))?;
        opened.extend_from_slice(&scratch[..n]);
        Ok(())
    };
    // The size of the frame `p` begins: its header first, then the rest.
    let wanted = |p: &[u8]| match p {
        [a, b, ..] => 2 + usize::from(u16::from_be_bytes([*a, *b])),
        _ => 2,
    };
    while !partial.is_empty() {
        let take = (wanted(partial) - partial.len()).min(input.len());
        partial.extend_from_slice(&input[..take]);
        input = &input[take..];
        if partial.len() == wanted(partial) {
            open(&partial[2..])?;
            partial.clear();
        } else if input.is_empty() {
            return Ok(());
        }
    }
    while input.len() >= 2 {
        let end = wanted(input);
        if input.len() < end {
            break;
        }
        open(&input[2..end])?;
        input = &input[end..];
    }
    partial.extend_from_slice(input);
    Ok(())
}

/// Seals `line` onto the connection's output.
fn seal(c: &mut Conn, line: &[u8]) {
    if let Session::Secure { noise, .. } = &mut c.session {
        // Fails only after 2^64 messages.
        let _ = secure::seal_into(noise, line, &mut c.out);
    }
}

/// `{"type": "message", "text": "<seq> <sender> <nanos> xxxx…"}\n`, the text
/// padded to `size` bytes; with a room, `"room": "#r<room>"` after the text
/// (as `protocol::chat_in` writes it).
fn encode_message(
    out: &mut Vec<u8>,
    seq: u32,
    sender: u32,
    nanos: u64,
    size: usize,
    room: Option<u32>,
) {
    out.extend_from_slice(b"{\"type\": \"message\", \"text\": \"");
    let start = out.len();
    let _ = write!(out, "{seq} {sender} {nanos} ");
    while out.len() - start < size {
        out.push(b'x');
    }
    match room {
        Some(k) => {
            let _ = writeln!(out, "\", \"room\": \"#r{k}\"}}");
        }
        None => out.extend_from_slice(b"\"}\n"),
    }
}

/// The records in a `history` line (each is an object that starts with its
/// id).
fn history_records(line: &[u8]) -> usize {
    memchr::memmem::find_iter(line, b"{\"id\": ").count()
}

/// The raw `text` of a chat message line, or `None` for any other line.
/// Both servers write `{"type": "message", "ts": "HH:MM", "user": "…", "text": "…"}`.
fn message_text(line: &[u8]) -> Option<&[u8]> {
    const HEAD: &[u8] = b"{\"type\": \"message\", \"ts\": \"";
    if !line.starts_with(HEAD) {
        return None;
    }
    const KEY: &[u8] = b"\"text\": \"";
    // Skip `HH:MM", "user": "` and the user name, which our clients choose
    // (no quotes or escapes in it).
    let rest = line.get(HEAD.len() + 5 + 12..)?;
    let quote = rest.iter().position(|&b| b == b'"')?;
    let after = &rest[quote..];
    let at = if after.get(3..3 + KEY.len()) == Some(KEY) {
        3 + KEY.len()
    } else {
        // Some other field order: search.
        after.windows(KEY.len()).position(|w| w == KEY)? + KEY.len()
    };
    Some(&after[at..])
}

/// Parses `<seq> <sender> <nanos> ` at the start of a message's text.
fn parse_stamp(text: &[u8]) -> Option<(u32, u32, u64)> {
    let mut fields = text.splitn(4, |&b| b == b' ');
    let num = |f: Option<&[u8]>| -> Option<u64> {
        let f = f?;
        if f.is_empty() || f.len() > 19 {
            return None;
        }
        f.iter().try_fold(0u64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
        })
    };
    let seq = num(fields.next())? as u32;
    let sender = num(fields.next())? as u32;
    let nanos = num(fields.next())?;
    Some((seq, sender, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stamp_in_both_servers_lines() {
        let mut out = Vec::new();
        encode_message(&mut out, 7, 3, 123_456, 32, None);
        let sent = String::from_utf8(out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
        let text = v["text"].as_str().unwrap();
        assert_eq!(text.len(), 32);
        let line = format!(
            "{{\"type\": \"message\", \"ts\": \"14:02\", \"user\": \"u17\", \"text\": \"{text}\"}}"
        );
        let got = message_text(line.as_bytes()).unwrap();
        assert_eq!(parse_stamp(got), Some((7, 3, 123_456)));
        assert_eq!(
            message_text(b"{\"type\": \"system\", \"ts\": \"14:02\", \"text\": \"x\"}"),
            None
        );
    }

    /// A client and server session after a handshake, the same every time.
    fn pair() -> (snow::TransportState, snow::TransportState) {
        let pro = secure::prologue(b"offer\n", b"hello\n");
        let key = |b| StaticKey::from_private([b; 32]);
        let suite = secure::Suite::AesGcm;
        let mut c = secure::handshake(true, &key(2), &pro, [3; 32], suite).unwrap();
        let mut s = secure::handshake(false, &key(1), &pro, [4; 32], suite).unwrap();
        let (mut a, mut b) = ([0u8; 512], [0u8; 512]);
        let n = c.write_message(&[], &mut a).unwrap();
        s.read_message(&a[..n], &mut b).unwrap();
        let n = s.write_message(&[], &mut a).unwrap();
        c.read_message(&a[..n], &mut b).unwrap();
        let n = c.write_message(&[], &mut a).unwrap();
        s.read_message(&a[..n], &mut b).unwrap();
        (
            c.into_transport_mode().unwrap(),
            s.into_transport_mode().unwrap(),
        )
    }

    #[test]
    fn frames_open_however_reads_split_them() {
        let lines: [&[u8]; 3] = [b"one\n", b"two two\n", &[b'x'; 300]];
        let mut wire = Vec::new();
        let (_, mut server) = pair();
        for line in lines {
            secure::seal_into(&mut server, line, &mut wire).unwrap();
        }
        for size in 1..=wire.len() {
            let (mut client, _) = pair();
            let (mut partial, mut opened) = (Vec::new(), Vec::new());
            let mut scratch = vec![0; secure::MAX_FRAME];
            for chunk in wire.chunks(size) {
                open_sealed(&mut client, &mut partial, chunk, &mut scratch, &mut opened).unwrap();
            }
            assert_eq!(opened, lines.concat(), "reads of {size} bytes");
            assert!(partial.is_empty());
        }
    }

    #[test]
    fn login_lines_carry_the_password_as_json() {
        let line = login_line("u1", Some("p\"w\\"));
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (v["username"].as_str(), v["password"].as_str()),
            (Some("u1"), Some("p\"w\\"))
        );
        let v: serde_json::Value = serde_json::from_str(&login_line("u2", None)).unwrap();
        assert_eq!(v["password"].as_str(), Some(""));
    }

    #[test]
    fn room_deliveries_count_the_senders_room_only() {
        // 6 clients in 3 rooms (round robin: 0 3 | 1 4 | 2 5), senders 0, 1
        // and 3, 10 messages each.
        let rooms: Vec<Option<u32>> = (0..6).map(|i| Some(room_of(i, 3))).collect();
        assert_eq!(rooms[3], Some(0));
        let got = expected_deliveries(&rooms, &[0, 1, 3], 10);
        // #r0: 0 hears 3, 3 hears 0; #r1: 4 hears 1, 1 hears nobody; #r2: nobody.
        assert_eq!(got, vec![10, 0, 0, 10, 10, 0]);
        // One room, or none: everyone hears every sender but themselves.
        let one: Vec<Option<u32>> = (0..4).map(|i| Some(room_of(i, 1))).collect();
        assert_eq!(expected_deliveries(&one, &[0, 1], 5), vec![5, 5, 10, 10]);
        assert_eq!(
            expected_deliveries(&[None; 4], &[0, 1], 5),
            vec![5, 5, 10, 10]
        );
        // 1000 clients, 10 senders (the first 10): 10 rooms of 100 against one of 1000.
        let total = |n: usize| -> u64 {
            let rooms: Vec<Option<u32>> = (0..1000).map(|i| Some(room_of(i, n))).collect();
            let senders: Vec<usize> = (0..10).collect();
            expected_deliveries(&rooms, &senders, 200).iter().sum()
        };
        assert_eq!(total(10), 10 * 200 * 99);
        assert_eq!(total(1), 10 * 200 * 999);
    }

    #[test]
    fn room_messages_carry_their_room() {
        let mut out = Vec::new();
        encode_message(&mut out, 1, 2, 3, 16, Some(7));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["room"].as_str(), Some("#r7"));
        let ours = lantalk_core::protocol::chat_in("#r7", v["text"].as_str().unwrap(), false);
        assert_eq!(String::from_utf8(out).unwrap(), ours);
        let line = br##"{"type": "history", "room": "#r", "reason": "join", "messages": [{"id": 1, "at": 2, "user": "a", "text": "x"}, {"id": 2, "at": 3, "user": "a", "text": "y"}], "more": false}"##;
        assert_eq!(history_records(line), 2);
    }

    #[test]
    fn rooms_need_our_clients() {
        let sc = Scenario {
            rooms: Some(10),
            ..Scenario::default()
        };
        assert!(sc.check().is_err());
        let sc = Scenario {
            wire: Wire::Encrypted,
            ..sc
        };
        assert!(sc.check().is_ok());
        let sc = Scenario {
            rooms: None,
            join_room: Some("not a room".into()),
            ..sc
        };
        assert!(sc.check().is_err());
    }

    #[test]
    fn percentiles_of_a_known_set() {
        let mut v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        let p = percentiles(&mut v).unwrap();
        assert_eq!((p.p50_us, p.p99_us, p.max_us), (50.0, 99.0, 100.0));
    }
}
