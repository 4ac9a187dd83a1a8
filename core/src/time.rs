//! Time as plain values.
//!
//! The core never reads a clock: every entry point takes a [`Now`], which the
//! runtime builds from its monotonic clock and the local wall clock. Tests build
//! it from numbers, so timeouts are exercised by jumping ahead instead of sleeping.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the runtime's monotonic clock, measured from an epoch the runtime
/// chooses (typically the moment it started). Only differences matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The instant `since_epoch` after the runtime's epoch.
    pub const fn from_epoch(since_epoch: Duration) -> Self {
        Instant(since_epoch)
    }

    /// Time elapsed since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d))
    }
}

/// The wall clock: the local time of day for the `ts` field that LanTalk puts
/// on every server message (`"HH:MM"`), and the same moment as milliseconds
/// since the Unix epoch (UTC), which dates messages in history: a time of day
/// alone cannot say which day a line from last week was said on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WallTime {
    pub hour: u8,
    pub minute: u8,
    pub unix_ms: i64,
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour % 24, self.minute % 60)
    }
}

/// Both clocks at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub wall: WallTime,
}

impl Now {
    pub const fn new(instant: Instant, wall: WallTime) -> Self {
        Now { instant, wall }
    }

    /// A moment `secs` after the epoch with the wall clock at 12:00 plus that
    /// offset; convenient for tests and fuzzing.
    pub fn from_secs_f64(secs: f64) -> Self {
        let d = Duration::from_secs_f64(secs.max(0.0));
        let total_min = 12 * 60 + d.as_secs() / 60;
        Now {
            instant: Instant(d),
            wall: WallTime {
                hour: ((total_min / 60) % 24) as u8,
                minute: (total_min % 60) as u8,
                unix_ms: i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            },
        }
    }

    /// The same wall clock, `d` later on the monotonic clock.
    pub fn advanced_by(self, d: Duration) -> Self {
        Now::from_secs_f64((self.instant + d).since_epoch().as_secs_f64())
    }
}
