//! The rooms the user is in, the one they speak in, and what they have not
//! read yet; and earlier lines (history) as the server sends them.
//!
//! Only with a server of ours: LanTalk 2.0 servers know no rooms, and then
//! the client speaks in the one room there is, as it always did.

use super::*;
use crate::history::Want;
use crate::protocol::{HistoryReason, PastLine, Place, RoomView};

use crate::rooms::{room_key, LOBBY};
use outbox::OutKind;

/// How long lines typed for the room we spoke in wait, after a
/// reconnection, for the server to let us back in: long enough for a slow
/// server, short enough that a refused `/join` is said while the person
/// still remembers what they typed.
const REJOIN_HOLD: Duration = Duration::from_secs(10);

/// A room to go back into after a reconnection, and the last message id
/// seen there: what was said since is asked for, so nothing is missed and
/// nothing shown twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejoin {
    pub room: String,
    /// The key it was joined with, if it needed one (kept in memory only).
    pub key: Option<String>,
    /// The oldest and newest message ids shown there: the join's page of
    /// history leaves out what was shown already (the server may have
    /// restarted and forgotten the room, so the page can hold old lines).
    pub oldest: Option<u64>,
    pub after: Option<u64>,
    /// It was the room the user spoke in.
    pub current: bool,
}

/// A room the user is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomState {
    pub view: RoomView,
    /// Messages said there since the user last spoke in it.
    pub unread: usize,
    /// The oldest and newest message ids seen there: `/history` pages back
    /// from the oldest; a reconnection resumes after the newest.
    pub oldest: Option<u64>,
    pub newest: Option<u64>,
    /// The key the user joined it with, to join again after a reconnection.
    pub key: Option<String>,
}

/// The rooms the user is in, in the order they joined them.
#[derive(Clone, Debug, Default)]
pub(super) struct Rooms {
    pub(super) list: Vec<RoomState>,
    /// Index into `list` of the room typed lines go to.
    pub(super) current: usize,
    /// Rooms (by key) being caught up after a reconnection, from this id:
    /// their join history is left out for the `after` answers.
    pub(super) resuming: std::collections::HashMap<String, u64>,
    /// The key typed with the last `/join`, for the room it named.
    pub(super) join_key: Option<(String, String)>,
    /// The last `/search`, which a bare `/search` pages on from.
    pub(super) search: Option<Search>,
}

/// A search in progress: its room and words, and where the next page of
/// older matches starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Search {
    room: String,
    text: String,
    /// The oldest match shown so far (`None` until the first page arrives).
    before: Option<u64>,
    /// Whether older matches are left.
    more: bool,
}

impl Rooms {
    fn find(&self, room: &str) -> Option<usize> {
        let key = room_key(room);
        self.list.iter().position(|r| room_key(&r.view.room) == key)
    }

    fn current_name(&self) -> Option<&str> {
        self.list.get(self.current).map(|r| r.view.room.as_str())
    }

    fn note_id(&mut self, room: &str, id: u64) {
        if let Some(i) = self.find(room) {
            let r = &mut self.list[i];
            r.oldest = Some(r.oldest.map_or(id, |o| o.min(id)));
            r.newest = Some(r.newest.map_or(id, |n| n.max(id)));
        }
    }
}

impl Client {
    /// The rooms the user is in (servers of ours; empty otherwise).
    pub fn rooms(&self) -> &[RoomState] {
        &self.rooms.list
    }

    /// The room typed lines go to, with a server of ours.
    pub fn current_room(&self) -> Option<&str> {
        self.rooms.current_name()
    }

    /// Where to pick up again after a reconnection: the rooms we are in and
    /// the newest id seen in each.
    pub fn rejoin_points(&self) -> Vec<Rejoin> {
        self.rooms
            .list
            .iter()
            .enumerate()
            .map(|(i, r)| Rejoin {
                room: r.view.room.clone(),
                key: r.key.clone(),
                oldest: r.oldest,
                after: r.newest,
                current: i == self.rooms.current,
            })
            .collect()
    }

    /// The room a line typed now is said in (`None`: a LanTalk 2.0 server).
    pub(super) fn speaking_in(&self) -> Option<String> {
        self.rooms.current_name().map(str::to_string)
    }

    /// The server's word that we are in `view.room` (joined, or its state
    /// changed). A room newly entered becomes the one we speak in, except
    /// the lobby at login when another room is already current.
    pub(super) fn room_state(&mut self, now: Now, view: RoomView) {
        if let Some(i) = self.rooms.find(&view.room) {
            self.rooms.list[i].view = view.clone();
            // `/join` of a room we are in is answered with its state: the
            // user wanted to speak there.
            if self.rooms.current != i
                && self.join_asked.as_deref().map(room_key) == Some(room_key(&view.room))
            {
                self.join_asked = None;
                return self.switch_to(i);
            }
            return self.event(ClientEvent::RoomUpdated(view));
        }
        let lobby = room_key(&view.room) == LOBBY;
        let key = match self.rooms.join_key.take() {
            Some((room, key)) if room_key(&room) == room_key(&view.room) => Some(key),
            other => {
                self.rooms.join_key = other;
                None
            }
        };
        let room = view.room.clone();
        self.rooms.list.push(RoomState {
            view: view.clone(),
            unread: 0,
            oldest: None,
            newest: None,
            key,
        });
        let i = self.rooms.list.len() - 1;
        self.event(ClientEvent::RoomEntered(view));
        let first = i == 0;
        let back_into = self
            .config
            .rejoin
            .iter()
            .position(|r| room_key(&r.room) == room_key(&room));
        let mut was_current = false;
        if let Some(at) = back_into {
            let again = self.config.rejoin.remove(at);
            was_current = again.current;
            let r = &mut self.rooms.list[i];
            (r.oldest, r.newest) = (again.oldest, again.after);
            if let Some(after) = again.after {
                self.rooms.resuming.insert(room_key(&room), after);
                self.ask_after(now, &room, after);
            }
            if again.key.is_some() {
                self.rooms.list[i].key = again.key;
            }
        }
        if first {
            // Logged in again after a reconnection: back into the rooms we
            // were in (the lobby is where everyone starts). Lines typed for
            // the room we spoke in wait until we are back in it.
            self.rejoin_hold = self
                .config
                .rejoin
                .iter()
                .find(|r| r.current && room_key(&r.room) != LOBBY)
                .map(|r| (r.room.clone(), now.instant + REJOIN_HOLD));
            for r in self.config.rejoin.clone() {
                let line = match &r.key {
                    Some(key) => format!("/join {} {key}", r.room),
                    None => format!("/join {}", r.room),
                };
                self.queue(now, line, OutKind::Command);
            }
        }
        // A room joined on request is where the user speaks next; the
        // lobby at login too; rooms rejoined after a reconnection are not.
        if first || was_current || (!lobby && back_into.is_none()) {
            self.join_asked = None;
            self.switch_to(i);
        }
        if was_current && self.rejoin_hold.take().is_some() {
            self.replay_early(now);
        }
        if first && self.awaiting_lobby {
            self.replay_early(now);
        }
    }

    /// Asks what was said in `room` after id `after`.
    fn ask_after(&mut self, now: Now, room: &str, after: u64) {
        let want = Want::After {
            after,
            limit: protocol::MAX_HISTORY_PAGE,
        };
        let line = protocol::history_request(&Place::Room(room.to_string()), &want);
        self.queue(now, line, OutKind::Request);
    }

    pub(super) fn room_left(&mut self, room: String, reason: String) {
        let Some(i) = self.rooms.find(&room) else {
            return;
        };
        self.rooms.list.remove(i);
        self.event(ClientEvent::RoomLeft { room, reason });
        if self.rooms.list.is_empty() {
            self.rooms.current = 0;
            return;
        }
        if self.rooms.current == i {
            // Back to the room joined just before it.
            self.switch_to(i.saturating_sub(1).min(self.rooms.list.len() - 1));
        } else if self.rooms.current > i {
            self.rooms.current -= 1;
        }
    }

    pub(super) fn room_member(&mut self, room: String, user: String, joined: bool, text: String) {
        if let Some(i) = self.rooms.find(&room) {
            let members = &mut self.rooms.list[i].view.members;
            members.retain(|m| !m.eq_ignore_ascii_case(&user));
            if joined {
                members.push(user.clone());
            }
        }
        self.event(ClientEvent::RoomMember {
            room,
            user,
            joined,
            text,
        });
    }

    /// Someone left the server: out of every room's list too.
    pub(super) fn gone_from_rooms(&mut self, user: &str) {
        for r in &mut self.rooms.list {
            r.view.members.retain(|m| !m.eq_ignore_ascii_case(user));
        }
    }

    /// A message of `room` arrived: unread if it is not where we speak.
    pub(super) fn room_message(&mut self, room: &str, id: Option<u64>) {
        if let Some(id) = id {
            self.rooms.note_id(room, id);
        }
        if let Some(i) = self.rooms.find(room) {
            if i != self.rooms.current {
                self.rooms.list[i].unread += 1;
            }
        }
    }

    fn switch_to(&mut self, i: usize) {
        self.rooms.current = i;
        if let Some(r) = self.rooms.list.get_mut(i) {
            r.unread = 0;
            let room = r.view.room.clone();
            self.event(ClientEvent::Switched { room });
        }
    }

    /// `/switch #room` or `/switch N`.
    pub(super) fn switch_command(&mut self, arg: &str) {
        let arg = arg.trim();
        let by_number = arg
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .filter(|&i| i < self.rooms.list.len());
        match by_number.or_else(|| self.rooms.find(arg)) {
            Some(i) => self.switch_to(i),
            None if arg.is_empty() => self.notice("Usage: /switch <#room|n>".to_string()),
            None => self.notice(format!("You are not in {arg} (/join it first).")),
        }
    }

    /// `/join #room` of a room we are in switches to it at once; any other
    /// goes to the server, and its answer switches.
    pub(super) fn join_command(&mut self, rest: &str) -> bool {
        let (room, key) = protocol::split_word(rest);
        if let Some(i) = self.rooms.find(room) {
            self.switch_to(i);
            return true;
        }
        self.join_asked = Some(room.to_string());
        let key = protocol::py_trim(key);
        self.rooms.join_key = (!key.is_empty()).then(|| (room.to_string(), key.to_string()));
        false
    }

    /// `/history [n]`: `n` lines from before the oldest one seen here.
    /// `/history @user [n]`: the last `n` lines of the private
    /// conversation with `user`.
    pub(super) fn history_command(&mut self, now: Now, rest: &str) {
        let Some(room) = self.speaking_in() else {
            return self.notice("This server keeps no history (LanTalk 2.0).".to_string());
        };
        let (first, tail) = protocol::split_word(rest);
        let (with, count) = match first.strip_prefix('@') {
            Some(user) if !user.is_empty() => (Some(user.to_string()), tail),
            _ => (None, rest),
        };
        let limit = match count.trim() {
            "" => 20,
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => n.min(protocol::MAX_HISTORY_PAGE),
                _ => return self.notice("Usage: /history [n] or /history @user [n]".to_string()),
            },
        };
        if let Some(user) = with {
            let want = Want::Before {
                before: None,
                limit,
            };
            let line = protocol::history_request(&Place::Pm(user), &want);
            return self.queue(now, line, OutKind::Request);
        }
        let before = self
            .rooms
            .find(&room)
            .and_then(|i| self.rooms.list[i].oldest);
        let line = protocol::history_request(&Place::Room(room), &Want::Before { before, limit });
        self.queue(now, line, OutKind::Request);
    }

    /// `/search <words>`: this room's history, newest first, a page at a
    /// time; a bare `/search` shows the next page of older matches.
    pub(super) fn search_command(&mut self, now: Now, rest: &str) {
        let Some(room) = self.speaking_in() else {
            return self.notice("This server keeps no history (LanTalk 2.0).".to_string());
        };
        let text = protocol::py_trim(rest);
        let (text, before) = if text.is_empty() {
            match &self.rooms.search {
                Some(s) if room_key(&s.room) == room_key(&room) && s.more => {
                    (s.text.clone(), s.before)
                }
                Some(s) if room_key(&s.room) == room_key(&room) && s.before.is_some() => {
                    return self.notice(format!("No older matches for \"{}\" in {room}.", s.text));
                }
                _ => {
                    return self.notice(
                        "Usage: /search <words> (then /search for older matches)".to_string(),
                    )
                }
            }
        } else {
            (text.to_string(), None)
        };
        self.rooms.search = Some(Search {
            room: room.clone(),
            text: text.clone(),
            before,
            more: false,
        });
        let want = Want::Search {
            text,
            before,
            limit: 20,
        };
        let line = protocol::history_request(&Place::Room(room), &want);
        self.queue(now, line, OutKind::Request);
    }

    /// Earlier lines from the server. Lines of a room already shown (by id)
    /// are left out, so a page that overlaps what is on screen, or a join's
    /// history after a reconnection, shows nothing twice.
    pub(super) fn history(
        &mut self,
        now: Now,
        place: Place,
        reason: HistoryReason,
        lines: Vec<PastLine>,
        more: bool,
    ) {
        if let Place::Room(room) = &place {
            let key = room_key(room);
            match reason {
                // Caught up by `after` instead: the join's page could leave
                // a gap (more was said than it holds).
                HistoryReason::Join if self.rooms.resuming.contains_key(&key) => return,
                HistoryReason::Resume if more => {
                    if let Some(last) = lines.last().map(|l| l.id) {
                        self.rooms.resuming.insert(key, last);
                        self.ask_after(now, room, last);
                    }
                }
                HistoryReason::Resume => {
                    self.rooms.resuming.remove(&key);
                    if lines.is_empty() {
                        // Nothing was missed: nothing to say.
                        return;
                    }
                }
                HistoryReason::Search => {
                    if let Some(search) = self
                        .rooms
                        .search
                        .as_mut()
                        .filter(|s| room_key(&s.room) == key)
                    {
                        search.before = lines.first().map(|l| l.id).or(search.before);
                        // An empty page has nothing older to page from.
                        search.more = more && !lines.is_empty();
                    }
                }
                _ => {}
            }
        }
        let lines = match &place {
            Place::Room(room) if reason != HistoryReason::Search => {
                let seen = self.rooms.find(room).map(|i| {
                    let r = &self.rooms.list[i];
                    (r.oldest, r.newest)
                });
                let offered = lines.len();
                let fresh: Vec<PastLine> = lines
                    .into_iter()
                    .filter(|l| match seen {
                        Some((Some(oldest), Some(newest))) => l.id < oldest || l.id > newest,
                        _ => true,
                    })
                    .collect();
                for l in &fresh {
                    self.rooms.note_id(room, l.id);
                }
                if fresh.is_empty() && offered > 0 && reason == HistoryReason::Join {
                    // All shown before (back in a room after a reconnection).
                    return;
                }
                fresh
            }
            _ => lines,
        };
        self.event(ClientEvent::History {
            place,
            reason,
            lines,
            more,
        });
    }
}
