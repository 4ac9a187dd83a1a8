//! Idle connections without a thread (Linux): a reader that has had nothing
//! to read for [`READER_IDLE`] hands its connection to one watcher thread and
//! leaves. The watcher waits on every idle socket at once with epoll, and
//! starts a reader again for each one whose peer sends something, closes or
//! fails.
//!
//! Why: a thread costs two resident pages of stack however small its stack
//! is (glibc keeps its control block and TLS at the top), 8 KiB; for 10,000
//! idle connections that alone is 78 MiB. A watched socket costs a map entry
//! here and an entry in the kernel's epoll set. The price: the first input
//! after a pause waits for a thread to start. (epoll, not poll(2): a
//! blocking poll registers with every socket on each call, measured at
//! about 1.3 µs per idle socket per wake-up.)

use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use lantalk_core::server::ConnId;

use super::{Input, Readers, ServerInput, Shared, CONN_STACK};

/// A reader with nothing to read for this long hands its connection over.
pub(super) const READER_IDLE: Duration = Duration::from_secs(2);
/// How long the watcher waits before it tries again after epoll failed,
/// rather than spinning.
const RETRY: Duration = Duration::from_millis(50);
/// Events taken from the kernel per call.
const EVENTS: usize = 64;

/// Where readers hand over their idle connections.
pub(super) struct Idle {
    epoll: OwnedFd,
    /// The connections handed over, by id (which is what epoll reports).
    parked: Mutex<HashMap<ConnId, Arc<Shared>>>,
}

impl Idle {
    pub(super) fn new() -> io::Result<Idle> {
        // SAFETY: no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor, which nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Idle {
            epoll,
            parked: Mutex::new(HashMap::new()),
        })
    }

    /// Hands an idle connection to the watcher; false if it cannot be
    /// watched (its reader then carries on).
    pub(super) fn park(&self, id: ConnId, shared: &Arc<Shared>) -> bool {
        // In the map before epoll can report it.
        self.parked().insert(id, Arc::clone(shared));
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: id.0,
        };
        let fd = shared.stream.as_raw_fd();
        // SAFETY: event is a valid epoll_event for the duration of the call.
        let added =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if added < 0 {
            self.parked().remove(&id);
            return false;
        }
        true
    }

    /// Takes a connection back from the watch.
    fn unpark(&self, id: ConnId) -> Option<Arc<Shared>> {
        let shared = self.parked().remove(&id)?;
        // SAFETY: no pointers (the event argument may be null for a removal).
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                shared.stream.as_raw_fd(),
                std::ptr::null_mut(),
            );
        }
        Some(shared)
    }

    fn parked(&self) -> MutexGuard<'_, HashMap<ConnId, Arc<Shared>>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a read failed only because the peer sent nothing for
/// [`READER_IDLE`].
pub(super) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Starts the watcher thread.
pub(super) fn watch(readers: Arc<Readers>) -> io::Result<()> {
    thread::Builder::new()
        .name("idle".into())
        .stack_size(CONN_STACK)
        .spawn(move || watch_loop(&readers))
        .map(drop)
}

fn watch_loop(readers: &Arc<Readers>) {
    let idle = &readers.idle;
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        // SAFETY: events is writable for EVENTS entries.
        let n = unsafe {
            libc::epoll_wait(
                idle.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as libc::c_int,
                -1,
            )
        };
        let Ok(n) = usize::try_from(n) else {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                thread::sleep(RETRY);
            }
            continue;
        };
        for event in &events[..n] {
            let id = ConnId(event.u64);
            if let Some(shared) = idle.unpark(id) {
                wake(readers, id, shared);
            }
        }
    }
}

/// The peer of an idle connection sent something, closed or failed: a new
/// reader thread finds out which.
fn wake(readers: &Arc<Readers>, id: ConnId, shared: Arc<Shared>) {
    if readers.spawn(id, Arc::clone(&shared)).is_err() {
        // No thread to read with: dropped, as when it connected.
        let _ = shared.stream.shutdown(Shutdown::Both);
        let _ = readers.tx.send(Input::Core(ServerInput::Closed(id)));
    }
}
