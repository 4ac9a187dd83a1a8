//! A connection's bounded outbound queue.

use std::collections::VecDeque;
use std::io::IoSlice;

use crate::server::Payload;

/// A connection's outbound queue has no room: its reader is too slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// A bounded FIFO of payloads for one connection. Bounded by bytes, not by
/// count, because one stuck reader must not hold megabytes of everyone's chat.
///
/// Payloads stay the shared, encoded-once buffers the core made. A runtime
/// either copies everything queued into one buffer ([`OutQueue::drain_into`])
/// or writes straight from the payloads with one vectored write
/// ([`OutQueue::io_slices`], then [`OutQueue::advance`] by what was written).
#[derive(Debug)]
pub struct OutQueue {
    items: VecDeque<Payload>,
    /// Bytes of the front payload already written.
    front_sent: usize,
    /// Bytes queued and not yet written.
    bytes: usize,
    limit: usize,
}

/// Default bound of a connection's outbound queue.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;

impl OutQueue {
    pub fn new(limit: usize) -> Self {
        OutQueue {
            items: VecDeque::new(),
            front_sent: 0,
            bytes: 0,
            limit,
        }
    }

    pub fn push(&mut self, bytes: Payload) -> Result<(), QueueFull> {
        if self.bytes + bytes.len() > self.limit {
            return Err(QueueFull);
        }
        // Nothing to write: not kept, so "empty" and "no bytes" agree.
        if bytes.is_empty() {
            return Ok(());
        }
        self.bytes += bytes.len();
        self.items.push_back(bytes);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes queued and not yet written.
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// Moves everything queued into `buf` (cleared first), so one write
    /// carries many messages.
    pub fn drain_into(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.reserve(self.bytes);
        for item in self.items.drain(..) {
            buf.extend_from_slice(&item[self.front_sent..]);
            self.front_sent = 0;
        }
        self.bytes = 0;
    }

    /// Fills `slices` with what is queued, from the first unwritten byte, one
    /// slice per payload (as many as fit); returns how many it filled.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, item) in slices.iter_mut().zip(&self.items) {
            let from = if n == 0 { self.front_sent } else { 0 };
            *slot = IoSlice::new(&item[from..]);
            n += 1;
        }
        n
    }

    /// Records that the first `n` queued bytes were written.
    pub fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.bytes, "advanced past what was queued");
        self.bytes -= n.min(self.bytes);
        while let Some(front) = self.items.front() {
            let left = front.len() - self.front_sent;
            if n < left {
                self.front_sent += n;
                return;
            }
            n -= left;
            self.front_sent = 0;
            self.items.pop_front();
        }
    }

    /// Whether the queue holds memory (even while empty): an idle
    /// connection can give it back with [`OutQueue::shrink`].
    pub fn holds_memory(&self) -> bool {
        self.items.capacity() > 0
    }

    /// Frees the queue's memory if nothing is queued.
    pub fn shrink(&mut self) {
        if self.items.is_empty() {
            self.items = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn queue_is_bounded_by_bytes_and_batches() {
        let mut q = OutQueue::new(10);
        q.push(Arc::from(&b"hello"[..])).unwrap();
        q.push(Arc::from(&b"world"[..])).unwrap();
        assert_eq!(q.push(Arc::from(&b"!"[..])), Err(QueueFull));
        let mut buf = Vec::new();
        q.drain_into(&mut buf);
        assert_eq!(buf, b"helloworld");
        assert!(q.is_empty());
        q.push(Arc::from(&b"again"[..])).unwrap();
    }

    fn written(q: &OutQueue, max_slices: usize) -> Vec<u8> {
        let mut slices = vec![IoSlice::new(&[]); max_slices];
        let n = q.io_slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn partial_vectored_writes_resume_where_they_stopped() {
        let mut q = OutQueue::new(100);
        for part in [&b"abc"[..], b"", b"defg", b"hi"] {
            q.push(Arc::from(part)).unwrap();
        }
        assert_eq!(q.len_bytes(), 9);
        assert_eq!(written(&q, 2), b"abcdefg", "two slices, one per payload");
        q.advance(4); // "abc" and the "d" of "defg"
        assert_eq!(q.len_bytes(), 5);
        assert_eq!(written(&q, 8), b"efghi");
        // The rest of a partly written payload also drains correctly.
        let mut buf = Vec::new();
        q.drain_into(&mut buf);
        assert_eq!(buf, b"efghi");
        assert!(q.is_empty());
        assert_eq!(q.len_bytes(), 0);
        q.push(Arc::from(&b"xy"[..])).unwrap();
        q.advance(2);
        assert!(q.is_empty());
        assert!(q.holds_memory());
        q.shrink();
        assert!(!q.holds_memory());
    }
}
