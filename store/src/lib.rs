//! LanTalk's message history, kept in SQLite.
//!
//! The core keeps a bounded window of recent messages per room in memory
//! and asks the application for anything older through request/reply
//! effects; the application carries them out with this crate. It knows
//! nothing of the core: its types are its own, plain data.
//!
//! * [`Store::open`] checks, locks and migrates the database
//!   (`schema.rs` says why a `kill -9` never corrupts it and loses at most
//!   the last second);
//! * [`Store::append`] hands a [`Record`] to the writer thread, which commits
//!   in batches off the caller's path;
//! * [`Store::query`] runs a [`Request`] (a page of scrollback, what came
//!   after an id, a full-text search, an export page) on a reader thread and
//!   hands the [`Reply`] to a callback, so an event loop never waits on the
//!   disk.
//!
//! Modules: `record` (what is stored), `store` (the handle), `writer` (the
//! writer thread, batching and retention), `query` (requests and their SQL),
//! `schema` (opening, durability, migrations), `lock` (one server per
//! history), `error`.

mod error;
mod lock;
mod query;
mod record;
mod schema;
mod store;
mod writer;

pub use error::{OpenError, QueryError};
pub use query::{Reply, Request, MAX_LIMIT};
pub use record::{Kind, Record, Scope};
pub use store::{Export, Options, ReadOnly, Store};
pub use writer::Stats;
