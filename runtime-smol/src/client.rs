//! The client on a smol executor: one task reads, the main task writes and
//! sleeps, and [`ClientDriver`] runs the session. Each side connection (file
//! data) is one more task, which connects, then reads and writes on its own,
//! so bulk data never holds up the chat.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_net::TcpStream;
use lantalk_core::client::ClientConfig;
use lantalk_core::driver::{
    ClientDriver, ClientHost, ClientInput, ClientOutcome, ClientOutput, Command, LINGER,
};
use lantalk_core::transfer::SideId;
use lantalk_os::Clock;
use smol::channel::{bounded, unbounded, Receiver, Sender};
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::Task;

/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A side connection's read buffer: file data arrives at hundreds of MB/s,
/// and every read is one input for the session, so reads are large.
const SIDE_READ_BUF: usize = 256 * 1024;

enum Input {
    Data(Vec<u8>),
    Closed,
    Command(Command),
    SideOpened(SideId),
    SideBytes(SideId, Vec<u8>),
    SideDrained(SideId),
    SideClosed(SideId),
}

/// What a side connection's writer does, in the order the session asked:
/// since it writes in order, reaching a drain watch means everything queued
/// before it has been written.
enum SideCmd {
    Write(Vec<u8>),
    WatchDrain,
    Close,
}

/// A side connection, from the moment the session asked for it. Dropping it
/// cancels its task, which closes the socket.
struct Side {
    cmds: Sender<SideCmd>,
    /// Pauses and resumes for the reader.
    pause: Sender<bool>,
    task: Task<()>,
}

/// The session's side connections: those it may still hear of, and those
/// it closed that are still flushing (dropped with the session).
#[derive(Default)]
struct Sides {
    open: HashMap<SideId, Side>,
    closing: Vec<Side>,
}

impl Sides {
    fn open(&mut self, id: SideId, peer: SocketAddr, tx: Sender<Input>) {
        // The channels exist from now, so whatever the session asks before
        // the connection is up waits for it, in order.
        let (cmds, cmd_rx) = unbounded();
        let (pause, pause_rx) = unbounded();
        let task = smol::spawn(side_task(id, peer, cmd_rx, pause_rx, tx));
        self.open.insert(id, Side { cmds, pause, task });
    }

    fn command(&self, id: SideId, cmd: SideCmd) {
        if let Some(side) = self.open.get(&id) {
            let _ = side.cmds.try_send(cmd);
        }
    }

    fn pause(&self, id: SideId, paused: bool) {
        if let Some(side) = self.open.get(&id) {
            let _ = side.pause.try_send(paused);
        }
    }

    /// Flushes and closes; the session hears nothing more of it.
    fn close(&mut self, id: SideId) {
        if let Some(side) = self.open.remove(&id) {
            let _ = side.cmds.try_send(SideCmd::Close);
            self.closing.retain(|s| !s.task.is_finished());
            self.closing.push(side);
        }
    }

    /// Whether input from `id` is still for the session (not closed by it,
    /// not reported gone).
    fn is_open(&self, id: SideId) -> bool {
        self.open.contains_key(&id)
    }

    /// Whether `id` was open, which it no longer is: its loss is reported
    /// once.
    fn lost(&mut self, id: SideId) -> bool {
        self.open.remove(&id).is_some()
    }
}

pub fn connect(
    addrs: &[SocketAddr],
    config: ClientConfig,
    host: Box<dyn ClientHost>,
) -> io::Result<ClientOutcome> {
    smol::block_on(run(addrs, config, host))
}

async fn run(
    addrs: &[SocketAddr],
    config: ClientConfig,
    host: Box<dyn ClientHost>,
) -> io::Result<ClientOutcome> {
    let mut stream = connect_any(addrs).await?;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr()?;
    let clock = Clock::new();
    let (tx, rx) = bounded::<Input>(256);

    let _reader = smol::spawn(read_loop(stream.clone(), tx.clone()));
    let control_tx = tx.clone();
    let control = Arc::new(move |cmd| {
        let _ = control_tx.send_blocking(Input::Command(cmd));
    });
    let mut driver = ClientDriver::new(clock.instant(), config, host, peer, control);
    // Dropped when the session ends, which drops every side connection.
    let mut sides = Sides::default();
    loop {
        while let Some(output) = driver.poll_output() {
            match output {
                ClientOutput::Transmit(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        driver.handle_input(clock.instant(), ClientInput::Closed);
                    }
                }
                ClientOutput::HalfClose => {
                    let _ = stream.flush().await;
                    let _ = stream.shutdown(Shutdown::Write);
                }
                ClientOutput::Done(outcome) => return Ok(outcome),
                ClientOutput::Open(id) => sides.open(id, peer, tx.clone()),
                ClientOutput::SideTransmit(id, bytes) => sides.command(id, SideCmd::Write(bytes)),
                ClientOutput::SideWatchDrain(id) => sides.command(id, SideCmd::WatchDrain),
                ClientOutput::SidePause(id, paused) => sides.pause(id, paused),
                ClientOutput::SideClose(id) => sides.close(id),
            }
        }
        let timer = match driver.poll_timeout() {
            Some(deadline) => Timer::at(clock.to_std(deadline)),
            None => Timer::never(),
        };
        let input = future::or(
            async { Some(rx.recv().await.unwrap_or(Input::Closed)) },
            async {
                timer.await;
                None
            },
        )
        .await;
        let now = clock.instant();
        match input {
            None => driver.handle_input(now, ClientInput::Timeout),
            Some(Input::Data(bytes)) => driver.handle_input(now, ClientInput::Bytes(&bytes)),
            Some(Input::Closed) => driver.handle_input(now, ClientInput::Closed),
            Some(Input::Command(cmd)) => driver.handle_input(now, ClientInput::Command(cmd)),
            // A side connection the session closed or was told is gone: its
            // task's last words are not for the session.
            Some(Input::SideOpened(id)) if sides.is_open(id) => {
                driver.handle_input(now, ClientInput::SideOpened(id))
            }
            Some(Input::SideBytes(id, bytes)) if sides.is_open(id) => {
                driver.handle_input(now, ClientInput::SideBytes(id, &bytes))
            }
            Some(Input::SideDrained(id)) if sides.is_open(id) => {
                driver.handle_input(now, ClientInput::SideDrained(id))
            }
            Some(Input::SideClosed(id)) if sides.lost(id) => {
                driver.handle_input(now, ClientInput::SideClosed(id))
            }
            Some(
                Input::SideOpened(_)
                | Input::SideBytes(..)
                | Input::SideDrained(_)
                | Input::SideClosed(_),
            ) => {}
        }
    }
}

async fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    for &addr in addrs {
        match connect_one(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
    future::or(TcpStream::connect(addr), async {
        Timer::after(CONNECT_TIMEOUT).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "connection timed out",
        ))
    })
    .await
}

async fn read_loop(mut stream: TcpStream, tx: Sender<Input>) {
    let mut buf = vec![0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(Input::Data(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Input::Closed).await;
}

/// How a side connection's writer stopped.
enum WriterEnd {
    /// Flushed and shut down, as the session asked.
    Closed,
    /// Writing failed (or the session is gone).
    Lost,
}

/// One side connection: connects, then reads and writes until either side
/// ends it. Its loss is reported once; a close the session asked for is
/// not reported.
async fn side_task(
    id: SideId,
    peer: SocketAddr,
    cmds: Receiver<SideCmd>,
    pause: Receiver<bool>,
    tx: Sender<Input>,
) {
    let stream = match connect_one(peer).await {
        Ok(stream) => stream,
        Err(_) => {
            let _ = tx.send(Input::SideClosed(id)).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    if tx.send(Input::SideOpened(id)).await.is_err() {
        return;
    }
    let reading = pin!(side_reader(id, stream.clone(), pause, tx.clone()));
    let writing = pin!(side_writer(id, stream.clone(), cmds, tx.clone()));
    let closed = future::or(
        async {
            reading.await;
            false
        },
        async { matches!(writing.await, WriterEnd::Closed) },
    )
    .await;
    if closed {
        linger(stream).await;
    } else {
        let _ = stream.shutdown(Shutdown::Both);
        let _ = tx.send(Input::SideClosed(id)).await;
    }
}

/// Reads until the end of the stream or an error, stopping while paused.
async fn side_reader(id: SideId, mut stream: TcpStream, pause: Receiver<bool>, tx: Sender<Input>) {
    let mut buf = vec![0u8; SIDE_READ_BUF];
    let mut paused = false;
    loop {
        if paused {
            // The sender lives as long as this task; an error cannot come.
            match pause.recv().await {
                Ok(p) => paused = p,
                Err(_) => return,
            }
            continue;
        }
        // A pause while waiting for input stops the wait before anything
        // is read; it is looked at first, so a pause and input that came at
        // the same time leave the input unread.
        let step = future::or(async { Err(pause.recv().await) }, async {
            Ok(stream.read(&mut buf).await)
        })
        .await;
        match step {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => {
                if tx
                    .send(Input::SideBytes(id, buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(Ok(p)) => paused = p,
            Err(Err(_)) => return,
        }
    }
}

/// Carries out the session's commands for one side connection, in order.
async fn side_writer(
    id: SideId,
    mut stream: TcpStream,
    cmds: Receiver<SideCmd>,
    tx: Sender<Input>,
) -> WriterEnd {
    while let Ok(cmd) = cmds.recv().await {
        match cmd {
            SideCmd::Write(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return WriterEnd::Lost;
                }
            }
            SideCmd::WatchDrain => {
                if tx.send(Input::SideDrained(id)).await.is_err() {
                    return WriterEnd::Lost;
                }
            }
            SideCmd::Close => {
                let _ = stream.flush().await;
                return WriterEnd::Closed;
            }
        }
    }
    WriterEnd::Lost
}

/// After the session closed a side connection: stop sending, then read (and
/// discard) until the server closes too, for at most [`LINGER`]. Closing
/// with its last bytes unread would reset the connection, and a reset can
/// discard what we sent before the server has read it.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let discard = async {
        let mut buf = vec![0u8; 16 * 1024];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    future::or(discard, async {
        Timer::after(LINGER).await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    const WAIT: Duration = Duration::from_secs(5);
    const QUIET: Duration = Duration::from_millis(300);

    /// What the session would hear next, if anything within `wait`.
    async fn next(rx: &Receiver<Input>, wait: Duration) -> Option<Input> {
        future::or(async { rx.recv().await.ok() }, async {
            Timer::after(wait).await;
            None
        })
        .await
    }

    #[test]
    fn a_side_connection_writes_drains_pauses_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        smol::block_on(async {
            let (tx, rx) = bounded(256);
            let mut sides = Sides::default();
            let id = SideId(1);
            sides.open(id, addr, tx);
            // Asked before it is open: written once it is.
            sides.command(id, SideCmd::Write(b"hello".to_vec()));
            sides.command(id, SideCmd::WatchDrain);
            let (mut server, _) = listener.accept().unwrap();
            server.set_read_timeout(Some(WAIT)).unwrap();
            assert!(matches!(
                next(&rx, WAIT).await,
                Some(Input::SideOpened(SideId(1)))
            ));
            assert!(matches!(
                next(&rx, WAIT).await,
                Some(Input::SideDrained(SideId(1)))
            ));
            let mut got = [0; 5];
            server.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");

            sides.pause(id, true);
            // The reader sees the pause before the bytes.
            Timer::after(QUIET).await;
            server.write_all(b"data").unwrap();
            assert!(next(&rx, QUIET).await.is_none(), "read while paused");
            sides.pause(id, false);
            assert!(
                matches!(next(&rx, WAIT).await, Some(Input::SideBytes(SideId(1), b)) if b == b"data")
            );

            // Closing flushes, and the session hears nothing more of it.
            sides.command(id, SideCmd::Write(b"bye".to_vec()));
            sides.close(id);
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"bye");
            drop(server);
            assert!(!sides.is_open(id));
        });
    }

    #[test]
    fn a_side_connection_that_cannot_open_is_reported_closed() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        smol::block_on(async {
            let (tx, rx) = bounded(256);
            let mut sides = Sides::default();
            sides.open(SideId(7), addr, tx);
            assert!(matches!(
                next(&rx, WAIT).await,
                Some(Input::SideClosed(SideId(7)))
            ));
            assert!(sides.lost(SideId(7)));
            assert!(!sides.lost(SideId(7)), "reported once");
        });
    }
}
