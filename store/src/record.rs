//! What the store keeps: one [`Record`] per chat line, and the [`Scope`] it
//! belongs to.

use serde::Serialize;

/// One stored line of chat.
///
/// The store never invents ids: the server assigns them (monotonic, never
/// reused, continuing from [`Store::last_id`](crate::Store::last_id) after a
/// restart) so that a client can say "everything after id 41" to resume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    pub id: u64,
    /// When the server accepted the line, in milliseconds since the Unix
    /// epoch: a full date, so clients can show when the day changes.
    pub at_ms: i64,
    /// The room or private conversation; written as `"room": "#lobby"` or
    /// `"pm": ["alice", "bob"]` in JSON lines.
    #[serde(flatten)]
    pub scope: Scope,
    pub from: String,
    pub kind: Kind,
    pub text: String,
}

impl Record {
    /// The record as one line of JSON (no newline), for `history export`:
    /// `{"id":7,"at_ms":…,"room":"#lobby","from":"alice","kind":"message","text":"hi"}`.
    pub fn to_json_line(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string(self).expect("a Record is always valid JSON")
    }
}

/// What sort of line a record is. Small on purpose: anything richer (edits,
/// reactions) would be a new kind and a schema migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Something a user said.
    Message,
    /// `/me waves`: shown as "* alice waves".
    Action,
    /// A line from the server itself (topic changed, someone joined...).
    Notice,
}

impl Kind {
    /// The word stored in the `kind` column (the same as in JSON lines), so
    /// that the database reads plainly in the `sqlite3` shell.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Action => "action",
            Kind::Notice => "notice",
        }
    }

    pub(crate) fn from_word(word: &str) -> Option<Kind> {
        match word {
            "message" => Some(Kind::Message),
            "action" => Some(Kind::Action),
            "notice" => Some(Kind::Notice),
            _ => None,
        }
    }
}

/// Where a record was said: a room, or a private conversation between two
/// users.
///
/// Names are compared case-insensitively (as the server compares user
/// names), so a scope is kept in canonical form: lowercase, and for a PM the
/// two names sorted. Build scopes with [`Scope::room`] and [`Scope::pm`],
/// which canonicalise; then alice's PM to Bob and bob's PM to Alice are one
/// conversation, and nobody else's. Equality compares canonical forms even for
/// a scope built directly from the variants.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A room, by its name with the `#`: `#lobby`.
    Room(String),
    /// A private conversation between two users.
    Pm(String, String),
}

impl Scope {
    /// The room called `name` (`#team`, `#Team` and `#TEAM` are one room).
    pub fn room(name: &str) -> Scope {
        Scope::Room(name.to_lowercase())
    }

    /// The private conversation between `a` and `b`, whichever of them
    /// speaks: `pm("alice", "Bob") == pm("bob", "ALICE")`.
    pub fn pm(a: &str, b: &str) -> Scope {
        let (a, b) = (a.to_lowercase(), b.to_lowercase());
        if a <= b {
            Scope::Pm(a, b)
        } else {
            Scope::Pm(b, a)
        }
    }

    /// The canonical form of this scope, whichever way it was built.
    fn canonical(&self) -> Scope {
        match self {
            Scope::Room(name) => Scope::room(name),
            Scope::Pm(a, b) => Scope::pm(a, b),
        }
    }

    /// The key stored in the `scope` column: a JSON array, `["#lobby"]` for
    /// a room and `["alice","bob"]` for a PM. JSON because it is unambiguous
    /// whatever characters names hold (no separator can be forged) and
    /// still reads plainly in the `sqlite3` shell.
    pub(crate) fn key(&self) -> String {
        match self.canonical() {
            Scope::Room(name) => serde_json::json!([name]),
            Scope::Pm(a, b) => serde_json::json!([a, b]),
        }
        .to_string()
    }

    /// The scope a stored key stands for; `None` for a key this version did
    /// not write (a damaged or foreign row).
    pub(crate) fn from_key(key: &str) -> Option<Scope> {
        let names: Vec<String> = serde_json::from_str(key).ok()?;
        match <[String; 1]>::try_from(names) {
            Ok([room]) => Some(Scope::room(&room)),
            Err(names) => match <[String; 2]>::try_from(names) {
                Ok([a, b]) => Some(Scope::pm(&a, &b)),
                Err(_) => None,
            },
        }
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Scope) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Scope {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pm_is_one_conversation_whoever_speaks() {
        assert_eq!(Scope::pm("a", "b").key(), Scope::pm("B", "a").key());
        assert_ne!(Scope::pm("a", "b").key(), Scope::pm("a", "c").key());
        assert_eq!(
            Scope::Pm("Bob".into(), "alice".into()),
            Scope::pm("alice", "bob")
        );
    }

    #[test]
    fn keys_round_trip_and_never_collide() {
        let scopes = [
            Scope::room("#Lobby"),
            Scope::pm("alice", "bob"),
            // A room whose name looks like a PM key, and names holding
            // would-be separators, still get keys of their own.
            Scope::room("[\"alice\",\"bob\"]"),
            Scope::pm("a,b", "c"),
            Scope::pm("a", "b,c"),
        ];
        for (i, s) in scopes.iter().enumerate() {
            assert_eq!(Scope::from_key(&s.key()).as_ref(), Some(s));
            for t in &scopes[i + 1..] {
                assert_ne!(s.key(), t.key(), "{s:?} and {t:?}");
            }
        }
        assert_eq!(Scope::from_key("[]"), None);
        assert_eq!(Scope::from_key("not json"), None);
    }

    #[test]
    fn json_line() {
        let r = Record {
            id: 7,
            at_ms: 1_700_000_000_000,
            scope: Scope::pm("bob", "alice"),
            from: "bob".into(),
            kind: Kind::Action,
            text: "waves \"hi\"\n".into(),
        };
        assert_eq!(
            r.to_json_line(),
            r#"{"id":7,"at_ms":1700000000000,"pm":["alice","bob"],"from":"bob","kind":"action","text":"waves \"hi\"\n"}"#
        );
    }
}
