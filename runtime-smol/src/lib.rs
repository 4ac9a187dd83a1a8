//! Runs the LanTalk core on a single-threaded smol event loop (async-net, async-io).
//!
//! No protocol logic lives here: tasks read bytes, the core decides, and
//! [`lantalk_core::driver`] carries out its actions (a client session is a
//! [`lantalk_core::driver::ClientDriver`]; the clock is [`lantalk_os::Clock`]).

mod client;
mod server;

use std::io;
use std::net::{SocketAddr, TcpListener};

use lantalk_core::client::ClientConfig;
use lantalk_core::driver::{ClientHost, ClientOutcome, ServerHost};
use lantalk_core::Server;
use lantalk_os::Runtime;

pub use client::CONNECT_TIMEOUT;

/// The event-loop runtime.
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    fn serve(
        bind: SocketAddr,
        web: Option<TcpListener>,
        server: Server,
        host: Box<dyn ServerHost>,
    ) -> io::Result<()> {
        server::serve(bind, web, server, host)
    }

    fn connect(
        addrs: &[SocketAddr],
        config: ClientConfig,
        host: Box<dyn ClientHost>,
    ) -> io::Result<ClientOutcome> {
        client::connect(addrs, config, host)
    }
}
