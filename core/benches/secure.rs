//! What encryption costs: a full handshake (with and without the password
//! check), and fan-out of one message to many users, encrypted against
//! plaintext, per recipient.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lantalk_core::client::{Client, ClientAction, ClientConfig, ClientSecure, NewKey};
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::secure::{StaticKey, Suite};
use lantalk_core::server::{Action, ConnId, SecureConfig};
use lantalk_core::{Now, Server, ServerConfig};

fn server(password: Option<&str>, max_clients: usize) -> Server {
    server_with(password, max_clients, Vec::new())
}

/// A server offering `suites` (empty: ChaCha20-Poly1305 only).
fn server_with(password: Option<&str>, max_clients: usize, suites: Vec<Suite>) -> Server {
    let config = ServerConfig {
        rate_limit: None,
        max_clients,
        password: password.map(|p| PasswordHash::new(p, [3; 16], HashParams::INSECURE_FAST)),
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([1; 32]),
            rng_seed: [2; 32],
            suites,
        }),
        ..ServerConfig::default()
    };
    Server::new(config, Now::from_secs_f64(0.0), Default::default())
}

fn client(name: &str, password: Option<&str>, seed: u8) -> Client {
    let mut config = ClientConfig::new(name, password.map(str::to_string));
    config.secure = Some(ClientSecure {
        identity: StaticKey::from_private([seed; 32]),
        rng_seed: [seed; 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    Client::new(config, Now::from_secs_f64(0.0))
}

/// Connects a client to `server` and runs the session until it has joined;
/// the client is returned so it can keep its session.
fn join(server: &mut Server, mut c: Client, port: u16) -> (ConnId, Client) {
    let now = Now::from_secs_f64(0.0);
    let conn = server.handle_connect(
        now,
        format!("10.0.{}.{}:1", port / 250, port % 250 + 1)
            .parse()
            .unwrap(),
    );
    loop {
        let mut moved = false;
        while let Some(a) = server.poll_action() {
            moved = true;
            if let Action::Send { conn: to, bytes } = a {
                if to == conn {
                    c.handle_input(now, &bytes);
                }
            }
        }
        while let Some(a) = c.poll_action() {
            moved = true;
            if let ClientAction::Send(bytes) = a {
                server.handle_input(now, conn, &bytes).unwrap();
            }
        }
        if !moved {
            break;
        }
    }
    assert!(c.is_joined());
    (conn, c)
}

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.sample_size(20);
    for password in [None, Some("hunter2")] {
        let label = if password.is_some() {
            "with_password"
        } else {
            "no_password"
        };
        let mut s = server(password, 1_000_000);
        let mut port = 0u16;
        group.bench_function(label, |b| {
            b.iter(|| {
                port = port.wrapping_add(1);
                let (conn, c) = join(&mut s, client("bench", password, 9), port);
                black_box(&c);
                let _ = s.handle_disconnect(
                    Now::from_secs_f64(0.0),
                    conn,
                    lantalk_core::server::DisconnectCause::PeerClosed,
                );
                while s.poll_action().is_some() {}
            })
        });
    }
    group.finish();
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_per_recipient");
    for users in [10usize, 100, 1000] {
        for encrypted in [false, true] {
            let mut s = server(None, users + 1);
            fill(&mut s, users, encrypted);
            // The operator's line fans out to every user: encoded once, then
            // shared (plaintext) or sealed per session (encrypted).
            let label = if encrypted { "encrypted" } else { "plaintext" };
            group.throughput(Throughput::Elements(users as u64));
            group.bench_with_input(BenchmarkId::new(label, users), &users, |b, _| {
                b.iter(|| {
                    s.handle_console(Now::from_secs_f64(1.0), MESSAGE);
                    let mut n = 0;
                    while let Some(a) = s.poll_action() {
                        black_box(&a);
                        n += 1;
                    }
                    n
                })
            });
        }
    }
    group.finish();
}

/// A member's read of ten chat lines, fanned out to a room of 100: every
/// encrypted recipient gets the ten lines sealed in one frame, so this is
/// the cost per delivery when messages arrive faster than one per read.
/// Encrypted with either suite: ChaCha20-Poly1305, and AES-256-GCM (which
/// uses the CPU's AES instructions where there are any).
fn fanout_batched(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_per_delivery_10_line_read");
    let users = 100;
    let lines = 10;
    for (label, suite) in [
        ("plaintext", None),
        ("encrypted_chachapoly", Some(Suite::ChaChaPoly)),
        ("encrypted_aesgcm", Some(Suite::AesGcm)),
    ] {
        let mut s = server_with(None, users + 2, suite.into_iter().collect());
        fill(&mut s, users, suite.is_some());
        // The sender speaks LanTalk 2.0, so its lines cost no decryption.
        let sender = plain_join(&mut s, "sender", users);
        while s.poll_action().is_some() {}
        let read = format!("{{\"type\": \"message\", \"text\": \"{MESSAGE}\"}}\n").repeat(lines);
        group.throughput(Throughput::Elements((users * lines) as u64));
        group.bench_function(label, |b| {
            b.iter(|| {
                s.handle_input(Now::from_secs_f64(1.0), sender, read.as_bytes())
                    .unwrap();
                let mut n = 0;
                while let Some(a) = s.poll_action() {
                    black_box(&a);
                    n += 1;
                }
                n
            })
        });
    }
    group.finish();
}

/// Joins `users` users, each on an encrypted session or in plaintext.
fn fill(s: &mut Server, users: usize, encrypted: bool) {
    for i in 0..users {
        let name = format!("u{i}");
        if encrypted {
            join(s, client(&name, None, (i % 200) as u8 + 1), i as u16);
        } else {
            plain_join(s, &name, i);
        }
        while s.poll_action().is_some() {}
    }
}

/// Logs `name` in as a LanTalk 2.0 client would.
fn plain_join(s: &mut Server, name: &str, i: usize) -> ConnId {
    let now = Now::from_secs_f64(0.0);
    let addr = format!("10.1.{}.{}:1", i / 250, i % 250 + 1);
    let conn = s.handle_connect(now, addr.parse().unwrap());
    let login = format!("{{\"username\": \"{name}\", \"password\": \"\"}}\n");
    s.handle_input(now, conn, login.as_bytes()).unwrap();
    conn
}

/// 64 bytes of chat.
const MESSAGE: &str = "0123456789012345678901234567890123456789012345678901234567890123";

criterion_group!(benches, handshake, fanout, fanout_batched);
criterion_main!(benches);
