//! How long an accept loop waits after the listener fails.

use std::time::Duration;

/// The accept loops' policy after an error (out of file descriptors and the
/// like): wait and try again rather than die, so that connections already
/// open keep working. The wait starts at [`AcceptBackoff::FIRST`], doubles
/// with every failure in a row up to [`AcceptBackoff::CAP`], and starts over
/// after a connection is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    /// The wait after the first failure.
    pub const FIRST: Duration = Duration::from_millis(5);
    /// The longest wait.
    pub const CAP: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        AcceptBackoff { next: Self::FIRST }
    }

    /// A connection was accepted: the next failure waits the shortest time
    /// again.
    pub fn accepted(&mut self) {
        self.next = Self::FIRST;
    }

    /// Accepting failed: how long to wait before trying again.
    #[must_use]
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::CAP);
        wait
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_on_success() {
        let mut b = AcceptBackoff::new();
        let waits: Vec<u64> = (0..10).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.accepted();
        assert_eq!(b.failed(), Duration::from_millis(5));
        assert_eq!(b.failed(), Duration::from_millis(10));
    }
}
