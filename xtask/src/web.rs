//! `cargo xtask web [--check]`: builds the browser client's WebAssembly
//! (`web/`, the core's client) into `web/dist/lantalk_web.wasm`, which the
//! server embeds.
//!
//! The built module is committed, so that `cargo run … server` on a fresh
//! machine needs neither the wasm32 target nor anything but stable Rust.
//! To keep the committed bytes honest, CI runs `--check`: it builds again
//! from source and fails if the result differs. The build is made
//! reproducible for that: its own target directory, the `web` profile
//! (one codegen unit, LTO, stripped), and path prefixes remapped so that
//! neither the checkout's folder nor the cargo home leaves a trace in the
//! module. `web/dist/lantalk_web.wasm.toolchain` records the rustc that
//! built it: another rustc makes other bytes, which `--check` says plainly.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::{cargo, root};

const TARGET: &str = "wasm32-unknown-unknown";

pub fn web(args: &[std::ffi::OsString]) -> Result<ExitCode, String> {
    let check = match args.first().and_then(|a| a.to_str()) {
        None => false,
        Some("--check") => true,
        Some(other) => return Err(format!("unknown argument {other:?} (only --check)")),
    };
    let built = build()?;
    let committed = root().join("web/dist/lantalk_web.wasm");
    let stamp = root().join("web/dist/lantalk_web.wasm.toolchain");
    let toolchain = rustc_version()?;
    let fresh = fs::read(&built).map_err(|e| format!("cannot read {}: {e}", built.display()))?;
    if !check {
        fs::write(&committed, &fresh).map_err(|e| format!("cannot write: {e}"))?;
        fs::write(&stamp, format!("{toolchain}\n")).map_err(|e| format!("cannot write: {e}"))?;
        println!(
            "web/dist/lantalk_web.wasm: {} bytes ({} gzipped), built by {toolchain}",
            fresh.len(),
            gzipped_len(&fresh)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let old = fs::read(&committed).unwrap_or_default();
    if old == fresh {
        println!(
            "web/dist/lantalk_web.wasm matches its source ({} bytes)",
            fresh.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let recorded = fs::read_to_string(&stamp).unwrap_or_default();
    let recorded = recorded.trim();
    if recorded != toolchain {
        // Not a stale module: another compiler. The build above still
        // proves the source builds; the bytes cannot be compared.
        println!(
            "web/dist/lantalk_web.wasm was built by {recorded:?}, this is {toolchain:?}: \
             the source builds, but the bytes cannot be compared across compilers"
        );
        return Ok(ExitCode::SUCCESS);
    }
    Err(format!(
        "web/dist/lantalk_web.wasm does not match web/src (committed {} bytes, built {}): \
         run `cargo xtask web` and commit the result",
        old.len(),
        fresh.len()
    ))
}

fn build() -> Result<PathBuf, String> {
    let root = root();
    let target_dir = root.join("target/web-build");
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    let flags = [
        format!("--remap-path-prefix={}=/lantalk", root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
    ];
    let status = cargo()
        .args(["build", "--locked", "-p", "lantalk-web", "--profile", "web"])
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        // Separated by 0x1f: a path may hold spaces.
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\u{1f}"))
        .env_remove("RUSTFLAGS")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the web build failed (is the target installed? `rustup target add {TARGET}`)"
        ));
    }
    Ok(target_dir.join(TARGET).join("web/lantalk_web.wasm"))
}

fn rustc_version() -> Result<String, String> {
    let out = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-V")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What the module weighs on the wire (the server sends it gzipped).
fn gzipped_len(bytes: &[u8]) -> String {
    let gzip = Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = gzip else {
        return "? bytes".to_string();
    };
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(bytes);
    }
    match child.wait_with_output() {
        Ok(out) => format!("{} bytes", out.stdout.len()),
        Err(_) => "? bytes".to_string(),
    }
}
