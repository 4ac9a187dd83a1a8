//! The chat session's lines about files (clients and servers of ours only,
//! inside the encrypted session; LanTalk 2.0 members see a system line).
//!
//! A client asks with a [`FileAsk`] and the server answers with a
//! [`FileNews`]; requests carry a `ref` the client chose, echoed in the
//! answer, so several can be under way at once.

use serde::{Deserialize, Serialize};

/// What a client of ours asks about files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileAsk {
    /// Upload a file for `to` (`#room` or a user's name).
    FileOffer {
        #[serde(rename = "ref")]
        reference: u64,
        to: String,
        name: String,
        size: u64,
        /// The sender's file's modification time: a resumed upload must
        /// find the same file.
        modified_ms: i64,
        /// A folder, packed into one stream (see
        /// [`super::FileAnswer::Stat`]).
        #[serde(default, skip_serializing_if = "is_false")]
        folder: bool,
    },
    /// Download a file the server keeps.
    FileGet {
        #[serde(rename = "ref")]
        reference: u64,
        id: u64,
    },
    /// The files offered to us (in our rooms, or to us alone).
    FileList,
    /// Stop offering a file we sent (or stop its upload).
    FileCancel { id: u64 },
}

/// A file as the server lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub id: u64,
    pub name: String,
    pub size: u64,
    pub from: String,
    /// `#room`, or the user it was offered to.
    pub to: String,
    pub at_ms: i64,
    /// Present once the file is complete.
    #[serde(default)]
    pub sha256: Option<String>,
    /// A folder: downloaded, it is unpacked into a folder of this name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub folder: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl FileInfo {
    /// The name as people see it: a folder ends with `/`.
    pub fn shown_name(&self) -> String {
        let name = crate::text::visible(&self.name);
        if self.folder {
            format!("{name}/")
        } else {
            name.into_owned()
        }
    }
}

/// What the server says about files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileNews {
    /// Go ahead: open a side connection and present `ticket` (hex; valid
    /// once, for a short while). `upload`: send the file; else receive it.
    FileTicket {
        #[serde(rename = "ref")]
        reference: u64,
        id: u64,
        ticket: String,
        upload: bool,
        name: String,
        size: u64,
        /// The whole file's hash (downloads).
        #[serde(default)]
        sha256: Option<String>,
        /// A folder, to unpack once downloaded.
        #[serde(default, skip_serializing_if = "is_false")]
        folder: bool,
    },
    /// The request `ref` was refused; `text` says why.
    FileRefused {
        #[serde(rename = "ref")]
        reference: u64,
        text: String,
    },
    /// A file is offered to us (or we offered it).
    FileShared { file: FileInfo },
    /// The answer to [`FileAsk::FileList`].
    FileList { files: Vec<FileInfo> },
    /// A file is no longer offered (its sender cancelled it, or it expired).
    FileRemoved { id: u64, name: String },
}

impl FileNews {
    /// The line, ready to send (newline-terminated).
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

impl FileAsk {
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// Whether a line's `type` is one of these (so the general parser hands it
/// over).
pub fn is_file_type(kind: &str) -> bool {
    kind.starts_with("file_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let ask = FileAsk::FileOffer {
            reference: 3,
            to: "#team".into(),
            name: "slides.pdf".into(),
            size: 1_400_000,
            modified_ms: 7,
            folder: true,
        };
        let line = ask.to_line();
        assert!(
            line.starts_with("{\"type\":\"file_offer\",\"ref\":3,"),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<FileAsk>(&line).unwrap(), ask);
        let news = FileNews::FileList {
            files: vec![FileInfo {
                id: 1,
                name: "a".into(),
                size: 2,
                from: "bob".into(),
                to: "#lobby".into(),
                at_ms: 0,
                sha256: None,
                folder: false,
            }],
        };
        assert_eq!(
            serde_json::from_str::<FileNews>(&news.to_line()).unwrap(),
            news
        );
    }
}
