//! LanTalk's third runtime: the core's client in a browser tab.
//!
//! The page (`web/dist/app.js`) owns the WebSockets, the timers and the
//! document; this crate owns every decision, by running the same
//! [`lantalk_core`] client as the terminal does: Noise XX, the password
//! check, pinning, rooms, history and files. The boundary is a handful of
//! plain `extern "C"` functions over linear memory rather than
//! wasm-bindgen: the page passes bytes and JSON commands in a buffer and
//! takes outputs out of another, so the build needs nothing but `cargo`
//! and the module imports nothing at all.
//!
//! Outputs ([`session::Output`]) are framed for the page by their first
//! byte: `{` a JSON object, `1` bytes for the chat socket, `2` a side
//! socket's id (4 bytes, little-endian) and its bytes, `3` a finished
//! download (2-byte name length, the name, the bytes).

pub mod events;
pub mod files;
pub mod session;

use std::cell::RefCell;

use lantalk_core::driver::{ClientInput, Command};
use lantalk_core::transfer::SideId;
use serde_json::{json, Value};

use session::{Output, Session};

// Every random byte the core uses comes from the seed the page hands in
// (`crypto.getRandomValues`); a draw on ambient randomness would be a bug,
// so it fails instead of being served.
#[cfg(target_arch = "wasm32")]
getrandom::register_custom_getrandom!(no_ambient_randomness);

#[cfg(target_arch = "wasm32")]
fn no_ambient_randomness(_: &mut [u8]) -> Result<(), getrandom::Error> {
    Err(getrandom::Error::UNSUPPORTED)
}

#[derive(Default)]
struct Tab {
    session: Session,
    /// Where the page writes what it hands in.
    input: Vec<u8>,
    /// The last output, for the page to read.
    output: Vec<u8>,
}

thread_local! {
    static TAB: RefCell<Tab> = RefCell::new(Tab::default());
}

fn with_tab<T>(f: impl FnOnce(&mut Tab) -> T) -> T {
    TAB.with(|tab| f(&mut tab.borrow_mut()))
}

/// A buffer of `len` bytes for the page to write its next input into; its
/// address. Valid until the next call.
#[no_mangle]
pub extern "C" fn lt_input(len: u32) -> *mut u8 {
    with_tab(|tab| {
        tab.input.clear();
        tab.input.resize(len as usize, 0);
        tab.input.as_mut_ptr()
    })
}

/// The page's clock, set before each call that feeds something.
#[no_mangle]
pub extern "C" fn lt_clock(now_ms: f64, unix_ms: f64, hour: u32, minute: u32) {
    with_tab(|tab| {
        tab.session
            .set_clock(now_ms, unix_ms, hour.min(23) as u8, minute.min(59) as u8)
    });
}

/// Bytes from the chat socket (`side` < 0) or a side socket, in the input
/// buffer.
#[no_mangle]
pub extern "C" fn lt_bytes(side: i32) {
    with_tab(|tab| {
        let Tab { session, input, .. } = tab;
        match u64::try_from(side) {
            Ok(side) => session.feed(ClientInput::SideBytes(SideId(side), input)),
            Err(_) => session.feed(ClientInput::Bytes(input)),
        }
    });
}

/// A command, as JSON in the input buffer. Returns 0, or the length of an
/// error object waiting in the output buffer.
#[no_mangle]
pub extern "C" fn lt_command() -> u32 {
    with_tab(|tab| {
        let result = serde_json::from_slice::<Value>(&tab.input)
            .map_err(|e| format!("not a command: {e}"))
            .and_then(|command| run(&mut tab.session, &command));
        match result {
            Ok(()) => 0,
            Err(error) => {
                tab.output = json!({ "t": "error", "error": error })
                    .to_string()
                    .into_bytes();
                tab.output.len() as u32
            }
        }
    })
}

/// A file the person picked: the input buffer holds its name
/// (`name_len` bytes of UTF-8) followed by its bytes. Returns as
/// [`lt_command`] does.
#[no_mangle]
pub extern "C" fn lt_pick(name_len: u32, modified_ms: f64) -> u32 {
    with_tab(|tab| {
        let split = (name_len as usize).min(tab.input.len());
        let name = String::from_utf8_lossy(&tab.input[..split]).into_owned();
        let bytes = tab.input[split..].to_vec();
        match tab.session.pick(name, bytes, modified_ms as i64) {
            Ok(()) => 0,
            Err(error) => {
                tab.output = json!({ "t": "error", "error": error })
                    .to_string()
                    .into_bytes();
                tab.output.len() as u32
            }
        }
    })
}

fn run(session: &mut Session, command: &Value) -> Result<(), String> {
    let side = || command["side"].as_u64().map(SideId).ok_or("no side id");
    match command["t"].as_str().unwrap_or("") {
        "start" => session.start(command)?,
        "line" => session.feed(ClientInput::Command(Command::Line(text(command)?))),
        "password" => session.feed(ClientInput::Command(Command::Password(text(command)?))),
        "trust" => session.feed(ClientInput::Command(Command::Trust(
            command["yes"].as_bool() == Some(true),
        ))),
        "quit" => session.feed(ClientInput::Command(Command::EndOfInput)),
        "timeout" => session.feed(ClientInput::Timeout),
        "closed" => session.feed(ClientInput::Closed),
        "side_opened" => session.feed(ClientInput::SideOpened(side()?)),
        "side_drained" => session.feed(ClientInput::SideDrained(side()?)),
        "side_closed" => session.feed(ClientInput::SideClosed(side()?)),
        other => return Err(format!("unknown command {other:?}")),
    }
    Ok(())
}

fn text(command: &Value) -> Result<String, String> {
    command["text"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no text".to_string())
}

/// Takes the next output into the output buffer; its length, 0 when there
/// is nothing to do.
#[no_mangle]
pub extern "C" fn lt_next() -> u32 {
    with_tab(|tab| {
        let Some(output) = tab.session.poll_output() else {
            return 0;
        };
        tab.output.clear();
        match output {
            Output::Json(value) => tab.output.extend_from_slice(value.to_string().as_bytes()),
            Output::Transmit(bytes) => {
                tab.output.push(1);
                tab.output.extend_from_slice(&bytes);
            }
            Output::SideTransmit(side, bytes) => {
                tab.output.push(2);
                tab.output.extend_from_slice(&(side as u32).to_le_bytes());
                tab.output.extend_from_slice(&bytes);
            }
            Output::Save(saved) => {
                let name = &saved.name.as_bytes()[..saved.name.len().min(u16::MAX as usize)];
                tab.output.push(3);
                tab.output
                    .extend_from_slice(&(name.len() as u16).to_le_bytes());
                tab.output.extend_from_slice(name);
                tab.output.extend_from_slice(&saved.bytes);
            }
        }
        tab.output.len() as u32
    })
}

/// The output buffer's address (after [`lt_next`] or an error).
#[no_mangle]
pub extern "C" fn lt_output() -> *const u8 {
    with_tab(|tab| tab.output.as_ptr())
}

/// When the page should call `timeout`, in its `performance.now()`
/// milliseconds; negative: no deadline.
#[no_mangle]
pub extern "C" fn lt_deadline() -> f64 {
    with_tab(|tab| tab.session.timeout_ms().unwrap_or(-1.0))
}
