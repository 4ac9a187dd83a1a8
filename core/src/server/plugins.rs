//! Plugins: processes the server starts, fed typed events and answering with
//! typed actions (`crate::plugin`, `PLUGINS.md`).
//!
//! The server keeps, per plugin: what the operator allowed (the rooms it
//! sees and speaks in), the commands it registered, its run (which process,
//! or when to start the next one: restarts back off), the timers it asked
//! for, the commands waiting for its reply, its rate limit, and how many
//! lines in a row it wrote that were not understood. The processes are the
//! application's: `Action::Plugin(PluginRequest)`, answered through
//! [`Server::handle_plugin`].
//!
//! A plugin speaks under its own name, reserved against people's (marked
//! `name [bot]` for clients of ours; LanTalk 2.0 clients see the plain
//! name), through the same checks a person's message gets: the rate limit,
//! the length, no control characters. It sees only the rooms it was given,
//! PMs addressed to it and its own commands; it cannot kick, ban or read
//! history. Plugins never see what plugins say (two bots cannot talk each
//! other into a loop).

use std::collections::BTreeSet;

use super::*;
use crate::plugin::{
    parse_action, CommandDecl, Event, PluginAction, PluginExit, PluginId, PluginReply,
    PluginRequest, PROTOCOL_VERSION,
};
use crate::rooms::{room_key, validate_room, LOBBY};

/// First wait before restarting a plugin that stopped; doubled each time
/// it stops again soon, up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A plugin that ran this long before stopping starts again from
/// [`BACKOFF_FIRST`].
const STABLE_RUN: Duration = Duration::from_secs(60);
/// Lines in a row that were not understood before a plugin is stopped.
pub const MAX_GARBAGE_IN_A_ROW: u32 = 10;
/// Commands one plugin may register.
const MAX_COMMANDS: usize = 16;
/// Timers one plugin may have.
const MAX_TIMERS: usize = 16;
/// Shortest timer.
pub const MIN_TIMER: Duration = Duration::from_secs(1);
/// Commands remembered for a reply, per plugin (the oldest are forgotten).
const MAX_ASKED: usize = 256;
const MAX_COMMAND_CHARS: usize = 24;
const MAX_HELP_CHARS: usize = 100;
const MAX_TIMER_NAME: usize = 40;

/// One plugin as the operator configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSpec {
    /// Its name in the chat (reserved: no person can take it).
    pub name: String,
    /// What to run (`python3 dice.py`).
    pub command: String,
    /// The rooms it sees and speaks in, as typed (`#lobby`). Empty: the
    /// lobby.
    pub rooms: Vec<String>,
}

/// Where a plugin is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Running {
        id: PluginId,
        since: Instant,
    },
    /// Stopped on its own; started again at this time.
    Waiting(Instant),
    /// Given up on (garbage), or the server is shutting down.
    Stopped,
}

#[derive(Clone, Debug)]
struct Timer {
    next: Instant,
    every: Option<Duration>,
}

pub(super) struct Plugin {
    spec: PluginSpec,
    /// Room keys it sees.
    rooms: BTreeSet<String>,
    run: Run,
    /// Its commands, without the slash, lowercase.
    commands: Vec<CommandDecl>,
    garbage: u32,
    /// Stops in a row that came soon after starting.
    failures: u32,
    rate: Option<Window>,
    /// Refusing lines for the rate limit (told and logged once per spell).
    limited: bool,
    timers: BTreeMap<String, Timer>,
    /// Commands typed and not forgotten yet: their room key.
    asked: BTreeMap<u64, String>,
}

impl Plugin {
    fn running(&self) -> Option<PluginId> {
        match self.run {
            Run::Running { id, .. } => Some(id),
            Run::Waiting(_) | Run::Stopped => None,
        }
    }

    fn sees(&self, room: &str) -> bool {
        self.rooms.contains(room)
    }

    fn shown(&self) -> String {
        format!("{} [bot]", self.spec.name)
    }
}

/// Every plugin, in the order configured.
#[derive(Default)]
pub(super) struct Plugins {
    list: Vec<Plugin>,
    next_id: u64,
    next_command: u64,
}

/// Queues `event` for the plugin if it is running.
fn tell(actions: &mut VecDeque<Action>, p: &Plugin, event: &Event<'_>) {
    if let Some(id) = p.running() {
        actions.push_back(Action::Plugin(Box::new(PluginRequest::Send {
            id,
            line: event.to_line(),
        })));
    }
}

/// Commands people type that a plugin may not take (with their aliases).
fn builtin(name: &str) -> bool {
    crate::commands::CHAT
        .iter()
        .chain(crate::commands::ROOMS)
        .any(|c| {
            c.name[1..].eq_ignore_ascii_case(name)
                || c.aliases.iter().any(|a| a[1..].eq_ignore_ascii_case(name))
        })
}

impl Plugins {
    pub(super) fn new(specs: &[PluginSpec], rate: Option<crate::ratelimit::Rate>) -> Self {
        let list = specs
            .iter()
            .map(|spec| {
                let mut rooms: BTreeSet<String> = spec.rooms.iter().map(|r| room_key(r)).collect();
                if rooms.is_empty() {
                    rooms.insert(LOBBY.to_string());
                }
                Plugin {
                    spec: spec.clone(),
                    rooms,
                    run: Run::Stopped,
                    commands: Vec::new(),
                    garbage: 0,
                    failures: 0,
                    rate: rate.map(Window::new),
                    limited: false,
                    timers: BTreeMap::new(),
                    asked: BTreeMap::new(),
                }
            })
            .collect();
        Plugins {
            list,
            next_id: 1,
            next_command: 1,
        }
    }

    fn index(&self, id: PluginId) -> Option<usize> {
        self.list.iter().position(|p| p.running() == Some(id))
    }

    fn named(&self, name: &str) -> Option<usize> {
        let key = name_key(name);
        self.list.iter().position(|p| name_key(&p.spec.name) == key)
    }

    /// The plugin that registered `/command` (without the slash).
    fn by_command(&self, command: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|p| p.running().is_some() && p.commands.iter().any(|c| c.name == command))
    }

    pub(super) fn is_reserved(&self, name: &str) -> bool {
        self.named(name).is_some()
    }

    pub(super) fn timeout(&self) -> Option<Instant> {
        self.list
            .iter()
            .flat_map(|p| {
                let restart = match p.run {
                    Run::Waiting(at) => Some(at),
                    Run::Running { .. } | Run::Stopped => None,
                };
                restart.into_iter().chain(p.timers.values().map(|t| t.next))
            })
            .min()
    }

    /// The plugins running, as `/users` lists them (`dice [bot]`).
    pub(super) fn bots(&self) -> Vec<String> {
        self.list
            .iter()
            .filter(|p| p.running().is_some())
            .map(Plugin::shown)
            .collect()
    }

    /// Every plugin command as clients of ours complete and list them.
    pub(super) fn commands(&self) -> Vec<protocol::PluginCommand> {
        let mut out = Vec::new();
        for p in self.list.iter().filter(|p| p.running().is_some()) {
            for c in &p.commands {
                out.push(protocol::PluginCommand {
                    name: format!("/{}", c.name),
                    args: c.args.clone(),
                    help: c.help.clone(),
                    plugin: p.spec.name.clone(),
                });
            }
        }
        out
    }
}

impl Server {
    /// Every configured plugin is due to start at once: at the first
    /// [`Server::handle_timeout`] (the runtime is running by then, and
    /// carries the requests out at once).
    pub(super) fn start_plugins(&mut self, now: Now) {
        for p in &mut self.plugins.list {
            p.run = Run::Waiting(now.instant);
        }
    }

    fn start_plugin(&mut self, now: Now, i: usize) {
        let id = PluginId(self.plugins.next_id);
        self.plugins.next_id += 1;
        let server = self.config.name.clone();
        let Some(p) = self.plugins.list.get_mut(i) else {
            return;
        };
        p.run = Run::Running {
            id,
            since: now.instant,
        };
        p.garbage = 0;
        p.limited = false;
        self.actions
            .push_back(Action::Plugin(Box::new(PluginRequest::Start {
                id,
                name: p.spec.name.clone(),
                command: p.spec.command.clone(),
            })));
        let rooms: Vec<&str> = p
            .rooms
            .iter()
            .map(|k| self.rooms.get(k).map_or(k.as_str(), |r| r.name.as_str()))
            .collect();
        let hello = Event::Hello {
            version: PROTOCOL_VERSION,
            name: &p.spec.name,
            server: &server,
            rooms,
        };
        tell(&mut self.actions, p, &hello);
        let message = format!("Plugin {} started ({id}): {}", p.spec.name, p.spec.command);
        self.event(Level::Info, EventKind::Plugin, message);
    }

    /// What the application says about a plugin process.
    pub fn handle_plugin(&mut self, now: Now, reply: PluginReply) {
        match reply {
            PluginReply::Line { id, line } => {
                if let Some(i) = self.plugins.index(id) {
                    self.plugin_line(now, i, &line);
                }
            }
            PluginReply::TooLong { id } => {
                if let Some(i) = self.plugins.index(id) {
                    let why = format!("line longer than {} bytes", crate::plugin::MAX_PLUGIN_LINE);
                    self.plugin_garbage(now, i, &why);
                }
            }
            PluginReply::Stderr { id, line } => {
                if let Some(i) = self.plugins.index(id) {
                    let text = String::from_utf8_lossy(&line);
                    let message = format!(
                        "[{}] {}",
                        self.plugins.list[i].spec.name,
                        crate::text::visible(&text)
                    );
                    self.event(Level::Info, EventKind::Plugin, message);
                }
            }
            PluginReply::Exited { id, why } => {
                if let Some(i) = self.plugins.index(id) {
                    self.plugin_exited(now, i, &why);
                }
            }
        }
    }

    fn plugin_exited(&mut self, now: Now, i: usize, why: &PluginExit) {
        let p = &mut self.plugins.list[i];
        let Run::Running { since, .. } = p.run else {
            return;
        };
        if now.instant.saturating_since(since) >= STABLE_RUN {
            p.failures = 0;
        }
        p.failures += 1;
        let wait = BACKOFF_FIRST
            .saturating_mul(1 << (p.failures - 1).min(6))
            .min(BACKOFF_MAX);
        p.run = Run::Waiting(now.instant + wait);
        let message = format!(
            "Plugin {} {why}; starting it again in {} s.",
            p.spec.name,
            wait.as_secs()
        );
        self.plugin_forget(now, i);
        self.event(Level::Warning, EventKind::Plugin, message);
    }

    /// Forgets what a run of plugin `i` registered and asked for.
    fn plugin_forget(&mut self, now: Now, i: usize) {
        let p = &mut self.plugins.list[i];
        p.timers.clear();
        p.asked.clear();
        if !std::mem::take(&mut p.commands).is_empty() {
            self.announce_plugin_commands(now);
        }
    }

    /// Stops plugin `i` for good (garbage, or the server is stopping).
    fn stop_plugin(&mut self, now: Now, i: usize) {
        if let Some(id) = self.plugins.list[i].running() {
            self.actions
                .push_back(Action::Plugin(Box::new(PluginRequest::Stop { id })));
        }
        self.plugins.list[i].run = Run::Stopped;
        self.plugin_forget(now, i);
    }

    pub(super) fn stop_plugins(&mut self, now: Now) {
        for i in 0..self.plugins.list.len() {
            self.stop_plugin(now, i);
        }
    }

    fn plugin_error(&mut self, i: usize, message: &str) {
        let p = &self.plugins.list[i];
        tell(&mut self.actions, p, &Event::Error { message });
    }

    fn plugin_garbage(&mut self, now: Now, i: usize, why: &str) {
        let p = &mut self.plugins.list[i];
        p.garbage += 1;
        let name = p.spec.name.clone();
        let stop = p.garbage >= MAX_GARBAGE_IN_A_ROW;
        self.plugin_error(i, &format!("not understood: {why}"));
        self.event(
            Level::Warning,
            EventKind::Plugin,
            format!(
                "Plugin {name} wrote a line that is not understood: {}",
                crate::text::visible(why)
            ),
        );
        if stop {
            self.stop_plugin(now, i);
            self.event(
                Level::Warning,
                EventKind::Plugin,
                format!(
                    "Plugin {name} stopped: {MAX_GARBAGE_IN_A_ROW} lines in a row not understood \
                     (it is not started again)."
                ),
            );
        }
    }

    fn plugin_line(&mut self, now: Now, i: usize, line: &[u8]) {
        let action = match parse_action(line) {
            Ok(a) => a,
            Err(g) => return self.plugin_garbage(now, i, &g.0),
        };
        self.plugins.list[i].garbage = 0;
        let refused = match action {
            PluginAction::Register { commands } => {
                // Registering tells every client of ours: it costs what a
                // line said does.
                let p = &mut self.plugins.list[i];
                if p.rate.as_mut().is_none_or(|r| r.try_hit(now.instant)) {
                    self.plugin_register(now, i, commands);
                    None
                } else {
                    Some("rate limit: slow down".to_string())
                }
            }
            PluginAction::Say { room, text } => self.plugin_say(now, i, &room, &text).err(),
            PluginAction::Reply { id, text } => {
                match self.plugins.list[i].asked.get(&id).cloned() {
                    Some(room) => self.plugin_say(now, i, &room, &text).err(),
                    None => Some(format!("no command {id} is waiting for a reply")),
                }
            }
            PluginAction::Pm { user, text } => self.plugin_pm(now, i, &user, &text).err(),
            PluginAction::Timer {
                name,
                every_ms,
                after_ms,
            } => self.plugin_timer(now, i, name, every_ms, after_ms).err(),
        };
        if let Some(why) = refused {
            self.plugin_error(i, &why);
            let name = self.plugins.list[i].spec.name.clone();
            self.event(
                Level::Debug,
                EventKind::Plugin,
                format!("Plugin {name}: refused: {}", crate::text::visible(&why)),
            );
        }
    }

    fn plugin_register(&mut self, now: Now, i: usize, decls: Vec<CommandDecl>) {
        let name = self.plugins.list[i].spec.name.clone();
        let mut taken: Vec<CommandDecl> = Vec::new();
        let mut refusals: Vec<String> = Vec::new();
        for mut decl in decls {
            let cmd = decl.name.trim_start_matches('/').to_ascii_lowercase();
            let why = if taken.len() >= MAX_COMMANDS {
                Some(format!("/{cmd}: at most {MAX_COMMANDS} commands"))
            } else if cmd.is_empty()
                || cmd.len() > MAX_COMMAND_CHARS
                || !cmd
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                Some(format!(
                    "/{}: a command is 1 to {MAX_COMMAND_CHARS} letters, digits, _ or -",
                    crate::text::visible(&cmd)
                ))
            } else if builtin(&cmd) {
                Some(format!("/{cmd} is a built-in command"))
            } else if let Some(other) = self
                .plugins
                .list
                .iter()
                .enumerate()
                .find(|(j, p)| *j != i && p.commands.iter().any(|c| c.name == cmd))
            {
                Some(format!(
                    "/{cmd} is already the command of plugin {}",
                    other.1.spec.name
                ))
            } else if taken.iter().any(|c| c.name == cmd) {
                Some(format!("/{cmd} is registered twice"))
            } else if decl.args.chars().count() > MAX_HELP_CHARS
                || decl.help.chars().count() > MAX_HELP_CHARS
                || protocol::first_control(&decl.args).is_some()
                || protocol::first_control(&decl.help).is_some()
            {
                Some(format!(
                    "/{cmd}: args and help are at most {MAX_HELP_CHARS} characters, without \
                     control characters"
                ))
            } else {
                None
            };
            match why {
                Some(why) => refusals.push(why),
                None => {
                    decl.name = cmd;
                    taken.push(decl);
                }
            }
        }
        for why in &refusals {
            self.plugin_error(i, &format!("registration refused: {why}"));
            self.event(
                Level::Warning,
                EventKind::Plugin,
                format!("Plugin {name}: registration refused: {why}"),
            );
        }
        let names: Vec<&str> = taken.iter().map(|c| c.name.as_str()).collect();
        let shown: Vec<String> = names.iter().map(|c| format!("/{c}")).collect();
        tell(
            &mut self.actions,
            &self.plugins.list[i],
            &Event::Registered { commands: names },
        );
        self.event(
            Level::Info,
            EventKind::Plugin,
            format!("Plugin {name} registered: {}", shown.join(" ")),
        );
        if self.plugins.list[i].commands != taken {
            self.plugins.list[i].commands = taken;
            self.announce_plugin_commands(now);
        }
    }

    /// Tells every client of ours the plugins' commands (for `/help` and
    /// Tab completion).
    fn announce_plugin_commands(&mut self, now: Now) {
        let line = protocol::plugin_commands(now.wall, &self.plugins.commands());
        self.broadcast_ours(line, None);
    }

    /// The plugins' commands, for one client of ours that just logged in.
    pub(super) fn send_plugin_commands(&mut self, now: Now, conn: ConnId) {
        let commands = self.plugins.commands();
        if !commands.is_empty() {
            self.send(conn, protocol::plugin_commands(now.wall, &commands));
        }
    }

    /// The checks a person's message gets, for a plugin's: the rate limit,
    /// the length, no control characters.
    fn plugin_may_speak(&mut self, now: Now, i: usize, text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Err("empty text".into());
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(format!("longer than {MAX_TEXT_CHARS} characters"));
        }
        if let Some(bad) = protocol::first_control(text) {
            return Err(format!(
                "the control character U+{:04X} is not allowed",
                bad as u32
            ));
        }
        let p = &mut self.plugins.list[i];
        let ok = p.rate.as_mut().is_none_or(|r| r.try_hit(now.instant));
        if ok {
            p.limited = false;
            return Ok(());
        }
        if !std::mem::replace(&mut p.limited, true) {
            let message = format!("Plugin {} hit the rate limit", p.spec.name);
            self.event(Level::Warning, EventKind::RateLimit, message);
        }
        Err("rate limit: slow down".into())
    }

    fn plugin_say(&mut self, now: Now, i: usize, room: &str, text: &str) -> Result<(), String> {
        let key = room_key(room);
        if validate_room(room).is_err() || !self.plugins.list[i].sees(&key) {
            return Err(format!(
                "not allowed to speak in {}",
                crate::text::visible(room)
            ));
        }
        if !self.rooms.contains_key(&key) {
            return Err(format!(
                "{} does not exist now (nobody is in it)",
                crate::text::visible(room)
            ));
        }
        self.plugin_may_speak(now, i, text)?;
        let p = &self.plugins.list[i];
        let (plain, shown) = (p.spec.name.clone(), p.shown());
        self.chat_event(&key, &shown, text);
        self.say_in_room_as(now, &key, None, (&shown, &plain), text);
        Ok(())
    }

    fn plugin_pm(&mut self, now: Now, i: usize, user: &str, text: &str) -> Result<(), String> {
        let Some(to) = self.users.get(&name_key(user)).copied() else {
            return Err(format!("no user {} online", crate::text::visible(user)));
        };
        self.plugin_may_speak(now, i, text)?;
        let from = self.plugins.list[i].spec.name.clone();
        let to_name = self
            .conns
            .get(&to)
            .and_then(Conn::name)
            .unwrap_or(user)
            .to_string();
        self.event(
            Level::Debug,
            EventKind::Chat,
            format!("PM {from} -> {to_name}"),
        );
        self.record_pm(now, &from, &to_name, text);
        self.send(to, protocol::pm(now.wall, &from, text));
        Ok(())
    }

    fn plugin_timer(
        &mut self,
        now: Now,
        i: usize,
        name: String,
        every_ms: Option<u64>,
        after_ms: Option<u64>,
    ) -> Result<(), String> {
        if name.is_empty() || name.chars().count() > MAX_TIMER_NAME {
            return Err(format!(
                "a timer's name is 1 to {MAX_TIMER_NAME} characters"
            ));
        }
        let p = &mut self.plugins.list[i];
        let (first, every) = match (every_ms, after_ms) {
            (None, None) => {
                p.timers.remove(&name);
                return Ok(());
            }
            (Some(_), Some(_)) => return Err("give every_ms or after_ms, not both".into()),
            (Some(ms), None) => (ms, true),
            (None, Some(ms)) => (ms, false),
        };
        let wait = Duration::from_millis(first);
        if wait < MIN_TIMER {
            return Err(format!(
                "the shortest timer is {} ms",
                MIN_TIMER.as_millis()
            ));
        }
        if !p.timers.contains_key(&name) && p.timers.len() >= MAX_TIMERS {
            return Err(format!("at most {MAX_TIMERS} timers"));
        }
        p.timers.insert(
            name,
            Timer {
                next: now.instant + wait,
                every: every.then_some(wait),
            },
        );
        Ok(())
    }

    /// Restarts plugins whose wait is over and fires their due timers.
    pub(super) fn plugin_timeouts(&mut self, now: Now) {
        for i in 0..self.plugins.list.len() {
            if matches!(self.plugins.list[i].run, Run::Waiting(at) if at <= now.instant) {
                self.start_plugin(now, i);
            }
            let p = &mut self.plugins.list[i];
            let due: Vec<String> = p
                .timers
                .iter()
                .filter(|(_, t)| t.next <= now.instant)
                .map(|(n, _)| n.clone())
                .collect();
            for name in due {
                let p = &mut self.plugins.list[i];
                match p.timers.get(&name).and_then(|t| t.every) {
                    Some(every) => {
                        if let Some(t) = p.timers.get_mut(&name) {
                            t.next = now.instant + every;
                        }
                    }
                    None => {
                        p.timers.remove(&name);
                    }
                }
                tell(&mut self.actions, p, &Event::Tick { timer: &name });
            }
        }
    }

    // ── What plugins are shown ──────────────────────────────────────────

    /// A person said `text` in `room` (a key).
    pub(super) fn plugins_message(&mut self, room: &str, user: &str, text: &str) {
        let Some(shown) = self.rooms.get(room).map(|r| r.name.as_str()) else {
            return;
        };
        for p in self.plugins.list.iter().filter(|p| p.sees(room)) {
            let event = Event::Message {
                room: shown,
                user,
                text,
            };
            tell(&mut self.actions, p, &event);
        }
    }

    /// `user` came into (`joined`) or left `room` (a key).
    pub(super) fn plugins_presence(&mut self, room: &str, user: &str, joined: bool) {
        if self.plugins.list.is_empty() {
            return;
        }
        let shown = self
            .rooms
            .get(room)
            .map_or(room, |r| r.name.as_str())
            .to_string();
        for p in self.plugins.list.iter().filter(|p| p.sees(room)) {
            let event = if joined {
                Event::Join { room: &shown, user }
            } else {
                Event::Leave { room: &shown, user }
            };
            tell(&mut self.actions, p, &event);
        }
    }

    /// `/command args` typed by `user` in `room` (a key). False when no
    /// plugin has that command.
    pub(super) fn plugin_command(
        &mut self,
        now: Now,
        conn: ConnId,
        user: &str,
        command: &str,
        args: &str,
        room: &str,
    ) -> bool {
        let Some(cmd) = command.strip_prefix('/') else {
            return false;
        };
        let Some(i) = self.plugins.by_command(cmd) else {
            return false;
        };
        let shown = self
            .rooms
            .get(room)
            .map_or(room, |r| r.name.as_str())
            .to_string();
        // Only a member speaks in a room, to a bot as to people: the room a
        // line names is the sender's claim.
        if !self
            .rooms
            .get(room)
            .is_some_and(|r| r.members.contains(&conn))
        {
            let notice = format!("You are not in {shown}: /join {shown} first.");
            let notice = crate::text::visible(&notice).into_owned();
            self.send(conn, protocol::system(now.wall, &notice));
            return true;
        }
        let p = &mut self.plugins.list[i];
        if !p.sees(room) {
            let notice = format!(
                "{command} is not available in {shown}: the {} bot is not in this room.",
                p.spec.name
            );
            self.send(conn, protocol::system(now.wall, &notice));
            return true;
        }
        let id = self.plugins.next_command;
        self.plugins.next_command += 1;
        p.asked.insert(id, room.to_string());
        while p.asked.len() > MAX_ASKED {
            p.asked.pop_first();
        }
        let event = Event::Command {
            id,
            command: cmd,
            args: args.trim(),
            user,
            room: &shown,
        };
        tell(&mut self.actions, p, &event);
        true
    }

    /// `/pm name text` where `name` is a plugin's. False when it is not.
    pub(super) fn plugin_pm_to(&mut self, from: &str, to: &str, text: &str) -> bool {
        let Some(i) = self.plugins.named(to) else {
            return false;
        };
        let p = &self.plugins.list[i];
        tell(&mut self.actions, p, &Event::Pm { user: from, text });
        true
    }

    pub(super) fn plugin_help(&self) -> String {
        protocol::plugin_help(&self.plugins.commands())
    }
}
