//! How long the core takes to route one chat message: parse, validate, encode
//! once, and queue it for every other user. Also counts heap allocations per
//! routed message, which must not grow with the number of recipients.
//!
//! * `route/1`: parse + validate + route one message to a single recipient,
//!   the fixed cost every message pays.
//! * `parse`: decoding the client's line alone.
//! * `broadcast/N`: one message to N-1 recipients; throughput is per
//!   recipient, so its inverse is the marginal cost of one delivery.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lantalk_core::{ConnId, Now, Server, ServerConfig};

/// Counts allocations so the benchmark can report them per message.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A server with `users` logged-in users; returns it and the first user's id.
fn room(users: usize) -> (Server, ConnId) {
    let config = ServerConfig {
        rate_limit: None,
        max_clients: users + 1,
        ..ServerConfig::default()
    };
    let now = Now::from_secs_f64(0.0);
    let mut server = Server::new(config, now, Default::default());
    let mut first = None;
    for i in 0..users {
        let addr = format!("127.0.0.1:{}", 10_000 + i).parse().unwrap();
        let conn = server.handle_connect(now, addr);
        let login = format!("{{\"username\": \"user{i}\", \"password\": \"\"}}\n");
        server.handle_input(now, conn, login.as_bytes()).unwrap();
        while server.poll_action().is_some() {}
        first.get_or_insert(conn);
    }
    (server, first.unwrap())
}

const LINE: &[u8] = b"{\"type\": \"message\", \"text\": \"0123456789012345678901234567890123456789012345678901234567890123\"}\n";

/// Routes one message and drains the resulting actions.
fn route(server: &mut Server, from: ConnId, now: Now) -> usize {
    server.handle_input(now, from, LINE).unwrap();
    let mut n = 0;
    while let Some(action) = server.poll_action() {
        black_box(&action);
        n += 1;
    }
    n
}

/// Allocations per call of `f`, averaged over `rounds` calls.
fn allocations(rounds: u64, mut f: impl FnMut()) -> f64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..rounds {
        f();
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / rounds as f64
}

fn route_one(c: &mut Criterion) {
    let (mut server, from) = room(2);
    let now = Now::from_secs_f64(1.0);
    let per_msg = allocations(100, || {
        route(&mut server, from, now);
    });
    println!("route/1: {per_msg:.1} allocations per routed message");
    c.bench_function("route/1", |b| b.iter(|| route(&mut server, from, now)));

    let line = &LINE[..LINE.len() - 1];
    let per_parse = allocations(100, || {
        black_box(lantalk_core::protocol::parse_client_line(black_box(line)).ok());
    });
    println!("parse: {per_parse:.1} allocations per line");
    c.bench_function("parse", |b| {
        b.iter(|| lantalk_core::protocol::parse_client_line(black_box(line)))
    });
}

fn broadcast(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast");
    for users in [10usize, 100, 1000, 10_000] {
        let (mut server, from) = room(users);
        let now = Now::from_secs_f64(1.0);
        let per_msg = allocations(100, || {
            route(&mut server, from, now);
        });
        println!("broadcast/{users}: {per_msg:.1} allocations per routed message");
        group.throughput(Throughput::Elements((users - 1) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(users), &users, |b, _| {
            b.iter(|| route(&mut server, from, now))
        });
    }
    group.finish();
}

criterion_group!(benches, route_one, broadcast);
criterion_main!(benches);
