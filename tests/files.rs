//! End-to-end tests of the files in the data directory that several
//! programs share: the real `lantalk-smol` and `lantalk-std` binaries.
//!
//! * Clients started at once with one `--data-dir`, each pinning a
//!   different server with `--accept-new`, all keep their pin in
//!   `known_servers` (each read-modify-write is done under a file lock).
//! * A corrupt line in `known_servers` is named in a warning and does not
//!   stop connections to other servers; the server it is about is refused.
//!
//! Every server listens on 127.0.0.1 port 0 with its own data directory;
//! every wait is bounded; nothing asserts on timing.

use std::path::Path;
use std::process::Command;

use lantalk_core::secure::b64;

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/tempdir.rs"]
mod tempdir;

use ours::{bin_label, OurServer, SMOL, STD};
use proc::Proc;
use tempdir::TempDir;

macro_rules! file_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            file_tests!(@tests $bin;
                parallel_clients_keep_every_pin,
                corrupt_known_servers_line_refuses_only_its_server,
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

file_tests!(smol, super::SMOL);
file_tests!(std_rt, super::STD);

fn start_server(bin: &str) -> OurServer {
    OurServer::start(bin, &[])
}

/// `BIN client 127.0.0.1:PORT --name NAME --data-dir DIR --accept-new`,
/// piped.
fn client(bin: &str, port: u16, name: &str, dir: &Path) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.arg("client")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--name", name, "--accept-new", "--data-dir"])
        .arg(dir)
        .env_remove("LANTALK_DATA_DIR")
        .current_dir(dir);
    Proc::spawn(format!("{} client {name}", bin_label(bin)), cmd)
}

fn joined(name: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| l.starts_with(&format!("Connected as {name} to "))
}

/// The public key in a `server_key` file, base64, as known_servers has it.
fn public_b64(server_key: &Path) -> String {
    let text = std::fs::read_to_string(server_key).unwrap();
    let private = text.split_whitespace().nth(1).unwrap();
    let private: [u8; 32] = lantalk_core::secure::unb64(private)
        .unwrap()
        .try_into()
        .unwrap();
    b64(lantalk_core::secure::StaticKey::from_private(private).public())
}

/// Before pins were merged under a lock, four clients pinning at once kept
/// one entry out of four.
fn parallel_clients_keep_every_pin(bin: &str) {
    const N: usize = 6;
    let servers: Vec<OurServer> = (0..N).map(|_| start_server(bin)).collect();
    let cdir = TempDir::new("client");
    let mut clients: Vec<Proc> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| client(bin, s.port, &format!("C{i}"), cdir.path()))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.wait_line("its join", joined(&format!("C{i}")));
        c.finish_ok();
    }
    let known = std::fs::read_to_string(cdir.path().join("known_servers"))
        .expect("known_servers was written");
    for s in &servers {
        let entry = format!(
            "127.0.0.1:{} {}",
            s.port,
            public_b64(&s.dir.path().join("server_key"))
        );
        assert!(
            known.lines().any(|l| l.trim() == entry),
            "the pin of the server {} ({}) was lost:\n{known}",
            s.port,
            s.fingerprint
        );
    }
    assert_eq!(
        known.lines().filter(|l| !l.starts_with('#')).count(),
        N,
        "{known}"
    );
    // One client key for all, not one per client that raced to create it.
    let client_keys = std::fs::read_dir(cdir.path())
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            e.file_name().to_string_lossy().starts_with("client_key")
                && !e.file_name().to_string_lossy().ends_with(".lock")
        })
        .count();
    assert_eq!(client_keys, 1);
}

fn corrupt_known_servers_line_refuses_only_its_server(bin: &str) {
    let (good, bad) = (start_server(bin), start_server(bin));
    let cdir = TempDir::new("client");
    let known_path = cdir.path().join("known_servers");
    std::fs::write(
        &known_path,
        format!("# pinned\n127.0.0.1:{} not*base64\n!!junk!!\n", bad.port),
    )
    .unwrap();

    // Another server: connects (and is pinned), with a warning naming the
    // file, the line and what is wrong.
    let mut c = client(bin, good.port, "Alice", cdir.path());
    c.wait_line("its join", joined("Alice"));
    c.finish_ok();
    let err = c.err.text();
    assert!(
        err.contains("known_servers line 2") && err.contains("not valid base64"),
        "no warning about line 2:\n{err}"
    );
    assert!(err.contains("line 3"), "no warning about line 3:\n{err}");
    let known = std::fs::read_to_string(&known_path).unwrap();
    assert!(
        known.contains(&format!("127.0.0.1:{} ", good.port)),
        "{known}"
    );
    assert!(
        known.contains("not*base64"),
        "the bad line is kept:\n{known}"
    );

    // The server the corrupt line is about: refused, whatever key it shows.
    let mut c = client(bin, bad.port, "Bob", cdir.path());
    let said = c.expect_failure();
    assert!(!said.contains("Connected as Bob"), "{said}");
    assert!(said.contains("known_servers line 2"), "{said}");
}
