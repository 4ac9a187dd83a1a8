//! The runtime's clocks, turned into the core's [`Now`].

use std::time::{Duration, Instant};

use lantalk_core::{Now, WallTime};

pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    pub(crate) fn now(&self, wall: WallTime) -> Now {
        Now::new(
            lantalk_core::Instant::from_epoch(self.start.elapsed()),
            wall,
        )
    }

    /// How long until the core's `deadline` (zero if it has passed).
    pub(crate) fn until(&self, deadline: lantalk_core::Instant) -> Duration {
        deadline.since_epoch().saturating_sub(self.start.elapsed())
    }
}
