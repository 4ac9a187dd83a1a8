//! History on the server: every message gets an id and a record; each room
//! keeps its newest records in memory; anything older is asked of the
//! application's store, and its answer is merged with what is in memory
//! (the store writes in batches, so its newest second may not be there yet).
//!
//! Who may read what is decided here, not in the store: a room's history is
//! for its members; a private conversation's for the two people in it.

use std::collections::VecDeque;

use super::*;
use crate::history::{QueryId, Record, RecordKind, Scope, StoreReply, StoreRequest, Want};
use crate::protocol::{HistoryReason, Place};
use crate::rooms::room_key;

/// How much history the server keeps and shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// `false` (`--no-history`): nothing is kept, in memory or on disk.
    pub enabled: bool,
    /// The application keeps records on disk and answers queries.
    pub store: bool,
    /// Records shown on joining a room.
    pub on_join: usize,
    /// Records kept in memory per room.
    pub window: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            store: false,
            on_join: 50,
            window: 512,
        }
    }
}

/// A query handed to the store, and who waits for its answer.
pub(super) struct Pending {
    conn: ConnId,
    place: Place,
    scope: Scope,
    want: Want,
    reason: HistoryReason,
}

impl Server {
    /// Gives a message its id, keeps it in its room's window and hands it
    /// to the store. Returns the id.
    pub(super) fn record(&mut self, now: Now, room: &str, from: &str, text: &str) -> u64 {
        let id = self.next_id(now);
        if !self.config.history.enabled {
            return id;
        }
        let (kind, text) = match text.strip_prefix("/me ") {
            Some(action) => (RecordKind::Action, action),
            None => (RecordKind::Message, text),
        };
        let Some(r) = self.rooms.get_mut(room) else {
            return id;
        };
        let record = Record {
            id,
            at_ms: now.wall.unix_ms,
            scope: Scope::Room(room.to_string()),
            from: from.to_string(),
            text: text.to_string(),
            kind,
        };
        if self.config.history.window > 0 {
            if r.recent.len() >= self.config.history.window {
                r.recent.pop_front();
                r.complete = false;
            }
            r.recent.push_back(record.clone());
        } else {
            r.complete = false;
        }
        if self.config.history.store {
            self.actions
                .push_back(Action::Store(Box::new(StoreRequest::Append(record))));
        }
        id
    }

    /// The next message id: one more than the last, and never below the
    /// time in microseconds-ish (`unix_ms × 1000`). The store commits in
    /// batches, so after a crash the ids of its last uncommitted second were
    /// seen by clients but are not on disk; the clock, which moved on while
    /// the server restarted, keeps them from being given out twice (a client
    /// resuming "after id N" would otherwise miss what follows). Below 2^53
    /// until the year 2255, so JavaScript reads them exactly.
    fn next_id(&mut self, now: Now) -> u64 {
        let floor = u64::try_from(now.wall.unix_ms)
            .unwrap_or(0)
            .saturating_mul(1000);
        let id = self.next_message.max(floor);
        self.next_message = id + 1;
        id
    }

    /// Keeps a private message (no window: a conversation's history comes
    /// from the store alone). Returns its id.
    pub(super) fn record_pm(&mut self, now: Now, from: &str, to: &str, text: &str) -> u64 {
        let id = self.next_id(now);
        if self.config.history.enabled && self.config.history.store {
            let record = Record {
                id,
                at_ms: now.wall.unix_ms,
                scope: Scope::pm(from, to),
                from: from.to_string(),
                text: text.to_string(),
                kind: RecordKind::Message,
            };
            self.actions
                .push_back(Action::Store(Box::new(StoreRequest::Append(record))));
        }
        id
    }

    /// The lines of `room` a new member sees first.
    pub(super) fn history_on_join(&mut self, now: Now, conn: ConnId, room: &str) {
        let limit = self.config.history.on_join;
        if !self.config.history.enabled || limit == 0 {
            return;
        }
        let Some(name) = self.rooms.get(room).map(|r| r.name.clone()) else {
            return;
        };
        let want = Want::Before {
            before: None,
            limit,
        };
        let scope = Scope::Room(room.to_string());
        self.serve(
            now,
            conn,
            Place::Room(name),
            scope,
            want,
            HistoryReason::Join,
        );
    }

    /// A client of ours asks for history or searches.
    pub(super) fn handle_history_request(
        &mut self,
        now: Now,
        conn: ConnId,
        place: Place,
        want: Want,
    ) {
        if !self.config.history.enabled {
            let notice = "This server keeps no history (--no-history).";
            return self.send(conn, protocol::system(now.wall, notice));
        }
        let Some(me) = self
            .conns
            .get(&conn)
            .and_then(Conn::name)
            .map(str::to_string)
        else {
            return;
        };
        let (place, scope) = match place {
            Place::Room(room) => {
                let key = room_key(&room);
                // Only members read a room's history.
                match self.rooms.get(&key) {
                    Some(r) if r.members.contains(&conn) => {
                        (Place::Room(r.name.clone()), Scope::Room(key))
                    }
                    _ => {
                        let notice = crate::text::visible(&format!(
                            "You are not in {room}: no history to show."
                        ))
                        .into_owned();
                        return self.send(conn, protocol::system(now.wall, &notice));
                    }
                }
            }
            // Only one's own conversations: the scope names the asker.
            Place::Pm(with) => (Place::Pm(with.clone()), Scope::pm(&me, &with)),
        };
        let reason = match want {
            Want::Search { .. } => HistoryReason::Search,
            Want::After { .. } => HistoryReason::Resume,
            Want::Before { .. } => HistoryReason::Page,
        };
        if matches!(want, Want::Search { .. }) && !self.config.history.store {
            // Searching the window alone would look complete and is not.
            let notice = "Search needs the history store, which this server does not keep.";
            return self.send(conn, protocol::system(now.wall, notice));
        }
        self.serve(now, conn, place, scope, want, reason);
    }

    /// Answers from the room's window when it holds the whole answer;
    /// otherwise asks the store.
    fn serve(
        &mut self,
        now: Now,
        conn: ConnId,
        place: Place,
        scope: Scope,
        want: Want,
        reason: HistoryReason,
    ) {
        if let Some((records, more)) = self.answer_from_window(&scope, &want) {
            return self.send_history(now, conn, &place, reason, &records, more);
        }
        if !self.config.history.store {
            // Memory is all there is: what it has is the answer.
            let (records, more) = self.window_part(&scope, &want);
            return self.send_history(now, conn, &place, reason, &records, more);
        }
        let id = QueryId(self.next_query);
        self.next_query += 1;
        self.queries.insert(
            id,
            Pending {
                conn,
                place,
                scope: scope.clone(),
                want: want.clone(),
                reason,
            },
        );
        self.actions
            .push_back(Action::Store(Box::new(StoreRequest::Query {
                id,
                scope,
                want,
            })));
    }

    /// The answer if the window certainly holds all of it.
    fn answer_from_window(&self, scope: &Scope, want: &Want) -> Option<(Vec<Record>, bool)> {
        let Scope::Room(key) = scope else {
            return None;
        };
        let room = self.rooms.get(key)?;
        if room.complete && !matches!(want, Want::Search { .. }) {
            // Memory holds the room's whole history: it is the answer.
            return Some(self.window_part(scope, want));
        }
        let recent = &room.recent;
        match want {
            // Enough records below `before` in memory: those are the newest.
            Want::Before { before, limit } => {
                let below = recent
                    .iter()
                    .filter(|r| before.is_none_or(|b| r.id < b))
                    .count();
                (below > *limit).then(|| self.window_part(scope, want))
            }
            // Caught up from an id the window still holds: all that
            // followed it is there too.
            Want::After { after, .. } => {
                let oldest = recent.front()?.id;
                (oldest <= *after).then(|| self.window_part(scope, want))
            }
            Want::Search { .. } => None,
        }
    }

    /// What the window has for `want`, and whether more of it matched.
    fn window_part(&self, scope: &Scope, want: &Want) -> (Vec<Record>, bool) {
        let empty = VecDeque::new();
        let recent = match scope {
            Scope::Room(key) => self.rooms.get(key).map_or(&empty, |r| &r.recent),
            Scope::Pm(..) => &empty,
        };
        pick(recent.iter(), want)
    }

    /// The store's answer, merged with the window (whose newest records the
    /// store may not have written yet), to whoever asked if still there.
    pub fn handle_store_reply(&mut self, now: Now, reply: StoreReply) {
        self.expire(now);
        let Some(p) = self.queries.remove(&reply.id) else {
            return;
        };
        if !self.conns.contains_key(&p.conn) {
            return;
        }
        // Left the room while the store looked: no longer theirs to read.
        if let Scope::Room(key) = &p.scope {
            if !self
                .rooms
                .get(key)
                .is_some_and(|r| r.members.contains(&p.conn))
            {
                return;
            }
        }
        if let Some(error) = reply.error {
            self.event(
                Level::Warning,
                EventKind::Rooms,
                format!("History store: {error}"),
            );
            let notice =
                "History is unavailable right now (the server's store failed; its log says why).";
            return self.send(p.conn, protocol::system(now.wall, notice));
        }
        let (mut records, more) = match &p.want {
            Want::Search { .. } => (reply.records, reply.more),
            _ => {
                let (window, _) = self.window_part(&p.scope, &p.want);
                let mut all: Vec<Record> = reply.records;
                all.extend(window);
                all.sort_by_key(|r| r.id);
                all.dedup_by_key(|r| r.id);
                let (picked, more_here) = pick(all.iter(), &p.want);
                (picked, reply.more || more_here)
            }
        };
        records.retain(|r| r.scope == p.scope);
        // The newest page, and nothing older: now memory knows the room's
        // whole history, and the next joins need not ask the store.
        if let (Scope::Room(key), Want::Before { before: None, .. }, false) =
            (&p.scope, &p.want, more)
        {
            self.prime(key, &records);
        }
        self.send_history(now, p.conn, &p.place, p.reason, &records, more);
    }

    /// Fills the window of `room` from `records` (all there is besides what
    /// memory has), so that it holds the room's whole history if it fits.
    fn prime(&mut self, room: &str, records: &[Record]) {
        let window = self.config.history.window;
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let mut all: Vec<Record> = records.iter().cloned().chain(r.recent.drain(..)).collect();
        all.sort_by_key(|r| r.id);
        all.dedup_by_key(|r| r.id);
        r.complete = all.len() <= window;
        let skip = all.len().saturating_sub(window);
        r.recent = all.into_iter().skip(skip).collect();
    }

    /// One `history` line; none on arriving in a room with nothing said yet
    /// (any other answer, empty or not, is what the client waits for).
    fn send_history(
        &mut self,
        now: Now,
        conn: ConnId,
        place: &Place,
        reason: HistoryReason,
        records: &[Record],
        more: bool,
    ) {
        if reason == HistoryReason::Join && records.is_empty() && !more {
            return;
        }
        let line = protocol::history(now.wall, place, reason, records, more);
        self.send(conn, line);
    }
}

/// The records `want` selects from `records` (in id order), oldest first,
/// and whether more matched than were picked.
fn pick<'a>(
    records: impl DoubleEndedIterator<Item = &'a Record> + Clone,
    want: &Want,
) -> (Vec<Record>, bool) {
    match want {
        Want::Before { before, limit } => {
            let mut out: Vec<Record> = records
                .clone()
                .rev()
                .filter(|r| before.is_none_or(|b| r.id < b))
                .take(limit + 1)
                .cloned()
                .collect();
            let more = out.len() > *limit;
            out.truncate(*limit);
            out.reverse();
            (out, more)
        }
        Want::After { after, limit } => {
            let mut out: Vec<Record> = records
                .filter(|r| r.id > *after)
                .take(limit + 1)
                .cloned()
                .collect();
            let more = out.len() > *limit;
            out.truncate(*limit);
            (out, more)
        }
        Want::Search { .. } => (Vec::new(), false),
    }
}
