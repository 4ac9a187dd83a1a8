//! BanList::parse never panics, and what it accepts writes back to a file that
//! reads as the same list (and writing is a fixed point).
#![no_main]

use lantalk_core::BanList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = BanList::parse(data) else {
        return;
    };
    let file = list.to_file_bytes();
    let again = BanList::parse(&file).unwrap_or_else(|e| {
        panic!(
            "to_file_bytes output does not parse ({e}): {}",
            String::from_utf8_lossy(&file)
        )
    });
    assert_eq!(again, list, "ban list changed through its file");
    assert_eq!(
        again.to_file_bytes(),
        file,
        "writing the ban file is not stable"
    );
    for ip in list.iter() {
        assert!(list.contains(ip), "{ip} listed but not contained");
    }
});
