//! Server passwords, kept only as a salted Argon2id hash.
//!
//! The salt is randomness, so it is handed in by the runtime; the core only
//! computes. Comparison is constant-time so timing reveals nothing about how
//! much of a guess was right.

use argon2::{Algorithm, Argon2, Params, Version};
use subtle::ConstantTimeEq;

/// Names one password check, to match its answer to the login it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckId(pub u64);

/// Slow password work the server hands out instead of doing: checking a
/// password (a login, a room's key) against its Argon2id hash, or hashing a
/// new room key. Tens of milliseconds and 19 MiB of memory at the
/// recommended cost, so the runtime runs it off its event loop (every other
/// connection keeps being served); the answer comes back through
/// `Server::handle_password_checked`.
#[derive(Clone, PartialEq, Eq)]
#[must_use = "a login waits for this check's answer"]
pub struct PasswordCheck {
    pub id: CheckId,
    job: Job,
}

#[derive(Clone, PartialEq, Eq)]
enum Job {
    Verify {
        hash: PasswordHash,
        candidate: String,
    },
    Hash {
        secret: String,
        salt: [u8; 16],
        params: HashParams,
    },
}

impl PasswordCheck {
    pub(crate) fn new(id: CheckId, hash: PasswordHash, candidate: String) -> Self {
        PasswordCheck {
            id,
            job: Job::Verify { hash, candidate },
        }
    }

    /// Hashing `secret` (a new room key) with `salt` from the server's RNG.
    pub(crate) fn hash(id: CheckId, secret: String, salt: [u8; 16], params: HashParams) -> Self {
        PasswordCheck {
            id,
            job: Job::Hash {
                secret,
                salt,
                params,
            },
        }
    }

    /// Does the work (slow, on purpose: run it where blocking is fine).
    pub fn run(self) -> PasswordChecked {
        match self.job {
            Job::Verify { hash, candidate } => PasswordChecked {
                id: self.id,
                ok: hash.verify(&candidate),
                hash: None,
            },
            Job::Hash {
                secret,
                salt,
                params,
            } => PasswordChecked {
                id: self.id,
                ok: true,
                hash: Some(PasswordHash::new(&secret, salt, params)),
            },
        }
    }
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the candidate: it may be someone's real password, typo'd.
        write!(f, "PasswordCheck({})", self.id.0)
    }
}

/// The answer to a [`PasswordCheck`]: whether the password matched, or the
/// new hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordChecked {
    pub id: CheckId,
    pub ok: bool,
    pub hash: Option<PasswordHash>,
}

/// Cost parameters for Argon2id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl HashParams {
    /// OWASP's recommended minimum for Argon2id (19 MiB, 2 passes, 1 lane).
    pub const RECOMMENDED: HashParams = HashParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        lanes: 1,
    };

    /// Fast and weak: for tests only.
    pub const INSECURE_FAST: HashParams = HashParams {
        memory_kib: 8,
        iterations: 1,
        lanes: 1,
    };
}

/// The stored form of a password: salt, parameters and the Argon2id output.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    salt: [u8; 16],
    params: HashParams,
    hash: [u8; 32],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Hashes `password` with a salt the caller drew from a secure RNG.
    pub fn new(password: &str, salt: [u8; 16], params: HashParams) -> Self {
        let hash = derive(password.as_bytes(), &salt, params);
        PasswordHash { salt, params, hash }
    }

    /// The Argon2id output: the secret both sides of a SPAKE2 exchange use.
    pub fn secret(&self) -> &[u8; 32] {
        &self.hash
    }

    pub fn salt(&self) -> [u8; 16] {
        self.salt
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Whether `candidate` is the password, in time independent of the answer.
    pub fn verify(&self, candidate: &str) -> bool {
        let got = derive(candidate.as_bytes(), &self.salt, self.params);
        bool::from(got.ct_eq(&self.hash))
    }
}

/// Argon2id of `password` with `salt`: what the server stores and what a
/// client derives to prove it knows the password.
pub fn derive(password: &[u8], salt: &[u8], p: HashParams) -> [u8; 32] {
    let params = Params::new(
        p.memory_kib.max(8),
        p.iterations.max(1),
        p.lanes.max(1),
        Some(32),
    )
    .unwrap_or_default();
    let mut out = [0u8; 32];
    // Only fails for out-of-range parameters, which `Params::new` rejected above.
    let _ = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password, salt, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_password() {
        let h = PasswordHash::new("secret", [7; 16], HashParams::INSECURE_FAST);
        assert!(h.verify("secret"));
        assert!(!h.verify("Secret"));
        assert!(!h.verify(""));
        let other_salt = PasswordHash::new("secret", [8; 16], HashParams::INSECURE_FAST);
        assert_ne!(h.hash, other_salt.hash);
    }
}
