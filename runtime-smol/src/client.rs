//! The client on a smol executor: one task reads, the main task owns the core
//! and writes.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_net::TcpStream;
use lantalk_core::client::{Client, ClientConfig};
use lantalk_core::driver::{dispatch_client, ClientHost, ClientOutcome, Command};
use smol::channel::{bounded, Sender};
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use lantalk_os::Clock;

/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After leaving, how long the server has to close its side: until then its
/// last answers are still shown, and nothing we sent is cut off by a reset.
const LINGER: Duration = Duration::from_secs(2);

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
    mut host: Box<dyn ClientHost>,
) -> io::Result<ClientOutcome> {
    let mut stream = connect_any(addrs).await?;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr()?;
    let clock = Clock::new();
    let (tx, rx) = bounded::<Input>(256);

    let _reader = smol::spawn(read_loop(stream.clone(), tx.clone()));
    host.ready(
        peer,
        Arc::new(move |cmd| {
            let _ = tx.send_blocking(Input::Command(cmd));
        }),
    );

    let mut client = Client::new(config, clock.now(host.wall_time()));
    let mut outcome = None;
    let mut out = Vec::new();
    let mut linger: Option<std::time::Instant> = None;
    loop {
        let timer = match (client.poll_timeout(), linger) {
            (Some(deadline), _) => Timer::at(clock.to_std(deadline)),
            (None, Some(until)) => Timer::at(until),
            (None, None) => Timer::never(),
        };
        let input = future::or(
            async { Some(rx.recv().await.unwrap_or(Input::Closed)) },
            async {
                timer.await;
                None
            },
        )
        .await;
        let now = clock.now(host.wall_time());
        match input {
            // The server did not close its side in time after we left.
            None if linger.is_some_and(|t| t <= std::time::Instant::now()) => {
                client.handle_disconnect(now)
            }
            None => client.handle_timeout(now),
            Some(Input::Data(bytes)) => client.handle_input(now, &bytes),
            Some(Input::Closed) => client.handle_disconnect(now),
            Some(Input::Command(Command::Line(line))) => client.handle_user_line(now, &line),
            Some(Input::Command(Command::Password(pw))) => client.handle_password(now, &pw),
            Some(Input::Command(Command::Trust(yes))) => client.handle_trust(now, yes),
            Some(Input::Command(Command::EndOfInput)) => client.handle_quit(now),
            Some(Input::Command(Command::Shutdown)) => client.handle_interrupt(now),
        }
        let close = dispatch_client(&mut client, &mut *host, &mut out, &mut outcome);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                client.handle_disconnect(now);
                dispatch_client(&mut client, &mut *host, &mut out, &mut outcome);
            }
            out.clear();
        }
        if close && linger.is_none() {
            let _ = stream.flush().await;
            let _ = stream.shutdown(Shutdown::Write);
            linger = Some(std::time::Instant::now() + LINGER);
        }
        if client.is_closed() {
            break;
        }
    }
    Ok(outcome.unwrap_or(ClientOutcome {
        expected: false,
        refused: false,
        reason: "Connection closed.".to_string(),
    }))
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
