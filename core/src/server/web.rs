//! Connections from the web listener ([`Server::handle_connect_web`]): a
//! request head read by a deadline and answered from the assets in
//! [`ServerConfig::web`], or upgraded to a WebSocket that from then on
//! carries an ordinary connection, its bytes in binary frames.
//!
//! What the rest of the server sends is wrapped on the way out, in
//! [`Server::poll_action`], so no other file knows about WebSockets: a
//! `Send` to a WebSocket becomes a frame header and the same payload (never
//! copied: broadcasts stay shared), a `Close` is preceded by a close frame.
//! What this file sends as is (HTTP answers, pongs) waits in `raw`, which
//! goes out before the queued actions: nothing in them can be for a
//! connection before its answer.

use super::*;
use crate::web::http::{self, HeadBuffer, Method, Parsed, Request, Response, Status};
use crate::web::{ws, HEAD_TIMEOUT, WS_PATH};

enum WebConn {
    /// Reading its request head, until `deadline`.
    Http {
        addr: SocketAddr,
        head: HeadBuffer,
        deadline: Instant,
    },
    /// A WebSocket carrying a LanTalk connection; `close_code` is what its
    /// close frame will say when it has been set by a protocol error.
    Ws {
        decoder: ws::Decoder,
        close_code: Option<u16>,
    },
    /// Answered or refused: closing, nothing more is read.
    Done,
}

#[derive(Default)]
pub(super) struct WebConns {
    map: HashMap<ConnId, WebConn>,
    /// Bytes to send as they are, before the queued actions.
    raw: VecDeque<Action>,
    /// Connections in their HTTP phase: they count toward `max_clients`
    /// (and their address's `max_per_address`) like any other.
    http: usize,
}

impl WebConns {
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty() && self.raw.is_empty()
    }

    /// Whether `conn` came from the web listener (and is not closed yet).
    pub(super) fn carries(&self, conn: ConnId) -> bool {
        self.map.contains_key(&conn)
    }
}

impl Server {
    /// A new connection on the web listener from `addr`: it speaks HTTP
    /// until it asks for a WebSocket at [`WS_PATH`], then LanTalk inside
    /// the WebSocket (the greeting the server sends at connect is sent
    /// then). Its request head must arrive within [`HEAD_TIMEOUT`].
    pub fn handle_connect_web(&mut self, now: Now, addr: SocketAddr) -> ConnId {
        self.expire(now);
        let conn = self.new_conn_id();
        let ip = canonical(addr.ip());
        let refusal = if self.bans.contains(ip) {
            Some(Status::Forbidden)
        } else if self.shut_down
            || self.conns.len() + self.web.http >= self.config.max_clients
            || self.address_full(ip)
        {
            Some(Status::ServiceUnavailable)
        } else {
            None
        };
        if let Some(status) = refusal {
            self.web.map.insert(conn, WebConn::Done);
            self.event(
                Level::Info,
                EventKind::Connection,
                format!("Refused web connection from {ip} ({})", status.code()),
            );
            self.respond(conn, http::error_response(status, false));
            return conn;
        }
        let deadline = now.instant + HEAD_TIMEOUT;
        self.web.map.insert(
            conn,
            WebConn::Http {
                addr,
                head: HeadBuffer::default(),
                deadline,
            },
        );
        self.web.http += 1;
        *self.per_address.entry(ip).or_insert(0) += 1;
        self.timers.push(Reverse((deadline, conn)));
        conn
    }

    /// Bytes on a web connection: its request head, or WebSocket frames.
    pub(super) fn web_input(&mut self, now: Now, conn: ConnId, bytes: &[u8]) -> Result<(), Error> {
        self.expire(now);
        match self.web.map.get_mut(&conn) {
            Some(WebConn::Http { head, .. }) => match head.push(bytes) {
                Parsed::Partial => {}
                Parsed::Refused(status) => self.respond(conn, http::error_response(status, false)),
                Parsed::Request(request, rest) => self.web_request(now, conn, &request, &rest),
            },
            Some(WebConn::Ws { .. }) => self.ws_input(now, conn, bytes),
            Some(WebConn::Done) | None => {}
        }
        Ok(())
    }

    fn web_request(&mut self, now: Now, conn: ConnId, request: &Request, rest: &[u8]) {
        let Some(WebConn::Http { addr, .. }) = self.web.map.get(&conn) else {
            return;
        };
        let addr = *addr;
        let head_only = request.method == Method::Head;
        if request.path == WS_PATH {
            match ws::accept(request) {
                Ok(_) if head_only => {
                    self.respond(conn, http::error_response(Status::MethodNotAllowed, true));
                }
                Ok(key) => self.upgrade(now, conn, addr, &key, rest),
                Err(refusal) => {
                    if refusal == ws::Refusal::Origin {
                        let origin = request.header("origin").unwrap_or("");
                        self.event(
                            Level::Warning,
                            EventKind::Connection,
                            format!(
                                "Refused a WebSocket from {}: its page is from {origin:?}, \
                                 not this server",
                                addr.ip()
                            ),
                        );
                    }
                    self.respond(conn, http::error_response(refusal.status(), head_only));
                }
            }
            return;
        }
        let asset = self
            .config
            .web
            .as_ref()
            .and_then(|w| w.asset(&request.path));
        let response = match asset {
            Some(asset) => http::asset_response(request, asset),
            None => http::error_response(Status::NotFound, head_only),
        };
        self.respond(conn, response);
    }

    /// Answers the upgrade; the connection then starts as any other, inside
    /// the WebSocket. Frames sent right behind the request are read.
    fn upgrade(&mut self, now: Now, conn: ConnId, addr: SocketAddr, key: &str, rest: &[u8]) {
        self.leave_http(conn);
        self.web.map.insert(
            conn,
            WebConn::Ws {
                decoder: ws::Decoder::default(),
                close_code: None,
            },
        );
        self.web.raw.push_back(Action::Send {
            conn,
            bytes: http::switching_protocols(key).into(),
        });
        self.connect_as(now, conn, addr);
        if !rest.is_empty() {
            self.ws_input(now, conn, rest);
        }
    }

    /// Unmasks frames as they come and hands their payload to the
    /// connection's ordinary input; answers pings and closes.
    fn ws_input(&mut self, now: Now, conn: ConnId, bytes: &[u8]) {
        let mut input = bytes;
        let mut data = Vec::new();
        loop {
            let Some(WebConn::Ws { decoder, .. }) = self.web.map.get_mut(&conn) else {
                return;
            };
            let event = decoder.decode(&mut input, &mut data);
            if !data.is_empty() {
                // (The id is ours: only an unknown one is an error.)
                let _ = self.input(now, conn, &data);
                data.clear();
            }
            if !self.conns.contains_key(&conn) {
                // Closed meanwhile (or refused at connect): the rest is dropped.
                return;
            }
            let reason = match event {
                None => return,
                Some(ws::Event::Ping(payload)) => {
                    self.web.raw.push_back(Action::Send {
                        conn,
                        bytes: ws::pong(&payload).into(),
                    });
                    continue;
                }
                Some(ws::Event::Close) => CloseReason::Quit,
                Some(ws::Event::Fail(code)) => {
                    if let Some(WebConn::Ws { close_code, .. }) = self.web.map.get_mut(&conn) {
                        *close_code = Some(code);
                    }
                    self.event(
                        Level::Debug,
                        EventKind::Malformed,
                        format!("WebSocket {conn} broke the protocol (closed with {code})"),
                    );
                    CloseReason::Malformed
                }
            };
            // The peer leaves as if its transport closed, then hears the close.
            let _ = self.disconnected(now, conn, DisconnectCause::PeerClosed);
            self.actions.push_back(Action::Close { conn, reason });
            return;
        }
    }

    /// Sends `response` as it is and closes the connection after it.
    fn respond(&mut self, conn: ConnId, response: Response) {
        self.web.raw.push_back(Action::Send {
            conn,
            bytes: response.head.into(),
        });
        if let Some(bytes) = response.body {
            self.web.raw.push_back(Action::Send { conn, bytes });
        }
        self.leave_http(conn);
        self.web.map.insert(conn, WebConn::Done);
        self.actions.push_back(Action::Close {
            conn,
            reason: CloseReason::Quit,
        });
    }

    /// A connection leaves its HTTP phase: it no longer counts as one.
    fn leave_http(&mut self, conn: ConnId) {
        if let Some(WebConn::Http { addr, .. }) = self.web.map.get(&conn) {
            let ip = canonical(addr.ip());
            self.web.map.insert(conn, WebConn::Done);
            self.web.http -= 1;
            self.release_address(ip);
        }
    }

    /// The runtime dropped the connection: forget its web state.
    pub(super) fn web_gone(&mut self, conn: ConnId) {
        self.leave_http(conn);
        self.web.map.remove(&conn);
    }

    /// A deadline came up for `conn`, which is not speaking LanTalk: a
    /// request head that took too long closes its connection.
    pub(super) fn web_expire(&mut self, now: Now, conn: ConnId) {
        let Some(WebConn::Http { addr, deadline, .. }) = self.web.map.get(&conn) else {
            return;
        };
        if *deadline > now.instant {
            let deadline = *deadline;
            self.timers.push(Reverse((deadline, conn)));
            return;
        }
        let addr = *addr;
        self.event(
            Level::Debug,
            EventKind::Connection,
            format!("Web connection {conn} from {addr} sent no request in time"),
        );
        self.leave_http(conn);
        self.actions.push_back(Action::Close {
            conn,
            reason: CloseReason::AuthTimeout,
        });
    }

    /// Shutting down: web connections still in their HTTP phase close too.
    pub(super) fn web_shutdown(&mut self) {
        let waiting: Vec<ConnId> = (self.web.map.iter())
            .filter(|(_, w)| matches!(w, WebConn::Http { .. }))
            .map(|(&c, _)| c)
            .collect();
        for conn in waiting {
            self.leave_http(conn);
            self.actions.push_back(Action::Close {
                conn,
                reason: CloseReason::Shutdown,
            });
        }
    }

    /// [`Server::poll_action`] while there are web connections: raw bytes
    /// first, then the queued actions with WebSocket framing added.
    pub(super) fn poll_web(&mut self) -> Option<Action> {
        if let Some(action) = self.web.raw.pop_front() {
            return Some(action);
        }
        let action = self.actions.pop_front()?;
        match action {
            Action::Send { conn, bytes } if self.is_ws(conn) => {
                let header = ws::binary_header(bytes.len());
                self.web.raw.push_front(Action::Send { conn, bytes });
                Some(Action::Send {
                    conn,
                    bytes: header.into(),
                })
            }
            Action::Close { conn, reason } => {
                let Some(WebConn::Ws { close_code, .. }) = self.web.map.remove(&conn) else {
                    return Some(action);
                };
                let code = close_code.unwrap_or(match reason {
                    CloseReason::Shutdown => ws::GOING_AWAY,
                    CloseReason::LineTooLong => ws::TOO_BIG,
                    _ => ws::NORMAL,
                });
                self.web.raw.push_front(action);
                Some(Action::Send {
                    conn,
                    bytes: ws::close(code).into(),
                })
            }
            action => Some(action),
        }
    }

    fn is_ws(&self, conn: ConnId) -> bool {
        matches!(self.web.map.get(&conn), Some(WebConn::Ws { .. }))
    }
}
