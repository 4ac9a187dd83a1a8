//! The line decoders never panic, and what they accept survives re-encoding:
//! parse(encode(parse(x))) == parse(x) for client messages, logins and server
//! lines, and every encoding is exactly one `\n`-terminated line.
#![no_main]

use lantalk_core::json::ObjectWriter;
use lantalk_core::protocol::{self, ClientLine, Place, ServerLine};
use lantalk_core::secure;
use lantalk_core::WallTime;
use libfuzzer_sys::fuzz_target;

/// One wire line: ends with `\n`, has no other `\n`. Returns it without `\n`.
fn one_line(enc: &str) -> &[u8] {
    let b = enc.as_bytes();
    assert!(
        b.last() == Some(&b'\n') && !b[..b.len() - 1].contains(&b'\n'),
        "encoding is not exactly one line: {enc:?}"
    );
    &b[..b.len() - 1]
}

fuzz_target!(|data: &[u8]| {
    // A plugin's action re-encodes to one line that reads back the same.
    if let Ok(action) = lantalk_core::plugin::parse_action(data) {
        let enc = action.to_line();
        let text = String::from_utf8(enc).expect("actions encode as UTF-8");
        assert_eq!(
            lantalk_core::plugin::parse_action(one_line(&text)),
            Ok(action.clone()),
            "plugin action {action:?}"
        );
    }

    if let Ok(ClientLine::Message {
        text,
        room: None,
        literal: false,
    }) = protocol::parse_client_line(data)
    {
        let enc = protocol::chat(&text);
        let line = one_line(&enc);
        let want = Ok(ClientLine::Message {
            text: text.clone(),
            room: None,
            literal: false,
        });
        assert_eq!(protocol::parse_client_line(line), want, "chat({text:?})");
        // The framing layer may leave a trailing \r or the \n itself in place.
        assert_eq!(
            protocol::parse_client_line(enc.as_bytes()),
            want,
            "chat({text:?}) + \\n"
        );
    }

    // A file request re-encodes to one line that reads back the same.
    if let Ok(ClientLine::File(ask)) = protocol::parse_client_line(data) {
        let enc = ask.to_line();
        assert_eq!(
            protocol::parse_client_line(one_line(&enc)),
            Ok(ClientLine::File(ask.clone())),
            "file request {ask:?}"
        );
    }

    if let Ok(login) = protocol::parse_login(data) {
        let w = ObjectWriter::new()
            .str("username", &login.username)
            .str("password", &login.password);
        let enc = match &login.pake {
            Some(p) => w.str("pake", &secure::b64(p)),
            None => w,
        }
        .finish_line();
        if login.pake.is_none() {
            assert_eq!(enc, protocol::login(&login.username, &login.password));
        }
        assert_eq!(
            protocol::parse_login(one_line(&enc)),
            Ok(login.clone()),
            "login({login:?})"
        );
    }

    if let Ok(line) = protocol::parse_server_line(data) {
        let w = |kind: &str| ObjectWriter::new().str("type", kind);
        let enc = match &line {
            ServerLine::AuthRequest {
                needs_password,
                offer: None,
            } => protocol::auth_request(WallTime::default(), *needs_password),
            ServerLine::AuthRequest {
                needs_password,
                offer: Some(offer),
            } => protocol::auth_request_secure(WallTime::default(), *needs_password, offer),
            ServerLine::Pake { msg, proof } => protocol::pake_reply(msg, proof),
            ServerLine::AuthOk {
                username,
                server_name,
                session: None,
            } => w("auth_ok")
                .str("username", username)
                .str("server_name", server_name)
                .finish_line(),
            ServerLine::AuthOk {
                username,
                server_name,
                session: Some(info),
            } => protocol::auth_ok_ours(WallTime::default(), username, server_name, info),
            ServerLine::Presence { user, online } => w("presence")
                .str("user", user)
                .bool("online", *online)
                .finish_line(),
            ServerLine::PmSent { ts, to_user, text } => w("pm_sent")
                .str("ts", ts)
                .str("to_user", to_user)
                .str("text", text)
                .finish_line(),
            ServerLine::AuthFail { reason, why } => w("auth_fail")
                .str("reason", reason)
                .str("code", why.code())
                .finish_line(),
            ServerLine::Message {
                ts,
                user,
                text,
                room,
                id,
                at_ms,
            } => {
                let m = w("message")
                    .str("ts", ts)
                    .str("user", user)
                    .str("text", text);
                let m = match room {
                    Some(r) => m.str("room", r),
                    None => m,
                };
                let m = match id {
                    Some(id) => m.raw("id", &id.to_string()),
                    None => m,
                };
                match at_ms {
                    Some(at) => m.raw("at", &at.to_string()),
                    None => m,
                }
                .finish_line()
            }
            ServerLine::Pm {
                ts,
                from_user,
                text,
            } => w("pm")
                .str("ts", ts)
                .str("from_user", from_user)
                .str("text", text)
                .finish_line(),
            ServerLine::System { ts, text, room } => {
                let m = w("system").str("ts", ts).str("text", text);
                match room {
                    Some(r) => m.str("room", r),
                    None => m,
                }
                .finish_line()
            }
            ServerLine::Room(view) => protocol::room_state(WallTime::default(), view),
            ServerLine::File(news) => news.to_line(),
            ServerLine::RoomLeft { room, reason } => {
                protocol::room_left(WallTime::default(), room, reason)
            }
            ServerLine::RoomMember {
                room,
                user,
                joined,
                text,
            } => protocol::room_member(WallTime::default(), room, user, *joined, text),
            ServerLine::History {
                place,
                reason,
                lines,
                more,
            } => {
                let list: Vec<serde_json::Value> = lines
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "id": l.id, "at": l.at_ms, "user": l.user,
                            "text": l.text, "action": l.action,
                        })
                    })
                    .collect();
                let h = w("history");
                let h = match place {
                    Place::Room(r) => h.str("room", r),
                    Place::Pm(u) => h.str("with", u),
                };
                h.str("reason", reason.as_str())
                    .raw("messages", &serde_json::Value::Array(list).to_string())
                    .bool("more", *more)
                    .finish_line()
            }
            ServerLine::PluginCommands(list) => {
                protocol::plugin_commands(WallTime::default(), list)
            }
            ServerLine::Other => return,
        };
        assert_eq!(
            protocol::parse_server_line(one_line(&enc)),
            Ok(line.clone()),
            "re-encoded {line:?} as {enc:?}"
        );
    }
});
