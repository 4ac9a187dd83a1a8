//! Lines a child process writes to one pipe, collected by a thread (shared
//! test support).
//!
//! Included by each test file with `#[path = "support/output.rs"] mod output;`.
//! Waits are bounded by the including file's own `TIMEOUT`.

#![allow(dead_code)]

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use crate::TIMEOUT;

/// Lines a child wrote to one pipe (a trailing `\r` dropped), collected by a
/// thread; `state` is (lines so far, pipe closed).
pub struct Output {
    pub what: String,
    pub state: Mutex<(Vec<String>, bool)>,
    pub changed: Condvar,
}

impl Output {
    pub fn collect(what: String, mut pipe: impl Read + Send + 'static) -> Arc<Output> {
        let out = Arc::new(Output {
            what,
            state: Mutex::new((Vec::new(), false)),
            changed: Condvar::new(),
        });
        let shared = Arc::clone(&out);
        thread::spawn(move || {
            let mut pending = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = pipe.read(&mut chunk).unwrap_or(0);
                let mut state = shared.state.lock().unwrap();
                if n == 0 {
                    if !pending.is_empty() {
                        state.0.push(String::from_utf8_lossy(&pending).into_owned());
                    }
                    state.1 = true;
                    shared.changed.notify_all();
                    return;
                }
                pending.extend_from_slice(&chunk[..n]);
                while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    let line = String::from_utf8_lossy(&line[..pos]);
                    state.0.push(line.trim_end_matches('\r').to_string());
                }
                shared.changed.notify_all();
            }
        });
        out
    }

    /// The first line (from the start) satisfying `pred`, waiting up to
    /// `TIMEOUT`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(line) = state.0.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if state.1 || now >= deadline {
                let why = if state.1 { "closed" } else { "timed out" };
                panic!(
                    "{}: {why} waiting for {what}; got:\n{}",
                    self.what,
                    state.0.join("\n")
                );
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Waits until `n` lines satisfy `pred`.
    pub fn wait_count(&self, what: &str, n: usize, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.state.lock().unwrap();
        loop {
            if state.0.iter().filter(|l| pred(l)).count() >= n {
                return;
            }
            let now = Instant::now();
            if state.1 || now >= deadline {
                panic!(
                    "{}: waiting for {n} lines {what}; got:\n{}",
                    self.what,
                    state.0.join("\n")
                );
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    pub fn has_line(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.state.lock().unwrap().0.iter().any(|l| pred(l))
    }

    pub fn wait_eof(&self) {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            assert!(now < deadline, "{}: not closed in time", self.what);
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}
