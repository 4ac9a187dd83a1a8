//! LineBuffer: the same stream gives the same frames however it is split, the
//! frames match a straightforward reference splitter, and the buffer stays
//! within its bound.
//!
//! Input: `max_line` byte, split-count byte `k` (mod 33), `k` split-offset
//! bytes, then the stream (see README.md).
#![no_main]

use lantalk_core::framing::{Frame, LineBuffer};
use lantalk_fuzz::{chunks, show, Reader};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, PartialEq, Eq)]
enum F {
    Line(Vec<u8>),
    TooLong,
}

/// The frames a whole stream must give, written the obvious way: split at
/// `\n`, strip one `\r`, a line (or unfinished tail) longer than `max` is
/// `TooLong` and ends everything. Returns the frames and the bytes left over.
fn reference(stream: &[u8], max: usize) -> (Vec<F>, usize) {
    let mut out = Vec::new();
    let mut rest = stream;
    loop {
        match rest.iter().position(|&b| b == b'\n') {
            Some(p) => {
                if p > max {
                    out.push(F::TooLong);
                    return (out, 0);
                }
                let line = &rest[..p];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                out.push(F::Line(line.to_vec()));
                rest = &rest[p + 1..];
            }
            None => {
                if rest.len() > max {
                    out.push(F::TooLong);
                    return (out, 0);
                }
                return (out, rest.len());
            }
        }
    }
}

/// Pushes the chunks one by one, draining after each, and checks the bounds.
fn run(chunks: &[&[u8]], max_line: usize) -> (Vec<F>, usize) {
    let max = max_line.max(1); // LineBuffer::new clamps 0 to 1
    let mut b = LineBuffer::new(max_line);
    let mut out = Vec::new();
    let mut dead = false;
    for chunk in chunks {
        // Drained to `None` before, so at most `max` bytes were held; push()
        // first drops the consumed prefix, then appends the chunk.
        b.push(chunk);
        let held = b.buffered();
        if dead {
            assert_eq!(held, 0, "bytes buffered after TooLong");
        }
        assert!(
            held <= max + chunk.len(),
            "buffered {held} > max_line {max} + chunk {}",
            chunk.len()
        );
        let mut last = held;
        while let Some(f) = b.next_frame() {
            assert!(!dead, "a frame after TooLong");
            match f {
                Frame::Line(l) => {
                    assert!(!l.contains(&b'\n'), "line contains \\n: {}", show(l));
                    assert!(l.len() <= max, "line of {} bytes > max_line {max}", l.len());
                    out.push(F::Line(l.to_vec()));
                }
                Frame::TooLong => {
                    dead = true;
                    out.push(F::TooLong);
                }
            }
            let now = b.buffered();
            assert!(
                now <= last,
                "buffered grew from {last} to {now} while draining"
            );
            last = now;
        }
        assert!(
            b.buffered() <= max,
            "buffered {} > max_line {max} after draining",
            b.buffered()
        );
        if dead {
            assert_eq!(b.buffered(), 0, "bytes buffered after TooLong");
        }
    }
    (out, b.buffered())
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let max_line = r.u8() as usize;
    let k = r.u8() % 33;
    let offsets = r.bytes(k as usize).to_vec();
    let stream = r.bytes(usize::MAX);
    let mut splits: Vec<usize> = offsets
        .iter()
        .map(|&b| b as usize * stream.len() / 256)
        .collect();
    splits.sort_unstable();

    let expected = reference(stream, max_line.max(1));
    let whole = run(&[stream], max_line);
    assert_eq!(
        whole, expected,
        "whole stream differs from the reference splitter"
    );
    let split = run(&chunks(stream, &splits), max_line);
    assert_eq!(
        split, expected,
        "split at {splits:?} differs from the whole stream"
    );
    if stream.len() <= 4096 {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let bytewise = run(&bytes, max_line);
        assert_eq!(
            bytewise, expected,
            "byte by byte differs from the whole stream"
        );
    }
});
