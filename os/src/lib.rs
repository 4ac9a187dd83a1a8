//! What both runtimes ask of the operating system, written once, and the
//! [`Runtime`] trait they implement: a listener
//! that survives a burst of connections (and the back-off when accepting
//! fails), as many file descriptors as the system allows, freed memory given
//! back once a server is quiet, and the monotonic clock the core is given.
//!
//! Nothing here knows the protocol; the runtimes, and the CLI that picks
//! one, are its only users.

mod backoff;
mod clock;

pub use backoff::AcceptBackoff;
pub use clock::Clock;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// One way of running the core on real sockets. It lives here, beside
/// the runtimes' other glue, not in the core: its listener is an I/O handle,
/// and the core holds none.
pub trait Runtime {
    /// Binds `bind`, serves until shut down, then flushes and returns.
    /// Connections accepted on `web` (bound by the application, which
    /// decides what to do when its port is taken) are web connections
    /// ([`lantalk_core::Server::handle_connect_web`]).
    fn serve(
        bind: SocketAddr,
        web: Option<TcpListener>,
        server: lantalk_core::Server,
        host: Box<dyn lantalk_core::driver::ServerHost>,
    ) -> io::Result<()>;
    /// Connects to the first of `addrs` that answers and runs the client until
    /// it is done.
    fn connect(
        addrs: &[SocketAddr],
        config: lantalk_core::client::ClientConfig,
        host: Box<dyn lantalk_core::driver::ClientHost>,
    ) -> io::Result<lantalk_core::driver::ClientOutcome>;
}

/// Connections waiting to be accepted. Far above std's 128, which drops
/// connections when hundreds of clients arrive at once (the kernel caps it
/// at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds with a backlog that survives a burst of connections (std offers no
/// way to choose it).
pub fn listen(bind: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::STREAM, Some(Protocol::TCP))?;
    // As std does: a restarted server can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&bind.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Raises the soft limit on open files to the hard limit: each connection is
/// a file descriptor, and the usual soft limit of 1024 would cap the server
/// far below what it can serve.
#[cfg(unix)]
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let current = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            // macOS refuses more than OPEN_MAX even when the hard limit is
            // unlimited.
            lim.rlim_cur = lim.rlim_max.min(10240).max(current);
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Elsewhere the limit is the system's to set.
#[cfg(not(unix))]
pub fn raise_fd_limit() {}

/// How often a server checks whether it went quiet after a burst.
pub const TRIM_CHECK: Duration = Duration::from_secs(2);

/// Decides when to give freed memory back: once after each burst, when the
/// server has gone quiet. glibc's allocator keeps freed memory in the middle
/// of its heaps; after a storm of joins (every join is announced to
/// everyone) that was most of a server's resident memory, about 12 KiB per
/// idle connection instead of 3.
#[derive(Debug)]
pub struct Trimmer {
    seen: u64,
    dirty: bool,
}

impl Trimmer {
    /// Inputs per [`TRIM_CHECK`] that still count as quiet.
    const QUIET_INPUTS: u64 = 256;

    /// `activity` is the server's count of inputs handled so far.
    pub fn new(activity: u64) -> Self {
        Trimmer {
            seen: activity,
            dirty: false,
        }
    }

    /// Called every [`TRIM_CHECK`] with the count of inputs so far: gives
    /// memory back if the server was busy since the last trim and is quiet
    /// now.
    pub fn check(&mut self, activity: u64) {
        if self.should_trim(activity) {
            release_free_memory();
        }
    }

    fn should_trim(&mut self, activity: u64) -> bool {
        let busy = activity.wrapping_sub(self.seen);
        self.seen = activity;
        self.dirty |= busy > 0;
        let trim = self.dirty && busy <= Self::QUIET_INPUTS;
        if trim {
            self.dirty = false;
        }
        trim
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators give memory back by themselves, or cannot be asked.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_when_quiet_after_activity() {
        let mut t = Trimmer::new(0);
        assert!(!t.should_trim(0), "nothing happened yet");
        assert!(!t.should_trim(10_000), "still busy");
        assert!(t.should_trim(10_000), "quiet after a burst");
        assert!(!t.should_trim(10_000), "already given back");
        assert!(t.should_trim(10_010), "light traffic counts as quiet");
        assert!(!t.should_trim(10_010));
    }

    #[test]
    fn listens_on_an_ephemeral_loopback_port() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }
}
