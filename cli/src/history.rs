//! The server's message history on disk: opens `history.db` in the data
//! directory (lantalk-store: SQLite, written by a thread of its own), and
//! carries out the core's [`StoreRequest`]s with it. Answers go back to the
//! server as [`Command::Stored`], never blocking its loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lantalk_core::driver::{Command, Control};
use lantalk_core::history::{Record, RecordKind, Scope, StoreReply, StoreRequest, Want};
use lantalk_store::{Kind, Options, Request, Store};

use crate::args::Keep;

/// The history file in a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("history.db")
}

/// An open history, shared with the store's threads.
pub struct History {
    store: Arc<Store>,
}

impl History {
    /// Opens (or creates) the history kept `keep` long. Refusals (a newer
    /// version's file, a damaged one, another server using it) are the
    /// store's sentences, for the person starting the server.
    pub fn open(data_dir: &Path, keep: Keep) -> Result<History, String> {
        let keep = match keep {
            Keep::For(d) => Some(d),
            Keep::Forever => None,
            Keep::Nothing => return Err("history is not kept on disk".into()),
        };
        let options = Options {
            keep,
            ..Options::default()
        };
        let store = Store::open(path(data_dir), options).map_err(|e| e.to_string())?;
        Ok(History {
            store: Arc::new(store),
        })
    }

    /// The id the next message gets: one past the newest kept, so ids never
    /// repeat across restarts.
    pub fn next_id(&self) -> u64 {
        self.store.last_id() + 1
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Carries out one request; a query's answer is delivered to `control`
    /// from the store's thread.
    pub fn carry_out(&self, request: StoreRequest, control: &Control) {
        match request {
            StoreRequest::Append(record) => self.store.append(to_store(record)),
            StoreRequest::Query { id, scope, want } => {
                let request_kind = match want {
                    Want::Before { .. } => Shape::Page,
                    Want::After { .. } => Shape::After,
                    Want::Search { .. } => Shape::Search,
                };
                let (request, limit) = to_request(scope, want);
                let control = control.clone();
                self.store.query(request, move |answer| {
                    let reply = match answer {
                        Ok(mut records) => {
                            // The store was asked for one more than wanted:
                            // whether it found it says if there is more. The
                            // extra one is the oldest of a page (oldest
                            // first) or of a search (newest first), the
                            // newest when catching up; the core wants them
                            // all oldest first.
                            let more = records.len() > limit;
                            match &request_kind {
                                Shape::Page if more => {
                                    records.remove(0);
                                }
                                Shape::Page => {}
                                Shape::After => records.truncate(limit),
                                Shape::Search => {
                                    records.truncate(limit);
                                    records.reverse();
                                }
                            }
                            StoreReply {
                                id,
                                records: records.into_iter().filter_map(from_store).collect(),
                                more,
                                error: None,
                            }
                        }
                        Err(e) => StoreReply {
                            id,
                            records: Vec::new(),
                            more: false,
                            error: Some(e.to_string()),
                        },
                    };
                    control(Command::Stored(Box::new(reply)));
                });
            }
        }
    }
}

/// Which way round a query's answer comes.
enum Shape {
    Page,
    After,
    Search,
}

/// How long, said as the banner says it.
pub fn describe(keep: Duration) -> String {
    let secs = keep.as_secs();
    let (n, unit) = if secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else if secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn scope_to_store(scope: &Scope) -> lantalk_store::Scope {
    match scope {
        Scope::Room(room) => lantalk_store::Scope::room(room),
        Scope::Pm(a, b) => lantalk_store::Scope::pm(a, b),
    }
}

fn scope_from_store(scope: lantalk_store::Scope) -> Scope {
    match scope {
        lantalk_store::Scope::Room(room) => Scope::Room(room.to_lowercase()),
        lantalk_store::Scope::Pm(a, b) => Scope::pm(&a, &b),
    }
}

fn to_store(r: Record) -> lantalk_store::Record {
    lantalk_store::Record {
        id: r.id,
        at_ms: r.at_ms,
        scope: scope_to_store(&r.scope),
        from: r.from,
        kind: match r.kind {
            RecordKind::Message => Kind::Message,
            RecordKind::Action => Kind::Action,
        },
        text: r.text,
    }
}

/// A stored record as the core knows it; notices (which this version does
/// not write) are left out.
fn from_store(r: lantalk_store::Record) -> Option<Record> {
    let kind = match r.kind {
        Kind::Message => RecordKind::Message,
        Kind::Action => RecordKind::Action,
        Kind::Notice => return None,
    };
    Some(Record {
        id: r.id,
        at_ms: r.at_ms,
        scope: scope_from_store(r.scope),
        from: r.from,
        text: r.text,
        kind,
    })
}

/// The store's request for what the core wants, asking one record more
/// than wanted so the answer can say whether there are more; and the limit.
fn to_request(scope: Scope, want: Want) -> (Request, usize) {
    let scope = scope_to_store(&scope);
    match want {
        Want::Before { before, limit } => (
            Request::Page {
                scope,
                before,
                limit: limit + 1,
            },
            limit,
        ),
        Want::After { after, limit } => (
            Request::After {
                scope,
                after,
                limit: limit + 1,
            },
            limit,
        ),
        Want::Search {
            text,
            before,
            limit,
        } => (
            Request::Search {
                scope,
                text,
                before,
                limit: limit + 1,
            },
            limit,
        ),
    }
}

/// `history export`: the records asked for, oldest first, on stdout.
pub fn export(args: crate::args::ExportArgs) -> std::process::ExitCode {
    use std::io::Write;
    use std::process::ExitCode;

    let run = || -> Result<(), String> {
        let dir = crate::files::data_dir(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
        let file = path(&dir);
        if !file.exists() {
            return Err(format!("no history at {}", file.display()));
        }
        let store = lantalk_store::ReadOnly::open(&file).map_err(|e| e.to_string())?;
        let scope = match (&args.room, args.pm.as_slice()) {
            (Some(room), _) => {
                lantalk_core::rooms::validate_room(room)
                    .map_err(|bad| format!("--room {room}: {bad}"))?;
                Some(lantalk_store::Scope::room(room))
            }
            (None, [a, b]) => Some(lantalk_store::Scope::pm(a, b)),
            _ => None,
        };
        let since_ms = match args.since {
            Some(day) => day
                .and_hms_opt(0, 0, 0)
                .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
                .map_or(0, |t| t.timestamp_millis()),
            None => i64::MIN,
        };
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for record in store.export(scope, since_ms) {
            let record = record.map_err(|e| e.to_string())?;
            let line = if args.text {
                as_text(&record)
            } else {
                record.to_json_line()
            };
            if writeln!(out, "{line}").is_err() {
                // The reader went away (`| head`): not an error of ours.
                return Ok(());
            }
        }
        out.flush().map_err(|e| e.to_string())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::term::eprint(&crate::style::Line::plain(format!("error: {e}")));
            ExitCode::FAILURE
        }
    }
}

/// `2026-12-04 14:22 #team <bob> hi`, made safe for a terminal.
fn as_text(r: &lantalk_store::Record) -> String {
    let when = chrono::DateTime::from_timestamp_millis(r.at_ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "?".into());
    let place = match &r.scope {
        lantalk_store::Scope::Room(room) => room.clone(),
        lantalk_store::Scope::Pm(a, b) => format!("pm {a}/{b}"),
    };
    let said = match r.kind {
        Kind::Action => format!("* {} {}", r.from, r.text),
        Kind::Message | Kind::Notice => format!("<{}> {}", r.from, r.text),
    };
    lantalk_core::text::visible(&format!("{when} {place} {said}")).into_owned()
}
