"""Tests of the example plugins, each driven through the SDK in memory."""

import io
import json
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import dice  # noqa: E402
import poll  # noqa: E402
import remind  # noqa: E402


def command(module, name, args, user="alice", room="#lobby", id=1):
    """Feeds one command to the example's plugin; returns what it wrote."""
    out = io.StringIO()
    module.plugin._out = out
    module.plugin.handle({"type": "command", "id": id, "command": name, "args": args, "user": user, "room": room})
    return [json.loads(l) for l in out.getvalue().splitlines()]


class DiceTest(unittest.TestCase):
    def test_2d6_is_between_2_and_12(self):
        rng = random.Random(7)
        for _ in range(200):
            rolls, total = dice.roll("2d6", rng)
            self.assertEqual(len(rolls), 2)
            self.assertTrue(2 <= total <= 12)

    def test_bad_specs_are_refused(self):
        for spec in ["", "d", "0d6", "2d1", "101d6", "2d6+1", "x"]:
            if spec == "":
                continue
            self.assertIsNone(dice.roll(spec), spec)

    def test_the_reply(self):
        [reply] = command(dice, "roll", "2d6")
        self.assertEqual(reply["type"], "reply")
        self.assertRegex(reply["text"], r"^alice rolled 2d6: [1-6] \+ [1-6] = ([2-9]|1[0-2])$")


class PollTest(unittest.TestCase):
    def test_open_vote_and_close(self):
        poll.polls.clear()
        [r] = command(poll, "poll", "Lunch? | pizza | sushi")
        self.assertIn("Lunch?", r["text"])
        [r] = command(poll, "vote", "2", user="bob")
        self.assertIn("2) sushi: 1", r["text"])
        [r] = command(poll, "vote", "1", user="bob")
        self.assertIn("1) pizza: 1", r["text"])
        self.assertIn("2) sushi: 0", r["text"])
        [r] = command(poll, "vote", "9", user="bob")
        self.assertIn("/vote 1..2", r["text"])
        [r] = command(poll, "poll", "", room="#other")
        self.assertIn("No poll here", r["text"])
        [r] = command(poll, "poll", "close")
        self.assertTrue(r["text"].startswith("Closed: Lunch?"))
        self.assertEqual(poll.polls, {})


class RemindTest(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(remind.parse("10m stand-up"), (600, "stand-up"))
        self.assertEqual(remind.parse("2h  coffee break "), (7200, "coffee break"))
        self.assertIsNone(remind.parse("10 stand-up"))
        self.assertIsNone(remind.parse("25h late"))
        self.assertIsNone(remind.parse("10m"))

    def test_asks_for_a_timer_and_says_it_when_it_ticks(self):
        actions = command(remind, "remind", "10s stand-up", room="#team")
        timer = actions[0]
        self.assertEqual(timer["type"], "timer")
        self.assertEqual(timer["after_ms"], 10000)
        self.assertEqual(actions[1]["type"], "reply")
        out = io.StringIO()
        remind.plugin._out = out
        remind.plugin.handle({"type": "tick", "timer": timer["name"]})
        self.assertEqual(json.loads(out.getvalue()), {"type": "say", "room": "#team", "text": "alice: reminder: stand-up"})


if __name__ == "__main__":
    unittest.main()
