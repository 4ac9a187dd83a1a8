//! The client on blocking sockets: a reader thread, and the caller's thread,
//! which writes and sleeps while [`ClientDriver`] runs the session.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use lantalk_core::client::ClientConfig;
use lantalk_core::driver::{
    ClientDriver, ClientHost, ClientInput, ClientOutcome, ClientOutput, Command,
};
use lantalk_os::Clock;

/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

enum Input {
    Data(Vec<u8>),
    Closed,
    Command(Command),
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
    let control = Arc::new(move |cmd| {
        let _ = tx.send(Input::Command(cmd));
    });
    let mut driver = ClientDriver::new(clock.instant(), config, host, peer, control);
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
