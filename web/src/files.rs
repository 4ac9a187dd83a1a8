//! The browser's "disk": files the person picked to send, held in memory,
//! and downloads assembled in memory until they are whole and verified.
//!
//! A page cannot open a path, and the core asks for files by
//! [`Place`]. A picked file is read once by the page (`File.arrayBuffer`)
//! and handed over under a name of its own (`Place::Local`); a download is
//! kept here chunk by chunk and, once the core has checked the whole hash,
//! leaves as one [`Saved`] file for the page to offer as a download. Both
//! are bounded, since a tab's memory is not a disk.

use std::collections::HashMap;

use lantalk_core::transfer::{
    names, FileAnswer, FileError, FileErrorKind, FileReply, FileRequest, Place, Stamp,
};

/// The largest file a browser sends or receives: it is held whole in the
/// tab's memory (wasm32 has 4 GiB in all, and phones far less).
pub const MAX_FILE: u64 = 256 * 1024 * 1024;

/// A finished download, for the page to save.
#[derive(Debug, PartialEq, Eq)]
pub struct Saved {
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub struct Disk {
    /// Files picked to send, by the name the `/send` line gives.
    picked: HashMap<String, (Vec<u8>, i64)>,
    /// Downloads under way: their bytes and the hashes of verified chunks.
    partial: HashMap<(u64, String), Partial>,
}

struct Partial {
    bytes: Vec<u8>,
    verified: Vec<[u8; 32]>,
}

impl Disk {
    /// A file the person picked: `/send … <name>` sends it. A file picked
    /// again under the same name replaces it.
    pub fn pick(&mut self, name: String, bytes: Vec<u8>, modified_ms: i64) -> Result<(), String> {
        if bytes.len() as u64 > MAX_FILE {
            return Err(format!(
                "{name} is too big to send from a browser (at most {} MiB; the terminal client has no such limit).",
                MAX_FILE >> 20
            ));
        }
        self.picked.insert(name, (bytes, modified_ms));
        Ok(())
    }

    /// Carries out `request`; the reply (if it needs one) and a finished
    /// download (if this was its last step).
    pub fn handle(&mut self, request: FileRequest) -> (Option<FileReply>, Option<Saved>) {
        let Some(op) = request.op() else {
            if let FileRequest::Discard {
                place: Place::Download { id, name },
            } = request
            {
                self.partial.remove(&(id.0, name));
            }
            return (None, None);
        };
        let mut saved = None;
        let result = match request {
            FileRequest::Stat { place, .. } => {
                self.picked(&place)
                    .map(|(bytes, modified_ms)| FileAnswer::Stat {
                        stamp: Stamp {
                            size: bytes.len() as u64,
                            modified_ms: *modified_ms,
                        },
                        name: local_name(&place),
                        folder: false,
                    })
            }
            FileRequest::Read {
                place, offset, len, ..
            } => self.picked(&place).map(|(bytes, _)| {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(len as usize).min(bytes.len());
                FileAnswer::Data(bytes[start..end].to_vec())
            }),
            FileRequest::Prepare { place, size, .. } => self.prepare(&place, size),
            FileRequest::Write {
                place,
                offset,
                bytes,
                hash,
                ..
            } => self.write(&place, offset, &bytes, hash),
            FileRequest::Finish { place, .. } => match place {
                Place::Download { id, name } => match self.partial.remove(&(id.0, name.clone())) {
                    Some(p) => {
                        let name = names::sanitise(&name);
                        saved = Some(Saved {
                            name: name.clone(),
                            bytes: p.bytes,
                        });
                        Ok(FileAnswer::Finished { path: name })
                    }
                    None => Err(not_found()),
                },
                _ => Err(not_found()),
            },
            FileRequest::Copy { .. } | FileRequest::Discard { .. } => Err(FileError::new(
                FileErrorKind::Other,
                "a browser has no files to copy",
            )),
        };
        (Some(FileReply { op, result }), saved)
    }

    fn picked(&self, place: &Place) -> Result<&(Vec<u8>, i64), FileError> {
        match place {
            Place::Local(path) => self.picked.get(path).ok_or_else(|| {
                FileError::new(
                    FileErrorKind::NotFound,
                    format!("{path}: pick the file with the Send file button (a browser cannot open paths)"),
                )
            }),
            _ => Err(not_found()),
        }
    }

    fn prepare(&mut self, place: &Place, size: u64) -> Result<FileAnswer, FileError> {
        let Place::Download { id, name } = place else {
            return Err(not_found());
        };
        if size > MAX_FILE {
            return Err(FileError::new(
                FileErrorKind::NoSpace,
                format!(
                    "too big for a browser tab (at most {} MiB); use the terminal client",
                    MAX_FILE >> 20
                ),
            ));
        }
        // A download started over in this tab goes on from what it has.
        let p = self
            .partial
            .entry((id.0, name.clone()))
            .or_insert_with(|| Partial {
                bytes: Vec::new(),
                verified: Vec::new(),
            });
        let kept = (p.verified.len() as u64 * lantalk_core::transfer::CHUNK).min(size);
        p.bytes.truncate(kept as usize);
        Ok(FileAnswer::Prepared {
            verified: p.verified.clone(),
        })
    }

    fn write(
        &mut self,
        place: &Place,
        offset: u64,
        bytes: &[u8],
        hash: [u8; 32],
    ) -> Result<FileAnswer, FileError> {
        let Place::Download { id, name } = place else {
            return Err(not_found());
        };
        let p = self
            .partial
            .get_mut(&(id.0, name.clone()))
            .ok_or_else(not_found)?;
        let end = offset.saturating_add(bytes.len() as u64);
        if end > MAX_FILE {
            return Err(FileError::new(
                FileErrorKind::NoSpace,
                "too big for a browser tab",
            ));
        }
        let (offset, end) = (offset as usize, end as usize);
        if p.bytes.len() < end {
            p.bytes.resize(end, 0);
        }
        p.bytes[offset..end].copy_from_slice(bytes);
        p.verified.push(hash);
        Ok(FileAnswer::Written)
    }
}

/// The name a picked file is offered under: what follows the last slash.
fn local_name(place: &Place) -> String {
    match place {
        Place::Local(path) => path.rsplit('/').next().unwrap_or(path).to_string(),
        _ => String::new(),
    }
}

fn not_found() -> FileError {
    FileError::new(FileErrorKind::NotFound, "no such file in this tab")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lantalk_core::transfer::{FileId, OpId};

    #[test]
    fn a_picked_file_is_read_in_pieces_and_a_download_saved_whole() {
        let mut disk = Disk::default();
        disk.pick("notes.txt".into(), b"hello world".to_vec(), 7)
            .unwrap();
        let place = Place::Local("notes.txt".into());
        let (reply, _) = disk.handle(FileRequest::Read {
            op: OpId(1),
            place: place.clone(),
            offset: 6,
            len: 100,
            stamp: None,
        });
        assert_eq!(
            reply.unwrap().result,
            Ok(FileAnswer::Data(b"world".to_vec()))
        );

        let down = Place::Download {
            id: FileId(3),
            name: "../evil.txt".into(),
        };
        let (reply, _) = disk.handle(FileRequest::Prepare {
            op: OpId(2),
            place: down.clone(),
            size: 5,
            whole: None,
        });
        assert!(
            matches!(reply.unwrap().result, Ok(FileAnswer::Prepared { verified }) if verified.is_empty())
        );
        disk.handle(FileRequest::Write {
            op: OpId(3),
            place: down.clone(),
            offset: 0,
            bytes: b"abcde".to_vec(),
            hash: [0; 32],
        });
        let (_, saved) = disk.handle(FileRequest::Finish {
            op: OpId(4),
            place: down,
            unpack: false,
        });
        let saved = saved.unwrap();
        assert_eq!(saved.bytes, b"abcde");
        assert!(!saved.name.contains('/'), "sanitised: {}", saved.name);
    }

    #[test]
    fn files_too_big_for_a_tab_are_refused() {
        let mut disk = Disk::default();
        let (reply, _) = disk.handle(FileRequest::Prepare {
            op: OpId(1),
            place: Place::Download {
                id: FileId(1),
                name: "big".into(),
            },
            size: MAX_FILE + 1,
            whole: None,
        });
        assert!(matches!(reply.unwrap().result, Err(e) if e.kind == FileErrorKind::NoSpace));
    }
}
