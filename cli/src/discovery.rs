//! LAN discovery on real sockets: the announcer a running server keeps
//! going, and the scan that `scan` and the menu use. Every decision about
//! what a datagram or TXT record says, and the announcer's whole policy
//! (when to beacon and re-read the interfaces, which failures to report,
//! when to refresh mDNS), is made by [`lantalk_core::discovery`] and its
//! [`Announcer`](lantalk_core::discovery::Announcer) machine; this module
//! only sends, receives and waits.
//!
//! * Beacons: a thread with one `std::net::UdpSocket` sends LanTalk 2.0's
//!   `LANTALK_SERVER:<ip>:<port>` and our `LANTALK_INFO {…}` to the directed
//!   broadcast address of every IPv4 interface (or to `--beacon-addr`s), each
//!   announcing the interface's own address, every `--beacon-interval`.
//! * DNS-SD over mDNS: `mdns-sd` runs its own thread; we register
//!   `_lantalk._tcp.local.` with the same facts in TXT records, and refresh
//!   them when the number of users changes.
//! * Scan: listen on UDP `--discovery-port` (shared with other listeners via
//!   `SO_REUSEADDR`/`SO_REUSEPORT`) and browse mDNS for the timeout, then
//!   merge by (address, port).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lantalk_core::discovery::{
    self as disc, AnnounceOutput, MdnsEvent, MdnsRecord, ScanTable, ServerAnnouncement,
    SocketError, TargetQuery, MDNS_SERVICE_TYPE,
};
use lantalk_core::server::Level;
use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

/// Where the announcer reports what it does and what fails.
pub type Log = Box<dyn FnMut(Level, &str) + Send>;

/// How long stopping mDNS may take (goodbye packets, daemon shutdown).
const MDNS_STOP: Duration = Duration::from_secs(1);

/// What a server announces, and where.
#[derive(Clone, Debug)]
pub struct AnnounceSettings {
    pub name: String,
    pub discovery_port: u16,
    /// `--beacon-addr`s; empty means every interface's broadcast address.
    pub beacon_addrs: Vec<Ipv4Addr>,
    pub interval: Duration,
    pub mdns: bool,
    pub password: bool,
    pub encrypted: bool,
    pub fingerprint: Option<String>,
    /// Send LanTalk 2.0's `LANTALK_SERVER:ip:port` beacon too: only when
    /// its clients may join (`--allow-plaintext`), or they would list a
    /// server that refuses them.
    pub legacy_beacon: bool,
}

pub use lantalk_core::discovery::Target;

/// Every non-loopback IPv4 interface (with an address, and a netmask that
/// leaves room for a broadcast address): name, address, prefix, broadcast.
pub fn broadcast_interfaces() -> Vec<(String, Ipv4Addr, u8, Ipv4Addr)> {
    let mut out = Vec::new();
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        let if_addrs::IfAddr::V4(v4) = &iface.addr else {
            continue;
        };
        if let Some(b) = disc::directed_broadcast(v4.ip, v4.netmask) {
            out.push((iface.name.clone(), v4.ip, v4.prefixlen, b));
        }
    }
    out
}

/// The automatic beacon destinations for a server listening on `bind`: the
/// directed broadcast address of each IPv4 interface it can be reached on,
/// announcing that interface's own address. None for a loopback or a
/// specific IPv6 address.
pub fn automatic_targets(bind: IpAddr) -> Vec<Target> {
    let only = match bind {
        IpAddr::V4(b) if b.is_loopback() => return Vec::new(),
        IpAddr::V4(b) if !b.is_unspecified() => Some(b),
        IpAddr::V6(b) if !b.is_unspecified() => return Vec::new(),
        _ => None,
    };
    let mut out: Vec<Target> = Vec::new();
    for (_, ip, _, dest) in broadcast_interfaces() {
        if only.is_some_and(|b| b != ip) || out.iter().any(|t| t.dest == dest) {
            continue;
        }
        out.push(Target {
            dest,
            advertised: ip,
        });
    }
    out.sort();
    out
}

/// `--beacon-addr`s as targets: each announces the address a receiver there
/// should connect to. Those for which none can be found are left out.
pub fn explicit_targets(bind: IpAddr, addrs: &[Ipv4Addr]) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for &dest in addrs {
        if let Some(advertised) = advertised_for(bind, dest) {
            if !out.iter().any(|t| t.dest == dest) {
                out.push(Target { dest, advertised });
            }
        }
    }
    out
}

fn advertised_for(bind: IpAddr, dest: Ipv4Addr) -> Option<Ipv4Addr> {
    if let IpAddr::V4(b) = bind {
        if !b.is_unspecified() {
            return Some(b);
        }
    }
    if dest.is_loopback() {
        return Some(Ipv4Addr::LOCALHOST);
    }
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        if let if_addrs::IfAddr::V4(v4) = &iface.addr {
            if !v4.ip.is_loopback() && disc::same_network(v4.ip, dest, v4.netmask) {
                return Some(v4.ip);
            }
        }
    }
    // Not on any of our networks: the address the system would send from.
    // (Connecting a UDP socket sends nothing.)
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    let _ = probe.set_broadcast(true);
    probe.connect((dest, 9)).ok()?;
    match probe.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

// ── Announcing ───────────────────────────────────────────────────────────────

/// Announces a server until dropped.
pub struct Announcer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Announcer {
    /// Starts announcing the server listening on `local`; `users` tells how
    /// many users are online.
    pub fn start(
        settings: AnnounceSettings,
        local: SocketAddr,
        users: impl Fn() -> usize + Send + 'static,
        mut log: Log,
    ) -> Announcer {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("discovery".into())
            .spawn(move || announce(settings, local, users, &mut log, &stop2));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                // `log` moved into the closure that failed to start; the
                // console still hears about it.
                crate::term::eprint(&format!("warning: cannot start LAN discovery: {e}\n"));
                None
            }
        };
        Announcer { stop, thread }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The core's announcer configured from the command line's settings.
fn announcer_config(settings: &AnnounceSettings, local: SocketAddr) -> disc::AnnouncerConfig {
    disc::AnnouncerConfig {
        name: settings.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        local,
        discovery_port: settings.discovery_port,
        beacon_addrs: settings.beacon_addrs.clone(),
        interval: settings.interval,
        legacy_beacon: settings.legacy_beacon,
        mdns: settings.mdns,
        mdns_refresh: disc::DEFAULT_MDNS_REFRESH,
        password: settings.password,
        encrypted: settings.encrypted,
        fingerprint: settings.fingerprint.clone(),
    }
}

/// The announcer's thread: reads the clock, feeds the core's
/// [`disc::Announcer`], carries out what it asks for, and sleeps until it
/// wants time again or is told to stop. Every decision is the machine's.
fn announce(
    settings: AnnounceSettings,
    local: SocketAddr,
    users: impl Fn() -> usize,
    log: &mut Log,
    stop: &(Mutex<bool>, Condvar),
) {
    let epoch = Instant::now();
    let now = || lantalk_core::Instant::from_epoch(epoch.elapsed());
    let mut machine = disc::Announcer::new(announcer_config(&settings, local), now());
    let mut io = AnnounceIo {
        local,
        socket: None,
        mdns: None,
    };
    loop {
        machine.handle_users(users());
        for event in io
            .mdns
            .as_ref()
            .map(MdnsAnnouncer::events)
            .unwrap_or_default()
        {
            machine.handle_mdns_event(event);
        }
        machine.handle_timeout(now());
        io.carry_out(&mut machine, log);
        let Some(deadline) = machine.poll_timeout() else {
            break;
        };
        if wait_until(stop, epoch + deadline.since_epoch()) {
            break;
        }
    }
    machine.handle_close();
    io.carry_out(&mut machine, log);
}

/// Sleeps until `deadline` or until told to stop; true when told to stop.
fn wait_until((lock, cv): &(Mutex<bool>, Condvar), deadline: Instant) -> bool {
    let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        stopped = cv
            .wait_timeout(stopped, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    *stopped
}

/// What the announcer's outputs act on.
struct AnnounceIo {
    local: SocketAddr,
    socket: Option<UdpSocket>,
    mdns: Option<MdnsAnnouncer>,
}

impl AnnounceIo {
    /// Carries out every output, reporting back what the socket or the mDNS
    /// daemon said.
    fn carry_out(&mut self, machine: &mut disc::Announcer, log: &mut Log) {
        while let Some(output) = machine.poll_output() {
            match output {
                AnnounceOutput::OpenSocket { from } => {
                    let opened = beacon_socket(from).map(|s| self.socket = Some(s));
                    machine.handle_socket_opened(opened.map_err(SocketError::from));
                }
                AnnounceOutput::StartMdns(record) => {
                    match MdnsAnnouncer::start(&record, self.local) {
                        Ok(m) => {
                            let host = m.host.clone();
                            self.mdns = Some(m);
                            machine.handle_mdns_started(Ok(host));
                        }
                        Err(e) => machine.handle_mdns_started(Err(e)),
                    }
                }
                AnnounceOutput::ReadTargets(query) => machine.handle_targets(match query {
                    TargetQuery::Interfaces { bind } => automatic_targets(bind),
                    TargetQuery::Explicit { bind, addrs } => explicit_targets(bind, &addrs),
                }),
                AnnounceOutput::SendBeacon { dest, kind, bytes } => {
                    let sent = match &self.socket {
                        Some(s) => s.send_to(&bytes, dest).map(drop).map_err(SocketError::from),
                        None => Err(SocketError::new(ErrorKind::NotConnected, "no socket")),
                    };
                    machine.handle_send_result(dest, kind, sent);
                }
                AnnounceOutput::RefreshMdns(record) => {
                    let registered = match &self.mdns {
                        Some(m) => m.register(&record, self.local),
                        None => Err("mDNS is not running".to_string()),
                    };
                    machine.handle_mdns_refreshed(registered);
                }
                AnnounceOutput::StopMdns => {
                    if let Some(m) = self.mdns.take() {
                        m.stop();
                    }
                }
                AnnounceOutput::Log { level, event } => log(level, &event.to_string()),
            }
        }
    }
}

/// A UDP socket that may send to broadcast addresses, bound to `from` (the
/// server's address when it has a specific IPv4 one, so beacons leave from
/// it).
fn beacon_socket(from: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind((from, 0))?;
    socket.set_broadcast(true)?;
    Ok(socket)
}

/// The mDNS host name of our service: this machine's name, made a valid DNS
/// label, plus the port. A name of our own, so that our records never
/// contradict the ones the system's mDNS responder keeps for the machine.
fn mdns_host(port: u16) -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let raw = raw
        .trim()
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut label: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    label = label.trim_matches('-').to_string();
    if label.is_empty() {
        label = "host".into();
    }
    format!("{label}-lantalk-{port}.local.")
}

/// The mDNS daemon with our service registered.
struct MdnsAnnouncer {
    daemon: ServiceDaemon,
    monitor: mdns_sd::Receiver<DaemonEvent>,
    host: String,
    fullname: String,
}

impl MdnsAnnouncer {
    fn service(record: &MdnsRecord, local: SocketAddr) -> Result<ServiceInfo, String> {
        let host = mdns_host(local.port());
        let ips: Vec<IpAddr> = if local.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![local.ip()]
        };
        let info = ServiceInfo::new(
            MDNS_SERVICE_TYPE,
            &record.instance,
            &host,
            &ips[..],
            record.port,
            &record.txt[..],
        )
        .map_err(|e| e.to_string())?;
        Ok(if ips.is_empty() {
            info.enable_addr_auto()
        } else {
            info
        })
    }

    fn start(record: &MdnsRecord, local: SocketAddr) -> Result<Self, String> {
        let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
        let monitor = daemon.monitor().map_err(|e| e.to_string())?;
        if !local.ip().is_unspecified() {
            // Only where the server can be reached.
            let _ = daemon.disable_interface(IfKind::All);
            let _ = daemon.enable_interface(IfKind::Addr(local.ip()));
        }
        let info = Self::service(record, local)?;
        let fullname = info.get_fullname().to_string();
        let host = info.get_hostname().to_string();
        daemon.register(info).map_err(|e| e.to_string())?;
        Ok(MdnsAnnouncer {
            daemon,
            monitor,
            host,
            fullname,
        })
    }

    /// Registers the service again with `record`.
    fn register(&self, record: &MdnsRecord, local: SocketAddr) -> Result<(), String> {
        let info = Self::service(record, local)?;
        self.daemon.register(info).map_err(|e| e.to_string())
    }

    /// What the daemon reported since last asked.
    fn events(&self) -> Vec<MdnsEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.monitor.try_recv() {
            match event {
                DaemonEvent::NameChange(change) => out.push(MdnsEvent::NameChange {
                    original: change.original,
                    new_name: change.new_name,
                }),
                DaemonEvent::Error(e) => out.push(MdnsEvent::Error(e.to_string())),
                _ => {}
            }
        }
        out
    }

    /// Says goodbye on the network and stops the daemon, within bounds.
    fn stop(self) {
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(MDNS_STOP);
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(MDNS_STOP);
        }
    }
}

/// Whether `LANTALK_NO_DISCOVERY` is set to something other than a "no"
/// (`0`, `false`, `no`, `off`, empty): the menu then does not scan, as
/// `server` then does not announce.
pub fn disabled_by_env() -> bool {
    std::env::var("LANTALK_NO_DISCOVERY").is_ok_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off" | "n" | "f"
        )
    })
}

// ── Scanning ─────────────────────────────────────────────────────────────────

#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub timeout: Duration,
    pub discovery_port: u16,
    pub mdns: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            timeout: Duration::from_secs(3),
            discovery_port: disc::DEFAULT_DISCOVERY_PORT,
            mdns: true,
        }
    }
}

/// What a scan found, and what kept it from looking everywhere.
pub struct ScanReport {
    pub table: ScanTable,
    /// The discovery port could not be listened on.
    pub udp_error: Option<String>,
    /// mDNS could not be browsed.
    pub mdns_error: Option<String>,
}

/// Listens for beacons and browses mDNS for `opts.timeout`.
pub fn scan(opts: &ScanOptions) -> ScanReport {
    let deadline = Instant::now() + opts.timeout;
    let mdns = if opts.mdns {
        std::thread::Builder::new()
            .name("mdns-browse".into())
            .spawn(move || browse_mdns(deadline))
            .map_err(|e| e.to_string())
            .map(Some)
    } else {
        Ok(None)
    };
    let mut table = ScanTable::new();
    let udp_error = match discovery_socket(opts.discovery_port) {
        Ok(socket) => {
            listen(&socket, deadline, &mut table);
            None
        }
        Err(e) => {
            // Still give mDNS its time.
            let now = Instant::now();
            if opts.mdns && now < deadline {
                std::thread::sleep(deadline - now);
            }
            Some(format!(
                "cannot listen on UDP port {}: {e}",
                opts.discovery_port
            ))
        }
    };
    let mdns_error = match mdns {
        Ok(None) => None,
        Err(e) => Some(format!("cannot start the mDNS browser: {e}")),
        Ok(Some(handle)) => match handle.join() {
            Ok(Ok(found)) => {
                for (addrs, a) in found {
                    table.add_mdns(&addrs, &a);
                }
                None
            }
            Ok(Err(e)) => Some(e),
            Err(_) => Some("the mDNS browser failed".into()),
        },
    };
    ScanReport {
        table,
        udp_error,
        mdns_error,
    }
}

/// UDP `0.0.0.0:port`, shared with every other listener on this host that
/// asks for it (our scanners, LanTalk 2.0 clients).
fn discovery_socket(port: u16) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    ))]
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(socket.into())
}

fn listen(socket: &UdpSocket, deadline: Instant, table: &mut ScanTable) {
    // One byte more than the largest datagram accepted, to notice larger ones.
    let mut buf = vec![0u8; disc::MAX_DATAGRAM + 1];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        if socket.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if n <= disc::MAX_DATAGRAM => {
                table.add_datagram(from.ip(), &buf[..n]);
            }
            Ok(_) => table.ignored += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                // E.g. a datagram larger than the buffer on Windows.
                table.ignored += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

type MdnsFound = Vec<(Vec<IpAddr>, ServerAnnouncement)>;

fn browse_mdns(deadline: Instant) -> Result<MdnsFound, String> {
    let daemon = ServiceDaemon::new().map_err(|e| format!("cannot start mDNS: {e}"))?;
    let monitor = daemon.monitor().ok();
    let events = daemon
        .browse(MDNS_SERVICE_TYPE)
        .map_err(|e| format!("cannot browse mDNS: {e}"))?;
    let mut found: BTreeMap<String, (Vec<IpAddr>, ServerAnnouncement)> = BTreeMap::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match events.recv_timeout(deadline - now) {
            Ok(ServiceEvent::ServiceResolved(svc)) => {
                let mut props = Vec::new();
                let mut readable = true;
                for p in svc.txt_properties.iter() {
                    match std::str::from_utf8(p.val().unwrap_or(b"")) {
                        Ok(v) => props.push((p.key(), v)),
                        Err(_) => readable = false,
                    }
                }
                let Some(a) = readable
                    .then(|| disc::parse_txt(svc.port, props.iter().copied()))
                    .flatten()
                else {
                    continue;
                };
                let addrs: Vec<IpAddr> = svc.addresses.iter().map(|ip| ip.to_ip_addr()).collect();
                if found.len() < disc::MAX_FOUND || found.contains_key(&svc.fullname) {
                    found.insert(svc.fullname.clone(), (addrs, a));
                }
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                found.remove(&fullname);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let mut error = None;
    if let Some(monitor) = monitor {
        while let Ok(event) = monitor.try_recv() {
            if let DaemonEvent::Error(e) = event {
                error.get_or_insert_with(|| format!("mDNS: {e}"));
            }
        }
    }
    let _ = daemon.stop_browse(MDNS_SERVICE_TYPE);
    if let Ok(rx) = daemon.shutdown() {
        let _ = rx.recv_timeout(MDNS_STOP);
    }
    match error {
        Some(e) if found.is_empty() => Err(e),
        _ => Ok(found.into_values().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_specific_ipv6_binds_announce_nowhere_by_default() {
        assert!(automatic_targets(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_empty());
        assert!(automatic_targets("::1".parse().unwrap()).is_empty());
    }

    #[test]
    fn loopback_beacons_announce_loopback() {
        let t = explicit_targets(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            &[
                Ipv4Addr::new(127, 255, 255, 255),
                Ipv4Addr::new(127, 255, 255, 255),
            ],
        );
        assert_eq!(
            t,
            [Target {
                dest: Ipv4Addr::new(127, 255, 255, 255),
                advertised: Ipv4Addr::LOCALHOST
            }]
        );
        // A specific bind address is what is announced.
        let t = explicit_targets(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            &[Ipv4Addr::new(127, 255, 255, 255)],
        );
        assert_eq!(t[0].advertised, Ipv4Addr::new(127, 0, 0, 2));
    }

    #[test]
    fn automatic_targets_announce_each_interface_address() {
        for t in automatic_targets(IpAddr::V4(Ipv4Addr::UNSPECIFIED)) {
            let on_iface = broadcast_interfaces()
                .into_iter()
                .any(|(_, ip, _, b)| ip == t.advertised && b == t.dest);
            assert!(on_iface, "{t:?}");
        }
    }

    #[test]
    fn mdns_host_is_a_local_name() {
        let h = mdns_host(5050);
        assert!(h.ends_with("-lantalk-5050.local."), "{h}");
        assert!(h
            .trim_end_matches(".local.")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
