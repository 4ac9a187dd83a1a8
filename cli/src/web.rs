//! The web port: binding it (or going on without it), and telling the
//! operator where browsers find the client, as URLs and a QR code.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

use crate::args::{ServerArgs, DEFAULT_WEB_PORT};
use crate::style::Line;
use crate::term;

/// The web listener the arguments ask for: `None` with `--no-web`, or when
/// the default port cannot be had (a warning says so). A port given with
/// `--web-port` that cannot be had is an error.
pub fn bind(args: &ServerArgs) -> Result<Option<TcpListener>, String> {
    if args.no_web {
        return Ok(None);
    }
    let (port, explicit) = match args.web_port {
        Some(port) => (port, true),
        // With --port 0 (tests, several servers on one machine) the web
        // port is ephemeral too.
        None if args.port == 0 => (0, false),
        None => (DEFAULT_WEB_PORT, false),
    };
    let bind = SocketAddr::new(args.bind, port);
    match lantalk_os::listen(bind) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if explicit => Err(format!(
            "cannot serve the web client on {bind}: {e}. Pick another port with --web-port N, \
             or turn it off with --no-web."
        )),
        Err(e) => {
            term::eprint(&Line::plain(format!(
                "warning: cannot serve the web client on {bind}: {e}; running without it \
                 (--web-port N picks another port)"
            )));
            Ok(None)
        }
    }
}

/// The URLs browsers on the LAN use: one per LAN address (127.0.0.1 only
/// when bound to loopback or when there is no LAN address).
pub fn urls(local: SocketAddr) -> Vec<String> {
    let mut ips = crate::server_cmd::lan_ips(local);
    if ips.is_empty() {
        ips.push(if local.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            local.ip()
        });
    }
    ips.into_iter()
        .map(|ip| format!("http://{}/", SocketAddr::new(ip, local.port())))
        .collect()
}

/// The lines printed at start: the URLs, then (on a terminal) the first as
/// a QR code for a phone's camera.
pub fn announce(local: SocketAddr) -> String {
    let urls = urls(local);
    let mut out: String = urls
        .iter()
        .map(|url| format!("  Web client: {url}\n"))
        .collect();
    if let Some(first) = urls.first().filter(|_| std::io::stdout().is_terminal()) {
        out.push_str(&qr(first));
    }
    out
}

/// `text` as a QR code in Unicode half blocks (two modules per character
/// cell), light modules drawn so that it reads on a dark terminal, with a
/// quiet zone.
fn qr(text: &str) -> String {
    let Ok(code) = QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let mut image = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    image.push('\n');
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_give_the_loopback_url() {
        let local: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        assert_eq!(urls(local), ["http://127.0.0.1:5080/"]);
    }

    #[test]
    fn the_code_is_half_blocks() {
        let code = qr("http://192.168.1.5:5080/");
        assert!(code.lines().count() > 10);
        assert!(code
            .chars()
            .all(|c| " \u{2580}\u{2584}\u{2588}\n".contains(c)));
    }
}
