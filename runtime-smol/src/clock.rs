//! The runtime's clocks, turned into the core's [`Now`].

use std::time::Instant;

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

    /// The core's `deadline` on this process's monotonic clock.
    pub(crate) fn to_std(&self, deadline: lantalk_core::Instant) -> Instant {
        self.start + deadline.since_epoch()
    }
}
