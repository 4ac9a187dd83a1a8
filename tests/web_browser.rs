//! The browser client end to end (issue #17): headless Chromium (Debian's
//! chromium and chromium-driver packages, driven over W3C WebDriver by
//! `support/webdriver.rs`) opens the page the real `lantalk-smol` and
//! `lantalk-std` servers serve on their web port, and talks with terminal
//! users of ours, all on 127.0.0.1.
//!
//! The page is driven only through its DOM contract: `form#login`
//! (`#name`, `#password`, `#join`), `#status[data-state]`, `#error`,
//! `ul#rooms > li[data-room]` (`.unread`, `aria-current`), `ol#messages >
//! li.msg[data-id][data-room]` (`.from`, `.text`; `.system`),
//! `form#composer > textarea#message`, `ul#users`, `document.title`, and
//! the pins in localStorage under `lantalk.pins`.
//!
//! The `harness_*` tests check the WebDriver client itself against a tiny
//! static page served from the test. Chromium missing is a failure that says
//! how to install it (`cargo xtask test` does), never a silent pass.
//!
//! Browsers are heavy: the tests of this file take turns (one at a time).
//! `LANTALK_SCREENSHOTS=DIR` keeps `desktop.png` and `phone.png` of a joined
//! page.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/ours.rs"]
mod ours;
#[path = "support/proc.rs"]
mod proc;
#[path = "support/tempdir.rs"]
mod tempdir;
#[path = "support/webdriver.rs"]
mod webdriver;

use ours::{bin_label, SMOL, STD};
use proc::{Proc, START, STEP};
use tempdir::TempDir;
use webdriver::{keys, Browser};

/// The server password in the tests that have one.
const PW: &str = "web-horse-battery-staple";
/// The environment variable the programs read it from.
const PW_ENV: &str = "LT_WEB_PW";

// ═════════════════════════════════════════════════════════════════════════════
// Instantiation for both runtimes
// ═════════════════════════════════════════════════════════════════════════════

macro_rules! browser_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            browser_tests!(@tests $bin;
                two_browsers_and_a_terminal_talk_in_two_rooms,
                history_appears_on_join,
                the_page_reconnects_after_a_restart,
                a_wrong_password_is_refused,
                a_changed_server_key_is_refused,
                the_wire_carries_neither_text_nor_password,
                a_phone_sized_viewport_fits,
                the_accessibility_contract_holds,
                screenshots_of_a_joined_page,
                a_host_approves_a_browser_by_its_code,
            );
        }
    };
    (@tests $bin:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                let _turn = super::one_at_a_time();
                super::$name($bin)
            }
        )*
    };
}

browser_tests!(smol, super::SMOL);
browser_tests!(std_rt, super::STD);

/// Browsers take turns: two cores do not run four Chromiums well.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

// ═════════════════════════════════════════════════════════════════════════════
// Our server with its web port, and terminal users
// ═════════════════════════════════════════════════════════════════════════════

/// A running `BIN server` on 127.0.0.1 that serves the web client.
struct Server {
    proc: Proc,
    port: u16,
    /// From the `Web client: http://ADDR:PORT/` line.
    web_port: u16,
    /// From the banner's `Key fingerprint:` line.
    fingerprint: String,
}

impl Server {
    /// `BIN server --bind 127.0.0.1 --no-discovery --port 0 --data-dir DIR`
    /// (the web port ephemeral too), the password in the environment when
    /// given.
    fn start(bin: &str, dir: &Path, password: Option<&str>) -> Server {
        Server::start_on(bin, dir, None, password)
    }

    /// The same on given ports (`--port P --web-port W`), as after a
    /// restart. A port just released may still be taken for a moment: that
    /// is retried, a bounded number of times.
    fn start_on(
        bin: &str,
        dir: &Path,
        ports: Option<(u16, u16)>,
        password: Option<&str>,
    ) -> Server {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut cmd = Command::new(bin);
            cmd.args(["server", "--bind", "127.0.0.1", "--no-discovery"]);
            match ports {
                Some((port, web)) => cmd
                    .args(["--port", &port.to_string()])
                    .args(["--web-port", &web.to_string()]),
                None => cmd.args(["--port", "0"]),
            };
            cmd.arg("--data-dir")
                .arg(dir)
                .env_remove("LANTALK_DATA_DIR")
                .env_remove("LANTALK_LOG_LEVEL")
                .current_dir(dir);
            if let Some(pw) = password {
                cmd.args(["--password-env", PW_ENV]).env(PW_ENV, pw);
            }
            let mut proc = Proc::spawn(format!("{} server", bin_label(bin)), cmd);
            match Server::banner(&mut proc) {
                Ok((port, web_port, fingerprint)) => {
                    if let Some(want) = ports {
                        assert_eq!((port, web_port), want, "listens where it was told");
                    }
                    return Server {
                        proc,
                        port,
                        web_port,
                        fingerprint,
                    };
                }
                Err(why) => {
                    let busy = proc.err.text().contains("already in use");
                    if ports.is_some() && busy && attempt < 40 {
                        drop(proc);
                        thread::sleep(Duration::from_millis(250));
                        continue;
                    }
                    panic!(
                        "the server did not start serving the web client: {why}\n\
                         (it must print `Web client: http://ADDR:PORT/` at start, and \
                         take --web-port N; issue #17)\n{}",
                        proc.report()
                    );
                }
            }
        }
    }

    /// Waits for the banner: (chat port, web port, key fingerprint).
    fn banner(proc: &mut Proc) -> Result<(u16, u16, String), String> {
        let deadline = Instant::now() + START;
        loop {
            let text = format!("{}\n{}", proc.out.text(), proc.err.text());
            let port = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Listening on 127.0.0.1:"))
                .and_then(|p| p.trim().parse::<u16>().ok());
            let web = text
                .lines()
                .find_map(|l| l.split_once("Web client: ").map(|(_, url)| url.trim()))
                .and_then(|url| url.strip_prefix("http://"))
                .and_then(|rest| rest.trim_end_matches('/').rsplit_once(':'))
                .and_then(|(_, p)| p.parse::<u16>().ok());
            let fingerprint = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Key fingerprint: "))
                .map(|f| f.trim().to_string());
            if let (Some(p), Some(w), Some(f)) = (port, web, fingerprint) {
                return Ok((p, w, f));
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                proc.out.wait_closed(STEP);
                proc.err.wait_closed(STEP);
                return Err(format!("it exited ({status})"));
            }
            if Instant::now() > deadline {
                return Err("timed out".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's address (its origin, and where it finds `/ws`).
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.web_port)
    }

    fn ports(&self) -> (u16, u16) {
        (self.port, self.web_port)
    }

    fn stop(mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

/// A terminal user of ours in piped mode (one line typed per message or
/// command, plain lines out), logged in.
fn terminal(bin: &str, port: u16, name: &str, password: Option<&str>) -> Proc {
    let dir = TempDir::new("terminal");
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
    .env_remove("LANTALK_DATA_DIR")
    .current_dir(dir.path());
    if let Some(pw) = password {
        cmd.args(["--password-env", PW_ENV]).env(PW_ENV, pw);
    }
    let p = Proc::spawn_in(format!("{} client {name}", bin_label(bin)), cmd, dir);
    p.wait_line("connected", |l| {
        l.starts_with(&format!("Connected as {name}"))
    });
    p
}

/// A terminal's line of the lobby: `[HH:MM] user: text`.
fn lobby_line(user: &str, text: &str) -> impl Fn(&str) -> bool {
    let tail = format!("] {user}: {text}");
    move |l: &str| l.starts_with('[') && l.ends_with(&tail) && l.len() == tail.len() + 6
}

/// A terminal's line of another room: `#team [HH:MM] user: text`.
fn room_line(room: &str, user: &str, text: &str) -> impl Fn(&str) -> bool {
    let (room, tail) = (format!("{room} ["), format!("] {user}: {text}"));
    move |l: &str| {
        l.starts_with(&room) && l.ends_with(&tail) && l.len() == room.len() + 5 + tail.len()
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// The page, through its DOM contract
// ═════════════════════════════════════════════════════════════════════════════

/// One `#messages > li.msg` as the page shows it.
#[derive(Debug, Clone, PartialEq)]
struct Msg {
    id: String,
    room: String,
    from: String,
    text: String,
    system: bool,
}

const MESSAGES_JS: &str = r#"
    const t = (li, s) => { const e = li.querySelector(s); return e ? e.textContent.trim() : ''; };
    return Array.from(document.querySelectorAll('#messages li.msg')).map(li => ({
        id: li.getAttribute('data-id') || '', room: li.getAttribute('data-room') || '',
        from: t(li, '.from'), text: t(li, '.text'), system: li.classList.contains('system') }));
"#;

/// What `#messages` shows now (only the current room, by the contract).
fn messages(b: &Browser) -> Vec<Msg> {
    let v = b.execute(MESSAGES_JS, json!([]));
    v.as_array()
        .into_iter()
        .flatten()
        .map(|m| Msg {
            id: m["id"].as_str().unwrap_or_default().to_string(),
            room: m["room"].as_str().unwrap_or_default().to_string(),
            from: m["from"].as_str().unwrap_or_default().to_string(),
            text: m["text"].as_str().unwrap_or_default().to_string(),
            system: m["system"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// `#status`'s `data-state`.
fn state(b: &Browser) -> String {
    b.execute(
        "const s = document.querySelector('#status'); return s ? s.getAttribute('data-state') : null;",
        json!([]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn wait_state(b: &Browser, want: &str) {
    b.wait_until(&format!("#status[data-state={want:?}]"), STEP, |b| {
        (state(b) == want).then_some(())
    });
}

fn error_text(b: &Browser) -> String {
    b.execute(
        "const e = document.querySelector('#error'); return e ? e.textContent.trim() : '';",
        json!([]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Opens the page and fills in the login form (the name field first
/// emptied: the page may prefill it), then presses Join. Returns early if
/// the page refuses before there is a form to fill.
fn login(b: &Browser, url: &str, name: &str, password: Option<&str>) {
    b.navigate(url);
    let ready = b.wait_until("the login form (or a refusal)", STEP, |b| {
        let v = b.execute(
            r#"
            const j = document.querySelector('#join');
            const s = document.querySelector('#status');
            if (s && s.getAttribute('data-state') === 'refused') return 'refused';
            if (j && !j.disabled && j.getClientRects().length > 0) return 'form';
            return null;
            "#,
            json!([]),
        );
        v.as_str().map(str::to_string)
    });
    if ready == "refused" {
        return;
    }
    let field = b.find("#name");
    field.clear();
    field.send_keys(name);
    if let Some(pw) = password {
        let field = b.find("#password");
        field.clear();
        field.send_keys(pw);
    }
    b.find("#join").click();
}

/// Logs in and waits until the page says joined.
fn join(b: &Browser, url: &str, name: &str, password: Option<&str>) {
    login(b, url, name, password);
    wait_state(b, "joined");
}

/// Types `text` into the message box and presses Enter.
fn say(b: &Browser, text: &str) {
    let b_box = b.find("#message");
    b_box.send_keys(&format!("{text}{}", keys::ENTER));
}

/// Waits until `#messages` shows `from`'s `text`; returns it.
fn wait_msg(b: &Browser, from: &str, text: &str) -> Msg {
    b.wait_until(&format!("{from}'s line {text:?} in #messages"), STEP, |b| {
        messages(b)
            .into_iter()
            .find(|m| !m.system && m.from == from && m.text == text)
    })
}

fn current_room(b: &Browser) -> String {
    b.execute(
        r#"const li = document.querySelector('#rooms li[aria-current="true"]');
           return li ? li.getAttribute('data-room') : null;"#,
        json!([]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn wait_current_room(b: &Browser, room: &str) {
    b.wait_until(&format!("{room} to be the current room"), STEP, |b| {
        (current_room(b) == room).then_some(())
    });
}

/// Clicks a room in `#rooms` and waits until it is the current one.
fn switch_room(b: &Browser, room: &str) {
    b.wait_until(&format!("{room} in #rooms"), STEP, |b| {
        b.try_find(&format!("#rooms li[data-room=\"{room}\"]"))
            .map(|_| ())
    });
    b.find(&format!("#rooms li[data-room=\"{room}\"]")).click();
    wait_current_room(b, room);
}

/// The unread count `#rooms` shows for `room` (0 when empty or absent).
fn unread(b: &Browser, room: &str) -> u64 {
    b.execute(
        r#"const u = document.querySelector(`#rooms li[data-room="${arguments[0]}"] .unread`);
           return u ? u.textContent.trim() : '';"#,
        json!([room]),
    )
    .as_str()
    .and_then(|t| t.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
    .unwrap_or(0)
}

fn users(b: &Browser) -> Vec<String> {
    b.execute(
        "return Array.from(document.querySelectorAll('#users li')).map(li => li.textContent.trim());",
        json!([]),
    )
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(|v| v.as_str().map(str::to_string))
    .collect()
}

/// The page's `lantalk.pins` (origin → {key, fingerprint}), `{}` when none.
fn pins(b: &Browser) -> Value {
    let raw = b.execute("return localStorage.getItem('lantalk.pins');", json!([]));
    raw.as_str()
        .map(|s| {
            serde_json::from_str(s)
                .unwrap_or_else(|e| panic!("lantalk.pins is not JSON ({e}): {s}"))
        })
        .unwrap_or_else(|| json!({}))
}

/// Every `data-id` shown more than once (empty ids aside).
fn duplicate_ids(msgs: &[Msg]) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for m in msgs.iter().filter(|m| !m.id.is_empty()) {
        *seen.entry(&m.id).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id.to_string())
        .collect()
}

// ═════════════════════════════════════════════════════════════════════════════
// A recording relay (browser ⇄ server), loopback only
// ═════════════════════════════════════════════════════════════════════════════

/// Relays every connection made to it to `127.0.0.1:target`, recording the
/// bytes of each direction.
struct Recorder {
    port: u16,
    /// (browser → server, server → browser).
    seen: Arc<Mutex<(Vec<u8>, Vec<u8>)>>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Recorder {
    fn start(target: u16) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (s, st, cs) = (Arc::clone(&seen), Arc::clone(&stop), Arc::clone(&conns));
        thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut cs = cs.lock().unwrap();
                    cs.push(client.try_clone().unwrap());
                    cs.push(server.try_clone().unwrap());
                }
                let (up_s, down_s) = (Arc::clone(&s), Arc::clone(&s));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || pump(client, server, &up_s, true));
                thread::spawn(move || pump(s2, c2, &down_s, false));
            }
        });
        Recorder {
            port,
            seen,
            stop,
            conns,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn up(&self) -> Vec<u8> {
        self.seen.lock().unwrap().0.clone()
    }

    fn down(&self) -> Vec<u8> {
        self.seen.lock().unwrap().1.clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, seen: &Mutex<(Vec<u8>, Vec<u8>)>, up: bool) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut seen = seen.lock().unwrap();
            if up { &mut seen.0 } else { &mut seen.1 }.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let hay = String::from_utf8_lossy(hay).to_ascii_lowercase();
    hay.contains(&needle.to_ascii_lowercase())
}

// ═════════════════════════════════════════════════════════════════════════════
// The tests, against our servers
// ═════════════════════════════════════════════════════════════════════════════

fn two_browsers_and_a_terminal_talk_in_two_rooms(bin: &str) {
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), None);
    let url = server.url();
    let alice = Browser::start("alice");
    let bob = alice.another("bob");
    join(&alice, &url, "alice", None);
    join(&bob, &url, "bob", None);
    let mut carol = terminal(bin, server.port, "carol", None);

    // The lobby: everyone hears everyone.
    assert_eq!(current_room(&alice), "#lobby", "one starts in the lobby");
    carol.send("hello from the terminal");
    for b in [&alice, &bob] {
        let m = wait_msg(b, "carol", "hello from the terminal");
        assert_eq!(m.room, "#lobby", "{m:?}");
        assert!(!m.id.is_empty(), "a line from the server has its id: {m:?}");
    }
    say(&alice, "hello from a browser");
    carol.wait_line("alice's line", lobby_line("alice", "hello from a browser"));
    wait_msg(&bob, "alice", "hello from a browser");
    for b in [&alice, &bob] {
        b.wait_until("alice, bob and carol in #users", STEP, |b| {
            let u = users(b);
            ["alice", "bob", "carol"]
                .iter()
                .all(|n| u.iter().any(|x| x == n))
                .then_some(())
        });
    }

    // #team, made by a typed /join: the page switches to it.
    say(&alice, "/join #team");
    wait_current_room(&alice, "#team");
    assert!(
        alice.try_find("#rooms li[data-room=\"#team\"]").is_some(),
        "#team is listed"
    );
    say(&bob, "/join #team");
    wait_current_room(&bob, "#team");
    carol.send("/join #team");
    carol.wait_line("carol in #team", |l| {
        l.starts_with("#team ") && l.contains("You are in #team")
    });
    say(&alice, "for the team only");
    let m = wait_msg(&bob, "alice", "for the team only");
    assert_eq!(m.room, "#team", "{m:?}");
    carol.wait_line(
        "alice's line in #team",
        room_line("#team", "alice", "for the team only"),
    );
    // #messages shows only the current room.
    for b in [&alice, &bob] {
        let shown = messages(b);
        assert!(
            shown.iter().all(|m| m.room == "#team"),
            "{}: only #team while in #team: {shown:?}",
            b.label
        );
    }

    // The lobby again, from the terminal: counted as unread in a browser
    // that is in #team, shown when it switches back.
    carol.send("/switch 1");
    carol.send("meanwhile in the lobby");
    bob.wait_until("an unread line in #lobby", STEP, |b| {
        (unread(b, "#lobby") >= 1).then_some(())
    });
    assert!(
        !messages(&bob)
            .iter()
            .any(|m| m.text == "meanwhile in the lobby"),
        "a lobby line is not shown in #team"
    );
    assert!(
        bob.title().starts_with('(') && bob.title().ends_with(") LanTalk"),
        "the title counts unread lines: {:?}",
        bob.title()
    );
    switch_room(&bob, "#lobby");
    let m = wait_msg(&bob, "carol", "meanwhile in the lobby");
    assert_eq!(m.room, "#lobby");
    bob.wait_until("#lobby's unread count cleared", STEP, |b| {
        (unread(b, "#lobby") == 0).then_some(())
    });
    assert!(
        !messages(&bob).iter().any(|m| m.text == "for the team only"),
        "a #team line is not shown in the lobby"
    );

    // bob speaks in the lobby; alice, still in #team, sees it on switching.
    say(&bob, "bob in the lobby");
    carol.wait_line("bob's lobby line", lobby_line("bob", "bob in the lobby"));
    switch_room(&alice, "#lobby");
    wait_msg(&alice, "bob", "bob in the lobby");
    wait_msg(&alice, "carol", "meanwhile in the lobby");

    // And back to #team, where the team's line still is.
    switch_room(&alice, "#team");
    wait_msg(&alice, "alice", "for the team only");
    assert!(
        !carol.has_line(|l| l.contains("for the team only") && !l.starts_with("#team ")),
        "the terminal shows #team's line only as #team's"
    );
    for b in [&alice, &bob] {
        let d = duplicate_ids(&messages(b));
        assert!(d.is_empty(), "{}: shown twice: {d:?}", b.label);
    }

    // In a private conversation nothing typed lands in a public room:
    // `/me` is refused there, `//literal` goes privately.
    say(&alice, "/pm bob psst");
    switch_room(&bob, "@alice");
    wait_msg(&bob, "alice", "psst");
    say(&bob, "/me waves");
    bob.wait_until("/me refused in a private view", STEP, |b| {
        messages(b)
            .iter()
            .any(|m| m.text.contains("/me is for rooms"))
            .then_some(())
    });
    say(&bob, "//literal, privately");
    // The people list is made of buttons (a keyboard reaches them): bob's
    // opens the conversation with him.
    let opened = alice.execute(
        "const b = [...document.querySelectorAll('#users button.user')]
             .find((x) => x.textContent === 'bob');
         if (!b) return false;
         b.focus(); const focused = document.activeElement === b; b.click(); return focused;",
        json!([]),
    );
    assert_eq!(opened, json!(true), "a focusable button for bob in #users");
    wait_current_room(&alice, "@bob");
    wait_msg(&alice, "bob", "/literal, privately");
    assert!(
        !carol.has_line(|l| l.contains("waves") || l.contains("literal, privately")),
        "a line typed in a private view reached a room"
    );
}

fn history_appears_on_join(bin: &str) {
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), None);
    let mut carol = terminal(bin, server.port, "carol", None);
    let dee = terminal(bin, server.port, "dee", None);
    carol.send("said before anyone opened the page");
    // Once dee has it, the server has it.
    dee.wait_line(
        "carol's line",
        lobby_line("carol", "said before anyone opened the page"),
    );
    let alice = Browser::start("alice");
    join(&alice, &server.url(), "alice", None);
    let m = wait_msg(&alice, "carol", "said before anyone opened the page");
    assert_eq!(m.room, "#lobby", "{m:?}");
    assert!(!m.id.is_empty(), "history lines carry their ids: {m:?}");
    assert_eq!(current_room(&alice), "#lobby");
}

fn the_page_reconnects_after_a_restart(bin: &str) {
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), None);
    let (url, ports, key) = (server.url(), server.ports(), server.fingerprint.clone());
    let alice = Browser::start("alice");
    join(&alice, &url, "alice", None);
    // alice is in #team too, looking at the lobby.
    say(&alice, "/join #team");
    wait_current_room(&alice, "#team");
    switch_room(&alice, "#lobby");
    let mut carol = terminal(bin, server.port, "carol", None);
    carol.send("before the restart");
    wait_msg(&alice, "carol", "before the restart");
    drop(carol);

    // The server goes away; the page notices and keeps trying.
    server.stop();
    wait_state(&alice, "reconnecting");
    // The live region says the state once; the countdown beside it is
    // hidden from screen readers, which would announce every second.
    let spoken = alice.execute(
        "const s = document.querySelector('#status');
         const t = s.querySelector('.tick');
         return [s.firstChild.textContent, t ? t.getAttribute('aria-hidden') : null];",
        json!([]),
    );
    assert_eq!(
        spoken,
        json!(["Connection lost. Reconnecting…", "true"]),
        "what #status announces"
    );

    // Back on the same ports, with the same data directory (and key).
    let server = Server::start_on(bin, dir.path(), Some(ports), None);
    assert_eq!(server.fingerprint, key, "the same identity after a restart");
    let mut carol = terminal(bin, server.port, "carol", None);
    carol.send("/join #team");
    carol.wait_line("carol in #team", |l| {
        l.starts_with("#team ") && l.contains("You are in #team")
    });
    carol.send("for the team while you were away");
    carol.send("/switch 1");
    carol.send("while you were away");
    wait_state(&alice, "joined");
    wait_msg(&alice, "carol", "while you were away");
    // #team's line, caught up on rejoining (or live, if alice was back
    // first), is unread there: she is looking at the lobby.
    alice.wait_until("#team's missed line counted as unread", STEP, |b| {
        (unread(b, "#team") >= 1).then_some(())
    });
    assert_eq!(current_room(&alice), "#lobby");
    say(&alice, "back again");
    carol.wait_line("alice after the restart", lobby_line("alice", "back again"));
    wait_msg(&alice, "alice", "back again");

    // History after the rejoin adds nothing already shown.
    thread::sleep(Duration::from_secs(1));
    let shown = messages(&alice);
    let dups = duplicate_ids(&shown);
    assert!(
        dups.is_empty(),
        "shown twice (data-id): {dups:?}\n{shown:#?}"
    );
    for text in ["before the restart", "while you were away", "back again"] {
        let n = shown.iter().filter(|m| !m.system && m.text == text).count();
        assert_eq!(n, 1, "{text:?} shown {n} times:\n{shown:#?}");
    }
    assert!(
        error_text(&alice).is_empty(),
        "no error after a restart with the same key: {}",
        alice.report()
    );
}

fn a_wrong_password_is_refused(bin: &str) {
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), Some(PW));
    let alice = Browser::start("alice");
    login(&alice, &server.url(), "alice", Some("not-the-password"));
    wait_state(&alice, "refused");
    let error = error_text(&alice);
    assert!(
        error.to_lowercase().contains("password"),
        "#error says it is the password: {error:?}"
    );
    assert_eq!(
        alice.find("#error").attr("role").as_deref(),
        Some("alert"),
        "#error is an alert"
    );
    assert!(
        !server.proc.out.text().contains("alice joined"),
        "alice never joined"
    );

    // The right one lets her in.
    join(&alice, &server.url(), "alice", Some(PW));
    let carol = terminal(bin, server.port, "carol", Some(PW));
    say(&alice, "the right password");
    carol.wait_line("alice's line", lobby_line("alice", "the right password"));
}

fn a_changed_server_key_is_refused(bin: &str) {
    let first_dir = TempDir::new("server");
    let server = Server::start(bin, first_dir.path(), None);
    let (url, ports, key) = (server.url(), server.ports(), server.fingerprint.clone());
    let alice = Browser::start("alice");
    join(&alice, &url, "alice", None);

    // The page pinned the key, under its origin: the key itself (what
    // it compares) and the fingerprint the banner prints (what it shows).
    let origin = url.trim_end_matches('/').to_string();
    let pinned = pins(&alice);
    let pin = pinned[&origin].clone();
    let (Some(fingerprint), Some(_)) = (pin["fingerprint"].as_str(), pin["key"].as_str()) else {
        panic!("lantalk.pins has no {{key, fingerprint}} pin for {origin}: {pinned}");
    };
    assert_eq!(fingerprint, key, "the pin is the server's key");

    // Another server (another key) on the same ports.
    server.stop();
    let other_dir = TempDir::new("impostor");
    let other = Server::start_on(bin, other_dir.path(), Some(ports), None);
    assert_ne!(other.fingerprint, key, "a different identity");
    let carol = terminal(bin, other.port, "carol", None);

    // The page, reconnecting by itself, refuses loudly…
    wait_state(&alice, "refused");
    let error = error_text(&alice).to_lowercase();
    assert!(
        error.contains("key") && error.contains("changed"),
        "#error says the key changed: {error:?}"
    );
    // …and so does a fresh load of the page.
    login(&alice, &url, "alice", None);
    wait_state(&alice, "refused");
    let error = error_text(&alice).to_lowercase();
    assert!(
        error.contains("key") && error.contains("changed"),
        "#error says the key changed after a reload: {error:?}"
    );
    // The pin is kept, not replaced by the new key.
    assert_eq!(pins(&alice)[&origin], pin, "the pin stays");

    // Nothing reached the impostor: no join, no line.
    thread::sleep(Duration::from_secs(1));
    assert!(
        !carol.has_line(|l| l.contains("alice")),
        "the other server's users never hear of alice:\n{}",
        carol.out.text()
    );
    assert!(
        !other.proc.out.text().contains("alice") && !other.proc.err.text().contains("alice"),
        "the other server never learnt alice's name:\n{}",
        other.proc.report()
    );
}

fn the_wire_carries_neither_text_nor_password(bin: &str) {
    const TO_SERVER: &str = "the eagle lands at noon";
    const FROM_SERVER: &str = "the owl flies at midnight";
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), Some(PW));
    let relay = Recorder::start(server.web_port);
    let alice = Browser::start("alice");
    // The page is loaded through the relay: its own origin is the relay's,
    // so its WebSocket goes through it too.
    join(&alice, &relay.url(), "alice", Some(PW));
    let carol = terminal(bin, server.port, "carol", Some(PW));
    say(&alice, TO_SERVER);
    carol.wait_line("alice's line", lobby_line("alice", TO_SERVER));
    let mut carol = carol;
    carol.send(FROM_SERVER);
    wait_msg(&alice, "carol", FROM_SERVER);
    drop(alice);

    let (up, down) = (relay.up(), relay.down());
    // The control: the relay did carry the page and its WebSocket.
    assert!(
        contains(&up, b"GET / HTTP/1.1"),
        "the page came through the relay"
    );
    assert!(
        contains_ci(&up, "upgrade: websocket"),
        "so did the WebSocket"
    );
    assert!(contains(&down, b"101 "), "the upgrade was answered");
    for (what, bytes) in [("browser → server", &up), ("server → browser", &down)] {
        for secret in [TO_SERVER, FROM_SERVER, PW] {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{what}: {secret:?} travelled in the clear"
            );
        }
    }
}

fn a_phone_sized_viewport_fits(bin: &str) {
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), None);
    let alice = Browser::start("alice");
    alice.set_viewport(360, 740);
    join(&alice, &server.url(), "alice", None);
    let mut carol = terminal(bin, server.port, "carol", None);
    let long = format!(
        "a long line without spaces: https://example.invalid/{}",
        "x".repeat(120)
    );
    carol.send(&long);
    carol.send("a short one");
    wait_msg(&alice, "carol", &long);
    wait_msg(&alice, "carol", "a short one");

    let width = alice
        .execute("return document.documentElement.scrollWidth;", json!([]))
        .as_i64()
        .unwrap_or(i64::MAX);
    assert!(
        width <= 360,
        "the page is {width} px wide on a 360 px screen\n{}",
        alice.report()
    );
    // The message box is on the screen and takes a line.
    let message = alice.find("#message");
    assert!(message.displayed(), "the message box is shown");
    let rect = alice.execute(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];",
        json!([message.arg()]),
    );
    let r: Vec<f64> = rect
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        r[0] >= 0.0 && r[2] <= 360.0 && r[1] >= 0.0 && r[3] <= 740.0 && r[2] - r[0] >= 150.0,
        "the message box is inside the 360x740 screen and wide enough: {r:?}"
    );
    say(&alice, "typed on a phone");
    carol.wait_line("alice's line", lobby_line("alice", "typed on a phone"));
    wait_msg(&alice, "alice", "typed on a phone");
}

fn the_accessibility_contract_holds(bin: &str) {
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), None);
    let alice = Browser::start("alice");
    alice.navigate(&server.url());
    alice.wait_until("the login form", STEP, |b| {
        b.try_find("form#login #join").map(|_| ())
    });
    assert_eq!(
        alice.find("#name").computed_label(),
        "Name",
        "the name field's label"
    );
    let password = alice.find("#password");
    assert_eq!(
        password.computed_label(),
        "Password",
        "the password field's label"
    );
    assert_eq!(password.attr("type").as_deref(), Some("password"));
    assert_eq!(alice.find("#error").attr("role").as_deref(), Some("alert"));
    assert!(alice.try_find("#status").is_some(), "#status");

    join(&alice, &server.url(), "alice", None);
    let message = alice.find("#message");
    assert_eq!(message.attr("aria-label").as_deref(), Some("Message"));
    assert_eq!(
        message.computed_label(),
        "Message",
        "the message box's label"
    );
    let log = alice.find("#messages");
    let live = log.attr("aria-live").unwrap_or_default();
    assert!(
        live == "polite" || live == "assertive",
        "#messages is a live region: aria-live={live:?}"
    );
    assert_eq!(
        log.attr("role").as_deref(),
        Some("log"),
        "#messages is a log"
    );
    // Shift+Enter is a new line, not a send.
    message.send_keys(&format!(
        "first line{}{}{}second line",
        keys::SHIFT,
        keys::ENTER,
        keys::NULL
    ));
    let value = message.prop("value");
    assert_eq!(
        value.as_str(),
        Some("first line\nsecond line"),
        "Shift+Enter adds a line"
    );
    // Enter sends it: a chat line is one line, so each line of the box
    // goes as a message of its own, in order (as a pasted block does in
    // the terminal client).
    message.send_keys(keys::ENTER);
    alice.wait_until("both lines sent, in order", STEP, |b| {
        let texts: Vec<String> = messages(b)
            .into_iter()
            .filter(|m| m.from == "alice")
            .map(|m| m.text)
            .collect();
        (texts == ["first line", "second line"]).then_some(())
    });
    assert_eq!(
        message.prop("value").as_str(),
        Some(""),
        "the box is emptied once sent"
    );
}

fn screenshots_of_a_joined_page(bin: &str) {
    let keep = std::env::var_os("LANTALK_SCREENSHOTS").map(PathBuf::from);
    let dir = TempDir::new("server");
    let server = Server::start(bin, dir.path(), None);
    let alice = Browser::start("alice");
    alice.set_viewport(1280, 800);
    join(&alice, &server.url(), "alice", None);
    let mut carol = terminal(bin, server.port, "carol", None);
    carol.send("morning! the build is green again");
    say(&alice, "great, shipping after lunch");
    carol.send("/join #team");
    carol.wait_line("carol in #team", |l| l.contains("You are in #team"));
    carol.send("team: retro at 4");
    say(&alice, "/join #team");
    wait_current_room(&alice, "#team");
    wait_msg(&alice, "carol", "team: retro at 4");
    say(&alice, "I'll bring the notes");
    wait_msg(&alice, "alice", "I'll bring the notes");
    carol.send("/switch 1");
    carol.send("lunch at 12?");
    alice.wait_until("an unread line in #lobby", STEP, |b| {
        (unread(b, "#lobby") >= 1).then_some(())
    });

    let scratch = TempDir::new("screenshots");
    let out = |name: &str| -> PathBuf {
        let sub = format!("{}-{name}", bin_label(bin));
        match &keep {
            Some(d) => d.join(if bin == SMOL { name.to_string() } else { sub }),
            None => scratch.path().join(sub),
        }
    };
    let desktop = out("desktop.png");
    alice.screenshot(&desktop);
    alice.set_viewport(390, 844);
    let width = alice
        .execute("return document.documentElement.scrollWidth;", json!([]))
        .as_i64()
        .unwrap_or(i64::MAX);
    assert!(
        width <= 390,
        "the page is {width} px wide on a 390 px screen"
    );
    // The sidebar slides out of view when the layout turns narrow
    // (a 0.15 s transition): let it finish, or it is caught halfway.
    thread::sleep(Duration::from_millis(500));
    let phone = out("phone.png");
    alice.screenshot(&phone);
    for p in [&desktop, &phone] {
        let png = std::fs::read(p).unwrap();
        assert!(png.len() > 1000, "{} is a picture", p.display());
    }
    if let Some(d) = &keep {
        eprintln!("screenshots kept in {}", d.display());
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// The harness itself, against a static page of the test's own
// ═════════════════════════════════════════════════════════════════════════════

/// A page that plays the DOM contract's part with no server behind it.
const STATIC_PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LanTalk</title>
<style>body{margin:0;font:16px sans-serif}textarea{width:100%;box-sizing:border-box}
#messages li{overflow-wrap:anywhere}</style></head>
<body>
<p id="status" data-state="connecting">Connecting…</p>
<p id="error" role="alert"></p>
<form id="login"><label for="name">Name</label><input id="name">
<label for="password">Password</label><input id="password" type="password">
<button id="join">Join</button></form>
<ul id="rooms"><li data-room="#lobby" aria-current="true">#lobby <span class="unread"></span></li></ul>
<ol id="messages" role="log" aria-live="polite"></ol>
<form id="composer"><textarea id="message" aria-label="Message" rows="2"></textarea></form>
<ul id="users"></ul>
<script>
const $ = s => document.querySelector(s);
const status = (state, text) => { $('#status').setAttribute('data-state', state); $('#status').textContent = text; };
$('#name').value = localStorage.getItem('name') || '';
setTimeout(() => status('secured', 'Secured'), 50);
let me = '', id = 0;
$('#login').addEventListener('submit', e => {
  e.preventDefault();
  if ($('#password').value === 'wrong') {
    status('refused', 'Refused'); $('#error').textContent = 'Wrong password'; return;
  }
  me = $('#name').value; localStorage.setItem('name', me);
  const u = document.createElement('li'); u.textContent = me; $('#users').append(u);
  console.log('joined as ' + me);
  setTimeout(() => status('joined', 'Joined as ' + me), 100);
});
$('#message').addEventListener('keydown', e => {
  if (e.key !== 'Enter' || e.shiftKey) return;
  e.preventDefault();
  const text = $('#message').value; $('#message').value = '';
  const li = document.createElement('li');
  li.className = 'msg'; li.setAttribute('data-id', String(++id)); li.setAttribute('data-room', '#lobby');
  li.innerHTML = '<span class="from"></span> <span class="text"></span>';
  li.querySelector('.from').textContent = me; li.querySelector('.text').textContent = text;
  $('#messages').append(li);
  fetch('/said?' + encodeURIComponent(text));
});
</script></body></html>
"##;

/// Serves [`STATIC_PAGE`] on a loopback port; notes the paths asked for.
struct StaticSite {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
}

impl StaticSite {
    fn start() -> StaticSite {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    log.lock().unwrap().push(path.clone());
                    let (kind, body) = if path == "/" {
                        ("text/html; charset=utf-8", STATIC_PAGE)
                    } else {
                        ("text/plain", "ok")
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        StaticSite { port, asked }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

#[test]
fn harness_drives_the_static_page() {
    let _turn = one_at_a_time();
    let site = StaticSite::start();
    let profiles;
    {
        let ann = Browser::start("ann");
        let bob = ann.another("bob");
        profiles = [ann.profile().to_path_buf(), bob.profile().to_path_buf()];
        assert_ne!(profiles[0], profiles[1], "a profile each");

        join(&ann, &site.url(), "ann", None);
        assert_eq!(ann.title(), "LanTalk");
        assert_eq!(users(&ann), ["ann"]);
        // localStorage is the browser's own: bob's page knows no name.
        bob.navigate(&site.url());
        assert_eq!(bob.find("#name").prop("value").as_str(), Some(""));
        ann.refresh();
        ann.wait_until("the name prefilled", STEP, |b| {
            (b.find("#name").prop("value").as_str() == Some("ann")).then_some(())
        });
        join(&ann, &site.url(), "ann", None);

        // Typing: Enter sends, Shift+Enter is a new line.
        say(&ann, "hello harness");
        let m = wait_msg(&ann, "ann", "hello harness");
        assert_eq!((m.id.as_str(), m.room.as_str()), ("1", "#lobby"));
        let message = ann.find("#message");
        message.send_keys(&format!(
            "one{}{}{}two",
            keys::SHIFT,
            keys::ENTER,
            keys::NULL
        ));
        assert_eq!(message.prop("value").as_str(), Some("one\ntwo"));
        message.clear();
        assert_eq!(message.prop("value").as_str(), Some(""));
        ann.wait_until("the page's request", STEP, |_| {
            site.asked
                .lock()
                .unwrap()
                .iter()
                .any(|p| p == "/said?hello%20harness")
                .then_some(())
        });

        // Elements, labels, scripts.
        assert_eq!(ann.find("#name").computed_label(), "Name");
        assert_eq!(ann.find("#password").computed_label(), "Password");
        assert_eq!(message.computed_label(), "Message");
        assert_eq!(
            ann.find("#messages").attr("aria-live").as_deref(),
            Some("polite")
        );
        assert_eq!(ann.find_all("#login input").len(), 2);
        assert!(ann.try_find("#nothing-here").is_none());
        assert_eq!(ann.find("#status").text(), "Joined as ann");
        assert_eq!(
            ann.execute("return arguments[0] + 1;", json!([41])),
            json!(42)
        );
        assert_eq!(
            ann.execute_async(
                "const done = arguments[arguments.length - 1]; setTimeout(() => done('later'), 10);",
                json!([])
            ),
            json!("later")
        );
        assert!(
            ann.console().iter().any(|l| l.contains("joined as ann")),
            "the console is captured: {:?}",
            ann.console()
        );

        // A refusal, as the page shows it.
        login(&bob, &site.url(), "bob", Some("wrong"));
        wait_state(&bob, "refused");
        assert_eq!(error_text(&bob), "Wrong password");

        // Sizes and pictures.
        ann.set_viewport(360, 740);
        let v = ann.execute(
            "return [innerWidth, innerHeight, document.documentElement.scrollWidth];",
            json!([]),
        );
        assert_eq!(v, json!([360, 740, 360]));
        let shots = TempDir::new("shots");
        let png = shots.path().join("phone.png");
        ann.screenshot(&png);
        assert!(std::fs::read(&png).unwrap().len() > 1000);

        // A failed wait says what the page showed.
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ann.wait_until("the impossible", Duration::from_millis(300), |_| None::<()>)
        }));
        let why = failed.expect_err("the wait fails");
        let why = why.downcast_ref::<String>().cloned().unwrap_or_default();
        for part in [
            "the impossible",
            "[joined] Joined as ann",
            "hello harness",
            "ann",
        ] {
            assert!(
                why.contains(part),
                "{part:?} in the failure message:\n{why}"
            );
        }
    }
    // Dropped: no Chromium of theirs is left running.
    let deadline = Instant::now() + STEP;
    for p in &profiles {
        let needle = format!("--user-data-dir={}", p.display());
        while !webdriver::processes_mentioning(&needle).is_empty() {
            assert!(
                Instant::now() < deadline,
                "Chromium left running for {}",
                p.display()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn harness_recorder_sees_both_directions() {
    let _turn = one_at_a_time();
    let site = StaticSite::start();
    let relay = Recorder::start(site.port);
    let ann = Browser::start("ann");
    join(&ann, &relay.url(), "ann", None);
    say(&ann, "plain as day");
    wait_msg(&ann, "ann", "plain as day");
    ann.wait_until("the request through the relay", STEP, |_| {
        contains(&relay.up(), b"GET /said?plain%20as%20day").then_some(())
    });
    // What the static page sends in the clear, the recorder sees: its
    // silence about our page's traffic means something.
    assert!(contains(&relay.up(), b"GET / HTTP/1.1"));
    assert!(contains(&relay.down(), b"<title>LanTalk</title>"));
}

#[test]
fn harness_missing_browser_fails_and_says_how_to_install() {
    let nowhere = Path::new("/nonexistent/chromium");
    let (_, driver) = webdriver::programs();
    let err = webdriver::Driver::start_with(nowhere, &driver)
        .err()
        .expect("no browser, no driver");
    assert!(err.contains("cargo xtask test"), "{err}");
    assert!(
        err.contains("apt-get install -y chromium chromium-driver"),
        "{err}"
    );
    let err = webdriver::Driver::start_with(
        &webdriver::programs().0,
        Path::new("/nonexistent/chromedriver"),
    )
    .err()
    .expect("no chromedriver, no driver");
    assert!(err.contains("chromedriver"), "{err}");
}

#[test]
fn harness_decodes_base64() {
    assert_eq!(webdriver::base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(webdriver::base64_decode("aGVsbG8h").unwrap(), b"hello!");
    assert_eq!(webdriver::base64_decode("").unwrap(), b"");
    assert!(webdriver::base64_decode("a*b").is_none());
}

/// Host mode: a browser is a peer like any other. The page shows the code
/// the host is asked about, waits, and chats once the host says yes.
fn a_host_approves_a_browser_by_its_code(bin: &str) {
    let dir = TempDir::new("host");
    let mut cmd = Command::new(bin);
    cmd.args([
        "host",
        "--bind",
        "127.0.0.1",
        "--no-discovery",
        "--port",
        "0",
    ])
    .args(["--name", "Hub"])
    .arg("--data-dir")
    .arg(dir.path())
    .env_remove("LANTALK_DATA_DIR")
    .current_dir(dir.path());
    let mut host = Proc::spawn(format!("{} host", bin_label(bin)), cmd);
    let (_, web_port, _) = Server::banner(&mut host)
        .unwrap_or_else(|why| panic!("the host did not start: {why}\n{}", host.report()));
    let alice = Browser::start("alice");
    login(
        &alice,
        &format!("http://127.0.0.1:{web_port}/"),
        "alice",
        None,
    );

    // Both show the same code; the page waits meanwhile.
    let asked = host.wait_line("the question about alice", |l| {
        l.starts_with("Incoming connection from ")
            && l.contains(" as alice, ")
            && l.ends_with(". Approve? (y/n)")
    });
    let code = asked
        .split(", code ")
        .nth(1)
        .map(|r| r.trim_end_matches(". Approve? (y/n)").to_string())
        .unwrap_or_else(|| panic!("no code in {asked:?}"));
    let shown = alice.wait_until("the code on the page", STEP, |b| {
        let v = b.execute(
            "const c = document.querySelector('#code-box'); \
             return c && !c.hidden ? document.querySelector('#code').textContent.trim() : '';",
            json!([]),
        );
        v.as_str().filter(|c| !c.is_empty()).map(str::to_string)
    });
    assert_eq!(shown, code, "the page shows the code the host compares");
    assert_ne!(state(&alice), "joined", "not in before the host says yes");

    host.send("y");
    wait_state(&alice, "joined");
    say(&alice, "hello host");
    host.wait_line("alice's line on the console", |l| {
        l.ends_with("alice: hello host")
    });
    host.send("hi alice");
    let line = alice.wait_until("the host's line", STEP, |b| {
        messages(b).into_iter().find(|m| m.text == "hi alice")
    });
    assert!(line.from.starts_with("Hub"), "from the host: {line:?}");
}
