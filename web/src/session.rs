//! One browser tab's client: the core's [`ClientDriver`] with what a
//! runtime adds around it (the clock as the page reads it, the tab's
//! in-memory files, the rooms to rejoin after a lost connection), and the
//! outputs the page carries out, in order.
//!
//! Nothing here touches the browser: the page hands in bytes, commands and
//! the time, and takes out [`Output`]s. That keeps this file testable with
//! `cargo test` on any machine, and the page's JavaScript a thin shell.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use core::net::SocketAddr;

use lantalk_core::client::{ClientConfig, ClientEvent, ClientSecure, NewKey, Rejoin};
use lantalk_core::driver::{
    ClientDriver, ClientHost, ClientInput, ClientOutcome, ClientOutput, Command, Control,
};
use lantalk_core::secure::StaticKey;
use lantalk_core::time::{Instant, WallTime};
use lantalk_core::transfer::{FileRequest, SideId};
use serde_json::{json, Value};

use crate::events::{self, unhex};
use crate::files::{Disk, Saved};

/// What the page does next.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// Show this, or act on it (a JSON object with its kind in `"t"`).
    Json(Value),
    /// Send these bytes on the chat WebSocket.
    Transmit(Vec<u8>),
    /// Send these bytes on a side connection's WebSocket.
    SideTransmit(u64, Vec<u8>),
    /// A download is whole and verified: offer it to the person.
    Save(Saved),
}

/// The clock and queues the core's host callbacks fill; shared with the
/// [`ClientHost`] the driver owns.
#[derive(Default)]
struct Shared {
    wall: Option<WallTime>,
    events: VecDeque<ClientEvent>,
    files: VecDeque<FileRequest>,
}

struct TabHost(Arc<Mutex<Shared>>);

impl ClientHost for TabHost {
    fn wall_time(&mut self) -> WallTime {
        lock(&self.0).wall.unwrap_or(WallTime {
            hour: 0,
            minute: 0,
            unix_ms: 0,
        })
    }
    fn event(&mut self, event: &ClientEvent) {
        lock(&self.0).events.push_back(event.clone());
    }
    // The page connects by URL and feeds commands in directly: it needs
    // neither the address nor the control handle.
    fn ready(&mut self, _server_addr: SocketAddr, _control: Control) {}
    fn files(&mut self, request: FileRequest) {
        lock(&self.0).files.push_back(request);
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // One thread in a tab: a poisoned lock only means a panic already
    // ended the session; the data is still what it was.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct Session {
    driver: Option<ClientDriver>,
    shared: Arc<Mutex<Shared>>,
    disk: Disk,
    out: VecDeque<Output>,
    /// After a lost connection: the rooms to go back into and where to
    /// resume, so the next connection shows no line twice and none missing.
    rejoin: Vec<Rejoin>,
    now: Instant,
}

impl Session {
    /// The page's clock: `now_ms` monotonic (`performance.now()`), the wall
    /// clock in milliseconds since the epoch, and its local hour and minute.
    pub fn set_clock(&mut self, now_ms: f64, unix_ms: f64, hour: u8, minute: u8) {
        self.now = Instant::from_epoch(Duration::from_secs_f64(now_ms.max(0.0) / 1000.0));
        lock(&self.shared).wall = Some(WallTime {
            hour,
            minute,
            unix_ms: unix_ms as i64,
        });
    }

    /// A new connection was opened: log in over it. `config` is
    /// `{"name", "password", "identity", "seed", "pinned", "fresh"}`
    /// (keys as hex; `fresh`: a new login, not a reconnection).
    pub fn start(&mut self, config: &Value) -> Result<(), String> {
        let name = config["name"].as_str().unwrap_or("").trim().to_string();
        let password = config["password"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let identity = key32(&config["identity"]).ok_or("no identity key")?;
        let seed = key32(&config["seed"]).ok_or("no random seed")?;
        let pinned = config["pinned"].as_str().and_then(unhex);
        if config["fresh"].as_bool() == Some(true) {
            self.rejoin.clear();
        }
        let mut client = ClientConfig::new(name, password);
        // A browser member is never a plaintext member.
        client.allow_plaintext = false;
        client.rejoin = self.rejoin.clone();
        client.secure = Some(ClientSecure {
            identity: StaticKey::from_private(identity),
            rng_seed: seed,
            // Pinned in the page's storage; a first visit trusts the key
            // the server shows and the page pins it (`secured`, `new`).
            pinned,
            on_new_key: NewKey::Accept,
        });
        let host = Box::new(TabHost(Arc::clone(&self.shared)));
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        self.driver = Some(ClientDriver::new(
            self.now,
            client,
            host,
            unspecified,
            Arc::new(|_| {}),
        ));
        self.pump();
        Ok(())
    }

    /// Something happened: bytes, a side connection's news, the
    /// connection gone, a deadline.
    pub fn feed(&mut self, input: ClientInput<'_>) {
        if let Some(driver) = &mut self.driver {
            driver.handle_input(self.now, input);
            self.pump();
        }
    }

    /// A file the person picked to send (see [`Disk::pick`]).
    pub fn pick(&mut self, name: String, bytes: Vec<u8>, modified_ms: i64) -> Result<(), String> {
        self.disk.pick(name, bytes, modified_ms)
    }

    /// The next thing for the page to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to feed [`ClientInput::Timeout`], in the page's milliseconds.
    pub fn timeout_ms(&self) -> Option<f64> {
        let at = self.driver.as_ref()?.poll_timeout()?;
        Some(at.since_epoch().as_secs_f64() * 1000.0)
    }

    /// Runs the driver until it has nothing more to say, carrying out file
    /// requests on the tab's disk as they come.
    fn pump(&mut self) {
        loop {
            if self.driver.is_none() {
                return;
            }
            while let Some(output) = self.driver.as_mut().and_then(ClientDriver::poll_output) {
                let out = match output {
                    ClientOutput::Transmit(bytes) => Output::Transmit(bytes),
                    ClientOutput::HalfClose => Output::Json(json!({ "t": "half_close" })),
                    ClientOutput::Open(SideId(side)) => {
                        Output::Json(json!({ "t": "open", "side": side }))
                    }
                    ClientOutput::SideTransmit(SideId(side), bytes) => {
                        Output::SideTransmit(side, bytes)
                    }
                    ClientOutput::SideWatchDrain(SideId(side)) => {
                        Output::Json(json!({ "t": "side_watch", "side": side }))
                    }
                    ClientOutput::SidePause(SideId(side), paused) => {
                        Output::Json(json!({ "t": "side_pause", "side": side, "paused": paused }))
                    }
                    ClientOutput::SideClose(SideId(side)) => {
                        Output::Json(json!({ "t": "side_close", "side": side }))
                    }
                    ClientOutput::Done(outcome) => Output::Json(self.done(outcome)),
                };
                // Events the output's input caused come first, in order.
                self.flush_events();
                self.out.push_back(out);
            }
            self.flush_events();
            let request = lock(&self.shared).files.pop_front();
            let Some(request) = request else {
                return;
            };
            let (reply, saved) = self.disk.handle(request);
            if let Some(saved) = saved {
                self.out.push_back(Output::Save(saved));
            }
            if let (Some(reply), Some(driver)) = (reply, &mut self.driver) {
                driver.handle_input(
                    self.now,
                    ClientInput::Command(Command::Files(Box::new(reply))),
                );
            }
        }
    }

    fn flush_events(&mut self) {
        let events: Vec<_> = lock(&self.shared).events.drain(..).collect();
        self.out
            .extend(events.iter().map(|e| Output::Json(events::to_json(e))));
    }

    fn done(&mut self, outcome: ClientOutcome) -> Value {
        if !outcome.refused && !outcome.expected {
            // Lost, not refused or left: the next connection goes back.
            self.rejoin = outcome.rejoin;
        }
        json!({
            "t": "done",
            "expected": outcome.expected,
            "refused": outcome.refused,
            "reason": outcome.reason,
            "why": outcome.why.map(|w| w.code()),
            "resume": outcome.resume,
        })
    }
}

fn key32(value: &Value) -> Option<[u8; 32]> {
    unhex(value.as_str()?)?.try_into().ok()
}
