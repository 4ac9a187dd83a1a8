"""Reminders: `/remind 10m stand-up` says "alice: stand-up" in the room ten
minutes later (s, m, h; up to a day).

    lantalk server --plugin "python3 plugins/examples/remind.py"
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from lantalk_plugin import Plugin  # noqa: E402

plugin = Plugin()
UNITS = {"s": 1, "m": 60, "h": 3600}


def parse(args):
    """`10m stand-up` -> (600, "stand-up"); None if it is not that shape."""
    m = re.fullmatch(r"\s*(\d{1,5})\s*([smh])\s+(.+?)\s*", args or "")
    if not m:
        return None
    seconds = int(m.group(1)) * UNITS[m.group(2)]
    if not 1 <= seconds <= 86400:
        return None
    return seconds, m.group(3)


@plugin.command("remind", args="<10s|10m|2h> <text>", help="remind this room later")
def on_remind(cmd):
    parsed = parse(cmd.args)
    if parsed is None:
        return "%s: say /remind 10m stand-up (s, m or h; up to 24h)" % cmd.user
    seconds, text = parsed
    room, user = cmd.room, cmd.user
    plugin.later(seconds, lambda: plugin.say(room, "%s: reminder: %s" % (user, text)))
    return "%s: I will remind you in %s." % (user, cmd.args.split()[0])


if __name__ == "__main__":
    plugin.run()
