//! The server on blocking sockets: one thread owns the core, a connection
//! has a reader thread while its peer is sending, and everything reaches the
//! core through one bounded channel (so a fast sender is slowed down by
//! backpressure instead of growing a queue).
//!
//! The core thread writes the output itself: it handles every input that is
//! waiting (up to [`BATCH`]), then gives each connection that has output one
//! non-blocking send with everything queued for it. Only a connection whose
//! socket is full (its peer reads slowly) gets a writer thread, which blocks
//! until the backlog is out and leaves after [`WRITER_IDLE`] without output.
//! So the core thread never waits for a peer, a slow reader is still cut off
//! once its queue is full, and a busy server wakes no thread to write. Where
//! there is no per-call non-blocking send (outside unix), every connection
//! with output gets a writer thread instead.
//!
//! A reader that has had nothing to read for a moment hands its connection
//! to one watcher thread and leaves (on Linux; see `idle`), and the next
//! input starts a reader again. A thread would cost an idle connection about
//! 9 KiB: two pages of its stack (glibc puts a thread's control block and TLS
//! at the top of its stack, so every thread touches two pages, whatever its
//! stack size) and malloc's cache for the thread.
//!
//! What an idle connection costs, measured on Linux (glibc, x86-64): about
//! 3 KiB, the core's state for it and this module's (10,000 idle: 32 MiB in
//! all and 5 threads; with a reader thread each it was 121 MiB). Threads are
//! bounded by memory mappings rather than by memory: see [`mapping_budget`].
//!
//! Bulk data (files) is flow-controlled by the core: it asks to hear when a
//! connection's output has been written (whichever thread writes the last
//! byte reports it: a writer thread through the channel, the core thread
//! through `Conns::drained`) and pauses a connection's reading while it
//! cannot take more (its reader thread waits on a condition variable before
//! the next read, so TCP backpressure reaches the peer; an idle connection
//! whose peer sends while paused gets a reader from the watcher, which then
//! waits the same way).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lantalk_core::driver::{
    accept_server, deliver_disconnect, dispatch_server, feed_server, Listener, OutQueue, QueueFull,
    ServerHost, ServerInput, Transport, DEFAULT_QUEUE_BYTES,
};
use lantalk_core::password::{PasswordCheck, PasswordChecked};
use lantalk_core::server::{ConnId, DisconnectCause, Payload};
use lantalk_core::Server;

use lantalk_os::Clock;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod idle;

/// Stack for per-connection threads: they only shuffle bytes. Only the pages
/// a thread touches count towards memory: two, measured, whatever the size
/// (asking for 16 KiB gave a 28 KiB stack of which a reader touched three).
/// Larger is cheaper, since readers come and go: glibc keeps up to 40 MiB of
/// exited threads' stacks for reuse, touched pages and all (1,000 idle
/// connections: 8.5 KiB each with 64 KiB stacks, 5.0 KiB with these).
const CONN_STACK: usize = 256 * 1024;
/// How long flushing a closing connection (and the whole server on shutdown)
/// may take before it is cut off.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// The reader's buffer, on its stack. A reader exists only while its peer
/// is talking (on Linux an idle connection waits in the watcher, see
/// `idle`), so its stack pages cost only active connections; a larger read
/// hands the core more lines per input, and an encrypted peer gets all the
/// lines of one input in one sealed frame (8 KiB against 1 KiB, fan-out to
/// 100 encrypted clients: server CPU per delivery -25 %). Where readers stay
/// for idle connections too (not Linux), this is 7 KiB more per connection
/// than a 1 KiB buffer, which fits in the stack page every thread touches.
const READ_CHUNK: usize = 8 * 1024;
/// A connection whose reads keep filling [`READ_CHUNK`] is carrying bulk
/// data (a file on a side connection): it reads this much at a time from
/// then on, so a gigabyte is 4096 inputs for the core rather than 131,072.
const BULK_READ: usize = 256 * 1024;
const STALLED_WRITE: Duration = Duration::from_secs(30);
/// A writer with nothing to write for this long leaves.
const WRITER_IDLE: Duration = Duration::from_secs(2);
/// Inputs handled before the output is written, at most.
const BATCH: usize = 256;
/// A writer's buffer that grew past this in a burst is freed after the write.
const KEEP_WRITE_CAPACITY: usize = 16 * 1024;
/// Memory mappings a connection thread costs on Linux, measured (1,000
/// connections with a reader thread each: 4,075 mappings, against 51 with
/// none): its stack and the stack's guard page, and the signal stack Rust
/// gives every thread, with its guard page.
const THREAD_MAPPINGS: usize = 4;
/// A writer thread also stands for its connection's largest buffers (what it
/// writes, and the queue behind it), which malloc maps on their own once they
/// pass its threshold.
const WRITER_MAPPINGS: usize = THREAD_MAPPINGS + 2;
/// Mappings left for everything else: the program and its libraries,
/// malloc's heaps, and the stacks glibc keeps from threads that have exited.
const RESERVED_MAPPINGS: usize = 2048;

/// Inputs handled so far, for [`trim_when_quiet`].
static ACTIVITY: AtomicU64 = AtomicU64::new(0);
/// Memory mappings that connection threads account for now.
static MAPPINGS: AtomicUsize = AtomicUsize::new(0);

enum Input {
    Accepted(TcpStream, SocketAddr, Listener),
    /// Anything else, for the server as it is.
    Core(ServerInput),
}

pub fn serve(
    bind: SocketAddr,
    web: Option<TcpListener>,
    mut server: Server,
    mut host: Box<dyn ServerHost>,
) -> io::Result<()> {
    lantalk_os::raise_fd_limit();
    let listener = lantalk_os::listen(bind)?;
    let local = listener.local_addr()?;
    let clock = Clock::new();
    let (tx, rx) = sync_channel::<Input>(1024);

    let control_tx = tx.clone();
    host.ready(
        local,
        Arc::new(move |cmd| {
            let _ = control_tx.send(Input::Core(ServerInput::Command(cmd)));
        }),
    );
    let accept_tx = tx.clone();
    thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_loop(listener, Listener::Chat, accept_tx))?;
    if let Some(web) = web {
        let accept_tx = tx.clone();
        thread::Builder::new()
            .name("accept-web".into())
            .spawn(move || accept_loop(web, Listener::Web, accept_tx))?;
    }
    thread::Builder::new()
        .name("trim".into())
        .stack_size(CONN_STACK)
        .spawn(trim_when_quiet)?;

    let mut conns = Conns {
        map: HashMap::new(),
        closing: Vec::new(),
        reading: HashSet::new(),
        to_flush: Vec::new(),
        scratch: Vec::new(),
        answers: Vec::new(),
        drained: Vec::new(),
        readers: Readers::start(tx)?,
    };
    run_loop(&mut server, &mut *host, &clock, &rx, &mut conns);
    conns.finish(&rx);
    Ok(())
}

fn run_loop(
    server: &mut Server,
    host: &mut dyn ServerHost,
    clock: &Clock,
    rx: &Receiver<Input>,
    conns: &mut Conns,
) {
    loop {
        // Drains this thread saw itself come first, without waiting.
        let drained = std::mem::take(&mut conns.drained);
        if drained.is_empty() {
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
        }
        for id in drained {
            let input = Input::Core(ServerInput::Drained(id));
            if handle(server, host, clock, conns, Some(input)) {
                return;
            }
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
        if flush(server, host, clock, conns) {
            return;
        }
    }
}

/// Writes what the batch queued, many messages per write. A connection whose
/// socket is full and for which no writer thread can be started is dropped
/// like a reader that is too slow; the core hears of it, and what it says
/// about that is written in turn. True once the server has shut down.
fn flush(server: &mut Server, host: &mut dyn ServerHost, clock: &Clock, conns: &mut Conns) -> bool {
    loop {
        let stuck = conns.flush();
        if stuck.is_empty() {
            return false;
        }
        let now = clock.now(host.wall_time());
        for id in stuck {
            conns.abort(id);
            deliver_disconnect(server, now, id, DisconnectCause::SlowReader);
        }
        if dispatch_server(server, now, conns, host) {
            return true;
        }
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
        None => feed_server(server, now, ServerInput::Timeout),
        Some(Input::Accepted(stream, addr, listener)) => {
            let id = accept_server(server, now, listener, addr);
            conns.open(id, stream);
        }
        Some(Input::Core(input)) => match input {
            ServerInput::Closed(id) => {
                conns.reading.remove(&id);
                conns.peer_closed(id);
                feed_server(server, now, input);
            }
            // The connection was closed since its drain was seen: the core
            // has forgotten it.
            ServerInput::Drained(id) if !conns.map.contains_key(&id) => {}
            input => feed_server(server, now, input),
        },
    }
    let mut shut_down = dispatch_server(server, now, conns, host);
    while let Some(answer) = conns.answers.pop() {
        server.handle_password_checked(now, answer);
        shut_down |= dispatch_server(server, now, conns, host);
    }
    shut_down
}

fn accept_loop(listener: TcpListener, kind: Listener, tx: SyncSender<Input>) {
    let mut backoff = lantalk_os::AcceptBackoff::new();
    loop {
        match listener.accept() {
            Ok((stream, addr)) => {
                backoff.accepted();
                let _ = stream.set_nodelay(true);
                if tx.send(Input::Accepted(stream, addr, kind)).is_err() {
                    return;
                }
            }
            // Out of file descriptors and the like: wait and try again rather
            // than dying; connections already open keep working.
            Err(_) => {
                thread::sleep(backoff.failed());
            }
        }
    }
}

/// Gives the memory freed after a burst back to the system once the server
/// is quiet again (see [`lantalk_os::Trimmer`]).
fn trim_when_quiet() {
    let mut trimmer = lantalk_os::Trimmer::new(ACTIVITY.load(Ordering::Relaxed));
    loop {
        thread::sleep(lantalk_os::TRIM_CHECK);
        trimmer.check(ACTIVITY.load(Ordering::Relaxed));
    }
}

/// How many memory mappings connection threads may account for. On Linux
/// every thread costs several, and a thread that cannot map its signal stack
/// aborts the whole process (Rust's runtime cannot recover from that), so
/// threads are kept inside `vm.max_map_count` (65,530 by default: about
/// 15,800 threads); beyond that a new connection is refused, an idle one
/// whose peer sends again is dropped, and so is a connection whose writer
/// cannot start, like a slow reader.
/// Elsewhere the operating system's own limits apply.
fn mapping_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(|maps| maps.saturating_sub(RESERVED_MAPPINGS))
            .unwrap_or(usize::MAX)
    })
}

/// Starts a connection thread that accounts for `mappings`, if the budget
/// allows.
fn spawn_conn_thread(
    mappings: usize,
    f: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    if MAPPINGS.fetch_add(mappings, Ordering::AcqRel) + mappings > mapping_budget() {
        MAPPINGS.fetch_sub(mappings, Ordering::AcqRel);
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            "connection thread budget exhausted",
        ));
    }
    let spawned = thread::Builder::new()
        .stack_size(CONN_STACK)
        .spawn(move || {
            f();
            MAPPINGS.fetch_sub(mappings, Ordering::AcqRel);
        });
    if spawned.is_err() {
        MAPPINGS.fetch_sub(mappings, Ordering::AcqRel);
    }
    spawned
}

/// One connection, as the core thread, its reader thread and (while its
/// socket is full) its writer thread share it.
struct Shared {
    stream: TcpStream,
    state: Mutex<OutState>,
    wake: Condvar,
    /// Set once the output side has flushed and half-closed: the reader
    /// stops too.
    done: AtomicBool,
    /// The core cannot take more input yet ([`Transport::pause_reading`]):
    /// the reader waits on `resume` before its next read, so the peer's TCP
    /// window fills and it waits. An atomic so that reading does not take
    /// the lock; whoever clears it takes the lock before notifying, so a
    /// reader about to wait cannot miss it.
    paused: AtomicBool,
    /// Where a paused reader waits (with `state`'s lock).
    resume: Condvar,
}

struct OutState {
    queue: OutQueue,
    closing: bool,
    /// The output side is finished (flushed and half-closed, failed, or
    /// aborted): whatever is queued later is discarded.
    ended: bool,
    /// A writer thread is running for this connection; until it leaves, only
    /// it writes.
    writer: bool,
    /// The writer is parked on the condition variable.
    parked: bool,
    /// The connection is on the list the core thread flushes at the end of
    /// the batch.
    scheduled: bool,
    /// The core asked to hear once everything queued has been written
    /// ([`Transport::watch_drain`]); whoever writes the last of it (the
    /// core thread or the writer thread) reports it.
    drain_watch: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        if !paused {
            drop(self.lock());
            self.resume.notify_all();
        }
    }

    /// Blocks the reader while the core has paused it (no busy wait: a
    /// paused transfer can last as long as the disk is slow).
    fn wait_while_paused(&self) {
        if !self.paused.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.lock();
        while self.paused.load(Ordering::Acquire) {
            state = self.resume.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    /// The current (or last) writer thread.
    writer: Option<JoinHandle<()>>,
}

struct Conns {
    map: HashMap<ConnId, Conn>,
    /// Writers of connections being closed, still flushing.
    closing: Vec<JoinHandle<()>>,
    /// Connections whose reader still runs (until the peer closes too).
    reading: HashSet<ConnId>,
    /// Connections given output (or closed) since the batch began.
    to_flush: Vec<(ConnId, Arc<Shared>)>,
    /// What the core thread writes from: one buffer for every connection.
    scratch: Vec<u8>,
    readers: Arc<Readers>,
    /// Password checks that had to run on the core thread, to hand back.
    answers: Vec<PasswordChecked>,
    /// Connections whose drain the core thread saw itself (it wrote the last
    /// of their output, or there was none): fed to the core as inputs
    /// before the next wait. Not sent through the channel, whose only
    /// reader is this thread: a full channel would block it for ever.
    drained: Vec<ConnId>,
}

/// What every reader thread shares: the way to the core and (on Linux)
/// where idle connections are handed over.
struct Readers {
    tx: SyncSender<Input>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    idle: idle::Idle,
}

impl Readers {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn start(tx: SyncSender<Input>) -> io::Result<Arc<Readers>> {
        let idle = idle::Idle::new()?;
        let readers = Arc::new(Readers { tx, idle });
        idle::watch(Arc::clone(&readers))?;
        Ok(readers)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn start(tx: SyncSender<Input>) -> io::Result<Arc<Readers>> {
        Ok(Arc::new(Readers { tx }))
    }

    /// Starts a reader thread for a connection, if the budget allows.
    fn spawn(self: &Arc<Self>, id: ConnId, shared: Arc<Shared>) -> io::Result<()> {
        let readers = Arc::clone(self);
        spawn_conn_thread(THREAD_MAPPINGS, move || read_loop(id, shared, &readers)).map(drop)
    }
}

impl Conns {
    fn open(&mut self, id: ConnId, stream: TcpStream) {
        // A write blocked this long means the peer has read nothing for that
        // long; a timeout set later would not reach a write already blocked.
        let _ = stream.set_write_timeout(Some(STALLED_WRITE));
        // A reader that waits this long for input hands its connection over.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = stream.set_read_timeout(Some(idle::READER_IDLE));
        let shared = Arc::new(Shared {
            stream,
            state: Mutex::new(OutState {
                queue: OutQueue::new(DEFAULT_QUEUE_BYTES),
                closing: false,
                ended: false,
                writer: false,
                parked: false,
                scheduled: false,
                drain_watch: false,
            }),
            wake: Condvar::new(),
            done: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            resume: Condvar::new(),
        });
        match self.readers.spawn(id, Arc::clone(&shared)) {
            Ok(()) => {
                self.reading.insert(id);
                self.map.insert(
                    id,
                    Conn {
                        shared,
                        writer: None,
                    },
                );
            }
            // No thread could be started (resource exhaustion): drop the
            // connection and tell the core (if the channel has room; its
            // output is discarded either way).
            Err(_) => {
                let _ = shared.stream.shutdown(Shutdown::Both);
                let _ = self
                    .readers
                    .tx
                    .try_send(Input::Core(ServerInput::Closed(id)));
            }
        }
    }

    /// The peer finished sending: deliver what is still queued for it (the
    /// answers to its last lines), then close.
    fn peer_closed(&mut self, id: ConnId) {
        self.close(id);
    }

    /// Writes what every connection was given since the last call, from this
    /// thread and without blocking. A connection whose socket is full gets a
    /// writer thread for the rest. Returns the open connections that needed
    /// one and could not get it.
    fn flush(&mut self) -> Vec<ConnId> {
        let mut stuck = Vec::new();
        let mut list = std::mem::take(&mut self.to_flush);
        for (id, shared) in list.drain(..) {
            if self.flush_one(id, &shared).is_err() {
                stuck.push(id);
            }
        }
        self.to_flush = list;
        if self.scratch.capacity() > KEEP_WRITE_CAPACITY {
            self.scratch = Vec::new();
        }
        stuck
    }

    fn flush_one(&mut self, id: ConnId, shared: &Arc<Shared>) -> Result<(), QueueFull> {
        let mut state = shared.lock();
        state.scheduled = false;
        if state.ended {
            return Ok(());
        }
        if state.writer {
            if state.parked {
                drop(state);
                shared.wake.notify_one();
            }
            return Ok(());
        }
        state.queue.drain_into(&mut self.scratch);
        let closing = state.closing;
        drop(state);
        match write_now(&shared.stream, &self.scratch) {
            Ok(n) if n == self.scratch.len() => {
                if closing {
                    end_output(shared);
                } else if std::mem::take(&mut shared.lock().drain_watch) {
                    // Only this thread queues output: still all written.
                    self.drained.push(id);
                }
                Ok(())
            }
            Ok(n) => {
                let rest = self.scratch[n..].to_vec();
                self.start_writer(id, shared, rest, closing)
            }
            // The connection is broken; its reader notices too and reports it.
            Err(_) => {
                end_output(shared);
                Ok(())
            }
        }
    }

    /// Starts a thread that writes `rest`, then whatever is queued after it,
    /// blocking while the peer is slow to read.
    fn start_writer(
        &mut self,
        id: ConnId,
        shared: &Arc<Shared>,
        rest: Vec<u8>,
        closing: bool,
    ) -> Result<(), QueueFull> {
        // Set first: the thread may finish and clear it before spawn returns.
        shared.lock().writer = true;
        let theirs = Arc::clone(shared);
        let tx = self.readers.tx.clone();
        match spawn_conn_thread(WRITER_MAPPINGS, move || write_loop(id, &theirs, &tx, rest)) {
            Ok(handle) if closing => {
                self.closing.retain(|w| !w.is_finished());
                self.closing.push(handle);
                Ok(())
            }
            Ok(handle) => {
                if let Some(c) = self.map.get_mut(&id) {
                    c.writer = Some(handle);
                }
                Ok(())
            }
            Err(_) => {
                shared.lock().writer = false;
                if closing {
                    // The core is done with it already: just cut it off.
                    cut_off(shared);
                    Ok(())
                } else {
                    // No thread to write with: as good as a peer that never
                    // reads.
                    Err(QueueFull)
                }
            }
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
        // Every connection is closing, so none is left to report as stuck.
        self.flush();
        for writer in self.closing.drain(..) {
            let _ = writer.join();
        }
        let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
        while !self.reading.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(Input::Core(ServerInput::Closed(id))) => {
                    self.reading.remove(&id);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

/// Puts `shared` on the list the core thread flushes at the end of the batch
/// (once).
fn schedule(
    to_flush: &mut Vec<(ConnId, Arc<Shared>)>,
    id: ConnId,
    shared: &Arc<Shared>,
    state: &mut OutState,
) {
    if !state.scheduled {
        state.scheduled = true;
        to_flush.push((id, Arc::clone(shared)));
    }
}

impl Transport for Conns {
    fn send(&mut self, conn: ConnId, bytes: Payload) -> Result<(), QueueFull> {
        let Some(c) = self.map.get(&conn) else {
            return Ok(());
        };
        let mut state = c.shared.lock();
        if state.ended {
            // Its output failed; the reader reports the close.
            return Ok(());
        }
        state.queue.push(bytes)?;
        // A writer that is busy writing takes this too, without being woken.
        if !state.writer || state.parked {
            schedule(&mut self.to_flush, conn, &c.shared, &mut state);
        }
        Ok(())
    }

    fn close(&mut self, conn: ConnId) {
        let Some(c) = self.map.remove(&conn) else {
            return;
        };
        let _ = c.shared.stream.set_write_timeout(Some(FLUSH_TIMEOUT));
        // The core is done with its input; reading again lets the peer's
        // close be noticed (and what it still sends is dropped by the core).
        c.shared.set_paused(false);
        let mut state = c.shared.lock();
        state.closing = true;
        if state.writer {
            // It flushes what is queued, then half-closes.
            drop(state);
            c.shared.wake.notify_one();
            self.closing.retain(|w| !w.is_finished());
            self.closing.extend(c.writer);
        } else {
            // What the batch queued goes out with the others, then the
            // output side is closed.
            schedule(&mut self.to_flush, conn, &c.shared, &mut state);
        }
    }

    fn abort(&mut self, conn: ConnId) {
        if let Some(c) = self.map.remove(&conn) {
            cut_off(&c.shared);
        }
    }

    fn check_password(&mut self, check: PasswordCheck) {
        // A thread of its own (the core bounds how many run at once): the
        // core thread keeps serving everyone meanwhile.
        let tx = self.readers.tx.clone();
        let here = check.clone();
        let spawned = std::thread::Builder::new()
            .name("password-check".into())
            .spawn(move || {
                let _ = tx.send(Input::Core(ServerInput::PasswordChecked(check.run())));
            });
        if spawned.is_err() {
            // No thread to be had: checked here after all (everyone waits
            // a moment), rather than leaving the login unanswered.
            self.answers.push(here.run());
        }
    }

    fn watch_drain(&mut self, conn: ConnId) {
        let Some(c) = self.map.get(&conn) else {
            return;
        };
        let mut state = c.shared.lock();
        if state.ended {
            // Its output failed; the reader reports the close.
            return;
        }
        // A writer thread that is parked holds nothing unwritten.
        if state.queue.is_empty() && (!state.writer || state.parked) {
            self.drained.push(conn);
        } else {
            state.drain_watch = true;
        }
    }

    fn pause_reading(&mut self, conn: ConnId, paused: bool) {
        if let Some(c) = self.map.get(&conn) {
            c.shared.set_paused(paused);
        }
    }
}

/// Drops a connection at once, discarding its output.
fn cut_off(shared: &Shared) {
    let _ = shared.stream.shutdown(Shutdown::Both);
    {
        let mut state = shared.lock();
        state.closing = true;
        state.ended = true;
        // Its memory goes now, not when the reader thread notices.
        state.queue = OutQueue::new(DEFAULT_QUEUE_BYTES);
    }
    shared.wake.notify_one();
    shared.done.store(true, Ordering::Release);
    // A paused reader reads again, finds the socket shut and leaves.
    shared.set_paused(false);
}

/// Reads until the peer closes (or, on Linux, until it has been quiet for a
/// while: then the connection waits without a thread, see `idle`).
fn read_loop(id: ConnId, shared: Arc<Shared>, readers: &Readers) {
    let mut small = [0u8; READ_CHUNK];
    // Allocated once a read fills `small` (see BULK_READ).
    let mut bulk: Vec<u8> = Vec::new();
    loop {
        // A pause that comes while the read below is blocked takes effect
        // after it: one more read (at most one buffer) reaches the core.
        shared.wait_while_paused();
        let buf: &mut [u8] = if bulk.is_empty() {
            &mut small
        } else {
            &mut bulk
        };
        match (&shared.stream).read(buf) {
            Ok(0) => break,
            Ok(_) if shared.done.load(Ordering::Acquire) => break,
            Ok(n) => {
                let full = n == buf.len();
                if readers
                    .tx
                    .send(Input::Core(ServerInput::Data(id, buf[..n].to_vec())))
                    .is_err()
                {
                    return;
                }
                if full && bulk.is_empty() {
                    bulk = vec![0; BULK_READ];
                }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Err(e) if idle::timed_out(&e) && !shared.done.load(Ordering::Acquire) => {
                if readers.idle.park(id, &shared) {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    let _ = readers.tx.send(Input::Core(ServerInput::Closed(id)));
}

/// Writes `buf` as far as the socket takes it without waiting; returns how
/// much it took. The socket stays blocking (its reader thread blocks on it),
/// so this asks for a non-blocking send per call instead.
#[cfg(unix)]
fn write_now(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut sent = 0;
    while sent < buf.len() {
        let rest = &buf[sent..];
        // SAFETY: send reads at most rest.len() bytes from rest's pointer,
        // which is valid for that many.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                SEND_FLAGS,
            )
        };
        if n > 0 {
            sent += n as usize;
            continue;
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => break,
            io::ErrorKind::Interrupted => {}
            _ => return Err(err),
        }
    }
    Ok(sent)
}

/// Without a per-call non-blocking send, every write goes to a writer
/// thread (which lingers for [`WRITER_IDLE`], so a busy connection keeps
/// one).
#[cfg(not(unix))]
fn write_now(_stream: &TcpStream, _buf: &[u8]) -> io::Result<usize> {
    Ok(0)
}

/// Non-blocking for this call only; a peer that has gone away yields an
/// error, not SIGPIPE.
#[cfg(all(unix, not(target_vendor = "apple")))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
/// Apple has no MSG_NOSIGNAL; its sockets carry SO_NOSIGPIPE instead (set
/// on the listener, inherited by every accepted socket).
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

/// A connection's writer while its peer reads slowly: writes `buf`, then
/// whatever is queued, many messages per write, blocking as long as the
/// socket is full (up to [`STALLED_WRITE`]). Leaves after [`WRITER_IDLE`]
/// without output (the core thread writes again then), or once the
/// connection is closed and flushed.
fn write_loop(id: ConnId, shared: &Arc<Shared>, tx: &SyncSender<Input>, mut buf: Vec<u8>) {
    loop {
        if !buf.is_empty() && (&shared.stream).write_all(&buf).is_err() {
            break;
        }
        if buf.capacity() > KEEP_WRITE_CAPACITY {
            buf = Vec::new();
        }
        let mut state = shared.lock();
        if state.queue.is_empty() && std::mem::take(&mut state.drain_watch) {
            // Reported without the lock: the core thread, which empties the
            // channel, may be waiting for it.
            drop(state);
            let _ = tx.send(Input::Core(ServerInput::Drained(id)));
            state = shared.lock();
        }
        while state.queue.is_empty() && !state.closing {
            state.parked = true;
            let (s, waited) = shared
                .wake
                .wait_timeout(state, WRITER_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            state = s;
            state.parked = false;
            if waited.timed_out() && state.queue.is_empty() && !state.closing {
                state.writer = false;
                return;
            }
        }
        if state.ended {
            // Aborted.
            state.writer = false;
            return;
        }
        if state.queue.is_empty() {
            // Closing, and everything is written.
            break;
        }
        state.queue.drain_into(&mut buf);
    }
    end_output(shared);
}

/// The output side is done: half-close (see [`half_close`]) and discard
/// whatever is queued later.
fn end_output(shared: &Arc<Shared>) {
    {
        let mut state = shared.lock();
        state.ended = true;
        state.writer = false;
    }
    half_close(shared);
}

/// Half-closes so the peer reads everything before the end of the stream (a
/// full close with unread input would reset the connection and could discard
/// the last lines, such as the reason for a kick). The reader ends when the
/// peer closes too or sends anything more, or at the latest when
/// [`close_later`] shuts the socket after a grace period.
fn half_close(shared: &Arc<Shared>) {
    let _ = shared.stream.shutdown(Shutdown::Write);
    let _ = shared.stream.set_read_timeout(Some(FLUSH_TIMEOUT));
    shared.done.store(true, Ordering::Release);
    // A paused reader reads again, to see the peer close.
    shared.set_paused(false);
    close_later(shared);
}

/// Shuts the reading side of a half-closed connection [`FLUSH_TIMEOUT`] from
/// now, if it is still open then, so that the socket goes whatever the peer
/// does. Without this, a peer that never closes and never sends again keeps
/// it for ever: the read timeout set at half-close does not reach a read
/// already blocked (where reads have no timeout of their own), and on Linux
/// a connection parked in the idle watcher has no read at all. Shutting the
/// reading side wakes both: a blocked read returns the end of the stream,
/// and epoll reports the socket readable, so the watcher hands it to a
/// reader that finds the end. Either reader then leaves as for a peer that
/// closed, dropping the last reference to the socket, which closes it.
///
/// One thread for the whole process keeps the pending shutdowns, in order
/// (each is due the same time after it was asked for), holding only weak
/// references: a connection that ends sooner is not kept for it.
fn close_later(shared: &Arc<Shared>) {
    type Due = (std::time::Instant, std::sync::Weak<Shared>);
    static CLOSER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Due>>> =
        std::sync::OnceLock::new();
    let closer = CLOSER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Due>();
        thread::Builder::new()
            .name("closer".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                for (due, conn) in rx {
                    thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                    if let Some(shared) = conn.upgrade() {
                        let _ = shared.stream.shutdown(Shutdown::Both);
                    }
                }
            })
            .ok()
            .map(|_| tx)
    });
    let due = std::time::Instant::now() + FLUSH_TIMEOUT;
    // Without the thread (it could not be started) the read timeout set at
    // half-close is all there is.
    if let Some(tx) = closer {
        let _ = tx.send((due, Arc::downgrade(shared)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A connection whose peer reads nothing until told: small socket
    /// buffers, so that they fill after a few KiB.
    fn connection() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        socket2::SockRef::from(&ours)
            .set_send_buffer_size(16 * 1024)
            .unwrap();
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(16 * 1024)
            .unwrap();
        // Missing bytes fail the test instead of hanging it.
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (ours, peer)
    }

    fn conns() -> (Conns, Receiver<Input>) {
        let (tx, rx) = sync_channel(1024);
        let conns = Conns {
            map: HashMap::new(),
            closing: Vec::new(),
            reading: HashSet::new(),
            to_flush: Vec::new(),
            scratch: Vec::new(),
            answers: Vec::new(),
            drained: Vec::new(),
            readers: Readers::start(tx).unwrap(),
        };
        (conns, rx)
    }

    /// 4 KiB, numbered so that a lost or reordered chunk shows.
    fn chunk(i: usize) -> Payload {
        (0..4096).map(|j| (i * 31 + j) as u8).collect()
    }

    /// Queues `bytes` and flushes as the end of a batch does, which must
    /// never wait for the peer.
    fn send_and_flush(conns: &mut Conns, id: ConnId, bytes: Payload) -> Result<(), QueueFull> {
        conns.send(id, bytes)?;
        let started = Instant::now();
        assert!(conns.flush().is_empty(), "a writer thread could not start");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the core thread waited for a full socket"
        );
        Ok(())
    }

    fn has_writer(conns: &Conns, id: ConnId) -> bool {
        conns.map[&id].shared.lock().writer
    }

    #[test]
    fn a_full_socket_hands_over_to_a_writer_thread_in_order() {
        let (ours, mut peer) = connection();
        let (mut conns, _rx) = conns();
        let id = ConnId(1);
        conns.open(id, ours);

        let mut sent = Vec::new();
        let mut i = 0;
        while !has_writer(&conns, id) {
            assert!(sent.len() < 64 << 20, "the socket never filled up");
            let bytes = chunk(i);
            sent.extend_from_slice(&bytes);
            send_and_flush(&mut conns, id, bytes).unwrap();
            i += 1;
        }
        // Output queued meanwhile goes out after what the writer holds.
        for _ in 0..16 {
            let bytes = chunk(i);
            sent.extend_from_slice(&bytes);
            send_and_flush(&mut conns, id, bytes).unwrap();
            i += 1;
        }
        let mut got = vec![0; sent.len()];
        peer.read_exact(&mut got).unwrap();
        assert!(got == sent, "bytes lost or out of order");

        // With nothing more to write the writer leaves, and the core thread
        // writes by itself again.
        let deadline = Instant::now() + WRITER_IDLE + Duration::from_secs(10);
        while has_writer(&conns, id) {
            assert!(Instant::now() < deadline, "the writer thread stayed");
            thread::sleep(Duration::from_millis(50));
        }
        send_and_flush(&mut conns, id, chunk(i)).unwrap();
        assert!(!has_writer(&conns, id));
        let mut last = vec![0; 4096];
        peer.read_exact(&mut last).unwrap();
        assert_eq!(&last[..], &chunk(i)[..]);
        conns.abort(id);
    }

    #[test]
    fn a_reader_that_never_reads_is_cut_off_after_its_queue() {
        let (ours, _peer) = connection();
        let (mut conns, _rx) = conns();
        let id = ConnId(1);
        conns.open(id, ours);
        let mut queued = 0;
        while send_and_flush(&mut conns, id, chunk(queued / 4096)).is_ok() {
            queued += 4096;
            assert!(queued < 8 << 20, "never found too slow");
        }
        assert!(has_writer(&conns, id));
        // The kernel's buffers, what the writer holds, and a full queue.
        assert!(queued >= DEFAULT_QUEUE_BYTES, "cut off early: {queued}");
        conns.abort(id);
    }

    /// Its reader hands an idle connection over and leaves; input and the
    /// peer's close still reach the core.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn an_idle_connection_still_hears_its_peer() {
        let (ours, mut peer) = connection();
        let (mut conns, rx) = conns();
        let id = ConnId(1);
        conns.open(id, ours);
        let idle = idle::READER_IDLE + Duration::from_millis(500);
        thread::sleep(idle);
        peer.write_all(b"hello\n").unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5));
        assert!(
            matches!(got, Ok(Input::Core(ServerInput::Data(ConnId(1), ref b))) if b == b"hello\n")
        );
        thread::sleep(idle);
        drop(peer);
        let got = rx.recv_timeout(Duration::from_secs(5));
        assert!(matches!(
            got,
            Ok(Input::Core(ServerInput::Closed(ConnId(1))))
        ));
    }

    /// A drain the core thread saw itself, or one a writer thread sent.
    fn drained(conns: &mut Conns, rx: &Receiver<Input>, wait: Duration) -> Option<ConnId> {
        if let Some(id) = conns.drained.pop() {
            return Some(id);
        }
        match rx.recv_timeout(wait) {
            Ok(Input::Core(ServerInput::Drained(id))) => Some(id),
            Ok(_) => panic!("not a drain"),
            Err(_) => None,
        }
    }

    const WAIT: Duration = Duration::from_secs(5);
    const QUIET: Duration = Duration::from_millis(300);

    #[test]
    fn a_drain_is_reported_once_everything_is_written() {
        let (ours, mut peer) = connection();
        let (mut conns, rx) = conns();
        let id = ConnId(1);
        conns.open(id, ours);

        // Nothing queued: reported at once, and once.
        conns.watch_drain(id);
        assert_eq!(drained(&mut conns, &rx, WAIT), Some(id));
        assert_eq!(drained(&mut conns, &rx, QUIET), None, "reported twice");

        // Written by the core thread at the end of the batch.
        conns.send(id, chunk(0)).unwrap();
        conns.watch_drain(id);
        assert_eq!(drained(&mut conns, &rx, QUIET), None, "before the write");
        assert!(conns.flush().is_empty());
        assert_eq!(drained(&mut conns, &rx, WAIT), Some(id));
        let mut got = vec![0; 4096];
        peer.read_exact(&mut got).unwrap();

        // A peer that does not read: not drained until it has read it all.
        let mut sent = 0;
        let mut i = 1;
        while !has_writer(&conns, id) {
            send_and_flush(&mut conns, id, chunk(i)).unwrap();
            sent += 4096;
            i += 1;
        }
        // More than the socket's buffers hold, behind what the writer has.
        for _ in 0..64 {
            send_and_flush(&mut conns, id, chunk(i)).unwrap();
            sent += 4096;
            i += 1;
        }
        conns.watch_drain(id);
        assert_eq!(drained(&mut conns, &rx, QUIET), None, "drained while full");
        let mut got = vec![0; sent];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(drained(&mut conns, &rx, WAIT), Some(id));

        // Unknown connections are ignored.
        conns.watch_drain(ConnId(2));
        assert_eq!(drained(&mut conns, &rx, QUIET), None);
        conns.abort(id);
    }

    /// The bytes of the next input for the core, if it is data for `id`.
    fn data(rx: &Receiver<Input>, id: ConnId, wait: Duration) -> Option<Vec<u8>> {
        match rx.recv_timeout(wait) {
            Ok(Input::Core(ServerInput::Data(from, bytes))) if from == id => Some(bytes),
            Ok(_) => panic!("not data"),
            Err(_) => None,
        }
    }

    #[test]
    fn a_paused_connection_is_not_read_until_resumed() {
        let (ours, mut peer) = connection();
        let (mut conns, rx) = conns();
        let id = ConnId(1);
        conns.open(id, ours);
        conns.pause_reading(id, true);
        // A read already blocked when the pause came still delivers.
        peer.write_all(b"a").unwrap();
        let mut got = data(&rx, id, QUIET).unwrap_or_default();
        peer.write_all(b"b").unwrap();
        assert_eq!(data(&rx, id, QUIET), None, "read while paused");
        conns.pause_reading(id, false);
        while got.len() < 2 {
            got.extend(data(&rx, id, WAIT).expect("not read once resumed"));
        }
        assert_eq!(got, b"ab");

        // A paused connection can still be dropped, and the reader leaves.
        conns.pause_reading(id, true);
        thread::sleep(QUIET);
        conns.abort(id);
        let got = rx.recv_timeout(WAIT);
        assert!(matches!(
            got,
            Ok(Input::Core(ServerInput::Closed(ConnId(1))))
        ));
    }

    #[test]
    fn closing_flushes_then_half_closes() {
        let (ours, mut peer) = connection();
        let (mut conns, _rx) = conns();
        let id = ConnId(1);
        conns.open(id, ours);
        conns.send(id, chunk(0)).unwrap();
        conns.close(id);
        assert!(conns.flush().is_empty());
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(&got[..], &chunk(0)[..]);
    }
}
