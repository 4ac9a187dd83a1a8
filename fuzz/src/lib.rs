//! Helpers shared by the fuzz targets.
//!
//! The structured targets (`protocol`, `client`, `frame`) do not use
//! `#[derive(Arbitrary)]`: its encoding (enum tags as 4-byte integers, lengths
//! taken from the *end* of the input) makes hand-written seeds impractical.
//! Instead every input is read front to back by [`Reader`]: single bytes,
//! little-endian `u16`s and length-prefixed strings, with missing bytes read as
//! zero. `make_corpus.py` writes seeds in exactly this format, and the decoded
//! scripts implement `Arbitrary` (via [`Reader`]) and `Debug`, so
//! `cargo fuzz fmt <target> <input>` prints a crash input as a list of steps.
//! See README.md for the byte layout of each target.

/// Reads an input front to back; past the end every read yields zeros/empty.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Little-endian.
    pub fn u16(&mut self) -> u16 {
        let lo = self.u8() as u16;
        let hi = self.u8() as u16;
        lo | (hi << 8)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A `u8` length followed by that many bytes.
    pub fn blob8(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.bytes(n)
    }

    /// A `u16` length followed by that many bytes.
    pub fn blob16(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.bytes(n)
    }

    /// A `u8`-length-prefixed string (invalid UTF-8 replaced).
    pub fn str8(&mut self) -> String {
        String::from_utf8_lossy(self.blob8()).into_owned()
    }

    /// One element of `table`, chosen by a byte modulo its length.
    pub fn pick<T: Clone>(&mut self, table: &[T]) -> T {
        let i = self.u8() as usize % table.len();
        table[i].clone()
    }

    /// A count byte `k` (taken modulo `max_splits + 1`) followed by `k` offset
    /// bytes; offset byte `b` becomes position `b * len / 256`. Returned
    /// sorted, so the data is cut into `k + 1` chunks by [`chunks`] (some may
    /// be empty: empty reads happen too).
    pub fn splits(&mut self, len: usize, max_splits: u8) -> Vec<usize> {
        let k = self.u8() % (max_splits + 1);
        let mut v: Vec<usize> = (0..k).map(|_| self.u8() as usize * len / 256).collect();
        v.sort_unstable();
        v
    }
}

/// Cuts `data` at the sorted offsets `splits`.
pub fn chunks<'a>(data: &'a [u8], splits: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(splits.len() + 1);
    let mut start = 0;
    for &s in splits {
        let s = s.clamp(start, data.len());
        out.push(&data[start..s]);
        start = s;
    }
    out.push(&data[start..]);
    out
}

/// Upper bound on actions drained after one step; a machine that produces
/// more is considered to loop.
pub const MAX_ACTIONS_PER_STEP: usize = 1_000_000;

/// Upper bound on decoded steps per input, to keep each run short.
pub const MAX_STEPS: usize = 2_000;

/// Shows bytes as a readable string in panic messages.
pub fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out: String = s
        .chars()
        .take(200)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.chars().count() > 200 {
        out.push_str(&format!("…[{} bytes]", bytes.len()));
    }
    out
}

/// Whether `LANTALK_FUZZ_TRACE` is set: the structured targets then print
/// every step and action to stderr (for reading seeds and crash inputs).
pub fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("LANTALK_FUZZ_TRACE").is_some())
}
