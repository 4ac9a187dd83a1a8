//! What the core's client tells its user, as JSON objects for the page.
//!
//! The page shows events; it never parses a sentence to learn a fact. Each
//! event is one object with `"t": "event"` and its kind in `"e"`; the
//! fields are the event's own. Text from peers is passed as it is: the page
//! puts it into the document with `textContent`, never as markup.

use lantalk_core::client::ClientEvent;
use lantalk_core::protocol::{HistoryReason, Place, RoomView};
use lantalk_core::transfer::lines::FileInfo;
use serde_json::{json, Value};

pub fn to_json(event: &ClientEvent) -> Value {
    let (kind, fields) = match event {
        ClientEvent::PasswordRequired => ("password_required", json!({})),
        ClientEvent::ConfirmServerKey { fingerprint } => {
            ("confirm_key", json!({ "fingerprint": fingerprint }))
        }
        ClientEvent::Secured {
            fingerprint,
            key,
            new,
        } => (
            "secured",
            json!({ "fingerprint": fingerprint, "key": hex(key), "new": new }),
        ),
        ClientEvent::AwaitingApproval { code } => ("awaiting_approval", json!({ "code": code })),
        ClientEvent::Joined {
            username,
            server_name,
        } => (
            "joined",
            json!({ "username": username, "server_name": server_name }),
        ),
        ClientEvent::Refused { reason, why } => {
            ("refused", json!({ "reason": reason, "why": why.code() }))
        }
        ClientEvent::Message {
            ts,
            user,
            text,
            room,
            id,
            at_ms,
        } => (
            "message",
            json!({ "ts": ts, "user": user, "text": text, "room": room, "id": id, "at_ms": at_ms }),
        ),
        ClientEvent::Pm {
            ts,
            from_user,
            text,
        } => ("pm", json!({ "ts": ts, "from": from_user, "text": text })),
        ClientEvent::Roster { users } => ("roster", json!({ "users": users })),
        ClientEvent::Presence { user, online } => {
            ("presence", json!({ "user": user, "online": online }))
        }
        ClientEvent::PluginCommands { commands } => (
            "plugin_commands",
            json!({ "commands": commands.iter().map(|c| json!({
                "name": c.name, "args": c.args, "help": c.help,
            })).collect::<Vec<_>>() }),
        ),
        ClientEvent::Sent { text, room } => ("sent", json!({ "text": text, "room": room })),
        ClientEvent::Queued { text, ahead } => ("queued", json!({ "text": text, "ahead": ahead })),
        ClientEvent::PmSent { to, text } => ("pm_sent", json!({ "to": to, "text": text })),
        ClientEvent::ActionSent { text, room } => {
            ("action_sent", json!({ "text": text, "room": room }))
        }
        ClientEvent::Clear => ("clear", json!({})),
        ClientEvent::System { ts, text, room } => {
            ("system", json!({ "ts": ts, "text": text, "room": room }))
        }
        ClientEvent::RoomEntered(view) => ("room_entered", room(view)),
        ClientEvent::RoomUpdated(view) => ("room_updated", room(view)),
        ClientEvent::RoomLeft { room, reason } => {
            ("room_left", json!({ "room": room, "reason": reason }))
        }
        ClientEvent::RoomMember {
            room,
            user,
            joined,
            text,
        } => (
            "room_member",
            json!({ "room": room, "user": user, "joined": joined, "text": text }),
        ),
        ClientEvent::Switched { room } => ("switched", json!({ "room": room })),
        ClientEvent::History {
            place,
            reason,
            lines,
            more,
        } => (
            "history",
            json!({
                "place": place_json(place),
                "reason": reason_str(*reason),
                "more": more,
                "lines": lines.iter().map(|l| json!({
                    "id": l.id, "at_ms": l.at_ms, "user": l.user, "text": l.text, "action": l.action,
                })).collect::<Vec<_>>(),
            }),
        ),
        ClientEvent::FileShared(info) => ("file_shared", file(info)),
        ClientEvent::FileList { files, got } => (
            "file_list",
            json!({ "files": files.iter().map(file).collect::<Vec<_>>(), "got": got }),
        ),
        ClientEvent::FileRemoved { id, name } => {
            ("file_removed", json!({ "id": id, "name": name }))
        }
        ClientEvent::Transfer(p) => (
            "transfer",
            json!({ "id": p.id, "name": p.name, "upload": p.upload, "done": p.done, "total": p.total }),
        ),
        ClientEvent::TransferDone {
            id,
            name,
            upload,
            size,
            hash,
            ..
        } => (
            "transfer_done",
            json!({ "id": id, "name": name, "upload": upload, "size": size, "hash": hash }),
        ),
        ClientEvent::TransferFailed {
            id,
            name,
            upload,
            reason,
        } => (
            "transfer_failed",
            json!({ "id": id, "name": name, "upload": upload, "reason": reason }),
        ),
        ClientEvent::Notice(text) => ("notice", json!({ "text": text })),
        ClientEvent::Disconnected { reason, expected } => (
            "disconnected",
            json!({ "reason": reason, "expected": expected }),
        ),
    };
    let mut object = fields;
    object["t"] = json!("event");
    object["e"] = json!(kind);
    object
}

fn room(view: &RoomView) -> Value {
    json!({
        "room": view.room,
        "topic": view.topic,
        "members": view.members,
        "ops": view.ops,
        "invite_only": view.invite_only,
        "keyed": view.keyed,
    })
}

fn place_json(place: &Place) -> Value {
    match place {
        Place::Room(room) => json!({ "room": room }),
        Place::Pm(user) => json!({ "pm": user }),
    }
}

fn reason_str(reason: HistoryReason) -> &'static str {
    reason.as_str()
}

fn file(info: &FileInfo) -> Value {
    json!({
        "id": info.id,
        "name": info.name,
        "size": info.size,
        "from": info.from,
        "to": info.to,
        "at_ms": info.at_ms,
        "complete": info.sha256.is_some(),
        "folder": info.folder,
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_kind_and_fields() {
        let v = to_json(&ClientEvent::Presence {
            user: "bob".into(),
            online: true,
        });
        assert_eq!(v["t"], "event");
        assert_eq!(v["e"], "presence");
        assert_eq!(v["user"], "bob");
        assert_eq!(v["online"], true);
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("é1"), None);
    }
}
