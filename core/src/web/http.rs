//! HTTP/1.1, as little of it as a page and a WebSocket upgrade need: a
//! request head read within bounds, and responses with the headers that
//! keep a browser from doing more with them than showing the page.
//!
//! Every request is answered and the connection closed (`Connection:
//! close`): four files load once on a LAN, and a connection that does
//! nothing after its answer costs nothing to reason about.

use std::sync::Arc;

use super::WebAsset;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 64;

/// The only script the page may run is its own, and wasm compiled from its
/// own files; it may connect only back to this server; nothing may frame it.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The statuses this server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    SwitchingProtocols,
    Ok,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    UpgradeRequired,
    HeaderFieldsTooLarge,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::SwitchingProtocols => 101,
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::UpgradeRequired => 426,
            Status::HeaderFieldsTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::SwitchingProtocols => "Switching Protocols",
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::UpgradeRequired => "Upgrade Required",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    /// Like GET, without the body.
    Head,
}

/// A request head, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The target's path, without its query string (never decoded: it must
    /// match an asset's path byte for byte).
    pub path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header lists `token` (comma-separated,
    /// case-insensitive, parameters after `;` ignored).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(token)
            })
    }

    /// Whether the body may be sent gzipped: `gzip` in Accept-Encoding and
    /// not refused with `q=0`.
    pub fn accepts_gzip(&self) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("accept-encoding"))
            .flat_map(|(_, v)| v.split(','))
            .any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                let name = parts.next().unwrap_or("");
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
                });
                name.eq_ignore_ascii_case("gzip") && !refused
            })
    }
}

/// What a [`HeadBuffer`] has made of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A whole head, and the bytes that followed it (a WebSocket's first
    /// frames may come in the same read).
    Request(Request, Vec<u8>),
    /// Not a request this server takes: answer with this status and close.
    Refused(Status),
}

/// A request head gathered from reads, never more than [`MAX_HEAD`] bytes.
#[derive(Debug, Default)]
pub struct HeadBuffer {
    buf: Vec<u8>,
}

impl HeadBuffer {
    pub fn push(&mut self, bytes: &[u8]) -> Parsed {
        let searched = self.buf.len().saturating_sub(3);
        let room = (MAX_HEAD + 4).saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let Some(end) = find_end(&self.buf, searched) else {
            return if self.buf.len() > MAX_HEAD {
                Parsed::Refused(Status::HeaderFieldsTooLarge)
            } else {
                Parsed::Partial
            };
        };
        if end > MAX_HEAD {
            return Parsed::Refused(Status::HeaderFieldsTooLarge);
        }
        // What followed the head: from this buffer and the rest of `bytes`.
        let used_of_bytes = bytes.len().min(room);
        let mut rest = self.buf.split_off(end);
        rest.extend_from_slice(&bytes[used_of_bytes..]);
        match parse(&self.buf) {
            Ok(request) => Parsed::Request(request, rest),
            Err(status) => Parsed::Refused(status),
        }
    }
}

/// Where the head ends (after its blank line), searching from `from`.
fn find_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

fn parse(head: &[u8]) -> Result<Request, Status> {
    let head = std::str::from_utf8(head).map_err(|_| Status::BadRequest)?;
    let mut lines = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty());
    let mut first = lines.next().ok_or(Status::BadRequest)?.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Err(Status::BadRequest);
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Status::BadRequest);
    }
    if !target.starts_with('/') {
        return Err(Status::BadRequest);
    }
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == MAX_HEADERS {
            return Err(Status::HeaderFieldsTooLarge);
        }
        let (name, value) = line.split_once(':').ok_or(Status::BadRequest)?;
        // No folded lines, no space before the colon (RFC 9112 §5.1).
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Status::BadRequest);
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if !m.is_empty() && m.bytes().all(is_token_byte) => return Err(Status::MethodNotAllowed),
        _ => return Err(Status::BadRequest),
    };
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or(target)
        .to_string();
    Ok(Request {
        method,
        path,
        headers,
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Headers on every answer: nothing is cached stale, sniffed, leaked to
/// another site or framed.
const COMMON: &str = "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\nConnection: close\r\n";

/// A response: its head, and the body if there is one to send (kept apart
/// so an asset's shared bytes are never copied).
#[derive(Debug)]
pub struct Response {
    pub head: Vec<u8>,
    pub body: Option<Arc<[u8]>>,
}

/// `asset` as answered to `request`.
pub fn asset_response(request: &Request, asset: &WebAsset) -> Response {
    let gzip = asset.gzip.as_ref().filter(|_| request.accepts_gzip());
    let body = gzip.unwrap_or(&asset.body);
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n{COMMON}",
        asset.content_type,
        body.len()
    );
    if asset.gzip.is_some() {
        head.push_str("Vary: Accept-Encoding\r\n");
    }
    if gzip.is_some() {
        head.push_str("Content-Encoding: gzip\r\n");
    }
    if asset.is_html() {
        head.push_str(&format!("Content-Security-Policy: {CSP}\r\n"));
    }
    head.push_str("\r\n");
    let body = (request.method == Method::Get && !body.is_empty()).then(|| Arc::clone(body));
    Response {
        head: head.into_bytes(),
        body,
    }
}

/// A refusal: the status, a line of text saying it, and the headers that
/// go with it (`Allow`, `Sec-WebSocket-Version`).
pub fn error_response(status: Status, head_only: bool) -> Response {
    let text = format!("{} {}\n", status.code(), status.reason());
    let extra = match status {
        Status::MethodNotAllowed => "Allow: GET, HEAD\r\n",
        Status::UpgradeRequired => "Sec-WebSocket-Version: 13\r\n",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
{COMMON}{extra}\r\n",
        status.code(),
        status.reason(),
        text.len()
    );
    Response {
        head: head.into_bytes(),
        body: (!head_only).then(|| Arc::from(text.into_bytes())),
    }
}

/// The answer that turns the connection into a WebSocket.
pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(bytes: &[u8]) -> Parsed {
        HeadBuffer::default().push(bytes)
    }

    #[test]
    fn a_get_with_query_and_headers() {
        let Parsed::Request(req, rest) = one(
            b"GET /app.js?v=2 HTTP/1.1\r\nHost: a:1\r\nAccept-Encoding: br, GZip;q=0.5\r\n\r\nxy",
        ) else {
            panic!("not parsed");
        };
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/app.js");
        assert_eq!(req.header("host"), Some("a:1"));
        assert!(req.accepts_gzip());
        assert_eq!(rest, b"xy");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            one(b"POST / HTTP/1.1\r\n\r\n"),
            Parsed::Refused(Status::MethodNotAllowed)
        );
        assert_eq!(
            one(b"GET / HTTP/2\r\n\r\n"),
            Parsed::Refused(Status::BadRequest)
        );
        assert_eq!(
            one(b"GET http://x/ HTTP/1.1\r\n\r\n"),
            Parsed::Refused(Status::BadRequest)
        );
        assert_eq!(
            one(b"GET / HTTP/1.1\r\nA : b\r\n\r\n"),
            Parsed::Refused(Status::BadRequest)
        );
        assert_eq!(
            one(b"GET / HTTP/1.1\r\n folded\r\n\r\n"),
            Parsed::Refused(Status::BadRequest)
        );
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(
            one(many.as_bytes()),
            Parsed::Refused(Status::HeaderFieldsTooLarge)
        );
        let big = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "b".repeat(MAX_HEAD));
        assert_eq!(
            one(big.as_bytes()),
            Parsed::Refused(Status::HeaderFieldsTooLarge)
        );
        assert_eq!(
            one(&[b'a'; MAX_HEAD + 1]),
            Parsed::Refused(Status::HeaderFieldsTooLarge)
        );
        assert_eq!(one(&[b'a'; MAX_HEAD]), Parsed::Partial);
    }

    #[test]
    fn gzip_refused_with_q_zero() {
        let Parsed::Request(req, _) = one(b"GET / HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n")
        else {
            panic!("not parsed");
        };
        assert!(!req.accepts_gzip());
    }

    proptest! {
        #[test]
        fn any_split_parses_the_same(
            head in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..400,
        ) {
            let mut bytes = b"GET /x HTTP/1.1\r\nH: v\r\n".to_vec();
            bytes.extend_from_slice(&head);
            bytes.extend_from_slice(b"\r\n\r\nafter");
            let whole = one(&bytes);
            let cut = cut.min(bytes.len());
            let mut buffer = HeadBuffer::default();
            let split = match buffer.push(&bytes[..cut]) {
                Parsed::Partial => buffer.push(&bytes[cut..]),
                done => {
                    // Done early: the rest simply follows what it returned.
                    match done {
                        Parsed::Request(r, mut rest) => {
                            rest.extend_from_slice(&bytes[cut..]);
                            Parsed::Request(r, rest)
                        }
                        other => other,
                    }
                }
            };
            prop_assert_eq!(whole, split);
        }
    }
}
