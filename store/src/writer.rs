//! The writer thread: the only connection that writes. It batches appends
//! into one transaction per second (or per `Options::batch` records), runs
//! retention, and hands queries on to the reader thread in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode};

use crate::error::QueryError;
use crate::query::Job;
use crate::record::Record;
use crate::store::Options;

/// How often retention runs while the store is open (it also runs at open).
/// Hourly would leave a day's history up to an hour over; this is cheap.
const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Rows deleted per transaction by retention, so that purging a large
/// backlog never holds the write lock (and the appends queued behind it)
/// for long.
const PURGE_CHUNK: usize = 5_000;

/// What the store's handle sends the writer.
pub(crate) enum Command {
    /// Records are waiting in the inbox: the first since the last commit
    /// (start the clock) or a full batch (commit now).
    Wake,
    /// A query: answered after everything appended before it is committed,
    /// so a reader always sees what was written before it asked.
    Query(Job),
    /// Delete records older than this (unix ms); answer how many went.
    Purge(i64, SyncSender<Result<u64, QueryError>>),
    /// Commit now; answer when done.
    Flush(SyncSender<()>),
}

/// Counters the writer keeps and the handle reads: see [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) committed: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) waited: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            committed: self.committed.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn fail(&self, lost: u64, why: String) {
        self.lost.fetch_add(lost, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// How the writer has fared since the store opened, for the application to
/// report (a full disk shows up here, not as a panic or a silent gap).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records committed to disk.
    pub committed: u64,
    /// Records that will never be stored: their batch failed to commit
    /// (`last_error` says why), SQLite refused them (an id already used),
    /// or the writer had stopped.
    pub lost: u64,
    /// Times `append` or `query` found the queue full and waited for the
    /// writer: a sign the disk cannot keep up.
    pub waited: u64,
    /// The last failure, as SQLite put it.
    pub last_error: Option<String>,
}

/// Records appended and not yet taken by the writer. Appends only push
/// here and wake the writer once per batch, not once per record: a wake is
/// a system call and a context switch on the caller's thread, the event
/// loop's, which is worth more than the record itself.
pub(crate) type Inbox = Arc<Mutex<Vec<Record>>>;

pub(crate) struct Writer {
    conn: Connection,
    inbox: Inbox,
    options: Options,
    counters: Arc<Counters>,
    /// Appended, not yet committed.
    pending: Vec<Record>,
    /// When `pending` must be committed: one `commit_every` after its first
    /// record arrived.
    due: Option<Instant>,
    next_purge: Option<Instant>,
    /// The reader thread and its queue; the writer outlives it.
    reader: (SyncSender<Job>, JoinHandle<()>),
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        inbox: Inbox,
        options: Options,
        counters: Arc<Counters>,
        reader: (SyncSender<Job>, JoinHandle<()>),
    ) -> Writer {
        let batch = options.batch.max(1);
        Writer {
            conn,
            inbox,
            next_purge: options.keep.map(|_| Instant::now()),
            options,
            counters,
            pending: Vec::with_capacity(batch),
            due: None,
            reader,
        }
    }

    /// Runs until the handle hangs up, then commits what is pending, lets
    /// the reader answer what it was asked, and closes the connections (the
    /// writer's last, so that it checkpoints the WAL and removes it).
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        loop {
            self.on_deadlines();
            let wake = match (self.due, self.next_purge) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let command = match wake {
                Some(at) => commands.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match command {
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.commit();
        let Writer {
            conn,
            reader: (jobs, reader),
            ..
        } = self;
        drop(jobs);
        let _ = reader.join();
        // SQLite's advice before closing: refresh the planner's statistics
        // where the queries of this run showed them stale.
        let _ = conn.execute_batch("PRAGMA optimize");
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Wake => {
                let batch = self.options.batch.max(1);
                {
                    // Whole batches now; a partial one waits for its time.
                    let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
                    let whole = inbox.len() / batch * batch;
                    self.pending.extend(inbox.drain(..whole));
                }
                if !self.pending.is_empty() {
                    self.write_pending();
                }
                let waiting = !self
                    .inbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty();
                if waiting && self.due.is_none() {
                    self.due = Some(Instant::now() + self.options.commit_every);
                }
            }
            Command::Query(job) => {
                self.commit();
                if let Err(e) = self.reader.0.send(job) {
                    let (_, reply) = e.0;
                    reply(Err(QueryError::Closed));
                }
            }
            Command::Purge(before_ms, reply) => {
                self.commit();
                let _ = reply.send(self.purge(before_ms).map_err(QueryError::from));
            }
            Command::Flush(reply) => {
                self.commit();
                let _ = reply.send(());
            }
        }
    }

    /// Commits when the batch is due and purges when retention is due; a
    /// steady stream of appends must not postpone either.
    fn on_deadlines(&mut self) {
        let now = Instant::now();
        if self.due.is_some_and(|due| due <= now) {
            self.commit();
        }
        if let (Some(keep), Some(at)) = (self.options.keep, self.next_purge) {
            if at <= now {
                self.next_purge = Some(now + PURGE_EVERY);
                let cutoff = unix_ms(SystemTime::now()).saturating_sub(millis(keep));
                if let Err(e) = self.purge(cutoff) {
                    self.counters.fail(0, format!("retention failed: {e}"));
                }
            }
        }
    }

    /// Writes the pending batch in one transaction.
    fn commit(&mut self) {
        self.due = None;
        self.pending
            .append(&mut self.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        self.write_pending();
    }

    /// Writes what is pending, a transaction per `Options::batch` records.
    fn write_pending(&mut self) {
        let size = self.options.batch.max(1);
        let all = std::mem::take(&mut self.pending);
        for chunk in all.chunks(size) {
            self.write(chunk);
        }
        self.pending = all;
        self.pending.clear();
    }

    /// Writes `batch` in one transaction.
    fn write(&mut self, batch: &[Record]) {
        if batch.is_empty() {
            return;
        }
        match write_batch(&mut self.conn, batch) {
            Ok(refused) => {
                let stored = batch.len() - refused.len();
                self.counters
                    .committed
                    .fetch_add(stored as u64, Ordering::Relaxed);
                if let Some((id, why)) = refused.last() {
                    self.counters.fail(
                        refused.len() as u64,
                        format!("message {id} was refused: {why}"),
                    );
                }
            }
            Err(e) => self.counters.fail(
                batch.len() as u64,
                format!("{} messages could not be saved: {e}", batch.len()),
            ),
        }
    }

    /// Deletes records older than `before_ms`, a chunk per transaction; their
    /// full-text entries go with them.
    fn purge(&mut self, before_ms: i64) -> rusqlite::Result<u64> {
        let mut total = 0;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // The index forgets a chunk before its rows go (an external-content
            // index must be told the text it indexed); the writer is the only
            // writer, so both statements see the same chunk.
            tx.execute(
                "INSERT INTO messages_fts (messages_fts, rowid, text) \
                 SELECT 'delete', id, text FROM messages WHERE id IN \
                 (SELECT id FROM messages WHERE at_ms < ?1 ORDER BY id LIMIT ?2)",
                params![before_ms, PURGE_CHUNK as i64],
            )?;
            let deleted = tx.execute(
                "DELETE FROM messages WHERE id IN \
                 (SELECT id FROM messages WHERE at_ms < ?1 ORDER BY id LIMIT ?2)",
                params![before_ms, PURGE_CHUNK as i64],
            )?;
            tx.commit()?;
            total += deleted as u64;
            if deleted < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }
}

/// Inserts a batch in one transaction, indexes its text and raises
/// `last_id`. A record SQLite refuses (an id already stored) is skipped and
/// returned with the reason rather than failing its whole batch; any other
/// error rolls the batch back.
fn write_batch(conn: &mut Connection, batch: &[Record]) -> rusqlite::Result<Vec<(u64, String)>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut refused = Vec::new();
    let mut highest = 0;
    let mut lowest = i64::MAX;
    let mut stored = Vec::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages (id, at_ms, scope, sender, kind, text) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in batch {
            let Ok(id) = i64::try_from(r.id) else {
                refused.push((r.id, "its id is too large".to_string()));
                continue;
            };
            match insert.execute(params![
                id,
                r.at_ms,
                r.scope.key(),
                r.from,
                r.kind.as_str(),
                r.text
            ]) {
                Ok(_) => {
                    highest = highest.max(id);
                    lowest = lowest.min(id);
                    stored.push(id);
                }
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    refused.push((r.id, e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
    }
    // Ids grow, so the batch's range normally holds its rows and no other;
    // when it does not (a refused id, ids out of order), older rows inside
    // it are indexed already and the batch is indexed row by row.
    let in_range: i64 = match stored.is_empty() {
        true => 0,
        false => tx.query_row(
            "SELECT count(*) FROM messages WHERE id BETWEEN ?1 AND ?2",
            [lowest, highest],
            |row| row.get(0),
        )?,
    };
    if usize::try_from(in_range) == Ok(stored.len()) {
        if !stored.is_empty() {
            tx.execute(
                "INSERT INTO messages_fts (rowid, text) \
                 SELECT id, text FROM messages WHERE id BETWEEN ?1 AND ?2",
                [lowest, highest],
            )?;
        }
    } else {
        let mut index = tx.prepare_cached(
            "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE id = ?1",
        )?;
        for id in stored {
            index.execute([id])?;
        }
    }
    tx.execute("UPDATE last_id SET id = max(id, ?1)", [highest])?;
    tx.commit()?;
    Ok(refused)
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
