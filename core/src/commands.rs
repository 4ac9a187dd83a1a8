//! Every command a person can type, in one table per place they type it.
//!
//! `/help` answers, Tab completion and the programs' `--help` are all made
//! from these tables, so a command cannot be added in one and forgotten in
//! another.

/// One command as people see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// As typed, with its slash (`/pm`).
    pub name: &'static str,
    /// Its arguments as shown in help (`<user> <message>`), or `""`.
    pub args: &'static str,
    /// What it does, in a few words.
    pub help: &'static str,
    /// Other spellings that do the same.
    pub aliases: &'static [&'static str],
    /// Handled by our client itself; a server never sees it.
    pub local: bool,
}

const fn cmd(name: &'static str, args: &'static str, help: &'static str) -> CommandSpec {
    CommandSpec {
        name,
        args,
        help,
        aliases: &[],
        local: false,
    }
}

const QUIT_ALIASES: &[&str] = &["/exit", "/q"];

/// What a chat participant types. The server implements those that are not
/// `local` (and answers `/help` with them, for LanTalk 2.0 clients); our
/// client answers `/help` itself with all of them.
pub const CHAT: &[CommandSpec] = &[
    cmd("/users", "", "who is online"),
    cmd("/pm", "<user> <message>", "private message"),
    cmd("/me", "<action>", "say what you do"),
    CommandSpec {
        local: true,
        ..cmd("/clear", "", "clear the screen")
    },
    cmd("/help", "", "this list"),
    CommandSpec {
        aliases: QUIT_ALIASES,
        ..cmd("/quit", "", "leave")
    },
];

/// Rooms: what a client of ours can also type, in an encrypted session with
/// a server of ours (LanTalk 2.0 clients live in the lobby alone, and their
/// `/help` stays as it was). The server implements those that are not
/// `local`, in the room the line was said in unless one is named.
pub const ROOMS: &[CommandSpec] = &[
    cmd(
        "/join",
        "<#room> [key]",
        "join or create a room; speak there",
    ),
    cmd("/part", "[#room]", "leave a room (this one)"),
    CommandSpec {
        local: true,
        ..cmd("/switch", "<#room|n>", "speak in another room you are in")
    },
    cmd("/rooms", "", "list rooms"),
    cmd("/who", "[#room]", "who is in a room"),
    cmd("/topic", "[text]", "show or set the room's topic"),
    cmd("/invite", "<user> [#room]", "invite someone to a room"),
    cmd(
        "/kick",
        "<user>",
        "remove someone from the room (room operators)",
    ),
    cmd(
        "/key",
        "<key|off>",
        "require a key to join (room operators)",
    ),
    cmd(
        "/invite-only",
        "<on|off>",
        "members by invitation only (room operators)",
    ),
    // Asked of the server as requests of their own, not as commands.
    CommandSpec {
        local: true,
        ..cmd(
            "/history",
            "[@user] [n]",
            "earlier lines of this room (or of your PMs with user)",
        )
    },
    CommandSpec {
        local: true,
        ..cmd(
            "/search",
            "[words]",
            "search this room's history (alone: older matches)",
        )
    },
    // Files: asked of the server as requests of their own.
    CommandSpec {
        local: true,
        ..cmd(
            "/send",
            "<user|#room> <path>",
            "share a file with someone or a room",
        )
    },
    CommandSpec {
        local: true,
        ..cmd("/files", "", "files offered to you")
    },
    CommandSpec {
        local: true,
        ..cmd("/get", "<id|all>", "download a file (see /files)")
    },
    CommandSpec {
        local: true,
        ..cmd(
            "/cancel",
            "<id>",
            "stop a transfer, or stop offering your file",
        )
    },
];

/// What the operator types on a server's console.
pub const CONSOLE: &[CommandSpec] = &[
    cmd("/users", "", "list connected users"),
    cmd("/stats", "", "connections, bans, messages relayed, uptime"),
    cmd(
        "/kick",
        "<user> [#room]",
        "disconnect a user (or remove from a room)",
    ),
    cmd("/rooms", "", "list every room"),
    cmd("/topic", "<#room> <text>", "set a room's topic"),
    cmd(
        "/ban",
        "<user|ip>",
        "disconnect and ban an address (saved to bans.json)",
    ),
    cmd("/bans", "", "list banned addresses"),
    cmd("/unban", "<ip>", "lift a ban"),
    cmd(
        "/send",
        "<user|#room> <path>",
        "share a file from this machine",
    ),
    cmd("/files", "", "every file shared"),
    cmd("/get", "<id|all>", "save a shared file (--download-dir)"),
    cmd("/cancel", "<id>", "stop offering any file"),
    cmd("/help", "", "this list"),
    CommandSpec {
        aliases: QUIT_ALIASES,
        ..cmd("/quit", "", "tell everyone and shut down")
    },
];

/// Console commands that exist only where the operator approves connections
/// (host mode, `server --approve`).
pub const APPROVAL: &[CommandSpec] = &[
    cmd(
        "/trusted",
        "",
        "list peers let in without asking (--remember)",
    ),
    cmd("/forget", "<name>", "ask about that peer again next time"),
];

/// How to send a line that starts with `/` as text (IRC's convention).
pub const LITERAL_HINT: &str = "//text sends /text as a message";

/// The chat commands as one line: `/users (who is online) | /pm <user>
/// <message> (private message) | ...`. `local`: include the commands only
/// our client knows.
/// `rooms`: include [`ROOMS`] (the server is one of ours).
pub fn chat_help(local: bool, rooms: bool) -> String {
    let mut out = String::from("Commands: ");
    let mut first = true;
    let rooms = if rooms { ROOMS } else { &[] };
    for c in CHAT.iter().chain(rooms).filter(|c| local || !c.local) {
        if !first {
            out.push_str(" | ");
        }
        first = false;
        out.push_str(&usage(c));
        out.push_str(" (");
        out.push_str(c.help);
        out.push(')');
    }
    if local {
        out.push_str(" | ");
        out.push_str(LITERAL_HINT);
    }
    out
}

/// `/pm <user> <message>`.
pub fn usage(c: &CommandSpec) -> String {
    if c.args.is_empty() {
        c.name.to_string()
    } else {
        format!("{} {}", c.name, c.args)
    }
}

/// A table as aligned lines (`/kick <user>     disconnect a user`), as the
/// console's `/help` and the programs' `--help` show it.
pub fn table(commands: &[CommandSpec]) -> String {
    let width = commands
        .iter()
        .map(|c| usage(c).chars().count())
        .max()
        .unwrap_or(0)
        + 3;
    let mut out = String::new();
    for c in commands {
        let usage = usage(c);
        out.push_str(&usage);
        for _ in usage.chars().count()..width {
            out.push(' ');
        }
        out.push_str(c.help);
        out.push('\n');
    }
    out
}

/// Names offered by Tab completion, sorted, aliases left out.
pub fn names(tables: &[&[CommandSpec]]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = tables
        .iter()
        .flat_map(|t| t.iter().map(|c| c.name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The spec `word` (a command as typed, any case) names in `commands`, by
/// its name or an alias.
pub fn find(commands: &'static [CommandSpec], word: &str) -> Option<&'static CommandSpec> {
    commands.iter().find(|c| {
        c.name.eq_ignore_ascii_case(word) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command() {
        let local = chat_help(true, true);
        let server = chat_help(false, false);
        for c in CHAT {
            assert!(local.contains(c.name), "{} missing from {local}", c.name);
            assert_eq!(server.contains(c.name), !c.local);
        }
        // LanTalk 2.0 clients are asked about nothing they cannot use.
        for c in ROOMS {
            assert!(local.contains(c.name), "{} missing from {local}", c.name);
            assert!(!server.contains(&format!("{} ", c.name)), "{server}");
        }
        assert!(local.contains("//text"));
        let console = table(CONSOLE);
        assert!(console.contains("/unban <ip>   "));
        assert_eq!(console.lines().count(), CONSOLE.len());
    }

    #[test]
    fn completion_names_and_aliases() {
        let names = names(&[CONSOLE, APPROVAL]);
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(names.contains(&"/forget"));
        assert_eq!(find(CHAT, "/EXIT").map(|c| c.name), Some("/quit"));
        assert_eq!(find(CHAT, "/nope"), None);
    }
}
