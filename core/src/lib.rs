//! LanTalk's protocol core, free of I/O.
//!
//! Everything a LanTalk server or client decides lives here as a pure state
//! machine: bytes, typed lines and timestamps go in, actions come out. The
//! runtimes (`lantalk-runtime-smol`, `lantalk-runtime-std`) only move bytes
//! between sockets and these machines, which is why both behave identically
//! and why every behaviour can be tested here without a socket.

pub mod approval;
pub mod bans;
pub mod client;
pub mod commands;
pub mod discovery;
pub mod driver;
pub mod framing;
pub mod history;
pub mod json;
pub mod names;
pub mod password;
pub mod plugin;
pub mod protocol;
pub mod ratelimit;
pub mod rooms;
pub mod secure;
pub mod server;
pub mod text;
pub mod time;
pub mod transfer;
pub mod web;

pub use bans::BanList;
pub use server::{Action, ConnId, Server, ServerConfig};
pub use time::{Instant, Now, WallTime};
