//! Runs the LanTalk core on blocking `std::net` sockets and OS threads.
//!
//! No protocol logic lives here: threads read bytes, the core decides, and
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

/// The blocking, thread-per-connection runtime.
pub struct StdRuntime;

impl Runtime for StdRuntime {
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
