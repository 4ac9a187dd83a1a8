//! A small load run against both binaries, in plaintext and encrypted: 20
//! clients join, 2 of them send 50 messages each as fast as their sockets
//! accept them, and every other client must receive every one of them, in
//! order per sender.
//!
//! This checks delivery, not speed: nothing here asserts on timing (the
//! machine is shared and noisy). Throughput and latency are measured by hand
//! with `lantalk-bench` and recorded in BENCHMARKS.md.

use std::time::Duration;

use lantalk_bench::{load, Scenario, ServerProc, Wire};

fn small_load(bin: &str, wire: Wire) {
    let clients = 20;
    let server = ServerProc::start_binary(bin.as_ref(), clients + 16, wire)
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let scenario = Scenario {
        clients,
        senders: 2,
        messages: 50,
        size: 64,
        // Generous: a passing run takes milliseconds.
        timeout: Duration::from_secs(30),
        wire,
        ..Scenario::default()
    };
    let report = load::run(bin, server.addr, server.pid, &scenario).expect("load run");
    let detail = serde_json::to_string_pretty(&report).unwrap_or_default();
    assert_eq!(report.joined, clients, "every client joins\n{detail}");
    assert_eq!(report.join_failures, 0, "no login fails\n{detail}");
    assert_eq!(
        report.expected,
        (clients as u64 - 1) * 2 * 50,
        "each message is meant for every other client\n{detail}"
    );
    assert_eq!(
        report.delivered, report.expected,
        "every message is delivered to everyone else\n{detail}"
    );
    assert_eq!(report.out_of_order, 0, "per-sender order is kept\n{detail}");
    assert_eq!(report.lost_clients, 0, "nobody is disconnected\n{detail}");
    assert!(!report.timed_out, "the run finished\n{detail}");
}

#[test]
fn smol_delivers_every_message() {
    small_load(env!("CARGO_BIN_EXE_lantalk-smol"), Wire::Plain);
}

#[test]
fn std_delivers_every_message() {
    small_load(env!("CARGO_BIN_EXE_lantalk-std"), Wire::Plain);
}

#[test]
fn smol_delivers_every_encrypted_message() {
    small_load(env!("CARGO_BIN_EXE_lantalk-smol"), Wire::Encrypted);
}

#[test]
fn std_delivers_every_encrypted_message() {
    small_load(env!("CARGO_BIN_EXE_lantalk-std"), Wire::Encrypted);
}
