//! What can be asked of the history, and the SQL that answers it.

use std::sync::mpsc::Receiver;

use rusqlite::types::Type;
use rusqlite::{params, Connection, Row};

use crate::error::QueryError;
use crate::record::{Kind, Record, Scope};

/// The most records one answer holds; larger limits are cut to this, so no
/// request can make the store build an unbounded reply.
pub const MAX_LIMIT: usize = 1000;

/// A question for the history. Ids in `before`/`after` are exclusive bounds,
/// so the id at the edge of one page asks for the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The newest `limit` records of `scope` with an id below `before`
    /// (all, if `None`), returned oldest first, ready to print: scrollback
    /// on joining a room and `/history`.
    Page {
        scope: Scope,
        before: Option<u64>,
        limit: usize,
    },
    /// The oldest `limit` records of `scope` with an id above `after`,
    /// oldest first: a client that reconnects resumes from the last id it
    /// saw, with no gap and no duplicate.
    After {
        scope: Scope,
        after: u64,
        limit: usize,
    },
    /// Records of `scope` whose text contains `text`, newest first, with an
    /// id below `before` (the last id of the previous page).
    ///
    /// `text` is literal: its words must appear in that order, ignoring
    /// case, accents and punctuation (`hello world` finds "Hello, world!").
    /// FTS5's query syntax (`"`, `*`, `NEAR`, `AND`, `-`, `col:`) means
    /// nothing here. Words are split at spaces and punctuation, so in
    /// scripts written without spaces a search matches whole runs of text.
    Search {
        scope: Scope,
        text: String,
        before: Option<u64>,
        limit: usize,
    },
    /// Records of `scope` (every scope, if `None`) from `since_ms` on, with
    /// an id above `after`, oldest first: one page of `history export`.
    Export {
        scope: Option<Scope>,
        since_ms: i64,
        after: u64,
        limit: usize,
    },
}

/// What a query returns.
pub type Reply = Result<Vec<Record>, QueryError>;

/// A query and where its answer goes.
pub(crate) type Job = (Request, Box<dyn FnOnce(Reply) + Send>);

/// The reader thread: answers queries in order until the writer hangs up.
pub(crate) fn serve(conn: Connection, jobs: Receiver<Job>) {
    for (request, reply) in jobs {
        reply(run(&conn, &request).map_err(QueryError::from));
    }
}

/// The SQL for a request.
pub(crate) fn run(conn: &Connection, request: &Request) -> rusqlite::Result<Vec<Record>> {
    const COLUMNS: &str = "m.id, m.at_ms, m.scope, m.sender, m.kind, m.text";
    match request {
        Request::Page {
            scope,
            before,
            limit,
        } => {
            let mut page = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM messages m WHERE m.scope = ?1 AND m.id < ?2 \
                     ORDER BY m.id DESC LIMIT ?3"
                ))?
                .query_map(params![scope.key(), bound(*before), cap(*limit)], record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            page.reverse();
            Ok(page)
        }
        Request::After {
            scope,
            after,
            limit,
        } => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages m WHERE m.scope = ?1 AND m.id > ?2 \
                 ORDER BY m.id LIMIT ?3"
            ))?
            .query_map(params![scope.key(), floor(*after), cap(*limit)], record)?
            .collect(),
        Request::Search {
            scope,
            text,
            before,
            limit,
        } => {
            let Some(phrase) = phrase(text) else {
                return Ok(Vec::new());
            };
            // CROSS JOIN keeps the index as the outer loop: FTS5 walks the
            // matches newest first (rowid DESC is its native order, and the
            // rowid bound is pushed into it), and the first `limit` in the
            // room end the scan. Left to itself the planner may walk the
            // room's messages instead and run the match once per message.
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages_fts CROSS JOIN messages m \
                 ON m.id = messages_fts.rowid \
                 WHERE messages_fts MATCH ?1 AND messages_fts.rowid < ?2 AND m.scope = ?3 \
                 ORDER BY messages_fts.rowid DESC LIMIT ?4"
            ))?
            .query_map(
                params![phrase, bound(*before), scope.key(), cap(*limit)],
                record,
            )?
            .collect()
        }
        Request::Export {
            scope,
            since_ms,
            after,
            limit,
        } => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages m \
                 WHERE (?1 IS NULL OR m.scope = ?1) AND m.at_ms >= ?2 AND m.id > ?3 \
                 ORDER BY m.id LIMIT ?4"
            ))?
            .query_map(
                params![
                    scope.as_ref().map(Scope::key),
                    since_ms,
                    floor(*after),
                    cap(*limit)
                ],
                record,
            )?
            .collect(),
    }
}

/// The user's text as one FTS5 phrase: `"` + text + `"`, with each `"`
/// doubled, which is FTS5's only escape inside a string. Inside a phrase
/// every other character is text for the tokenizer, never syntax, so no
/// input can make a query error or widen the search. `None` if the text has
/// no word characters at all (only punctuation or emoji): such a phrase
/// matches nothing, and saying so without asking SQLite is clearer.
fn phrase(text: &str) -> Option<String> {
    if !text.chars().any(char::is_alphanumeric) {
        return None;
    }
    Some(format!("\"{}\"", text.replace('"', "\"\"")))
}

/// An exclusive upper bound on ids; SQLite's integers are signed, and ids
/// never come near the top of either range.
fn bound(before: Option<u64>) -> i64 {
    before.map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX))
}

/// An exclusive lower bound on ids.
fn floor(after: u64) -> i64 {
    i64::try_from(after).unwrap_or(i64::MAX)
}

fn cap(limit: usize) -> i64 {
    limit.min(MAX_LIMIT) as i64
}

/// A row of `messages` as a record; a row this version cannot read (a
/// damaged file, or hand edits) is an error for that query, never a panic.
fn record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let bad = |column: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(column, Type::Text, what.to_string().into())
    };
    let id: i64 = row.get(0)?;
    let scope: String = row.get(2)?;
    let kind: String = row.get(4)?;
    Ok(Record {
        id: u64::try_from(id).map_err(|_| bad(0, "negative message id"))?,
        at_ms: row.get(1)?,
        scope: Scope::from_key(&scope).ok_or_else(|| bad(2, "unknown scope"))?,
        from: row.get(3)?,
        kind: Kind::from_word(&kind).ok_or_else(|| bad(4, "unknown kind"))?,
        text: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::phrase;

    #[test]
    fn phrases_quote_everything() {
        assert_eq!(phrase("hello world").unwrap(), "\"hello world\"");
        assert_eq!(phrase("say \"hi\"").unwrap(), "\"say \"\"hi\"\"\"");
        assert_eq!(phrase("\"*-:"), None);
        assert_eq!(phrase("  "), None);
        assert_eq!(phrase("🎉"), None);
    }
}
