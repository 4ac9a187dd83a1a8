//! WebSocket (RFC 6455), server side: the upgrade's checks and key, a frame
//! decoder that unmasks payload as it arrives (a message is never gathered
//! whole: LanTalk's own framing inside it is what the server reads), and
//! the frames the server sends.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

use super::http::{Request, Status};

/// Largest frame accepted (its payload, as announced in its header); a
/// larger one closes the connection with [`TOO_BIG`]. LanTalk's own
/// records are far smaller, so this only bounds what a peer may announce.
pub const MAX_FRAME: u64 = 16 * 1024 * 1024;
/// Largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL: usize = 125;

/// Close codes (RFC 6455 §7.4.1).
pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const UNSUPPORTED: u16 = 1003;
pub const TOO_BIG: u16 = 1009;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a valid WebSocket handshake.
    Malformed,
    /// A version other than 13.
    Version,
    /// A page from another site asked (browsers do not apply CORS to
    /// WebSockets: this check is the only thing between a page elsewhere
    /// and this server's chat).
    Origin,
}

impl Refusal {
    pub fn status(self) -> Status {
        match self {
            Refusal::Malformed => Status::BadRequest,
            Refusal::Version => Status::UpgradeRequired,
            Refusal::Origin => Status::Forbidden,
        }
    }
}

/// Checks an upgrade request and gives its `Sec-WebSocket-Accept`.
pub fn accept(request: &Request) -> Result<String, Refusal> {
    if !request
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        || !request.has_token("connection", "upgrade")
    {
        return Err(Refusal::Malformed);
    }
    if request.header("sec-websocket-version") != Some("13") {
        return Err(Refusal::Version);
    }
    let key = request
        .header("sec-websocket-key")
        .filter(|k| STANDARD.decode(k).is_ok_and(|k| k.len() == 16))
        .ok_or(Refusal::Malformed)?;
    if let Some(origin) = request.header("origin") {
        let host = request.header("host").ok_or(Refusal::Origin)?;
        if !same_origin(origin, host) || !local_host(host) {
            return Err(Refusal::Origin);
        }
    }
    Ok(accept_key(key))
}

/// `Sec-WebSocket-Accept` for `key`: SHA-1 of the key and the RFC's GUID.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was
/// sent to (`host[:port]`), default ports filled in.
pub fn same_origin(origin: &str, host: &str) -> bool {
    let (default, rest) = if let Some(rest) = origin.strip_prefix("http://") {
        (80, rest)
    } else if let Some(rest) = origin.strip_prefix("https://") {
        (443, rest)
    } else {
        return false;
    };
    match (authority(rest, default), authority(host, 80)) {
        (Some(a), Some(b)) => a.0.eq_ignore_ascii_case(b.0) && a.1 == b.1,
        _ => false,
    }
}

/// Whether a browser's `Host` names this machine on the LAN by a name no
/// one outside can point elsewhere: an IP address, `localhost`, or an mDNS
/// `.local` name. A page on `evil.example` whose name is made to resolve to
/// this server's address (DNS rebinding) is same-origin with itself, so
/// matching `Origin` to `Host` alone would let it in; its `Host` is
/// `evil.example`, refused here.
pub fn local_host(host: &str) -> bool {
    let Some((name, _)) = authority(host, 80) else {
        return false;
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<core::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || (name.ends_with(".local") && name.len() > ".local".len())
}

/// `host[:port]` split, `[v6]` kept bracketed; `None` if malformed.
fn authority(s: &str, default: u16) -> Option<(&str, u16)> {
    let port_at = match s.rfind(':') {
        Some(i) if !s[i..].contains(']') => Some(i),
        _ => None,
    };
    let (host, port) = match port_at {
        Some(i) => (&s[..i], s[i + 1..].parse().ok()?),
        None => (s, default),
    };
    (!host.is_empty() && !host.contains(['/', '@', ' '])).then_some((host, port))
}

/// What the decoder found besides payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Answer with a pong carrying these bytes.
    Ping(Vec<u8>),
    /// The peer is closing: answer with a close and end.
    Close,
    /// A protocol violation: close with this code.
    Fail(u16),
}

#[derive(Debug)]
enum State {
    /// Reading a frame's header into `head`.
    Head,
    Payload {
        control: Option<u8>,
        fin: bool,
        left: u64,
        mask: [u8; 4],
        at: usize,
    },
    /// Closed or failed: nothing more is read.
    Done,
}

/// Client frames in, binary payload out, as the bytes arrive.
#[derive(Debug)]
pub struct Decoder {
    head: [u8; 14],
    have: usize,
    state: State,
    /// Inside a fragmented binary message.
    in_message: bool,
    /// A control frame's payload (at most [`MAX_CONTROL`] bytes).
    control: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            head: [0; 14],
            have: 0,
            state: State::Head,
            in_message: false,
            control: Vec::new(),
        }
    }
}

impl Decoder {
    /// Reads from `input` until an event or its end; the binary payload
    /// read on the way is unmasked onto `data` (which gets at most
    /// `input`'s length). After [`Event::Close`] or [`Event::Fail`] the
    /// rest of the input is ignored, now and later.
    pub fn decode(&mut self, input: &mut &[u8], data: &mut Vec<u8>) -> Option<Event> {
        loop {
            match &mut self.state {
                State::Done => {
                    *input = &[];
                    return None;
                }
                State::Head => {
                    let need = match self.header_len() {
                        Ok(n) => n,
                        Err(code) => return Some(self.fail(code)),
                    };
                    if self.have < need {
                        let (&byte, rest) = input.split_first()?;
                        self.head[self.have] = byte;
                        self.have += 1;
                        *input = rest;
                        continue;
                    }
                    if let Err(code) = self.start_payload() {
                        return Some(self.fail(code));
                    }
                }
                State::Payload {
                    control,
                    fin,
                    left,
                    mask,
                    at,
                } => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let (chunk, rest) = input.split_at(n);
                    let out = if control.is_some() {
                        &mut self.control
                    } else {
                        &mut *data
                    };
                    out.extend(
                        chunk
                            .iter()
                            .enumerate()
                            .map(|(i, b)| b ^ mask[(*at + i) % 4]),
                    );
                    *at = (*at + n) % 4;
                    *left -= n as u64;
                    *input = rest;
                    if *left > 0 {
                        return None;
                    }
                    let (control, fin) = (*control, *fin);
                    self.state = State::Head;
                    self.have = 0;
                    match control {
                        None => self.in_message = !fin,
                        Some(0x8) => {
                            self.state = State::Done;
                            return Some(self.closing());
                        }
                        Some(0x9) => return Some(Event::Ping(std::mem::take(&mut self.control))),
                        // A pong: nothing to do.
                        Some(_) => self.control.clear(),
                    }
                }
            }
        }
    }

    /// The header's whole length as far as it is known, or a close code.
    fn header_len(&self) -> Result<usize, u16> {
        if self.have < 2 {
            return Ok(2);
        }
        if self.head[1] & 0x80 == 0 {
            // Clients must mask (§5.1).
            return Err(PROTOCOL_ERROR);
        }
        Ok(match self.head[1] & 0x7f {
            126 => 8,
            127 => 14,
            _ => 6,
        })
    }

    fn start_payload(&mut self) -> Result<(), u16> {
        let (b0, b1) = (self.head[0], self.head[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        if b0 & 0x70 != 0 {
            return Err(PROTOCOL_ERROR);
        }
        let (len, mask_at) = match b1 & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                4,
            ),
            127 => {
                let mut b = [0; 8];
                b.copy_from_slice(&self.head[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        let control = match opcode {
            0x0 if self.in_message => None,
            0x2 if !self.in_message => None,
            0x1 => return Err(UNSUPPORTED),
            0x8..=0xa => {
                if !fin || len > MAX_CONTROL as u64 {
                    return Err(PROTOCOL_ERROR);
                }
                Some(opcode)
            }
            _ => return Err(PROTOCOL_ERROR),
        };
        if len > MAX_FRAME {
            return Err(TOO_BIG);
        }
        let mut mask = [0; 4];
        mask.copy_from_slice(&self.head[mask_at..mask_at + 4]);
        self.control.clear();
        self.state = State::Payload {
            control,
            fin,
            left: len,
            mask,
            at: 0,
        };
        Ok(())
    }

    fn fail(&mut self, code: u16) -> Event {
        self.state = State::Done;
        Event::Fail(code)
    }

    /// A close frame's payload is a code and a reason, or nothing.
    fn closing(&self) -> Event {
        if self.control.len() == 1 {
            Event::Fail(PROTOCOL_ERROR)
        } else {
            Event::Close
        }
    }
}

/// A server frame (never masked) with `payload`'s length: the header to
/// send before the payload itself.
pub fn header(opcode: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.push(0x80 | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out
}

/// The header of a binary frame carrying `len` bytes.
pub fn binary_header(len: usize) -> Vec<u8> {
    header(0x2, len)
}

/// A pong answering a ping's payload.
pub fn pong(payload: &[u8]) -> Vec<u8> {
    let mut out = header(0xa, payload.len());
    out.extend_from_slice(payload);
    out
}

/// A close frame with `code`.
pub fn close(code: u16) -> Vec<u8> {
    let mut out = header(0x8, 2);
    out.extend_from_slice(&code.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = header(opcode, payload.len());
        if !fin {
            out[0] &= 0x7f;
        }
        out[1] |= 0x80;
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Everything decoded from `chunks`: the data, and events in order
    /// (`Data` marks where payload was handed out before an event).
    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Vec<Event>) {
        let mut d = Decoder::default();
        let (mut data, mut events) = (Vec::new(), Vec::new());
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(e) = d.decode(&mut input, &mut data) {
                events.push(e);
            }
            assert!(input.is_empty());
        }
        (data, events)
    }

    #[test]
    fn rfc_example_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn only_lan_names_are_trusted_hosts() {
        for ok in [
            "192.168.1.5:5080",
            "[::1]:5080",
            "[fe80::1]:5080",
            "localhost:5080",
            "LanTalk-Box.local:5080",
            "box.local.:5080",
        ] {
            assert!(local_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:5080",
            "192.168.1.5.evil.example:5080",
            "local:5080",
            ".local:5080",
            "evil.example",
            "",
        ] {
            assert!(!local_host(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        assert!(same_origin("http://192.168.1.5:5080", "192.168.1.5:5080"));
        assert!(same_origin("http://Host", "host:80"));
        assert!(same_origin("http://[::1]:5080", "[::1]:5080"));
        assert!(!same_origin("http://evil.example:5080", "192.168.1.5:5080"));
        assert!(!same_origin("http://192.168.1.5:5081", "192.168.1.5:5080"));
        assert!(!same_origin("null", "192.168.1.5:5080"));
        assert!(!same_origin("http://a@b:1", "b:1"));
    }

    #[test]
    fn violations() {
        let unmasked = header(0x2, 1);
        assert_eq!(run(&[&unmasked]).1, [Event::Fail(PROTOCOL_ERROR)]);
        assert_eq!(
            run(&[&masked(0x1, true, b"hi", [1; 4])]).1,
            [Event::Fail(UNSUPPORTED)]
        );
        let mut huge = vec![0x82, 0xff];
        huge.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(run(&[&huge]).1, [Event::Fail(TOO_BIG)]);
        let long_ping = masked(0x9, true, &[0; 126], [0; 4]);
        assert_eq!(run(&[&long_ping]).1, [Event::Fail(PROTOCOL_ERROR)]);
        let stray = masked(0x0, true, b"x", [0; 4]);
        assert_eq!(run(&[&stray]).1, [Event::Fail(PROTOCOL_ERROR)]);
    }

    #[test]
    fn ping_close_and_fragments() {
        let mut bytes = masked(0x2, false, b"ab", [9, 8, 7, 6]);
        bytes.extend(masked(0x9, true, b"p", [1, 2, 3, 4]));
        bytes.extend(masked(0x0, true, b"cd", [5; 4]));
        bytes.extend(masked(0x8, true, &NORMAL.to_be_bytes(), [3; 4]));
        bytes.extend(masked(0x2, true, b"ignored", [0; 4]));
        let (data, events) = run(&[&bytes]);
        assert_eq!(data, b"abcd");
        assert_eq!(events, [Event::Ping(b"p".to_vec()), Event::Close]);
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_the_same(
            messages in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), any::<[u8; 4]>(), any::<bool>()),
                1..6,
            ),
            cuts in proptest::collection::vec(0usize..2000, 0..8),
        ) {
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            for (payload, mask, ping) in &messages {
                if *ping {
                    bytes.extend(masked(0x9, true, &payload[..payload.len().min(125)], *mask));
                } else {
                    bytes.extend(masked(0x2, true, payload, *mask));
                    expected.extend_from_slice(payload);
                }
            }
            let whole = run(&[&bytes]);
            prop_assert_eq!(&whole.0, &expected);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for c in cuts {
                chunks.push(&bytes[from..c]);
                from = c;
            }
            chunks.push(&bytes[from..]);
            prop_assert_eq!(run(&chunks), whole);
        }
    }
}
