//! The approval exchange on the wire (host mode, `server --approve`).
//!
//! When the operator approves each connection, a client that has logged in
//! (name accepted, password proven) inside an encrypted session goes through
//! four more lines before `auth_ok` or `auth_fail`:
//!
//! ```text
//! server: {"type": "approval_needed"}
//! client: {"type": "approval_commit", "commit": "<base64 SHA-256 of its nonce>"}
//! server: {"type": "approval_nonce", "nonce": "<base64>", "timeout": 60}
//! client: {"type": "approval_reveal", "nonce": "<base64>"}
//! ```
//!
//! Both sides then derive the same six-digit code from the Noise handshake
//! hash and the two nonces ([`crate::secure::approval_code`]); the client shows
//! it while it waits, the operator sees it in the question. The client commits
//! to its nonce before it sees the server's, so a man in the middle (who has
//! two sessions with two handshake hashes) cannot steer both codes to match.
//! `timeout` is how many seconds the operator has to answer, so the client
//! knows how long to wait. LanTalk 2.0 clients (plaintext) never see these
//! lines; the operator is asked about them without a key or a code.

use serde_json::{Map, Value};

use crate::json::ObjectWriter;
use crate::protocol::Malformed;
use crate::secure::{b64, unb64, APPROVAL_NONCE};

/// Server → client: approval is needed; send your commitment.
pub fn needed() -> String {
    ObjectWriter::new()
        .str("type", "approval_needed")
        .finish_line()
}

/// Client → server: the commitment to the client's nonce.
pub fn commit(commit: &[u8]) -> String {
    ObjectWriter::new()
        .str("type", "approval_commit")
        .str("commit", &b64(commit))
        .finish_line()
}

/// Server → client: the server's nonce, and how long the operator has.
pub fn nonce(nonce: &[u8], timeout_secs: u64) -> String {
    ObjectWriter::new()
        .str("type", "approval_nonce")
        .str("nonce", &b64(nonce))
        .raw("timeout", &timeout_secs.to_string())
        .finish_line()
}

/// Client → server: the nonce committed to.
pub fn reveal(nonce: &[u8]) -> String {
    ObjectWriter::new()
        .str("type", "approval_reveal")
        .str("nonce", &b64(nonce))
        .finish_line()
}

/// An approval line from the server, as the client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerApproval {
    Needed,
    Nonce {
        nonce: Vec<u8>,
        /// Seconds the operator has to answer, if the server said.
        timeout_secs: Option<u64>,
    },
}

fn object(line: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn kind(map: &Map<String, Value>) -> Option<&str> {
    map.get("type").and_then(Value::as_str)
}

fn nonce_field(map: &Map<String, Value>, key: &str) -> Result<Vec<u8>, Malformed> {
    let text = map
        .get(key)
        .and_then(Value::as_str)
        .ok_or(Malformed("missing approval nonce"))?;
    let bytes = unb64(text).ok_or(Malformed("approval field is not base64"))?;
    if bytes.len() != APPROVAL_NONCE {
        return Err(Malformed("approval field has the wrong length"));
    }
    Ok(bytes)
}

/// `None` when `line` is not an approval line at all (the caller handles it
/// as any other line); otherwise the line, or why it cannot be read.
pub fn parse_server(line: &[u8]) -> Option<Result<ServerApproval, Malformed>> {
    let map = object(line)?;
    match kind(&map)? {
        "approval_needed" => Some(Ok(ServerApproval::Needed)),
        "approval_nonce" => Some(
            nonce_field(&map, "nonce").map(|nonce| ServerApproval::Nonce {
                nonce,
                timeout_secs: map.get("timeout").and_then(Value::as_u64),
            }),
        ),
        _ => None,
    }
}

/// The client's commitment (32 bytes).
pub fn parse_commit(line: &[u8]) -> Result<Vec<u8>, Malformed> {
    let map = object(line).ok_or(Malformed("malformed JSON"))?;
    if kind(&map) != Some("approval_commit") {
        return Err(Malformed("expected approval_commit"));
    }
    nonce_field(&map, "commit")
}

/// The client's revealed nonce.
pub fn parse_reveal(line: &[u8]) -> Result<Vec<u8>, Malformed> {
    let map = object(line).ok_or(Malformed("malformed JSON"))?;
    if kind(&map) != Some("approval_reveal") {
        return Err(Malformed("expected approval_reveal"));
    }
    nonce_field(&map, "nonce")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        assert_eq!(needed(), "{\"type\": \"approval_needed\"}\n");
        assert_eq!(
            parse_server(needed().as_bytes()),
            Some(Ok(ServerApproval::Needed))
        );
        assert_eq!(
            parse_server(nonce(&[7; 32], 60).as_bytes()),
            Some(Ok(ServerApproval::Nonce {
                nonce: vec![7; 32],
                timeout_secs: Some(60)
            }))
        );
        assert_eq!(parse_commit(commit(&[1; 32]).as_bytes()), Ok(vec![1; 32]));
        assert_eq!(parse_reveal(reveal(&[2; 32]).as_bytes()), Ok(vec![2; 32]));
        assert!(parse_reveal(commit(&[2; 32]).as_bytes()).is_err());
        assert!(parse_commit(commit(&[1; 31]).as_bytes()).is_err());
        assert_eq!(parse_server(b"{\"type\": \"system\"}"), None);
        assert!(matches!(
            parse_server(b"{\"type\": \"approval_nonce\", \"nonce\": \"!\"}"),
            Some(Err(_))
        ));
    }
}
