//! The client on blocking sockets: a reader thread, and the caller's thread,
//! which writes and sleeps while [`ClientDriver`] runs the session. Each side
//! connection (file data) has two threads of its own: one connects and then
//! writes, one reads, so bulk data never holds up the chat.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use lantalk_core::client::ClientConfig;
use lantalk_core::driver::{
    ClientDriver, ClientHost, ClientInput, ClientOutcome, ClientOutput, Command, LINGER,
};
use lantalk_core::transfer::SideId;
use lantalk_os::Clock;

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

/// What the session's thread and a side connection's threads share.
#[derive(Default)]
struct SideShared {
    state: Mutex<SideState>,
    /// Where a paused reader waits.
    resume: Condvar,
}

#[derive(Default)]
struct SideState {
    /// A handle on the connection once it is open, to shut it down from the
    /// session's thread (which wakes both of its threads).
    stream: Option<TcpStream>,
    /// The session dropped it: whatever its threads are doing, they stop.
    dropped: bool,
    /// The session closed it: the reader discards what still arrives.
    closing: bool,
    paused: bool,
    /// The reader has left (the writer lingers until then, at most
    /// [`LINGER`]), so a closed side can be forgotten.
    finished: bool,
}

impl SideShared {
    fn lock(&self) -> MutexGuard<'_, SideState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
        self.resume.notify_all();
    }

    /// Takes the new connection; false if the session dropped it meanwhile.
    fn attach(&self, stream: &TcpStream) -> bool {
        let mut state = self.lock();
        if state.dropped {
            return false;
        }
        state.stream = stream.try_clone().ok();
        state.stream.is_some()
    }

    /// Blocks the reader while the session has paused it; false once it is
    /// to stop reading for the session.
    fn wait_to_read(&self) -> bool {
        let mut state = self.lock();
        while state.paused && !state.closing && !state.dropped {
            state = self.resume.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        !state.closing && !state.dropped
    }

    /// The reader is gone (or never came): nothing keeps the side.
    fn finish(&self) {
        self.lock().finished = true;
        self.resume.notify_all();
    }

    /// Whether the session still hears of the connection (it has not closed
    /// or dropped it).
    fn for_session(&self) -> bool {
        let state = self.lock();
        !state.closing && !state.dropped
    }
}

/// A side connection, from the moment the session asked for it. Dropping it
/// shuts the connection down, which ends its threads.
struct Side {
    cmds: Sender<SideCmd>,
    shared: Arc<SideShared>,
}

impl Drop for Side {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.dropped = true;
        if let Some(stream) = &state.stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
        drop(state);
        self.shared.resume.notify_all();
    }
}

/// The session's side connections: those it may still hear of, and those
/// it closed that are still flushing (dropped with the session).
#[derive(Default)]
struct Sides {
    open: HashMap<SideId, Side>,
    closing: Vec<Side>,
}

impl Sides {
    fn open(&mut self, id: SideId, peer: SocketAddr, tx: &SyncSender<Input>) {
        // The channel exists from now, so whatever the session asks before
        // the connection is up waits for it, in order.
        let (cmds, cmd_rx) = channel();
        let shared = Arc::new(SideShared::default());
        let theirs = Arc::clone(&shared);
        let their_tx = tx.clone();
        let spawned = thread::Builder::new()
            .name("side-write".into())
            .spawn(move || side_writer(id, peer, &cmd_rx, &theirs, &their_tx));
        if spawned.is_err() {
            let _ = tx.try_send(Input::SideClosed(id));
        }
        self.open.insert(id, Side { cmds, shared });
    }

    fn command(&self, id: SideId, cmd: SideCmd) {
        if let Some(side) = self.open.get(&id) {
            let _ = side.cmds.send(cmd);
        }
    }

    fn pause(&self, id: SideId, paused: bool) {
        if let Some(side) = self.open.get(&id) {
            side.shared.set_paused(paused);
        }
    }

    /// Flushes and closes; the session hears nothing more of it.
    fn close(&mut self, id: SideId) {
        if let Some(side) = self.open.remove(&id) {
            let _ = side.cmds.send(SideCmd::Close);
            self.closing.retain(|s| !s.shared.lock().finished);
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
    let mut stream = connect_any(addrs)?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let peer = stream.peer_addr()?;
    let clock = Clock::new();
    let (tx, rx) = sync_channel::<Input>(256);

    let reader = stream.try_clone()?;
    let read_tx = tx.clone();
    thread::Builder::new()
        .name("client-read".into())
        .spawn(move || read_loop(reader, read_tx))?;
    let control_tx = tx.clone();
    let control = Arc::new(move |cmd| {
        let _ = control_tx.send(Input::Command(cmd));
    });
    let mut driver = ClientDriver::new(clock.instant(), config, host, peer, control);
    // Dropped when the session ends, which drops every side connection.
    let mut sides = Sides::default();
    loop {
        while let Some(output) = driver.poll_output() {
            match output {
                ClientOutput::Transmit(bytes) => {
                    if stream.write_all(&bytes).is_err() {
                        driver.handle_input(clock.instant(), ClientInput::Closed);
                    }
                }
                ClientOutput::HalfClose => {
                    let _ = stream.shutdown(Shutdown::Write);
                }
                ClientOutput::Done(outcome) => return Ok(outcome),
                ClientOutput::Open(id) => sides.open(id, peer, &tx),
                ClientOutput::SideTransmit(id, bytes) => sides.command(id, SideCmd::Write(bytes)),
                ClientOutput::SideWatchDrain(id) => sides.command(id, SideCmd::WatchDrain),
                ClientOutput::SidePause(id, paused) => sides.pause(id, paused),
                ClientOutput::SideClose(id) => sides.close(id),
            }
        }
        let input = match driver.poll_timeout() {
            Some(deadline) => match rx.recv_timeout(clock.until(deadline)) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Input::Closed),
            },
            None => Some(rx.recv().unwrap_or(Input::Closed)),
        };
        let now = clock.instant();
        match input {
            None => driver.handle_input(now, ClientInput::Timeout),
            Some(Input::Data(bytes)) => driver.handle_input(now, ClientInput::Bytes(&bytes)),
            Some(Input::Closed) => driver.handle_input(now, ClientInput::Closed),
            Some(Input::Command(cmd)) => driver.handle_input(now, ClientInput::Command(cmd)),
            // A side connection the session closed or was told is gone: its
            // threads' last words are not for the session.
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

fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn read_loop(mut stream: TcpStream, tx: SyncSender<Input>) {
    let mut buf = vec![0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(Input::Data(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Input::Closed);
}

/// One side connection's first thread: connects, starts the reader, then
/// carries out the session's commands in order. Its loss is reported (the
/// session hears of it once, however many threads notice); a close the
/// session asked for is not.
fn side_writer(
    id: SideId,
    peer: SocketAddr,
    cmds: &Receiver<SideCmd>,
    shared: &Arc<SideShared>,
    tx: &SyncSender<Input>,
) {
    let stream = match TcpStream::connect_timeout(&peer, CONNECT_TIMEOUT) {
        Ok(stream) => stream,
        Err(_) => {
            shared.finish();
            let _ = tx.send(Input::SideClosed(id));
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    if !shared.attach(&stream) {
        // Dropped while connecting.
        return;
    }
    // Opened is reported before the reader can report any bytes.
    let _ = tx.send(Input::SideOpened(id));
    let reader = stream.try_clone().and_then(|reader| {
        let shared = Arc::clone(shared);
        let tx = tx.clone();
        thread::Builder::new()
            .name("side-read".into())
            .spawn(move || side_reader(id, reader, &shared, &tx))
    });
    if reader.is_err() {
        let _ = stream.shutdown(Shutdown::Both);
        shared.finish();
        let _ = tx.send(Input::SideClosed(id));
        return;
    }
    // The session dropping the side drops the sender too: the loop ends.
    while let Ok(cmd) = cmds.recv() {
        match cmd {
            SideCmd::Write(bytes) => {
                if (&stream).write_all(&bytes).is_err() {
                    let _ = stream.shutdown(Shutdown::Both);
                    let _ = tx.send(Input::SideClosed(id));
                    return;
                }
            }
            SideCmd::WatchDrain => {
                let _ = tx.send(Input::SideDrained(id));
            }
            SideCmd::Close => {
                linger(&stream, shared);
                return;
            }
        }
    }
}

/// Reads until the end of the stream or an error, waiting while paused.
/// After the session closed the connection, it reads on to discard what
/// still arrives (see [`linger`]).
fn side_reader(id: SideId, mut stream: TcpStream, shared: &SideShared, tx: &SyncSender<Input>) {
    let mut buf = vec![0u8; SIDE_READ_BUF];
    while shared.wait_to_read() {
        // A pause that comes while this read is blocked takes effect after
        // it: one more read reaches the session.
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                if shared.for_session() {
                    let _ = stream.shutdown(Shutdown::Both);
                    let _ = tx.send(Input::SideClosed(id));
                }
                break;
            }
            Ok(n) => {
                if tx.send(Input::SideBytes(id, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    if shared.lock().closing {
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    }
    shared.finish();
}

/// After the session closed a side connection: everything it queued was
/// written (the writer got here in order), so stop sending, then let the
/// reader discard what still arrives until the server closes too, for at
/// most [`LINGER`]; then shut it down, which ends a read still blocked.
/// Closing with the server's last bytes unread would reset the connection,
/// and a reset can discard what we sent before the server has read it.
fn linger(stream: &TcpStream, shared: &SideShared) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = std::time::Instant::now() + LINGER;
    let mut state = shared.lock();
    state.closing = true;
    shared.resume.notify_all();
    while !state.finished && !state.dropped {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        state = shared
            .resume
            .wait_timeout(state, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    drop(state);
    let _ = stream.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const WAIT: Duration = Duration::from_secs(5);
    const QUIET: Duration = Duration::from_millis(300);

    #[test]
    fn a_side_connection_writes_drains_pauses_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = sync_channel(256);
        let mut sides = Sides::default();
        let id = SideId(1);
        sides.open(id, addr, &tx);
        // Asked before it is open: written once it is.
        sides.command(id, SideCmd::Write(b"hello".to_vec()));
        sides.command(id, SideCmd::WatchDrain);
        let (mut server, _) = listener.accept().unwrap();
        server.set_read_timeout(Some(WAIT)).unwrap();
        assert!(matches!(
            rx.recv_timeout(WAIT),
            Ok(Input::SideOpened(SideId(1)))
        ));
        assert!(matches!(
            rx.recv_timeout(WAIT),
            Ok(Input::SideDrained(SideId(1)))
        ));
        let mut got = [0; 5];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        // A read blocked when the pause comes still delivers: one, then
        // nothing until resumed.
        sides.pause(id, true);
        server.write_all(b"a").unwrap();
        let mut got = match rx.recv_timeout(QUIET) {
            Ok(Input::SideBytes(SideId(1), b)) => b,
            Err(_) => Vec::new(),
            Ok(_) => panic!("not bytes"),
        };
        server.write_all(b"b").unwrap();
        assert!(rx.recv_timeout(QUIET).is_err(), "read while paused");
        sides.pause(id, false);
        while got.len() < 2 {
            match rx.recv_timeout(WAIT) {
                Ok(Input::SideBytes(SideId(1), b)) => got.extend(b),
                _ => panic!("not read once resumed"),
            }
        }
        assert_eq!(got, b"ab");

        // Closing flushes, and the session hears nothing more of it.
        sides.command(id, SideCmd::Write(b"bye".to_vec()));
        sides.close(id);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"bye");
        drop(server);
        assert!(!sides.is_open(id));
    }

    #[test]
    fn a_side_connection_that_cannot_open_is_reported_closed() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (tx, rx) = sync_channel(256);
        let mut sides = Sides::default();
        sides.open(SideId(7), addr, &tx);
        assert!(matches!(
            rx.recv_timeout(WAIT),
            Ok(Input::SideClosed(SideId(7)))
        ));
        assert!(sides.lost(SideId(7)));
        assert!(!sides.lost(SideId(7)), "reported once");
    }
}
