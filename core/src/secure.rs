//! Encryption: keys, the Noise `XX` handshake, binary frames and the SPAKE2
//! password check, as pure functions and small state holders.
//!
//! How a secure session goes (the server and client state machines drive it):
//! 1. The server's `auth_request` line carries an offer (`"secure": {...}`);
//!    LanTalk 2.0 clients ignore the unknown field and log in in plaintext.
//! 2. Our client answers with a `hello` line. From then on both sides speak
//!    length-prefixed binary frames: a Noise `XX` handshake whose prologue is
//!    the exact bytes of the offer line and the hello, so tampering with
//!    either (a downgrade) makes the handshake fail.
//! 3. Inside the encrypted session the same JSON lines run as before. With a
//!    password, the login carries a SPAKE2 message keyed by the Argon2id hash
//!    of the password; both sides prove they derived the same key, bound to the
//!    Noise handshake hash, so the password never crosses the wire and a man in
//!    the middle learns nothing it could test offline.
//!
//! The core never draws randomness: every RNG here is seeded by the caller.

use std::fmt;

use crate::framing::LineBuffer;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
#[cfg(not(target_arch = "wasm32"))]
use snow::resolvers::RingResolver;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

use crate::password::HashParams;

/// The Noise protocol every version of ours speaks.
pub const SUITE: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// The same with AES-256-GCM, which is several times faster than
/// ChaCha20-Poly1305 on a CPU with AES instructions (0.23 against 0.64 us per
/// KiB here) and much slower on one without.
pub const SUITE_AESGCM: &str = "Noise_XX_25519_AESGCM_BLAKE2s";

/// A Noise protocol we speak. The server offers them in its order of
/// preference and the client takes the first it knows, so the server — who
/// seals every message once per recipient — picks the cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    ChaChaPoly,
    AesGcm,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::ChaChaPoly => SUITE,
            Suite::AesGcm => SUITE_AESGCM,
        }
    }

    pub fn from_name(name: &str) -> Option<Suite> {
        [Suite::ChaChaPoly, Suite::AesGcm]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// Both suites, the faster first: AES-GCM where the CPU has AES
    /// instructions (the caller knows; the core does not look).
    pub fn preferred(aes_hardware: bool) -> Vec<Suite> {
        if aes_hardware {
            vec![Suite::AesGcm, Suite::ChaChaPoly]
        } else {
            vec![Suite::ChaChaPoly, Suite::AesGcm]
        }
    }
}
/// Version of the secure layer, in the offer and the hello.
pub const VERSION: u64 = 1;
/// The password-authenticated key exchange, as named in the offer.
pub const PAKE: &str = "SPAKE2-Ed25519";
/// Largest Noise message (and so frame payload).
pub const MAX_FRAME: usize = 65535;
/// Largest plaintext in one frame (the AEAD tag takes 16 bytes).
pub const MAX_PLAINTEXT: usize = MAX_FRAME - 16;
/// Room for one of our handshake messages (they carry no payload).
pub const MAX_HANDSHAKE: usize = 256;

/// `buf` grown to at least `len` bytes: decrypting a frame never yields more
/// than the frame, and most frames are small, so the buffer is sized to the
/// frame instead of cleared to the maximum every time.
pub fn grow(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..]
}

/// A long-term X25519 key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKey {
    private: [u8; 32],
    public: [u8; 32],
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticKey({})", fingerprint(&self.public))
    }
}

impl StaticKey {
    /// The key pair whose private half is `private` (any 32 bytes; X25519
    /// clamps them).
    pub fn from_private(private: [u8; 32]) -> Self {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("the default resolver has X25519");
        dh.set(&private);
        let mut public = [0u8; 32];
        public.copy_from_slice(dh.pubkey());
        StaticKey { private, public }
    }

    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    pub fn private(&self) -> &[u8; 32] {
        &self.private
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public)
    }
}

/// `SHA256:<base64>` of a public key, as SSH shows host keys.
pub fn fingerprint(public: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(public)))
}

/// What a server offers in its `auth_request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub version: u64,
    pub suites: Vec<String>,
    /// Present when the server has a password: how to derive the SPAKE2
    /// secret from it.
    pub kdf: Option<Kdf>,
}

/// Argon2id parameters and salt for the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kdf {
    pub salt: [u8; 16],
    pub params: HashParams,
}

impl Offer {
    /// The offer's JSON object, written in the same style as every line.
    pub fn to_json(&self) -> String {
        let suites: Vec<String> = self
            .suites
            .iter()
            .map(|s| {
                let mut q = String::new();
                crate::json::write_str(&mut q, s);
                q
            })
            .collect();
        let mut out = format!(
            "{{\"v\": {}, \"suites\": [{}], \"pake\": \"{PAKE}\"",
            self.version,
            suites.join(", ")
        );
        if let Some(kdf) = &self.kdf {
            out.push_str(&format!(
                ", \"kdf\": {{\"alg\": \"argon2id\", \"salt\": \"{}\", \"m\": {}, \"t\": {}, \"p\": {}}}",
                STANDARD.encode(kdf.salt),
                kdf.params.memory_kib,
                kdf.params.iterations,
                kdf.params.lanes
            ));
        }
        out.push('}');
        out
    }

    /// Reads an offer; `None` if it is missing or not one we understand.
    pub fn from_json(v: &Value) -> Option<Offer> {
        let o = v.as_object()?;
        let version = o.get("v")?.as_u64()?;
        let suites = o
            .get("suites")?
            .as_array()?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        let kdf = match o.get("kdf") {
            None | Some(Value::Null) => None,
            Some(k) => {
                let k = k.as_object()?;
                if k.get("alg")?.as_str()? != "argon2id" {
                    return None;
                }
                let salt = STANDARD.decode(k.get("salt")?.as_str()?).ok()?;
                let num = |key: &str| -> Option<u32> { u32::try_from(k.get(key)?.as_u64()?).ok() };
                let params = HashParams {
                    memory_kib: num("m")?,
                    iterations: num("t")?,
                    lanes: num("p")?,
                };
                // Refuse parameters that would make the client hash forever
                // or exhaust its memory: a hostile server's cheap attack.
                if params.memory_kib > 1024 * 1024 || params.iterations > 64 || params.lanes > 16 {
                    return None;
                }
                Some(Kdf {
                    salt: salt.try_into().ok()?,
                    params,
                })
            }
        };
        Some(Offer {
            version,
            suites,
            kdf,
        })
    }

    /// The suite a client uses: the server's first choice among those we
    /// know; `None` if we can speak none of the offer.
    pub fn choose(&self) -> Option<Suite> {
        if self.version != VERSION {
            return None;
        }
        self.suites.iter().find_map(|s| Suite::from_name(s))
    }

    /// Whether we can speak this offer.
    pub fn is_supported(&self) -> bool {
        self.choose().is_some()
    }
}

/// The client's answer that switches the connection to frames.
pub fn hello_line(suite: Suite) -> String {
    format!(
        "{{\"type\": \"hello\", \"v\": {VERSION}, \"suite\": \"{}\"}}\n",
        suite.name()
    )
}

/// The suite `line` (without its newline) asks for, if it is a hello.
pub fn hello_suite(line: &[u8]) -> Option<Suite> {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    if o.get("type").and_then(Value::as_str) != Some("hello")
        || o.get("v").and_then(Value::as_u64) != Some(VERSION)
    {
        return None;
    }
    Suite::from_name(o.get("suite")?.as_str()?)
}

/// The Noise prologue: both sides must have seen the same offer and hello.
pub fn prologue(offer_line: &[u8], hello_line: &[u8]) -> Vec<u8> {
    let mut p = b"LanTalk secure v1\n".to_vec();
    p.extend_from_slice(offer_line);
    p.extend_from_slice(hello_line);
    p
}

/// A Noise handshake, seeded by the caller.
pub fn handshake(
    initiator: bool,
    identity: &StaticKey,
    prologue: &[u8],
    seed: [u8; 32],
    suite: Suite,
) -> Result<snow::HandshakeState, snow::Error> {
    let params: NoiseParams = suite.name().parse()?;
    let builder = snow::Builder::with_resolver(params, Box::new(SeededResolver { seed }))
        .local_private_key(identity.private())
        .prologue(prologue);
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
}

/// The client's half of the handshake for programs that speak the protocol
/// without our [`crate::client::Client`] (the load generator, tests written
/// by hand, fuzzing): no pause for trust, no password check. Two steps:
/// [`Initiator::start`] answers the server's offer, [`Initiator::finish`]
/// reads its reply and gives the session.
pub struct Initiator {
    noise: Box<snow::HandshakeState>,
}

impl Initiator {
    /// Answers `offer_line` (the server's `auth_request`, with its newline):
    /// the handshake under way and the bytes to send (the hello and the
    /// first message).
    pub fn start(
        offer_line: &[u8],
        identity: &StaticKey,
        seed: [u8; 32],
        suite: Suite,
    ) -> Result<(Initiator, Vec<u8>), snow::Error> {
        let hello = hello_line(suite);
        let prologue = prologue(offer_line, hello.as_bytes());
        let mut noise = handshake(true, identity, &prologue, seed, suite)?;
        let mut buf = [0u8; MAX_HANDSHAKE];
        let n = noise.write_message(&[], &mut buf)?;
        let mut out = hello.into_bytes();
        out.extend_from_slice(&frame(&buf[..n]));
        Ok((
            Initiator {
                noise: Box::new(noise),
            },
            out,
        ))
    }

    /// Reads the server's message (one frame's payload): our last message,
    /// framed, to send, and the session; `leftover` as for [`Session::new`].
    pub fn finish(
        mut self,
        server_message: &[u8],
        leftover: FrameBuffer,
    ) -> Result<(Vec<u8>, Session), snow::Error> {
        let mut buf = vec![0u8; MAX_HANDSHAKE.max(server_message.len())];
        self.noise.read_message(server_message, &mut buf)?;
        let n = self.noise.write_message(&[], &mut buf)?;
        let last = frame(&buf[..n]);
        Ok((last, Session::new(*self.noise, leftover)?))
    }
}

/// Prefixes `payload` with its length as a big-endian `u16`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encrypts `plaintext` (any length) into one or more frames appended to `out`.
pub fn seal_into(
    transport: &mut snow::TransportState,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), snow::Error> {
    for chunk in plaintext.chunks(MAX_PLAINTEXT) {
        // Encrypt in place at the end of `out`: no scratch buffer to clear
        // (this runs once per recipient of every message).
        let len = chunk.len() + 16;
        out.extend_from_slice(&(len as u16).to_be_bytes());
        let start = out.len();
        out.resize(start + len, 0);
        let n = transport.write_message(chunk, &mut out[start..])?;
        out.truncate(start + n);
    }
    Ok(())
}

/// How many bytes [`seal_into`] appends for `len` bytes of plaintext.
pub fn sealed_len(len: usize) -> usize {
    len + len.div_ceil(MAX_PLAINTEXT) * (2 + 16)
}

/// `plaintext` sealed into frames in one shared buffer, allocated once at its
/// exact size: the server does this for every encrypted recipient of every
/// message, so it skips the copy from a growable buffer into the payload.
pub fn seal_shared(
    transport: &mut snow::TransportState,
    plaintext: &[u8],
) -> Result<std::sync::Arc<[u8]>, snow::Error> {
    let mut sealed: std::sync::Arc<[u8]> =
        std::iter::repeat_n(0, sealed_len(plaintext.len())).collect();
    let out = std::sync::Arc::get_mut(&mut sealed).expect("a new Arc is not shared");
    let mut at = 0;
    for chunk in plaintext.chunks(MAX_PLAINTEXT) {
        let len = chunk.len() + 16;
        out[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
        at += 2;
        at += transport.write_message(chunk, &mut out[at..at + len])?;
    }
    Ok(sealed)
}

/// An established Noise session, the same at both ends: sealed frames in,
/// plaintext out; plaintext in, sealed frames out. The server's connections
/// and the client hold one each once their (role-specific) handshake is
/// done; it knows nothing of LanTalk's lines beyond appending plaintext to a
/// [`LineBuffer`], so a WebSocket could carry its frames as well as TCP.
pub struct Session {
    noise: Box<snow::TransportState>,
    /// Bytes of a frame not complete yet.
    frames: FrameBuffer,
    /// Binds the password check and the approval code to this session.
    hash: Vec<u8>,
    /// The other end's long-term key.
    remote: Vec<u8>,
}

/// Why [`Session::open`] gave up: the session cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// A frame failed to decrypt: changed, replayed or injected.
    Tampered,
    /// A frame longer than the format allows is being sent.
    Oversized,
}

/// The session can seal nothing more (its nonces are used up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealFailed;

impl Session {
    /// The session a finished handshake gives. `leftover` holds the bytes
    /// that arrived after the handshake's last message (frames of the
    /// session already); [`Session::open`] with no new bytes reads them.
    pub fn new(
        handshake: snow::HandshakeState,
        leftover: FrameBuffer,
    ) -> Result<Session, snow::Error> {
        let hash = handshake.get_handshake_hash().to_vec();
        let remote = handshake.get_remote_static().unwrap_or_default().to_vec();
        let noise = handshake.into_transport_mode()?;
        Ok(Session {
            noise: Box::new(noise),
            frames: leftover,
            hash,
            remote,
        })
    }

    pub fn hash(&self) -> &[u8] {
        &self.hash
    }

    pub fn remote(&self) -> &[u8] {
        &self.remote
    }

    /// Decrypts every complete frame of `bytes` (after what was held) and
    /// appends the plaintext to `out`. Plaintext of the frames before a bad
    /// one is kept in `out`: it is authentic.
    pub fn open(&mut self, bytes: &[u8], out: &mut LineBuffer) -> Result<(), OpenError> {
        self.open_frames(bytes, |plaintext| out.push(plaintext))
    }

    /// Decrypts every complete frame of `bytes` (after what was held) and
    /// hands each frame's plaintext to `each`, in order: for side
    /// connections, where a frame is one record rather than part of a line.
    pub fn open_frames(
        &mut self,
        bytes: &[u8],
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), OpenError> {
        self.frames.push(bytes);
        let mut buf = Vec::new();
        while let Some(frame) = self.frames.next_frame() {
            let n = self
                .noise
                .read_message(frame, grow(&mut buf, frame.len()))
                .map_err(|_| OpenError::Tampered)?;
            each(&buf[..n]);
        }
        if self.frames.buffered() > MAX_FRAME + 2 {
            return Err(OpenError::Oversized);
        }
        Ok(())
    }

    /// `plaintext` sealed into frames, in one buffer shared by whoever sends
    /// it (see [`seal_shared`]).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<std::sync::Arc<[u8]>, SealFailed> {
        seal_shared(&mut self.noise, plaintext).map_err(|_| SealFailed)
    }

    /// `plaintext` sealed into frames appended to `out` (see [`seal_into`]).
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SealFailed> {
        seal_into(&mut self.noise, plaintext, out).map_err(|_| SealFailed)
    }
}

/// Splits a byte stream into length-prefixed frames. Holds at most one
/// frame's worth of bytes beyond what was pushed last.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
}

impl FrameBuffer {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let pending = &self.buf[self.start..];
        if pending.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
        if pending.len() < 2 + len {
            return None;
        }
        let begin = self.start + 2;
        self.start = begin + len;
        Some(&self.buf[begin..begin + len])
    }

    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

// ── Password (SPAKE2) ────────────────────────────────────────────────────────

type Spake = spake2::Spake2<spake2::Ed25519Group>;

const CLIENT_ID: &[u8] = b"lantalk client";
const SERVER_ID: &[u8] = b"lantalk server";

/// The client's side of the password check.
pub struct PakeClient(Spake);

/// The server's side: what the client must prove.
pub struct PakeServer {
    expect: [u8; 32],
}

/// Starts the client side with the Argon2id hash `secret` of the password;
/// returns the message for the server.
pub fn pake_client_start(secret: &[u8; 32], seed: [u8; 32]) -> (PakeClient, Vec<u8>) {
    let (state, msg) = Spake::start_a_with_rng(
        &spake2::Password::new(secret),
        &spake2::Identity::new(CLIENT_ID),
        &spake2::Identity::new(SERVER_ID),
        ChaCha20Rng::from_seed(seed),
    );
    (PakeClient(state), msg)
}

/// Answers a client's SPAKE2 message: the message back, the server's proof,
/// and what the client's proof must be. `None` if the message is malformed.
pub fn pake_server_respond(
    secret: &[u8; 32],
    client_msg: &[u8],
    handshake_hash: &[u8],
    seed: [u8; 32],
) -> Option<(Vec<u8>, [u8; 32], PakeServer)> {
    let (state, msg) = Spake::start_b_with_rng(
        &spake2::Password::new(secret),
        &spake2::Identity::new(CLIENT_ID),
        &spake2::Identity::new(SERVER_ID),
        ChaCha20Rng::from_seed(seed),
    );
    let key = state.finish(client_msg).ok()?;
    let server_proof = confirm(&key, b"server", handshake_hash);
    let expect = confirm(&key, b"client", handshake_hash);
    Some((msg, server_proof, PakeServer { expect }))
}

impl PakeServer {
    /// Whether the client's proof is right, in constant time.
    pub fn verify(&self, client_proof: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        client_proof.len() == 32 && bool::from(self.expect.ct_eq(client_proof))
    }
}

impl PakeClient {
    /// Checks the server's answer; returns the client's proof, or `None` if
    /// the server does not know the password (or is not the server).
    pub fn finish(
        self,
        server_msg: &[u8],
        server_proof: &[u8],
        handshake_hash: &[u8],
    ) -> Option<[u8; 32]> {
        use subtle::ConstantTimeEq;
        let key = self.0.finish(server_msg).ok()?;
        let expect = confirm(&key, b"server", handshake_hash);
        if server_proof.len() != 32 || !bool::from(expect.ct_eq(server_proof)) {
            return None;
        }
        Some(confirm(&key, b"client", handshake_hash))
    }
}

/// Key confirmation: HMAC-SHA256 over the role and the handshake hash, so
/// the proof is only valid inside this one Noise session.
fn confirm(key: &[u8], role: &[u8], handshake_hash: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"lantalk key confirmation v1 ");
    mac.update(role);
    mac.update(handshake_hash);
    mac.finalize().into_bytes().into()
}

// ── Approval codes (host mode) ───────────────────────────────────────────────
//
// When the operator approves each connection, both sides show a short code
// to compare by voice. It is derived from the Noise handshake hash and a
// nonce from each side, exchanged commit-then-reveal: the client commits to
// its nonce before it sees the server's, and reveals it only after. A man in
// the middle runs two sessions with two different handshake hashes; to make
// the codes match it would have to pick its nonce towards the server before
// knowing the client's, so it succeeds once in a million tries at best.

/// Length of each side's approval nonce.
pub const APPROVAL_NONCE: usize = 32;

/// The client's commitment to its approval nonce.
pub fn approval_commit(nonce: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lantalk approval commit v1");
    h.update(nonce);
    h.finalize().into()
}

/// Whether `nonce` is the one `commit` was made to, in constant time.
pub fn approval_commit_matches(commit: &[u8], nonce: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    commit.len() == 32
        && nonce.len() == APPROVAL_NONCE
        && bool::from(approval_commit(nonce).ct_eq(commit))
}

/// The six-digit code both sides show, as `123 456`.
pub fn approval_code(handshake_hash: &[u8], client_nonce: &[u8], server_nonce: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"lantalk approval code v1");
    h.update(handshake_hash);
    h.update(client_nonce);
    h.update(server_nonce);
    let d = h.finalize();
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

// ── Randomness handed in ─────────────────────────────────────────────────────

/// A seedable RNG with the trait Noise wants.
pub struct SeededRng(ChaCha20Rng);

impl SeededRng {
    pub fn new(seed: [u8; 32]) -> Self {
        SeededRng(ChaCha20Rng::from_seed(seed))
    }

    /// 32 fresh bytes, e.g. to seed one connection's handshake.
    pub fn seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.0.fill_bytes(&mut s);
        s
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl CryptoRng for SeededRng {}
impl Random for SeededRng {}

/// Noise primitives from snow's resolvers, randomness from a seed.
///
/// The ciphers come from ring: the server seals once per recipient of every
/// message, and for chat-sized messages ring's ChaCha20-Poly1305 is about ten
/// times faster than the pure-Rust one (~0.2 us against ~2 us for 150 bytes,
/// dominated by per-message setup); ring's AES-GCM uses the CPU's AES
/// instructions where there are any, and a constant-time fallback elsewhere.
/// X25519 and BLAKE2s, which ring lacks and which run only in the handshake,
/// come from the default resolver.
struct SeededResolver {
    seed: [u8; 32],
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng::new(self.seed)))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        // ring does not build for wasm32: the pure-Rust ciphers serve there.
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(cipher) = RingResolver.resolve_cipher(choice) {
            return Some(cipher);
        }
        DefaultResolver.resolve_cipher(choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_round_trips() {
        let offer = Offer {
            version: VERSION,
            suites: vec![SUITE.to_string()],
            kdf: Some(Kdf {
                salt: [9; 16],
                params: HashParams::INSECURE_FAST,
            }),
        };
        let v: Value = serde_json::from_str(&offer.to_json()).unwrap();
        assert_eq!(Offer::from_json(&v), Some(offer.clone()));
        assert!(offer.is_supported());
    }

    /// Client key 2 and server key 1 through the whole handshake, the same
    /// every time: (client, server).
    fn handshaken(suite: Suite) -> (snow::HandshakeState, snow::HandshakeState) {
        let pro = prologue(b"offer\n", b"hello\n");
        let key = |b| StaticKey::from_private([b; 32]);
        let mut c = handshake(true, &key(2), &pro, [3; 32], suite).unwrap();
        let mut s = handshake(false, &key(1), &pro, [4; 32], suite).unwrap();
        let (mut a, mut b) = ([0u8; 1024], [0u8; 1024]);
        let n = c.write_message(&[], &mut a).unwrap();
        s.read_message(&a[..n], &mut b).unwrap();
        let n = s.write_message(&[], &mut a).unwrap();
        c.read_message(&a[..n], &mut b).unwrap();
        let n = c.write_message(&[], &mut a).unwrap();
        s.read_message(&a[..n], &mut b).unwrap();
        (c, s)
    }

    /// A finished pair of sessions: (client, server).
    fn sessions(suite: Suite) -> (snow::TransportState, snow::TransportState) {
        let (c, s) = handshaken(suite);
        (
            c.into_transport_mode().unwrap(),
            s.into_transport_mode().unwrap(),
        )
    }

    #[test]
    fn handshake_and_pake_agree() {
        let (c, s) = handshaken(Suite::ChaChaPoly);
        assert_eq!(
            c.get_remote_static().unwrap(),
            StaticKey::from_private([1; 32]).public()
        );
        assert_eq!(
            s.get_remote_static().unwrap(),
            StaticKey::from_private([2; 32]).public()
        );
        let h = c.get_handshake_hash().to_vec();
        assert_eq!(h, s.get_handshake_hash());

        let secret = [7u8; 32];
        let (pc, msg_a) = pake_client_start(&secret, [5; 32]);
        let (msg_b, proof, ps) = pake_server_respond(&secret, &msg_a, &h, [6; 32]).unwrap();
        let client_proof = pc.finish(&msg_b, &proof, &h).unwrap();
        assert!(ps.verify(&client_proof));

        let (pc, msg_a) = pake_client_start(&[8u8; 32], [5; 32]);
        let (msg_b, proof, ps) = pake_server_respond(&secret, &msg_a, &h, [6; 32]).unwrap();
        assert!(pc.finish(&msg_b, &proof, &h).is_none(), "wrong password");
        assert!(!ps.verify(&[0; 32]));
    }

    #[test]
    fn shared_seal_is_the_same_frames() {
        for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
            shared_seal_matches(suite);
        }
    }

    fn shared_seal_matches(suite: Suite) {
        let (mut one, mut peer) = sessions(suite);
        let (mut two, _) = sessions(suite);
        for len in [
            0,
            1,
            150,
            MAX_PLAINTEXT,
            MAX_PLAINTEXT + 1,
            3 * MAX_PLAINTEXT + 7,
        ] {
            let text: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut grown = Vec::new();
            seal_into(&mut one, &text, &mut grown).unwrap();
            let shared = seal_shared(&mut two, &text).unwrap();
            assert_eq!(&shared[..], &grown[..], "length {len}");
            assert_eq!(shared.len(), sealed_len(len));
            let mut frames = FrameBuffer::default();
            frames.push(&shared);
            let mut opened = Vec::new();
            let mut buf = vec![0; MAX_FRAME];
            while let Some(f) = frames.next_frame() {
                let n = peer.read_message(f, &mut buf).unwrap();
                opened.extend_from_slice(&buf[..n]);
            }
            assert_eq!(opened, text);
        }
    }

    #[test]
    fn the_servers_order_chooses_the_suite() {
        let offer = |suites: &[&str]| Offer {
            version: VERSION,
            suites: suites.iter().map(|s| s.to_string()).collect(),
            kdf: None,
        };
        assert_eq!(offer(&[SUITE_AESGCM, SUITE]).choose(), Some(Suite::AesGcm));
        assert_eq!(
            offer(&[SUITE, SUITE_AESGCM]).choose(),
            Some(Suite::ChaChaPoly)
        );
        assert_eq!(
            offer(&["Noise_XX_448_Future", SUITE]).choose(),
            Some(Suite::ChaChaPoly)
        );
        assert_eq!(offer(&["Noise_XX_448_Future"]).choose(), None);
        let mut old = offer(&[SUITE]);
        old.version = VERSION + 1;
        assert_eq!(old.choose(), None);
        for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
            let hello = hello_line(suite);
            assert_eq!(hello_suite(hello.trim_end().as_bytes()), Some(suite));
        }
        assert_eq!(
            hello_suite(
                br#"{"type": "hello", "v": 1, "suite": "Noise_NN_25519_ChaChaPoly_SHA256"}"#
            ),
            None
        );
    }

    #[test]
    fn frames_split_anywhere() {
        let stream = [frame(b"one"), frame(b""), frame(&[7; 300])].concat();
        let mut whole = FrameBuffer::default();
        whole.push(&stream);
        let mut got = Vec::new();
        while let Some(f) = whole.next_frame() {
            got.push(f.to_vec());
        }
        assert_eq!(got, vec![b"one".to_vec(), vec![], vec![7; 300]]);
        let mut split = FrameBuffer::default();
        let mut got2 = Vec::new();
        for b in &stream {
            split.push(&[*b]);
            while let Some(f) = split.next_frame() {
                got2.push(f.to_vec());
            }
        }
        assert_eq!(got, got2);
    }

    #[test]
    fn approval_codes() {
        let (nc, ns) = ([1u8; 32], [2u8; 32]);
        let commit = approval_commit(&nc);
        assert!(approval_commit_matches(&commit, &nc));
        assert!(!approval_commit_matches(&commit, &ns));
        assert!(!approval_commit_matches(&commit[..31], &nc));
        let code = approval_code(b"hash", &nc, &ns);
        assert_eq!(code.len(), 7);
        assert_eq!(code.as_bytes()[3], b' ');
        assert!(code
            .chars()
            .filter(|c| *c != ' ')
            .all(|c| c.is_ascii_digit()));
        assert_eq!(code, approval_code(b"hash", &nc, &ns));
        assert_ne!(code, approval_code(b"other session", &nc, &ns));
        assert_ne!(code, approval_code(b"hash", &ns, &nc));
    }

    #[test]
    fn fingerprint_is_ssh_style() {
        let k = StaticKey::from_private([1; 32]);
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.fingerprint().len(), 7 + 43);
    }
}
