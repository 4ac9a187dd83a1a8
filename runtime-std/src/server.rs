//! The server on blocking sockets: one thread owns the core, every connection
//! has a reader thread and — while it has output — a writer thread, and
//! everything reaches the core through one bounded channel (so a fast sender
//! is slowed down by backpressure instead of growing a queue).
//!
//! What a connection costs, and why: one file descriptor (reader and writer
//! share the socket), one reader thread with a small stack, and the core's
//! state for it. Its writer thread exists only while there is output: it
//! leaves after [`WRITER_IDLE`] without any, and the next output starts a new
//! one, so idle connections hold one thread, not two.
//!
//! Writes are batched: the core thread handles every input that is waiting
//! before it wakes the writers, and wakes only those that are parked; each
//! writer then takes everything queued for its connection in one write.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lantalk_core::driver::{
    dispatch_server, Command, OutQueue, QueueFull, ServerHost, Transport, DEFAULT_QUEUE_BYTES,
};
use lantalk_core::server::{ConnId, DisconnectCause, Payload};
use lantalk_core::Server;

use crate::clock::Clock;

/// Stack for per-connection threads: they only shuffle bytes. Only the pages
/// a thread touches count towards memory; this bounds address space.
const CONN_STACK: usize = 64 * 1024;
/// How long flushing a closing connection (and the whole server on shutdown)
/// may take before it is cut off.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// Chat input is small; a larger read only costs memory per connection.
const READ_CHUNK: usize = 2048;
const STALLED_WRITE: Duration = Duration::from_secs(30);
/// A writer with nothing to write for this long leaves.
const WRITER_IDLE: Duration = Duration::from_secs(2);
/// Inputs handled before the writers are woken, at most.
const BATCH: usize = 256;
/// A writer's buffer that grew past this in a burst is freed after the write.
const KEEP_WRITE_CAPACITY: usize = 16 * 1024;
/// Connections waiting to be accepted. Far above std's 128, which drops
/// connections when hundreds of clients arrive at once (the kernel caps it
/// at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;
/// How often the server checks whether it went quiet after a burst.
const TRIM_CHECK: Duration = Duration::from_secs(2);
/// Inputs per [`TRIM_CHECK`] that still count as quiet.
const QUIET_INPUTS: u64 = 256;
/// Memory mappings each thread costs (stack, signal stack, their guard
/// pages, allocator arenas), measured on Linux.
const MAPPINGS_PER_THREAD: usize = 6;

/// Inputs handled so far, for [`trim_when_quiet`].
static ACTIVITY: AtomicU64 = AtomicU64::new(0);
/// Connection threads alive now.
static THREADS: AtomicUsize = AtomicUsize::new(0);

enum Input {
    Accepted(TcpStream, SocketAddr),
    Data(ConnId, Vec<u8>),
    Closed(ConnId),
    Command(Command),
}

pub fn serve(
    bind: SocketAddr,
    mut server: Server,
    mut host: Box<dyn ServerHost>,
) -> io::Result<()> {
    raise_fd_limit();
    let listener = listen(bind)?;
    let local = listener.local_addr()?;
    let clock = Clock::new();
    let (tx, rx) = sync_channel::<Input>(1024);

    let control_tx = tx.clone();
    host.ready(
        local,
        Arc::new(move |cmd| {
            let _ = control_tx.send(Input::Command(cmd));
        }),
    );
    let accept_tx = tx.clone();
    thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_loop(listener, accept_tx))?;
    thread::Builder::new()
        .name("trim".into())
        .stack_size(CONN_STACK)
        .spawn(trim_when_quiet)?;

    let mut conns = Conns {
        map: HashMap::new(),
        closing: Vec::new(),
        reading: HashSet::new(),
        to_wake: Vec::new(),
        tx,
    };
    run_loop(&mut server, &mut *host, &clock, &rx, &mut conns);
    conns.finish(&rx);
    Ok(())
}

/// Binds with a backlog that survives a burst of connections (std offers no
/// way to choose it).
fn listen(bind: SocketAddr) -> io::Result<TcpListener> {
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
fn raise_fd_limit() {
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

#[cfg(not(unix))]
fn raise_fd_limit() {}

fn run_loop(
    server: &mut Server,
    host: &mut dyn ServerHost,
    clock: &Clock,
    rx: &Receiver<Input>,
    conns: &mut Conns,
) {
    loop {
        let input = match server.poll_timeout() {
            Some(deadline) => match rx.recv_timeout(clock.until(deadline)) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(input) => Some(input),
                Err(_) => return,
            },
        };
        if handle(server, host, clock, conns, input) {
            return;
        }
        // Whatever else is already waiting goes out in the same writes.
        for _ in 0..BATCH {
            let Ok(input) = rx.try_recv() else {
                break;
            };
            if handle(server, host, clock, conns, Some(input)) {
                return;
            }
        }
        conns.wake_writers();
    }
}

/// Feeds one input to the core and carries out its actions; true once the
/// server has shut down.
fn handle(
    server: &mut Server,
    host: &mut dyn ServerHost,
    clock: &Clock,
    conns: &mut Conns,
    input: Option<Input>,
) -> bool {
    let now = clock.now(host.wall_time());
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
    match input {
        None => server.handle_timeout(now),
        Some(Input::Accepted(stream, addr)) => {
            let id = server.handle_connect(now, addr);
            conns.open(id, stream);
        }
        Some(Input::Data(id, bytes)) => {
            let _ = server.handle_input(now, id, &bytes);
        }
        Some(Input::Closed(id)) => {
            conns.reading.remove(&id);
            conns.peer_closed(id);
            let _ = server.handle_disconnect(now, id, DisconnectCause::PeerClosed);
        }
        Some(Input::Command(Command::Line(line))) => server.handle_console(now, &line),
        Some(Input::Command(Command::Shutdown)) => server.shutdown(now),
        // What only a client is asked (passwords, trusting keys), and the end
        // of the console's input, which leaves the server running.
        Some(Input::Command(_)) => {}
    }
    let shut_down = dispatch_server(server, now, conns, host);
    if shut_down {
        conns.wake_writers();
    }
    shut_down
}

fn accept_loop(listener: TcpListener, tx: SyncSender<Input>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept() {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                if tx.send(Input::Accepted(stream, addr)).is_err() {
                    return;
                }
            }
            // Out of file descriptors and the like: wait and try again rather
            // than dying; connections already open keep working.
            Err(_) => {
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Gives the memory freed after a burst back to the system once the server
/// is quiet again (glibc keeps freed memory in the middle of its heaps).
fn trim_when_quiet() {
    let mut seen = ACTIVITY.load(Ordering::Relaxed);
    let mut dirty = false;
    loop {
        thread::sleep(TRIM_CHECK);
        let now = ACTIVITY.load(Ordering::Relaxed);
        let busy = now - seen;
        seen = now;
        dirty |= busy > 0;
        if dirty && busy <= QUIET_INPUTS {
            release_free_memory();
            dirty = false;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// How many connection threads may run at once. On Linux every thread costs
/// several memory mappings, and a thread that cannot map its signal stack
/// aborts the whole process (Rust's runtime cannot recover from that), so
/// threads are kept well inside `vm.max_map_count`; beyond that a new
/// connection is refused and a connection whose writer cannot start is
/// dropped like a slow reader. Elsewhere the operating system's own limits
/// apply.
fn thread_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(|maps| maps.saturating_sub(2048) / MAPPINGS_PER_THREAD)
            .unwrap_or(usize::MAX)
    })
}

/// Starts a connection thread if the budget allows.
fn spawn_conn_thread(f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    if THREADS.fetch_add(1, Ordering::AcqRel) >= thread_budget() {
        THREADS.fetch_sub(1, Ordering::AcqRel);
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            "connection thread budget exhausted",
        ));
    }
    let spawned = thread::Builder::new().stack_size(CONN_STACK).spawn(|| {
        f();
        THREADS.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        THREADS.fetch_sub(1, Ordering::AcqRel);
    }
    spawned
}

/// What the writer thread and the core thread share for one connection.
struct Outbox {
    state: Mutex<OutState>,
    wake: Condvar,
    /// Set once the output side has flushed and half-closed: the reader
    /// stops too.
    done: AtomicBool,
}

struct OutState {
    queue: OutQueue,
    closing: bool,
    /// A writer thread is running for this connection.
    writer: bool,
    /// The writer is parked on the condition variable.
    parked: bool,
    /// A wake-up is already scheduled for the end of the batch.
    wake_scheduled: bool,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Conn {
    stream: Arc<TcpStream>,
    outbox: Arc<Outbox>,
    /// The current (or last) writer thread.
    writer: Option<JoinHandle<()>>,
}

struct Conns {
    map: HashMap<ConnId, Conn>,
    /// Writers of connections being closed, still flushing.
    closing: Vec<JoinHandle<()>>,
    /// Connections whose reader still runs (until the peer closes too).
    reading: HashSet<ConnId>,
    /// Parked writers that have output since the batch began.
    to_wake: Vec<Arc<Outbox>>,
    tx: SyncSender<Input>,
}

impl Conns {
    fn open(&mut self, id: ConnId, stream: TcpStream) {
        // A write blocked this long means the peer has read nothing for that
        // long; a timeout set later would not reach a write already blocked.
        let _ = stream.set_write_timeout(Some(STALLED_WRITE));
        let stream = Arc::new(stream);
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutState {
                queue: OutQueue::new(DEFAULT_QUEUE_BYTES),
                closing: false,
                writer: false,
                parked: false,
                wake_scheduled: false,
            }),
            wake: Condvar::new(),
            done: AtomicBool::new(false),
        });
        let tx = self.tx.clone();
        let (seen, read_half) = (Arc::clone(&outbox), Arc::clone(&stream));
        let reader = spawn_conn_thread(move || read_loop(id, read_half, tx, seen));
        match reader {
            Ok(_) => {
                self.reading.insert(id);
                self.map.insert(
                    id,
                    Conn {
                        stream,
                        outbox,
                        writer: None,
                    },
                );
            }
            // No thread could be started (resource exhaustion): drop the
            // connection and tell the core (if the channel has room; its
            // output is discarded either way).
            Err(_) => {
                let _ = stream.shutdown(Shutdown::Both);
                let _ = self.tx.try_send(Input::Closed(id));
            }
        }
    }

    /// The peer finished sending: deliver what is still queued for it (the
    /// answers to its last lines), then close.
    fn peer_closed(&mut self, id: ConnId) {
        self.close(id);
    }

    /// Wakes every parked writer that was given output since the last call.
    fn wake_writers(&mut self) {
        for outbox in self.to_wake.drain(..) {
            outbox.lock().wake_scheduled = false;
            outbox.wake.notify_one();
        }
    }

    /// After shutdown: let every writer flush, then give the peers a moment
    /// to read it all and close their side (closing ours first, with their
    /// input unread, could turn into a reset that loses the last lines).
    fn finish(&mut self, rx: &Receiver<Input>) {
        let ids: Vec<ConnId> = self.map.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        for writer in self.closing.drain(..) {
            let _ = writer.join();
        }
        let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
        while !self.reading.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(Input::Closed(id)) => {
                    self.reading.remove(&id);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

impl Transport for Conns {
    fn send(&mut self, conn: ConnId, bytes: Payload) -> Result<(), QueueFull> {
        let Some(c) = self.map.get_mut(&conn) else {
            return Ok(());
        };
        let mut state = c.outbox.lock();
        state.queue.push(bytes)?;
        if !state.writer {
            let (stream, outbox) = (Arc::clone(&c.stream), Arc::clone(&c.outbox));
            let spawned = spawn_conn_thread(move || write_loop(stream, outbox));
            match spawned {
                Ok(handle) => {
                    state.writer = true;
                    c.writer = Some(handle);
                }
                // No thread to write with: as good as a peer that never reads.
                Err(_) => return Err(QueueFull),
            }
        } else if state.parked && !state.wake_scheduled {
            state.wake_scheduled = true;
            self.to_wake.push(Arc::clone(&c.outbox));
        }
        Ok(())
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.map.remove(&conn) {
            let _ = c.stream.set_write_timeout(Some(FLUSH_TIMEOUT));
            let mut state = c.outbox.lock();
            state.closing = true;
            if state.writer {
                drop(state);
                c.outbox.wake.notify_one();
                self.closing.retain(|w| !w.is_finished());
                self.closing.extend(c.writer);
            } else {
                // No writer, so nothing queued: close the output side now.
                drop(state);
                half_close(&c.stream, &c.outbox);
            }
        }
    }

    fn abort(&mut self, conn: ConnId) {
        if let Some(c) = self.map.remove(&conn) {
            let _ = c.stream.shutdown(Shutdown::Both);
            c.outbox.lock().closing = true;
            c.outbox.wake.notify_one();
            c.outbox.done.store(true, Ordering::Release);
        }
    }
}

fn read_loop(id: ConnId, stream: Arc<TcpStream>, tx: SyncSender<Input>, outbox: Arc<Outbox>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if outbox.done.load(Ordering::Acquire) => break,
            Ok(n) => {
                if tx.send(Input::Data(id, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Input::Closed(id));
}

/// Writes whatever is queued, many messages per write; leaves when the
/// connection closes (after flushing) or after [`WRITER_IDLE`] with nothing
/// to write.
fn write_loop(stream: Arc<TcpStream>, outbox: Arc<Outbox>) {
    let mut buf = Vec::new();
    loop {
        let closing = {
            let mut state = outbox.lock();
            while state.queue.is_empty() && !state.closing {
                state.parked = true;
                let (s, waited) = outbox
                    .wake
                    .wait_timeout(state, WRITER_IDLE)
                    .unwrap_or_else(|e| e.into_inner());
                state = s;
                state.parked = false;
                if waited.timed_out() && state.queue.is_empty() && !state.closing {
                    // The next output starts another writer.
                    state.writer = false;
                    return;
                }
            }
            state.queue.drain_into(&mut buf);
            state.closing
        };
        if !buf.is_empty() && (&*stream).write_all(&buf).is_err() {
            break;
        }
        if buf.capacity() > KEEP_WRITE_CAPACITY {
            buf = Vec::new();
        }
        if closing && outbox.lock().queue.is_empty() {
            break;
        }
    }
    half_close(&stream, &outbox);
}

/// Half-closes so the peer reads everything before the end of the stream (a
/// full close with unread input would reset the connection and could discard
/// the last lines, such as the reason for a kick). The reader ends when the
/// peer closes too, or after a grace period.
fn half_close(stream: &TcpStream, outbox: &Outbox) {
    let _ = (&*stream).flush();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(FLUSH_TIMEOUT));
    outbox.done.store(true, Ordering::Release);
}
