//! The reference implementation, the Python package `lantalk==2.0.0` from
//! PyPI, provisioned on first use (shared test support): a virtual environment
//! in `<workspace>/target/interop-venv` with `lantalk==2.0.0` installed by pip,
//! or the interpreter named by `LANTALK_PYTHON` (which must already have it).
//!
//! Included by each test file with `#[path = "support/python.rs"] mod python;`,
//! next to `#[path = "support/tempdir.rs"] mod tempdir;`, which it uses.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::tempdir::{unique, TempDir};

/// The reference version these tests are written against.
pub const LANTALK_VERSION: &str = "2.0.0";

/// The Python interpreter that has `lantalk==2.0.0`, provisioned on first use.
/// Panics, with instructions, when there is none and one cannot be made; the
/// message starts with `who` (e.g. "The interop tests need").
pub fn interpreter(who: &str) -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(provision) {
        Ok(path) => path,
        Err(why) => panic!(
            "\n\n{who} Python 3 with the reference package lantalk=={LANTALK_VERSION}.\n\
             {why}\n\n\
             To fix it, either:\n  \
             * install python3 and its venv module (Debian/Ubuntu: `apt-get install python3 python3-venv`) \
             and let the tests create target/interop-venv with pip (needs access to PyPI), or\n  \
             * set LANTALK_PYTHON to a Python interpreter that has it: \
             `python3 -m pip install lantalk=={LANTALK_VERSION}`, then \
             `LANTALK_PYTHON=/path/to/python cargo test`.\n"
        ),
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli package sits inside the workspace")
        .to_path_buf()
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Creates (or reuses) the virtual environment. Several test binaries may do
/// this at once: each builds its own staging copy and renames it into place
/// atomically; the loser of the race deletes its copy and uses the winner's.
/// (A venv's own `bin/python` finds its `pyvenv.cfg` next to itself, so it
/// works after the rename; only pip's console scripts would not, and those are
/// never used: everything runs as `python -m ...`.)
fn provision() -> Result<PathBuf, String> {
    if let Some(py) = std::env::var_os("LANTALK_PYTHON") {
        let py = PathBuf::from(py);
        return match check_python(&py) {
            Ok(()) => Ok(py),
            Err(e) => Err(format!(
                "LANTALK_PYTHON={} is not usable: {e}",
                py.display()
            )),
        };
    }
    let target = workspace_root().join("target");
    let venv = target.join("interop-venv");
    if check_python(&venv_python(&venv)).is_ok() {
        return Ok(venv_python(&venv));
    }
    std::fs::create_dir_all(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    remove_old_staging(&target);
    if venv.exists() {
        // Broken or outdated (e.g. the base Python was upgraded): move it
        // aside atomically, so that nobody sees a half-deleted tree.
        let aside = target.join(format!("interop-venv.stale-{}", unique()));
        if std::fs::rename(&venv, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    let staging = target.join(format!("interop-venv.tmp-{}", unique()));
    if let Err(e) = build_venv(&staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if std::fs::rename(&staging, &venv).is_err() {
        // Another process got there first; use its environment.
        let _ = std::fs::remove_dir_all(&staging);
    }
    let py = venv_python(&venv);
    check_python(&py).map_err(|e| format!("the new {} is not usable: {e}", venv.display()))?;
    Ok(py)
}

fn build_venv(dir: &Path) -> Result<(), String> {
    let bootstrap = if cfg!(windows) { "python" } else { "python3" };
    let out = Command::new(bootstrap)
        .args(["-m", "venv"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run `{bootstrap}` ({e}): is Python 3 installed and on PATH?")
        })?;
    if !out.status.success() {
        return Err(format!(
            "`{bootstrap} -m venv {}` failed ({}); is the venv module installed?\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = Command::new(venv_python(dir))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("lantalk=={LANTALK_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the venv's python: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`pip install lantalk=={LANTALK_VERSION}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    check_python(&venv_python(dir))
}

/// Checks that `py` runs and imports the reference package at the right
/// version. Importing `lantalk.server` creates `lantalk.log` in the current
/// directory, so this runs in a scratch one.
fn check_python(py: &Path) -> Result<(), String> {
    let scratch = TempDir::new("check");
    let out = Command::new(py)
        .args([
            "-c",
            "import importlib.metadata, lantalk.client, lantalk.server\n\
             print(importlib.metadata.version('lantalk'))",
        ])
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`import lantalk.client, lantalk.server` failed:\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if version != LANTALK_VERSION {
        return Err(format!(
            "it has lantalk {version}; these tests need lantalk=={LANTALK_VERSION}"
        ));
    }
    Ok(())
}

/// Staging copies left behind by an interrupted run, once clearly abandoned.
fn remove_old_staging(target: &Path) {
    let Ok(entries) = std::fs::read_dir(target) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("interop-venv.tmp-") || name.starts_with("interop-venv.stale-")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
