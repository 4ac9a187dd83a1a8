//! Sharing files end to end, with the real `lantalk-smol` and `lantalk-std`
//! binaries: a piped client sends a file to a room, the server keeps it,
//! someone else downloads it byte for byte (and again, without overwriting
//! the first copy), the offer survives a server restart, and a piped client
//! waits for its upload before it exits, failing when a transfer failed.

use std::path::Path;
use std::process::Command;

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/tempdir.rs"]
mod tempdir;

use ours::{bin_label, OurServer, SMOL, STD};
use proc::Proc;
use tempdir::TempDir;

macro_rules! transfer_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            transfer_tests!(@tests $bin;
                a_file_shared_in_a_room_is_downloaded_intact,
                a_piped_sender_waits_for_its_upload_and_reports_failures,
                a_folder_arrives_with_its_paths,
            );
        }
    };
    (@tests $bin:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                super::$name($bin)
            }
        )*
    };
}

transfer_tests!(smol, super::SMOL);
transfer_tests!(std_rt, super::STD);

/// A piped client of ours, logged in, saving downloads in a folder of its
/// own (returned).
fn piped(bin: &str, port: u16, name: &str) -> (Proc, TempDir) {
    let dir = TempDir::new("client");
    let downloads = TempDir::new("downloads");
    let mut cmd = Command::new(bin);
    cmd.args([
        "client",
        &format!("127.0.0.1:{port}"),
        "--name",
        name,
        "--accept-new",
    ])
    .arg("--data-dir")
    .arg(dir.path())
    .arg("--download-dir")
    .arg(downloads.path())
    .env_remove("LANTALK_DATA_DIR")
    .env_remove("LANTALK_DOWNLOAD_DIR");
    let p = Proc::spawn_in(format!("{} client {name}", bin_label(bin)), cmd, dir);
    p.wait_line("connected", |l| {
        l.starts_with(&format!("Connected as {name}"))
    });
    (p, downloads)
}

/// Bytes that differ from chunk to chunk (a pattern a shifted or repeated
/// chunk would break).
fn contents(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn a_file_shared_in_a_room_is_downloaded_intact(bin: &str) {
    let server = OurServer::start(bin, &[]);
    let (mut ann, _ann_downloads) = piped(bin, server.port, "ann");
    let (mut bob, bob_downloads) = piped(bin, server.port, "bob");
    let data = contents(3 * 1024 * 1024 + 12_345);
    let source = TempDir::new("source");
    let path = source.path().join("slides deck.pdf");
    std::fs::write(&path, &data).unwrap();

    ann.send(&format!("/send #lobby {}", path.display()));
    ann.wait_line("the upload done", |l| {
        l.contains("Sent slides deck.pdf (3.2 MB)")
    });
    bob.wait_line("the offer", |l| {
        l.contains("*** ann shared slides deck.pdf (3.2 MB): /get 1 ***")
    });
    // The server keeps it in its files folder, by id.
    assert_eq!(read(&server.dir.path().join("files").join("1")), data);

    bob.send("/get 1");
    let saved = bob_downloads.path().join("slides deck.pdf");
    bob.wait_line("the download saved", |l| {
        l.contains(&format!("Saved {}", saved.display()))
    });
    assert_eq!(read(&saved), data, "byte for byte");
    bob.send("/get 1");
    let again = bob_downloads.path().join("slides deck (1).pdf");
    bob.wait_line("a second copy", |l| {
        l.contains(&format!("Saved {}", again.display()))
    });
    assert_eq!(read(&again), data);
    assert_eq!(read(&saved), data, "the first copy is untouched");
    bob.send("/files");
    bob.wait_line("the list", |l| {
        l.contains("1  slides deck.pdf  3.2 MB  from ann in #lobby") && l.ends_with("(downloaded)")
    });
    ann.finish_ok();
    bob.finish_ok();

    // After a restart the offer is still there.
    let OurServer { proc, dir, .. } = server;
    drop(proc);
    let server = OurServer::start_in(bin, dir, &[]);
    server.proc.wait_line("the banner counts it", |l| {
        l.contains("(1 kept from before)")
    });
    let (mut cy, cy_downloads) = piped(bin, server.port, "cy");
    cy.send("/files");
    cy.wait_line("listed after the restart", |l| {
        l.contains("1  slides deck.pdf  3.2 MB  from ann in #lobby")
    });
    cy.send("/get 1");
    let saved = cy_downloads.path().join("slides deck.pdf");
    cy.wait_line("saved after the restart", |l| {
        l.contains(&format!("Saved {}", saved.display()))
    });
    assert_eq!(read(&saved), data);
    cy.finish_ok();
}

fn a_piped_sender_waits_for_its_upload_and_reports_failures(bin: &str) {
    let server = OurServer::start(bin, &["--max-file-size", "2MB"]);
    let source = TempDir::new("source");
    let small = source.path().join("notes.txt");
    std::fs::write(&small, contents(1_500_000)).unwrap();

    // The input ends right after the /send: the client still finishes it.
    let (mut ann, _d) = piped(bin, server.port, "ann");
    ann.send(&format!("/send #lobby {}", small.display()));
    ann.finish_ok();
    assert!(ann.has_line(|l| l.contains("Sent notes.txt (1.5 MB)")));
    assert_eq!(
        read(&server.dir.path().join("files").join("1")),
        contents(1_500_000)
    );

    // Too big for this server, and a file that is not there: refused,
    // and the run fails.
    let big = source.path().join("big.bin");
    std::fs::write(&big, contents(2_000_001)).unwrap();
    let (mut bob, _d) = piped(bin, server.port, "bob");
    bob.send(&format!("/send #lobby {}", big.display()));
    bob.send("/send #lobby /no/such/file.txt");
    bob.close_stdin();
    let status = bob.wait_exit();
    assert!(!status.success(), "a failed transfer fails the run");
    assert!(
        bob.has_line(|l| l.contains("big.bin is 2.0 MB; this server takes files up to 2.0 MB."))
    );
    assert!(bob.has_line(|l| l.contains("No such file") && l.contains("/no/such/file.txt")));
}

/// A folder goes as one offer and arrives as a folder: its files in their
/// subfolders, byte for byte, next to (not over) one of the same name.
fn a_folder_arrives_with_its_paths(bin: &str) {
    let server = OurServer::start(bin, &[]);
    let (mut ann, _ann_downloads) = piped(bin, server.port, "ann");
    let (mut bob, bob_downloads) = piped(bin, server.port, "bob");
    let source = TempDir::new("source");
    let top = source.path().join("team notes");
    std::fs::create_dir_all(top.join("day 1/photos")).unwrap();
    std::fs::write(top.join("agenda.md"), b"# agenda\n").unwrap();
    let big = contents(1024 * 1024 + 5);
    std::fs::write(top.join("day 1/photos/board.png"), &big).unwrap();
    std::fs::create_dir_all(bob_downloads.path().join("team notes")).unwrap();

    ann.send(&format!("/send #lobby {}", top.display()));
    ann.wait_line("the upload done", |l| l.contains("Sent team notes"));
    bob.wait_line("one offer for the folder", |l| {
        l.contains("*** ann shared team notes/ (") && l.ends_with("): /get 1 ***")
    });
    bob.send("/get 1");
    let saved = bob_downloads.path().join("team notes (1)");
    bob.wait_line("the folder saved", |l| {
        l.contains(&format!("Saved {}", saved.display()))
    });
    assert_eq!(read(&saved.join("agenda.md")), b"# agenda\n");
    assert_eq!(read(&saved.join("day 1/photos/board.png")), big);
    let leftovers: Vec<_> = std::fs::read_dir(bob_downloads.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no .part left: {leftovers:?}");
    ann.finish_ok();
    bob.finish_ok();
}
