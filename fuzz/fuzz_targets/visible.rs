//! `text::visible` leaves no character a terminal would act on, and changes
//! nothing in a string that has none.
#![no_main]

use std::borrow::Cow;

use lantalk_core::text::{is_forbidden, visible};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let out = visible(&s);
    if let Some(c) = out.chars().find(|&c| is_forbidden(c)) {
        panic!("U+{:04X} left in {out:?} (from {s:?})", c as u32);
    }
    for c in out.chars() {
        // The set, spelt out independently of `is_forbidden`.
        let n = c as u32;
        assert!(
            !(n < 0x20
                || (0x7f..=0x9f).contains(&n)
                || n == 0x61c
                || n == 0x200e
                || n == 0x200f
                || (0x2028..=0x202e).contains(&n)
                || (0x2066..=0x2069).contains(&n)),
            "U+{n:04X} left in {out:?}"
        );
    }
    if s.chars().any(is_forbidden) {
        assert!(matches!(out, Cow::Owned(_)), "changed text must be owned");
    } else {
        assert!(
            matches!(out, Cow::Borrowed(b) if b == &*s),
            "text without controls changed: {s:?} -> {out:?}"
        );
    }
    // Visible forms are themselves visible: applying it again is a no-op.
    assert!(matches!(visible(&out), Cow::Borrowed(_)));
});
