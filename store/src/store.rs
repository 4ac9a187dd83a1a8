//! The handle an application holds: open, append, ask.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::error::{OpenError, QueryError};
use crate::lock::HistoryLock;
use crate::query::{self, Reply, Request};
use crate::record::{Record, Scope};
use crate::schema;
use crate::writer::{Command, Counters, Inbox, Stats, Writer};

/// How the store keeps and writes history.
#[derive(Clone, Debug)]
pub struct Options {
    /// Records older than this are deleted, at open and every ten minutes
    /// after; `None` keeps everything.
    pub keep: Option<Duration>,
    /// The longest a record waits in memory before it is committed: what a
    /// `kill -9` can lose at most.
    pub commit_every: Duration,
    /// Commit as soon as this many records are waiting, so a burst is
    /// written in bounded transactions.
    pub batch: usize,
    /// How many appends and queries may wait for the writer before `append`
    /// and `query` wait too.
    pub queue: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            keep: None,
            commit_every: Duration::from_secs(1),
            batch: 1000,
            queue: 8192,
        }
    }
}

/// An open message history: one SQLite database, written by a thread of its
/// own and read by another, locked against other servers while this value
/// lives.
///
/// Nothing here blocks on the disk in the normal course: [`Store::append`]
/// and [`Store::query`] queue work for the writer thread and return. The
/// queue is bounded; when it is full (the disk cannot keep up) they wait for
/// room rather than drop a message, and count the wait in
/// [`Stats::waited`]. Messages are the users' record of what was said, and
/// a short stall under overload is the lesser harm.
///
/// `Store` is `Send + Sync`: share it (in an `Arc`) between a runtime's
/// threads. Dropping it commits what is pending, answers every query still
/// queued, and releases the lock.
pub struct Store {
    path: PathBuf,
    last_id: u64,
    commands: Option<SyncSender<Command>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    /// Appended records on their way to the writer.
    inbox: Inbox,
    /// `Options::batch` and `Options::queue`.
    batch: usize,
    limit: usize,
    // Declared last, so dropped last: after Drop has stopped the writer.
    _lock: HistoryLock,
}

impl Store {
    /// Opens (creating it and its parent directories if needed) the history
    /// at `path`, e.g. `<data dir>/history.db`.
    ///
    /// Refuses, leaving the file as it was, if another server has it open,
    /// if a newer LanTalk wrote it, or if it is damaged or not a history.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Store, OpenError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let lock = HistoryLock::acquire(&path)?;
        let (conn, last_id) = schema::open_writer(&path)?;
        let reader_conn = schema::open_reader(&path)?;

        let queue = options.queue.max(1);
        let (jobs, job_queue) = mpsc::sync_channel(queue);
        let reader = spawn("lantalk-history-reader", &path, move || {
            query::serve(reader_conn, job_queue)
        })?;
        let counters = Arc::new(Counters::default());
        let inbox = Inbox::default();
        let (batch, limit) = (options.batch.max(1), options.queue.max(1));
        let writer = Writer::new(
            conn,
            inbox.clone(),
            options,
            counters.clone(),
            (jobs, reader),
        );
        let (commands, command_queue) = mpsc::sync_channel(queue);
        let writer = spawn("lantalk-history-writer", &path, move || {
            writer.run(command_queue)
        })?;
        Ok(Store {
            path,
            last_id,
            commands: Some(commands),
            writer: Some(writer),
            counters,
            inbox,
            batch,
            limit,
            _lock: lock,
        })
    }

    /// The database's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest id ever stored, when the store was opened (0 for a new
    /// history); the server numbers new messages from here on. Retention
    /// never lowers it, so ids are not reused even when old messages are
    /// gone.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Queues a record to be committed within `Options::commit_every`.
    /// Returns at once unless the queue is full (see [`Store`]).
    pub fn append(&self, record: Record) {
        if self.commands.is_none() {
            self.counters.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let waiting = {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.push(record);
            inbox.len()
        };
        let woken = if waiting >= self.limit {
            // The disk cannot keep up: wait for it rather than grow without
            // bound or drop a message.
            self.counters.waited.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::sync_channel(1);
            self.send(Command::Flush(tx)).is_ok() && rx.recv().is_ok()
        } else if waiting == 1 || waiting == self.batch {
            self.send(Command::Wake).is_ok()
        } else {
            true
        };
        if !woken {
            // The writer has stopped (it failed): what waits for it is lost.
            let lost = std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|e| e.into_inner()));
            self.counters
                .lost
                .fetch_add(lost.len() as u64, Ordering::Relaxed);
        }
    }

    /// Asks a question; `reply` is called with the answer on the store's
    /// reader thread, so it should only hand the answer over (send it on a
    /// channel, wake the event loop) and return. The answer includes every
    /// record appended before this call.
    pub fn query(&self, request: Request, reply: impl FnOnce(Reply) + Send + 'static) {
        if let Err(Command::Query((_, reply))) =
            self.send(Command::Query((request, Box::new(reply))))
        {
            reply(Err(QueryError::Closed));
        }
    }

    /// Asks a question and waits for the answer: for programs with no event
    /// loop to keep going (`history export`) and for tests.
    pub fn query_blocking(&self, request: Request) -> Reply {
        let (tx, rx) = mpsc::sync_channel(1);
        self.query(request, move |reply| {
            let _ = tx.send(reply);
        });
        rx.recv().unwrap_or(Err(QueryError::Closed))
    }

    /// Waits until everything appended so far is committed.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.send(Command::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Deletes every record older than `at_ms` (unix ms), with its
    /// full-text entry, and says how many went. Waits for the writer.
    pub fn purge_older_than(&self, at_ms: i64) -> Result<u64, QueryError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::Purge(at_ms, tx))
            .map_err(|_| QueryError::Closed)?;
        rx.recv().unwrap_or(Err(QueryError::Closed))
    }

    /// Every record of `scope` (of every room and PM, if `None`) from
    /// `since_ms` on, oldest first, read a page at a time so that exporting
    /// a large history takes little memory.
    pub fn export(&self, scope: Option<Scope>, since_ms: i64) -> Export<'_> {
        Export {
            source: Source::Store(self),
            scope,
            since_ms,
            after: 0,
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// How the writer has fared so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Queues a command, waiting for room if the queue is full; gives the
    /// command back if the writer has stopped.
    fn send(&self, command: Command) -> Result<(), Command> {
        let Some(commands) = &self.commands else {
            return Err(command);
        };
        match commands.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(command)) => {
                self.counters.waited.fetch_add(1, Ordering::Relaxed);
                commands.send(command).map_err(|e| e.0)
            }
            Err(TrySendError::Disconnected(command)) => Err(command),
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Hanging up tells the writer to commit, finish and close.
        self.commands = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A history opened to be read while its server may be running (`history
/// export`): no lock is taken and nothing is ever written; WAL lets it read
/// the last commit while the server writes the next.
pub struct ReadOnly {
    conn: rusqlite::Connection,
}

impl ReadOnly {
    /// Opens the history at `path` to read it. Refuses a missing file, one
    /// a newer LanTalk wrote, and one that is not a history.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnly, OpenError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        schema::check_readable(path)?;
        Ok(ReadOnly {
            conn: schema::open_reader(path)?,
        })
    }

    /// As [`Store::export`].
    pub fn export(&self, scope: Option<Scope>, since_ms: i64) -> Export<'_> {
        Export {
            source: Source::ReadOnly(&self.conn),
            scope,
            since_ms,
            after: 0,
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

/// Where an export reads: through a store's reader, or its own connection.
enum Source<'a> {
    Store(&'a Store),
    ReadOnly(&'a rusqlite::Connection),
}

/// The records of an export, a page at a time: see [`Store::export`].
pub struct Export<'a> {
    source: Source<'a>,
    scope: Option<Scope>,
    since_ms: i64,
    after: u64,
    page: std::vec::IntoIter<Record>,
    done: bool,
}

impl Iterator for Export<'_> {
    type Item = Result<Record, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.page.next() {
                self.after = record.id;
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            let request = Request::Export {
                scope: self.scope.clone(),
                since_ms: self.since_ms,
                after: self.after,
                limit: query::MAX_LIMIT,
            };
            let page = match self.source {
                Source::Store(store) => store.query_blocking(request),
                Source::ReadOnly(conn) => query::run(conn, &request).map_err(QueryError::from),
            };
            match page {
                Ok(page) => {
                    self.done = page.len() < query::MAX_LIMIT;
                    self.page = page.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Starts one of the store's threads; failing that (the system is out of
/// threads) is reported against the database being opened.
fn spawn(
    name: &str,
    database: &Path,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, OpenError> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|source| OpenError::Io {
            path: database.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    /// A runtime shares one store between its threads (the doc promises).
    #[test]
    fn store_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<super::Store>();
    }
}
