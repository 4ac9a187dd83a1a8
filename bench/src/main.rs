//! `lantalk-bench`: measure LanTalk servers over loopback.
//!
//! ```sh
//! cargo build --release --bins
//! cargo run --release -p lantalk-bench -- --server smol,std,python
//! cargo run --release -p lantalk-bench -- --suite          # everything in BENCHMARKS.md
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lantalk_bench::{load, History, Launch, Report, Scenario, ServerProc, Target, Wire};

#[derive(Parser, Debug)]
#[command(
    about = "Load generator for LanTalk servers: N clients join, S of them send M messages \
             as fast as their sockets accept them, every client reads everything.",
    after_help = "Examples:\n  \
        lantalk-bench --server smol,std,python\n  \
        lantalk-bench --server std --clients 1000 --connect-burst\n  \
        lantalk-bench --server smol --idle --clients 10000\n  \
        lantalk-bench --server 127.0.0.1:5050 --pid 4242   (a server started elsewhere)\n  \
        lantalk-bench --suite                          (the scenarios of BENCHMARKS.md)\n\n\
        Start the servers' binaries first: cargo build --release --bins"
)]
struct Args {
    /// Servers to measure, comma-separated: smol, std, python or IP:PORT.
    #[arg(long, default_value = "smol", value_delimiter = ',')]
    server: Vec<String>,
    /// Clients that join.
    #[arg(long, short = 'n', default_value_t = 100)]
    clients: usize,
    /// How many of the clients send.
    #[arg(long, short = 's', default_value_t = 10)]
    senders: usize,
    /// Messages per sender.
    #[arg(long, short = 'm', default_value_t = 200)]
    messages: usize,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Open every connection at once (default: at most 64 logins in flight).
    #[arg(long)]
    connect_burst: bool,
    /// Only join and stay idle; report the server's memory per connection.
    #[arg(long)]
    idle: bool,
    /// With --idle: seconds the clients stay connected and quiet before the
    /// server's memory is measured (buffers, writer threads and freed heap
    /// the servers give back only once quiet go within about 5 s).
    #[arg(long, default_value_t = 6.0)]
    hold: f64,
    /// Run each measurement this many times and report the median run.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Seconds each phase (join, settle, delivery) may take.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// With an IP:PORT server: its process id, to sample CPU time and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Where lantalk-smol and lantalk-std are [default: target/release].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Python interpreter with lantalk==2.0.0 [default: $LANTALK_PYTHON or
    /// target/interop-venv/bin/python].
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// Encrypted connections (Noise, as our client): our servers then run
    /// without --allow-plaintext. The Python server has no encryption.
    #[arg(long)]
    encrypted: bool,
    /// Print one JSON object per measurement instead of the summary.
    #[arg(long)]
    json: bool,
    /// Run every scenario of BENCHMARKS.md against smol, std and python.
    #[arg(long)]
    suite: bool,
    /// Our servers ask for this password (given with --password-env) and
    /// every client sends it in its login line. Plaintext only: the
    /// generator does not run SPAKE2.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Paced sending: each sender sends this many messages per second
    /// (--messages of them) instead of all at once.
    #[arg(long, value_name = "PER_SEC")]
    rate: Option<f64>,
    /// Plaintext logins with the password (a new connection each: read
    /// auth_request, send the login line, read auth_ok, close), this many per
    /// second on a thread of their own during the second half of a paced
    /// message phase; reports the p99 latency of the messages sent in each
    /// half. Implies --password bench-password and --rate 20 unless given.
    #[arg(long, value_name = "PER_SEC")]
    password_logins_per_sec: Option<f64>,
    /// Also measure the servers built in DIR (another checkout's
    /// target/release), alternating with this build's run by run (A B, B A,
    /// …), and report this build's figures over that build's, run by run.
    #[arg(long, value_name = "DIR")]
    against: Option<PathBuf>,
    /// Name of the --against build in the tables.
    #[arg(long, default_value = "previous")]
    against_label: String,
    /// Name of this build (--bin-dir) in the tables.
    #[arg(long, default_value = "current")]
    label: String,
    /// Rooms (with --encrypted): after logging in, client i joins #r<i mod N>,
    /// senders speak in their room, and each message is expected by the
    /// other members of that room only. Several values (--rooms 10,1) measure
    /// each in turn, run by run, with ratios against the last.
    #[arg(long, value_name = "N", value_delimiter = ',')]
    rooms: Vec<usize>,
    /// How our servers keep history: store (SQLite in the server's own fresh
    /// data directory, the default), memory (--history-keep 0) or none
    /// (--no-history). Several values (--history store,none) measure each in
    /// turn, run by run, with ratios against the last.
    #[arg(
        long,
        value_name = "MODE",
        value_delimiter = ',',
        default_value = "store"
    )]
    history: Vec<History>,
    /// Joining a room with history (with --encrypted): the first client joins
    /// ROOM and says --expect-history lines in it; then every other client
    /// joins ROOM at once; reports the time until the last has its `room` and
    /// its whole `history` line, against the same run's login time.
    #[arg(long, value_name = "ROOM")]
    join_room: Option<String>,
    /// With --join-room: lines of history seeded and waited for.
    #[arg(long, value_name = "N", default_value_t = 50)]
    expect_history: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.suite {
        suite(&args)
    } else if args.against.is_some()
        || args.password_logins_per_sec.is_some()
        || args.rooms.len() > 1
        || args.history.len() > 1
    {
        compare(&args)
    } else {
        single(&args)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn launch(args: &Args, sc: &Scenario) -> Launch {
    let mut l = Launch::from_workspace(sc.clients + 16);
    l.plaintext = sc.wire == Wire::Plain;
    l.password = sc.password.clone();
    l.history = args.history.first().copied().unwrap_or_default();
    if let Some(d) = &args.bin_dir {
        l.bin_dir = d.clone();
    }
    if let Some(p) = &args.python {
        l.python = p.clone();
    }
    l
}

fn scenario(args: &Args) -> Scenario {
    Scenario {
        clients: args.clients,
        senders: args.senders.min(args.clients),
        messages: args.messages,
        size: args.size,
        connect_burst: args.connect_burst,
        idle: args.idle,
        hold: Duration::from_secs_f64(args.hold),
        timeout: Duration::from_secs_f64(args.timeout),
        wire: if args.encrypted {
            Wire::Encrypted
        } else {
            Wire::Plain
        },
        password: args.password.clone().or_else(|| {
            args.password_logins_per_sec
                .map(|_| "bench-password".to_string())
        }),
        rate: args
            .rate
            .or_else(|| args.password_logins_per_sec.map(|_| 20.0)),
        password_logins: args.password_logins_per_sec,
        rooms: args.rooms.first().copied(),
        join_room: args.join_room.clone(),
        expect_history: args.expect_history,
    }
}

/// Runs `sc` against a fresh server `runs` times; returns the median run
/// (by deliveries per second, or by memory per client when idle).
fn measure(args: &Args, target: &Target, sc: &Scenario) -> Result<Report, String> {
    let mut reports = Vec::new();
    for _ in 0..args.runs.max(1) {
        let server = ServerProc::start(target, &launch(args, sc))?;
        let r = load::run(&target.name(), server.addr, server.pid, sc)?;
        drop(server);
        if !args.json {
            eprintln!("  {}", one_line(&r));
        }
        reports.push(r);
    }
    let key = |r: &Report| {
        if sc.idle {
            r.rss_per_client.unwrap_or(0.0)
        } else if sc.join_room.is_some() {
            r.history_ms.unwrap_or(f64::INFINITY)
        } else {
            r.deliveries_per_sec
        }
    };
    reports.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mid = reports.len() / 2;
    Ok(reports.swap_remove(mid))
}

fn single(args: &Args) -> Result<bool, String> {
    let sc = scenario(args);
    sc.check()?;
    let mut reports = Vec::new();
    for s in &args.server {
        let target = Target::parse(s, args.pid)?;
        if !args.json {
            eprintln!("{} …", label(target.name(), sc.wire));
        }
        reports.push(measure(args, &target, &sc)?);
    }
    let all_ok = reports.iter().all(Report::complete);
    if args.json {
        for r in &reports {
            println!("{}", serde_json::to_string(r).map_err(|e| e.to_string())?);
        }
    } else {
        for r in &reports {
            print!("{}", summary(r));
        }
        if reports.len() > 1 {
            print!("{}", table(&title(&sc), &reports));
        }
    }
    Ok(all_ok)
}

/// The scenarios of the issue, each against every server.
fn suite(args: &Args) -> Result<bool, String> {
    let base = Scenario {
        timeout: Duration::from_secs_f64(args.timeout.max(120.0)),
        ..Scenario::default()
    };
    let fanout = Scenario {
        clients: 100,
        senders: 10,
        messages: 200,
        ..base.clone()
    };
    let light = Scenario {
        clients: 20,
        senders: 2,
        messages: 50,
        ..base.clone()
    };
    let burst = Scenario {
        clients: 1000,
        senders: 10,
        messages: 200,
        connect_burst: true,
        ..base.clone()
    };
    let idle = Scenario {
        clients: 10_000,
        idle: true,
        hold: Duration::from_secs(6),
        ..base.clone()
    };
    let idle_py = Scenario {
        clients: 1000,
        ..idle.clone()
    };
    let encrypted = Scenario {
        wire: Wire::Encrypted,
        ..fanout.clone()
    };
    let all = [Target::Smol, Target::Std, Target::Python];
    let ours = [Target::Smol, Target::Std];
    // Each scenario is a list of (target, wire) runs.
    let runs = |sc: &Scenario, targets: &[Target]| -> Vec<(Target, Scenario)> {
        targets.iter().map(|t| (t.clone(), sc.clone())).collect()
    };
    let plan: Vec<(&str, Vec<(Target, Scenario)>)> = vec![
        ("fan-out", runs(&fanout, &all)),
        (
            "encrypted fan-out",
            ours.iter()
                .flat_map(|t| [(t.clone(), fanout.clone()), (t.clone(), encrypted.clone())])
                .collect(),
        ),
        ("light load", runs(&light, &all)),
        ("1000-client burst", runs(&burst, &all)),
        ("10,000 idle clients", runs(&idle, &ours)),
        ("1,000 idle clients", runs(&idle_py, &all)),
    ];
    let mut all_ok = true;
    let mut out = String::new();
    for (name, plan) in plan {
        let sc = &plan[0].1;
        eprintln!("── {name}: {} ──", title(sc));
        let mut reports = Vec::new();
        for (t, sc) in &plan {
            eprintln!("{} …", label(t.name(), sc.wire));
            let r = measure(args, t, sc)?;
            all_ok &= r.complete();
            if args.json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            }
            reports.push(r);
        }
        let t = table(&format!("{name}: {}", title(sc)), &reports);
        eprint!("{t}");
        out.push_str(&t);
    }
    if !args.json {
        print!("{out}");
    }
    Ok(all_ok)
}

/// A ratio, with two digits where one would round a target away (0.47 is
/// not 0.5).
fn ratio(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}×")
    } else {
        format!("{x:.1}×")
    }
}

/// A server's name, marked when the run was encrypted.
fn label(server: String, wire: Wire) -> String {
    match wire {
        Wire::Plain => server,
        Wire::Encrypted => format!("{server} encrypted"),
    }
}

fn title(sc: &Scenario) -> String {
    if sc.idle {
        format!("{} idle clients", sc.clients)
    } else if let Some(room) = &sc.join_room {
        join_room_title(sc.clients, room, sc.expect_history)
    } else {
        format!(
            "{} clients, {} senders × {} messages of {} B{}{}",
            sc.clients,
            sc.senders,
            sc.messages,
            sc.size,
            match sc.rooms {
                Some(1) => ", in one room".to_string(),
                Some(n) => format!(", in {n} rooms"),
                None => String::new(),
            },
            if sc.connect_burst {
                ", all connecting at once"
            } else {
                ""
            }
        )
    }
}

fn join_room_title(clients: usize, room: &str, lines: usize) -> String {
    format!(
        "{} clients joining {room}, which has {lines} lines of history ({clients} logged in first)",
        clients.saturating_sub(1)
    )
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".into())
}

fn lat_ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1e3)
    } else {
        format!("{:.2} ms", us / 1e3)
    }
}

fn one_line(r: &Report) -> String {
    if r.mode == "join-room" {
        format!(
            "logged in {}/{} in {:.0} ms; {}/{} joined the room in {} and had their history in {} ({} login time), server CPU {}",
            r.joined,
            r.clients,
            r.join_ms,
            r.histories,
            r.expected,
            opt(r.room_join_ms, |m| format!("{m:.0} ms")),
            opt(r.history_ms, |m| format!("{m:.0} ms")),
            opt(r.history_ms.map(|h| h / r.join_ms.max(1e-9)), ratio),
            opt(r.server_cpu_ms, |m| format!("{m:.0} ms")),
        )
    } else if r.mode == "idle" {
        format!(
            "joined {}/{} in {:.0} ms, rss {} ({} per client)",
            r.joined,
            r.clients,
            r.join_ms,
            opt(r.server_rss_joined, mib),
            opt(r.rss_per_client, |b| format!("{:.1} KiB", b / 1024.0)),
        )
    } else {
        format!(
            "joined {}/{} in {:.0} ms, delivered {}/{} in {:.0} ms = {:.0}/s, p50 {} p99 {}, cpu {}/delivery",
            r.joined,
            r.clients,
            r.join_ms,
            r.delivered,
            r.expected,
            r.completion_ms,
            r.deliveries_per_sec,
            opt(r.latency.map(|l| l.p50_us), lat_ms),
            opt(r.latency.map(|l| l.p99_us), lat_ms),
            opt(r.server_cpu_ns_per_delivery, |n| format!("{n:.0} ns")),
        )
    }
}

fn summary(r: &Report) -> String {
    let mut s = format!("\n{} — {}\n", label(r.server.clone(), r.wire), title_of(r));
    s.push_str(&format!(
        "  joined           {}/{} in {:.1} ms (join notices settled {:.1} ms later)\n",
        r.joined, r.clients, r.join_ms, r.settle_ms
    ));
    if r.join_failures > 0 || r.first_failure.is_some() {
        s.push_str(&format!(
            "  join failures    {} (first: {})\n",
            r.join_failures,
            r.first_failure.as_deref().unwrap_or("?")
        ));
    }
    if r.mode == "join-room" {
        s.push_str(&format!(
            "  room joins       {}/{} with {} lines of history: in the room after {}, history after {}\n  \
             vs login time    {}\n  server CPU       {}\n  server peak RSS  {}\n",
            r.histories,
            r.expected,
            r.expect_history,
            opt(r.room_join_ms, |m| format!("{m:.1} ms")),
            opt(r.history_ms, |m| format!("{m:.1} ms")),
            opt(r.history_ms.map(|h| h / r.join_ms.max(1e-9)), ratio),
            opt(r.server_cpu_ms, |m| format!("{m:.1} ms")),
            opt(r.server_peak_rss, mib),
        ));
        return s;
    }
    if r.mode == "idle" {
        s.push_str(&format!(
            "  server memory    {} before, {} with everyone joined ({} per client), peak {}\n",
            opt(r.server_rss_start, mib),
            opt(r.server_rss_joined, mib),
            opt(r.rss_per_client, |b| format!("{:.1} KiB", b / 1024.0)),
            opt(r.server_peak_rss, mib),
        ));
        s.push_str(&format!(
            "  server threads   {}\n",
            opt(r.server_threads, |t| t.to_string())
        ));
        return s;
    }
    s.push_str(&format!(
        "  delivered        {}/{}{}{}{}\n",
        r.delivered,
        r.expected,
        if r.timed_out { " (TIMED OUT)" } else { "" },
        if r.out_of_order > 0 {
            format!(", {} out of order", r.out_of_order)
        } else {
            String::new()
        },
        if r.misrouted > 0 {
            format!(", {} from a room the receiver is not in", r.misrouted)
        } else {
            String::new()
        }
    ));
    if let (Some(n), Some(t)) = (r.rooms, r.rooms_ms) {
        s.push_str(&format!(
            "  rooms            {n}; every client in its room {t:.1} ms after the first connect\n"
        ));
    }
    if r.lost_clients > 0 {
        s.push_str(&format!(
            "  lost clients     {} disconnected by the server\n",
            r.lost_clients
        ));
    }
    s.push_str(&format!(
        "  completion       {:.1} ms\n  deliveries/s     {:.0}\n",
        r.completion_ms, r.deliveries_per_sec
    ));
    if let Some(l) = r.latency {
        s.push_str(&format!(
            "  latency          p50 {}  p99 {}  max {}\n",
            lat_ms(l.p50_us),
            lat_ms(l.p99_us),
            lat_ms(l.max_us)
        ));
    }
    s.push_str(&format!(
        "  server CPU       {} ({} per delivery)\n  server peak RSS  {}\n  generator CPU    {}\n",
        opt(r.server_cpu_ms, |m| format!("{m:.1} ms")),
        opt(r.server_cpu_ns_per_delivery, |n| format!("{n:.0} ns")),
        opt(r.server_peak_rss, mib),
        opt(r.generator_cpu_ms, |m| format!("{m:.1} ms")),
    ));
    s
}

fn title_of(r: &Report) -> String {
    if r.mode == "join-room" {
        return join_room_title(r.clients, "the room", r.expect_history);
    }
    title(&Scenario {
        rooms: r.rooms,
        clients: r.clients,
        senders: r.senders,
        messages: r.messages,
        size: r.size,
        connect_burst: r.connect_burst,
        idle: r.mode == "idle",
        ..Scenario::default()
    })
}

/// A markdown table of `reports`, with ratios against a baseline measured in
/// the same run: the Python server's, or for encrypted runs the same
/// server's plaintext run.
fn table(heading: &str, reports: &[Report]) -> String {
    let encrypted = reports.iter().any(|r| r.wire == Wire::Encrypted);
    let baseline = |r: &Report| {
        reports.iter().find(|b| {
            if encrypted {
                b.server == r.server && b.wire == Wire::Plain
            } else {
                b.server == "python"
            }
        })
    };
    let vs = if encrypted { "plaintext" } else { "python" };
    let mut s = format!("\n### {heading}\n\n");
    if reports.iter().all(|r| r.mode == "join-room") {
        s.push_str(
            "| server | logged in | login time | joiners with history | every joiner in the room | \
             every joiner with its history | history / login | server CPU |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in reports {
            s.push_str(&format!(
                "| {} | {}/{} | {:.0} ms | {}/{} | {} | {} | {} | {} |\n",
                label(r.server.clone(), r.wire),
                r.joined,
                r.clients,
                r.join_ms,
                r.histories,
                r.expected,
                opt(r.room_join_ms, |m| format!("{m:.0} ms")),
                opt(r.history_ms, |m| format!("{m:.0} ms")),
                opt(r.history_ms.map(|h| h / r.join_ms.max(1e-9)), ratio),
                opt(r.server_cpu_ms, |m| format!("{m:.0} ms")),
            ));
        }
        return s;
    }
    if reports.iter().all(|r| r.mode == "idle") {
        s.push_str(
            "| server | joined | join time | RSS before | RSS joined | per client | peak RSS | threads |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in reports {
            s.push_str(&format!(
                "| {} | {}/{} | {:.0} ms | {} | {} | {} | {} | {} |\n",
                r.server,
                r.joined,
                r.clients,
                r.join_ms,
                opt(r.server_rss_start, mib),
                opt(r.server_rss_joined, mib),
                opt(r.rss_per_client, |b| format!("{:.1} KiB", b / 1024.0)),
                opt(r.server_peak_rss, mib),
                opt(r.server_threads, |t| t.to_string()),
            ));
        }
        return s;
    }
    s.push_str(&format!(
        "| server | joined | join time | delivered | completion | deliveries/s | vs {vs} | \
         p50 | p99 | p99 vs {vs} | max | server CPU/delivery | peak RSS | generator CPU |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    ));
    for r in reports {
        let py = baseline(r);
        let speedup = match py {
            Some(p) if p.deliveries_per_sec > 0.0 => {
                ratio(r.deliveries_per_sec / p.deliveries_per_sec)
            }
            _ => "—".into(),
        };
        let p99_ratio = match (py.and_then(|p| p.latency), r.latency) {
            (Some(p), Some(l)) if l.p99_us > 0.0 && p.p99_us >= l.p99_us => {
                format!("{} lower", ratio(p.p99_us / l.p99_us))
            }
            (Some(p), Some(l)) if p.p99_us > 0.0 => {
                format!("{} higher", ratio(l.p99_us / p.p99_us))
            }
            _ => "—".into(),
        };
        s.push_str(&format!(
            "| {} | {}/{} | {:.0} ms | {}/{}{} | {:.0} ms | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            label(r.server.clone(), r.wire),
            r.joined,
            r.clients,
            r.join_ms,
            r.delivered,
            r.expected,
            if r.timed_out { " (timed out)" } else { "" },
            r.completion_ms,
            r.deliveries_per_sec,
            speedup,
            opt(r.latency.map(|l| l.p50_us), lat_ms),
            opt(r.latency.map(|l| l.p99_us), lat_ms),
            p99_ratio,
            opt(r.latency.map(|l| l.max_us), lat_ms),
            opt(r.server_cpu_ns_per_delivery, |n| format!("{n:.0} ns")),
            opt(r.server_peak_rss, mib),
            opt(r.generator_cpu_ms, |m| format!("{m:.0} ms")),
        ));
    }
    s
}

/// The median of `v` and its range, as `median [min–max]`.
fn spread(v: &[f64], f: impl Fn(f64) -> String) -> String {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return "n/a".into();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    format!("{} [{}–{}]", f(median), f(v[0]), f(v[n - 1]))
}

/// One of the things [`compare`] measures in turn: a build, a number of
/// rooms, a way of keeping history.
struct Variant {
    label: String,
    bin_dir: Option<PathBuf>,
    rooms: Option<usize>,
    history: History,
}

/// Every combination of the builds, room counts and history modes asked
/// for; the last is the baseline. Labels name only what varies.
fn variants(args: &Args) -> Vec<Variant> {
    let mut builds: Vec<(String, Option<PathBuf>)> =
        vec![(args.label.clone(), args.bin_dir.clone())];
    if let Some(dir) = &args.against {
        builds.push((args.against_label.clone(), Some(dir.clone())));
    }
    let rooms: Vec<Option<usize>> = if args.rooms.is_empty() {
        vec![None]
    } else {
        args.rooms.iter().map(|&n| Some(n)).collect()
    };
    let mut out = Vec::new();
    for (label, dir) in &builds {
        for &r in &rooms {
            for &h in &args.history {
                let mut parts = Vec::new();
                if builds.len() > 1 || (rooms.len() == 1 && args.history.len() == 1) {
                    parts.push(label.clone());
                }
                if rooms.len() > 1 {
                    parts.push(match r {
                        Some(1) => "1 room".to_string(),
                        Some(n) => format!("{n} rooms"),
                        None => "no rooms".to_string(),
                    });
                }
                if args.history.len() > 1 {
                    parts.push(format!("history {}", h.name()));
                }
                out.push(Variant {
                    label: parts.join(", "),
                    bin_dir: dir.clone(),
                    rooms: r,
                    history: h,
                });
            }
        }
    }
    out
}

/// Runs the scenario against this build and, with `--against`, another
/// build's servers (or with several `--rooms` or `--history`, each of them),
/// alternating run by run, and tabulates ratios measured within one run
/// (logins / no logins, room joins / logins) or run by run (this variant /
/// the last one).
fn compare(args: &Args) -> Result<bool, String> {
    let sc = scenario(args);
    if sc.password_logins.is_some() && sc.wire == Wire::Encrypted {
        return Err(
            "--password-logins-per-sec: the generator logs in with a password \
                    on plaintext connections only (no SPAKE2)"
                .into(),
        );
    }
    let builds = variants(args);
    for v in &builds {
        Scenario {
            rooms: v.rooms,
            ..sc.clone()
        }
        .check()?;
    }
    let runs = args.runs.max(1);
    let mut all_ok = true;
    let mut out = String::new();
    for s in &args.server {
        let target = Target::parse(s, args.pid)?;
        // results[build][run]
        let mut results: Vec<Vec<Report>> = vec![Vec::new(); builds.len()];
        for run in 0..runs {
            // A B, B A, …: neither build always goes first.
            let mut order: Vec<usize> = (0..builds.len()).collect();
            if run % 2 == 1 {
                order.reverse();
            }
            for b in order {
                let v = &builds[b];
                let sc = Scenario {
                    rooms: v.rooms,
                    ..sc.clone()
                };
                let mut l = launch(args, &sc);
                if let Some(d) = &v.bin_dir {
                    l.bin_dir = d.clone();
                }
                l.history = v.history;
                let server = ServerProc::start(&target, &l)?;
                let mut r = load::run(&target.name(), server.addr, server.pid, &sc)?;
                drop(server);
                r.server = format!("{} {}", target.name(), v.label);
                all_ok &= r.complete();
                if args.json {
                    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
                } else {
                    eprintln!("  run {} {}: {}", run + 1, r.server, run_line(&r));
                }
                results[b].push(r);
            }
        }
        out.push_str(&compare_table(&target.name(), &sc, &builds, &results));
    }
    if !args.json {
        print!("{out}");
    }
    Ok(all_ok)
}

fn run_line(r: &Report) -> String {
    match (r.latency_quiet, r.latency_logins) {
        (Some(q), Some(l)) => {
            let side = r.side_logins.unwrap_or_default();
            format!(
                "p99 without logins {}, with {} ({}); p50 {} / {}; logins {}/{} ok, each {:.0} ms (max {:.0}); delivered {}/{}",
                lat_ms(q.p99_us),
                lat_ms(l.p99_us),
                ratio(l.p99_us / q.p99_us),
                lat_ms(q.p50_us),
                lat_ms(l.p50_us),
                side.ok,
                side.attempted,
                side.p50_ms,
                side.max_ms,
                r.delivered,
                r.expected,
            )
        }
        _ => one_line(r),
    }
}

fn compare_table(
    server: &str,
    sc: &Scenario,
    builds: &[Variant],
    results: &[Vec<Report>],
) -> String {
    let runs = results.first().map_or(0, Vec::len);
    let mut s = String::new();
    if let (Some(rate), Some(per_sec)) = (sc.rate, sc.password_logins) {
        s.push_str(&format!(
            "\n### {server}: {} clients, {} senders × {rate} messages/s for {:.0} s; \
             {per_sec} password logins/s in the second half ({runs} runs; median [min–max])\n\n\
             | build | p99 without logins | p99 with logins | p99 with / without (same run) | \
             p50 without | p50 with | max with | logins ok | login time p50 |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            sc.clients,
            sc.senders,
            sc.messages as f64 / rate,
        ));
        for (Variant { label, .. }, rs) in builds.iter().zip(results) {
            let pick = |f: &dyn Fn(&Report) -> Option<f64>| -> Vec<f64> {
                rs.iter().filter_map(f).collect()
            };
            let q = |r: &Report| r.latency_quiet;
            let l = |r: &Report| r.latency_logins;
            let ok: usize = rs.iter().filter_map(|r| r.side_logins).map(|x| x.ok).sum();
            let tried: usize = rs
                .iter()
                .filter_map(|r| r.side_logins)
                .map(|x| x.attempted)
                .sum();
            s.push_str(&format!(
                "| {label} | {} | {} | **{}** | {} | {} | {} | {ok}/{tried} | {} |\n",
                spread(&pick(&|r| q(r).map(|x| x.p99_us)), lat_ms),
                spread(&pick(&|r| l(r).map(|x| x.p99_us)), lat_ms),
                spread(&pick(&|r| Some(l(r)?.p99_us / q(r)?.p99_us)), ratio),
                spread(&pick(&|r| q(r).map(|x| x.p50_us)), lat_ms),
                spread(&pick(&|r| l(r).map(|x| x.p50_us)), lat_ms),
                spread(&pick(&|r| l(r).map(|x| x.max_us)), lat_ms),
                spread(&pick(&|r| r.side_logins.map(|x| x.p50_ms)), |m| format!(
                    "{m:.0} ms"
                )),
            ));
        }
        return s;
    }
    let base = results.last().map(Vec::as_slice).unwrap_or(&[]);
    let base_label = builds.last().map_or("", |b| b.label.as_str());
    // Per run: this variant's figure over the baseline's in the same round.
    let paired = |rs: &[Report], f: &dyn Fn(&Report) -> Option<f64>| -> Vec<f64> {
        rs.iter()
            .zip(base)
            .filter_map(|(a, b)| Some(f(a)? / f(b)?))
            .collect()
    };
    let all = |rs: &[Report], f: &dyn Fn(&Report) -> Option<f64>| -> Vec<f64> {
        rs.iter().filter_map(f).collect()
    };
    let count = |rs: &[Report], f: &dyn Fn(&Report) -> u64| -> u64 { rs.iter().map(f).sum() };
    if sc.join_room.is_some() {
        s.push_str(&format!(
            "\n### {server}: {} ({runs} runs; median [min–max])\n\n\
             | variant | login time (all clients) | every joiner in the room | every joiner with its history | \
             history / login (same run) | vs {base_label} (run by run) | histories | server CPU (room joins) |\n\
             |---|---|---|---|---|---|---|---|\n",
            title(sc),
        ));
        let msf = |m: f64| format!("{m:.0} ms");
        for (v, rs) in builds.iter().zip(results) {
            s.push_str(&format!(
                "| {} | {} | {} | {} | **{}** | {} | {}/{} | {} |\n",
                v.label,
                spread(&all(rs, &|r| Some(r.join_ms)), msf),
                spread(&all(rs, &|r| r.room_join_ms), msf),
                spread(&all(rs, &|r| r.history_ms), msf),
                spread(&all(rs, &|r| Some(r.history_ms? / r.join_ms)), ratio),
                spread(&paired(rs, &|r| r.history_ms), ratio),
                count(rs, &|r| r.histories as u64),
                count(rs, &|r| r.expected),
                spread(&all(rs, &|r| r.server_cpu_ms), msf),
            ));
        }
        return s;
    }
    s.push_str(&format!(
        "\n### {server}{}: {} ({runs} runs; median [min–max])\n\n\
         | variant | delivered | deliveries/s | vs {base_label} (run by run) | server CPU/delivery | \
         vs {base_label} (run by run) | p99 | p99 vs {base_label} (run by run) |\n\
         |---|---|---|---|---|---|---|---|\n",
        if sc.wire == Wire::Encrypted {
            " encrypted"
        } else {
            ""
        },
        title(&Scenario {
            rooms: None,
            ..sc.clone()
        }),
    ));
    let dps = |r: &Report| Some(r.deliveries_per_sec).filter(|x| *x > 0.0);
    let cpu = |r: &Report| r.server_cpu_ns_per_delivery;
    let p99 = |r: &Report| r.latency.map(|l| l.p99_us);
    for (v, rs) in builds.iter().zip(results) {
        s.push_str(&format!(
            "| {} | {}/{} | {} | {} | {} | {} | {} | {} |\n",
            v.label,
            count(rs, &|r| r.delivered),
            count(rs, &|r| r.expected),
            spread(&all(rs, &dps), |x| format!("{x:.0}")),
            spread(&paired(rs, &dps), ratio),
            spread(&all(rs, &cpu), |n| format!("{n:.0} ns")),
            spread(&paired(rs, &cpu), ratio),
            spread(&all(rs, &p99), lat_ms),
            spread(&paired(rs, &p99), ratio),
        ));
    }
    s
}
