//! The server on a single-threaded smol executor: one task owns the core, each
//! connection has one task that reads and writes, and everything reaches the
//! core through one bounded channel (backpressure instead of unbounded queues).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use lantalk_core::driver::{
    dispatch_server, Command, OutQueue, QueueFull, ServerHost, Transport, DEFAULT_QUEUE_BYTES,
};
use lantalk_core::server::{ConnId, DisconnectCause, Payload};
use lantalk_core::Server;
use smol::channel::{bounded, Receiver, Sender};
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{LocalExecutor, Task};

use crate::clock::Clock;

/// How long a closing connection may take to flush, and how long its peer is
/// then given to close its side.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
const READ_CHUNK: usize = 8192;

enum Input {
    Accepted(TcpStream, SocketAddr),
    Data(ConnId, Vec<u8>),
    Closed(ConnId),
    Command(Command),
}

pub fn serve(bind: SocketAddr, server: Server, host: Box<dyn ServerHost>) -> io::Result<()> {
    let ex = LocalExecutor::new();
    future::block_on(ex.run(serve_on(&ex, bind, server, host)))
}

async fn serve_on(
    ex: &LocalExecutor<'_>,
    bind: SocketAddr,
    mut server: Server,
    mut host: Box<dyn ServerHost>,
) -> io::Result<()> {
    let listener = TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    let clock = Clock::new();
    let (tx, rx) = bounded::<Input>(1024);

    let control_tx = tx.clone();
    host.ready(
        local,
        Arc::new(move |cmd| {
            let _ = control_tx.send_blocking(Input::Command(cmd));
        }),
    );
    let _accept = ex.spawn(accept_loop(listener, tx.clone()));

    let mut conns = Conns {
        ex,
        map: HashMap::new(),
        closing: Vec::new(),
        tx,
    };
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
    loop {
        let timer = match server.poll_timeout() {
            Some(deadline) => Timer::at(clock.to_std(deadline)),
            None => Timer::never(),
        };
        let input = future::or(async { Some(rx.recv().await) }, async {
            timer.await;
            None
        })
        .await;
        let now = clock.now(host.wall_time());
        match input {
            None => server.handle_timeout(now),
            Some(Err(_)) => return,
            Some(Ok(Input::Accepted(stream, addr))) => {
                let id = server.handle_connect(now, addr);
                conns.open(id, stream);
            }
            Some(Ok(Input::Data(id, bytes))) => {
                let _ = server.handle_input(now, id, &bytes);
            }
            Some(Ok(Input::Closed(id))) => {
                // Deliver what is still queued (answers to its last lines).
                conns.close(id);
                let _ = server.handle_disconnect(now, id, DisconnectCause::PeerClosed);
            }
            Some(Ok(Input::Command(Command::Line(line)))) => server.handle_console(now, &line),
            Some(Ok(Input::Command(Command::Shutdown))) => server.shutdown(now),
            Some(Ok(Input::Command(
                Command::Password(_) | Command::Trust(_) | Command::EndOfInput,
            ))) => {}
        }
        if dispatch_server(server, now, conns, host) {
            return;
        }
    }
}

async fn accept_loop(listener: TcpListener, tx: Sender<Input>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                if tx.send(Input::Accepted(stream, addr)).await.is_err() {
                    return;
                }
            }
            // Out of file descriptors and the like: wait and try again rather
            // than dying; connections already open keep working.
            Err(_) => {
                Timer::after(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// What the connection's task and the core's task share.
struct OutState {
    queue: OutQueue,
    closing: bool,
}

struct Conn {
    out: Rc<RefCell<OutState>>,
    /// Wakes the connection's writer; holds at most one pending wake-up.
    wake: Sender<()>,
    task: Task<()>,
}

struct Conns<'a, 'ex> {
    ex: &'a LocalExecutor<'ex>,
    map: HashMap<ConnId, Conn>,
    /// Connections being closed, still flushing (each bounded in time).
    closing: Vec<Task<()>>,
    tx: Sender<Input>,
}

impl Conns<'_, '_> {
    fn open(&mut self, id: ConnId, stream: TcpStream) {
        let out = Rc::new(RefCell::new(OutState {
            queue: OutQueue::new(DEFAULT_QUEUE_BYTES),
            closing: false,
        }));
        let (wake, woken) = bounded(1);
        let task = self.ex.spawn(conn_task(
            id,
            stream,
            Rc::clone(&out),
            woken,
            self.tx.clone(),
        ));
        self.map.insert(id, Conn { out, wake, task });
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
        let Some(c) = self.map.get(&conn) else {
            return Ok(());
        };
        c.out.borrow_mut().queue.push(bytes)?;
        let _ = c.wake.try_send(());
        Ok(())
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.map.remove(&conn) {
            c.out.borrow_mut().closing = true;
            let _ = c.wake.try_send(());
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
}

/// Reads until the peer closes and writes what the core queues. Either side
/// may finish first; the other is then given a bounded time to finish too
/// (the time limit on a closing connection is enforced by `Conns::close`).
async fn conn_task(
    id: ConnId,
    stream: TcpStream,
    out: Rc<RefCell<OutState>>,
    woken: Receiver<()>,
    tx: Sender<Input>,
) {
    let reading = async {
        let mut reader = stream.clone();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Input::Data(id, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writing = async {
        let mut writer = stream.clone();
        let mut buf = Vec::new();
        loop {
            let closing = {
                let mut state = out.borrow_mut();
                state.queue.drain_into(&mut buf);
                state.closing
            };
            if !buf.is_empty() {
                if writer.write_all(&buf).await.is_err() {
                    return;
                }
                continue;
            }
            if closing {
                break;
            }
            if woken.recv().await.is_err() {
                // The core dropped the connection: behave as closing.
                out.borrow_mut().closing = true;
            }
        }
        let _ = writer.flush().await;
        let _ = stream.shutdown(Shutdown::Write);
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
        let _ = tx.send(Input::Closed(id)).await;
        // The core closes its side in turn; whatever it still queued goes out.
        writing.await;
    } else {
        // We closed: give the peer a moment to read everything and close too,
        // so that unread input does not turn the close into a reset.
        future::or(reading, async {
            Timer::after(FLUSH_TIMEOUT).await;
        })
        .await;
        let _ = tx.send(Input::Closed(id)).await;
    }
}
