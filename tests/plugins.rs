//! Plugins end to end, with the real `lantalk-smol` and `lantalk-std`
//! binaries and real plugin processes: the dice example answers `/roll 2d6`
//! with a number from 2 to 12; plugins that crash, hang, flood or write
//! garbage leave the chat working; a plugin never sees a room it was not
//! given; the Python SDK's and the examples' own tests pass.

use std::path::PathBuf;
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

macro_rules! plugin_tests {
    ($modname:ident, $bin:expr) => {
        mod $modname {
            plugin_tests!(@tests $bin;
                dice_answers_roll_in_a_room,
                misbehaving_plugins_leave_chat_unaffected,
                a_plugin_never_sees_a_room_it_was_not_given,
                a_shell_plugin_speaks_the_same_protocol,
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

plugin_tests!(smol, super::SMOL);
plugin_tests!(std_rt, super::STD);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli package sits inside the workspace")
        .to_path_buf()
}

fn example(file: &str) -> String {
    root()
        .join("plugins")
        .join("examples")
        .join(file)
        .display()
        .to_string()
}

/// A piped client of ours, logged in.
fn piped(bin: &str, port: u16, name: &str) -> Proc {
    let dir = TempDir::new("client");
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
    .env_remove("LANTALK_DATA_DIR");
    let p = Proc::spawn_in(format!("{} client {name}", bin_label(bin)), cmd, dir);
    p.wait_line("connected", |l| {
        l.starts_with(&format!("Connected as {name}"))
    });
    p
}

/// `[HH:MM] user: text` in the lobby: the text.
fn said_by<'a>(line: &'a str, user: &str) -> Option<&'a str> {
    let rest = line.strip_prefix('[')?.get(5..)?;
    rest.strip_prefix(&format!("] {user}: "))
}

fn registered(server: &OurServer, plugin: &str) {
    server.proc.wait_line("the plugin's registration", |l| {
        l.contains(&format!("Plugin {plugin} registered: /"))
    });
}

/// The sum in `ann rolled 2d6: 3 + 4 = 7`.
fn total(text: &str) -> Option<u32> {
    let (dice, sum) = text.strip_prefix("ann rolled 2d6: ")?.rsplit_once(" = ")?;
    let parts: Vec<u32> = dice
        .split(" + ")
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    let sum: u32 = sum.parse().ok()?;
    (parts.len() == 2
        && parts.iter().all(|d| (1..=6).contains(d))
        && parts.iter().sum::<u32>() == sum)
        .then_some(sum)
}

fn dice_answers_roll_in_a_room(bin: &str) {
    let dice = format!("python3 {}", example("dice.py"));
    let server = OurServer::start(bin, &["--plugin", &dice]);
    registered(&server, "dice");
    let mut ann = piped(bin, server.port, "ann");
    let bob = piped(bin, server.port, "bob");
    ann.send("/roll 2d6");
    for who in [&ann, &bob] {
        let line = who.wait_line("dice's answer", |l| {
            said_by(l, "dice [bot]").is_some_and(|t| t.starts_with("ann rolled 2d6: "))
        });
        let text = said_by(&line, "dice [bot]").unwrap_or_default();
        let sum = total(text).unwrap_or_else(|| panic!("not a roll of 2d6: {line:?}"));
        assert!((2..=12).contains(&sum), "{line}");
    }
    // Our client's /help lists it, with the plugin's name.
    ann.send("/help");
    ann.wait_line("/roll in /help", |l| {
        l.contains("/roll [NdM] (roll dice, like 2d6; dice bot)")
    });
    // Its name is the bot's: nobody can take it.
    let dir = TempDir::new("client");
    let mut cmd = Command::new(bin);
    cmd.args([
        "client",
        &format!("127.0.0.1:{}", server.port),
        "--name",
        "dice",
        "--accept-new",
    ])
    .arg("--data-dir")
    .arg(dir.path())
    .env_remove("LANTALK_DATA_DIR");
    let mut impostor = Proc::spawn_in("impostor", cmd, dir);
    let why = impostor.expect_failure();
    assert!(why.contains("already taken"), "{why}");
}

fn misbehaving_plugins_leave_chat_unaffected(bin: &str) {
    let dice = format!("python3 {}", example("dice.py"));
    let flood = r##"flood=yes '{"type":"say","room":"#lobby","text":"flood"}'"##;
    let server = OurServer::start(
        bin,
        &[
            "--plugin",
            &dice,
            "--plugin",
            "crash=exit 3",
            "--plugin",
            "hang=sleep 100000",
            "--plugin",
            flood,
            "--plugin",
            "garbage=yes garbage",
        ],
    );
    registered(&server, "dice");
    server.proc.wait_line("the crash restarted", |l| {
        l.contains("Plugin crash exited with status 3; starting it again in")
    });
    server.proc.wait_line("the garbage stopped", |l| {
        l.contains("Plugin garbage stopped: 10 lines in a row not understood")
    });
    server.proc.wait_line("the flood limited", |l| {
        l.contains("Plugin flood hit the rate limit")
    });
    let mut ann = piped(bin, server.port, "ann");
    let mut bob = piped(bin, server.port, "bob");
    for i in 0..5 {
        ann.send(&format!("ping {i}"));
        bob.wait_line("ann's line", |l| {
            said_by(l, "ann") == Some(&format!("ping {i}"))
        });
        bob.send(&format!("pong {i}"));
        ann.wait_line("bob's line", |l| {
            said_by(l, "bob") == Some(&format!("pong {i}"))
        });
    }
    ann.send("/roll 2d6");
    bob.wait_line("dice still answers", |l| {
        said_by(l, "dice [bot]").is_some_and(|t| t.starts_with("ann rolled 2d6: "))
    });
    ann.send("/quit");
    ann.wait_exit();
}

fn a_plugin_never_sees_a_room_it_was_not_given(bin: &str) {
    // The spy logs every event it is sent (its stderr goes to the log).
    let spy = "spy=while IFS= read -r l; do printf 'saw %s\\n' \"$l\" >&2; done";
    let server = OurServer::start(bin, &["--plugin", spy, "--plugin-rooms", "spy=#games"]);
    server.proc.wait_line("the spy's hello", |l| {
        l.contains("[spy] saw {\"type\":\"hello\"")
    });
    let mut ann = piped(bin, server.port, "ann");
    ann.send("secret in the lobby");
    ann.send("/pm ann secret to myself");
    ann.send("/join #games");
    ann.wait_line("ann in #games", |l| l.contains("You are in #games"));
    ann.send("public in games");
    let seen = server.proc.wait_line("the spy sees #games", |l| {
        l.contains("[spy] saw {\"type\":\"message\"") && l.contains("public in games")
    });
    assert!(seen.contains("\"room\":\"#games\""), "{seen}");
    assert!(
        !server
            .proc
            .has_line(|l| l.contains("[spy]") && l.contains("secret")),
        "the spy saw the lobby or a PM\n{}",
        server.proc.report()
    );
    assert!(server.proc.has_line(
        |l| l.contains("[spy] saw {\"type\":\"join\",\"room\":\"#games\",\"user\":\"ann\"}")
    ));
}

fn a_shell_plugin_speaks_the_same_protocol(bin: &str) {
    let echo = format!("sh {}", example("echo.sh"));
    let server = OurServer::start(bin, &["--plugin", &echo]);
    registered(&server, "echo");
    let mut ann = piped(bin, server.port, "ann");
    ann.send("/echo hello \"quoted\" \\ world");
    ann.wait_line("echo's answer", |l| {
        said_by(l, "echo [bot]") == Some("ann said: hello \"quoted\" \\ world")
    });
}

#[test]
fn python_sdk_and_examples_pass_their_own_tests() {
    for dir in ["plugins/python", "plugins/examples"] {
        let out = Command::new(if cfg!(windows) { "python" } else { "python3" })
            .args(["-m", "unittest", "discover", "-s", dir, "-p", "test_*.py"])
            .current_dir(root())
            .output()
            .expect("python3 runs");
        let report = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "python3 -m unittest in {dir} failed:\n{}\n{report}",
            String::from_utf8_lossy(&out.stdout),
        );
        assert!(report.contains("\nOK"), "{report}");
        assert!(!report.contains("Ran 0 tests"), "{report}");
    }
}
