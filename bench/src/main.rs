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
use lantalk_bench::{load, Launch, Report, Scenario, ServerProc, Target, Wire};

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.suite {
        suite(&args)
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
    } else {
        format!(
            "{} clients, {} senders × {} messages of {} B{}",
            sc.clients,
            sc.senders,
            sc.messages,
            sc.size,
            if sc.connect_burst {
                ", all connecting at once"
            } else {
                ""
            }
        )
    }
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
    if r.mode == "idle" {
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
        "  delivered        {}/{}{}{}\n",
        r.delivered,
        r.expected,
        if r.timed_out { " (TIMED OUT)" } else { "" },
        if r.out_of_order > 0 {
            format!(", {} out of order", r.out_of_order)
        } else {
            String::new()
        }
    ));
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
    title(&Scenario {
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
