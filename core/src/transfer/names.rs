//! File names from peers, made safe to create on any system we run on.
//!
//! A name offered by someone else is only a suggestion: the receiver keeps
//! its last path component, drops control and bidirectional-override
//! characters (they disguise `exe.txt` as `txt.exe`), replaces what Windows
//! forbids, avoids Windows' device names, and bounds the length. Whatever
//! arrives, the result is one plain, non-empty file name.

/// Longest name kept, in bytes (most file systems allow 255; room is left
/// for ` (12)` and `.part`).
pub const MAX_NAME: usize = 200;

/// A safe file name for `offered`.
pub fn sanitise(offered: &str) -> String {
    // Only the last component: no directories, absolute paths or `..`.
    let last = offered
        .rsplit(['/', '\\'])
        .find(|part| !part.trim().is_empty())
        .unwrap_or("");
    let mut name: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    // Leading dots would hide the file (or be `..`); trailing dots and
    // spaces are dropped by Windows.
    name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' '])
        .to_string();
    if name.is_empty() {
        name = "file".to_string();
    }
    if is_device_name(&name) {
        name.insert(0, '_');
    }
    shorten(&name, MAX_NAME)
}

/// The `n`th alternative to `name` when it is taken: `name (n).ext`.
pub fn numbered(name: &str, n: u32) -> String {
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// `report.final.pdf` -> (`report.final`, `.pdf`); no extension -> (`name`, ``).
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 10 => name.split_at(dot),
        _ => (name, ""),
    }
}

/// Cuts `name` to at most `max` bytes on a character boundary, keeping a
/// short extension.
fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    let mut end = max.saturating_sub(ext.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &stem[..end])
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// CON, PRN, AUX, NUL, COM1–9 and LPT1–9, with or without an extension,
/// in any case: Windows opens the device instead of a file.
fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    let upper = stem.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (upper.len() == 4
            && (upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.as_bytes()[3].is_ascii_digit()
            && upper.as_bytes()[3] != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_their_directories() {
        assert_eq!(sanitise("/etc/passwd"), "passwd");
        assert_eq!(sanitise("../../.ssh/authorized_keys"), "authorized_keys");
        assert_eq!(sanitise("C:\\Windows\\system.ini"), "system.ini");
        assert_eq!(sanitise("dir/"), "dir");
        assert_eq!(sanitise(".."), "file");
        assert_eq!(sanitise(""), "file");
        assert_eq!(sanitise("/"), "file");
    }

    #[test]
    fn dangerous_characters_go() {
        assert_eq!(sanitise("a\x1b[31mred.txt"), "a[31mred.txt");
        assert_eq!(sanitise("evil\u{202e}txt.exe"), "eviltxt.exe");
        assert_eq!(sanitise("what?.txt"), "what_.txt");
        assert_eq!(sanitise(".hidden"), "hidden");
        assert_eq!(sanitise("trailing. . "), "trailing");
    }

    #[test]
    fn windows_device_names_are_renamed() {
        assert_eq!(sanitise("CON"), "_CON");
        assert_eq!(sanitise("nul.txt"), "_nul.txt");
        assert_eq!(sanitise("com1.tar.gz"), "_com1.tar.gz");
        assert_eq!(sanitise("COM0"), "COM0");
        assert_eq!(sanitise("console.log"), "console.log");
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.pdf", "é".repeat(300));
        let short = sanitise(&long);
        assert!(short.len() <= MAX_NAME);
        assert!(short.ends_with(".pdf"));
    }

    #[test]
    fn numbered_alternatives() {
        assert_eq!(numbered("slides.pdf", 1), "slides (1).pdf");
        assert_eq!(numbered("Makefile", 2), "Makefile (2)");
        assert_eq!(numbered("archive.tar.gz", 1), "archive.tar (1).gz");
    }
}
