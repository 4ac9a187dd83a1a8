//! The history store under load: search and paging over a million stored
//! messages, appends through the writer, and opening a large history.
//!
//! The million-message database is built once, through the Writer, in
//! `<temp dir>/lantalk-store-bench-1m-v1/` and reused by later runs (a
//! marker file says it is complete); delete that directory to rebuild it.
//! Every query goes through `Store::query_blocking`, so the figures include
//! the hand-over to the store's threads, as a server would see it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lantalk_store::{Kind, Options, Record, Request, Scope, Store};

const MESSAGES: u64 = 1_000_000;
const ROOMS: u64 = 20;
const PAGE: usize = 50;

/// A small deterministic generator (xorshift64*), so every build of the
/// corpus is the same and the bench needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Made-up words from syllables: a vocabulary of a few thousand, drawn with
/// a skew (a few words are everywhere, most are rare), like chat.
fn vocabulary() -> Vec<String> {
    let syllables = [
        "ka", "lo", "mi", "ne", "to", "ra", "su", "vi", "de", "po", "ba", "ge", "fu", "zo", "ri",
        "ma", "te", "lu", "sa", "no",
    ];
    let mut words = Vec::new();
    for a in syllables {
        for b in syllables {
            words.push(format!("{a}{b}"));
            for c in ["n", "s", "x", "ll", "rt"] {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

fn room(n: u64) -> Scope {
    Scope::room(&format!("#room{n}"))
}

/// The text of message `id`. Planted words with known frequencies make the
/// searches below mean something:
/// * `deploy`: one message in 20 (a common word), in every room;
/// * `build failed`: one in 100 (a phrase);
/// * `needle`: one in 1000 (a rare word: 50 per room, so a page of 50
///   looks at every match in the history);
/// * `onlyinzero`: one in 100 overall, all in `#room0` (one in five of its
///   messages); searched for in another room it is the worst case: all
///   10,000 matches are looked at and none kept.
fn text(rng: &mut Rng, words: &[String], id: u64) -> String {
    let mut text = String::new();
    let n = 4 + rng.below(12);
    for _ in 0..n {
        // Skewed: the square of a uniform draw favours the first words.
        let u = rng.below(1 << 16);
        let i = ((u * u * words.len() as u64) >> 32) as usize;
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&words[i]);
    }
    if rng.below(20) == 0 {
        text.push_str(" deploy");
    }
    if rng.below(100) == 0 {
        text.push_str(", build failed!");
    }
    if rng.below(1000) == 0 {
        text.push_str(" needle");
    }
    if id.is_multiple_of(ROOMS) && rng.below(5) == 0 {
        text.push_str(" onlyinzero");
    }
    text
}

/// The million-message history, built on first use.
fn corpus() -> PathBuf {
    let dir = std::env::temp_dir().join("lantalk-store-bench-1m-v1");
    let db = dir.join("history.db");
    let complete = dir.join("complete");
    if complete.exists() {
        return db;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("building {MESSAGES} messages in {} (once)...", db.display());
    let start = Instant::now();
    let store = Store::open(&db, Options::default()).unwrap();
    let words = vocabulary();
    let mut rng = Rng(0x5eed);
    for id in 1..=MESSAGES {
        store.append(Record {
            id,
            at_ms: 1_700_000_000_000 + id as i64 * 1000,
            scope: room(id % ROOMS),
            from: format!("user{}", id % 97),
            kind: Kind::Message,
            text: text(&mut rng, &words, id),
        });
    }
    drop(store);
    std::fs::write(&complete, "").unwrap();
    eprintln!("built in {:.1?}", start.elapsed());
    db
}

fn search(store: &Store, scope: Scope, text: &str) -> usize {
    store
        .query_blocking(Request::Search {
            scope,
            text: text.into(),
            before: None,
            limit: PAGE,
        })
        .unwrap()
        .len()
}

fn queries(c: &mut Criterion) {
    let db = corpus();
    let store = Store::open(&db, Options::default()).unwrap();
    assert_eq!(store.last_id(), MESSAGES);

    let mut group = c.benchmark_group("search_1m");
    group.sample_size(30);
    // (name, room searched, text, whether it finds anything)
    let cases = [
        ("common_word", room(3), "deploy", true),
        ("phrase", room(7), "build failed", true),
        ("rare_word", room(11), "needle", true),
        ("absent_in_room", room(1), "onlyinzero", false),
    ];
    for (name, scope, text, finds) in cases {
        let found = search(&store, scope.clone(), text);
        eprintln!("search_1m/{name}: {text:?} in {scope:?}: {found} found");
        assert_eq!(found > 0, finds, "{name}");
        group.bench_function(name, |b| b.iter(|| search(&store, scope.clone(), text)));
    }
    group.finish();

    let mut group = c.benchmark_group("page_1m");
    for (name, before) in [("latest", None), ("middle", Some(MESSAGES / 2))] {
        group.bench_with_input(BenchmarkId::new(name, PAGE), &before, |b, before| {
            b.iter(|| {
                let page = store
                    .query_blocking(Request::Page {
                        scope: room(5),
                        before: *before,
                        limit: PAGE,
                    })
                    .unwrap();
                assert_eq!(page.len(), PAGE);
            })
        });
    }
    group.finish();
    drop(store);

    let mut group = c.benchmark_group("open_1m");
    group.sample_size(10);
    group.bench_function("open_and_close", |b| {
        b.iter(|| Store::open(&db, Options::default()).unwrap())
    });
    group.finish();
}

fn appends(c: &mut Criterion) {
    const BURST: u64 = 10_000;
    let dir =
        std::env::temp_dir().join(format!("lantalk-store-bench-append-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(dir.join("history.db"), Options::default()).unwrap();
    let words = vocabulary();
    let mut rng = Rng(0xa11ce);
    let mut id = 0;

    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(BURST));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("writer_burst_then_flush", |b| {
        b.iter(|| {
            for _ in 0..BURST {
                id += 1;
                store.append(Record {
                    id,
                    at_ms: id as i64,
                    scope: room(id % ROOMS),
                    from: "bench".into(),
                    kind: Kind::Message,
                    text: text(&mut rng, &words, id),
                });
            }
            store.flush();
        })
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, queries, appends);
criterion_main!(benches);
