//! The server on blocking sockets: one thread owns the core, every connection
//! has a reader thread and a writer thread, and everything reaches the core
//! through one bounded channel (so a fast sender is slowed down by
//! backpressure instead of growing a queue).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lantalk_core::driver::{
    dispatch_server, Command, OutQueue, QueueFull, ServerHost, Transport, DEFAULT_QUEUE_BYTES,
};
use lantalk_core::server::{ConnId, DisconnectCause, Payload};
use lantalk_core::Server;

use crate::clock::Clock;

/// Stack for per-connection threads: they only shuffle bytes.
const CONN_STACK: usize = 64 * 1024;
/// How long flushing a closing connection (and the whole server on shutdown)
/// may take before it is cut off.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
const READ_CHUNK: usize = 8192;
const STALLED_WRITE: Duration = Duration::from_secs(30);

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
    let listener = TcpListener::bind(bind)?;
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

    let mut conns = Conns {
        map: HashMap::new(),
        closing: Vec::new(),
        reading: HashSet::new(),
        tx,
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
        let now = clock.now(host.wall_time());
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
            Some(Input::Command(
                Command::Password(_) | Command::Trust(_) | Command::EndOfInput,
            )) => {}
        }
        if dispatch_server(server, now, conns, host) {
            return;
        }
    }
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

/// What the writer thread and the core thread share for one connection.
struct Outbox {
    state: Mutex<OutState>,
    wake: Condvar,
    /// Set once the writer has flushed and half-closed: the reader stops too.
    done: AtomicBool,
}

struct OutState {
    queue: OutQueue,
    closing: bool,
}

struct Conn {
    stream: TcpStream,
    outbox: Arc<Outbox>,
    writer: JoinHandle<()>,
}

struct Conns {
    map: HashMap<ConnId, Conn>,
    /// Writers of connections being closed, still flushing.
    closing: Vec<JoinHandle<()>>,
    /// Connections whose reader still runs (until the peer closes too).
    reading: HashSet<ConnId>,
    tx: SyncSender<Input>,
}

impl Conns {
    fn open(&mut self, id: ConnId, stream: TcpStream) {
        // A write blocked this long means the peer has read nothing for that
        // long; a timeout set later would not reach a write already blocked.
        let _ = stream.set_write_timeout(Some(STALLED_WRITE));
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let Ok(write_half) = stream.try_clone() else {
            return;
        };
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutState {
                queue: OutQueue::new(DEFAULT_QUEUE_BYTES),
                closing: false,
            }),
            wake: Condvar::new(),
            done: AtomicBool::new(false),
        });
        let tx = self.tx.clone();
        let seen = Arc::clone(&outbox);
        let reader = thread::Builder::new()
            .stack_size(CONN_STACK)
            .spawn(move || read_loop(id, read_half, tx, seen));
        let out = Arc::clone(&outbox);
        let writer = thread::Builder::new()
            .stack_size(CONN_STACK)
            .spawn(move || write_loop(write_half, out));
        match (reader, writer) {
            (Ok(_), Ok(writer)) => {
                self.reading.insert(id);
                self.map.insert(
                    id,
                    Conn {
                        stream,
                        outbox,
                        writer,
                    },
                );
            }
            // No thread could be started (resource exhaustion): drop the
            // connection; the reader, if it started, reports it closed.
            _ => {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// The peer finished sending: deliver what is still queued for it (the
    /// answers to its last lines), then close.
    fn peer_closed(&mut self, id: ConnId) {
        self.close(id);
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
        let Some(c) = self.map.get(&conn) else {
            return Ok(());
        };
        c.outbox
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue
            .push(bytes)?;
        c.outbox.wake.notify_one();
        Ok(())
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.map.remove(&conn) {
            let _ = c.stream.set_write_timeout(Some(FLUSH_TIMEOUT));
            c.outbox
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .closing = true;
            c.outbox.wake.notify_one();
            self.closing.retain(|w| !w.is_finished());
            self.closing.push(c.writer);
        }
    }

    fn abort(&mut self, conn: ConnId) {
        if let Some(c) = self.map.remove(&conn) {
            let _ = c.stream.shutdown(Shutdown::Both);
            c.outbox
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .closing = true;
            c.outbox.wake.notify_one();
        }
    }
}

fn read_loop(id: ConnId, mut stream: TcpStream, tx: SyncSender<Input>, outbox: Arc<Outbox>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match stream.read(&mut buf) {
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

fn write_loop(mut stream: TcpStream, outbox: Arc<Outbox>) {
    let mut buf = Vec::new();
    loop {
        let closing = {
            let mut state = outbox.state.lock().unwrap_or_else(|e| e.into_inner());
            while state.queue.is_empty() && !state.closing {
                state = outbox.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.queue.drain_into(&mut buf);
            state.closing
        };
        if !buf.is_empty() && stream.write_all(&buf).is_err() {
            break;
        }
        if closing
            && outbox
                .state
                .lock()
                .map(|s| s.queue.is_empty())
                .unwrap_or(true)
        {
            break;
        }
    }
    // Half-close so the peer reads everything before the end of the stream
    // (a full close with unread input would reset the connection and could
    // discard the last lines, such as the reason for a kick). The reader ends
    // when the peer closes too, or after a grace period.
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(FLUSH_TIMEOUT));
    outbox.done.store(true, Ordering::Release);
}
