//! Splitting a byte stream into `\n`-terminated lines, with a hard size limit.
//!
//! TCP delivers bytes in arbitrary chunks; the same stream must give the same
//! lines however it was split. The buffer never holds more than `max_line`
//! bytes of an unfinished line, so a peer that never sends `\n` cannot grow it.

/// What the buffer made of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One complete line without its terminator (`\n` or `\r\n`).
    Line(&'a [u8]),
    /// The current line grew past the limit; the stream cannot be resynchronised.
    TooLong,
}

#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the not-yet-returned data in `buf`.
    start: usize,
    /// How far `buf[start..]` has been searched for `\n` already.
    scanned: usize,
    max_line: usize,
    overflowed: bool,
}

impl LineBuffer {
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line: max_line.max(1),
            overflowed: false,
        }
    }

    /// Appends received bytes. Call [`LineBuffer::next_frame`] until it returns
    /// `None` before pushing more, so the buffer stays bounded.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, `TooLong` once (after which the buffer is
    /// dead), or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        if self.overflowed {
            return None;
        }
        let pending = &self.buf[self.start..];
        match pending[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let end = self.scanned + pos;
                if end > self.max_line {
                    return Some(self.overflow());
                }
                let line_start = self.start;
                self.start += end + 1;
                self.scanned = 0;
                let mut line = &self.buf[line_start..line_start + end];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                Some(Frame::Line(line))
            }
            None => {
                self.scanned = pending.len();
                if pending.len() > self.max_line {
                    Some(self.overflow())
                } else {
                    None
                }
            }
        }
    }

    fn overflow(&mut self) -> Frame<'static> {
        self.overflowed = true;
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
        Frame::TooLong
    }

    /// Takes out everything not yet returned as a line (when the stream
    /// switches to another framing after a line).
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf[self.start..].to_vec();
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        rest
    }

    /// Bytes of an unfinished line currently held.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(buf: &mut LineBuffer, out: &mut Vec<Result<Vec<u8>, ()>>) {
        while let Some(f) = buf.next_frame() {
            out.push(match f {
                Frame::Line(l) => Ok(l.to_vec()),
                Frame::TooLong => Err(()),
            });
        }
    }

    #[test]
    fn splits_lines_and_strips_cr() {
        let mut b = LineBuffer::new(100);
        let mut out = Vec::new();
        b.push(b"one\r\ntw");
        collect(&mut b, &mut out);
        b.push(b"o\n\nthree");
        collect(&mut b, &mut out);
        assert_eq!(
            out,
            vec![Ok(b"one".to_vec()), Ok(b"two".to_vec()), Ok(b"".to_vec())]
        );
        assert_eq!(b.buffered(), 5);
    }

    #[test]
    fn line_at_limit_passes_and_over_limit_fails() {
        let mut b = LineBuffer::new(4);
        let mut out = Vec::new();
        b.push(b"abcd\nabcde");
        collect(&mut b, &mut out);
        assert_eq!(out, vec![Ok(b"abcd".to_vec()), Err(())]);
        b.push(b"more\n");
        collect(&mut b, &mut out);
        assert_eq!(out.len(), 2, "dead after overflow");
        assert_eq!(b.buffered(), 0);
    }
}
