//! An encrypted peer the test writes by hand: it does the client's half of
//! the Noise handshake itself and then seals whatever lines the test wants,
//! lines our client would never send (a history request for a room it is
//! not in, a message claiming another room). It is how the server's rules
//! are tested against a hostile client of ours, not just a well-behaved one.
//!
//! It rides on a raw peer of a [`Pair`]: bytes go out with
//! [`Pair::send_raw`] and come in from [`Pair::received`].

use lantalk_core::framing::{Frame, LineBuffer};
use lantalk_core::protocol;
use lantalk_core::secure::{FrameBuffer, Initiator, Session, StaticKey, Suite};

use super::pair::{Pair, PeerId};

pub struct SecurePeer {
    pub peer: PeerId,
    session: Session,
    /// How many of the peer's received chunks were read already.
    read: usize,
    lines: LineBuffer,
}

impl SecurePeer {
    /// Connects, does the handshake as `identity` and logs in as `name`
    /// (the server must want no password).
    pub fn join(pair: &mut Pair, name: &str, address: &str, identity: [u8; 32]) -> SecurePeer {
        let mut me = SecurePeer::handshake(pair, name, address, identity);
        let login = protocol::secure_login(name, None);
        me.send(pair, &login);
        me
    }

    /// Connects and does the handshake as `identity`, and says nothing more
    /// (a side connection, before it presents its ticket).
    pub fn handshake(
        pair: &mut Pair,
        label: &str,
        address: &str,
        identity: [u8; 32],
    ) -> SecurePeer {
        let peer = pair.connect_raw(label, address);
        let offer: Vec<u8> = pair.received(peer).flatten().copied().collect();
        let offer_line = offer
            .split_inclusive(|&b| b == b'\n')
            .next()
            .expect("the server speaks first")
            .to_vec();
        let key = StaticKey::from_private(identity);
        let (initiator, out) =
            Initiator::start(&offer_line, &key, [9; 32], Suite::ChaChaPoly).expect("a handshake");
        let before = pair.received(peer).count();
        pair.send_raw(peer, &out);
        let reply: Vec<u8> = pair
            .received(peer)
            .skip(before)
            .flatten()
            .copied()
            .collect();
        let mut frames = FrameBuffer::default();
        frames.push(&reply);
        let msg2 = frames
            .next_frame()
            .expect("the server's handshake")
            .to_vec();
        let (out, session) = initiator
            .finish(&msg2, FrameBuffer::default())
            .expect("the server's handshake message");
        let read = pair.received(peer).count();
        pair.send_raw(peer, &out);
        SecurePeer {
            peer,
            session,
            read,
            lines: LineBuffer::new(1 << 20),
        }
    }

    /// Seals `line` (a JSON line with its newline) and sends it.
    pub fn send(&mut self, pair: &mut Pair, line: &str) {
        self.send_plain(pair, line.as_bytes());
    }

    /// Seals one frame of `plaintext` (a line, or a side connection's
    /// record) and sends it.
    pub fn send_plain(&mut self, pair: &mut Pair, plaintext: &[u8]) {
        let mut out = Vec::new();
        self.session.seal_into(plaintext, &mut out).expect("sealed");
        pair.send_raw(self.peer, &out);
    }

    /// Every line received since the last call, opened.
    pub fn lines(&mut self, pair: &Pair) -> Vec<String> {
        let chunks: Vec<Vec<u8>> = pair
            .received(self.peer)
            .skip(self.read)
            .map(<[u8]>::to_vec)
            .collect();
        self.read += chunks.len();
        for chunk in chunks {
            self.session
                .open(&chunk, &mut self.lines)
                .expect("the server's frames open");
        }
        let mut out = Vec::new();
        while let Some(frame) = self.lines.next_frame() {
            match frame {
                Frame::Line(line) => out.push(String::from_utf8_lossy(line).into_owned()),
                Frame::TooLong => panic!("an oversized line from the server"),
            }
        }
        out
    }
}
