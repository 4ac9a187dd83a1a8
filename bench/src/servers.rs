//! Starting the servers under test: our two binaries and the Python reference
//! (`lantalk==2.0.0` from PyPI), each on a loopback port of its own.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::load::Wire;

/// Which server to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `lantalk-smol`, started by the generator.
    Smol,
    /// `lantalk-std`, started by the generator.
    Std,
    /// The PyPI `lantalk==2.0.0` server, started by the generator.
    Python,
    /// A server someone else started; `pid` (if given) is sampled for CPU/RSS.
    Addr(SocketAddr, Option<u32>),
}

impl Target {
    pub fn parse(s: &str, pid: Option<u32>) -> Result<Target, String> {
        match s {
            "smol" => Ok(Target::Smol),
            "std" => Ok(Target::Std),
            "python" | "py" => Ok(Target::Python),
            _ => s
                .parse::<SocketAddr>()
                .map(|a| Target::Addr(a, pid))
                .map_err(|_| format!("--server: `{s}` is not smol, std, python or IP:PORT")),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Target::Smol => "smol".into(),
            Target::Std => "std".into(),
            Target::Python => "python".into(),
            Target::Addr(a, _) => a.to_string(),
        }
    }
}

/// How our servers keep history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum History {
    /// The default: SQLite (`history.db`) in the server's own fresh data
    /// directory, and the window in memory.
    #[default]
    Store,
    /// `--history-keep 0`: the window in memory only.
    Memory,
    /// `--no-history`: none at all.
    None,
}

impl History {
    pub fn name(self) -> &'static str {
        match self {
            History::Store => "store",
            History::Memory => "memory",
            History::None => "none",
        }
    }

    /// What the server is started with for it.
    fn args(self) -> &'static [&'static str] {
        match self {
            History::Store => &[],
            History::Memory => &["--history-keep", "0"],
            History::None => &["--no-history"],
        }
    }
}

impl std::str::FromStr for History {
    type Err = String;
    fn from_str(s: &str) -> Result<History, String> {
        match s {
            "store" | "sqlite" => Ok(History::Store),
            "memory" => Ok(History::Memory),
            "none" | "off" => Ok(History::None),
            _ => Err(format!("`{s}`: store, memory or none")),
        }
    }
}

/// Where to find what the generator starts.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Directory holding `lantalk-smol` and `lantalk-std`.
    pub bin_dir: PathBuf,
    /// A Python interpreter that has `lantalk==2.0.0`.
    pub python: PathBuf,
    /// Passed as `--max-clients` to our servers.
    pub max_clients: usize,
    /// Our servers accept plaintext (LanTalk 2.0) clients; otherwise every
    /// client must encrypt, as in a default deployment.
    pub plaintext: bool,
    /// Our servers ask for this password (given to them with
    /// `--password-env`).
    pub password: Option<String>,
    /// How our servers keep history.
    pub history: History,
}

impl Launch {
    /// Defaults relative to this workspace: `target/release` and
    /// `target/interop-venv` (the venv the interop tests provision), or
    /// `$LANTALK_PYTHON`.
    pub fn from_workspace(max_clients: usize) -> Launch {
        let root = workspace_root();
        let python = std::env::var_os("LANTALK_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| venv_python(&root.join("target").join("interop-venv")));
        Launch {
            bin_dir: root.join("target").join("release"),
            python,
            max_clients,
            plaintext: true,
            password: None,
            history: History::Store,
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// A running server; killed when dropped.
pub struct ServerProc {
    pub addr: SocketAddr,
    /// Sampled for CPU and memory; `None` for a server we did not start and
    /// were not told the pid of.
    pub pid: Option<u32>,
    child: Option<Child>,
    dir: Option<PathBuf>,
}

impl ServerProc {
    pub fn start(target: &Target, launch: &Launch) -> Result<ServerProc, String> {
        match target {
            Target::Smol => start_rust(&launch.bin_dir.join(exe("lantalk-smol")), launch),
            Target::Std => start_rust(&launch.bin_dir.join(exe("lantalk-std")), launch),
            Target::Python if !launch.plaintext => {
                Err("the Python server (LanTalk 2.0) has no encryption to measure".into())
            }
            Target::Python if launch.password.is_some() => {
                Err("the Python server is measured without a password".into())
            }
            Target::Python => start_python(&launch.python),
            Target::Addr(addr, pid) => Ok(ServerProc {
                addr: *addr,
                pid: *pid,
                child: None,
                dir: None,
            }),
        }
    }

    /// Starts one of our binaries, given its path, for clients on `wire`.
    pub fn start_binary(bin: &Path, max_clients: usize, wire: Wire) -> Result<ServerProc, String> {
        let launch = Launch {
            bin_dir: PathBuf::new(),
            python: PathBuf::new(),
            max_clients,
            plaintext: wire == Wire::Plain,
            password: None,
            history: History::Store,
        };
        start_rust(bin, &launch)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn exe(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

fn scratch_dir(what: &str) -> Result<PathBuf, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lantalk-bench-{}-{}-{what}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The variable that carries `Launch::password` to our servers.
const PASSWORD_VAR: &str = "LANTALK_BENCH_PASSWORD";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the child's stdout on a thread (it must be drained, or a server
/// that logs every join would block), reporting the first line for which
/// `found` gives an address.
fn watch_stdout(
    child: &mut Child,
    found: impl Fn(&str) -> Option<SocketAddr> + Send + 'static,
) -> mpsc::Receiver<SocketAddr> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut line = String::new();
            let mut told = false;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if !told {
                            if let Some(addr) = found(&line) {
                                let _ = tx.send(addr);
                                told = true;
                            }
                        }
                    }
                }
            }
        });
    }
    rx
}

fn start_rust(bin: &Path, launch: &Launch) -> Result<ServerProc, String> {
    if !bin.exists() {
        return Err(format!(
            "{} does not exist: build the servers first with `cargo build --release --bins`",
            bin.display()
        ));
    }
    let dir = scratch_dir("server")?;
    let mut child = Command::new(bin)
        .args([
            "server",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--rate-limit",
            "off",
        ])
        // Nothing sent beyond loopback.
        .arg("--no-discovery")
        // Plaintext LanTalk 2.0 clients, unless encryption is measured.
        .args(launch.plaintext.then_some("--allow-plaintext"))
        .arg("--data-dir")
        .arg(&dir)
        .arg("--max-clients")
        .arg(launch.max_clients.to_string())
        .args(launch.history.args())
        .env_remove("LANTALK_LOG_LEVEL")
        .env_remove(PASSWORD_VAR)
        .envs(launch.password.as_ref().map(|p| (PASSWORD_VAR, p)))
        .args(
            launch
                .password
                .as_ref()
                .map(|_| ["--password-env", PASSWORD_VAR])
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let rx = watch_stdout(&mut child, |line| {
        line.trim()
            .strip_prefix("Listening on ")
            .and_then(|a| a.trim().parse().ok())
    });
    let pid = child.id();
    let mut proc = ServerProc {
        addr: "127.0.0.1:0".parse().unwrap(),
        pid: Some(pid),
        child: Some(child),
        dir: Some(dir),
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => {
            proc.addr = addr;
            Ok(proc)
        }
        Err(_) => Err(format!("{} did not start listening", bin.display())),
    }
}

/// The reference server, unmodified except for what a benchmark needs: bound
/// to 127.0.0.1 with its UDP discovery beacon silenced (as in the interop
/// tests), and its hard-coded rate limit (10 messages per 5 s) lifted, since
/// our servers run with `--rate-limit off`. Everything else — including its
/// debug log of every chat line to `lantalk.log` — is as shipped.
const PY_SERVER: &str = r#"
import sys
import lantalk.server as srv

srv.HOST = "127.0.0.1"
srv._get_lan_ip = lambda: "127.0.0.1"
srv.RATE_LIMIT = 10**9

async def _silent_beacon(lan_ip, port, stop_event):
    await stop_event.wait()

srv._discovery_beacon = _silent_beacon
srv.LanTalkServer(port=int(sys.argv[1]), username="Server", password=None).start()
"#;

fn start_python(python: &Path) -> Result<ServerProc, String> {
    if !python.exists() {
        return Err(format!(
            "no Python with lantalk==2.0.0 at {}.\n\
             Create it with:\n  python3 -m venv target/interop-venv\n  \
             target/interop-venv/bin/python -m pip install lantalk==2.0.0\n\
             (or run `cargo test --test interop` once, which does the same), \
             or set LANTALK_PYTHON / --python to an interpreter that has it.",
            python.display()
        ));
    }
    for _attempt in 0..5 {
        // Free now; if someone takes it before Python binds it, try another.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free loopback port: {e}"))?;
        let dir = scratch_dir("python")?;
        let mut child = Command::new(python)
            .arg("-u")
            .arg("-c")
            .arg(PY_SERVER)
            .arg(port.to_string())
            .env("PYTHONIOENCODING", "utf-8")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
        let started = format!("Server started on 127.0.0.1:{port}");
        let rx = watch_stdout(&mut child, move |line| {
            line.contains(&started)
                .then(|| SocketAddr::from(([127, 0, 0, 1], port)))
        });
        let pid = child.id();
        let proc = ServerProc {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pid: Some(pid),
            child: Some(child),
            dir: Some(dir),
        };
        if rx.recv_timeout(START_TIMEOUT).is_ok() {
            return Ok(proc);
        }
    }
    Err(format!(
        "the Python server ({}) did not start; does it have lantalk==2.0.0?",
        python.display()
    ))
}
