//! Plugin processes: started, fed and watched for the server
//! (`Action::Plugin` → [`PluginRunner::request`]), their output handed back
//! as `Command::Plugin`. Both runtimes use this one implementation.
//!
//! Nothing here waits for a plugin: its input is written by a thread of its
//! own from a bounded queue (a plugin that stops reading fills it and is
//! killed: cut off); its output is read by another thread, one line at a time
//! with a length bound (a longer line is dropped, reported as garbage) and
//! paced (a plugin that writes faster waits on its own pipe); its standard
//! error goes to the server's log, with its name. Processes are killed when
//! the server stops or the core says so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lantalk_core::driver::{Command, Control};
use lantalk_core::names::validate_username;
use lantalk_core::plugin::{
    PluginExit, PluginId, PluginReply, PluginRequest, MAX_PLUGIN_LINE, PLUGIN_QUEUE,
};
use lantalk_core::server::PluginSpec;

/// Lines a plugin may write in a burst before it is paced.
const BURST: f64 = 64.0;
/// Lines a second a plugin may write in the long run (the core's rate limit
/// is far lower; this only keeps a flood from crowding the server's input).
const LINES_PER_SEC: f64 = 200.0;
/// Longest line of a plugin's standard error kept for the log.
const MAX_STDERR_LINE: usize = 1024;
/// How long a plugin that closed its output may take to exit before it is
/// killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

struct Proc {
    child: Arc<Mutex<Child>>,
    input: SyncSender<Vec<u8>>,
    /// Killed for not reading: its end is reported as cut off.
    cut_off: Arc<AtomicBool>,
}

/// The running plugin processes, by run.
pub struct PluginRunner {
    control: Control,
    procs: HashMap<PluginId, Proc>,
}

impl PluginRunner {
    pub fn new(control: Control) -> Self {
        PluginRunner {
            control,
            procs: HashMap::new(),
        }
    }

    /// Carries out one of the core's requests, never waiting for a plugin.
    pub fn request(&mut self, request: PluginRequest) {
        match request {
            PluginRequest::Start { id, name, command } => self.start(id, &name, &command),
            PluginRequest::Send { id, line } => {
                let Some(p) = self.procs.get(&id) else {
                    return;
                };
                match p.input.try_send(line) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        // Not reading: cut it off (its reader reports the end).
                        p.cut_off.store(true, Ordering::SeqCst);
                        kill(&p.child);
                        self.procs.remove(&id);
                    }
                    // The writer is gone (the process closed its input or
                    // died): its reader reports the end.
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
            PluginRequest::Stop { id } => {
                if let Some(p) = self.procs.remove(&id) {
                    kill(&p.child);
                }
            }
        }
    }

    fn start(&mut self, id: PluginId, name: &str, command: &str) {
        let report = self.control.clone();
        let mut child = match shell(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return report(Command::Plugin(Box::new(PluginReply::Exited {
                    id,
                    why: PluginExit::CannotStart(e.to_string()),
                })));
            }
        };
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let child = Arc::new(Mutex::new(child));
        let cut_off = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel::<Vec<u8>>(PLUGIN_QUEUE);
        if let Some(mut stdin) = stdin {
            let _ = std::thread::Builder::new()
                .name(format!("plugin-{name}-in"))
                .spawn(move || {
                    for line in rx {
                        if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
                            break;
                        }
                    }
                });
        }
        if let Some(stderr) = stderr {
            let report = report.clone();
            let _ = std::thread::Builder::new()
                .name(format!("plugin-{name}-err"))
                .spawn(move || {
                    read_lines(stderr, MAX_STDERR_LINE, |line| {
                        let line = line.unwrap_or_else(|| b"(a line too long to log)".to_vec());
                        report(Command::Plugin(Box::new(PluginReply::Stderr { id, line })));
                    });
                });
        }
        let (watched, cut) = (Arc::clone(&child), Arc::clone(&cut_off));
        let spawned = std::thread::Builder::new()
            .name(format!("plugin-{name}-out"))
            .spawn(move || {
                if let Some(stdout) = stdout {
                    read_lines(stdout, MAX_PLUGIN_LINE, |line| {
                        let reply = match line {
                            Some(line) => PluginReply::Line { id, line },
                            None => PluginReply::TooLong { id },
                        };
                        report(Command::Plugin(Box::new(reply)));
                    });
                }
                let status = wait(&watched);
                let why = if cut.load(Ordering::SeqCst) {
                    PluginExit::CutOff
                } else {
                    PluginExit::Exited(status)
                };
                report(Command::Plugin(Box::new(PluginReply::Exited { id, why })));
            });
        if let Err(e) = spawned {
            kill(&child);
            (self.control)(Command::Plugin(Box::new(PluginReply::Exited {
                id,
                why: PluginExit::CannotStart(e.to_string()),
            })));
            return;
        }
        self.procs.insert(
            id,
            Proc {
                child,
                input: tx,
                cut_off,
            },
        );
    }
}

impl Drop for PluginRunner {
    /// The server is gone: so are its plugins.
    fn drop(&mut self) {
        for (_, p) in self.procs.drain() {
            kill(&p.child);
        }
    }
}

/// `command` run by the system's shell, so quoting and paths work as the
/// operator typed them.
fn shell(command: &str) -> Process {
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        let mut p = Process::new("cmd");
        p.arg("/C").raw_arg(command);
        p
    }
    #[cfg(not(windows))]
    {
        let mut p = Process::new("sh");
        p.args(["-c", command]);
        // A group of its own, so stopping it stops what the shell started
        // too (a child left behind would keep its output open).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut p, 0);
        p
    }
}

fn kill(child: &Mutex<Child>) {
    let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        use nix::sys::signal::{killpg, Signal};
        // Only while it is not reaped: the group id is still its own.
        if matches!(child.try_wait(), Ok(None)) {
            let _ = killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    // Not waited for here (this runs on the server's loop): the process's
    // reader thread reaps it once its output closes.
    let _ = child.kill();
}

/// Waits for a process whose output ended, and reaps it; one that lingers
/// is killed.
fn wait(child: &Mutex<Child>) -> Option<i32> {
    let deadline = Instant::now() + EXIT_GRACE;
    let mut killed = false;
    loop {
        let lingers = {
            let mut c = child.lock().unwrap_or_else(|e| e.into_inner());
            match c.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) => !killed && Instant::now() >= deadline,
                Err(_) => return None,
            }
        };
        if lingers {
            kill(child);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `from` line by line until it ends, giving each line without its
/// newline (`None` for a line longer than `max`, which is skipped without
/// being kept), at most [`LINES_PER_SEC`] lines a second after a burst.
fn read_lines(from: impl Read, max: usize, mut each: impl FnMut(Option<Vec<u8>>)) {
    let mut reader = BufReader::with_capacity(8 * 1024, from);
    let mut line = Vec::new();
    let mut too_long = false;
    let mut tokens = BURST;
    let mut last = Instant::now();
    loop {
        let (done, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if !too_long && line.len() + i <= max {
                        line.extend_from_slice(&buf[..i]);
                    } else {
                        too_long = true;
                    }
                    (true, i + 1)
                }
                None => {
                    if !too_long && line.len() + buf.len() <= max {
                        line.extend_from_slice(buf);
                    } else {
                        too_long = true;
                        line.clear();
                    }
                    (false, buf.len())
                }
            },
        };
        reader.consume(used);
        if !done {
            continue;
        }
        // Pacing: a token per line, refilled with time.
        let now = Instant::now();
        tokens = (tokens + now.duration_since(last).as_secs_f64() * LINES_PER_SEC).min(BURST);
        last = now;
        if tokens < 1.0 {
            std::thread::sleep(Duration::from_secs_f64((1.0 - tokens) / LINES_PER_SEC));
            tokens = 1.0;
            last = Instant::now();
        }
        tokens -= 1.0;
        if too_long {
            each(None);
        } else {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            each(Some(std::mem::take(&mut line)));
        }
        line.clear();
        too_long = false;
    }
}

/// The plugins the command line asks for: `--plugin [NAME=]COMMAND` and
/// `--plugin-rooms NAME=#a,#b`.
pub fn specs(plugins: &[String], rooms: &[String]) -> Result<Vec<PluginSpec>, String> {
    let mut specs: Vec<PluginSpec> = Vec::new();
    for given in plugins {
        let (name, command) = split_name(given)?;
        if specs.iter().any(|s| s.name.eq_ignore_ascii_case(&name)) {
            return Err(format!(
                "two plugins are called {name}: name one, as --plugin \"other={command}\""
            ));
        }
        specs.push(PluginSpec {
            name,
            command: command.to_string(),
            rooms: Vec::new(),
        });
    }
    for given in rooms {
        let (name, list) = given
            .split_once('=')
            .ok_or_else(|| format!("--plugin-rooms {given}: expected NAME=#room,#room"))?;
        let spec = specs
            .iter_mut()
            .find(|s| s.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| format!("--plugin-rooms {given}: no plugin is called {name}"))?;
        for room in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            lantalk_core::rooms::validate_room(room)
                .map_err(|e| format!("--plugin-rooms {given}: {e}"))?;
            spec.rooms.push(room.to_string());
        }
    }
    Ok(specs)
}

/// `dice=python3 dice.py` → (`dice`, `python3 dice.py`); without a name,
/// the program file's stem (`python3 ./bots/dice.py --fast` → `dice`).
fn split_name(given: &str) -> Result<(String, &str), String> {
    if let Some((name, command)) = given.split_once('=') {
        if !name.is_empty() && validate_username(name).is_ok() {
            return Ok((name.to_string(), command.trim()));
        }
    }
    let command = given.trim();
    let word = command
        .split_whitespace()
        .rev()
        .find(|w| !w.starts_with('-'))
        .unwrap_or("");
    let file = word.rsplit(['/', '\\']).next().unwrap_or(word);
    let stem = match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file,
    };
    let name = stem.trim_matches(|c: char| c == '"' || c == '\'');
    validate_username(name).map_err(|e| {
        format!("--plugin {given}: cannot name it after {name:?} ({e}); give a name: --plugin \"NAME={command}\"")
    })?;
    if command.is_empty() {
        return Err("--plugin: the command is empty".into());
    }
    Ok((name.to_string(), command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_program_or_are_given() {
        assert_eq!(split_name("python3 dice.py").unwrap().0, "dice");
        assert_eq!(
            split_name("python3 ./bots/poll.py --fast").unwrap().0,
            "poll"
        );
        assert_eq!(
            split_name("roller=python3 dice.py").unwrap(),
            ("roller".to_string(), "python3 dice.py")
        );
        assert_eq!(split_name("sh echo.sh").unwrap().0, "echo");
        assert!(
            split_name("python3 my.bot.py").is_err(),
            "my.bot is not a name"
        );
        assert!(split_name("").is_err());
    }

    #[test]
    fn rooms_are_given_per_plugin() {
        let s = specs(
            &["python3 dice.py".into(), "sh poll.sh".into()],
            &["dice=#games, #lobby".into()],
        )
        .unwrap();
        assert_eq!(s[0].rooms, ["#games", "#lobby"]);
        assert!(s[1].rooms.is_empty());
        assert!(specs(&["python3 dice.py".into()], &["nobody=#a".into()]).is_err());
        assert!(specs(&["python3 dice.py".into(), "x/dice.sh".into()], &[]).is_err());
    }

    /// A runner whose replies arrive on the returned channel.
    #[cfg(unix)]
    fn runner() -> (PluginRunner, std::sync::mpsc::Receiver<PluginReply>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let control: Control = Arc::new(move |c| {
            if let Command::Plugin(reply) = c {
                let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(*reply);
            }
        });
        (PluginRunner::new(control), rx)
    }

    /// Waits for the next reply (the bound only keeps a broken test from
    /// hanging; nothing is timed).
    #[cfg(unix)]
    fn next(rx: &std::sync::mpsc::Receiver<PluginReply>) -> PluginReply {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the plugin runner reported nothing")
    }

    #[cfg(unix)]
    #[test]
    fn a_plugin_that_does_not_read_is_cut_off_and_nothing_waits_for_it() {
        let (mut runner, rx) = runner();
        let id = PluginId(1);
        runner.request(PluginRequest::Start {
            id,
            name: "hang".into(),
            command: "sleep 100000".into(),
        });
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        // Far more than the pipe's buffer and the queue hold: returning
        // from every call is the point (the server's loop makes them).
        for _ in 0..(PLUGIN_QUEUE + 2048) {
            runner.request(PluginRequest::Send {
                id,
                line: line.clone(),
            });
        }
        assert_eq!(
            next(&rx),
            PluginReply::Exited {
                id,
                why: PluginExit::CutOff
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn lines_stderr_and_the_exit_status_are_reported() {
        let (mut runner, rx) = runner();
        let id = PluginId(7);
        runner.request(PluginRequest::Start {
            id,
            name: "t".into(),
            command: "read l; echo \"got $l\"; echo oops >&2; exit 4".into(),
        });
        runner.request(PluginRequest::Send {
            id,
            line: b"hello\n".to_vec(),
        });
        let mut got = vec![next(&rx), next(&rx), next(&rx)];
        got.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(
            got,
            [
                PluginReply::Exited {
                    id,
                    why: PluginExit::Exited(Some(4))
                },
                PluginReply::Line {
                    id,
                    line: b"got hello".to_vec()
                },
                PluginReply::Stderr {
                    id,
                    line: b"oops".to_vec()
                },
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_command_that_cannot_start_is_reported() {
        let (mut runner, rx) = runner();
        let id = PluginId(2);
        runner.request(PluginRequest::Start {
            id,
            name: "none".into(),
            command: "this-program-does-not-exist-lantalk".into(),
        });
        // The shell starts, the program does not: the shell says why (on
        // stderr, for the log) and its status says so.
        let mut said = false;
        loop {
            match next(&rx) {
                PluginReply::Stderr { .. } => said = true,
                PluginReply::Exited { id: i, why } => {
                    assert_eq!(i, id);
                    assert!(
                        matches!(why, PluginExit::Exited(Some(c)) if c != 0),
                        "{why:?}"
                    );
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        // Its stderr may come just after the exit.
        if !said {
            said = matches!(
                rx.recv_timeout(Duration::from_secs(10)),
                Ok(PluginReply::Stderr { .. })
            );
        }
        assert!(said, "the shell's complaint reached the log");
    }

    #[test]
    fn long_lines_are_skipped_without_being_kept() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend(b"\nafter\r\nlast-without-newline");
        let mut got = Vec::new();
        read_lines(&input[..], 1000, |l| got.push(l));
        assert_eq!(
            got,
            [Some(b"short".to_vec()), None, Some(b"after".to_vec())]
        );
    }
}
