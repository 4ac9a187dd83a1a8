"""Dice: `/roll 2d6` rolls two six-sided dice in the room it is typed in.

    lantalk server --plugin "python3 plugins/examples/dice.py"
"""

import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from lantalk_plugin import Plugin  # noqa: E402

plugin = Plugin()


def roll(spec, rng=random):
    """`2d6` -> ([3, 4], 7); None for a spec that is not NdM (1-100 dice,
    2-1000 sides)."""
    m = re.fullmatch(r"\s*(\d{0,3})\s*[dD]\s*(\d{1,4})\s*", spec or "1d6")
    if not m:
        return None
    n, sides = int(m.group(1) or 1), int(m.group(2))
    if not (1 <= n <= 100 and 2 <= sides <= 1000):
        return None
    rolls = [rng.randint(1, sides) for _ in range(n)]
    return rolls, sum(rolls)


@plugin.command("roll", args="[NdM]", help="roll dice, like 2d6")
def on_roll(cmd):
    spec = cmd.args or "1d6"
    result = roll(spec)
    if result is None:
        return "%s: say /roll NdM, like /roll 2d6 (1-100 dice, 2-1000 sides)" % cmd.user
    rolls, total = result
    shown = " + ".join(str(r) for r in rolls[:20]) + (" + ..." if len(rolls) > 20 else "")
    return "%s rolled %s: %s = %d" % (cmd.user, spec.strip().lower(), shown, total)


if __name__ == "__main__":
    plugin.run()
