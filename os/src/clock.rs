//! The system's monotonic clock, turned into the core's [`Now`] (the core
//! never reads a clock itself).

use std::time::{Duration, Instant};

use lantalk_core::{Now, WallTime};

/// The monotonic clock a runtime hands the core: the core's instants are
/// measured from the moment the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// The core's instant for this moment.
    pub fn instant(&self) -> lantalk_core::Instant {
        lantalk_core::Instant::from_epoch(self.start.elapsed())
    }

    /// This moment, with the local time of day `wall`.
    pub fn now(&self, wall: WallTime) -> Now {
        Now::new(self.instant(), wall)
    }

    /// The core's `deadline` on this process's monotonic clock (for timers
    /// that take an instant).
    pub fn to_std(&self, deadline: lantalk_core::Instant) -> Instant {
        self.start + deadline.since_epoch()
    }

    /// How long until the core's `deadline` (zero if it has passed; for
    /// waits that take a duration).
    pub fn until(&self, deadline: lantalk_core::Instant) -> Duration {
        deadline.since_epoch().saturating_sub(self.start.elapsed())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_deadlines_and_waits_agree() {
        let clock = Clock::new();
        let now = clock.instant();
        let later = now + Duration::from_secs(60);
        assert!(clock.until(later) <= Duration::from_secs(60));
        assert!(clock.until(later) > Duration::from_secs(59));
        assert_eq!(clock.until(now), Duration::ZERO);
        assert_eq!(
            clock.to_std(later) - clock.to_std(now),
            Duration::from_secs(60)
        );
        assert!(clock.instant() >= now);
    }
}
