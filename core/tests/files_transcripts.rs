//! Sharing files in simulated time: our clients and the server on a
//! [`Pair`], side connections and all, with disks in memory
//! ([`common::disk::MemDisk`]) answering the file requests.

mod common;

use common::pair::{Closed, Pair, PeerId};
use common::secure_peer::SecurePeer;
use lantalk_core::client::{ClientConfig, ClientEvent, ClientSecure, NewKey};
use lantalk_core::password::HashParams;
use lantalk_core::secure::StaticKey;
use lantalk_core::server::{Action, CloseReason, FilesConfig, RoomLimits, SecureConfig};
use lantalk_core::transfer::lines::FileAsk;
use lantalk_core::transfer::record::{self, Control};
use lantalk_core::transfer::{chunk_hash, file_hash, hex, CHUNK};
use lantalk_core::ServerConfig;

fn config() -> ServerConfig {
    ServerConfig {
        name: "Hub".into(),
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([0x11; 32]),
            rng_seed: [5; 32],
            suites: Vec::new(),
        }),
        rate_limit: None,
        rooms: RoomLimits {
            key_params: HashParams::INSECURE_FAST,
            ..RoomLimits::default()
        },
        files: FilesConfig {
            enabled: true,
            ..FilesConfig::default()
        },
        ..ServerConfig::default()
    }
}

fn ours(name: &str, key: u8) -> ClientConfig {
    let mut c = ClientConfig::new(name, None);
    c.allow_plaintext = false;
    c.send_rate = None;
    c.secure = Some(ClientSecure {
        identity: StaticKey::from_private([key; 32]),
        rng_seed: [key; 32],
        pinned: None,
        on_new_key: NewKey::Accept,
    });
    c
}

fn typed(pair: &mut Pair, peer: PeerId, line: &str) {
    let line = line.to_string();
    pair.with_client(peer, move |c, now| c.handle_user_line(now, &line));
}

/// A file of `len` bytes that differ from chunk to chunk.
fn contents(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
}

/// Whether a file holds exactly `want` (without printing megabytes when
/// it does not).
fn holds(got: Option<&Vec<u8>>, want: &[u8]) -> bool {
    got.is_some_and(|g| g.as_slice() == want)
}

fn whole_hash(bytes: &[u8]) -> String {
    let hashes: Vec<[u8; 32]> = bytes.chunks(CHUNK as usize).map(chunk_hash).collect();
    hex(&file_hash(&hashes))
}

fn done_events(pair: &Pair, peer: PeerId) -> Vec<(bool, Option<String>, Option<String>)> {
    pair.events(peer)
        .filter_map(|e| match e {
            ClientEvent::TransferDone {
                upload, hash, path, ..
            } => Some((*upload, hash.clone(), path.clone())),
            _ => None,
        })
        .collect()
}

fn failures(pair: &Pair, peer: PeerId) -> Vec<String> {
    pair.events(peer)
        .filter_map(|e| match e {
            ClientEvent::TransferFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn shared_ids(pair: &Pair, peer: PeerId) -> Vec<u64> {
    pair.events(peer)
        .filter_map(|e| match e {
            ClientEvent::FileShared(f) => Some(f.id),
            _ => None,
        })
        .collect()
}

/// Ann sends a file of 2.5 chunks to the lobby; Bob sees it offered and
/// downloads it; both ends verify every chunk and the whole file.
#[test]
fn a_file_goes_up_to_the_server_and_down_to_someone_else() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    let data = contents(2 * CHUNK as usize + CHUNK as usize / 2);
    pair.disk(ann)
        .local
        .insert("talks/slides.pdf".into(), data.clone());

    typed(&mut pair, ann, "/send #lobby talks/slides.pdf");
    assert_eq!(failures(&pair, ann), Vec::<String>::new());
    assert!(
        holds(pair.server_disk.done.get("shared/1"), &data),
        "the server keeps the upload: {:?}",
        failures(&pair, ann)
    );
    let hash = whole_hash(&data);
    assert_eq!(done_events(&pair, ann), [(true, Some(hash.clone()), None)]);
    assert_eq!(shared_ids(&pair, bob), [1], "bob is offered it");
    assert_eq!(shared_ids(&pair, ann), [1], "ann hears it is offered");
    assert!(pair.server_actions().any(
        |a| matches!(a, Action::PersistFiles(list) if list.len() == 1 && list[0].hash.is_some())
    ));

    typed(&mut pair, bob, "/get 1");
    assert_eq!(failures(&pair, bob), Vec::<String>::new());
    assert!(
        holds(pair.disk(bob).done.get("slides.pdf"), &data),
        "{:?}",
        failures(&pair, bob)
    );
    assert_eq!(
        done_events(&pair, bob),
        [(false, Some(hash), Some("slides.pdf".to_string()))]
    );

    // Again: the first copy is not overwritten.
    typed(&mut pair, bob, "/get 1");
    assert!(
        holds(pair.disk(bob).done.get("slides (1).pdf"), &data),
        "{:?}",
        failures(&pair, bob)
    );
}

/// An empty file and a file of exactly one chunk are edge cases of the
/// chunk arithmetic.
#[test]
fn empty_and_exact_chunk_files() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    pair.disk(ann).local.insert("empty".into(), Vec::new());
    pair.disk(ann)
        .local
        .insert("one".into(), contents(CHUNK as usize));
    typed(&mut pair, ann, "/send bob empty");
    typed(&mut pair, ann, "/send bob one");
    assert_eq!(failures(&pair, ann), Vec::<String>::new());
    typed(&mut pair, bob, "/get all");
    assert!(holds(pair.disk(bob).done.get("empty"), &[]));
    assert!(holds(
        pair.disk(bob).done.get("one"),
        &contents(CHUNK as usize)
    ));
    assert_eq!(failures(&pair, bob), Vec::<String>::new());
}

/// A file for one person is offered to them alone.
#[test]
fn a_private_file_is_only_for_its_recipient() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    let cat = pair.connect("cat", "10.0.0.3:1", ours("cat", 0x33));
    pair.disk(ann)
        .local
        .insert("note.txt".into(), b"for bob".to_vec());
    typed(&mut pair, ann, "/send bob note.txt");
    assert_eq!(shared_ids(&pair, bob), [1]);
    assert_eq!(shared_ids(&pair, cat), Vec::<u64>::new());
    typed(&mut pair, cat, "/get 1");
    assert_eq!(
        failures(&pair, cat),
        ["There is no file 1 for you (see /files)."]
    );
    assert!(pair.disk(cat).done.is_empty());
}

/// Limits refuse before anything is uploaded.
#[test]
fn limits_refuse_before_the_upload() {
    let mut cfg = config();
    cfg.files.max_file_size = 1000;
    cfg.files.quota = 1500;
    let mut pair = Pair::new(cfg);
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    pair.disk(ann).local.insert("big".into(), contents(1001));
    pair.disk(ann).local.insert("ok".into(), contents(1000));
    typed(&mut pair, ann, "/send #lobby big");
    typed(&mut pair, ann, "/send #lobby ok");
    typed(&mut pair, ann, "/send #nowhere ok");
    typed(&mut pair, ann, "/send #lobby missing");
    pair.disk(ann).local.insert("ok2".into(), contents(999));
    typed(&mut pair, ann, "/send #lobby ok2");
    assert_eq!(
        failures(&pair, ann),
        [
            "big is 1.0 kB; this server takes files up to 1.0 kB.",
            "You are not in #nowhere: /join #nowhere first.",
            "No such file: missing",
            "The server's space for files is full (1.0 kB of 1.5 kB used); try again when \
             older files have expired.",
        ]
    );
    assert_eq!(pair.server_disk.done.len(), 1);
}

/// A download cut in the middle resumes from the last verified chunk
/// without asking for it again; an upload likewise.
#[test]
fn interrupted_transfers_resume_from_the_last_verified_chunk() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    let data = contents(3 * CHUNK as usize + 10);
    pair.disk(ann).local.insert("data.bin".into(), data.clone());
    typed(&mut pair, ann, "/send #lobby data.bin");
    assert!(holds(pair.server_disk.done.get("shared/1"), &data));

    // Bob's disk already holds two verified chunks of it (an earlier try).
    let two = 2 * CHUNK as usize;
    let hashes = vec![
        chunk_hash(&data[..CHUNK as usize]),
        chunk_hash(&data[CHUNK as usize..two]),
    ];
    pair.disk(bob)
        .partial
        .insert("data.bin@1".into(), (data[..two].to_vec(), hashes));
    typed(&mut pair, bob, "/get 1");
    assert!(
        holds(pair.disk(bob).done.get("data.bin"), &data),
        "{:?}",
        failures(&pair, bob)
    );
    let writes: Vec<&String> = pair
        .disk(bob)
        .log
        .iter()
        .filter(|l| l.starts_with("write"))
        .collect();
    assert_eq!(
        writes,
        [
            &format!("write data.bin@1 @{}", 2 * CHUNK),
            &format!("write data.bin@1 @{}", 3 * CHUNK)
        ],
        "only the missing chunks"
    );
    assert_eq!(failures(&pair, bob), Vec::<String>::new());
}

/// The server restarted in the middle of an upload: the same `/send` again
/// finds the partial file and sends only what is missing.
#[test]
fn an_upload_resumes_after_a_server_restart() {
    use lantalk_core::transfer::{Audience, FileId, SharedFile, Stamp};

    let data = contents(3 * CHUNK as usize);
    let probe = common::disk::MemDisk {
        local: [("big.iso".to_string(), data.clone())].into(),
        ..Default::default()
    };
    let stamp: Stamp = probe.stamp_of("big.iso");
    let mut cfg = config();
    cfg.files.kept = vec![SharedFile {
        id: FileId(4),
        name: "big.iso".into(),
        size: data.len() as u64,
        from: "ann".into(),
        to: Audience::Room("#lobby".into()),
        hash: None,
        at_ms: 0,
        stamp,
        folder: false,
    }];
    let mut pair = Pair::new(cfg);
    pair.server_disk.partial.insert(
        "shared/4".into(),
        (
            data[..CHUNK as usize].to_vec(),
            vec![chunk_hash(&data[..CHUNK as usize])],
        ),
    );
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    pair.disk(ann).local.insert("big.iso".into(), data.clone());
    typed(&mut pair, ann, "/send #lobby big.iso");
    assert_eq!(failures(&pair, ann), Vec::<String>::new());
    assert!(holds(pair.server_disk.done.get("shared/4"), &data));
    let writes: Vec<&String> = pair
        .server_disk
        .log
        .iter()
        .filter(|l| l.starts_with("write"))
        .collect();
    assert_eq!(writes.len(), 2, "chunks 1 and 2 only: {writes:?}");
    // The sender did not hash what it did not send; the server's
    // announcement carries the whole file's hash.
    let shared: Vec<Option<String>> = pair
        .events(ann)
        .filter_map(|e| match e {
            ClientEvent::FileShared(f) => Some(f.sha256.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shared, [Some(whole_hash(&data))]);
}

/// A file that changes while it is sent is reported, and nothing is
/// offered.
#[test]
fn a_file_changed_while_sent_is_reported() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    pair.disk(ann)
        .local
        .insert("log.txt".into(), contents(3 * CHUNK as usize));
    pair.disk(ann).change_after_reads = Some(1);
    typed(&mut pair, ann, "/send #lobby log.txt");
    assert_eq!(failures(&pair, ann), ["log.txt changed while being sent"]);
    assert_eq!(shared_ids(&pair, bob), Vec::<u64>::new());
    assert!(pair.server_disk.done.is_empty());
}

/// The receiver's disk is full: a clear error, and nothing half-written is
/// announced as done.
#[test]
fn a_full_disk_is_a_clear_error() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    pair.disk(ann).local.insert("a.bin".into(), contents(5000));
    typed(&mut pair, ann, "/send #lobby a.bin");
    pair.disk(bob).space = Some(100);
    typed(&mut pair, bob, "/get 1");
    assert_eq!(
        failures(&pair, bob),
        ["Not enough space: needs 5000, 100 free (the partial file is kept: /get it again)"]
    );
    assert!(pair.disk(bob).done.is_empty());
}

/// Someone who leaves stops offering nothing: the file stays for whoever
/// joins later; its sender can withdraw it.
#[test]
fn the_sender_can_withdraw_a_file() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    pair.disk(ann).local.insert("a.bin".into(), contents(10));
    typed(&mut pair, ann, "/send #lobby a.bin");
    typed(&mut pair, bob, "/cancel 1");
    assert!(pair.server_disk.done.contains_key("shared/1"), "not bob's");
    typed(&mut pair, ann, "/cancel 1");
    assert!(pair.server_disk.done.is_empty());
    let removed = pair
        .events(bob)
        .any(|e| matches!(e, ClientEvent::FileRemoved { id: 1, .. }));
    assert!(removed);
    typed(&mut pair, bob, "/get 1");
    assert_eq!(
        failures(&pair, bob),
        ["There is no file 1 for you (see /files)."]
    );
}

/// LanTalk 2.0 members in the lobby hear of a file shared there, as a
/// system line they can show; they cannot download it.
#[test]
fn lantalk_members_hear_of_a_file_as_a_system_line() {
    let mut cfg = config();
    cfg.allow_plaintext = true;
    let mut pair = Pair::new(cfg);
    let dee = pair.connect_raw("dee", "10.0.0.4:1");
    pair.send_raw(dee, b"{\"username\": \"dee\", \"password\": \"\"}\n");
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    pair.disk(ann)
        .local
        .insert("plan.txt".into(), contents(2000));
    typed(&mut pair, ann, "/send #lobby plan.txt");
    let heard: Vec<String> = pair
        .received(dee)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .filter(|l| l.contains("shared"))
        .collect();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(
        heard[0].starts_with("{\"type\": \"system\", \"ts\": \"")
            && heard[0].contains(
                "\"text\": \"ann shared plan.txt (2.0 kB). Download it with a newer LanTalk \
                 client: /get 1\"}"
            ),
        "{heard:?}"
    );
}

/// Offers are limited per person: the eleventh within a minute is refused.
#[test]
fn offers_are_rate_limited() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    for i in 0..11 {
        pair.disk(ann).local.insert(format!("f{i}"), vec![i as u8]);
        typed(&mut pair, ann, &format!("/send #lobby f{i}"));
    }
    assert_eq!(
        failures(&pair, ann),
        ["Too many files offered; wait a minute."]
    );
    assert_eq!(pair.server_disk.done.len(), 10);
}

/// The network drops a download midway: the client takes it up again by
/// itself from the last verified chunk, and the file is whole.
#[test]
fn a_dropped_download_resumes_by_itself() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    let data = contents(4 * CHUNK as usize);
    pair.disk(ann).local.insert("v.mp4".into(), data.clone());
    typed(&mut pair, ann, "/send #lobby v.mp4");
    pair.cut_side_after = Some(2 * CHUNK as usize + 1000);
    typed(&mut pair, bob, "/get 1");
    assert!(holds(pair.disk(bob).done.get("v.mp4"), &data));
    let notices: Vec<&String> = pair
        .events(bob)
        .filter_map(|e| match e {
            ClientEvent::Notice(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(
        notices,
        ["The file connection was lost. Resuming v.mp4 after its last checked chunk (try 2 of 3)."]
    );
    let writes = pair
        .disk(bob)
        .log
        .iter()
        .filter(|l| l.starts_with("write"))
        .count();
    assert_eq!(writes, 4, "no chunk written twice");
    assert_eq!(failures(&pair, bob), Vec::<String>::new());
}

// ── A hostile client of ours ────────────────────────────────────────────

/// A `file_offer` line for the lobby.
fn offer(reference: u64, name: &str, size: u64) -> String {
    FileAsk::FileOffer {
        reference,
        to: "#lobby".into(),
        name: name.into(),
        size,
        modified_ms: 0,
        folder: false,
    }
    .to_line()
}

/// The ticket in the first `file_ticket` line among `lines`.
fn ticket_in(lines: &[String]) -> [u8; 16] {
    let line = lines
        .iter()
        .find(|l| l.contains("\"file_ticket\""))
        .unwrap_or_else(|| panic!("no ticket in {lines:?}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
    lantalk_core::transfer::unhex::<16>(v["ticket"].as_str().expect("a ticket")).expect("16 bytes")
}

/// Opens a side connection as `identity` and presents `ticket`.
fn attach(pair: &mut Pair, identity: [u8; 32], ticket: [u8; 16]) -> SecurePeer {
    let mut side = SecurePeer::handshake(pair, "side", "10.0.0.9:2", identity);
    side.send_plain(pair, &record::encode(&Control::Attach { ticket, from: 0 }));
    side
}

/// Sends `bytes` as one chunk `index` with its true hash.
fn send_chunk(pair: &mut Pair, side: &mut SecurePeer, index: u64, bytes: &[u8]) {
    if !bytes.is_empty() {
        let mut record = vec![record::DATA];
        record.extend_from_slice(bytes);
        side.send_plain(pair, &record);
    }
    let hash = chunk_hash(bytes);
    side.send_plain(pair, &record::encode(&Control::Chunk { index, hash }));
}

/// A client that sends chunks past the end of its file (empty ones pass any
/// length check) is cut off: nothing is written for them.
#[test]
fn chunks_past_the_end_of_a_file_are_refused() {
    let mut pair = Pair::new(config());
    let mut eve = SecurePeer::join(&mut pair, "eve", "10.0.0.9:1", [0x44; 32]);
    eve.lines(&pair);
    let offer = offer(1, "x.bin", 10);
    eve.send(&mut pair, &offer);
    let ticket = ticket_in(&eve.lines(&pair));
    let mut side = attach(&mut pair, [0x44; 32], ticket);
    assert!(side.lines(&pair).iter().any(|l| l.contains("attached")));
    send_chunk(&mut pair, &mut side, 0, &[7; 10]);
    assert_eq!(pair.closed(side.peer), None, "a true chunk is taken");
    send_chunk(&mut pair, &mut side, 1, &[]);
    assert!(
        matches!(
            pair.closed(side.peer),
            Some(Closed::ByServer(CloseReason::Malformed))
        ),
        "{:?}",
        pair.closed(side.peer)
    );
    let writes = pair
        .server_disk
        .log
        .iter()
        .filter(|l| l.starts_with("write"))
        .count();
    assert_eq!(writes, 1, "{:?}", pair.server_disk.log);
}

/// The same offer sent twice gives two tickets. Once the file is complete,
/// the spare one cannot write it again.
#[test]
fn a_spare_ticket_cannot_overwrite_a_finished_file() {
    let mut pair = Pair::new(config());
    let mut eve = SecurePeer::join(&mut pair, "eve", "10.0.0.9:1", [0x44; 32]);
    eve.lines(&pair);
    let offer = offer(1, "x.bin", 10);
    eve.send(&mut pair, &offer);
    eve.send(&mut pair, &offer);
    let lines = eve.lines(&pair);
    let first = ticket_in(&lines);
    let spare = ticket_in(
        &lines[lines
            .iter()
            .position(|l| l.contains("file_ticket"))
            .unwrap()
            + 1..],
    );
    assert_ne!(first, spare);

    let mut side = attach(&mut pair, [0x44; 32], first);
    send_chunk(&mut pair, &mut side, 0, &[7; 10]);
    side.send_plain(&mut pair, &record::encode(&Control::Done { hash: None }));
    assert!(side.lines(&pair).iter().any(|l| l.contains("stored")));
    assert_eq!(pair.server_disk.done.get("shared/1"), Some(&vec![7; 10]));

    let mut late = attach(&mut pair, [0x44; 32], spare);
    assert!(
        matches!(
            pair.closed(late.peer),
            Some(Closed::ByServer(CloseReason::AuthFailed))
        ),
        "{:?}",
        pair.closed(late.peer)
    );
    assert!(late.lines(&pair).iter().all(|l| !l.contains("attached")));
    assert_eq!(pair.server_disk.done.get("shared/1"), Some(&vec![7; 10]));
}

/// Offers that never send a byte cannot hold the server's space: a person
/// has at most three unfinished uploads, and one without progress for an
/// hour is dropped.
#[test]
fn unfinished_uploads_are_bounded_and_expire() {
    let mut pair = Pair::new(ServerConfig {
        idle_timeout: None,
        ..config()
    });
    let mut eve = SecurePeer::join(&mut pair, "eve", "10.0.0.9:1", [0x44; 32]);
    eve.lines(&pair);
    for i in 0..4 {
        let offer = offer(i, &format!("f{i}"), 1 << 30);
        eve.send(&mut pair, &offer);
    }
    let lines = eve.lines(&pair);
    assert_eq!(
        lines.iter().filter(|l| l.contains("file_ticket")).count(),
        3
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("file_refused") && l.contains("3 unfinished uploads")),
        "{lines:?}"
    );
    pair.jump_to(3700.0);
    let offer = offer(9, "late", 1 << 30);
    eve.send(&mut pair, &offer);
    let lines = eve.lines(&pair);
    assert!(
        lines.iter().any(|l| l.contains("file_ticket")),
        "the stalled ones expired: {lines:?}"
    );
    assert!(pair.server_actions().any(
        |a| matches!(a, Action::PersistFiles(list) if list.len() == 1 && list[0].name == "late")
    ));
}

/// Two `/get`s of one file before its ticket arrives are one download, and
/// `/cancel` stops a download still waiting for its ticket.
#[test]
fn a_download_is_asked_for_once_and_can_be_cancelled_before_it_starts() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    let data = contents(CHUNK as usize + 3);
    pair.disk(ann).local.insert("a.bin".into(), data.clone());
    typed(&mut pair, ann, "/send #lobby a.bin");
    pair.with_client(bob, |c, now| {
        c.handle_user_line(now, "/get 1");
        c.handle_user_line(now, "/get 1");
    });
    assert!(holds(pair.disk(bob).done.get("a.bin"), &data));
    assert!(!pair.disk(bob).done.contains_key("a (1).bin"));
    assert!(pair.events(bob).any(
        |e| matches!(e, ClientEvent::Notice(n) if n == "File 1 is already being downloaded.")
    ));

    pair.with_client(bob, |c, now| {
        c.handle_user_line(now, "/get 1");
        c.handle_user_line(now, "/cancel 1");
    });
    assert!(!pair.disk(bob).done.contains_key("a (1).bin"));
    assert!(pair
        .events(bob)
        .any(|e| matches!(e, ClientEvent::Notice(n) if n == "Download of file 1 cancelled.")));
}

/// `/get all` of many files runs four at a time; every file arrives.
#[test]
fn many_downloads_queue_behind_four() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let bob = pair.connect("bob", "10.0.0.2:1", ours("bob", 0x32));
    for i in 0..10 {
        pair.disk(ann)
            .local
            .insert(format!("f{i}"), vec![i as u8; 100]);
        typed(&mut pair, ann, &format!("/send #lobby f{i}"));
    }
    typed(&mut pair, bob, "/get all");
    assert_eq!(failures(&pair, bob), Vec::<String>::new());
    for i in 0..10 {
        assert!(holds(
            pair.disk(bob).done.get(&format!("f{i}")),
            &[i as u8; 100]
        ));
    }
    let queued = pair
        .events(bob)
        .filter(|e| matches!(e, ClientEvent::Notice(n) if n.contains("waits until")))
        .count();
    assert_eq!(queued, 6);
}

/// The console's replies, in order.
fn replies(pair: &Pair) -> Vec<String> {
    pair.server_actions()
        .filter_map(|a| match a {
            Action::Event(e) if e.kind == lantalk_core::server::EventKind::Reply => {
                Some(e.message.clone())
            }
            _ => None,
        })
        .collect()
}

/// The operator (the host, in host mode) shares a file from the console,
/// a member downloads it; a member's file is saved from the console; the
/// operator can withdraw any file.
#[test]
fn the_console_shares_saves_and_withdraws_files() {
    let mut pair = Pair::new(config());
    let ann = pair.connect("ann", "10.0.0.1:1", ours("ann", 0x31));
    let data = contents(CHUNK as usize + 10);
    pair.server_disk
        .local
        .insert("docs/rules.pdf".into(), data.clone());
    pair.with_server(|s, now| s.handle_console(now, "/send #lobby docs/rules.pdf"));
    let hash = whole_hash(&data);
    assert_eq!(
        replies(&pair),
        [format!(
            "Shared rules.pdf (1.0 MB, hash {hash}) with #lobby as file 1."
        )]
    );
    assert_eq!(shared_ids(&pair, ann), [1]);
    typed(&mut pair, ann, "/get 1");
    assert!(holds(pair.disk(ann).done.get("rules.pdf"), &data));

    pair.disk(ann)
        .local
        .insert("notes.txt".into(), b"hi".to_vec());
    typed(&mut pair, ann, "/send #lobby notes.txt");
    pair.with_server(|s, now| s.handle_console(now, "/files"));
    let listed = replies(&pair).pop().unwrap();
    assert!(
        listed.starts_with("Files:\n1  rules.pdf  1.0 MB  from Hub (server) for #lobby"),
        "{listed}"
    );
    assert!(
        listed.contains("\n2  notes.txt  2 B  from ann for #lobby"),
        "{listed}"
    );
    pair.with_server(|s, now| s.handle_console(now, "/get 2"));
    assert_eq!(
        pair.server_disk.done.get("notes.txt"),
        Some(&b"hi".to_vec())
    );
    assert!(replies(&pair)
        .pop()
        .unwrap()
        .starts_with("Saved notes.txt (2 B, hash "));

    pair.with_server(|s, now| s.handle_console(now, "/cancel 2"));
    assert_eq!(
        replies(&pair).pop().unwrap(),
        "File 2 (notes.txt) is no longer offered."
    );
    assert!(pair
        .events(ann)
        .any(|e| matches!(e, ClientEvent::FileRemoved { id: 2, .. })));

    pair.with_server(|s, now| s.handle_console(now, "/send #nowhere docs/rules.pdf"));
    assert_eq!(replies(&pair).pop().unwrap(), "No room #nowhere.");
    pair.with_server(|s, now| s.handle_console(now, "/send #lobby missing.pdf"));
    assert_eq!(replies(&pair).pop().unwrap(), "No such file: missing.pdf");
}
