"""Order of events (README, How it decides: order): messages are applied to a ticket in the order they happened, whatever folder or
label they were found in and in whatever order the server returned them. Pure."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.model import Incoming


def in_order(messages: list[Incoming], now: datetime) -> list[Incoming]:
    """The order things happened: by time, but never before a message of the batch that it answers
    (clocks and arrival times disagree: a reply can carry an earlier stamp than what it replies to)."""
    by_id = {m.facts.message_id: m for m in messages}
    effective: dict[str, tuple[datetime, int]] = {}

    def when(message: Incoming, depth: int = 0) -> tuple[datetime, int]:
        """(the latest time among it and what it answers, how many answered messages precede it)"""
        key = message.facts.message_id
        if key not in effective:
            effective[key] = (message.when or now, 0)  # provisional: breaks reference cycles
            parents = [when(by_id[p], depth + 1) for p in message.facts.thread_keys if p in by_id and p != key]
            if parents and depth < 50:
                effective[key] = (max(effective[key][0], *(t for t, _ in parents)), 1 + max(d for _, d in parents))
        return effective[key]

    return sorted(messages, key=lambda m: (*when(m), m.when or now, m.ref))
