//! A connection's bounded outbound queue.

use std::collections::VecDeque;

use crate::server::Payload;

/// A connection's outbound queue has no room: its reader is too slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// A bounded FIFO of payloads for one connection. Bounded by bytes, not by
/// count, because one stuck reader must not hold megabytes of everyone's chat.
#[derive(Debug)]
pub struct OutQueue {
    items: VecDeque<Payload>,
    bytes: usize,
    limit: usize,
}

/// Default bound of a connection's outbound queue.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;

impl OutQueue {
    pub fn new(limit: usize) -> Self {
        OutQueue {
            items: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub fn push(&mut self, bytes: Payload) -> Result<(), QueueFull> {
        if self.bytes + bytes.len() > self.limit {
            return Err(QueueFull);
        }
        self.bytes += bytes.len();
        self.items.push_back(bytes);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves everything queued into `buf` (cleared first), so one write
    /// carries many messages.
    pub fn drain_into(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.reserve(self.bytes);
        for item in self.items.drain(..) {
            buf.extend_from_slice(&item);
        }
        self.bytes = 0;
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
}
