"""Polls: `/poll Lunch? | pizza | sushi` opens one in the room, `/vote 2`
votes, `/poll` alone shows the count, `/poll close` ends it.

    lantalk server --plugin "python3 plugins/examples/poll.py"
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from lantalk_plugin import Plugin  # noqa: E402

plugin = Plugin()
# One poll per room: {"question", "options", "votes": {user: index}}.
polls = {}


def tally(poll):
    counts = [0] * len(poll["options"])
    for choice in poll["votes"].values():
        counts[choice] += 1
    parts = ["%d) %s: %d" % (i + 1, o, c) for i, (o, c) in enumerate(zip(poll["options"], counts))]
    return "%s  %s" % (poll["question"], " | ".join(parts))


@plugin.command("poll", args="[question | option | option ...|close]", help="open, show or close a poll")
def on_poll(cmd):
    text = cmd.args.strip()
    poll = polls.get(cmd.room)
    if not text:
        return tally(poll) if poll else "No poll here. /poll Question? | yes | no"
    if text == "close":
        if not poll:
            return "No poll here."
        del polls[cmd.room]
        return "Closed: " + tally(poll)
    parts = [p.strip() for p in text.split("|")]
    if len(parts) < 3 or any(not p for p in parts) or len(parts) > 11:
        return "Usage: /poll Question? | option | option (2 to 10 options)"
    polls[cmd.room] = {"question": parts[0], "options": parts[1:], "votes": {}}
    return "%s asks: %s  (vote with /vote 1..%d)" % (cmd.user, tally(polls[cmd.room]), len(parts) - 1)


@plugin.command("vote", args="<n>", help="vote in this room's poll")
def on_vote(cmd):
    poll = polls.get(cmd.room)
    if not poll:
        return "No poll here."
    try:
        choice = int(cmd.args.strip()) - 1
    except ValueError:
        choice = -1
    if not 0 <= choice < len(poll["options"]):
        return "%s: vote with /vote 1..%d" % (cmd.user, len(poll["options"]))
    poll["votes"][cmd.user] = choice
    return tally(poll)


if __name__ == "__main__":
    plugin.run()
