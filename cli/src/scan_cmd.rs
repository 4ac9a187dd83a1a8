//! `scan`: list the servers announcing themselves on the LAN.

use std::io::IsTerminal;
use std::process::ExitCode;

use lantalk_core::discovery::FoundServer;
use lantalk_core::text::visible;

use crate::args::ScanArgs;
use crate::discovery::{self, ScanOptions, ScanReport};
use crate::style::Line;
use crate::term;

pub fn run(args: ScanArgs, runtime_name: &str) -> ExitCode {
    let program = format!("lantalk-{runtime_name}");
    let opts = ScanOptions {
        timeout: args.timeout,
        discovery_port: args.discovery_port,
        mdns: !args.no_mdns,
    };
    if std::io::stderr().is_terminal() {
        term::eprint(&Line::plain(format!(
            "Scanning for LanTalk servers for {} s…",
            opts.timeout.as_secs_f64()
        )));
    }
    let report = discovery::scan(&opts);
    let servers = report.table.servers();
    if servers.is_empty() {
        term::eprint(&nothing_found(&report, &opts, &program));
        return ExitCode::FAILURE;
    }
    term::print(&table(&servers, &program));
    ExitCode::SUCCESS
}

/// `addr:port` (IPv6 in brackets).
pub fn address(s: &FoundServer) -> String {
    match s.addr {
        Some(ip) => std::net::SocketAddr::new(ip, s.port).to_string(),
        None => format!("?:{}", s.port),
    }
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

fn security(s: &FoundServer) -> &'static str {
    match s.encrypted {
        Some(true) => "encrypted",
        Some(false) => "plaintext",
        None => "?",
    }
}

fn display_name(s: &FoundServer) -> String {
    s.name
        .clone()
        .unwrap_or_else(|| "(LanTalk 2.0 beacon)".to_string())
}

/// One line for the menu: `Hackathon — 192.168.1.5:5050 (plaintext, password, 3 online)`.
pub fn summary(s: &FoundServer) -> String {
    let mut facts = vec![security(s).to_string()];
    if s.password == Some(true) {
        facts.push("password".into());
    }
    if let Some(n) = s.users {
        facts.push(format!("{n} online"));
    }
    format!(
        "{} — {} ({})",
        display_name(s),
        address(s),
        facts.join(", ")
    )
}

/// The listing, one [`Line`] per row. Names, fingerprints and the rest come
/// from datagrams anyone can send: every cell is made visible before the
/// columns are measured, so the table lines up as shown.
fn table(servers: &[FoundServer], program: &str) -> Vec<Line> {
    let header = [
        "NAME",
        "ADDRESS",
        "SECURITY",
        "PASSWORD",
        "USERS",
        "FINGERPRINT",
        "SEEN VIA",
    ];
    let rows: Vec<[String; 7]> = servers
        .iter()
        .map(|s| {
            [
                display_name(s),
                address(s),
                security(s).to_string(),
                yes_no(s.password).to_string(),
                s.users.map_or("?".to_string(), |n| n.to_string()),
                s.fingerprint.clone().unwrap_or_else(|| "-".to_string()),
                s.via(),
            ]
            .map(|cell| visible(&cell).into_owned())
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            out.push(' ');
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 1;
                out.push_str(&" ".repeat(pad));
            }
        }
        Line::plain(out.trim_end())
    };
    let n = servers.len();
    let mut out = vec![
        Line::plain(format!(
            "Found {n} LanTalk server{}:",
            if n == 1 { "" } else { "s" }
        )),
        Line::plain(""),
    ];
    out.push(line(&header.map(String::from)));
    for row in &rows {
        out.push(line(row));
    }
    out.push(Line::plain(""));
    out.push(Line::plain(format!(
        "Join one with: {program} client {} --name NAME",
        address(&servers[0])
    )));
    out.push(Line::plain(
        "(A listing only says where to connect; it proves nothing about who answers.)",
    ));
    out
}

/// Why nothing may have been found, and what to try.
pub fn nothing_found(report: &ScanReport, opts: &ScanOptions, program: &str) -> String {
    let port = opts.discovery_port;
    let mut out = format!(
        "No LanTalk servers found in {} s.\n",
        opts.timeout.as_secs_f64()
    );
    if let Some(e) = &report.udp_error {
        out.push_str(&format!(
            "\nBeacons could not be received: {e}. Something else holds the port without \
             sharing it; close it, or scan another port with --discovery-port N.\n"
        ));
    }
    if let Some(e) = &report.mdns_error {
        out.push_str(&format!("\nmDNS could not be browsed: {e}.\n"));
    }
    if report.table.ignored > 0 {
        out.push_str(&format!(
            "\n{} datagram(s) arrived on UDP port {port} but were not LanTalk announcements.\n",
            report.table.ignored
        ));
    }
    let ifaces = discovery::broadcast_interfaces();
    out.push_str("\nWhy that may be:\n");
    if ifaces.is_empty() {
        out.push_str(
            "  * This machine has no network interface that can broadcast (no IPv4 \
             address on a LAN): connect to the network first.\n",
        );
    } else {
        let list: Vec<String> = ifaces
            .iter()
            .map(|(name, ip, prefix, _)| format!("{name} {ip}/{prefix}"))
            .collect();
        out.push_str(&format!(
            "  * (Listening on the networks of {}.)\n",
            list.join(", ")
        ));
    }
    let blocked = if opts.mdns {
        format!("UDP port {port} (beacons) or 5353 (mDNS)")
    } else {
        format!("UDP port {port} (beacons)")
    };
    let allow = if opts.mdns {
        format!("UDP {port} and 5353")
    } else {
        format!("UDP {port}")
    };
    out.push_str(&format!(
        "  * A firewall, here or on the server's machine, drops {blocked}.\n\
         \x20 * The server is on a different subnet: broadcasts and mDNS do not cross routers.\n\
         \x20 * The server runs with --no-discovery, or announces to another --discovery-port.\n\
         \x20 * The Wi-Fi isolates its clients from each other (guest networks often do).\n\
         \nWhat to try:\n\
         \x20 * Join by address: {program} client HOST[:PORT] --name NAME\n\
         \x20   (the server prints its address when it starts).\n\
         \x20 * Scan for longer: {program} scan --timeout 10\n\
         \x20 * Allow {allow} in the firewall, or ask whoever runs the network.\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_listed_visibly_and_aligned() {
        let server = |name: &str| FoundServer {
            addr: Some([10, 0, 0, 2].into()),
            port: 5050,
            name: Some(name.to_string()),
            version: None,
            encrypted: Some(true),
            password: Some(false),
            users: Some(1),
            fingerprint: Some("SHA256:\x1b[2Jx".to_string()),
            via_beacon: false,
            via_info: true,
            via_mdns: false,
        };
        let servers = [server("Evil\x1b]0;PWNED\x07\nHall\u{202e}"), server("Ok")];
        let rows: Vec<String> = table(&servers, "lantalk-std")
            .iter()
            .map(Line::render)
            .collect();
        for row in &rows {
            assert!(!row.contains(lantalk_core::text::is_forbidden), "{row:?}");
        }
        let evil = rows.iter().find(|r| r.contains("Evil")).unwrap();
        assert!(evil.contains("Evil␛]0;PWNED␇␊Hall<U+202E>"), "{evil}");
        assert!(evil.contains("SHA256:␛[2Jx"), "{evil}");
        // The columns line up as shown: ADDRESS starts at the same place.
        let ok = rows.iter().find(|r| r.contains(" Ok ")).unwrap();
        let col = |r: &str| r[..r.find("10.0.0.2").unwrap()].chars().count();
        assert_eq!(col(evil), col(ok));
    }
}
