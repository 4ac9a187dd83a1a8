//! A deterministic plaintext fan-out through the core alone, for counting
//! instructions (not time) per delivery: `users` logged-in users, `senders`
//! of them each send `rounds` 64-byte chat lines (one line per sender per
//! round, in turn), and every action is drained after each line, as a
//! runtime does. Nothing is printed inside the measured part.
//!
//! ```sh
//! cargo build --release -p lantalk-core --example fanout_count
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='fanout_count::measure*' \
//!     --callgrind-out-file=fanout.cg target/release/examples/fanout_count
//! callgrind_annotate fanout.cg | head -40
//! ```
//!
//! Instructions per delivery = the total `Ir` of the collected part ÷
//! deliveries (printed by the driver: senders × rounds × (users − 1)).
//! Arguments, all optional: `users senders rounds [chat-events]` (defaults
//! 100 10 200; the chat debug event is off by default, as in a server that
//! does not log at debug level).
//!
//! The example only uses API that has not changed since `abf5872`, so the
//! same file builds against older commits for an A/B comparison.

use std::hint::black_box;

use lantalk_core::{Action, ConnId, Now, Server, ServerConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next = |default: usize| {
        args.next()
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let users = next(100);
    let senders = next(10);
    let rounds = next(200);
    let chat_events = next(0) != 0;
    assert!(senders <= users && users >= 2);

    let config = ServerConfig {
        rate_limit: None,
        max_clients: users + 1,
        chat_events,
        ..ServerConfig::default()
    };
    let start = Now::from_secs_f64(0.0);
    let mut server = Server::new(config, start, Default::default());
    let mut conns = Vec::new();
    for i in 0..users {
        let addr = format!("127.0.0.1:{}", 10_000 + i).parse().unwrap();
        let conn = server.handle_connect(start, addr);
        let login = format!("{{\"username\": \"user{i}\", \"password\": \"\"}}\n");
        server.handle_input(start, conn, login.as_bytes()).unwrap();
        while server.poll_action().is_some() {}
        conns.push(conn);
    }
    // One line per sender, 64 bytes of text each, as lantalk-bench sends.
    let lines: Vec<Vec<u8>> = (0..senders)
        .map(|s| {
            let text = format!("{s:02}{}", "x".repeat(62));
            format!("{{\"type\": \"message\", \"text\": \"{text}\"}}\n").into_bytes()
        })
        .collect();
    let (sends, bytes) = measure(&mut server, &conns[..senders], &lines, rounds);
    let deliveries = senders * rounds * (users - 1);
    println!(
        "users {users}, senders {senders}, rounds {rounds}, chat events {chat_events}: \
         {deliveries} deliveries expected, {sends} sends, {bytes} bytes"
    );
}

/// The measured part: every sender sends one line per round, and the
/// actions are drained after each line. Returns sends and bytes queued.
#[inline(never)]
fn measure(server: &mut Server, from: &[ConnId], lines: &[Vec<u8>], rounds: usize) -> (u64, u64) {
    let mut sends = 0u64;
    let mut bytes = 0u64;
    for round in 0..rounds {
        // A millisecond per round, so the core's clock moves as a runtime's does.
        let now = Now::from_secs_f64(1.0 + round as f64 / 1000.0);
        for (conn, line) in from.iter().zip(lines) {
            server.handle_input(now, *conn, line).unwrap();
            // Taken apart as a runtime does (`driver::deliver_actions`).
            while let Some(action) = server.poll_action() {
                match action {
                    Action::Send { bytes: b, .. } => {
                        sends += 1;
                        bytes += b.len() as u64;
                        black_box(b);
                    }
                    other => drop(black_box(other)),
                }
            }
        }
    }
    (sends, bytes)
}
