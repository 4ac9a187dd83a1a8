"""A small SDK for LanTalk plugins: decorators over the JSON-lines protocol.

Standard library only. A plugin is a program the LanTalk server starts
(``server --plugin "python3 dice.py"``); it reads events on stdin and writes
actions on stdout, one JSON object a line (see PLUGINS.md, protocol
version 1). This module does the reading, writing and dispatching::

    from lantalk_plugin import Plugin

    plugin = Plugin()

    @plugin.command("roll", args="<NdM>", help="roll dice")
    def roll(cmd):
        return f"{cmd.user} rolled {cmd.args}: 4"   # said in cmd.room

    plugin.run()

Handlers get small objects (``Command``, ``Message``, ...) and may return a
string: for a command it is the reply, for a PM the answer. Anything a
plugin prints for people to read belongs on stderr (the server logs it);
stdout is the protocol.
"""

import heapq
import json
import sys
import time

PROTOCOL_VERSION = 1

__all__ = ["Plugin", "Command", "Message", "Presence", "Pm", "PROTOCOL_VERSION"]


class Command:
    """Someone typed one of the plugin's commands."""

    def __init__(self, plugin, event):
        self.plugin = plugin
        self.id = event.get("id")
        self.command = event.get("command", "")
        self.args = event.get("args", "")
        self.user = event.get("user", "")
        self.room = event.get("room", "")

    def reply(self, text):
        """Answer in the room the command was typed in."""
        self.plugin.reply(self.id, text)


class Message:
    """Someone said something in a room the plugin sees."""

    def __init__(self, event):
        self.room = event.get("room", "")
        self.user = event.get("user", "")
        self.text = event.get("text", "")


class Presence:
    """Someone came into (``joined``) or left a room the plugin sees."""

    def __init__(self, event, joined):
        self.room = event.get("room", "")
        self.user = event.get("user", "")
        self.joined = joined


class Pm:
    """A private message to the plugin."""

    def __init__(self, event):
        self.user = event.get("user", "")
        self.text = event.get("text", "")


class Plugin:
    """One plugin: register handlers with the decorators, then ``run()``."""

    def __init__(self, stdin=None, stdout=None):
        self._in = stdin if stdin is not None else sys.stdin
        self._out = stdout if stdout is not None else sys.stdout
        self.name = None
        self.server = None
        self.rooms = []
        self.version = None
        self._commands = {}
        self._handlers = {"message": [], "join": [], "leave": [], "pm": [], "error": []}
        self._timers = {}
        # One-shot calls, soonest first: (due, seq, fn). The server keeps a
        # few timers per plugin, so all of them ride on one timer ("later"),
        # armed for the soonest.
        self._later = []
        self._next_later = 0
        self._armed = None

    # -- Decorators ----------------------------------------------------------

    def command(self, name, args="", help=""):
        """``@plugin.command("roll")``: ``fn(cmd)`` runs for ``/roll ...``;
        a string it returns is the reply."""

        def register(fn):
            self._commands[name.lstrip("/").lower()] = (fn, args, help)
            return fn

        return register

    def on_message(self, fn):
        """``fn(message)`` for every line said in the plugin's rooms."""
        self._handlers["message"].append(fn)
        return fn

    def on_join(self, fn):
        self._handlers["join"].append(fn)
        return fn

    def on_leave(self, fn):
        self._handlers["leave"].append(fn)
        return fn

    def on_pm(self, fn):
        """``fn(pm)`` for private messages; a string it returns is sent back."""
        self._handlers["pm"].append(fn)
        return fn

    def on_error(self, fn):
        """``fn(message)`` when the server refused or did not understand a
        line of ours (otherwise it is written to stderr)."""
        self._handlers["error"].append(fn)
        return fn

    def every(self, seconds, name=None):
        """``@plugin.every(60)``: ``fn()`` every 60 s (at least 1 s)."""

        def register(fn):
            self._timers[name or fn.__name__] = (fn, seconds)
            return fn

        return register

    # -- Actions -------------------------------------------------------------

    def send(self, action):
        """Writes one action (a dict) as a line."""
        self._out.write(json.dumps(action, ensure_ascii=False) + "\n")
        self._out.flush()

    def say(self, room, text):
        self.send({"type": "say", "room": room, "text": text})

    def pm(self, user, text):
        self.send({"type": "pm", "user": user, "text": text})

    def reply(self, command_id, text):
        self.send({"type": "reply", "id": command_id, "text": text})

    def later(self, seconds, fn):
        """Calls ``fn()`` once, ``seconds`` from now (at least 1 s). Any
        number may wait: they share one timer of the server's."""
        self._next_later += 1
        due = time.monotonic() + max(seconds, 1)
        heapq.heappush(self._later, (due, self._next_later, fn))
        if self._armed is None or due < self._armed:
            self._arm(due)

    def _arm(self, due):
        self._armed = due
        wait = max(due - time.monotonic(), 1)
        self.send({"type": "timer", "name": "later", "after_ms": round(wait * 1000)})

    def _run_later(self):
        """The shared timer rang: the soonest call is due (the server says
        so), and any others whose time has come."""
        self._armed = None
        now = time.monotonic()
        first = True
        while self._later and (first or self._later[0][0] <= now):
            first = False
            _, _, fn = heapq.heappop(self._later)
            fn()
        if self._later:
            self._arm(self._later[0][0])

    def log(self, text):
        """A line for the server's log."""
        sys.stderr.write(str(text) + "\n")
        sys.stderr.flush()

    # -- The loop ------------------------------------------------------------

    def handle(self, event):
        """Handles one event (a dict): what ``run`` does for each line."""
        kind = event.get("type")
        if kind == "hello":
            self.version = event.get("version")
            self.name = event.get("name")
            self.server = event.get("server")
            self.rooms = list(event.get("rooms", []))
            if self.version != PROTOCOL_VERSION:
                self.log("lantalk_plugin speaks version %d, the server %r" % (PROTOCOL_VERSION, self.version))
            if self._commands:
                self.send({
                    "type": "register",
                    "commands": [
                        {"name": n, "args": a, "help": h}
                        for n, (_, a, h) in sorted(self._commands.items())
                    ],
                })
            for name, (_, seconds) in self._timers.items():
                self.send({"type": "timer", "name": name, "every_ms": int(max(seconds, 1) * 1000)})
        elif kind == "command":
            entry = self._commands.get(event.get("command", ""))
            if entry is not None:
                cmd = Command(self, event)
                answer = entry[0](cmd)
                if isinstance(answer, str) and answer:
                    cmd.reply(answer)
        elif kind == "message":
            for fn in self._handlers["message"]:
                fn(Message(event))
        elif kind in ("join", "leave"):
            for fn in self._handlers[kind]:
                fn(Presence(event, kind == "join"))
        elif kind == "pm":
            pm = Pm(event)
            for fn in self._handlers["pm"]:
                answer = fn(pm)
                if isinstance(answer, str) and answer:
                    self.pm(pm.user, answer)
        elif kind == "tick":
            name = event.get("timer", "")
            if name == "later":
                if self._armed is not None:
                    self._run_later()
            elif name in self._timers:
                self._timers[name][0]()
        elif kind == "error":
            if self._handlers["error"]:
                for fn in self._handlers["error"]:
                    fn(event.get("message", ""))
            else:
                self.log("server: " + str(event.get("message", "")))
        # "registered" and types of later versions need nothing.

    def run(self):
        """Reads events until the server closes our input."""
        for line in self._in:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.log("not JSON from the server: %r" % line[:80])
                continue
            try:
                self.handle(event)
            except Exception as e:  # a handler's bug must not end the plugin
                self.log("handler failed on %s: %r" % (event.get("type"), e))
