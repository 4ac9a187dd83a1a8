//! A small W3C WebDriver client for the browser tests (shared test support):
//! Debian's `chromedriver` (package chromium-driver) driving a headless
//! `/usr/bin/chromium` (package chromium), spoken to in HTTP/1.1 by hand over
//! `std::net` with serde_json. Nothing here downloads a browser: when the
//! packages are missing, starting a browser fails and says how to get them
//! (`cargo xtask test` installs them; so does CI).
//!
//! Included with `#[path = "support/webdriver.rs"] mod webdriver;`, next to
//! `proc.rs` and `tempdir.rs`, which it uses.
//!
//! One [`Driver`] (a chromedriver process) may hold several sessions
//! ([`Browser`]s, one Chromium each), every one with a fresh profile of its
//! own (so localStorage is never shared). A browser's session is deleted
//! when it drops; the driver, and any Chromium left over, is killed when the
//! last browser of it drops.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::proc::Proc;
use crate::tempdir::TempDir;

/// Where Debian's packages put them; `LANTALK_CHROMIUM` and
/// `LANTALK_CHROMEDRIVER` point elsewhere (a developer's own build, say).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Bound for one WebDriver call (a page load included).
const CALL: Duration = Duration::from_secs(90);
/// How often [`Browser::wait_until`] looks again.
const POLL: Duration = Duration::from_millis(100);

/// The W3C name under which an element reference travels.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Keys for [`Element::send_keys`] (the WebDriver key codepoints).
pub mod keys {
    pub const ENTER: &str = "\u{E007}";
    pub const SHIFT: &str = "\u{E008}";
    /// Releases the modifiers held so far.
    pub const NULL: &str = "\u{E000}";
    pub const TAB: &str = "\u{E004}";
    pub const BACKSPACE: &str = "\u{E003}";
}

/// The programs to run: `LANTALK_CHROMIUM` / `LANTALK_CHROMEDRIVER` when
/// set, else Debian's paths.
pub fn programs() -> (PathBuf, PathBuf) {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    (
        pick("LANTALK_CHROMIUM", CHROMIUM),
        pick("LANTALK_CHROMEDRIVER", CHROMEDRIVER),
    )
}

/// Why the browser tests cannot run here, said so that a developer knows
/// what to do (they fail, never pass silently).
fn missing(what: &str, path: &Path) -> String {
    format!(
        "the browser tests need {what}, and {} does not exist or is not a program.\n\
         Run `cargo xtask test` (it installs what the tests need), or install Debian's \
         packages yourself:\n\n    sudo apt-get install -y chromium chromium-driver\n\n\
         (CI installs them; LANTALK_CHROMIUM and LANTALK_CHROMEDRIVER may point to \
         other builds.)",
        path.display()
    )
}

fn is_program(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// HTTP/1.1, by hand
// ═════════════════════════════════════════════════════════════════════════════

/// One request to `127.0.0.1:port` (a fresh connection, closed after):
/// the status and the body as JSON (`null` when empty).
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let what = format!("{method} {path}");
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
        .map_err(|e| format!("{what}: cannot connect to chromedriver on port {port}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{what}: cannot send: {e}"))?;
    // chromedriver may keep the connection open despite `Connection:
    // close`: read until the body is complete, not until the end.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(split) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            if length.is_some_and(|n| raw.len() >= split + 4 + n)
                || (head.contains("chunked") && raw.ends_with(b"0\r\n\r\n"))
            {
                break;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return Err(format!(
                    "{what}: no complete answer within {timeout:?}: {e}"
                ))
            }
        }
    }
    let split = find(&raw, b"\r\n\r\n").ok_or_else(|| {
        format!(
            "{what}: not an HTTP answer: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{what}: bad status line in {head:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if name == "content-length" {
                length = value.parse::<usize>().ok();
            }
        }
    }
    if chunked {
        rest = dechunk(&rest).ok_or_else(|| format!("{what}: bad chunked body"))?;
    } else if let Some(n) = length {
        rest.truncate(n);
    }
    let value = if rest.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&rest).map_err(|e| {
            format!(
                "{what}: the answer is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&rest)
            )
        })?
    };
    Ok((status, value))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(body, b"\r\n")?;
        let size = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// A WebDriver answer's `value`, or its error as text.
fn answer(what: &str, result: Result<(u16, Value), String>) -> Result<Value, WdError> {
    let (status, mut body) = result.map_err(|message| WdError {
        error: "transport".into(),
        message,
    })?;
    let value = body
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if status == 200 {
        return Ok(value);
    }
    Err(WdError {
        error: value["error"]
            .as_str()
            .unwrap_or("unknown error")
            .to_string(),
        message: format!(
            "{what}: HTTP {status}: {}",
            value["message"].as_str().unwrap_or(&value.to_string())
        ),
    })
}

/// A WebDriver error: its code (`no such element`, …) and message.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.error)
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// chromedriver
// ═════════════════════════════════════════════════════════════════════════════

/// A running chromedriver on a loopback port; killed (with every Chromium
/// it started) when the last [`Browser`] of it drops.
pub struct Driver {
    proc: Proc,
    pub port: u16,
    chromium: PathBuf,
}

/// A loopback port free a moment ago (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Driver {
    /// Starts chromedriver (the installed one, see [`programs`]).
    pub fn start() -> Result<Arc<Driver>, String> {
        let (chromium, chromedriver) = programs();
        Driver::start_with(&chromium, &chromedriver)
    }

    pub fn start_with(chromium: &Path, chromedriver: &Path) -> Result<Arc<Driver>, String> {
        if !is_program(chromium) {
            return Err(missing("Chromium", chromium));
        }
        if !is_program(chromedriver) {
            return Err(missing("chromedriver", chromedriver));
        }
        let mut last = String::new();
        // chromedriver wants a port of its own choosing: one free a moment
        // ago may be taken by the time it binds, so a few are tried.
        for _ in 0..8 {
            let port = free_port();
            let mut cmd = Command::new(chromedriver);
            cmd.arg(format!("--port={port}"));
            // Its own process group, so that every Chromium it starts can be
            // killed with it, even if it dies without cleaning up.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let mut proc = Proc::spawn(format!("chromedriver :{port}"), cmd);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = proc.child.try_wait() {
                    proc.out.wait_closed(Duration::from_secs(2));
                    last = format!(
                        "chromedriver exited ({status}): {}{}",
                        proc.out.text(),
                        proc.err.text()
                    );
                    break;
                }
                let ready = http(port, "GET", "/status", None, Duration::from_secs(5))
                    .ok()
                    .is_some_and(|(s, v)| s == 200 && v["value"]["ready"] == true);
                if ready {
                    return Ok(Arc::new(Driver {
                        proc,
                        port,
                        chromium: chromium.to_path_buf(),
                    }));
                }
                if Instant::now() > deadline {
                    last = format!("chromedriver never became ready\n{}", proc.report());
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            kill_group(&mut proc);
        }
        Err(format!("cannot start chromedriver: {last}"))
    }

    /// A new session: a fresh headless Chromium with a profile of its own.
    /// `label` names it in messages.
    pub fn session(self: &Arc<Driver>, label: &str) -> Result<Browser, String> {
        let profile = TempDir::new(&format!("chromium-{label}"));
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-features=Translate,MediaRouter,OptimizationHints".into(),
            "--password-store=basic".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": false,
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": self.chromium.to_string_lossy(),
                        "args": args,
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "timeouts": { "script": 30000, "pageLoad": 60000, "implicit": 0 },
                }
            }
        });
        let value = answer(
            "POST /session",
            http(self.port, "POST", "/session", Some(&caps), CALL),
        )
        .map_err(|e| format!("cannot start Chromium for {label}: {e}"))?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in {value}"))?
            .to_string();
        Ok(Browser {
            driver: Arc::clone(self),
            id,
            label: label.to_string(),
            console: Mutex::new(Vec::new()),
            profile,
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.proc);
    }
}

/// Kills a process started in a group of its own, and the whole group.
fn kill_group(proc: &mut Proc) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{killpg, Signal};
        let _ = killpg(
            nix::unistd::Pid::from_raw(proc.child.id() as i32),
            Signal::SIGKILL,
        );
    }
    let _ = proc.child.kill();
    let _ = proc.child.wait();
}

/// The ids of the running processes whose command line mentions `needle`
/// (Linux: /proc); empty elsewhere.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

// ═════════════════════════════════════════════════════════════════════════════
// A browser (one WebDriver session)
// ═════════════════════════════════════════════════════════════════════════════

/// One headless Chromium (a WebDriver session) with a profile of its own.
/// Its methods panic on a WebDriver error, with what the page showed.
pub struct Browser {
    driver: Arc<Driver>,
    id: String,
    pub label: String,
    /// Console lines read so far (reading the log empties it in Chromium).
    console: Mutex<Vec<String>>,
    profile: TempDir,
}

/// An element of the page, found by CSS.
pub struct Element<'a> {
    browser: &'a Browser,
    pub id: String,
    /// The selector it was found by, for messages.
    pub css: String,
}

impl Browser {
    /// A browser with a chromedriver of its own. Panics (never skips) when
    /// Chromium or chromedriver is missing, saying how to install them.
    pub fn start(label: &str) -> Browser {
        let driver = Driver::start().unwrap_or_else(|e| panic!("{e}"));
        driver.session(label).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Another browser from the same chromedriver (a profile of its own).
    pub fn another(&self, label: &str) -> Browser {
        self.driver.session(label).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn profile(&self) -> &Path {
        self.profile.path()
    }

    /// A raw WebDriver call under this session (`path` after
    /// `/session/ID`).
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let full = format!("/session/{}{path}", self.id);
        let what = format!("{}: {method} {path}", self.label);
        answer(
            &what,
            http(self.driver.port, method, &full, body.as_ref(), CALL),
        )
    }

    /// [`Browser::try_call`], panicking on an error with what the page
    /// showed.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("{e}\n{}", self.report()),
        }
    }

    pub fn navigate(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn title(&self) -> String {
        self.call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn refresh(&self) {
        self.call("POST", "/refresh", Some(json!({})));
    }

    fn element(&self, value: &Value, css: &str) -> Element<'_> {
        Element {
            browser: self,
            id: value[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("{}: not an element: {value}", self.label))
                .to_string(),
            css: css.to_string(),
        }
    }

    /// The first element matching `css`, if there is one now.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        match self.try_call("POST", "/element", Some(body)) {
            Ok(v) => Some(self.element(&v, css)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("{e}\n{}", self.report()),
        }
    }

    /// The first element matching `css`; panics when there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css).unwrap_or_else(|| {
            panic!(
                "{}: no element matches {css:?}\n{}",
                self.label,
                self.report()
            )
        })
    }

    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        let v = self.call("POST", "/elements", Some(body));
        v.as_array()
            .map(|a| a.iter().map(|e| self.element(e, css)).collect())
            .unwrap_or_default()
    }

    /// Runs `js` (a function body: `return …`) with `args` (`arguments[i]`).
    pub fn execute(&self, js: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": args })),
        )
    }

    pub fn try_execute(&self, js: &str, args: Value) -> Result<Value, WdError> {
        self.try_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": args })),
        )
    }

    /// Runs `js`, which ends by calling `arguments[arguments.length - 1]`
    /// with the result (within the script timeout, 30 s).
    pub fn execute_async(&self, js: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({ "script": js, "args": args })),
        )
    }

    /// The outer window's size.
    pub fn set_window_rect(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// The viewport's size (`innerWidth` × `innerHeight`): the window is
    /// sized, then corrected by whatever the browser's frame takes.
    pub fn set_viewport(&self, width: u32, height: u32) {
        let inner = |b: &Browser| {
            let v = b.execute("return [window.innerWidth, window.innerHeight];", json!([]));
            (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0))
        };
        self.set_window_rect(width, height);
        for _ in 0..3 {
            let (w, h) = inner(self);
            if (w, h) == (width as i64, height as i64) {
                return;
            }
            let rect = self.call("GET", "/window/rect", None);
            let ow = rect["width"].as_i64().unwrap_or(width as i64);
            let oh = rect["height"].as_i64().unwrap_or(height as i64);
            self.set_window_rect(
                (ow + width as i64 - w).max(1) as u32,
                (oh + height as i64 - h).max(1) as u32,
            );
        }
        let (w, h) = inner(self);
        assert_eq!(
            (w, h),
            (width as i64, height as i64),
            "{}: cannot make the viewport {width}x{height}",
            self.label
        );
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("{}: the screenshot is not base64", self.label));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Every line the page wrote to the console so far (`LEVEL message`),
    /// when chromedriver can tell (empty otherwise).
    pub fn console(&self) -> Vec<String> {
        let fresh = self
            .try_call("POST", "/se/log", Some(json!({ "type": "browser" })))
            .or_else(|_| self.try_call("POST", "/log", Some(json!({ "type": "browser" }))));
        let mut all = self.console.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(Value::Array(entries)) = fresh {
            for e in entries {
                all.push(format!(
                    "{} {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or_default()
                ));
            }
        }
        all.clone()
    }

    /// Polls `f` until it finds what it looks for; after `timeout`, panics
    /// with `what` and what the page showed ([`Browser::report`]).
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = f(self) {
                return found;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: timed out after {timeout:?} waiting for {what}\n{}",
                    self.label,
                    self.report()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// What the page shows, for failure messages: its address and title,
    /// `#status` (state and text), `#error`, the last lines of `#messages`
    /// and of the console.
    pub fn report(&self) -> String {
        const JS: &str = r#"
            const text = s => { const e = document.querySelector(s); return e ? e.textContent.trim() : null; };
            const st = document.querySelector('#status');
            const lines = Array.from(document.querySelectorAll('#messages > li')).slice(-10)
                .map(li => `[${li.getAttribute('data-room') || ''} id=${li.getAttribute('data-id') || ''}${li.classList.contains('system') ? ' system' : ''}] ${li.textContent.trim().replace(/\s+/g, ' ')}`);
            return { url: location.href, title: document.title,
                     state: st ? st.getAttribute('data-state') : null, status: st ? st.textContent.trim() : null,
                     error: text('#error'), messages: lines };
        "#;
        let mut out = format!("── what {} showed ──\n", self.label);
        match self.try_execute(JS, json!([])) {
            Ok(v) => {
                out.push_str(&format!(
                    "url: {}\ntitle: {}\n#status: [{}] {}\n#error: {}\n#messages (last lines):\n",
                    v["url"].as_str().unwrap_or("?"),
                    v["title"].as_str().unwrap_or("?"),
                    v["state"].as_str().unwrap_or("(none)"),
                    v["status"].as_str().unwrap_or("(no #status)"),
                    v["error"].as_str().unwrap_or("(no #error)"),
                ));
                for l in v["messages"].as_array().into_iter().flatten() {
                    out.push_str(&format!("  {}\n", l.as_str().unwrap_or_default()));
                }
            }
            Err(e) => out.push_str(&format!("(cannot read the page: {e})\n")),
        }
        let console = self.console();
        out.push_str("console (last lines):\n");
        for l in &console[console.len().saturating_sub(15)..] {
            out.push_str(&format!("  {l}\n"));
        }
        out.push_str(&format!("── end of {} ──", self.label));
        out
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closes Chromium; bounded, and skipped if the driver is gone.
        let path = format!("/session/{}", self.id);
        let _ = http(
            self.driver.port,
            "DELETE",
            &path,
            None,
            Duration::from_secs(20),
        );
        // Anything of this profile's Chromium still running is ours to end
        // (found through /proc: Linux only, where the browser tests run).
        #[cfg(unix)]
        {
            let needle = format!("--user-data-dir={}", self.profile.path().display());
            for pid in processes_mentioning(&needle) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Element<'_> {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    fn get(&self, tail: &str) -> Value {
        self.browser.call("GET", &self.path(tail), None)
    }

    pub fn text(&self) -> String {
        self.get("/text").as_str().unwrap_or_default().to_string()
    }

    pub fn attr(&self, name: &str) -> Option<String> {
        self.get(&format!("/attribute/{name}"))
            .as_str()
            .map(str::to_string)
    }

    pub fn prop(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}"))
    }

    pub fn displayed(&self) -> bool {
        self.get("/displayed").as_bool().unwrap_or(false)
    }

    pub fn enabled(&self) -> bool {
        self.get("/enabled").as_bool().unwrap_or(false)
    }

    /// Its accessible name, as the browser computes it for assistive
    /// technology (labels, aria-label…).
    pub fn computed_label(&self) -> String {
        self.get("/computedlabel")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn computed_role(&self) -> String {
        self.get("/computedrole")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn click(&self) {
        self.browser
            .call("POST", &self.path("/click"), Some(json!({})));
    }

    /// Types `text` (see [`keys`] for Enter, Shift…).
    pub fn send_keys(&self, text: &str) {
        self.browser
            .call("POST", &self.path("/value"), Some(json!({ "text": text })));
    }

    pub fn clear(&self) {
        self.browser
            .call("POST", &self.path("/clear"), Some(json!({})));
    }

    /// This element as an argument for [`Browser::execute`].
    pub fn arg(&self) -> Value {
        json!({ ELEMENT: self.id })
    }
}

/// Standard base64 (padding optional); `None` when malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
