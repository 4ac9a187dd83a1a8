//! The encrypted transport under attack: after a genuine offer and hello,
//! arbitrary bytes (in arbitrary chunks) reach the server's frame and
//! handshake machinery, or the client's. Neither may panic; every failure
//! must be a close (server) or a terminal event (client); buffers stay
//! bounded; nothing is sent to a closed connection.
//!
//! Input: byte 0 picks the mode and whether a password is set. Modes 0 and
//! 1 feed raw chunks (a length byte, then that many bytes) to the server or
//! the client. Mode 2 runs a genuine client against a genuine server and
//! lets the input tamper with every message in transit (pass, flip a bit,
//! duplicate, drop, truncate), reaching the states after the handshake.
#![no_main]

use lantalk_core::client::{Client, ClientAction, ClientConfig, ClientSecure, NewKey};
use lantalk_core::password::{HashParams, PasswordHash};
use lantalk_core::secure::{hello_line, StaticKey, Suite};
use lantalk_core::server::{Action, SecureConfig};
use lantalk_core::{Now, Server, ServerConfig};
use libfuzzer_sys::fuzz_target;

fn chunks(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let n = (len as usize).min(rest.len());
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    out
}

/// A server that takes only encrypted clients, offering both suites.
fn server_config(password: bool) -> ServerConfig {
    ServerConfig {
        password: password.then(|| PasswordHash::new("pw", [1; 16], HashParams::INSECURE_FAST)),
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([2; 32]),
            rng_seed: [3; 32],
            suites: Suite::preferred(true),
        }),
        allow_plaintext: false,
        ..ServerConfig::default()
    }
}

fn server_side(password: bool, data: &[u8]) {
    let now = Now::from_secs_f64(0.0);
    let mut server = Server::new(server_config(password), now, Default::default());
    let conn = server.handle_connect(now, "10.0.0.1:1".parse().unwrap());
    let _ = server.handle_input(now, conn, hello_line(Suite::ChaChaPoly).as_bytes());
    let mut closed = false;
    for (i, chunk) in chunks(data).into_iter().enumerate() {
        let now = Now::from_secs_f64(i as f64 * 0.01);
        if closed {
            // Closed by the server: dropped, no error, nothing to do.
            assert!(server.handle_input(now, conn, chunk).is_ok());
            assert!(
                server.poll_action().is_none(),
                "actions for a closed connection"
            );
            continue;
        }
        let _ = server.handle_input(now, conn, chunk);
        let mut steps = 0;
        while let Some(action) = server.poll_action() {
            steps += 1;
            assert!(steps < 100_000, "actions never drain");
            match action {
                Action::Send { conn: to, .. } => assert!(!closed, "sent to {to} after its close"),
                Action::Close { .. } => closed = true,
                _ => {}
            }
        }
        if let Some(held) = server.buffered(conn) {
            assert!(held <= 16 * 1024, "line buffer holds {held} bytes");
        }
        if let Some(t) = server.poll_timeout() {
            assert!(t >= now.instant, "deadline in the past");
        }
    }
}

fn client_side(password: bool, data: &[u8]) {
    let now = Now::from_secs_f64(0.0);
    let mut config = ClientConfig::new("alice", password.then(|| "pw".to_string()));
    config.allow_plaintext = false;
    config.secure = Some(ClientSecure {
        identity: StaticKey::from_private([4; 32]),
        rng_seed: [5; 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    let mut client = Client::new(config, now);
    let offer = if password {
        "{\"type\": \"auth_request\", \"ts\": \"12:00\", \"needs_password\": true, \"secure\": {\"v\": 1, \"suites\": [\"Noise_XX_25519_ChaChaPoly_BLAKE2s\"], \"pake\": \"SPAKE2-Ed25519\", \"kdf\": {\"alg\": \"argon2id\", \"salt\": \"AQEBAQEBAQEBAQEBAQEBAQ==\", \"m\": 8, \"t\": 1, \"p\": 1}}}\n"
    } else {
        "{\"type\": \"auth_request\", \"ts\": \"12:00\", \"needs_password\": false, \"secure\": {\"v\": 1, \"suites\": [\"Noise_XX_25519_ChaChaPoly_BLAKE2s\"], \"pake\": \"SPAKE2-Ed25519\"}}\n"
    };
    client.handle_input(now, offer.as_bytes());
    let mut done = false;
    for (i, chunk) in chunks(data).into_iter().enumerate() {
        let now = Now::from_secs_f64(i as f64 * 0.01);
        client.handle_input(now, chunk);
        let mut steps = 0;
        while let Some(action) = client.poll_action() {
            steps += 1;
            assert!(steps < 100_000, "actions never drain");
            match action {
                ClientAction::Send(_) => assert!(!done, "sent after the session ended"),
                ClientAction::Close => done = true,
                // No files are shared in this target.
                _ => {}
            }
        }
        if client.is_closed() {
            assert!(client.poll_timeout().is_none());
        }
    }
}

/// A genuine session with an attacker in the middle.
fn tampered(password: bool, data: &[u8]) {
    let now = Now::from_secs_f64(0.0);
    let mut server = Server::new(server_config(password), now, Default::default());
    let conn = server.handle_connect(now, "10.0.0.1:1".parse().unwrap());
    let mut cc = ClientConfig::new("alice", password.then(|| "pw".to_string()));
    cc.allow_plaintext = false;
    cc.secure = Some(ClientSecure {
        identity: StaticKey::from_private([4; 32]),
        rng_seed: [5; 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    let mut client = Client::new(cc, now);
    let mut ops = data.iter().copied();
    let mut tamper = |mut bytes: Vec<u8>| -> Vec<Vec<u8>> {
        let op = ops.next().unwrap_or(0);
        let at = ops.next().unwrap_or(0) as usize;
        match op % 8 {
            1 if !bytes.is_empty() => {
                let i = at % bytes.len();
                bytes[i] ^= 1 << (op >> 5);
                vec![bytes]
            }
            2 => vec![bytes.clone(), bytes],
            3 => vec![],
            4 => {
                bytes.truncate(at % (bytes.len() + 1));
                vec![bytes]
            }
            _ => vec![bytes],
        }
    };
    let (mut server_closed, mut client_done) = (false, false);
    for round in 0..64 {
        let now = Now::from_secs_f64(round as f64 * 0.01);
        let mut moved = false;
        while let Some(action) = server.poll_action() {
            moved = true;
            match action {
                Action::Send { .. } if server_closed => panic!("sent after close"),
                Action::Send { bytes, .. } => {
                    for chunk in tamper(bytes.to_vec()) {
                        client.handle_input(now, &chunk);
                    }
                }
                Action::Close { .. } => {
                    server_closed = true;
                    client.handle_disconnect(now);
                }
                _ => {}
            }
        }
        while let Some(action) = client.poll_action() {
            moved = true;
            match action {
                ClientAction::Send(_) if client_done => panic!("client sent after close"),
                ClientAction::Send(bytes) => {
                    for chunk in tamper(bytes) {
                        if !server_closed {
                            let _ = server.handle_input(now, conn, &chunk);
                        }
                    }
                }
                ClientAction::Close => client_done = true,
                // No files are shared in this target.
                _ => {}
            }
        }
        if round == 20 && client.is_joined() {
            client.handle_user_line(now, "hello");
        }
        if !moved && round > 24 {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let password = mode & 4 != 0;
    match mode % 4 {
        0 => server_side(password, rest),
        1 => client_side(password, rest),
        _ => tampered(password, rest),
    }
});
