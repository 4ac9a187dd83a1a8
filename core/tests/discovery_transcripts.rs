//! The discovery announcer's policy in simulated time, one transcript per
//! behaviour, pinned by snapshots (and by assertions on what matters).
//!
//! A small simulated world answers the machine's outputs: which targets the
//! interfaces give, which destinations refuse datagrams, whether mDNS starts
//! and whether refreshing it works. Every step is written down with the
//! outputs it produced and the deadline the machine asked for:
//!
//! ```text
//! @2.000 timeout
//!   read-targets interfaces bind 0.0.0.0 -> 192.168.1.255 (as 192.168.1.5)
//!   send 192.168.1.255:5051 info LANTALK_INFO {…} -> ok
//!   poll_timeout @4.000
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use insta::assert_snapshot;
use lantalk_core::discovery::{
    parse_datagram, AnnounceEvent, AnnounceOutput, Announcer, AnnouncerConfig, BeaconKind,
    Datagram, MdnsEvent, SocketError, Target, TargetQuery, DEFAULT_MDNS_REFRESH,
};
use lantalk_core::server::Level;
use lantalk_core::Instant;

fn at(secs: f64) -> Instant {
    Instant::from_epoch(Duration::from_secs_f64(secs))
}

fn secs(i: Instant) -> f64 {
    i.since_epoch().as_secs_f64()
}

fn config() -> AnnouncerConfig {
    AnnouncerConfig {
        name: "Hub".into(),
        version: "1.0.0".into(),
        local: "0.0.0.0:5050".parse().unwrap(),
        discovery_port: 5051,
        beacon_addrs: Vec::new(),
        interval: Duration::from_secs(2),
        legacy_beacon: false,
        mdns: true,
        mdns_refresh: DEFAULT_MDNS_REFRESH,
        password: false,
        encrypted: true,
        fingerprint: Some("SHA256:abc".into()),
    }
}

fn target(dest: [u8; 4], advertised: [u8; 4]) -> Target {
    Target {
        dest: Ipv4Addr::from(dest),
        advertised: Ipv4Addr::from(advertised),
    }
}

fn lan() -> Target {
    target([192, 168, 1, 255], [192, 168, 1, 5])
}

fn lab() -> Target {
    target([10, 0, 0, 255], [10, 0, 0, 7])
}

fn dest(t: Target) -> SocketAddrV4 {
    SocketAddrV4::new(t.dest, 5051)
}

fn unreachable() -> SocketError {
    SocketError::new(
        ErrorKind::NetworkUnreachable,
        "Network is unreachable (os error 101)",
    )
}

/// What the simulated network and mDNS daemon answer.
struct World {
    targets: Vec<Target>,
    /// Destinations whose datagrams fail, and how.
    refusing: BTreeMap<Ipv4Addr, SocketError>,
    /// Only LanTalk 2.0's datagram fails there (ours would go through).
    refusing_legacy_only: bool,
    socket: Result<(), SocketError>,
    mdns_start: Result<String, String>,
    mdns_refresh_fails: bool,
}

struct Script {
    machine: Announcer,
    world: World,
    users: usize,
    now: Instant,
    log: String,
    /// Every output, with the time it was carried out.
    outputs: Vec<(f64, AnnounceOutput)>,
}

impl Script {
    fn new(config: AnnouncerConfig) -> Self {
        Script {
            machine: Announcer::new(config, at(0.0)),
            world: World {
                targets: vec![lan()],
                refusing: BTreeMap::new(),
                refusing_legacy_only: false,
                socket: Ok(()),
                mdns_start: Ok("hub-lantalk-5050.local.".into()),
                mdns_refresh_fails: false,
            },
            users: 0,
            now: at(0.0),
            log: String::new(),
            outputs: Vec::new(),
        }
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.log, "# {text}");
    }

    fn users(&mut self, n: usize) {
        self.users = n;
        self.machine.handle_users(n);
    }

    /// The runtime wakes at `t`: tells the users online and the time, and
    /// carries out the outputs.
    fn at(&mut self, t: f64) -> &mut Self {
        self.now = at(t);
        let _ = writeln!(self.log, "@{t:.3} timeout (users {})", self.users);
        self.machine.handle_users(self.users);
        self.machine.handle_timeout(self.now);
        self.drain();
        self
    }

    /// Wakes whenever the machine asks to, up to and including `end`.
    fn run_until(&mut self, end: f64) {
        while let Some(t) = self.machine.poll_timeout() {
            if secs(t) > end + 1e-9 {
                break;
            }
            self.at(secs(t));
        }
    }

    fn mdns_event(&mut self, event: MdnsEvent) {
        let _ = writeln!(self.log, "@{:.3} mdns-event {event:?}", secs(self.now));
        self.machine.handle_mdns_event(event);
        self.drain();
    }

    fn close(&mut self) {
        let _ = writeln!(self.log, "@{:.3} close", secs(self.now));
        self.machine.handle_close();
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.machine.poll_output() {
            let line = self.carry_out(&out);
            let _ = writeln!(self.log, "  {line}");
            self.outputs.push((secs(self.now), out));
        }
        let next = match self.machine.poll_timeout() {
            Some(t) => format!("@{:.3}", secs(t)),
            None => "none".into(),
        };
        let _ = writeln!(self.log, "  poll_timeout {next}");
    }

    fn carry_out(&mut self, out: &AnnounceOutput) -> String {
        let result = |r: &Result<(), SocketError>| match r {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error {:?} {e}", e.kind),
        };
        match out {
            AnnounceOutput::OpenSocket { from } => {
                let r = self.world.socket.clone();
                let line = format!("open-socket from {from} -> {}", result(&r));
                self.machine.handle_socket_opened(r);
                line
            }
            AnnounceOutput::StartMdns(record) => {
                let r = self.world.mdns_start.clone();
                self.machine.handle_mdns_started(r.clone());
                format!(
                    "start-mdns {:?} port {} users {} txt {:?} -> {r:?}",
                    record.instance, record.port, record.users, record.txt
                )
            }
            AnnounceOutput::ReadTargets(query) => {
                let targets = self.world.targets.clone();
                let shown: Vec<String> = targets
                    .iter()
                    .map(|t| format!("{} (as {})", t.dest, t.advertised))
                    .collect();
                self.machine.handle_targets(targets);
                let query = match query {
                    TargetQuery::Interfaces { bind } => format!("interfaces bind {bind}"),
                    TargetQuery::Explicit { bind, addrs } => {
                        format!("explicit bind {bind} {addrs:?}")
                    }
                };
                format!("read-targets {query} -> [{}]", shown.join(", "))
            }
            AnnounceOutput::SendBeacon { dest, kind, bytes } => {
                let r = match self.world.refusing.get(dest.ip()) {
                    Some(_) if self.world.refusing_legacy_only && *kind == BeaconKind::Info => {
                        Ok(())
                    }
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                };
                let line = format!(
                    "send {dest} {kind:?} {} -> {}",
                    String::from_utf8_lossy(bytes),
                    result(&r)
                );
                self.machine.handle_send_result(*dest, *kind, r);
                line
            }
            AnnounceOutput::RefreshMdns(record) => {
                let r = if self.world.mdns_refresh_fails {
                    Err("register failed".to_string())
                } else {
                    Ok(())
                };
                self.machine.handle_mdns_refreshed(r.clone());
                format!("refresh-mdns users {} -> {r:?}", record.users)
            }
            AnnounceOutput::StopMdns => "stop-mdns".into(),
            AnnounceOutput::Log { level, event } => {
                assert_eq!(*level, event.level());
                format!("log {level} {event}")
            }
        }
    }

    // ── What happened ────────────────────────────────────────────────────

    fn events(&self) -> Vec<(f64, AnnounceEvent)> {
        self.outputs
            .iter()
            .filter_map(|(t, o)| match o {
                AnnounceOutput::Log { event, .. } => Some((*t, event.clone())),
                _ => None,
            })
            .collect()
    }

    /// Times at which beacons of `kind` went to `to`.
    fn beacon_times(&self, to: SocketAddrV4, of: BeaconKind) -> Vec<f64> {
        self.outputs
            .iter()
            .filter_map(|(t, o)| match o {
                AnnounceOutput::SendBeacon { dest, kind, .. } if *dest == to && *kind == of => {
                    Some(*t)
                }
                _ => None,
            })
            .collect()
    }

    fn refreshes(&self) -> Vec<(f64, u32)> {
        self.outputs
            .iter()
            .filter_map(|(t, o)| match o {
                AnnounceOutput::RefreshMdns(r) => Some((*t, r.users)),
                _ => None,
            })
            .collect()
    }

    fn count(&self, what: impl Fn(&AnnounceOutput) -> bool) -> usize {
        self.outputs.iter().filter(|(_, o)| what(o)).count()
    }

    fn transcript(&self) -> &str {
        &self.log
    }
}

// ── Beacons ──────────────────────────────────────────────────────────────────

#[test]
fn beacons_every_interval() {
    let mut s = Script::new(AnnouncerConfig {
        mdns: false,
        ..config()
    });
    s.note("it starts at the first wake-up, and asks for it at once");
    assert_eq!(s.machine.poll_timeout(), Some(at(0.0)));
    s.run_until(7.0);
    assert_eq!(
        s.beacon_times(dest(lan()), BeaconKind::Info),
        [0.0, 2.0, 4.0, 6.0]
    );
    assert_eq!(s.machine.poll_timeout(), Some(at(8.0)));
    s.note("woken early (another reason): no extra beacon");
    s.at(7.5);
    assert_eq!(s.beacon_times(dest(lan()), BeaconKind::Info).len(), 4);
    s.note("woken late: one beacon, and the next an interval later");
    s.at(9.0);
    assert_eq!(s.machine.poll_timeout(), Some(at(11.0)));
    // The interfaces are read before every beacon.
    assert_eq!(s.count(|o| matches!(o, AnnounceOutput::ReadTargets(_))), 5);
    // The datagram announces the interface's address and the users online.
    let bytes = s
        .outputs
        .iter()
        .find_map(|(_, o)| match o {
            AnnounceOutput::SendBeacon { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .unwrap();
    let Some(Datagram::Info(a)) = parse_datagram(&bytes) else {
        panic!("not an info datagram")
    };
    assert_eq!(a.addr, Some(lan().advertised.into()));
    assert_eq!((a.name.as_str(), a.port, a.users), ("Hub", 5050, 0));
    assert_snapshot!(s.transcript());
}

#[test]
fn beacons_announce_the_users_online() {
    let mut s = Script::new(AnnouncerConfig {
        mdns: false,
        ..config()
    });
    s.at(0.0);
    s.users(3);
    s.at(2.0);
    let users: Vec<u32> = s
        .outputs
        .iter()
        .filter_map(|(_, o)| match o {
            AnnounceOutput::SendBeacon { bytes, .. } => match parse_datagram(bytes) {
                Some(Datagram::Info(a)) => Some(a.users),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(users, [0, 3]);
}

#[test]
fn legacy_beacon_only_when_enabled() {
    let mut off = Script::new(AnnouncerConfig {
        mdns: false,
        ..config()
    });
    off.run_until(2.0);
    assert!(off.beacon_times(dest(lan()), BeaconKind::Legacy).is_empty());
    assert_eq!(off.beacon_times(dest(lan()), BeaconKind::Info), [0.0, 2.0]);

    let mut on = Script::new(AnnouncerConfig {
        mdns: false,
        legacy_beacon: true,
        ..config()
    });
    on.world.targets = vec![lab(), lan()];
    on.run_until(2.0);
    for t in [lab(), lan()] {
        assert_eq!(on.beacon_times(dest(t), BeaconKind::Legacy), [0.0, 2.0]);
        assert_eq!(on.beacon_times(dest(t), BeaconKind::Info), [0.0, 2.0]);
    }
    // LanTalk 2.0's datagram first, byte for byte, then ours, per target.
    let sends: Vec<(SocketAddrV4, BeaconKind, Vec<u8>)> = on
        .outputs
        .iter()
        .filter_map(|(t, o)| match o {
            AnnounceOutput::SendBeacon { dest, kind, bytes } if *t == 0.0 => {
                Some((*dest, *kind, bytes.clone()))
            }
            _ => None,
        })
        .collect();
    let kinds: Vec<(SocketAddrV4, BeaconKind)> = sends.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(
        kinds,
        [
            (dest(lab()), BeaconKind::Legacy),
            (dest(lab()), BeaconKind::Info),
            (dest(lan()), BeaconKind::Legacy),
            (dest(lan()), BeaconKind::Info),
        ]
    );
    assert_eq!(sends[0].2, b"LANTALK_SERVER:10.0.0.7:5050");
    assert_eq!(sends[2].2, b"LANTALK_SERVER:192.168.1.5:5050");
    assert_snapshot!(on.transcript());
}

// ── Targets ──────────────────────────────────────────────────────────────────

#[test]
fn target_changes_are_logged_once_each() {
    let mut s = Script::new(AnnouncerConfig {
        mdns: false,
        ..config()
    });
    s.note("the first list is logged");
    s.run_until(2.0);
    s.note("a second interface appears");
    s.world.targets = vec![lab(), lan()];
    s.run_until(6.0);
    s.note("all interfaces go away");
    s.world.targets = Vec::new();
    s.run_until(10.0);
    s.note("one comes back");
    s.world.targets = vec![lan()];
    s.run_until(12.0);
    let logged: Vec<(f64, AnnounceEvent)> = s.events();
    let changes = |targets: Vec<Target>| AnnounceEvent::TargetsChanged {
        targets,
        port: 5051,
        interval: Duration::from_secs(2),
    };
    assert_eq!(
        logged,
        [
            (0.0, changes(vec![lan()])),
            (4.0, changes(vec![lab(), lan()])),
            (8.0, AnnounceEvent::NoTargets),
            (12.0, changes(vec![lan()])),
        ]
    );
    // No beacons while there is nowhere to send them.
    assert_eq!(
        s.beacon_times(dest(lan()), BeaconKind::Info),
        [0.0, 2.0, 4.0, 6.0, 12.0]
    );
    // The sentences the end-to-end tests and users read.
    assert_eq!(
        changes(vec![lab(), lan()]).to_string(),
        "LAN discovery: beacons every 2 s to UDP port 5051 at 10.0.0.255 (as 10.0.0.7), \
         192.168.1.255 (as 192.168.1.5)"
    );
    assert_snapshot!(s.transcript());
}

#[test]
fn explicit_beacon_addrs_are_asked_for() {
    let mut s = Script::new(AnnouncerConfig {
        local: "192.168.1.5:5050".parse().unwrap(),
        beacon_addrs: vec![Ipv4Addr::new(192, 168, 1, 20)],
        ..config()
    });
    s.world.targets = vec![target([192, 168, 1, 20], [192, 168, 1, 5])];
    s.at(0.0);
    let query = s.outputs.iter().find_map(|(_, o)| match o {
        AnnounceOutput::ReadTargets(q) => Some(q.clone()),
        _ => None,
    });
    assert_eq!(
        query,
        Some(TargetQuery::Explicit {
            bind: "192.168.1.5".parse().unwrap(),
            addrs: vec![Ipv4Addr::new(192, 168, 1, 20)],
        })
    );
    // Beacons leave from the server's own address.
    assert!(s.outputs.iter().any(|(_, o)| *o
        == AnnounceOutput::OpenSocket {
            from: Ipv4Addr::new(192, 168, 1, 5)
        }));
}

#[test]
fn loopback_bind_is_not_announced() {
    let mut s = Script::new(AnnouncerConfig {
        local: "127.0.0.1:5050".parse().unwrap(),
        ..config()
    });
    s.at(0.0);
    assert_eq!(
        s.events(),
        [(
            0.0,
            AnnounceEvent::NotAnnounced {
                bind: "127.0.0.1".parse().unwrap()
            }
        )]
    );
    assert_eq!(s.outputs.len(), 1, "nothing but the log");
    assert_eq!(s.machine.poll_timeout(), None);
    assert!(s.machine.is_done());
    s.at(100.0);
    assert_eq!(s.outputs.len(), 1);
    assert_snapshot!(s.transcript());
}

#[test]
fn loopback_bind_with_beacon_addrs_beacons_without_mdns() {
    let mut s = Script::new(AnnouncerConfig {
        local: "127.0.0.1:5050".parse().unwrap(),
        beacon_addrs: vec![Ipv4Addr::new(127, 255, 255, 255)],
        ..config()
    });
    let lo = target([127, 255, 255, 255], [127, 0, 0, 1]);
    s.world.targets = vec![lo];
    s.run_until(2.0);
    assert_eq!(s.beacon_times(dest(lo), BeaconKind::Info), [0.0, 2.0]);
    assert_eq!(
        s.count(|o| matches!(o, AnnounceOutput::StartMdns(_))),
        0,
        "mDNS is never started for a loopback server"
    );
}

// ── Failing destinations ─────────────────────────────────────────────────────

#[test]
fn a_failing_destination_is_logged_once_and_its_recovery_too() {
    let mut s = Script::new(AnnouncerConfig {
        mdns: false,
        ..config()
    });
    s.world.targets = vec![lab(), lan()];
    s.run_until(0.0);
    s.note("the lab network goes away: reported once, not every interval");
    s.world.refusing.insert(lab().dest, unreachable());
    s.run_until(8.0);
    s.note("it comes back");
    s.world.refusing.clear();
    s.run_until(12.0);
    s.note("and fails again: reported again");
    s.world.refusing.insert(lab().dest, unreachable());
    s.run_until(14.0);

    let failures: Vec<(f64, AnnounceEvent)> = s
        .events()
        .into_iter()
        .filter(|(_, e)| !matches!(e, AnnounceEvent::TargetsChanged { .. }))
        .collect();
    assert_eq!(
        failures,
        [
            (
                2.0,
                AnnounceEvent::DestinationFailing {
                    dest: dest(lab()),
                    error: unreachable()
                }
            ),
            (
                10.0,
                AnnounceEvent::DestinationRecovered { dest: dest(lab()) }
            ),
            (
                14.0,
                AnnounceEvent::DestinationFailing {
                    dest: dest(lab()),
                    error: unreachable()
                }
            ),
        ]
    );
    assert_eq!(failures[0].1.level(), Level::Warning);
    assert_eq!(failures[1].1.level(), Level::Info);
    // Still tried every interval, and the other destination is unaffected.
    assert_eq!(s.beacon_times(dest(lab()), BeaconKind::Info).len(), 8);
    assert_eq!(s.beacon_times(dest(lan()), BeaconKind::Info).len(), 8);
    assert_eq!(s.machine.failing().collect::<Vec<_>>(), [dest(lab())]);
    assert_eq!(
        failures[0].1.to_string(),
        "LAN discovery: cannot send a beacon to 10.0.0.255:5051: Network is unreachable \
         (os error 101)"
    );
    assert_eq!(
        failures[1].1.to_string(),
        "LAN discovery: beacons to 10.0.0.255:5051 go through again."
    );
    assert_snapshot!(s.transcript());
}

#[test]
fn a_failed_legacy_beacon_skips_ours_to_that_destination() {
    let mut s = Script::new(AnnouncerConfig {
        mdns: false,
        legacy_beacon: true,
        ..config()
    });
    s.world.targets = vec![lab(), lan()];
    s.world.refusing.insert(lab().dest, unreachable());
    s.world.refusing_legacy_only = true;
    s.run_until(2.0);
    assert_eq!(s.beacon_times(dest(lab()), BeaconKind::Legacy), [0.0, 2.0]);
    assert!(s.beacon_times(dest(lab()), BeaconKind::Info).is_empty());
    assert_eq!(s.beacon_times(dest(lan()), BeaconKind::Info), [0.0, 2.0]);
    let failing = s
        .events()
        .into_iter()
        .filter(|(_, e)| matches!(e, AnnounceEvent::DestinationFailing { .. }))
        .count();
    assert_eq!(failing, 1);
    s.note("the legacy datagram goes through again: recovered once ours did too");
    s.world.refusing.clear();
    s.at(4.0);
    assert!(
        s.events()
            .iter()
            .any(|(t, e)| *t == 4.0
                && *e == AnnounceEvent::DestinationRecovered { dest: dest(lab()) })
    );
    assert_snapshot!(s.transcript());
}

#[test]
fn no_socket_means_no_beacons_but_mdns_goes_on() {
    let mut s = Script::new(config());
    s.world.socket = Err(SocketError::new(
        ErrorKind::PermissionDenied,
        "Permission denied (os error 13)",
    ));
    s.run_until(4.0);
    assert_eq!(
        s.count(|o| matches!(
            o,
            AnnounceOutput::ReadTargets(_) | AnnounceOutput::SendBeacon { .. }
        )),
        0
    );
    assert_eq!(s.count(|o| matches!(o, AnnounceOutput::StartMdns(_))), 1);
    let events: Vec<AnnounceEvent> = s.events().into_iter().map(|(_, e)| e).collect();
    assert!(matches!(events[0], AnnounceEvent::SocketUnavailable { .. }));
    assert!(matches!(events[1], AnnounceEvent::MdnsRegistered { .. }));
    assert_snapshot!(s.transcript());
}

// ── mDNS ─────────────────────────────────────────────────────────────────────

#[test]
fn mdns_refresh_is_throttled_and_keeps_the_last_count() {
    let mut s = Script::new(config());
    s.at(0.0);
    s.note("nothing changed: no refresh");
    s.run_until(6.0);
    assert!(s.refreshes().is_empty());
    s.note("a burst of joins, seen at every wake-up");
    for (t, n) in [(6.5, 1), (7.0, 2), (7.5, 3)] {
        s.users(n);
        s.at(t);
    }
    s.note("the throttle (5 s since the record was registered at 0) has passed: refreshed at once");
    assert_eq!(s.refreshes(), [(6.5, 1)]);
    s.note("the rest waits for the throttle, and is not lost");
    assert_eq!(s.machine.poll_timeout(), Some(at(8.0)));
    s.run_until(11.0);
    assert_eq!(s.refreshes(), [(6.5, 1)]);
    s.run_until(11.5);
    assert_eq!(s.refreshes(), [(6.5, 1), (11.5, 3)]);
    s.note("more changes, then back to what the record says: no refresh");
    s.users(4);
    s.at(12.0);
    s.users(3);
    s.run_until(20.0);
    assert_eq!(s.refreshes(), [(6.5, 1), (11.5, 3)]);
    s.note("a long burst: one refresh per throttle period at most");
    for i in 0..40 {
        s.users(10 + i);
        s.at(20.0 + f64::from(i as u32) * 0.5);
    }
    s.run_until(60.0);
    let refreshes = s.refreshes();
    for pair in refreshes.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= 5.0 - 1e-9, "{refreshes:?}");
    }
    assert_eq!(
        refreshes.last().unwrap().1,
        49,
        "the last count reaches mDNS"
    );
    assert_snapshot!(s.transcript());
}

#[test]
fn a_failed_mdns_refresh_is_retried_after_an_interval() {
    let mut s = Script::new(config());
    s.at(0.0);
    s.users(2);
    s.world.mdns_refresh_fails = true;
    s.run_until(5.0);
    assert_eq!(s.refreshes(), [(5.0, 2)]);
    s.note("retried an interval after the failed attempt, not a throttle period");
    assert_eq!(s.machine.poll_timeout(), Some(at(6.0)));
    s.run_until(7.0);
    assert_eq!(s.refreshes(), [(5.0, 2), (7.0, 2)]);
    s.world.mdns_refresh_fails = false;
    s.run_until(9.0);
    assert_eq!(s.refreshes(), [(5.0, 2), (7.0, 2), (9.0, 2)]);
    s.run_until(20.0);
    assert_eq!(s.refreshes().len(), 3, "done once it worked");
    assert!(
        s.events()
            .iter()
            .all(|(_, e)| !matches!(e, AnnounceEvent::MdnsError { .. })),
        "a failed refresh is not reported"
    );
    assert_snapshot!(s.transcript());
}

#[test]
fn mdns_unavailable_means_beacons_only() {
    let mut s = Script::new(config());
    s.world.mdns_start = Err("no multicast interface".into());
    s.at(0.0);
    s.users(5);
    s.run_until(20.0);
    assert!(s.refreshes().is_empty());
    assert_eq!(
        s.events()[0].1.to_string(),
        "LAN discovery: mDNS unavailable (no multicast interface); beacons only"
    );
    s.close();
    assert_eq!(s.count(|o| *o == AnnounceOutput::StopMdns), 0);
    assert_snapshot!(s.transcript());
}

#[test]
fn mdns_daemon_errors_are_reported_once_and_name_changes_each_time() {
    let mut s = Script::new(config());
    s.at(0.0);
    s.mdns_event(MdnsEvent::Error("send failed".into()));
    s.mdns_event(MdnsEvent::Error("send failed again".into()));
    s.mdns_event(MdnsEvent::NameChange {
        original: "Hub".into(),
        new_name: "Hub (2)".into(),
    });
    s.mdns_event(MdnsEvent::NameChange {
        original: "Hub (2)".into(),
        new_name: "Hub (3)".into(),
    });
    let events: Vec<String> = s.events().iter().map(|(_, e)| e.to_string()).collect();
    assert_eq!(
        events,
        [
            "LAN discovery: mDNS service \"Hub\" (_lantalk._tcp.local.) on hub-lantalk-5050.local.",
            "LAN discovery: beacons every 2 s to UDP port 5051 at 192.168.1.255 (as 192.168.1.5)",
            "LAN discovery: mDNS: send failed",
            "LAN discovery: mDNS name Hub is taken; now Hub (2)",
            "LAN discovery: mDNS name Hub (2) is taken; now Hub (3)",
        ]
    );
}

#[test]
fn closing_says_goodbye_on_mdns_and_stops() {
    let mut s = Script::new(config());
    s.users(1);
    s.run_until(2.0);
    s.close();
    assert_eq!(s.count(|o| *o == AnnounceOutput::StopMdns), 1);
    assert_eq!(s.machine.poll_timeout(), None);
    let before = s.outputs.len();
    s.at(10.0);
    assert_eq!(s.outputs.len(), before, "nothing after closing");
    // The mDNS record was registered with the users online at the start.
    let started = s.outputs.iter().find_map(|(_, o)| match o {
        AnnounceOutput::StartMdns(r) => Some(r.clone()),
        _ => None,
    });
    let started = started.unwrap();
    assert_eq!(
        (started.instance.as_str(), started.port, started.users),
        ("Hub", 5050, 1)
    );
    assert!(started.txt.contains(&("users".into(), "1".into())));
    assert_snapshot!(s.transcript());
}

#[test]
fn the_mdns_deadline_wakes_the_runtime() {
    // A long beacon interval: the refresh is not held back until the next beacon.
    let mut s = Script::new(AnnouncerConfig {
        interval: Duration::from_secs(60),
        ..config()
    });
    s.at(0.0);
    s.users(1);
    s.at(1.0);
    assert_eq!(s.machine.poll_timeout(), Some(at(5.0)));
    s.run_until(5.0);
    assert_eq!(s.refreshes(), [(5.0, 1)]);
    assert_eq!(s.machine.poll_timeout(), Some(at(60.0)));
}
