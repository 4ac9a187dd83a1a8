//! Everything an operator can tune, as one plain struct.

use std::time::Duration;

use crate::password::PasswordHash;
use crate::ratelimit::Rate;
use crate::secure::{StaticKey, Suite};
use crate::web::WebConfig;

use super::{FilesConfig, HistoryConfig, PluginSpec, RoomLimits};

/// What the server needs to offer encryption.
#[derive(Clone, Debug)]
pub struct SecureConfig {
    /// The server's long-term key; clients pin it.
    pub identity: StaticKey,
    /// Seed for every handshake's and password check's randomness (drawn by
    /// the runtime from the operating system; fixed in tests).
    pub rng_seed: [u8; 32],
    /// The suites offered, preferred first (see [`Suite::preferred`]); the
    /// client takes the first it knows. Empty offers ChaCha20-Poly1305 only.
    pub suites: Vec<Suite>,
}

/// The operator approves each connection (host mode, `server --approve`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// How long a peer waits for the operator's answer before it is refused.
    pub timeout: Duration,
    /// Approved peers' keys are added to `trusted` (and persisted).
    pub remember: bool,
    /// Peers let in without asking, by key (the name is the one they had
    /// when approved, for `/trusted` and `/forget`).
    pub trusted: Vec<TrustedPeer>,
}

impl Default for Approval {
    fn default() -> Self {
        Approval {
            timeout: Duration::from_secs(60),
            remember: false,
            trusted: Vec::new(),
        }
    }
}

/// A peer whose key the operator approved and asked to remember.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedPeer {
    pub name: String,
    /// The peer's long-term public key.
    pub key: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Display name; the console speaks as `"<name> (server)"`.
    pub name: String,
    /// `None`: anyone may join.
    pub password: Option<PasswordHash>,
    /// `None`: no encryption is offered (every client logs in in plaintext).
    pub secure: Option<SecureConfig>,
    /// Whether clients that do not encrypt (LanTalk 2.0) may log in when
    /// encryption is offered.
    pub allow_plaintext: bool,
    /// Chat lines (messages and commands) per user; `None` turns limiting off.
    pub rate_limit: Option<Rate>,
    /// A user warned this often for flooding is kicked.
    pub flood_kick: Rate,
    /// Failed logins allowed per address before further attempts are refused.
    pub failed_logins: Rate,
    /// How long a connection may take to log in.
    pub auth_timeout: Duration,
    /// How long a logged-in connection may stay silent before it is taken
    /// for dead; `None`: never. Clients of ours are told it at login and
    /// keep their connection alive, so it only clears dead connections
    /// (and LanTalk 2.0 clients that stay silent, as LanTalk 2.0 does).
    pub idle_timeout: Option<Duration>,
    /// Most simultaneous connections (logged in or not).
    pub max_clients: usize,
    /// Most users logged in at once (`None`: no limit besides
    /// `max_clients`). A login beyond it is refused: the host is busy.
    pub max_users: Option<usize>,
    /// `Some`: the operator approves each login ([`Approval`]).
    pub approval: Option<Approval>,
    /// Most simultaneous connections from one address.
    pub max_per_address: usize,
    /// Loopback addresses are exempt from `max_per_address` (tests, local demos).
    pub exempt_loopback: bool,
    /// Longest accepted line in bytes; a longer one closes the connection.
    pub max_line: usize,
    /// Malformed lines in a row after which a connection is closed.
    pub max_malformed_in_a_row: u32,
    /// Password checks (Argon2id, 19 MiB each at the recommended cost) run
    /// at once off the event loop; more wait their turn.
    pub max_password_checks: usize,
    /// Emit a debug [`EventKind::Chat`](super::EventKind::Chat) event for
    /// every relayed message. Building one costs three allocations per
    /// message; a host that neither logs chat nor shows it turns it off.
    pub chat_events: bool,
    /// Rooms: how many, how many per person, key hashing.
    pub rooms: RoomLimits,
    /// What is kept of what is said, and shown on joining.
    pub history: HistoryConfig,
    /// The id of the first message (ids never repeat, also across
    /// restarts: the history store says where the last run stopped).
    pub first_message_id: u64,
    /// Sharing files: limits, and what an earlier run kept.
    pub files: FilesConfig,
    /// Plugin processes to start and keep running (`server --plugin`).
    pub plugins: Vec<PluginSpec>,
    /// The browser client's files, served to connections from the web
    /// listener (`handle_connect_web`); `None` serves none (the WebSocket
    /// still works).
    pub web: Option<WebConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "Server".to_string(),
            password: None,
            secure: None,
            allow_plaintext: true,
            rate_limit: Some(Rate::new(10, Duration::from_secs(5))),
            flood_kick: Rate::new(3, Duration::from_secs(60)),
            failed_logins: Rate::new(5, Duration::from_secs(60)),
            auth_timeout: Duration::from_secs(15),
            idle_timeout: Some(Duration::from_secs(300)),
            max_clients: 1024,
            max_users: None,
            approval: None,
            max_per_address: 16,
            exempt_loopback: true,
            max_line: 16 * 1024,
            max_malformed_in_a_row: 10,
            max_password_checks: 2,
            chat_events: true,
            rooms: RoomLimits::default(),
            history: HistoryConfig::default(),
            first_message_id: 1,
            files: FilesConfig::default(),
            plugins: Vec::new(),
            web: None,
        }
    }
}
