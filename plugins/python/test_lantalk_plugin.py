"""Tests of the SDK: events in, actions out, through in-memory streams."""

import io
import json
import unittest

from lantalk_plugin import PROTOCOL_VERSION, Plugin

HELLO = {"type": "hello", "version": PROTOCOL_VERSION, "name": "t", "server": "Hub", "rooms": ["#lobby"]}


def run(plugin_setup, events):
    """Builds a plugin with `plugin_setup(plugin)`, feeds it `events`, and
    returns the actions it wrote."""
    lines = "".join(json.dumps(e) + "\n" for e in events)
    out = io.StringIO()
    plugin = Plugin(stdin=io.StringIO(lines), stdout=out)
    plugin_setup(plugin)
    plugin.run()
    return [json.loads(l) for l in out.getvalue().splitlines()]


class SdkTest(unittest.TestCase):
    def test_hello_registers_commands_and_timers(self):
        def setup(p):
            @p.command("/Roll", args="<NdM>", help="roll dice")
            def roll(cmd):
                return None

            @p.every(60)
            def hourly():
                pass

        actions = run(setup, [HELLO])
        self.assertEqual(actions[0], {"type": "register", "commands": [{"name": "roll", "args": "<NdM>", "help": "roll dice"}]})
        self.assertEqual(actions[1], {"type": "timer", "name": "hourly", "every_ms": 60000})

    def test_a_returned_string_replies_to_the_command(self):
        def setup(p):
            @p.command("roll")
            def roll(cmd):
                self.assertEqual((cmd.user, cmd.room, cmd.args), ("alice", "#games", "2d6"))
                return "7"

        cmd = {"type": "command", "id": 9, "command": "roll", "args": "2d6", "user": "alice", "room": "#games"}
        actions = run(setup, [HELLO, cmd])
        self.assertEqual(actions[-1], {"type": "reply", "id": 9, "text": "7"})

    def test_messages_pms_presence_and_ticks_reach_their_handlers(self):
        seen = []

        def setup(p):
            p.on_message(lambda m: seen.append(("message", m.room, m.user, m.text)))
            p.on_join(lambda e: seen.append(("join", e.room, e.user)))
            p.on_leave(lambda e: seen.append(("leave", e.room, e.user)))
            p.on_pm(lambda pm: "hi " + pm.user)
            p.every(5, name="t")(lambda: seen.append(("tick",)))

        actions = run(setup, [
            HELLO,
            {"type": "join", "room": "#lobby", "user": "bob"},
            {"type": "message", "room": "#lobby", "user": "bob", "text": "yo"},
            {"type": "pm", "user": "bob", "text": "psst"},
            {"type": "tick", "timer": "t"},
            {"type": "leave", "room": "#lobby", "user": "bob"},
            {"type": "something_from_version_2"},
        ])
        self.assertEqual(seen, [
            ("join", "#lobby", "bob"),
            ("message", "#lobby", "bob", "yo"),
            ("tick",),
            ("leave", "#lobby", "bob"),
        ])
        self.assertIn({"type": "pm", "user": "bob", "text": "hi bob"}, actions)

    def test_later_is_a_one_shot_timer(self):
        fired = []

        def setup(p):
            @p.command("soon")
            def soon(cmd):
                p.later(2.5, lambda: fired.append(1))

        actions = run(setup, [
            HELLO,
            {"type": "command", "id": 1, "command": "soon", "args": "", "user": "a", "room": "#lobby"},
            {"type": "tick", "timer": "later"},
            {"type": "tick", "timer": "later"},
        ])
        armed = [a for a in actions if a.get("type") == "timer"]
        self.assertEqual(len(armed), 1)
        self.assertEqual(armed[0]["name"], "later")
        self.assertTrue(1000 <= armed[0]["after_ms"] <= 2500, armed)
        self.assertEqual(fired, [1])

    def test_many_later_calls_share_one_server_timer(self):
        fired = []

        def setup(p):
            @p.command("many")
            def many(cmd):
                for i in range(40):
                    p.later(1 + i, lambda i=i: fired.append(i))

        actions = run(setup, [HELLO, {"type": "command", "id": 1, "command": "many", "args": "", "user": "a", "room": "#lobby"}]
                      + [{"type": "tick", "timer": "later"}] * 40)
        names = {a["name"] for a in actions if a.get("type") == "timer"}
        self.assertEqual(names, {"later"})
        self.assertEqual(fired, list(range(40)))

    def test_a_failing_handler_or_bad_line_does_not_end_the_plugin(self):
        def setup(p):
            @p.command("boom")
            def boom(cmd):
                raise RuntimeError("bug")

            @p.command("ok")
            def ok(cmd):
                return "fine"

        lines = json.dumps(HELLO) + "\nnot json\n" + json.dumps(
            {"type": "command", "id": 1, "command": "boom", "args": "", "user": "a", "room": "#lobby"}) + "\n" + json.dumps(
            {"type": "command", "id": 2, "command": "ok", "args": "", "user": "a", "room": "#lobby"}) + "\n"
        out = io.StringIO()
        p = Plugin(stdin=io.StringIO(lines), stdout=out)
        setup(p)
        p.run()
        self.assertIn('{"type": "reply", "id": 2, "text": "fine"}', out.getvalue())


if __name__ == "__main__":
    unittest.main()
