//! Project chores, run as `cargo xtask COMMAND` (an alias in
//! `.cargo/config.toml`):
//!
//! * `cargo xtask test [ARGS…]`: the one command that runs every test on a
//!   fresh machine. Some end-to-end tests need tools besides Rust (tmux for
//!   the terminal tests, python3 with venv for the LanTalk 2.0 interop
//!   tests, iproute2's `ip` for the discovery tests in network namespaces,
//!   Debian's chromium and chromium-driver for the browser tests);
//!   missing ones are installed with apt-get when that is possible without
//!   asking (root, or passwordless sudo), else the exact command to install
//!   them is printed and nothing runs. Then `cargo test --workspace ARGS…`,
//!   and one closing line, `tests: N passed, M failed`, summed over every
//!   test binary (cargo's own last line is only the doc tests').
//! * `cargo xtask msrv`: fails if a package of the workspace does not
//!   declare the workspace's `rust-version`, or a dependency declares a
//!   newer one than ours (only the stable toolchain is installed in CI, so
//!   this and clippy's `incompatible_msrv` lint are how the MSRV is kept
//!   honest).
//! * `cargo xtask web [--check]`: builds the browser client's WebAssembly
//!   into `web/dist/` (see `web.rs`); `--check` fails if the committed one
//!   does not match its source.

use std::env;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

mod web;

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let command = args.next().map(|a| a.to_string_lossy().into_owned());
    let rest: Vec<OsString> = args.collect();
    let result = match command.as_deref() {
        Some("test") => test(&rest),
        Some("msrv") => msrv(),
        Some("web") => web::web(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask test [ARGS for cargo test…]\n       cargo xtask msrv\n       \
                 cargo xtask web [--check]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (this crate lives in `xtask/` under it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

/// The cargo that runs us (so `cargo +toolchain xtask` keeps its toolchain).
fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

// ═════════════════════════════════════════════════════════════════════════════
// cargo xtask test
// ═════════════════════════════════════════════════════════════════════════════

/// A tool some tests need, and the Debian packages that provide it.
struct Tool {
    what: &'static str,
    needed_by: &'static str,
    present: fn() -> bool,
    packages: &'static [&'static str],
}

const TOOLS: &[Tool] = &[
    Tool {
        what: "tmux",
        needed_by: "the terminal tests (tests/tui.rs)",
        present: || runs("tmux", &["-V"]),
        packages: &["tmux"],
    },
    Tool {
        what: "python3 with venv and ensurepip",
        needed_by: "the LanTalk 2.0 interop tests (a venv with lantalk from PyPI)",
        present: || runs("python3", &["-c", "import venv, ensurepip"]),
        packages: &["python3", "python3-venv"],
    },
    Tool {
        what: "ip (iproute2)",
        needed_by: "the discovery tests in network namespaces (tests/discovery.rs)",
        present: || {
            ["ip", "/usr/sbin/ip", "/sbin/ip"]
                .iter()
                .any(|ip| runs(ip, &["-V"]))
        },
        packages: &["iproute2"],
    },
    Tool {
        what: "chromium and chromedriver",
        needed_by: "the browser tests (tests/web_browser.rs), which drive a headless Chromium",
        present: || {
            runs("/usr/bin/chromium", &["--version"])
                && runs("/usr/bin/chromedriver", &["--version"])
        },
        packages: &["chromium", "chromium-driver"],
    },
];

/// Whether `program ARGS` runs and succeeds (its output discarded).
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test(extra: &[OsString]) -> Result<ExitCode, String> {
    ensure_tools()?;
    // Every test binary runs even after one fails, so that the closing
    // `tests: N passed, M failed` counts them all (cargo stops at the first
    // failing binary of a package otherwise, and hides the rest).
    let keep_going = (!extra.iter().any(|a| a == "--no-fail-fast")).then_some("--no-fail-fast");
    let mut child = cargo()
        .args(["test", "--workspace"])
        .args(keep_going)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut totals = Totals::default();
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut out = std::io::stdout();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let _ = out.write_all(&line);
        let _ = out.flush();
        totals.add_line(&String::from_utf8_lossy(&line));
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for cargo test: {e}"))?;
    println!(
        "\ntests: {} passed, {} failed",
        totals.passed, totals.failed
    );
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Installs the missing tools when that is possible without asking, else
/// says how and stops.
fn ensure_tools() -> Result<(), String> {
    let missing: Vec<&Tool> = TOOLS.iter().filter(|t| !(t.present)()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().flat_map(|t| t.packages).copied().collect();
    let mut why = String::from("some tests need tools that are missing here:\n");
    for t in &missing {
        why.push_str(&format!("  - {}, for {}\n", t.what, t.needed_by));
    }
    let apt = runs("apt-get", &["--version"]);
    let sudo: Option<&[&str]> = if is_root() {
        Some(&[])
    } else if apt && runs("sudo", &["-n", "true"]) {
        Some(&["sudo", "-n"])
    } else {
        None
    };
    match (apt, sudo) {
        (true, Some(prefix)) => {
            eprintln!("{why}Installing {} with apt-get…", packages.join(" "));
            apt_get(prefix, &["update", "-qq"])?;
            let mut install = vec!["install", "-y", "-qq"];
            install.extend(&packages);
            apt_get(prefix, &install)?;
            let still: Vec<&str> = TOOLS
                .iter()
                .filter(|t| !(t.present)())
                .map(|t| t.what)
                .collect();
            if still.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "still missing after installing: {}",
                    still.join(", ")
                ))
            }
        }
        (true, None) => Err(format!(
            "{why}Install them with:\n\n    sudo apt-get install -y {}\n\nthen run \
             `cargo xtask test` again.",
            packages.join(" ")
        )),
        (false, _) => Err(format!(
            "{why}Install them with your system's package manager (on Debian or Ubuntu: \
             `sudo apt-get install -y {}`), then run `cargo xtask test` again.",
            packages.join(" ")
        )),
    }
}

fn apt_get(prefix: &[&str], args: &[&str]) -> Result<(), String> {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.push("apt-get");
    argv.extend(args);
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", argv.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", argv.join(" ")))
    }
}

/// Whether we run as root (Unix: `id -u` says 0). Elsewhere, never.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Tests passed and failed, summed over cargo's `test result:` lines.
#[derive(Default, Debug, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds `test result: ok. 25 passed; 0 failed; 1 ignored; …`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        for pair in words.windows(2) {
            let n = pair[0].parse::<u64>().ok();
            match (n, pair[1].trim_end_matches([';', ','])) {
                (Some(n), "passed") => self.passed += n,
                (Some(n), "failed") => self.failed += n,
                _ => {}
            }
        }
    }
}

// ═════════════════════════════════════════════════════════════════════════════
// cargo xtask msrv
// ═════════════════════════════════════════════════════════════════════════════

fn msrv() -> Result<ExitCode, String> {
    let out = cargo()
        .args(["metadata", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed ({})", out.status));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cannot read cargo metadata's output: {e}"))?;
    let report = check_msrv(&meta)?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// The check itself, on `cargo metadata` output: every workspace member
/// declares the same rust-version, and no package in the dependency graph
/// (any platform, dev and build dependencies included) needs a newer one.
fn check_msrv(meta: &serde_json::Value) -> Result<String, String> {
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .ok_or("no workspace_members in cargo metadata")?
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"]
        .as_array()
        .ok_or("no packages in cargo metadata")?;
    let mut ours: Option<(Version, String)> = None;
    let mut without = Vec::new();
    for p in packages {
        if !members.contains(&p["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let name = p["name"].as_str().unwrap_or("?");
        let Some(v) = p["rust_version"].as_str() else {
            without.push(name.to_string());
            continue;
        };
        let parsed = Version::parse(v).ok_or(format!("{name}: bad rust-version {v:?}"))?;
        match &ours {
            None => ours = Some((parsed, v.to_string())),
            Some((o, ov)) if *o != parsed => {
                return Err(format!(
                    "the workspace's packages disagree on rust-version ({ov} and {v} in \
                     {name}); use `rust-version.workspace = true` in each"
                ))
            }
            Some(_) => {}
        }
    }
    if !without.is_empty() {
        return Err(format!(
            "these packages declare no rust-version: {} (add `rust-version.workspace = true`)",
            without.join(", ")
        ));
    }
    let (ours, ours_text) = ours.ok_or("no workspace package declares a rust-version")?;
    let mut newer = Vec::new();
    let mut checked = 0;
    for p in packages {
        if members.contains(&p["id"].as_str().unwrap_or_default()) {
            continue;
        }
        checked += 1;
        let Some(v) = p["rust_version"].as_str() else {
            continue;
        };
        if Version::parse(v).is_some_and(|dep| dep > ours) {
            newer.push(format!(
                "{} {} needs Rust {v}",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?")
            ));
        }
    }
    if newer.is_empty() {
        Ok(format!(
            "msrv: rust-version {ours_text}; none of {checked} dependencies needs a newer Rust"
        ))
    } else {
        Err(format!(
            "dependencies need a newer Rust than the workspace's rust-version {ours_text}:\n  \
             {}\nRaise rust-version in Cargo.toml, or pin older versions of these.",
            newer.join("\n  ")
        ))
    }
}

/// `MAJOR.MINOR[.PATCH]`, compared numerically (a missing patch is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u64, u64, u64);

impl Version {
    fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().unwrap_or("0").parse().ok()?;
        let patch = parts.next().unwrap_or("0").parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version(major, minor, patch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn totals_sum_test_result_lines() {
        let mut t = Totals::default();
        for line in [
            "test result: ok. 25 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.13s",
            "running 4 tests",
            "test smol::x ... ok",
            "test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out",
            "   test result: ok. 0 passed; 0 failed; 0 ignored",
        ] {
            t.add_line(line);
        }
        assert_eq!(
            t,
            Totals {
                passed: 28,
                failed: 2
            }
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(Version::parse("1.100").unwrap() > Version::parse("1.95.0").unwrap());
        assert_eq!(Version::parse("1.95"), Version::parse("1.95.0"));
        assert_eq!(Version::parse("1.x"), None);
    }

    fn meta(ours: Option<&str>, dep: Option<&str>) -> serde_json::Value {
        json!({
            "workspace_members": ["a 0.1.0 (path+file:///a)"],
            "packages": [
                {"id": "a 0.1.0 (path+file:///a)", "name": "a", "version": "0.1.0", "rust_version": ours},
                {"id": "d 1.0.0 (registry)", "name": "d", "version": "1.0.0", "rust_version": dep},
            ]
        })
    }

    #[test]
    fn msrv_check() {
        assert!(check_msrv(&meta(Some("1.89"), Some("1.85"))).is_ok());
        assert!(check_msrv(&meta(Some("1.89"), None)).is_ok());
        assert!(check_msrv(&meta(Some("1.89"), Some("1.89.0"))).is_ok());
        let err = check_msrv(&meta(Some("1.89"), Some("1.90"))).unwrap_err();
        assert!(err.contains("d 1.0.0 needs Rust 1.90"), "{err}");
        let err = check_msrv(&meta(None, None)).unwrap_err();
        assert!(err.contains("declare no rust-version: a"), "{err}");
    }
}
