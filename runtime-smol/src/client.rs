//! The client on a smol executor: one task reads, the main task writes and
//! sleeps, and [`ClientDriver`] runs the session.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_net::TcpStream;
use lantalk_core::client::ClientConfig;
use lantalk_core::driver::{
    ClientDriver, ClientHost, ClientInput, ClientOutcome, ClientOutput, Command,
};
use lantalk_os::Clock;
use smol::channel::{bounded, Sender};
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};

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
    let control = Arc::new(move |cmd| {
        let _ = tx.send_blocking(Input::Command(cmd));
    });
    let mut driver = ClientDriver::new(clock.instant(), config, host, peer, control);
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
        }
    }
}

async fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    for &addr in addrs {
        let attempt = future::or(TcpStream::connect(addr), async {
            Timer::after(CONNECT_TIMEOUT).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        });
        match attempt.await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
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
