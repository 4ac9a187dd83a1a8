//! One connection as the server sees it: where it is in its life (logging
//! in, waiting for approval, chatting) and how its bytes travel (plain lines,
//! a handshake, sealed frames).

use super::*;

pub(super) enum Phase {
    LoggingIn {
        deadline: Instant,
        /// A password check under way: the name asked for, and what the
        /// client's proof must be.
        pake: Option<(String, PakeServer)>,
        /// A plaintext password being checked off the event loop, and the
        /// name asked for. Lines that follow wait until it is answered.
        check: Option<(CheckId, String)>,
    },
    /// Logged in (name and password checked), waiting to be approved by
    /// the operator: first the commit-then-reveal exchange for the code,
    /// then the operator's answer. Not a user yet: sees and sends no chat.
    Approving {
        deadline: Instant,
        name: String,
        step: approve::Step,
    },
    /// Logged in; `joined` orders users by login, as LanTalk lists them.
    Active { name: String, joined: u64 },
    /// A side connection carrying a file for a session (see `files.rs`):
    /// records, not lines; no user of its own.
    Side,
}

/// How bytes travel on a connection.
pub(super) enum Wire {
    /// JSON lines in the clear. Until the first line arrives (`offer` is
    /// still held), that line may be a hello that switches to frames.
    Plain { offer: Option<Vec<u8>> },
    Handshake {
        noise: Box<snow::HandshakeState>,
        frames: FrameBuffer,
    },
    /// The session's hash binds the password check to it; its remote key
    /// is the client's long-term key.
    Secure(secure::Session),
}

pub(super) struct Conn {
    pub(super) addr: SocketAddr,
    pub(super) wire: Wire,
    /// JSON lines: as received, or as decrypted.
    pub(super) lines: LineBuffer,
    /// Lines for an encrypted peer not sealed yet: everything the server
    /// says to it while handling one input goes out in one frame (see
    /// [`Server::seal_pending`]).
    pub(super) unsealed: Vec<u8>,
    pub(super) phase: Phase,
    pub(super) last_input: Instant,
    pub(super) malformed_in_a_row: u32,
    pub(super) rate: Option<Window>,
    pub(super) flood_warnings: Window,
}

impl Conn {
    /// When this connection must have done something by, if ever.
    pub(super) fn deadline(&self, idle_timeout: Option<Duration>) -> Option<Instant> {
        match self.phase {
            Phase::LoggingIn { deadline, .. } | Phase::Approving { deadline, .. } => Some(deadline),
            Phase::Active { .. } => idle_timeout.map(|t| self.last_input + t),
            Phase::Side => Some(self.last_input + super::files::SIDE_IDLE),
        }
    }

    pub(super) fn name(&self) -> Option<&str> {
        match &self.phase {
            Phase::Active { name, .. } => Some(name),
            Phase::LoggingIn { .. } | Phase::Approving { .. } | Phase::Side => None,
        }
    }

    pub(super) fn ip(&self) -> IpAddr {
        canonical(self.addr.ip())
    }

    pub(super) fn is_plaintext(&self) -> bool {
        matches!(self.wire, Wire::Plain { .. })
    }

    /// Queues `line` to be sealed with whatever else follows it; true if it
    /// is the first line queued since the last seal. Only for secure wires.
    pub(super) fn queue_sealed(&mut self, line: &[u8]) -> bool {
        let first = self.unsealed.is_empty();
        self.unsealed.extend_from_slice(line);
        first
    }

    /// The queued lines in one sealed payload, if any.
    pub(super) fn take_sealed(&mut self) -> Result<Option<Payload>, SealFailed> {
        if self.unsealed.is_empty() {
            return Ok(None);
        }
        let mut lines = std::mem::take(&mut self.unsealed);
        let bytes = self.encode(&lines);
        // A burst may have grown it; an idle connection should not keep that.
        if lines.capacity() <= KEEP_UNSEALED {
            lines.clear();
            self.unsealed = lines;
        }
        bytes
    }

    /// Whether its password is being checked: its next lines wait.
    pub(super) fn is_checking(&self) -> bool {
        matches!(self.phase, Phase::LoggingIn { check: Some(_), .. })
    }

    pub(super) fn is_secure(&self) -> bool {
        matches!(self.wire, Wire::Secure(_))
    }

    /// `line` as it must go on this connection's wire; `None` in the middle
    /// of a handshake, when there is no way to say anything.
    pub(super) fn encode(&mut self, line: &[u8]) -> Result<Option<Payload>, SealFailed> {
        match &mut self.wire {
            // Only fails if the nonce space (2^64 messages) is exhausted.
            Wire::Secure(session) => session.seal(line).map(Some),
            Wire::Handshake { .. } => Ok(None),
            Wire::Plain { .. } => Ok(Some(line.into())),
        }
    }
}

/// Capacity of a connection's unsealed lines kept between bursts.
const KEEP_UNSEALED: usize = 16 * 1024;
