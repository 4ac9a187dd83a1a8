//! Sliding-window counters: message rate per user, warnings per user, and
//! failed logins per address all share this shape.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Instant;

/// Rate limit setting: at most `count` events in any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

impl Rate {
    pub const fn new(count: u32, window: Duration) -> Self {
        Rate { count, window }
    }
}

/// Remembers the instants of recent events, never more than the limit allows.
#[derive(Clone, Debug)]
pub struct Window {
    rate: Rate,
    hits: VecDeque<Instant>,
}

impl Window {
    pub fn new(rate: Rate) -> Self {
        Window {
            rate,
            hits: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&first) = self.hits.front() {
            if now.saturating_since(first) >= self.rate.window {
                self.hits.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records an event if the limit allows it; `false` means it is over.
    pub fn try_hit(&mut self, now: Instant) -> bool {
        self.expire(now);
        if self.hits.len() >= self.rate.count as usize {
            return false;
        }
        self.hits.push_back(now);
        true
    }

    /// Records an event unconditionally and says how many are in the window.
    pub fn hit(&mut self, now: Instant) -> usize {
        self.expire(now);
        if self.hits.len() >= self.rate.count as usize {
            self.hits.pop_front();
        }
        self.hits.push_back(now);
        self.hits.len()
    }

    /// Whether the window is full at `now`.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.hits.len() >= self.rate.count as usize
    }

    /// When the oldest event leaves the window, if any is held.
    pub fn frees_at(&self) -> Option<Instant> {
        self.hits.front().map(|&t| t + self.rate.window)
    }

    /// Whether nothing is held any more at `now` (the window can be dropped).
    pub fn is_idle(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.hits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_epoch(Duration::from_millis(ms))
    }

    #[test]
    fn allows_count_per_window() {
        let mut w = Window::new(Rate::new(2, Duration::from_secs(1)));
        assert!(w.try_hit(at(0)));
        assert!(w.try_hit(at(10)));
        assert!(!w.try_hit(at(999)));
        assert!(w.try_hit(at(1000)));
        assert!(!w.try_hit(at(1001)));
        assert!(w.try_hit(at(1010)));
    }

    #[test]
    fn hit_counts_and_stays_bounded() {
        let mut w = Window::new(Rate::new(3, Duration::from_secs(60)));
        for i in 0..10 {
            w.hit(at(i));
        }
        assert_eq!(w.hit(at(11)), 3);
        assert!(w.is_full(at(12)));
        assert!(w.is_idle(at(70_000)));
    }
}
