//! The contract between the core, the runtimes and the application.
//!
//! A runtime moves bytes and wakes at deadlines; the application (the CLI)
//! stores files, writes logs and talks to the person. Neither decides anything
//! about the protocol. The pieces both runtimes would otherwise write twice —
//! running a client session ([`ClientDriver`]), carrying out the server's
//! actions ([`dispatch_server`]) and feeding it input ([`deliver_input`],
//! [`deliver_disconnect`]), bounding each connection's outbound queue
//! ([`OutQueue`]) — live here, written once, with no I/O of their own.

use std::sync::Arc;

use core::net::SocketAddr;

use crate::bans::BanList;
use crate::client::ClientEvent;
use crate::protocol::Refusal;
use crate::server::{ApprovalRequest, ServerEvent, TrustedPeer};
use crate::time::WallTime;

mod client;
mod queue;
mod server;

pub use client::{dispatch_client, ClientDriver, ClientInput, ClientOutput, LINGER};
pub use queue::{OutQueue, QueueFull, DEFAULT_QUEUE_BYTES};
pub use server::{
    accept_server, deliver_disconnect, deliver_input, dispatch_server, feed_server, Listener,
    ServerInput, Transport,
};

/// What the application does with everything that is not the network.
pub trait ServerHost: Send + 'static {
    /// The local time of day, for the `ts` field.
    fn wall_time(&mut self) -> WallTime;
    /// The ban list changed: store it (atomically).
    fn persist_bans(&mut self, bans: &BanList);
    /// The trusted peers changed: store the whole list (atomically).
    fn persist_trusted(&mut self, peers: &[TrustedPeer]);
    /// Ask the operator about `request` (its `Display` is the question);
    /// the answer comes back as a console line or `Server::handle_approval`.
    fn ask_operator(&mut self, request: &ApprovalRequest);
    /// Show and/or log an event.
    fn event(&mut self, event: &ServerEvent);
    /// Keep a record, or run a query off the event loop and deliver its
    /// answer as [`Command::Stored`] (only asked when the server's
    /// `HistoryConfig::store` is set).
    fn store(&mut self, request: crate::history::StoreRequest);
    /// Carry out a file request off the event loop (in the server's files
    /// folder: [`crate::transfer::Place::Shared`] only) and deliver its
    /// answer as [`Command::Files`].
    fn files(&mut self, request: crate::transfer::FileRequest);
    /// The files the server keeps changed: store the whole list
    /// (atomically), so offers survive a restart.
    fn persist_files(&mut self, files: &[crate::transfer::SharedFile]);
    /// Start, feed or stop a plugin process (`cli/src/plugins.rs`), never
    /// waiting for it; deliver what it writes and its end as
    /// [`Command::Plugin`].
    fn plugin(&mut self, request: crate::plugin::PluginRequest);
    /// The listener is bound and the server is running; `control` feeds it
    /// console lines and shutdown requests from any thread.
    fn ready(&mut self, local_addr: SocketAddr, control: Control);
}

/// What the application does for a client.
pub trait ClientHost: Send + 'static {
    fn wall_time(&mut self) -> WallTime;
    /// Show an event to the user.
    fn event(&mut self, event: &ClientEvent);
    /// Connected (not yet logged in); `control` feeds the user's input.
    fn ready(&mut self, server_addr: SocketAddr, control: Control);
    /// Carry out a file request off the event loop (reading a file to send,
    /// writing one being received) and deliver its answer as
    /// [`Command::Files`].
    fn files(&mut self, request: crate::transfer::FileRequest);
}

/// Input from outside the network, delivered to a running server or client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A line the operator or user typed.
    Line(String),
    /// The password the user was asked for.
    Password(String),
    /// The user's answer about a server key seen for the first time.
    Trust(bool),
    /// End of input (stdin closed): the server keeps running, the client
    /// finishes sending and leaves.
    EndOfInput,
    /// Stop: a signal or the user giving up.
    Shutdown,
    /// The history store's answer to a query (servers only).
    Stored(Box<crate::history::StoreReply>),
    /// The answer to a file request.
    Files(Box<crate::transfer::FileReply>),
    /// A plugin process wrote a line or went away (servers only).
    Plugin(Box<crate::plugin::PluginReply>),
}

/// A thread-safe way to deliver [`Command`]s to a running loop.
pub type Control = Arc<dyn Fn(Command) + Send + Sync>;

/// How a client session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOutcome {
    /// The user left on purpose (exit status 0); otherwise it was refused or lost.
    pub expected: bool,
    /// The session never got past the login.
    pub refused: bool,
    pub reason: String,
    /// Why it was refused, as a value (what to ask the user next).
    pub why: Option<Refusal>,
    /// Where to pick up again if the user reconnects: the rooms and the
    /// last message seen in each (servers of ours).
    pub rejoin: Vec<crate::client::Rejoin>,
    /// Transfers under way when it ended, as the commands that take them up
    /// again from their last checked chunk (`/send #team slides.pdf`,
    /// `/get 3`): typed again after reconnecting.
    pub resume: Vec<String>,
}
