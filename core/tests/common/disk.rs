//! A disk in memory that answers [`FileRequest`]s the way the application's
//! file worker does (partial files, verified chunk hashes, names that
//! overwrite nothing), so transfers can be tested in simulated time.

use std::collections::BTreeMap;

use lantalk_core::transfer::{
    chunk_hash, file_hash, names, FileAnswer, FileError, FileErrorKind, FileReply, FileRequest,
    Place, Stamp, CHUNK,
};

#[derive(Default)]
pub struct MemDisk {
    /// Files the user can send, by path.
    pub local: BTreeMap<String, Vec<u8>>,
    /// Finished files: the server's by id (`"shared/3"`), downloads by name.
    pub done: BTreeMap<String, Vec<u8>>,
    /// Partial files and their verified chunk hashes.
    pub partial: BTreeMap<String, (Vec<u8>, Vec<[u8; 32]>)>,
    /// Bytes it can hold beyond what it holds (`None`: no limit).
    pub space: Option<u64>,
    /// Requests carried out, in order (for tests that look at the flow).
    pub log: Vec<String>,
    /// After this many reads, every local file changes (someone edits it);
    /// `reads` counts them.
    pub change_after_reads: Option<usize>,
    pub reads: usize,
}

/// Where a place's bytes are: a download's partial file is its own per
/// file id (two files of one name may arrive at once); its final name is
/// [`final_name`].
fn key(place: &Place) -> String {
    match place {
        Place::Shared(id) => format!("shared/{id}"),
        Place::Local(path) => path.clone(),
        Place::Download { id, name } => format!("{}@{id}", names::sanitise(name)),
    }
}

fn final_name(place: &Place) -> String {
    match place {
        Place::Download { name, .. } => names::sanitise(name),
        other => key(other),
    }
}

fn modified(bytes: &[u8]) -> i64 {
    // A stand-in for a modification time: changes when the contents do.
    bytes
        .iter()
        .fold(7i64, |h, b| h.wrapping_mul(31).wrapping_add(i64::from(*b)))
}

impl MemDisk {
    pub fn stamp_of(&self, path: &str) -> Stamp {
        let bytes = &self.local[path];
        Stamp {
            size: bytes.len() as u64,
            modified_ms: modified(bytes),
        }
    }

    /// Carries out `request`; the answer, if it has one.
    pub fn carry_out(&mut self, request: FileRequest) -> Option<FileReply> {
        let op = request.op();
        let result = match request {
            FileRequest::Stat { place, .. } => {
                self.log.push(format!("stat {}", key(&place)));
                match self.local.get(&key(&place)) {
                    Some(bytes) => Ok(FileAnswer::Stat {
                        stamp: Stamp {
                            size: bytes.len() as u64,
                            modified_ms: modified(bytes),
                        },
                        name: key(&place).rsplit('/').next().unwrap_or("").to_string(),
                        folder: false,
                    }),
                    None => Err(FileError::new(
                        FileErrorKind::NotFound,
                        format!("No such file: {}", key(&place)),
                    )),
                }
            }
            FileRequest::Read {
                place,
                offset,
                len,
                stamp,
                ..
            } => {
                let k = key(&place);
                self.reads += 1;
                if self.change_after_reads.is_some_and(|n| self.reads > n) {
                    for bytes in self.local.values_mut() {
                        bytes.push(b'!');
                    }
                }
                let bytes = self.local.get(&k).or_else(|| self.done.get(&k));
                match bytes {
                    None => Err(FileError::new(FileErrorKind::NotFound, "gone")),
                    Some(b)
                        if stamp.is_some_and(|s| {
                            s.size != b.len() as u64 || s.modified_ms != modified(b)
                        }) =>
                    {
                        Err(FileError::new(
                            FileErrorKind::Changed,
                            format!("{k} changed while being sent"),
                        ))
                    }
                    Some(b) => {
                        let start = (offset as usize).min(b.len());
                        let end = (start + len as usize).min(b.len());
                        Ok(FileAnswer::Data(b[start..end].to_vec()))
                    }
                }
            }
            FileRequest::Prepare { place, size, .. } => {
                let k = key(&place);
                self.log.push(format!("prepare {k}"));
                let (data, hashes) = self.partial.entry(k).or_default();
                data.truncate(hashes.len() * CHUNK as usize);
                let need = size.saturating_sub(data.len() as u64);
                match self.space {
                    Some(free) if free < need => Err(FileError::new(
                        FileErrorKind::NoSpace,
                        format!("Not enough space: needs {need}, {free} free"),
                    )),
                    _ => Ok(FileAnswer::Prepared {
                        verified: hashes.clone(),
                    }),
                }
            }
            FileRequest::Write {
                place,
                offset,
                bytes,
                hash,
                ..
            } => {
                let k = key(&place);
                self.log.push(format!("write {k} @{offset}"));
                let (data, hashes) = self.partial.entry(k).or_default();
                data.truncate(offset as usize);
                data.extend_from_slice(&bytes);
                hashes.push(hash);
                Ok(FileAnswer::Written)
            }
            FileRequest::Finish { place, .. } => {
                let k = key(&place);
                self.log.push(format!("finish {k}"));
                let (data, _) = self.partial.remove(&k).unwrap_or_default();
                let base = final_name(&place);
                let mut name = base.clone();
                let mut n = 0;
                while matches!(place, Place::Download { .. }) && self.done.contains_key(&name) {
                    n += 1;
                    name = names::numbered(&base, n);
                }
                self.done.insert(name.clone(), data);
                Ok(FileAnswer::Finished { path: name })
            }
            FileRequest::Copy {
                from, to, stamp, ..
            } => {
                self.log.push(format!("copy {} {}", key(&from), key(&to)));
                let k = key(&from);
                match self.local.get(&k).or_else(|| self.done.get(&k)).cloned() {
                    None => Err(FileError::new(
                        FileErrorKind::NotFound,
                        format!("No such file: {k}"),
                    )),
                    Some(b)
                        if stamp.is_some_and(|s| {
                            s.size != b.len() as u64 || s.modified_ms != modified(&b)
                        }) =>
                    {
                        Err(FileError::new(
                            FileErrorKind::Changed,
                            format!("{k} changed while being copied"),
                        ))
                    }
                    Some(b) => {
                        let hashes: Vec<[u8; 32]> =
                            b.chunks(CHUNK as usize).map(chunk_hash).collect();
                        let base = final_name(&to);
                        let mut name = base.clone();
                        let mut n = 0;
                        while matches!(to, Place::Download { .. }) && self.done.contains_key(&name)
                        {
                            n += 1;
                            name = names::numbered(&base, n);
                        }
                        self.done.insert(name.clone(), b);
                        Ok(FileAnswer::Copied {
                            path: name,
                            hash: file_hash(&hashes),
                        })
                    }
                }
            }
            FileRequest::Discard { place } => {
                let k = key(&place);
                self.log.push(format!("discard {k}"));
                self.partial.remove(&k);
                self.done.remove(&k);
                return None;
            }
        };
        op.map(|op| FileReply { op, result })
    }
}
