//! Child processes for the end-to-end tests (shared test support): each
//! pipe collected by a thread, waits that are always bounded, and a process
//! killed when its handle drops, with its output printed if a test panics.
//!
//! Included with `#[path = "support/proc.rs"] mod proc;`, next to
//! `#[path = "support/tempdir.rs"] mod tempdir;`, which it uses.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::tempdir::TempDir;

/// Bound for any one expected event (a line arriving, a process exiting).
/// Generous: a passing test never waits this long, and nothing asserts on
/// timing.
pub const STEP: Duration = Duration::from_secs(30);
/// Bound for a process to start listening or show its prompts (the Python
/// client spends 3 s on LAN discovery before its first question).
pub const START: Duration = Duration::from_secs(60);

/// Everything a process wrote to one pipe, collected by a thread.
pub struct Capture {
    state: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

impl Capture {
    pub fn start(mut pipe: impl Read + Send + 'static) -> Arc<Capture> {
        let capture = Arc::new(Capture {
            state: Mutex::new((Vec::new(), false)),
            grew: Condvar::new(),
        });
        let sink = Arc::clone(&capture);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = pipe.read(&mut buf).unwrap_or(0);
                let mut state = sink.state.lock().unwrap();
                if n == 0 {
                    state.1 = true;
                } else {
                    state.0.extend_from_slice(&buf[..n]);
                }
                sink.grew.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        capture
    }

    /// The text so far, colours removed.
    pub fn text(&self) -> String {
        strip_ansi(&self.state.lock().unwrap().0)
    }

    /// Waits until `f` finds what it looks for in the text (colours removed).
    /// `Err` when the pipe closes or time runs out first.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, &'static str> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(found) = f(&strip_ansi(&state.0)) {
                return Ok(found);
            }
            if state.1 {
                return Err("the output ended");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out");
            }
            state = self.grew.wait_timeout(state, left).unwrap().0;
        }
    }

    pub fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self.grew.wait_timeout(state, left).unwrap().0;
        }
    }

    /// How many screen lines so far satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        let text = self.text();
        screen_lines(&text).filter(|l| pred(l)).count()
    }
}

/// Removes ANSI CSI sequences (colours, "clear line").
pub fn strip_ansi(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// The lines as a terminal would show them: the Python client rewrites its
/// prompt line with `\r`, so only what follows the last `\r` remains.
pub fn screen_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .map(|line| line.rsplit('\r').next().unwrap_or(line).trim_end())
}

/// A running child process, killed when dropped (also while panicking, when
/// its output is printed to help find out what went wrong).
pub struct Proc {
    pub label: String,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub out: Arc<Capture>,
    pub err: Arc<Capture>,
    /// A scratch directory that lives as long as the process.
    _dir: Option<TempDir>,
}

impl Proc {
    pub fn spawn(label: impl Into<String>, mut cmd: Command) -> Proc {
        let label = label.into();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({cmd:?}): {e}"));
        let out = Capture::start(child.stdout.take().unwrap());
        let err = Capture::start(child.stderr.take().unwrap());
        Proc {
            label,
            stdin: child.stdin.take(),
            child,
            out,
            err,
            _dir: None,
        }
    }

    pub fn spawn_in(label: impl Into<String>, cmd: Command, dir: TempDir) -> Proc {
        let mut proc = Proc::spawn(label, cmd);
        proc._dir = Some(dir);
        proc
    }

    pub fn report(&self) -> String {
        format!(
            "── {} stdout ──\n{}\n── {} stderr ──\n{}\n── end of {} ──",
            self.label,
            self.out.text(),
            self.label,
            self.err.text(),
            self.label
        )
    }

    /// Types one line into the process.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        if let Err(e) = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
        {
            panic!(
                "cannot type {line:?} into {}: {e}\n{}",
                self.label,
                self.report()
            );
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for `f` to find something in standard output (colours removed).
    pub fn wait_out<T>(
        &self,
        what: &str,
        timeout: Duration,
        f: impl FnMut(&str) -> Option<T>,
    ) -> T {
        match self.out.wait_until(timeout, f) {
            Ok(found) => found,
            Err(why) => panic!(
                "{} never showed {what} ({why})\n{}",
                self.label,
                self.report()
            ),
        }
    }

    /// Waits for a screen line of standard output that satisfies `pred`.
    pub fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_out(what, STEP, |text| {
            screen_lines(text).find(|l| pred(l)).map(str::to_string)
        })
    }

    pub fn has_line(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.out.count(pred) > 0
    }

    /// Waits for the exit and for both pipes to be read to the end.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(STEP)
    }

    pub fn wait_exit_within(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.out.wait_closed(STEP);
                    self.err.wait_closed(STEP);
                    return status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => panic!("{} did not exit in time\n{}", self.label, self.report()),
                Err(e) => panic!("cannot wait for {}: {e}", self.label),
            }
        }
    }

    /// Ends the input and expects a clean exit.
    pub fn finish_ok(&mut self) {
        self.close_stdin();
        let status = self.wait_exit();
        assert!(
            status.success(),
            "{} exited with {status}\n{}",
            self.label,
            self.report()
        );
    }

    /// With its input left open, expects the process to give up by itself
    /// with a non-zero status; returns what it said (stdout and stderr).
    pub fn expect_failure(&mut self) -> String {
        let status = self.wait_exit();
        assert!(
            !status.success(),
            "{} should have failed, exited with {status}\n{}",
            self.label,
            self.report()
        );
        format!("{}{}", self.out.text(), self.err.text())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Kill before stdin closes: the Python client spins on end of input.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}
