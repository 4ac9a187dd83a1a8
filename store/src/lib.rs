//! LanTalk's message history, kept in SQLite.

mod record;

pub use record::{Kind, Record, Scope};
