//! What a side connection carries once it is attached: records, one per
//! sealed frame. A record is file data (a tag byte, then the bytes) or a
//! control message (a JSON object, which starts with `{`).
//!
//! A chunk is sent as data records followed by a [`Control::Chunk`] naming
//! its index and SHA-256; the receiver hashes what arrived since the last
//! chunk and compares. The last chunk is followed by [`Control::Done`] with
//! the whole file's hash ([`super::file_hash`]).

use serde::{Deserialize, Serialize};

use crate::secure::{SealFailed, Session, MAX_PLAINTEXT};

use super::{hex, unhex, Ticket};

/// The tag of a data record.
pub const DATA: u8 = 0;
/// File bytes one data record carries at most.
pub const MAX_DATA: usize = MAX_PLAINTEXT - 1;

/// A control message on a side connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// The client's first message: act for the session that holds this
    /// ticket. Downloads start at chunk `from` (what the client has
    /// verified already); uploads ignore it.
    Attach { ticket: Ticket, from: u64 },
    /// The server accepted the ticket. Uploads: `have` chunks are verified
    /// on the server already; send from there.
    Attached { have: u64 },
    /// The data since the previous chunk (or since attaching) is chunk
    /// `index`, whose SHA-256 is `hash`.
    Chunk { index: u64, hash: [u8; 32] },
    /// Every chunk was sent; the whole file's hash when the sender knows it
    /// (an upload resumed from a later chunk does not: the server, which
    /// verified every chunk, computes it from their hashes).
    Done { hash: Option<[u8; 32]> },
    /// The server has the whole upload, verified and kept.
    Stored,
    /// The transfer cannot go on; the connection closes.
    Error { text: String },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    Attach { ticket: String, from: u64 },
    Attached { have: u64 },
    Chunk { index: u64, sha256: String },
    Done { sha256: Option<String> },
    Stored,
    Error { text: String },
}

/// A record as it arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Data(&'a [u8]),
    Control(Control),
}

/// A record that is neither data nor a control message we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads one record (a frame's plaintext).
pub fn parse(plaintext: &[u8]) -> Result<Record<'_>, Malformed> {
    match plaintext.first() {
        Some(&DATA) => Ok(Record::Data(&plaintext[1..])),
        Some(b'{') => {
            let wire: Wire = serde_json::from_slice(plaintext).map_err(|_| Malformed)?;
            let hash = |s: &str| unhex::<32>(s).ok_or(Malformed);
            Ok(Record::Control(match wire {
                Wire::Attach { ticket, from } => Control::Attach {
                    ticket: unhex::<16>(&ticket).ok_or(Malformed)?,
                    from,
                },
                Wire::Attached { have } => Control::Attached { have },
                Wire::Chunk { index, sha256 } => Control::Chunk {
                    index,
                    hash: hash(&sha256)?,
                },
                Wire::Done { sha256 } => Control::Done {
                    hash: sha256.as_deref().map(hash).transpose()?,
                },
                Wire::Stored => Control::Stored,
                Wire::Error { text } => Control::Error { text },
            }))
        }
        _ => Err(Malformed),
    }
}

/// A control message's bytes: one JSON line (the attach is read as the
/// first line of an encrypted connection, like a login).
pub fn encode(control: &Control) -> Vec<u8> {
    let wire = match control {
        Control::Attach { ticket, from } => Wire::Attach {
            ticket: hex(ticket),
            from: *from,
        },
        Control::Attached { have } => Wire::Attached { have: *have },
        Control::Chunk { index, hash } => Wire::Chunk {
            index: *index,
            sha256: hex(hash),
        },
        Control::Done { hash } => Wire::Done {
            sha256: hash.as_ref().map(|h| hex(h)),
        },
        Control::Stored => Wire::Stored,
        Control::Error { text } => Wire::Error {
            // Long enough for any reason we give; a control record must fit
            // in one frame.
            text: text.chars().take(500).collect(),
        },
    };
    let mut out = serde_json::to_vec(&wire).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Seals a control message as one frame appended to `out`.
pub fn seal_control(
    session: &mut Session,
    control: &Control,
    out: &mut Vec<u8>,
) -> Result<(), SealFailed> {
    session.seal_into(&encode(control), out)
}

/// Seals file bytes as data records appended to `out`.
pub fn seal_data(session: &mut Session, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), SealFailed> {
    let mut record = Vec::with_capacity(MAX_PLAINTEXT);
    for piece in bytes.chunks(MAX_DATA) {
        record.clear();
        record.push(DATA);
        record.extend_from_slice(piece);
        session.seal_into(&record, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip() {
        let all = [
            Control::Attach {
                ticket: [7; 16],
                from: 3,
            },
            Control::Attached { have: 2 },
            Control::Chunk {
                index: 9,
                hash: [0xab; 32],
            },
            Control::Done {
                hash: Some([1; 32]),
            },
            Control::Done { hash: None },
            Control::Stored,
            Control::Error {
                text: "No space left on device".into(),
            },
        ];
        for c in all {
            let bytes = encode(&c);
            assert!(bytes.len() < MAX_PLAINTEXT);
            assert_eq!(parse(&bytes), Ok(Record::Control(c)));
        }
    }

    #[test]
    fn junk_is_malformed() {
        assert_eq!(parse(b""), Err(Malformed));
        assert_eq!(parse(b"hello"), Err(Malformed));
        assert_eq!(parse(b"{\"type\":\"chunk\",\"index\":1}"), Err(Malformed));
        assert_eq!(
            parse(b"{\"type\":\"chunk\",\"index\":1,\"sha256\":\"xyz\"}"),
            Err(Malformed)
        );
        assert_eq!(parse(b"\0abc"), Ok(Record::Data(b"abc")));
    }

    #[test]
    fn long_error_texts_are_cut_to_fit_a_frame() {
        let c = Control::Error {
            text: "é".repeat(100_000),
        };
        assert!(encode(&c).len() < MAX_PLAINTEXT);
    }
}
