//! History: what was said, as records with ids, and what the server asks of
//! the application's store.
//!
//! The core keeps a bounded window of recent records per room in memory and
//! answers most requests from it; the store (SQLite, in the application) has
//! the rest. The core never waits for it: it hands out a [`StoreRequest`]
//! (appends need no answer; queries carry a [`QueryId`]) and takes the
//! [`StoreReply`] as one more input, like a password check.

use crate::json::ObjectWriter;

/// What kind of line a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Message,
    /// `/me` (the text is the action, without `/me `).
    Action,
}

/// Whose conversation a record belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A room, by [`crate::rooms::room_key`].
    Room(String),
    /// A private conversation, by the two [`crate::names::name_key`]s in
    /// order: both people see the same one.
    Pm(String, String),
}

impl Scope {
    pub fn pm(a: &str, b: &str) -> Scope {
        let (a, b) = (crate::names::name_key(a), crate::names::name_key(b));
        if a <= b {
            Scope::Pm(a, b)
        } else {
            Scope::Pm(b, a)
        }
    }
}

/// One line said, as history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Server-assigned, increasing, never reused.
    pub id: u64,
    /// When, in milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    pub scope: Scope,
    pub from: String,
    pub text: String,
    pub kind: RecordKind,
}

impl Record {
    /// The record as an element of a `history` line's `messages`.
    pub fn to_json(&self) -> String {
        let w = ObjectWriter::with_capacity(64 + self.from.len() + self.text.len())
            .raw("id", &self.id.to_string())
            .raw("at", &self.at_ms.to_string())
            .str("user", &self.from)
            .str("text", &self.text);
        let w = match self.kind {
            RecordKind::Message => w,
            RecordKind::Action => w.bool("action", true),
        };
        let mut line = w.finish_line();
        line.pop();
        line
    }
}

/// Names one query, to match its answer to whoever asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Which records a query wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// The newest `limit` with an id below `before` (all if `None`).
    Before { before: Option<u64>, limit: usize },
    /// The oldest `limit` with an id above `after`.
    After { after: u64, limit: usize },
    /// The newest `limit` matching `text` (as words, case-insensitive)
    /// below `before`.
    Search {
        text: String,
        before: Option<u64>,
        limit: usize,
    },
}

/// What the server asks of the application's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreRequest {
    /// Keep this record (batched by the store; no answer).
    Append(Record),
    /// Records of `scope`; answer with [`StoreReply`] and the same id.
    Query {
        id: QueryId,
        scope: Scope,
        want: Want,
    },
}

/// The store's answer to a [`StoreRequest::Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreReply {
    pub id: QueryId,
    /// Oldest first.
    pub records: Vec<Record>,
    /// Whether more records match beyond these.
    pub more: bool,
    /// The store could not answer (the sentence says why); the asker is
    /// told history is unavailable, not shown an empty page as if it were
    /// the whole story.
    pub error: Option<String>,
}
