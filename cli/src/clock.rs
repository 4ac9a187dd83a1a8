//! The local wall clock, which the core only ever receives as a value.

use chrono::Timelike;
use lantalk_core::WallTime;

pub fn wall_time() -> WallTime {
    let now = chrono::Local::now();
    WallTime {
        hour: now.hour() as u8,
        minute: now.minute() as u8,
        unix_ms: now.timestamp_millis(),
    }
}

/// `HH:MM`, for lines the client prints about itself.
pub fn hhmm() -> String {
    wall_time().to_string()
}
