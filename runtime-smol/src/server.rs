//! The server on a single-threaded smol executor: one task owns the core, each
//! connection has one task that reads and writes, and everything reaches the
//! core through one bounded channel (backpressure instead of unbounded queues).
//!
//! What a connection costs, and why (about 3 KiB once idle): its task, its
//! socket's registration with the reactor, the core's state for it, and an
//! output queue that is freed while the connection is idle. There is no
//! per-connection read buffer (all reads go through one shared buffer) and no
//! per-connection channel (the writer is woken through a waker slot).
//!
//! Output is never copied in user space: each connection queues the shared
//! payloads the core encoded once, and writes as many of them as have
//! accumulated with one vectored write. The core runs through every input
//! that is ready (up to [`BATCH`]) before the connection tasks get to write,
//! so under load one write carries many messages.
//!
//! Bulk data (files) is flow-controlled by the core: it asks to hear when a
//! connection's queue has been written (the connection's task reports it
//! through the channel once it finds the queue empty) and pauses a
//! connection's reading while it cannot take more (the task stops reading,
//! so TCP backpressure reaches the peer).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use async_io::{Async, Timer};
use lantalk_core::driver::{
    accept_server, dispatch_server, feed_server, Listener, OutQueue, QueueFull, ServerHost,
    ServerInput, Transport, DEFAULT_QUEUE_BYTES,
};
use lantalk_core::password::PasswordCheck;
use lantalk_core::server::{ConnId, Payload};
use lantalk_core::Server;
use smol::channel::{bounded, Receiver, Sender, TryRecvError};
use smol::future;
use smol::{LocalExecutor, Task};

use lantalk_os::Clock;

/// How long a closing connection may take to flush, and how long its peer is
/// then given to close its side.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// Inputs the core handles before the connection tasks get to write.
const BATCH: usize = 64;
/// The one read buffer all connections share.
const READ_BUF: usize = 64 * 1024;
/// Messages written per vectored write, at most.
const MAX_IOV: usize = 256;
/// A connection's output queue is freed once it has had nothing to send for
/// this long; while traffic goes on it is reused, so steady traffic
/// allocates nothing.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

enum Input {
    Accepted(Async<StdStream>, SocketAddr, Listener),
    /// Anything else, for the server as it is.
    Core(ServerInput),
}

pub fn serve(
    bind: SocketAddr,
    web: Option<StdListener>,
    server: Server,
    host: Box<dyn ServerHost>,
) -> io::Result<()> {
    lantalk_os::raise_fd_limit();
    let ex = LocalExecutor::new();
    future::block_on(ex.run(serve_on(&ex, bind, web, server, host)))
}

async fn serve_on(
    ex: &LocalExecutor<'_>,
    bind: SocketAddr,
    web: Option<StdListener>,
    mut server: Server,
    mut host: Box<dyn ServerHost>,
) -> io::Result<()> {
    let listener = Async::new(lantalk_os::listen(bind)?)?;
    let web = web.map(Async::new).transpose()?;
    let local = listener.get_ref().local_addr()?;
    let clock = Clock::new();
    let (tx, rx) = bounded::<Input>(1024);

    let control_tx = tx.clone();
    host.ready(
        local,
        Arc::new(move |cmd| {
            let _ = control_tx.send_blocking(Input::Core(ServerInput::Command(cmd)));
        }),
    );
    let _accept = ex.spawn(accept_loop(listener, Listener::Chat, tx.clone()));
    let _accept_web = web.map(|web| ex.spawn(accept_loop(web, Listener::Web, tx.clone())));

    let mut conns = Conns {
        ex,
        map: IdMap::default(),
        closing: Vec::new(),
        tx,
        read_buf: Rc::new(RefCell::new(vec![0; READ_BUF].into_boxed_slice())),
        activity: Rc::default(),
    };
    let _trim = ex.spawn(trim_when_quiet(Rc::clone(&conns.activity)));
    run_loop(&mut server, &mut *host, &clock, &rx, &mut conns).await;
    conns.finish().await;
    Ok(())
}

async fn run_loop(
    server: &mut Server,
    host: &mut dyn ServerHost,
    clock: &Clock,
    rx: &Receiver<Input>,
    conns: &mut Conns<'_, '_>,
) {
    let mut since_yield = 0;
    loop {
        // Everything already waiting is handled without arming a timer; the
        // connection tasks write once the channel is empty, or every
        // BATCH inputs, so that output does not pile up under a flood.
        conns.activity.set(conns.activity.get() + 1);
        since_yield += 1;
        if since_yield == BATCH {
            since_yield = 0;
            future::yield_now().await;
        }
        let input = match rx.try_recv() {
            Ok(input) => Some(input),
            Err(TryRecvError::Closed) => return,
            Err(TryRecvError::Empty) => {
                let timer = match server.poll_timeout() {
                    Some(deadline) => Timer::at(clock.to_std(deadline)),
                    None => Timer::never(),
                };
                let next = future::or(async { Some(rx.recv().await) }, async {
                    timer.await;
                    None
                })
                .await;
                match next {
                    Some(Ok(input)) => Some(input),
                    Some(Err(_)) => return,
                    None => None,
                }
            }
        };
        let now = clock.now(host.wall_time());
        match input {
            None => feed_server(server, now, ServerInput::Timeout),
            Some(Input::Accepted(stream, addr, listener)) => {
                let id = accept_server(server, now, listener, addr);
                conns.open(id, stream);
            }
            Some(Input::Core(input)) => match input {
                ServerInput::Closed(id) => {
                    // Deliver what is still queued (answers to its last lines).
                    conns.close(id);
                    feed_server(server, now, input);
                }
                // The connection was closed since its writer reported: the
                // core has forgotten it.
                ServerInput::Drained(id) if !conns.map.contains_key(&id) => {}
                input => feed_server(server, now, input),
            },
        }
        if dispatch_server(server, now, conns, host) {
            return;
        }
    }
}

async fn accept_loop(listener: Async<StdListener>, kind: Listener, tx: Sender<Input>) {
    let mut backoff = lantalk_os::AcceptBackoff::new();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                backoff.accepted();
                let _ = stream.get_ref().set_nodelay(true);
                if tx.send(Input::Accepted(stream, addr, kind)).await.is_err() {
                    return;
                }
            }
            // Out of file descriptors and the like: wait and try again rather
            // than dying; connections already open keep working.
            Err(_) => {
                Timer::after(backoff.failed()).await;
            }
        }
    }
}

/// What the connection's task and the core's task share: the messages
/// queued for the peer (the core's bounded [`OutQueue`]), whether the
/// connection is closing, the flow control the core asked for (a drain to
/// report, reading paused), and the wakers of the writer and the reader.
///
/// Messages stay the shared, encoded-once payloads the core made; they are
/// written with one vectored write per batch, so no byte is copied in user
/// space and the kernel reads each payload from the one (cache-hot) copy
/// every recipient shares.
struct OutState {
    queue: OutQueue,
    closing: bool,
    /// The core asked to hear once the queue has been written
    /// ([`Transport::watch_drain`]); the writer reports it, through the
    /// channel, once it finds the queue empty.
    drain_watch: bool,
    /// The core cannot take more input yet ([`Transport::pause_reading`]):
    /// the reader stops, so the peer's TCP window fills and it waits.
    paused: bool,
    /// The writer, parked until there is something to write.
    waker: Option<Waker>,
    /// The reader, parked while paused (or waiting for a pause while it
    /// waits for input).
    read_waker: Option<Waker>,
}

impl OutState {
    fn push(&mut self, bytes: Payload) -> Result<(), QueueFull> {
        self.queue.push(bytes)?;
        self.wake();
        Ok(())
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
    }

    /// Writes as much of the queue as `w` takes in one vectored write.
    fn write_to(&self, mut w: impl Write) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let n = self.queue.io_slices(&mut slices);
        w.write_vectored(&slices[..n])
    }
}

struct Conn {
    out: Rc<RefCell<OutState>>,
    task: Task<()>,
}

/// Connection ids are sequential numbers the server hands out: a
/// multiplicative hash spreads them well at a fraction of SipHash's cost,
/// which matters because every delivery looks its connection up.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<V> = HashMap<ConnId, V, BuildHasherDefault<IdHasher>>;

struct Conns<'a, 'ex> {
    ex: &'a LocalExecutor<'ex>,
    map: IdMap<Conn>,
    /// Connections being closed, still flushing (each bounded in time).
    closing: Vec<Task<()>>,
    tx: Sender<Input>,
    read_buf: Rc<RefCell<Box<[u8]>>>,
    /// Inputs handled so far, for [`trim_when_quiet`].
    activity: Rc<Cell<u64>>,
}

impl Conns<'_, '_> {
    fn open(&mut self, id: ConnId, stream: Async<StdStream>) {
        let out = Rc::new(RefCell::new(OutState {
            queue: OutQueue::new(DEFAULT_QUEUE_BYTES),
            closing: false,
            drain_watch: false,
            paused: false,
            waker: None,
            read_waker: None,
        }));
        let task = self.ex.spawn(conn_task(
            id,
            stream,
            Rc::clone(&out),
            Rc::clone(&self.read_buf),
            self.tx.clone(),
        ));
        self.map.insert(id, Conn { out, task });
    }

    /// After shutdown: let every connection flush and its peer close, within
    /// a bounded time.
    async fn finish(&mut self) {
        let ids: Vec<ConnId> = self.map.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        for task in self.closing.drain(..) {
            task.await;
        }
    }
}

impl Transport for Conns<'_, '_> {
    fn send(&mut self, conn: ConnId, bytes: Payload) -> Result<(), QueueFull> {
        match self.map.get(&conn) {
            Some(c) => c.out.borrow_mut().push(bytes),
            None => Ok(()),
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.map.remove(&conn) {
            {
                let mut out = c.out.borrow_mut();
                out.closing = true;
                out.wake();
                // The core is done with its input; reading again lets the
                // peer's close be noticed (and what it still sends is
                // dropped by the core), instead of waiting out the limit.
                out.set_paused(false);
            }
            // The task finishes by itself once flushed; a peer that reads
            // nothing cannot keep it (and its socket) alive past the limit.
            let task = c.task;
            self.closing.retain(|t| !t.is_finished());
            self.closing.push(self.ex.spawn(async move {
                future::or(task, async {
                    Timer::after(FLUSH_TIMEOUT * 2).await;
                })
                .await;
            }));
        }
    }

    fn abort(&mut self, conn: ConnId) {
        // Dropping the task cancels it and closes the socket.
        self.map.remove(&conn);
    }

    fn check_password(&mut self, check: PasswordCheck) {
        // On smol's blocking pool: this thread keeps serving everyone.
        let tx = self.tx.clone();
        self.ex
            .spawn(async move {
                let answer = smol::unblock(move || check.run()).await;
                let _ = tx
                    .send(Input::Core(ServerInput::PasswordChecked(answer)))
                    .await;
            })
            .detach();
    }

    fn watch_drain(&mut self, conn: ConnId) {
        // The connection's writer reports it once it finds nothing left to
        // write (at once if the queue is empty already): it is the one that
        // knows, and it feeds the core through the channel like any input.
        if let Some(c) = self.map.get(&conn) {
            let mut out = c.out.borrow_mut();
            out.drain_watch = true;
            out.wake();
        }
    }

    fn pause_reading(&mut self, conn: ConnId, paused: bool) {
        if let Some(c) = self.map.get(&conn) {
            c.out.borrow_mut().set_paused(paused);
        }
    }
}

/// Gives the memory freed after a burst back to the system once the server
/// is quiet again (see [`lantalk_os::Trimmer`]).
async fn trim_when_quiet(activity: Rc<Cell<u64>>) {
    let mut trimmer = lantalk_os::Trimmer::new(activity.get());
    loop {
        Timer::after(lantalk_os::TRIM_CHECK).await;
        trimmer.check(activity.get());
    }
}

/// Waits until there is output for the connection, a drain to report, or
/// it is closing; returns whether it is closing.
async fn output_ready(out: &RefCell<OutState>) -> bool {
    poll_fn(|cx| {
        let mut state = out.borrow_mut();
        if !state.queue.is_empty() || state.closing || state.drain_watch {
            return Poll::Ready(state.closing);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    })
    .await
}

/// Waits until reading is paused (`true`) or not (`false`).
async fn reading_paused(out: &RefCell<OutState>, paused: bool) {
    poll_fn(|cx| {
        let mut state = out.borrow_mut();
        if state.paused == paused {
            return Poll::Ready(());
        }
        match &state.read_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.read_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    })
    .await
}

/// Reads until the peer closes and writes what the core queues. Either side
/// may finish first; the other is then given a bounded time to finish too
/// (the time limit on a closing connection is enforced by `Conns::close`).
async fn conn_task(
    id: ConnId,
    stream: Async<StdStream>,
    out: Rc<RefCell<OutState>>,
    read_buf: Rc<RefCell<Box<[u8]>>>,
    tx: Sender<Input>,
) {
    let reading = async {
        loop {
            reading_paused(&out, false).await;
            // The shared buffer is borrowed only inside the (synchronous)
            // read; what arrived is copied out, sized to fit. A pause while
            // waiting for input stops the wait before anything is read; it
            // is looked at first, so a pause and input that came at the
            // same time leave the input unread.
            let got = future::or(
                async {
                    reading_paused(&out, true).await;
                    None
                },
                async {
                    let got = stream
                        .read_with(|s| {
                            let mut buf = read_buf.borrow_mut();
                            let n = (&*s).read(&mut buf)?;
                            Ok(buf[..n].to_vec())
                        })
                        .await;
                    Some(got)
                },
            )
            .await;
            let Some(got) = got else {
                continue;
            };
            match got {
                Ok(bytes) if !bytes.is_empty() => {
                    if tx
                        .send(Input::Core(ServerInput::Data(id, bytes)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                _ => break,
            }
        }
    };
    let writing = async {
        loop {
            // The buffer is kept while traffic goes on (no allocation per
            // batch) and freed once the connection has been quiet for a
            // moment, so idle connections hold no output buffer at all.
            if out.borrow().queue.holds_memory() {
                let idle = future::or(
                    async {
                        Timer::after(SHRINK_AFTER).await;
                        true
                    },
                    async {
                        output_ready(&out).await;
                        false
                    },
                )
                .await;
                if idle {
                    out.borrow_mut().queue.shrink();
                }
            }
            let closing = output_ready(&out).await;
            // Write everything queued, including what is added meanwhile.
            loop {
                let written = stream
                    .write_with(|s| {
                        let state = out.borrow();
                        if state.queue.is_empty() {
                            return Ok(None);
                        }
                        state.write_to(s).map(Some)
                    })
                    .await;
                match written {
                    Ok(Some(0)) | Err(_) => return,
                    Ok(Some(n)) => out.borrow_mut().queue.advance(n),
                    Ok(None) => break,
                }
            }
            let drained = std::mem::take(&mut out.borrow_mut().drain_watch);
            if drained
                && tx
                    .send(Input::Core(ServerInput::Drained(id)))
                    .await
                    .is_err()
            {
                return;
            }
            if closing {
                break;
            }
        }
        let _ = stream.get_ref().shutdown(Shutdown::Write);
    };
    let mut reading = pin!(reading);
    let mut writing = pin!(writing);
    let peer_done_first = future::or(
        async {
            (&mut reading).await;
            true
        },
        async {
            (&mut writing).await;
            false
        },
    )
    .await;
    if peer_done_first {
        let _ = tx.send(Input::Core(ServerInput::Closed(id))).await;
        // The core closes its side in turn; whatever it still queued goes out.
        writing.await;
    } else {
        // We closed: give the peer a moment to read everything and close too,
        // so that unread input does not turn the close into a reset.
        future::or(reading, async {
            Timer::after(FLUSH_TIMEOUT).await;
        })
        .await;
        let _ = tx.send(Input::Core(ServerInput::Closed(id))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `test` on a connection's task (as [`ConnId`] 1) with the loopback
    /// peer's end, and the channel the core would read.
    fn with_connection(test: impl AsyncFnOnce(&mut Conns<'_, '_>, StdStream, Receiver<Input>)) {
        let ex = LocalExecutor::new();
        future::block_on(ex.run(async {
            let listener = StdListener::bind("127.0.0.1:0").unwrap();
            let peer = StdStream::connect(listener.local_addr().unwrap()).unwrap();
            let (ours, _) = listener.accept().unwrap();
            // Missing bytes fail the test instead of hanging it.
            peer.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let (tx, rx) = bounded(1024);
            let mut conns = Conns {
                ex: &ex,
                map: IdMap::default(),
                closing: Vec::new(),
                tx,
                read_buf: Rc::new(RefCell::new(vec![0; READ_BUF].into_boxed_slice())),
                activity: Rc::default(),
            };
            conns.open(ConnId(1), Async::new(ours).unwrap());
            test(&mut conns, peer, rx).await;
        }));
    }

    /// The next input, or `None` if nothing comes within `wait`.
    async fn next(rx: &Receiver<Input>, wait: Duration) -> Option<ServerInput> {
        future::or(
            async {
                match rx.recv().await {
                    Ok(Input::Core(input)) => Some(input),
                    _ => panic!("not an input for the core"),
                }
            },
            async {
                Timer::after(wait).await;
                None
            },
        )
        .await
    }

    const WAIT: Duration = Duration::from_secs(5);
    const QUIET: Duration = Duration::from_millis(300);

    #[test]
    fn a_drain_is_reported_once_everything_is_written() {
        with_connection(async |conns, peer, rx| {
            let id = ConnId(1);
            // Nothing queued: reported at once, and once.
            conns.watch_drain(id);
            assert!(matches!(
                next(&rx, WAIT).await,
                Some(ServerInput::Drained(ConnId(1)))
            ));
            assert!(next(&rx, QUIET).await.is_none(), "reported twice");

            // Half a queue of bulk data: reported after the last byte went
            // to the socket, which the peer then reads in full.
            let data: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
            let theirs = peer.try_clone().unwrap();
            let reader = std::thread::spawn(move || {
                let mut got = vec![0; 512 * 1024];
                (&theirs).read_exact(&mut got).map(|()| got)
            });
            conns.send(id, data.clone().into()).unwrap();
            conns.watch_drain(id);
            assert!(matches!(
                next(&rx, WAIT).await,
                Some(ServerInput::Drained(ConnId(1)))
            ));
            assert!(conns.map[&id].out.borrow().queue.is_empty());
            assert!(reader.join().unwrap().unwrap() == data, "bytes lost");

            // Unknown connections are ignored.
            conns.watch_drain(ConnId(2));
            assert!(next(&rx, QUIET).await.is_none());
        });
    }

    #[test]
    fn a_paused_connection_is_not_read_until_resumed() {
        with_connection(async |conns, mut peer, rx| {
            let id = ConnId(1);
            conns.pause_reading(id, true);
            peer.write_all(b"hello\n").unwrap();
            assert!(next(&rx, QUIET).await.is_none(), "read while paused");
            conns.pause_reading(id, false);
            assert!(
                matches!(next(&rx, WAIT).await, Some(ServerInput::Data(ConnId(1), b)) if b == b"hello\n")
            );

            // The peer's close, while paused, is noticed once resumed.
            conns.pause_reading(id, true);
            drop(peer);
            assert!(next(&rx, QUIET).await.is_none(), "read while paused");
            conns.pause_reading(id, false);
            assert!(matches!(
                next(&rx, WAIT).await,
                Some(ServerInput::Closed(ConnId(1)))
            ));
        });
    }

    #[test]
    fn a_paused_connection_can_be_closed() {
        with_connection(async |conns, peer, rx| {
            let id = ConnId(1);
            conns.pause_reading(id, true);
            conns.send(id, Payload::from(&b"bye\n"[..])).unwrap();
            conns.close(id);
            // The output is flushed and half-closed; then the peer closes.
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                (&peer).read_to_end(&mut got).map(|_| got)
            });
            while !reader.is_finished() {
                Timer::after(Duration::from_millis(10)).await;
            }
            assert_eq!(reader.join().unwrap().unwrap(), b"bye\n");
            // The peer's close is noticed although the core had paused it.
            assert!(matches!(
                next(&rx, WAIT).await,
                Some(ServerInput::Closed(ConnId(1)))
            ));
        });
    }
}
