//! What the terminal shows of rooms: which one the user speaks in, unread
//! counts for the prompt, the rooms Tab completes, and a date line when
//! the day changes. All of it follows the client's typed events; nothing is
//! read out of sentences.

use std::sync::{Arc, Mutex};

use chrono::{Local, NaiveDate, TimeZone};
use lantalk_core::client::ClientEvent;

use crate::editor::{LivePrompt, LiveText, Names};
use crate::style::{Line, Style, Whereabouts};

/// The rooms the user is in, as the events told.
#[derive(Default)]
pub struct Rooms {
    /// Room names in the order joined, with their unread counts.
    list: Vec<(String, usize)>,
    current: Option<String>,
    /// The day of the last message shown, for date lines.
    last_day: Option<NaiveDate>,
    /// Shared with the line editor, when there is one.
    prompt: Option<(LivePrompt, String)>,
    completion: Option<Names>,
}

impl Rooms {
    /// Rooms for a terminal: the prompt `[me | #room ...] > ` kept current in
    /// `prompt`, room names kept in `completion`.
    pub fn for_terminal(prompt: LivePrompt, me: &str, completion: Names) -> Rooms {
        Rooms {
            prompt: Some((prompt, me.to_string())),
            completion: Some(completion),
            last_day: Some(Local::now().date_naive()),
            ..Rooms::default()
        }
    }

    pub fn whereabouts(&self, piped: bool) -> Whereabouts {
        Whereabouts {
            current: self.current.clone(),
            rooms: self.list.len(),
            piped,
        }
    }

    fn find(&self, room: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|(r, _)| r.eq_ignore_ascii_case(room))
    }

    /// Follows `event`; returns a date line to print before it when a
    /// message from another day is shown.
    pub fn observe(&mut self, event: &ClientEvent, style: &Style) -> Option<Line> {
        let mut date = None;
        match event {
            ClientEvent::Joined { username, .. } => {
                if let Some((_, me)) = self.prompt.as_mut() {
                    *me = username.clone();
                }
            }
            ClientEvent::RoomEntered(view) => {
                if self.find(&view.room).is_none() {
                    self.list.push((view.room.clone(), 0));
                }
            }
            ClientEvent::RoomLeft { room, .. } => {
                if let Some(i) = self.find(room) {
                    self.list.remove(i);
                }
            }
            ClientEvent::Switched { room } => {
                self.current = Some(room.clone());
                if let Some(i) = self.find(room) {
                    self.list[i].1 = 0;
                }
            }
            ClientEvent::Message { room, at_ms, .. } => {
                if let Some(room) = room {
                    let here = self
                        .current
                        .as_deref()
                        .is_some_and(|c| c.eq_ignore_ascii_case(room));
                    if let (false, Some(i)) = (here, self.find(room)) {
                        self.list[i].1 += 1;
                    }
                }
                if let Some(day) = at_ms.and_then(local_day) {
                    if self.last_day.is_some_and(|d| d != day) {
                        date = Some(
                            style
                                .line()
                                .painted("2", format!("── {} ──", day.format("%A %-d %B %Y"))),
                        );
                    }
                    self.last_day = Some(day);
                }
            }
            _ => return None,
        }
        self.publish();
        date
    }

    /// The prompt and the completion list, after a change.
    fn publish(&self) {
        if let Some(names) = &self.completion {
            let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
            names.clear();
            names.extend(self.list.iter().map(|(r, _)| r.clone()));
        }
        let Some((prompt, me)) = &self.prompt else {
            return;
        };
        let mut text = String::new();
        if let Some(current) = &self.current {
            text = format!("[{me} | {current}");
            let others: Vec<String> = self
                .list
                .iter()
                .filter(|(r, n)| *n > 0 && !r.eq_ignore_ascii_case(current))
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            if !others.is_empty() {
                text.push_str(&format!(" · unread: {}", others.join(", ")));
            }
            text.push_str("] > ");
        }
        prompt.lock().unwrap_or_else(|e| e.into_inner()).set(text);
    }
}

fn local_day(at_ms: i64) -> Option<NaiveDate> {
    Local
        .timestamp_millis_opt(at_ms)
        .single()
        .map(|t| t.date_naive())
}

/// A new, empty live prompt.
pub fn live_prompt() -> LivePrompt {
    Arc::new(Mutex::new(LiveText::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lantalk_core::client::RoomView;

    fn entered(room: &str) -> ClientEvent {
        ClientEvent::RoomEntered(RoomView {
            room: room.into(),
            ..RoomView::default()
        })
    }

    fn said(room: &str, at_ms: i64) -> ClientEvent {
        ClientEvent::Message {
            ts: "12:00".into(),
            user: "bob".into(),
            text: "hi".into(),
            room: Some(room.into()),
            id: None,
            at_ms: Some(at_ms),
        }
    }

    #[test]
    fn the_prompt_shows_the_room_and_unread_counts() {
        let prompt = live_prompt();
        let names = Names::default();
        let mut rooms = Rooms::for_terminal(prompt.clone(), "ann", names.clone());
        let style = Style { colour: false };
        let now = Local::now().timestamp_millis();
        for e in [
            entered("#lobby"),
            ClientEvent::Switched {
                room: "#lobby".into(),
            },
            entered("#team"),
            ClientEvent::Switched {
                room: "#team".into(),
            },
            said("#lobby", now),
            said("#lobby", now),
            said("#team", now),
        ] {
            rooms.observe(&e, &style);
        }
        assert_eq!(
            prompt.lock().unwrap().text(),
            "[ann | #team · unread: #lobby 2] > "
        );
        rooms.observe(
            &ClientEvent::Switched {
                room: "#LOBBY".into(),
            },
            &style,
        );
        assert_eq!(prompt.lock().unwrap().text(), "[ann | #LOBBY] > ");
        assert_eq!(names.lock().unwrap().len(), 2, "both rooms complete");
        let w = rooms.whereabouts(true);
        assert_eq!((w.rooms, w.piped), (2, true));
    }

    #[test]
    fn a_date_line_when_the_day_changes() {
        let mut rooms = Rooms::for_terminal(live_prompt(), "ann", Names::default());
        let style = Style { colour: false };
        let now = Local::now().timestamp_millis();
        assert!(
            rooms.observe(&said("#lobby", now), &style).is_none(),
            "today"
        );
        let week_ago = now - 7 * 86_400_000;
        let line = rooms
            .observe(&said("#lobby", week_ago), &style)
            .expect("a date line");
        assert!(line.render().starts_with("── "), "{}", line.render());
        assert!(
            rooms.observe(&said("#lobby", week_ago), &style).is_none(),
            "same day"
        );
    }
}
