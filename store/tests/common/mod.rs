//! What the store's tests share: throwaway directories and records.

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use lantalk_store::{Kind, Record, Scope};

/// A directory under the system's temp dir, unique to this process and
/// call, removed (with everything in it) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lantalk-store-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Where a store's database goes: in a subdirectory not yet created,
    /// so that every test also checks `open` makes parent directories.
    pub fn db(&self) -> PathBuf {
        self.0.join("data").join("history.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A message with `id` in `scope`, said at `id` seconds past the epoch.
pub fn said(id: u64, scope: &Scope, text: &str) -> Record {
    Record {
        id,
        at_ms: id as i64 * 1000,
        scope: scope.clone(),
        from: "alice".into(),
        kind: Kind::Message,
        text: text.into(),
    }
}

pub fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.id).collect()
}
