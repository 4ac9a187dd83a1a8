//! Running a client session, free of I/O: everything about it except
//! connecting, reading, writing and sleeping, which is all a runtime does.
//!
//! The runtime feeds a [`ClientDriver`] what happened ([`ClientInput`]: bytes
//! from the server, the user's [`Command`]s, a deadline that passed, the
//! connection gone) and carries out what comes back from
//! [`ClientDriver::poll_output`] ([`ClientOutput`]: bytes to write, the
//! half-close, the end of the session) until the session is
//! [`ClientOutput::Done`], sleeping until [`ClientDriver::poll_timeout`]
//! while nothing happens.

use std::mem;
use std::time::Duration;

use core::net::SocketAddr;

use crate::client::{Client, ClientAction, ClientConfig, ClientEvent};
use crate::time::{Instant, Now};
use crate::transfer::SideId;

use super::{ClientHost, ClientOutcome, Command, Control};

/// After leaving, how long the server has to close its side: until then its
/// last answers are still shown, and nothing we sent is cut off by a reset.
pub const LINGER: Duration = Duration::from_secs(2);

/// What happened to a running client session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInput<'a> {
    /// Bytes from the server, in whatever chunks the transport gave.
    Bytes(&'a [u8]),
    /// The user's input.
    Command(Command),
    /// The deadline of [`ClientDriver::poll_timeout`] has passed.
    Timeout,
    /// The connection is gone: the server closed it, or reading or writing
    /// failed.
    Closed,
    /// A side connection asked for with [`ClientOutput::Open`] is open.
    SideOpened(SideId),
    /// Bytes from a side connection.
    SideBytes(SideId, &'a [u8]),
    /// Everything written to a side connection went out, as asked by
    /// [`ClientOutput::SideWatchDrain`].
    SideDrained(SideId),
    /// A side connection could not be opened, or it is gone.
    SideClosed(SideId),
}

/// What a runtime does next for a client session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutput {
    /// Write these bytes to the server (everything the last input produced,
    /// in one go). If writing fails, feed [`ClientInput::Closed`].
    Transmit(Vec<u8>),
    /// Flush what was written, then stop sending (shut down the writing
    /// side). Keep reading: the server's last answers still arrive until it
    /// closes its side, or until the grace period ([`LINGER`]) ends, which
    /// [`ClientDriver::poll_timeout`] includes.
    HalfClose,
    /// The session is over; nothing more follows.
    Done(ClientOutcome),
    /// Open a new connection to the same server address, for a side
    /// connection; feed [`ClientInput::SideOpened`] or
    /// [`ClientInput::SideClosed`].
    Open(SideId),
    /// Queue these bytes on a side connection (never blocking the session:
    /// each side connection writes on its own).
    SideTransmit(SideId, Vec<u8>),
    /// Feed [`ClientInput::SideDrained`] once everything queued for the
    /// side connection so far is written.
    SideWatchDrain(SideId),
    /// Stop (`true`) or resume reading from a side connection.
    SidePause(SideId, bool),
    /// Flush what is queued on the side connection, then close it. Nothing
    /// more is fed for it.
    SideClose(SideId),
}

/// One client session from the moment its connection opened: the [`Client`]
/// machine, the host it reports to, and what the runtime still has to carry
/// out.
pub struct ClientDriver {
    client: Client,
    host: Box<dyn ClientHost>,
    /// Bytes to write, from the inputs handled since the last transmit.
    out: Vec<u8>,
    /// What to do on side connections, in order (after `out`).
    side: std::collections::VecDeque<ClientOutput>,
    /// How the session ended, once that is known.
    outcome: Option<ClientOutcome>,
    /// The client asked to half-close and the runtime has not been told yet.
    half_close: bool,
    /// After the half-close: when the server's time to close its side is up.
    linger: Option<Instant>,
    /// [`ClientOutput::Done`] was handed out.
    done: bool,
}

impl ClientDriver {
    /// A session on a connection to `server_addr` that has just opened: tells
    /// the host (which feeds the user's input through `control`) and starts
    /// the client machine.
    pub fn new(
        now: Instant,
        config: ClientConfig,
        mut host: Box<dyn ClientHost>,
        server_addr: SocketAddr,
        control: Control,
    ) -> Self {
        host.ready(server_addr, control);
        let client = Client::new(config, Now::new(now, host.wall_time()));
        let mut driver = ClientDriver {
            client,
            host,
            out: Vec::new(),
            side: std::collections::VecDeque::new(),
            outcome: None,
            half_close: false,
            linger: None,
            done: false,
        };
        driver.dispatch(now);
        driver
    }

    /// Feeds the session what happened at `now` (the runtime's monotonic
    /// clock; the host gives the time of day). Then carry out
    /// [`ClientDriver::poll_output`] until it is `None`.
    pub fn handle_input(&mut self, now: Instant, input: ClientInput<'_>) {
        let now_full = Now::new(now, self.host.wall_time());
        let gone = matches!(input, ClientInput::Closed);
        let client = &mut self.client;
        match input {
            ClientInput::Bytes(bytes) => client.handle_input(now_full, bytes),
            ClientInput::Command(Command::Line(line)) => client.handle_user_line(now_full, &line),
            ClientInput::Command(Command::Password(pw)) => client.handle_password(now_full, &pw),
            ClientInput::Command(Command::Trust(yes)) => client.handle_trust(now_full, yes),
            ClientInput::Command(Command::EndOfInput) => client.handle_quit(now_full),
            ClientInput::Command(Command::Shutdown) => client.handle_interrupt(now_full),
            // Only servers keep history and run plugins.
            ClientInput::Command(Command::Stored(_) | Command::Plugin(_)) => {}
            ClientInput::Command(Command::Files(reply)) => {
                client.handle_file_reply(now_full, *reply)
            }
            ClientInput::SideOpened(side) => client.handle_side_opened(now_full, side),
            ClientInput::SideBytes(side, bytes) => client.handle_side_input(now_full, side, bytes),
            ClientInput::SideDrained(side) => client.handle_side_drained(now_full, side),
            ClientInput::SideClosed(side) => client.handle_side_closed(now_full, side),
            // The server did not close its side in time after we left.
            ClientInput::Timeout if self.linger.is_some_and(|t| t <= now) => {
                client.handle_disconnect(now_full)
            }
            ClientInput::Timeout => client.handle_timeout(now_full),
            ClientInput::Closed => client.handle_disconnect(now_full),
        }
        self.dispatch(now);
        if gone {
            // Nothing more reaches the server.
            self.out.clear();
        }
    }

    /// The next thing to carry out, in order: bytes to write, the half-close,
    /// the end of the session.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        if !self.out.is_empty() {
            return Some(ClientOutput::Transmit(mem::take(&mut self.out)));
        }
        if let Some(side) = self.side.pop_front() {
            return Some(side);
        }
        if mem::take(&mut self.half_close) {
            return Some(ClientOutput::HalfClose);
        }
        if self.client.is_closed() && !self.done {
            self.done = true;
            let outcome = self.outcome.take().unwrap_or_else(|| ClientOutcome {
                expected: false,
                refused: false,
                reason: "Connection closed.".to_string(),
                why: None,
                rejoin: Vec::new(),
                resume: Vec::new(),
            });
            let outcome = ClientOutcome {
                rejoin: self.client.rejoin_points(),
                resume: self.client.resume_lines(),
                ..outcome
            };
            return Some(ClientOutput::Done(outcome));
        }
        None
    }

    /// When to feed [`ClientInput::Timeout`] if nothing else happens first
    /// (`None`: wait for input alone).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.client.is_closed() {
            return None;
        }
        match (self.client.poll_timeout(), self.linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The client machine, to look at.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Carries out the client's actions: bytes to write are gathered, events
    /// go to the host, a close starts the grace period.
    fn dispatch(&mut self, now: Instant) {
        let close = dispatch_client(
            &mut self.client,
            &mut *self.host,
            &mut self.out,
            &mut self.side,
            &mut self.outcome,
        );
        if close && self.linger.is_none() {
            self.half_close = true;
            self.linger = Some(now + LINGER);
        }
    }
}

/// Carries out every pending client action: bytes to send are appended to
/// `out` (the runtime writes them, in one go), events go to the host, and the
/// session's outcome is recorded. Returns true when the client asked to close.
pub fn dispatch_client(
    client: &mut Client,
    host: &mut dyn ClientHost,
    out: &mut Vec<u8>,
    side: &mut std::collections::VecDeque<ClientOutput>,
    outcome: &mut Option<ClientOutcome>,
) -> bool {
    let mut close = false;
    while let Some(action) = client.poll_action() {
        match action {
            ClientAction::Send(bytes) => out.extend_from_slice(&bytes),
            ClientAction::Open(id) => side.push_back(ClientOutput::Open(id)),
            ClientAction::SideSend(id, bytes) => {
                side.push_back(ClientOutput::SideTransmit(id, bytes))
            }
            ClientAction::SideWatchDrain(id) => side.push_back(ClientOutput::SideWatchDrain(id)),
            ClientAction::SidePause(id, paused) => {
                side.push_back(ClientOutput::SidePause(id, paused))
            }
            ClientAction::SideClose(id) => side.push_back(ClientOutput::SideClose(id)),
            ClientAction::Files(request) => host.files(*request),
            ClientAction::Event(event) => {
                match &event {
                    ClientEvent::Refused { reason, why } => {
                        *outcome = Some(ClientOutcome {
                            expected: false,
                            refused: true,
                            reason: reason.clone(),
                            rejoin: Vec::new(),
                            resume: Vec::new(),
                            why: Some(*why),
                        })
                    }
                    // A refusal already said why; keep that reason.
                    ClientEvent::Disconnected { reason, expected } if outcome.is_none() => {
                        *outcome = Some(ClientOutcome {
                            expected: *expected,
                            refused: false,
                            reason: reason.clone(),
                            rejoin: Vec::new(),
                            resume: Vec::new(),
                            why: None,
                        });
                    }
                    _ => {}
                }
                host.event(&event);
            }
            ClientAction::Close => close = true,
        }
    }
    close
}

#[cfg(test)]
mod tests {
    //! Whole sessions in simulated time: the runtime's part is played by
    //! the test, which feeds inputs at chosen instants and collects outputs.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::protocol::{self, Refusal};
    use crate::time::WallTime;

    const NOON: WallTime = WallTime {
        hour: 12,
        minute: 0,
        unix_ms: 0,
    };

    /// Records what the host is told.
    #[derive(Clone, Default)]
    struct Host {
        events: Arc<Mutex<Vec<ClientEvent>>>,
        ready: Arc<Mutex<Option<SocketAddr>>>,
    }

    impl ClientHost for Host {
        fn wall_time(&mut self) -> WallTime {
            NOON
        }
        fn event(&mut self, event: &ClientEvent) {
            self.events.lock().unwrap().push(event.clone());
        }
        fn ready(&mut self, server_addr: SocketAddr, _control: Control) {
            *self.ready.lock().unwrap() = Some(server_addr);
        }
        fn files(&mut self, request: crate::transfer::FileRequest) {
            panic!("no file was asked about: {request:?}");
        }
    }

    impl Host {
        fn take_events(&self) -> Vec<ClientEvent> {
            std::mem::take(&mut *self.events.lock().unwrap())
        }
    }

    fn at(secs: f64) -> Instant {
        Instant::from_epoch(Duration::from_secs_f64(secs))
    }

    fn start(name: &str) -> (ClientDriver, Host) {
        let host = Host::default();
        let addr: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let driver = ClientDriver::new(
            at(0.0),
            ClientConfig::new(name, None),
            Box::new(host.clone()),
            addr,
            Arc::new(|_| {}),
        );
        assert_eq!(*host.ready.lock().unwrap(), Some(addr), "host told first");
        (driver, host)
    }

    /// Feeds `input` at `secs` and returns every output it produced.
    fn feed(d: &mut ClientDriver, secs: f64, input: ClientInput<'_>) -> Vec<ClientOutput> {
        d.handle_input(at(secs), input);
        std::iter::from_fn(|| d.poll_output()).collect()
    }

    fn server(d: &mut ClientDriver, secs: f64, line: &str) -> Vec<ClientOutput> {
        feed(d, secs, ClientInput::Bytes(line.as_bytes()))
    }

    fn line(d: &mut ClientDriver, secs: f64, text: &str) -> Vec<ClientOutput> {
        feed(d, secs, ClientInput::Command(Command::Line(text.into())))
    }

    fn transmit(text: &str) -> ClientOutput {
        ClientOutput::Transmit(text.as_bytes().to_vec())
    }

    /// A client logged in as `name` at 0.1 s.
    fn joined(name: &str) -> (ClientDriver, Host) {
        let (mut d, host) = start(name);
        assert_eq!(
            d.poll_output(),
            None,
            "nothing to do before the server speaks"
        );
        assert_eq!(d.poll_timeout(), Some(at(10.0)), "the login deadline");
        let out = server(&mut d, 0.0, &protocol::auth_request(NOON, false));
        assert_eq!(
            out,
            [transmit(&format!(
                "{{\"username\": \"{name}\", \"password\": \"\"}}\n"
            ))]
        );
        let out = server(&mut d, 0.1, &protocol::auth_ok(NOON, name, "Hub"));
        assert_eq!(out, []);
        assert!(d.client().is_joined());
        assert!(host
            .take_events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Joined { .. })));
        (d, host)
    }

    #[test]
    fn a_session_from_connect_to_quit() {
        let (mut d, host) = joined("alice");
        let out = line(&mut d, 1.0, "hello");
        assert_eq!(out.len(), 1, "one write: {out:?}");
        assert!(matches!(&out[0], ClientOutput::Transmit(b)
            if String::from_utf8_lossy(b).contains("hello")));

        // Leaving half-closes; the server's last answers are still shown.
        let out = line(&mut d, 2.0, "/quit");
        assert_eq!(out, [ClientOutput::HalfClose]);
        assert_eq!(d.poll_timeout(), Some(at(2.0) + LINGER));
        host.take_events();
        let out = server(&mut d, 2.5, &protocol::system(NOON, "alice left"));
        assert_eq!(out, []);
        assert!(matches!(
            &host.take_events()[..],
            [ClientEvent::System { .. }]
        ));

        // The server closes its side: the session is over, as expected.
        let out = feed(&mut d, 2.6, ClientInput::Closed);
        let outcome = ClientOutcome {
            expected: true,
            refused: false,
            reason: "You left.".into(),
            rejoin: Vec::new(),
            resume: Vec::new(),
            why: None,
        };
        assert_eq!(out, [ClientOutput::Done(outcome)]);
        assert_eq!(
            host.take_events(),
            [ClientEvent::Disconnected {
                reason: "You left.".into(),
                expected: true
            }]
        );
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.poll_output(), None, "Done comes once");
    }

    #[test]
    fn the_grace_period_after_half_close_ends_the_session() {
        let (mut d, _host) = joined("alice");
        let out = feed(&mut d, 5.0, ClientInput::Command(Command::EndOfInput));
        assert_eq!(out, [ClientOutput::HalfClose]);
        let end = at(5.0) + LINGER;
        assert_eq!(d.poll_timeout(), Some(end));

        // A timeout that fires early (timers may) does not end it.
        assert_eq!(feed(&mut d, 6.0, ClientInput::Timeout), []);
        assert_eq!(d.poll_timeout(), Some(end));
        // Only one half-close, however the user insists.
        assert_eq!(line(&mut d, 6.5, "/quit"), []);
        assert_eq!(
            d.poll_timeout(),
            Some(end),
            "the grace period is not extended"
        );

        // The server never closed its side: we stop waiting, as the user
        // asked.
        let out = feed(&mut d, 7.0, ClientInput::Timeout);
        assert_eq!(
            out,
            [ClientOutput::Done(ClientOutcome {
                expected: true,
                refused: false,
                reason: "You left.".into(),
                rejoin: Vec::new(),
                resume: Vec::new(),
                why: None,
            })]
        );
    }

    #[test]
    fn a_refusal_half_closes_and_keeps_its_reason() {
        let (mut d, host) = start("alice");
        let out = server(&mut d, 0.2, &protocol::auth_request(NOON, false));
        assert!(matches!(&out[..], [ClientOutput::Transmit(_)]), "the login");
        let out = server(&mut d, 0.3, &protocol::auth_fail(NOON, "Name taken."));
        let outcome = ClientOutcome {
            expected: false,
            refused: true,
            reason: "Name taken.".into(),
            rejoin: Vec::new(),
            resume: Vec::new(),
            why: Some(Refusal::Other),
        };
        assert_eq!(out, [ClientOutput::HalfClose, ClientOutput::Done(outcome)]);
        assert_eq!(
            host.take_events(),
            [ClientEvent::Refused {
                reason: "Name taken.".into(),
                why: Refusal::Other,
            }]
        );
        // The connection closing afterwards changes nothing.
        assert_eq!(feed(&mut d, 0.4, ClientInput::Closed), []);
    }

    #[test]
    fn the_login_deadline_is_a_refusal() {
        let (mut d, _host) = start("alice");
        assert_eq!(d.poll_timeout(), Some(at(10.0)));
        let out = feed(&mut d, 10.0, ClientInput::Timeout);
        assert!(
            matches!(&out[..], [ClientOutput::HalfClose, ClientOutput::Done(o)]
            if o.refused && !o.expected && o.reason.contains("in time"))
        );
    }

    #[test]
    fn a_failed_write_ends_the_session_as_lost() {
        let (mut d, _host) = joined("alice");
        let out = line(&mut d, 1.0, "hello");
        assert!(matches!(&out[..], [ClientOutput::Transmit(_)]));
        // The runtime could not write it: the connection is gone.
        let out = feed(&mut d, 1.0, ClientInput::Closed);
        assert_eq!(
            out,
            [ClientOutput::Done(ClientOutcome {
                expected: false,
                refused: false,
                reason: "Connection closed by the server.".into(),
                rejoin: Vec::new(),
                resume: Vec::new(),
                why: None,
            })]
        );
        // Nothing typed afterwards is sent.
        assert_eq!(line(&mut d, 1.5, "anyone?"), []);
    }
}
