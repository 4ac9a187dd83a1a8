//! The announcer's policy: when beacons go out and to where, which
//! destinations are reported as failing and when as recovered, and when the
//! mDNS record is (re)registered, at most how often.
//!
//! [`Announcer`] is a sans-IO machine. Time comes in as an [`Instant`]; what
//! the sockets and the mDNS daemon said comes in through the `handle_*`
//! functions; every effect leaves as an [`AnnounceOutput`] from
//! [`Announcer::poll_output`]. The runtime's loop is:
//!
//! ```text
//! loop {
//!     announcer.handle_users(users_online);
//!     announcer.handle_timeout(now);
//!     while let Some(output) = announcer.poll_output() {
//!         carry it out, and report back what the socket / daemon said
//!     }
//!     sleep until announcer.poll_timeout() (None: done)
//! }
//! announcer.handle_close(); then carry out the remaining outputs
//! ```
//!
//! Outputs that open something ([`AnnounceOutput::OpenSocket`],
//! [`AnnounceOutput::StartMdns`], [`AnnounceOutput::RefreshMdns`]) are
//! assumed to succeed unless the runtime reports a failure; a result for a
//! beacon ([`Announcer::handle_send_result`]) should be reported for every
//! [`AnnounceOutput::SendBeacon`] carried out, before the next output is
//! polled, so that what it causes comes next.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::datagram::{
    encode_info, encode_legacy, mdns_instance_name, txt_records, ServerAnnouncement,
    MDNS_SERVICE_TYPE,
};
use crate::server::Level;
use crate::time::Instant;

/// Users-online changes are pushed to mDNS at most this often by default.
pub const DEFAULT_MDNS_REFRESH: Duration = Duration::from_secs(5);

/// What a server announces, where, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// The server's display name.
    pub name: String,
    /// The server program's version, as announced.
    pub version: String,
    /// Where the chat server listens (its address decides where it is
    /// announced; its port is announced).
    pub local: SocketAddr,
    /// The UDP port beacons go to.
    pub discovery_port: u16,
    /// `--beacon-addr`s; empty means every interface's broadcast address.
    pub beacon_addrs: Vec<Ipv4Addr>,
    /// Time between beacons (and between re-reads of the targets).
    pub interval: Duration,
    /// Send LanTalk 2.0's `LANTALK_SERVER:ip:port` beacon before ours: only
    /// when its clients may join, or they would list a server that refuses
    /// them.
    pub legacy_beacon: bool,
    /// Register the server over mDNS (DNS-SD) too.
    pub mdns: bool,
    /// Users-online changes reach the mDNS record at most this often.
    pub mdns_refresh: Duration,
    pub password: bool,
    pub encrypted: bool,
    pub fingerprint: Option<String>,
}

/// One beacon destination and the server address announced to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub dest: Ipv4Addr,
    pub advertised: Ipv4Addr,
}

/// Which targets the runtime should look up (it owns the interface list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetQuery {
    /// The directed broadcast address of every IPv4 interface a server
    /// listening on `bind` can be reached on, each announcing that
    /// interface's own address.
    Interfaces { bind: IpAddr },
    /// These `--beacon-addr`s, each announcing the address a receiver there
    /// should connect to (those for which none is found left out).
    Explicit { bind: IpAddr, addrs: Vec<Ipv4Addr> },
}

/// Which of the two datagrams a beacon is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BeaconKind {
    /// LanTalk 2.0's `LANTALK_SERVER:<ip>:<port>`.
    Legacy,
    /// Our `LANTALK_INFO {…}`.
    Info,
}

/// What a socket said when it failed: the kind, for code, and the
/// operating system's message, for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketError {
    pub kind: std::io::ErrorKind,
    pub message: String,
}

impl SocketError {
    pub fn new(kind: std::io::ErrorKind, message: impl Into<String>) -> Self {
        SocketError {
            kind,
            message: message.into(),
        }
    }
}

impl From<&std::io::Error> for SocketError {
    fn from(e: &std::io::Error) -> Self {
        SocketError::new(e.kind(), e.to_string())
    }
}

impl From<std::io::Error> for SocketError {
    fn from(e: std::io::Error) -> Self {
        SocketError::from(&e)
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The service to register over mDNS (DNS-SD, [`MDNS_SERVICE_TYPE`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdnsRecord {
    /// The instance name.
    pub instance: String,
    /// The SRV port: the chat server's.
    pub port: u16,
    /// Users online, as the TXT record says.
    pub users: u32,
    /// The TXT record.
    pub txt: Vec<(String, String)>,
}

/// What the mDNS daemon reported on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MdnsEvent {
    /// Our name was taken on the network; the daemon picked another.
    NameChange { original: String, new_name: String },
    /// Something failed inside the daemon.
    Error(String),
}

/// What the announcer reports. `Display` gives the sentence for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// The server listens on a loopback address and no `--beacon-addr` was
    /// given: nothing is announced.
    NotAnnounced { bind: IpAddr },
    /// No socket for beacons could be opened: none are sent (mDNS goes on).
    SocketUnavailable { error: SocketError },
    /// The mDNS service is registered.
    MdnsRegistered { instance: String, host: String },
    /// mDNS could not be started: beacons only.
    MdnsUnavailable { error: String },
    /// There are no targets (any more); beacons start when there are.
    NoTargets,
    /// The targets are these (at first, and whenever they change).
    TargetsChanged {
        targets: Vec<Target>,
        port: u16,
        interval: Duration,
    },
    /// Beacons to `dest` fail (reported once, until they go through again).
    DestinationFailing {
        dest: SocketAddrV4,
        error: SocketError,
    },
    /// Beacons to `dest`, which failed, go through again.
    DestinationRecovered { dest: SocketAddrV4 },
    /// Our mDNS name was taken; the daemon picked another.
    MdnsNameChanged { original: String, new_name: String },
    /// The mDNS daemon failed (only the first such error is reported).
    MdnsError { error: String },
}

impl AnnounceEvent {
    /// How much it matters.
    pub fn level(&self) -> Level {
        match self {
            AnnounceEvent::SocketUnavailable { .. }
            | AnnounceEvent::MdnsUnavailable { .. }
            | AnnounceEvent::DestinationFailing { .. }
            | AnnounceEvent::MdnsError { .. } => Level::Warning,
            AnnounceEvent::NotAnnounced { .. }
            | AnnounceEvent::MdnsRegistered { .. }
            | AnnounceEvent::NoTargets
            | AnnounceEvent::TargetsChanged { .. }
            | AnnounceEvent::DestinationRecovered { .. }
            | AnnounceEvent::MdnsNameChanged { .. } => Level::Info,
        }
    }
}

impl fmt::Display for AnnounceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LAN discovery: ")?;
        match self {
            AnnounceEvent::NotAnnounced { bind } => write!(
                f,
                "not announced, the server listens on {bind} only, which nobody else can \
                 reach (--beacon-addr 127.255.255.255 announces it to this machine)."
            ),
            AnnounceEvent::SocketUnavailable { error } => {
                write!(f, "cannot open a UDP socket for beacons: {error}")
            }
            AnnounceEvent::MdnsRegistered { instance, host } => {
                write!(
                    f,
                    "mDNS service \"{instance}\" ({MDNS_SERVICE_TYPE}) on {host}"
                )
            }
            AnnounceEvent::MdnsUnavailable { error } => {
                write!(f, "mDNS unavailable ({error}); beacons only")
            }
            AnnounceEvent::NoTargets => f.write_str(
                "no network interface with an IPv4 broadcast address yet; beacons start \
                 when one appears.",
            ),
            AnnounceEvent::TargetsChanged {
                targets,
                port,
                interval,
            } => {
                write!(
                    f,
                    "beacons every {} s to UDP port {port} at ",
                    interval.as_secs_f64()
                )?;
                for (i, t) in targets.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} (as {})", t.dest, t.advertised)?;
                }
                Ok(())
            }
            AnnounceEvent::DestinationFailing { dest, error } => {
                write!(f, "cannot send a beacon to {dest}: {error}")
            }
            AnnounceEvent::DestinationRecovered { dest } => {
                write!(f, "beacons to {dest} go through again.")
            }
            AnnounceEvent::MdnsNameChanged { original, new_name } => {
                write!(f, "mDNS name {original} is taken; now {new_name}")
            }
            AnnounceEvent::MdnsError { error } => write!(f, "mDNS: {error}"),
        }
    }
}

/// One thing for the runtime to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceOutput {
    /// Open the UDP socket beacons leave from, allowed to send to broadcast
    /// addresses, bound to `from` (unspecified: any). Report a failure with
    /// [`Announcer::handle_socket_opened`].
    OpenSocket { from: Ipv4Addr },
    /// Start the mDNS daemon and register this service; report the host
    /// name used (or the failure) with [`Announcer::handle_mdns_started`].
    StartMdns(MdnsRecord),
    /// Look up the current targets and hand them to
    /// [`Announcer::handle_targets`] (the interfaces may have changed).
    ReadTargets(TargetQuery),
    /// Send this datagram to `dest`; report with
    /// [`Announcer::handle_send_result`].
    SendBeacon {
        dest: SocketAddrV4,
        kind: BeaconKind,
        bytes: Vec<u8>,
    },
    /// Register the service again, with this record (the number of users
    /// changed); report a failure with [`Announcer::handle_mdns_refreshed`].
    RefreshMdns(MdnsRecord),
    /// Unregister the service (saying goodbye) and stop the mDNS daemon.
    StopMdns,
    /// Report this.
    Log { level: Level, event: AnnounceEvent },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not yet started: the first [`Announcer::handle_timeout`] starts.
    Idle,
    Running,
    /// Not announced, or closed: nothing more to do.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SocketState {
    None,
    Open,
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum MdnsState {
    Off,
    Running {
        /// What the registered record says, and since when.
        users: u32,
        since: Instant,
        /// The record before the last refresh, restored if it failed.
        before: Option<(u32, Instant)>,
        /// After a failed refresh: not again before this.
        retry_at: Option<Instant>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Queued {
    Out(AnnounceOutput),
    /// A beacon tick: read the targets, then beacon to them (expanded when
    /// polled, so that the answers to earlier outputs are known).
    Tick,
    /// Beacons to the current targets.
    Beacons,
}

/// The announcer's policy as a state machine; see the module documentation.
#[derive(Clone, Debug)]
pub struct Announcer {
    config: AnnouncerConfig,
    phase: Phase,
    /// The latest time seen.
    now: Instant,
    next_tick: Instant,
    users: u32,
    socket: SocketState,
    mdns: MdnsState,
    reported_mdns_error: bool,
    /// The targets last read (None: never read).
    targets: Option<Vec<Target>>,
    /// Destinations whose last beacon failed.
    failing: BTreeSet<SocketAddrV4>,
    queue: VecDeque<Queued>,
}

impl Announcer {
    /// An announcer that starts at the first [`Announcer::handle_timeout`]
    /// at or after `now`.
    pub fn new(config: AnnouncerConfig, now: Instant) -> Self {
        Announcer {
            config,
            phase: Phase::Idle,
            now,
            next_tick: now,
            users: 0,
            socket: SocketState::None,
            mdns: MdnsState::Off,
            reported_mdns_error: false,
            targets: None,
            failing: BTreeSet::new(),
            queue: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &AnnouncerConfig {
        &self.config
    }

    /// Whether nothing more will happen (not announced, or closed).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The destinations currently reported as failing.
    pub fn failing(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
        self.failing.iter().copied()
    }

    /// How many users are online now (announced from the next beacon on,
    /// and pushed to mDNS as the refresh throttle allows).
    pub fn handle_users(&mut self, count: usize) {
        self.users = u32::try_from(count).unwrap_or(u32::MAX);
    }

    /// Time passes: starts, beacons when the interval is up, refreshes the
    /// mDNS record when the user count changed and the throttle allows.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let now = self.now;
        match self.phase {
            Phase::Done => return,
            Phase::Idle if now >= self.next_tick => self.start(),
            Phase::Idle => return,
            Phase::Running => {}
        }
        if now >= self.next_tick {
            self.queue.push_back(Queued::Tick);
            // At least a millisecond, so a zero interval cannot spin.
            self.next_tick = now + self.config.interval.max(Duration::from_millis(1));
        }
        if self.mdns_due().is_some_and(|due| now >= due) {
            let record = self.record(self.users);
            if let MdnsState::Running {
                users,
                since,
                before,
                retry_at,
            } = &mut self.mdns
            {
                *before = Some((*users, *since));
                *users = record.users;
                *since = now;
                *retry_at = None;
            }
            self.out(AnnounceOutput::RefreshMdns(record));
        }
    }

    fn start(&mut self) {
        self.phase = Phase::Running;
        let bind = self.config.local.ip();
        if bind.is_loopback() && self.config.beacon_addrs.is_empty() {
            self.phase = Phase::Done;
            self.log(AnnounceEvent::NotAnnounced { bind });
            return;
        }
        let from = match bind {
            IpAddr::V4(b) if !b.is_unspecified() => b,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        self.out(AnnounceOutput::OpenSocket { from });
        if self.config.mdns && !bind.is_loopback() {
            let record = self.record(self.users);
            self.mdns = MdnsState::Running {
                users: record.users,
                since: self.now,
                before: None,
                retry_at: None,
            };
            self.out(AnnounceOutput::StartMdns(record));
        }
    }

    /// When the mDNS record should be registered again, if it should.
    fn mdns_due(&self) -> Option<Instant> {
        match &self.mdns {
            MdnsState::Running {
                users,
                since,
                retry_at,
                ..
            } if *users != self.users => {
                let throttled = *since + self.config.mdns_refresh;
                Some(retry_at.map_or(throttled, |r| r.max(throttled)))
            }
            _ => None,
        }
    }

    /// What the runtime got when it opened the beacon socket.
    pub fn handle_socket_opened(&mut self, result: Result<(), SocketError>) {
        match result {
            Ok(()) => self.socket = SocketState::Open,
            Err(error) => {
                self.socket = SocketState::Unavailable;
                self.log_next(AnnounceEvent::SocketUnavailable { error });
            }
        }
    }

    /// What the runtime got when it started mDNS: the host name the service
    /// is registered under, or why it could not be.
    pub fn handle_mdns_started(&mut self, result: Result<String, String>) {
        match result {
            Ok(host) => {
                let instance = mdns_instance_name(&self.config.name);
                self.log_next(AnnounceEvent::MdnsRegistered { instance, host });
            }
            Err(error) => {
                self.mdns = MdnsState::Off;
                self.queue
                    .retain(|q| !matches!(q, Queued::Out(AnnounceOutput::RefreshMdns(_))));
                self.log_next(AnnounceEvent::MdnsUnavailable { error });
            }
        }
    }

    /// Whether registering the refreshed record worked. A failure is not
    /// reported (mDNS keeps the previous record); it is retried after an
    /// interval, without waiting for the throttle.
    pub fn handle_mdns_refreshed(&mut self, result: Result<(), String>) {
        let interval = self.config.interval;
        if let MdnsState::Running {
            users,
            since,
            before,
            retry_at,
        } = &mut self.mdns
        {
            if let (Err(_), Some((old_users, old_since))) = (result, before.take()) {
                *retry_at = Some(*since + interval);
                *users = old_users;
                *since = old_since;
            }
        }
    }

    /// What the mDNS daemon reported.
    pub fn handle_mdns_event(&mut self, event: MdnsEvent) {
        if self.phase == Phase::Done {
            return;
        }
        match event {
            MdnsEvent::NameChange { original, new_name } => {
                self.log(AnnounceEvent::MdnsNameChanged { original, new_name })
            }
            MdnsEvent::Error(error) if !self.reported_mdns_error => {
                self.reported_mdns_error = true;
                self.log(AnnounceEvent::MdnsError { error });
            }
            MdnsEvent::Error(_) => {}
        }
    }

    /// The targets, as looked up for [`AnnounceOutput::ReadTargets`]. A
    /// change (or the first list) is logged.
    pub fn handle_targets(&mut self, targets: Vec<Target>) {
        if self.targets.as_ref() == Some(&targets) {
            return;
        }
        let event = if targets.is_empty() {
            AnnounceEvent::NoTargets
        } else {
            AnnounceEvent::TargetsChanged {
                targets: targets.clone(),
                port: self.config.discovery_port,
                interval: self.config.interval,
            }
        };
        self.targets = Some(targets);
        self.log_next(event);
    }

    /// What the socket said to a [`AnnounceOutput::SendBeacon`]. A
    /// destination is reported once when its beacons start failing, and
    /// once when they go through again. When LanTalk 2.0's beacon fails,
    /// ours is not sent to that destination this time.
    pub fn handle_send_result(
        &mut self,
        dest: SocketAddrV4,
        kind: BeaconKind,
        result: Result<(), SocketError>,
    ) {
        match result {
            Ok(()) => {
                // A destination recovers when its last datagram went through.
                if kind == BeaconKind::Info && self.failing.remove(&dest) {
                    self.log_next(AnnounceEvent::DestinationRecovered { dest });
                }
            }
            Err(error) => {
                if kind == BeaconKind::Legacy {
                    self.queue.retain(|q| {
                        !matches!(q, Queued::Out(AnnounceOutput::SendBeacon { dest: d, kind: BeaconKind::Info, .. }) if *d == dest)
                    });
                }
                if self.failing.insert(dest) {
                    self.log_next(AnnounceEvent::DestinationFailing { dest, error });
                }
            }
        }
    }

    /// Stops announcing: mDNS says goodbye; nothing is sent any more.
    pub fn handle_close(&mut self) {
        self.phase = Phase::Done;
        self.queue
            .retain(|q| matches!(q, Queued::Out(AnnounceOutput::Log { .. })));
        if matches!(self.mdns, MdnsState::Running { .. }) {
            self.mdns = MdnsState::Off;
            self.out(AnnounceOutput::StopMdns);
        }
    }

    /// The next thing to do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<AnnounceOutput> {
        loop {
            match self.queue.pop_front()? {
                Queued::Out(out) => {
                    if let AnnounceOutput::OpenSocket { .. } = out {
                        self.socket = SocketState::Open;
                    }
                    return Some(out);
                }
                Queued::Tick => {
                    if self.socket == SocketState::Open {
                        let query = self.query();
                        self.queue.push_front(Queued::Beacons);
                        self.queue
                            .push_front(Queued::Out(AnnounceOutput::ReadTargets(query)));
                    }
                }
                Queued::Beacons => {
                    let beacons = self.beacons();
                    for b in beacons.into_iter().rev() {
                        self.queue.push_front(Queued::Out(b));
                    }
                }
            }
        }
    }

    /// When [`Announcer::handle_timeout`] should be called next; `None` when
    /// nothing more will happen.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Done {
            return None;
        }
        Some(match self.mdns_due() {
            Some(due) => due.min(self.next_tick),
            None => self.next_tick,
        })
    }

    fn query(&self) -> TargetQuery {
        let bind = self.config.local.ip();
        if self.config.beacon_addrs.is_empty() {
            TargetQuery::Interfaces { bind }
        } else {
            TargetQuery::Explicit {
                bind,
                addrs: self.config.beacon_addrs.clone(),
            }
        }
    }

    fn announcement(&self, addr: Option<IpAddr>, users: u32) -> ServerAnnouncement {
        ServerAnnouncement {
            name: self.config.name.clone(),
            addr,
            port: self.config.local.port(),
            version: self.config.version.clone(),
            encrypted: self.config.encrypted,
            password: self.config.password,
            users,
            fingerprint: self.config.fingerprint.clone(),
        }
    }

    fn record(&self, users: u32) -> MdnsRecord {
        MdnsRecord {
            instance: mdns_instance_name(&self.config.name),
            port: self.config.local.port(),
            users,
            txt: txt_records(&self.announcement(None, users)),
        }
    }

    fn beacons(&self) -> Vec<AnnounceOutput> {
        let mut out = Vec::new();
        for t in self.targets.iter().flatten() {
            let dest = SocketAddrV4::new(t.dest, self.config.discovery_port);
            if self.config.legacy_beacon {
                out.push(AnnounceOutput::SendBeacon {
                    dest,
                    kind: BeaconKind::Legacy,
                    bytes: encode_legacy(t.advertised, self.config.local.port()),
                });
            }
            let a = self.announcement(Some(IpAddr::V4(t.advertised)), self.users);
            out.push(AnnounceOutput::SendBeacon {
                dest,
                kind: BeaconKind::Info,
                bytes: encode_info(&a),
            });
        }
        out
    }

    fn out(&mut self, out: AnnounceOutput) {
        self.queue.push_back(Queued::Out(out));
    }

    fn log(&mut self, event: AnnounceEvent) {
        let level = event.level();
        self.out(AnnounceOutput::Log { level, event });
    }

    /// Logs what the runtime's last answer caused, before anything else.
    fn log_next(&mut self, event: AnnounceEvent) {
        let level = event.level();
        self.queue
            .push_front(Queued::Out(AnnounceOutput::Log { level, event }));
    }
}
